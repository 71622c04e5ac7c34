"""Training losses of the ROCA heads, as free functions of predictions and targets.

Each returns a scalar tensor that stays finite and connected to the graph when there is
nothing to average (no valid pixel, no detection): it is then 0. Mask R-CNN's RPN and box
losses are torchvision's; its mask loss is `mask_loss` on the alignment head's RoI grid.
Rotations act on column vectors; symmetry codes index geometry.rotations.SYMMETRIES.
"""

import torch
from torch.nn.functional import binary_cross_entropy_with_logits, triplet_margin_loss

from cad_perception.geometry.rotations import SYMMETRIES, symmetry_rotations


def _mean(values: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """values.sum() / count, 0 (connected to values) when count is 0."""
    if isinstance(count, torch.Tensor):
        return values.sum() / count.clamp_min(1)
    return values.sum() / max(count, 1)


def depth_loss(depth: torch.Tensor, gt_depth: torch.Tensor) -> torch.Tensor:
    """Mean |depth - gt| over pixels with gt > 0; depth (B, 1, H, W), gt_depth (B, H, W)."""
    valid = gt_depth > 0
    error = (depth[:, 0] - gt_depth).abs()
    return _mean(torch.where(valid, error, torch.zeros_like(error)), valid.sum())


def mask_loss(logits: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of mask logits (N, 1, S, S) against GT masks in [0, 1] sampled
    on the same RoI grids (Mask R-CNN's mask loss)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return binary_cross_entropy_with_logits(logits, gt_mask.to(logits.dtype))


def noc_loss(noc: torch.Tensor, gt_noc: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid pixels of the L1 distance sum_xyz |noc - gt_noc| (as ROCA).

    noc, gt_noc (N, 3, S, S); valid (N, 1, S, S) bool. Invalid pixels may hold anything.
    """
    error = (noc - gt_noc).abs().sum(dim=1, keepdim=True)
    return _mean(torch.where(valid, error, torch.zeros_like(error)), valid.sum())


def scale_loss(s: torch.Tensor, gt_s: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of log scales (N, 3), i.e. of relative scale errors, summed over xyz."""
    return _mean((s.log() - gt_s.log()).abs(), s.shape[0])


def translation_loss(t: torch.Tensor, gt_t: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance (metres) between translations (N, 3), ROCA's 'l2_loss'."""
    return _mean(torch.linalg.vector_norm(t - gt_t, dim=-1), t.shape[0])


def symmetry_rotation_table(
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All symmetry rotations by code: table (4, M, 3, 3) and used (4, M) bool.

    Row c holds symmetry_rotations(SYMMETRIES[c]) padded with identities to the longest (inf).
    """
    rotations = [symmetry_rotations(sym, dtype=torch.float64) for sym in SYMMETRIES]
    most = max(len(r) for r in rotations)
    table = torch.eye(3, dtype=torch.float64).repeat(len(SYMMETRIES), most, 1, 1)
    used = torch.zeros(len(SYMMETRIES), most, dtype=torch.bool)
    for code, group in enumerate(rotations):
        table[code, : len(group)] = group
        used[code, : len(group)] = True
    return table.to(dtype=dtype, device=device), used.to(device)


def rotation_loss(
    R: torch.Tensor, gt_R: torch.Tensor, symmetry: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Symmetry-aware L1 between rotation matrices, over the valid entries.

    R, gt_R (N, 3, 3); symmetry (N,) int64 codes into SYMMETRIES; valid (N,) bool (entries
    whose R came from a well-posed Procrustes solve). Per entry, the mean absolute difference
    of the 9 matrix elements between R and the closest equivalent GT pose gt_R @ S over the
    GT model's symmetry rotations S about y (ROCA's loss_proc, made symmetry-aware).
    """
    table, used = symmetry_rotation_table(R.dtype, R.device)
    candidates = gt_R[:, None] @ table[symmetry]  # (N, M, 3, 3)
    errors = (R[:, None] - candidates).abs().mean(dim=(-2, -1))  # (N, M)
    errors = torch.where(used[symmetry], errors, torch.full_like(errors, torch.inf))
    best = errors.min(dim=1).values
    return _mean(torch.where(valid, best, torch.zeros_like(best)), valid.sum())


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> torch.Tensor:
    """Mean of max(0, |a - p| - |a - n| + margin) over embeddings (N, D) (Euclidean)."""
    if anchor.shape[0] == 0:
        return anchor.sum() * 0.0
    return triplet_margin_loss(anchor, positive, negative, margin=margin)


def completion_loss(logits: torch.Tensor, gt_grids: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of occupancy logits (N, G, G, G) against bool grids."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return binary_cross_entropy_with_logits(logits, gt_grids.to(logits.dtype))
