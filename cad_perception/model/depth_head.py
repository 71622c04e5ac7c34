"""Depth head: multi-scale fusion of the pyramid levels, pixel-shuffled up to the input size.

Each of P2-P5 is reduced to `level_channels` by a 3 x 3 convolution, bilinearly up-sampled to
the P2 grid (stride 4) and concatenated; a 3 x 3 convolution fuses them into the depth features
that the alignment head pools. A second convolution predicts 16 values per P2 cell that a pixel
shuffle spreads over its 4 x 4 input pixels, cropped to the input size (P2 has ceil(H/4) rows).
Depth is z-depth in metres, made positive by a softplus whose bias starts at `initial_depth`.
With `canonical_focal` set, that depth is the one a camera of focal length canonical_focal
would see, and the head scales it by the image's focal length over canonical_focal (an object
twice as far away looks the same through a lens of twice the focal length).
"""

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.functional import interpolate, softplus

from cad_perception.model.backbone import PYRAMID_LEVELS
from cad_perception.model.config import DepthConfig

FEATURE_STRIDE = 4
"""Input pixels per depth-feature cell along each axis (the stride of P2)."""


class DepthPrediction(NamedTuple):
    """The depth head's output for B images of H x W pixels."""

    depth: torch.Tensor
    """(B, 1, H, W) z-depth in metres, > 0."""
    features: torch.Tensor
    """(B, C, ceil(H/4), ceil(W/4)) depth features at stride FEATURE_STRIDE."""


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class DepthHead(nn.Module):
    """Pyramid levels {'0': P2, ..., '3': P5} -> DepthPrediction (see the module docstring)."""

    def __init__(self, *, config: DepthConfig, in_channels: int):
        super().__init__()
        self.reduce = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, config.level_channels, 3, padding=1), nn.ReLU())
            for _ in PYRAMID_LEVELS
        )
        fused_channels = config.level_channels * len(PYRAMID_LEVELS)
        self.fuse = nn.Sequential(
            nn.Conv2d(fused_channels, config.feature_channels, 3, padding=1), nn.ReLU()
        )
        self.predict = nn.Sequential(
            nn.Conv2d(config.feature_channels, config.feature_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.feature_channels, FEATURE_STRIDE**2, 1),
            nn.PixelShuffle(FEATURE_STRIDE),
        )
        nn.init.constant_(self.predict[2].bias, _inverse_softplus(config.initial_depth))
        self.out_channels = config.feature_channels
        self.canonical_focal = config.canonical_focal

    def forward(
        self,
        features: dict[str, torch.Tensor],
        image_size: tuple[int, int],
        focal: torch.Tensor | None = None,
    ) -> DepthPrediction:
        """Pyramid levels (B, C, h_l, w_l), the input (H, W) and each image's focal length
        (B,) in input pixels (needed with canonical_focal) -> DepthPrediction."""
        finest = features[PYRAMID_LEVELS[0]]
        levels = [
            interpolate(
                reduce(features[level]),
                size=finest.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
            for level, reduce in zip(PYRAMID_LEVELS, self.reduce, strict=True)
        ]
        depth_features = self.fuse(torch.cat(levels, dim=1))
        height, width = image_size
        depth = softplus(self.predict(depth_features)[..., :height, :width])
        if self.canonical_focal is not None:
            if focal is None:
                raise ValueError("a depth head with canonical_focal needs the focal lengths")
            depth = depth * (focal / self.canonical_focal).reshape(-1, 1, 1, 1)
        return DepthPrediction(depth=depth, features=depth_features)
