"""ResNet + FPN backbone: pyramid layout, selectable ResNets and norms, input normalisation."""

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from cad_perception.model.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_backbone,
    normalize_images,
)
from cad_perception.model.config import BackboneConfig


def test_resnet18_pyramid_levels_have_the_expected_strides_and_channels():
    backbone = build_backbone(config=BackboneConfig(fpn_channels=32)).eval()
    with torch.no_grad():
        levels = backbone(torch.rand(2, 3, 240, 320))
    assert backbone.out_channels == 32
    shapes = {name: tuple(level.shape) for name, level in levels.items()}
    assert shapes == {
        "0": (2, 32, 60, 80),
        "1": (2, 32, 30, 40),
        "2": (2, 32, 15, 20),
        "3": (2, 32, 8, 10),
        "pool": (2, 32, 4, 5),
    }


def test_odd_sizes_round_up_at_every_stride():
    backbone = build_backbone(config=BackboneConfig(fpn_channels=16)).eval()
    with torch.no_grad():
        levels = backbone(torch.rand(1, 3, 50, 70))
    assert levels["0"].shape[-2:] == (13, 18)  # ceil(50 / 4), ceil(70 / 4)
    assert levels["3"].shape[-2:] == (2, 3)


@pytest.mark.parametrize(
    ("name", "last_stage_channels"), [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)]
)
def test_selectable_resnets(name, last_stage_channels):
    backbone = build_backbone(config=BackboneConfig(name=name, fpn_channels=16))
    assert backbone.fpn.inner_blocks[-1][0].in_channels == last_stage_channels
    blocks = len(backbone.body.layer3)
    assert blocks == {"resnet18": 2, "resnet34": 6, "resnet50": 6}[name]


@pytest.mark.parametrize(
    ("norm", "layer_type"),
    [("group", nn.GroupNorm), ("batch", nn.BatchNorm2d), ("frozen_batch", FrozenBatchNorm2d)],
)
def test_norm_layers_follow_the_config(norm, layer_type):
    backbone = build_backbone(config=BackboneConfig(norm=norm, fpn_channels=16))
    assert isinstance(backbone.body.bn1, layer_type)
    assert isinstance(backbone.body.layer4[0].bn2, layer_type)


def test_every_parameter_is_trainable_and_randomly_initialised():
    torch.manual_seed(0)
    first = build_backbone(config=BackboneConfig(fpn_channels=16))
    torch.manual_seed(1)
    second = build_backbone(config=BackboneConfig(fpn_channels=16))
    assert all(p.requires_grad for p in first.parameters())
    assert not torch.equal(first.body.conv1.weight, second.body.conv1.weight)


def test_normalize_images_known_answer():
    images = torch.tensor(IMAGENET_MEAN)[None, :, None, None].expand(1, 3, 2, 2)
    torch.testing.assert_close(normalize_images(images), torch.zeros(1, 3, 2, 2))
    ones = normalize_images(torch.ones(1, 3, 1, 1))[0, :, 0, 0]
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(ones, expected)
