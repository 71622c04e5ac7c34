"""The fixed-shape network: N detections padded to D rows, identical to the network's own output
on the first N."""

import numpy as np
import pytest
import torch

from cad_perception.engine.fixed_shape import FixedShapeRoca, pad_rows
from cad_perception.engine.output import OUTPUT_NAMES
from cad_perception.model.config import RocaConfig
from cad_perception.model.roca import Roca
from tests.engine.conftest import detecting, intrinsics, synthetic_image
from tests.model.mini_dataset import mini_config

SIZE = (64, 96)


@pytest.mark.parametrize("count", [0, 2, 4])
def test_pad_rows_keeps_the_rows_and_fills_the_rest(count):
    rows = torch.arange(count * 2, dtype=torch.float32).reshape(count, 2) + 1
    fill = torch.full((4, 2), -1.0)
    padded = pad_rows(rows, fill)
    assert padded.shape == (4, 2)
    torch.testing.assert_close(padded[:count], rows)
    assert (padded[count:] == -1).all()


def test_pad_rows_casts_the_fill_to_the_rows_dtype():
    padded = pad_rows(torch.tensor([True]), torch.zeros(3))
    assert padded.dtype == torch.bool and padded.tolist() == [True, False, False]


def network(config: RocaConfig) -> FixedShapeRoca:
    torch.manual_seed(0)
    return FixedShapeRoca(Roca(config=config))


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(synthetic_image(seed, SIZE))[None]
    return image, torch.from_numpy(intrinsics(SIZE))[None]


def test_outputs_are_the_network_detections_padded_to_fixed_shapes():
    config = detecting(mini_config())
    fixed = network(config)
    image, K = inputs()
    with torch.no_grad():
        padded = dict(zip(OUTPUT_NAMES, fixed(image, K), strict=True))
        raw = fixed.model(image, K)
    D, S, E = 20, config.roi_size, config.retrieval.embedding_dim
    assert config.detector.detections_per_image == D
    expected_shapes = {"boxes": (D, 4), "scores": (D,), "classes": (D,), "masks": (D, S, S),
                       "R": (D, 3, 3), "t": (D, 3), "s": (D, 3), "valid": (D,),
                       "embeddings": (D, E)}  # fmt: skip
    assert {name: tuple(t.shape) for name, t in padded.items()} == expected_shapes
    assert padded["classes"].dtype == torch.int64 and padded["valid"].dtype == torch.bool
    count = len(raw.classes)
    assert 0 < count <= D
    torch.testing.assert_close(padded["boxes"][:count], raw.boxes)
    torch.testing.assert_close(padded["masks"][:count], raw.masks[:, 0])
    torch.testing.assert_close(padded["R"][:count], raw.R)
    torch.testing.assert_close(padded["valid"][:count], raw.alignment_valid)
    torch.testing.assert_close(padded["embeddings"][:count], raw.embeddings)
    scores = padded["scores"][:count].numpy()
    assert np.all(np.diff(scores) <= 0), "detections are sorted by score"
    assert (padded["classes"][:count] >= 1).all()


def test_a_score_threshold_keeps_exactly_the_detections_above_it():
    image, K = inputs()
    everything = network(detecting(mini_config()))
    assert everything.score_threshold == 0.0 and not everything.training
    with torch.no_grad():
        full = dict(zip(OUTPUT_NAMES, everything(image, K), strict=True))
    scores = full["scores"][full["classes"] > 0]
    assert len(scores) >= 4, "the untrained network detects enough to split"
    threshold = float(scores[2] + scores[3]) / 2  # between the third and fourth best
    above = network(detecting(mini_config()))
    assert above.model.detector.roi_heads.score_thresh == 0.0
    above = FixedShapeRoca(above.model, score_threshold=threshold)
    assert above.score_threshold == threshold and not above.training
    with torch.no_grad():
        kept = dict(zip(OUTPUT_NAMES, above(image, K), strict=True))
    assert (kept["classes"] > 0).sum() == 3
    for name in ("boxes", "scores", "classes", "masks", "R", "t", "s", "valid", "embeddings"):
        torch.testing.assert_close(kept[name][:3], full[name][:3], atol=1e-5, rtol=1e-4)
    assert (kept["classes"][3:] == 0).all() and (kept["scores"][3:] == 0).all()


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_a_score_threshold_outside_the_unit_interval_is_refused(threshold):
    with pytest.raises(ValueError, match="score_threshold must lie in"):
        FixedShapeRoca(Roca(config=mini_config()), score_threshold=threshold)


def test_no_detections_give_padding_only():
    config = detecting(mini_config(), score_threshold=1.0)  # softmax scores never exceed 1
    with torch.no_grad():
        padded = dict(zip(OUTPUT_NAMES, network(config)(*inputs()), strict=True))
    assert (padded["classes"] == 0).all() and (padded["scores"] == 0).all()
    assert not padded["valid"].any()
    torch.testing.assert_close(padded["R"], torch.eye(3).expand(20, 3, 3))
    assert (padded["embeddings"] == 0).all() and (padded["boxes"] == 0).all()


def test_rejects_batches():
    image, K = inputs()
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        network(detecting(mini_config()))(image.repeat(2, 1, 1, 1), K.repeat(2, 1, 1))
