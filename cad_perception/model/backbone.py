"""ResNet + feature pyramid backbone, built from torchvision without downloading weights.

The backbone maps normalised images (B, 3, H, W) to an ordered dict of pyramid levels, all with
`out_channels` channels: '0' = P2 (stride 4, (B, C, ceil(H/4), ceil(W/4))), '1' = P3 (stride 8),
'2' = P4 (stride 16), '3' = P5 (stride 32) and 'pool' = P6 (max-pooled P5, stride 64), the
layout torchvision's RPN and RoI poolers expect.
"""

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from cad_perception.model.config import BackboneConfig

_RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}

_STAGE_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}
"""Output channels of layer1-layer4 of each ResNet."""

GROUP_NORM_GROUPS = 32


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUP_NORM_GROUPS, channels)


_NORM_LAYERS = {"group": _group_norm, "batch": nn.BatchNorm2d, "frozen_batch": FrozenBatchNorm2d}

PYRAMID_LEVELS = ("0", "1", "2", "3")
"""Keys of P2-P5 in the backbone's output (P6 is 'pool')."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone(*, config: BackboneConfig) -> BackboneWithFPN:
    """A randomly initialised ResNet (config.name) with an FPN of config.fpn_channels channels.

    All layers are trainable. The result has `out_channels` = config.fpn_channels and returns
    the levels described in the module docstring.
    """
    resnet = _RESNETS[config.name](weights=None, norm_layer=_NORM_LAYERS[config.norm])
    return BackboneWithFPN(
        resnet,
        return_layers={f"layer{i + 1}": level for i, level in enumerate(PYRAMID_LEVELS)},
        in_channels_list=list(_STAGE_CHANNELS[config.name]),
        out_channels=config.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """RGB images (B, 3, H, W) in [0, 1] -> ImageNet-normalised images (B, 3, H, W)."""
    mean = images.new_tensor(IMAGENET_MEAN)[:, None, None]
    std = images.new_tensor(IMAGENET_STD)[:, None, None]
    return (images - mean) / std
