"""GatherMultiScaleRoIAlign: torchvision's pooled features, exported without 4-D scatters."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torchvision.ops import MultiScaleRoIAlign

from cad_perception.model.roi_pool import GatherMultiScaleRoIAlign, pyramid_scales

LEVELS = ["0", "1", "2", "3"]
IMAGE = (512, 704)
"""(H, W); large enough for RoIs of every level (P5 takes sqrt(area) >= 448 pixels)."""


def pyramid(batch: int = 2, channels: int = 8) -> dict[str, torch.Tensor]:
    """Random P2-P5 maps (batch, channels, ceil(H/s), ceil(W/s)) for strides 4..32."""
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.rand(
            batch, channels, -(-IMAGE[0] // stride), -(-IMAGE[1] // stride), generator=generator
        )
        for name, stride in zip(LEVELS, (4, 8, 16, 32), strict=True)
    }


def boxes_of_all_sizes(count: int, seed: int) -> torch.Tensor:
    """(count, 4) boxes 8 to 500 pixels a side, so that every level gets RoIs."""
    generator = torch.Generator().manual_seed(seed)
    size = 8 * 62.5 ** torch.rand(count, 2, generator=generator)
    image_wh = torch.tensor(IMAGE[::-1], dtype=torch.float32)
    corner = torch.rand(count, 2, generator=generator) * (image_wh - size)
    large = torch.tensor([[0.0, 0.0, 700.0, 500.0], [100.0, 20.0, 650.0, 510.0]])  # P5
    return torch.cat((torch.cat((corner, corner + size), dim=1), large))


def test_same_features_as_torchvision_on_every_level():
    features = pyramid()
    boxes = [boxes_of_all_sizes(40, seed=1), boxes_of_all_sizes(25, seed=2)]
    ours = GatherMultiScaleRoIAlign(LEVELS, 7, 2)
    reference = MultiScaleRoIAlign(LEVELS, 7, 2)
    pooled = ours(features, boxes, [IMAGE, IMAGE])
    levels = ours.map_levels(boxes)
    assert set(levels.tolist()) == {0, 1, 2, 3}
    assert pooled.shape == (69, 8, 7, 7)
    assert torch.equal(pooled, reference(features, boxes, [IMAGE, IMAGE]))


def test_levels_without_rois_and_no_rois_at_all():
    features = pyramid(batch=1)
    ours = GatherMultiScaleRoIAlign(LEVELS, 7, 2)
    reference = MultiScaleRoIAlign(LEVELS, 7, 2)
    small = [torch.tensor([[10.0, 10.0, 30.0, 40.0], [100.0, 50.0, 120.0, 60.0]])]  # P2 only
    assert torch.equal(ours(features, small, [IMAGE]), reference(features, small, [IMAGE]))
    none = [torch.zeros(0, 4)]
    assert ours(features, none, [IMAGE]).shape == (0, 8, 7, 7)


class _Pooler(nn.Module):
    """One image's pyramid and boxes -> pooled features, as the exported graph sees them."""

    def __init__(self):
        super().__init__()
        self.pool = GatherMultiScaleRoIAlign(LEVELS, 7, 2)

    def forward(self, p2, p3, p4, p5, boxes):
        maps = dict(zip(LEVELS, (p2, p3, p4, p5), strict=True))
        return self.pool(maps, [boxes], [IMAGE])


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_onnx_runtime_matches_for_another_roi_count_without_scatter(tmp_path):
    features = pyramid(batch=1)
    maps = tuple(features[name] for name in LEVELS)
    path = tmp_path / "pool.onnx"
    with torch.no_grad():
        torch.onnx.export(
            _Pooler(),
            (*maps, boxes_of_all_sizes(30, seed=3)),
            str(path),
            input_names=["p2", "p3", "p4", "p5", "boxes"],
            dynamic_axes={"boxes": {0: "rois"}},
            opset_version=17,
            dynamo=False,
        )
    graph = onnx.load(str(path)).graph
    assert "ScatterElements" not in {node.op_type for node in graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes = boxes_of_all_sizes(53, seed=4)  # not the traced count
    (pooled,) = session.run(
        None, {**{f"p{i + 2}": m.numpy() for i, m in enumerate(maps)}, "boxes": boxes.numpy()}
    )
    expected = MultiScaleRoIAlign(LEVELS, 7, 2)(features, [boxes], [IMAGE])
    np.testing.assert_allclose(pooled, expected.numpy(), atol=1e-5)


def test_pyramid_scales_round_each_level_to_a_power_of_two():
    """A 250 x 330 image: the levels have ceil(250 / stride) rows, not an exact fraction."""
    features = [torch.zeros(1, 1, -(-250 // stride), 7) for stride in (4, 8, 16, 32)]
    assert pyramid_scales(features, [(250, 330), (240, 320)]) == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    with pytest.raises(ValueError, match="at least one image"):
        pyramid_scales(features, [])
