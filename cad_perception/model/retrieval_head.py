"""Retrieval head: embeddings of detections and of CAD occupancy grids in one space (ROCA).

Grids are (N, G, G, G) with G = cad.voxel.GRID_SIZE, indexed [x, y, z] over the canonical
cube [-0.5, 0.5]^3 with voxel centres at (i + 0.5) / G - 0.5, as cad.voxel's occupancy grids.

A detection's NOCs are splatted into such a grid (`splat_points`: each point adds its trilinear
weights to the 8 voxels around it, a differentiable scatter-add), normalised to a maximum of 1
(a soft occupancy on the scale of the CAD grids), and encoded by a 3D CNN; an MLP of the shape
code is added (ROCA's 'resnet+image'). CAD grids get their own 3D CNN into the same space.
Both embeddings are L2-normalised: ROCA compares unnormalised ones by Euclidean distance; on
the unit sphere the Euclidean distance (what cad.search ranks by) and the inner product rank
alike, distances lie in [0, 2], and the triplet margin has a fixed meaning. A decoder (3D
transposed convolutions) predicts the GT CAD's occupancy logits from the detection's
unnormalised embedding, the proxy completion task that makes the embedding describe the whole
shape, not only its visible part.
"""

import itertools
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.functional import normalize

from cad_perception.cad.voxel import GRID_SIZE
from cad_perception.model.config import RetrievalConfig

_CORNERS = torch.tensor(
    [[dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)], dtype=torch.int64
)
"""The 8 offsets (8, 3) from a point's lower voxel to the voxels around it."""

_ENCODED_SIDE = 2
"""Side of the encoders' last feature grid: G / 2^4."""


class RetrievalPrediction(NamedTuple):
    """Embeddings of N detections."""

    embedding: torch.Tensor
    """(N, D) unit vectors, comparable with RetrievalHead.embed_cads."""
    features: torch.Tensor
    """(N, D) the embedding before normalisation (the completion decoder's input)."""


def splat_points(
    points: torch.Tensor, weights: torch.Tensor, size: int = GRID_SIZE
) -> torch.Tensor:
    """Trilinear splatting of points (N, P, 3) with weights (N, P) into grids (N, G, G, G).

    Voxel [i, j, k] is centred at ((i, j, k) + 0.5) / G - 0.5. A point adds weight * the
    trilinear coefficient to each of the 8 voxels whose centres surround it, so a point on a
    voxel centre puts all its weight there and every grid holds the sum of its weights.
    Coordinates are clamped to the outermost voxel centres first, so points on or outside the
    cube's faces land in the border voxels. Differentiable in points and weights.
    """
    if points.dim() != 3 or points.shape[-1] != 3 or weights.shape != points.shape[:2]:
        raise ValueError(
            f"points must be (N, P, 3) and weights (N, P), got {tuple(points.shape)} and "
            f"{tuple(weights.shape)}"
        )
    count = points.shape[0]
    position = ((points + 0.5) * size - 0.5).clamp(0, size - 1)  # continuous voxel index
    lower = position.detach().floor().clamp(max=size - 2)  # (N, P, 3); lower + 1 <= G - 1
    fraction = position - lower  # in [0, 1]
    corners = _CORNERS.to(points.device)  # (8, 3)
    # Coefficient of corner c: product over axes of (fraction if offset 1 else 1 - fraction).
    factors = torch.where(corners == 1, fraction[..., None, :], 1 - fraction[..., None, :])
    coefficients = factors.prod(dim=-1) * weights[..., None]  # (N, P, 8)
    voxels = lower.long()[..., None, :] + corners  # (N, P, 8, 3)
    flat_index = (voxels[..., 0] * size + voxels[..., 1]) * size + voxels[..., 2]
    grid = coefficients.new_zeros(count, size**3)  # same dtype under autocast
    corners_total = flat_index.shape[1] * flat_index.shape[2]  # P * 8, explicit for N = 0
    grid = grid.scatter_add(
        1, flat_index.reshape(count, corners_total), coefficients.reshape(count, corners_total)
    )
    return grid.reshape(count, size, size, size)


def _stride_two_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU())


class VoxelEncoder(nn.Module):
    """Grids (N, 32, 32, 32) -> (N, D): four stride-2 3D convolutions (32^3 -> 2^3), a linear."""

    def __init__(self, *, channels: tuple[int, ...], embedding_dim: int):
        super().__init__()
        widths = (1, *channels)
        self.convolutions = nn.Sequential(
            *(_stride_two_conv(c_in, c_out) for c_in, c_out in itertools.pairwise(widths))
        )
        self.linear = nn.Linear(channels[-1] * _ENCODED_SIDE**3, embedding_dim)

    def forward(self, grids: torch.Tensor) -> torch.Tensor:
        features = self.convolutions(grids[:, None].to(self.linear.weight.dtype))
        # an explicit size instead of flatten: an exported graph must reshape N = 0 rows too
        return self.linear(features.reshape(features.shape[0], self.linear.in_features))


class VoxelDecoder(nn.Module):
    """Embeddings (N, D) -> occupancy logits (N, 32, 32, 32), mirroring VoxelEncoder."""

    def __init__(self, *, channels: tuple[int, ...], embedding_dim: int):
        super().__init__()
        self.last_channels = channels[-1]
        self.linear = nn.Sequential(
            nn.Linear(embedding_dim, channels[-1] * _ENCODED_SIDE**3), nn.ReLU()
        )
        widths = (*reversed(channels), 1)
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.deconvolutions = nn.Sequential(*layers[:-1])  # logits: no ReLU after the last

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        side = _ENCODED_SIDE
        features = self.linear(embeddings).reshape(-1, self.last_channels, side, side, side)
        return self.deconvolutions(features)[:, 0]


class RetrievalHead(nn.Module):
    """Detection and CAD embeddings and the completion decoder (see the module docstring)."""

    def __init__(self, *, config: RetrievalConfig, shape_code_dim: int):
        super().__init__()
        channels, dim = config.voxel_channels, config.embedding_dim
        self.noc_encoder = VoxelEncoder(channels=channels, embedding_dim=dim)
        self.code_mlp = nn.Sequential(
            nn.Linear(shape_code_dim, config.code_hidden_dim),
            nn.ReLU(),
            nn.Linear(config.code_hidden_dim, dim),
        )
        self.cad_encoder = VoxelEncoder(channels=channels, embedding_dim=dim)
        self.decoder = VoxelDecoder(channels=channels, embedding_dim=dim)

    def forward(
        self, noc: torch.Tensor, mask: torch.Tensor, shape_code: torch.Tensor
    ) -> RetrievalPrediction:
        """NOCs (N, 3, S, S), mask (N, 1, S, S) in [0, 1], shape codes (N, C) -> embeddings."""
        count, cells = noc.shape[0], noc.shape[-2] * noc.shape[-1]  # N = 0 must export too
        grids = splat_points(
            noc.reshape(count, 3, cells).transpose(1, 2), mask.reshape(count, cells)
        )
        grids = grids / grids.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        features = self.noc_encoder(grids) + self.code_mlp(shape_code)
        return RetrievalPrediction(embedding=normalize(features, dim=1), features=features)

    def embed_cads(self, grids: torch.Tensor) -> torch.Tensor:
        """CAD occupancy grids (M, 32, 32, 32) bool -> unit embeddings (M, D)."""
        return normalize(self.cad_encoder(grids), dim=1)

    def complete(self, features: torch.Tensor) -> torch.Tensor:
        """Unnormalised detection embeddings (N, D) -> CAD occupancy logits (N, 32, 32, 32)."""
        return self.decoder(features)
