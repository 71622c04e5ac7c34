"""The network's inference output: one flat named tuple of tensors, the exported graph's outputs.

For B images of H x W pixels with N detections in total (all images together, in image order),
S = RocaConfig.roi_size and D = RetrievalConfig.embedding_dim. Per-detection tensors refer to
RoI grids: cell (i, j) of a detection lies at image pixel
alignment_head.roi_pixel_coordinates(boxes)[:, i, j]; pasting masks into the full image is
post-processing outside the network.
"""

from typing import NamedTuple

import torch


class RocaOutput(NamedTuple):
    """Detections with their 9-DoF poses, NOCs and retrieval embeddings, plus image depth."""

    boxes: torch.Tensor
    """(N, 4) float32 (x0, y0, x1, y1) in input pixels (pixel-edge coordinates)."""
    scores: torch.Tensor
    """(N,) float32 detection confidence."""
    classes: torch.Tensor
    """(N,) int64 class id 1..num_classes: RocaConfig.categories[class - 1]."""
    batch_index: torch.Tensor
    """(N,) int64 image of each detection."""
    masks: torch.Tensor
    """(N, 1, S, S) float32 mask probability on the detection's RoI grid."""
    R: torch.Tensor
    """(N, 3, 3) float32 rotation of X_cam = R (s * X_noc) + t (identity when not valid)."""
    t: torch.Tensor
    """(N, 3) float32 translation in metres, camera optical frame."""
    s: torch.Tensor
    """(N, 3) float32 per-axis scale in metres."""
    alignment_valid: torch.Tensor
    """(N,) bool: R and t come from a well-posed Procrustes solve (else t is the initial
    translation)."""
    noc: torch.Tensor
    """(N, 3, S, S) float32 predicted NOC of every RoI cell (meaningful on the mask)."""
    embeddings: torch.Tensor
    """(N, D) float32 unit retrieval embedding, compared with the CAD embeddings of the
    detected category by Euclidean distance."""
    depth: torch.Tensor
    """(B, 1, H, W) float32 predicted z-depth in metres."""


OUTPUT_NAMES: tuple[str, ...] = RocaOutput._fields
"""Output names in order, e.g. for the exported graph."""
