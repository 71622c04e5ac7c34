"""Depth head: output sizes, positivity, initial depth, multi-scale fusion, gradients."""

import pytest
import torch

from cad_perception.model.backbone import PYRAMID_LEVELS
from cad_perception.model.config import DepthConfig
from cad_perception.model.depth_head import DepthHead

CHANNELS = 16


def pyramid(height: int, width: int, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random P2-P5 levels for an input of height x width, at strides 4, 8, 16, 32."""
    g = torch.Generator().manual_seed(seed)
    levels = {}
    for index, name in enumerate(PYRAMID_LEVELS):
        stride = 4 * 2**index
        size = (-(-height // stride), -(-width // stride))
        levels[name] = torch.randn(batch, CHANNELS, *size, generator=g, requires_grad=True)
    return levels


def make_head(**overrides) -> DepthHead:
    torch.manual_seed(0)
    config = DepthConfig(level_channels=8, feature_channels=12, **overrides)
    return DepthHead(config=config, in_channels=CHANNELS)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("height", "width"), [(240, 320), (50, 70)])
def test_shapes_match_the_input_and_the_p2_grid(height, width, training):
    prediction = make_head().train(training)(pyramid(height, width), (height, width))
    assert prediction.depth.shape == (2, 1, height, width)
    assert prediction.features.shape == (2, 12, -(-height // 4), -(-width // 4))
    assert (prediction.depth > 0).all()


def test_untrained_output_layer_predicts_the_initial_depth():
    head = make_head(initial_depth=3.25)
    torch.nn.init.zeros_(head.predict[2].weight)
    depth = head(pyramid(64, 96), (64, 96)).depth
    torch.testing.assert_close(depth, torch.full_like(depth, 3.25))


def test_every_level_and_parameter_receives_gradient():
    head = make_head()
    levels = pyramid(64, 96)
    prediction = head(levels, (64, 96))
    (prediction.depth.mean() + prediction.features.mean()).backward()
    for name, level in levels.items():
        assert level.grad is not None and level.grad.abs().sum() > 0, name
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_pixel_shuffle_keeps_each_cell_in_its_own_4x4_block():
    head = make_head()
    with torch.no_grad():  # the 1 x 1 convolution outputs its bias k in channel k
        head.predict[2].weight.zero_()
        head.predict[2].bias.copy_(torch.arange(16.0))
        depth = head(pyramid(8, 8, batch=1), (8, 8)).depth[0, 0]
    # Channel k of the 1 x 1 convolution lands at offset (k // 4, k % 4) of every 4 x 4 block.
    expected = torch.nn.functional.softplus(torch.arange(16.0).reshape(4, 4)).repeat(2, 2)
    torch.testing.assert_close(depth, expected)


def test_canonical_focal_scales_each_image_by_its_own_focal_length():
    """Image 0 seen through twice the canonical focal length is twice as deep; image 1,
    at the canonical one, is as predicted; the features do not depend on the camera."""
    plain, canonical = make_head(), make_head(canonical_focal=250.0)
    levels = pyramid(64, 96)
    reference = plain(levels, (64, 96))
    scaled = canonical(levels, (64, 96), torch.tensor([500.0, 250.0]))
    torch.testing.assert_close(scaled.depth[0], 2 * reference.depth[0])
    torch.testing.assert_close(scaled.depth[1], reference.depth[1])
    torch.testing.assert_close(scaled.features, reference.features)
    ignored = plain(levels, (64, 96), torch.tensor([500.0, 250.0]))  # no canonical_focal
    torch.testing.assert_close(ignored.depth, reference.depth)


def test_canonical_focal_needs_the_focal_lengths_and_must_be_positive():
    with pytest.raises(ValueError, match="focal lengths"):
        make_head(canonical_focal=250.0)(pyramid(64, 96), (64, 96))
    with pytest.raises(ValueError, match="canonical_focal"):
        DepthConfig(canonical_focal=0.0)
