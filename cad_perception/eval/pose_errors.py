"""Pairwise differences between two sets of 9-DoF poses, as Scan2CAD and ROCA measure them.

For poses a (A of them) and b (B of them), every function returns an (A, B) matrix whose entry
[i, j] compares a[i] with b[j], where b plays the reference (ground-truth) role:
- translation: ||t_a - t_b||, metres;
- rotation: the geodesic angle between R_a and R_b, minimised over the symmetry rotations of b's
  CAD model about its y axis (R_b ~ R_b S), degrees;
- scale: |mean(s_a / s_b) - 1|, the mean taken over the three axes.
Poses follow DESIGN.md (X = R (s * X_cad) + t, column vectors).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch

from cad_perception.geometry._checks import check_last_dims
from cad_perception.geometry.pose import Pose9D
from cad_perception.geometry.rotations import symmetric_geodesic_angle


class PoseErrors(NamedTuple):
    """Pairwise errors between poses a and reference poses b, each (A, B)."""

    translation: torch.Tensor
    """Translation distance, metres."""
    rotation_deg: torch.Tensor
    """Symmetry-aware rotation angle, degrees."""
    scale: torch.Tensor
    """Relative scale error |mean(s_a / s_b) - 1|."""


def translation_errors(t_a: torch.Tensor, t_b: torch.Tensor) -> torch.Tensor:
    """Translations t_a (A, 3), t_b (B, 3) -> distances (A, B)."""
    _check_matrix("t_a", t_a, (3,))
    _check_matrix("t_b", t_b, (3,))
    return (t_a[:, None, :] - t_b[None, :, :]).norm(dim=-1)


def rotation_errors_deg(R_a: torch.Tensor, R_b: torch.Tensor, sym_b: Sequence[str]) -> torch.Tensor:
    """Rotations R_a (A, 3, 3), R_b (B, 3, 3), symmetries of b (B,) -> angles (A, B) in degrees.

    Entry [i, j] is min over S in symmetry_rotations(sym_b[j]) of angle(R_a[i], R_b[j] S). The
    minimum is the same if the symmetry is applied to R_a[i] instead (the symmetry rotations
    form a group), so only whose symmetry label is used matters.
    """
    _check_matrix("R_a", R_a, (3, 3))
    _check_matrix("R_b", R_b, (3, 3))
    if len(sym_b) != R_b.shape[0]:
        raise ValueError(
            f"sym_b must hold one label per pose of b ({R_b.shape[0]}), got {len(sym_b)}"
        )
    angles = R_a.new_empty(R_a.shape[0], R_b.shape[0])
    for sym in set(sym_b):
        columns = torch.tensor([j for j, label in enumerate(sym_b) if label == sym])
        angle = symmetric_geodesic_angle(R_a[:, None], R_b[None, columns], sym)
        angles[:, columns] = torch.rad2deg(angle)
    return angles


def scale_errors(s_a: torch.Tensor, s_b: torch.Tensor) -> torch.Tensor:
    """Scales s_a (A, 3), s_b (B, 3), positive -> |mean(s_a / s_b) - 1| (A, B)."""
    _check_matrix("s_a", s_a, (3,))
    _check_matrix("s_b", s_b, (3,))
    return ((s_a[:, None, :] / s_b[None, :, :]).mean(dim=-1) - 1).abs()


def pairwise_pose_errors(a: Pose9D, b: Pose9D, sym_b: Sequence[str]) -> PoseErrors:
    """All three errors between poses a (A,) and reference poses b (B,) with b's symmetries."""
    return PoseErrors(
        translation=translation_errors(a.t, b.t),
        rotation_deg=rotation_errors_deg(a.R, b.R, sym_b),
        scale=scale_errors(a.s, b.s),
    )


@dataclass(frozen=True, kw_only=True)
class PoseThresholds:
    """Upper bounds (inclusive) on the three pose errors; subclasses give protocol defaults."""

    translation_m: float
    """Largest translation distance, metres."""
    rotation_deg: float
    """Largest symmetry-aware rotation angle, degrees."""
    scale: float
    """Largest relative scale error |mean(s / s_ref) - 1|."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"threshold {f.name} must be a number >= 0, got {value!r}")

    def accept(self, errors: PoseErrors) -> torch.Tensor:
        """Boolean (A, B): which pairs are within all three thresholds."""
        return (
            (errors.translation <= self.translation_m)
            & (errors.rotation_deg <= self.rotation_deg)
            & (errors.scale <= self.scale)
        )


def _check_matrix(name: str, tensor: torch.Tensor, dims: tuple[int, ...]) -> None:
    check_last_dims(name, tensor, dims)
    if tensor.dim() != len(dims) + 1:
        expected = ", ".join(["N"] + [str(d) for d in dims])
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(tensor.shape)}")
