"""Alignment head: a 9-DoF pose per detection from depth, NOCs and weighted Procrustes (ROCA).

Conventions: camera points in the OpenCV optical frame (metres), pixel centres at integer
coordinates, the pose X_cam = R (s * X_noc) + t (DESIGN.md). Per-pixel tensors of a detection
are images (N, C, S, S) over its RoI grid of S x S cells; boxes are (x0, y0, x1, y1) in image
pixel-edge coordinates (a box around pixels 0..9 spans 0 to 10), the detector's and the
datasets' convention.

RoI grid cell (i, j) of a box samples the image at pixel coordinates

    u_j = x0 + (j + 0.5) (x1 - x0) / S - 0.5,    v_i = y0 + (i + 0.5) (y1 - y0) / S - 0.5

(`roi_pixel_coordinates`), which is where torchvision's roi_align(aligned=True) takes its
bilinear sample with sampling_ratio=1. Depth is resampled that way and back-projected through
those pixel coordinates, so a RoI's points are exactly the camera points of its sample
positions. The depth features (stride 4) are pooled with 2 x 2 samples per cell.

Per detection, in order:
1. points (N, 3, S, S) from the predicted depth; the object mask = mask probability > threshold;
   centre = mask-weighted mean of the points (the mean of all RoI points if the mask is empty).
2. A per-pixel MLP (1 x 1 convolutions) over [depth features, points - centre], max-pooled over
   the mask pixels and passed through an MLP, gives the shape code.
3. Scale s = category mean scale * exp(MLP(shape code)), one (3,) output per category, the
   detected one picked; translation t_init = centre + MLP(shape code, s), also per category.
   Both last layers start at zero, so an untrained head predicts the category mean scale and
   the centre of the visible points.
4. A per-pixel MLP over [shape code, s, points - t_init] predicts the NOC (0.5 tanh, so in
   [-0.5, 0.5]^3) and a Procrustes weight (sigmoid, times the mask) of every RoI pixel. The
   shape code enters as a per-detection bias of the first layer (the same as concatenating
   it to every pixel, without materialising the copies).
5. Weighted Procrustes (`procrustes_pose`, the ONNX-exportable Horn solver, also in training)
   maps src = s * NOC onto dst = points - t_init, giving R and a residual translation; the
   refined translation is t = t_init + residual (ROCA's "t_init + weighted residual").

Gradients: points enter the per-pixel MLPs detached (as in ROCA), and t_init enters steps 4-5
detached. Solving on points - t_init instead of the raw points only improves float32
conditioning: Procrustes is translation-equivariant, so t = t_init + residual equals the
translation solved on the raw points and t_init cancels out of it exactly; detaching it states
that. The refined t and R therefore train the NOCs, weights, scale and depth, while the t_init
loss trains the offset MLP (and, through the centre, the depth). Detections whose Procrustes
problem is degenerate (see geometry.procrustes) or that have fewer than `min_mask_pixels` mask
pixels get R = identity and t = t_init, with valid = False.
"""

import itertools
from typing import NamedTuple

import torch
from torch import nn
from torchvision.ops import roi_align

from cad_perception.geometry.camera import backproject_pixels
from cad_perception.geometry.procrustes import procrustes_horn
from cad_perception.model.config import AlignmentConfig
from cad_perception.model.depth_head import FEATURE_STRIDE


class Alignment(NamedTuple):
    """Per-detection predictions of the alignment head for N detections on S x S RoI grids."""

    R: torch.Tensor
    """(N, 3, 3) rotation, identity where not valid."""
    t: torch.Tensor
    """(N, 3) refined translation in metres (t_init where not valid)."""
    t_init: torch.Tensor
    """(N, 3) initial translation: centre of the visible points + learned offset."""
    s: torch.Tensor
    """(N, 3) per-axis scale in metres, > 0."""
    noc: torch.Tensor
    """(N, 3, S, S) predicted NOC of every RoI pixel, in [-0.5, 0.5]."""
    weights: torch.Tensor
    """(N, 1, S, S) Procrustes weights, 0 off the mask."""
    mask: torch.Tensor
    """(N, 1, S, S) 1.0 on object pixels (mask probability > threshold), else 0.0."""
    points: torch.Tensor
    """(N, 3, S, S) camera points of the RoI pixels from the predicted depth."""
    shape_code: torch.Tensor
    """(N, D) shape code."""
    valid: torch.Tensor
    """(N,) bool: whether R and t come from a well-posed Procrustes solve."""


class PoseSolve(NamedTuple):
    """Rotation and translation of N detections from weighted Procrustes."""

    R: torch.Tensor
    """(N, 3, 3), identity where not valid."""
    t: torch.Tensor
    """(N, 3), t_init where not valid."""
    valid: torch.Tensor
    """(N,) bool."""


def roi_pixel_coordinates(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Boxes (N, 4) (x0, y0, x1, y1) -> image pixel coordinates (N, S, S, 2) = (u, v) of the
    centres of their S x S RoI grid cells (see the module docstring)."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    steps = (torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5) / size  # (S,)
    x0, y0, x1, y1 = boxes[:, 0, None], boxes[:, 1, None], boxes[:, 2, None], boxes[:, 3, None]
    u = x0 + steps * (x1 - x0) - 0.5  # (N, S) along j
    v = y0 + steps * (y1 - y0) - 0.5  # (N, S) along i
    return torch.stack(torch.broadcast_tensors(u[:, None, :], v[:, :, None]), dim=-1)


def roi_resample(
    maps: torch.Tensor,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    size: int,
    *,
    stride: int = 1,
    samples: int = 1,
) -> torch.Tensor:
    """Maps (B, C, h, w) at `stride` input pixels per cell -> (N, C, S, S) over the boxes.

    boxes (N, 4) are in input pixels, batch_index (N,) int64 picks each box's map. With
    samples=1 cell (i, j) is the bilinear sample at roi_pixel_coordinates(boxes)[:, i, j];
    with more, the mean of samples x samples points spread over the cell.
    """
    rois = torch.cat((batch_index[:, None].to(boxes.dtype), boxes), dim=1)
    return roi_align(
        maps, rois, size, spatial_scale=1.0 / stride, sampling_ratio=samples, aligned=True
    )


def roi_points(
    depth: torch.Tensor,
    K: torch.Tensor,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Depth (B, 1, H, W), K (B, 3, 3) -> camera points (N, 3, S, S) of the RoI grid cells.

    Each cell's depth is the bilinear sample at its pixel coordinates (roi_pixel_coordinates),
    back-projected through those coordinates with its image's K.
    """
    count = boxes.shape[0]
    roi_depth = roi_resample(depth, boxes, batch_index, size).reshape(count, size * size)
    uv = roi_pixel_coordinates(boxes, size).reshape(count, size * size, 2)
    points = backproject_pixels(uv, roi_depth, K[batch_index])  # (N, S*S, 3)
    return points.transpose(1, 2).reshape(count, 3, size, size)


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean (N, C) over the pixels of values (N, C, S, S) with weights (N, 1, S, S) >= 0.

    Entries whose weights sum to 0 get the plain mean of all their pixels.
    """
    total = weights.sum(dim=(2, 3))  # (N, 1)
    weights = torch.where(total[..., None, None] > 0, weights, torch.ones_like(weights))
    return (values * weights).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))


def select_category(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-category outputs (N, K, ...) -> the rows (N, ...) of classes labels (N,) in 1..K.

    A gather rather than advanced indexing, so an exported graph keeps N symbolic."""
    trailing = values.shape[2:]
    index = (labels - 1).reshape((-1, 1) + (1,) * len(trailing)).expand((-1, 1, *trailing))
    return values.gather(1, index).squeeze(1)


def procrustes_pose(
    noc: torch.Tensor,
    s: torch.Tensor,
    points: torch.Tensor,
    t_init: torch.Tensor,
    weights: torch.Tensor,
    min_points: int,
) -> PoseSolve:
    """R, t with points ~ R (s * noc) + t by weighted Procrustes around t_init.

    noc (N, 3, S, S), s (N, 3), points (N, 3, S, S), t_init (N, 3), weights (N, 1, S, S) >= 0.
    Solves procrustes_horn(src = s * noc, dst = points - t_init) and returns t = t_init + its
    translation. An entry is valid when the solve is well-posed and at least `min_points`
    weights are > 0; otherwise R = identity and t = t_init.
    """
    # explicit sizes instead of flatten: an exported graph must reshape N = 0 rows too
    count, cells = noc.shape[0], noc.shape[-2] * noc.shape[-1]
    src = noc.reshape(count, 3, cells).transpose(1, 2) * s[:, None, :]  # (N, S*S, 3)
    dst = points.reshape(count, 3, cells).transpose(1, 2) - t_init[:, None, :]
    flat_weights = weights.reshape(count, cells)
    solve = procrustes_horn(src, dst, flat_weights)
    valid = solve.valid & ((flat_weights > 0).sum(dim=1) >= min_points)
    eye = torch.eye(3, dtype=noc.dtype, device=noc.device)
    R = torch.where(valid[:, None, None], solve.R, eye)
    t = t_init + torch.where(valid[:, None], solve.t, torch.zeros_like(solve.t))
    return PoseSolve(R=R, t=t, valid=valid)


def _pixel_mlp(*channels: int) -> nn.Sequential:
    """1 x 1 convolutions with ReLU after each: channels[0] -> ... -> channels[-1]."""
    layers: list[nn.Module] = []
    for c_in, c_out in itertools.pairwise(channels):
        layers += [nn.Conv2d(c_in, c_out, 1), nn.ReLU()]
    return nn.Sequential(*layers)


def _mlp(c_in: int, hidden: int, c_out: int, *, zero_output: bool = False) -> nn.Sequential:
    """Linear - ReLU - Linear; with zero_output the last layer starts at zero."""
    mlp = nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(), nn.Linear(hidden, c_out))
    if zero_output:
        nn.init.zeros_(mlp[-1].weight)
        nn.init.zeros_(mlp[-1].bias)
    return mlp


class AlignmentHead(nn.Module):
    """Depth features and depth of the image, boxes, classes and mask probabilities of the
    detections -> Alignment (see the module docstring)."""

    def __init__(
        self, *, config: AlignmentConfig, feature_channels: int, num_classes: int, roi_size: int
    ):
        super().__init__()
        if len(config.category_scales) != num_classes:
            raise ValueError(
                f"{len(config.category_scales)} category scales for {num_classes} classes"
            )
        self.roi_size = roi_size
        self.num_classes = num_classes
        self.mask_threshold = config.mask_threshold
        self.min_mask_pixels = config.min_mask_pixels
        hidden, code = config.hidden_channels, config.shape_code_dim
        self.register_buffer(
            "category_log_scales", torch.tensor(config.category_scales).log(), persistent=False
        )
        self.pixel_encoder = _pixel_mlp(feature_channels + 3, hidden, hidden)
        self.code_mlp = _mlp(hidden, hidden, code)
        self.scale_head = _mlp(code, hidden, 3 * num_classes, zero_output=True)
        self.offset_head = _mlp(code + 3, hidden, 3 * num_classes, zero_output=True)
        self.noc_code_layer = nn.Linear(code + 3, hidden)
        self.noc_pixel_layer = nn.Conv2d(3, hidden, 1)
        self.noc_mlp = nn.Sequential(
            nn.ReLU(), *_pixel_mlp(hidden, hidden), nn.Conv2d(hidden, 4, 1)
        )

    def forward(
        self,
        depth_features: torch.Tensor,
        depth: torch.Tensor,
        K: torch.Tensor,
        boxes: torch.Tensor,
        batch_index: torch.Tensor,
        labels: torch.Tensor,
        mask_probs: torch.Tensor,
    ) -> Alignment:
        """Align N detections.

        depth_features (B, C, ceil(H/4), ceil(W/4)), depth (B, 1, H, W) metres, K (B, 3, 3),
        boxes (N, 4) pixels, batch_index (N,) int64, labels (N,) int64 in 1..num_classes,
        mask_probs (N, 1, S, S) in [0, 1] on the same RoI grid.
        """
        size, count = self.roi_size, boxes.shape[0]
        if mask_probs.shape != (count, 1, size, size):
            raise ValueError(
                f"mask_probs must have shape ({count}, 1, {size}, {size}), "
                f"got {tuple(mask_probs.shape)}"
            )
        features = roi_resample(
            depth_features, boxes, batch_index, size, stride=FEATURE_STRIDE, samples=2
        )
        points = roi_points(depth, K, boxes, batch_index, size)
        mask = (mask_probs > self.mask_threshold).to(points.dtype)
        centre = masked_mean(points, mask)

        local_points = (points - centre[..., None, None]).detach()
        pixel_features = self.pixel_encoder(torch.cat((features, local_points), dim=1))
        pooled = (pixel_features * mask).amax(dim=(2, 3))  # features are >= 0 (ReLU)
        shape_code = self.code_mlp(pooled)

        log_ratio = select_category(
            self.scale_head(shape_code).unflatten(1, (self.num_classes, 3)), labels
        )
        s = torch.exp(self.category_log_scales[labels - 1] + log_ratio)
        code_and_scale = torch.cat((shape_code, s.detach()), dim=1)
        offset = select_category(
            self.offset_head(code_and_scale).unflatten(1, (self.num_classes, 3)), labels
        )
        t_init = centre + offset

        t_anchor = t_init.detach()
        hidden = self.noc_code_layer(code_and_scale)[..., None, None] + self.noc_pixel_layer(
            (points - t_anchor[..., None, None]).detach()
        )
        output = self.noc_mlp(hidden)
        noc = 0.5 * torch.tanh(output[:, :3])
        weights = torch.sigmoid(output[:, 3:]) * mask
        pose = procrustes_pose(noc, s, points, t_anchor, weights, self.min_mask_pixels)
        return Alignment(
            R=pose.R,
            t=pose.t,
            t_init=t_init,
            s=s,
            noc=noc,
            weights=weights,
            mask=mask,
            points=points,
            shape_code=shape_code,
            valid=pose.valid,
        )
