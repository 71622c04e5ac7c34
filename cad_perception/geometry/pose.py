"""9-DoF similarity poses: rotation R, translation t and per-axis scale s.

A pose maps canonical (NOC) points X to camera points X_cam = R (s * X) + t: the scale acts
first, along the CAD's own axes, then the rotation (column vectors), then the translation. As a
4x4 matrix this is [R diag(s) | t]. Shapes: R (..., 3, 3), t (..., 3), s (..., 3) with s > 0,
points (..., N, 3); leading batch dimensions broadcast.

Two anisotropically scaled similarities do not compose into a 9-DoF pose in general, so the only
composition offered is a rigid motion applied after a pose (`transform_pose`), e.g. moving a pose
from the camera frame into a world frame.
"""

from typing import NamedTuple

import torch

from cad_perception.geometry._checks import check_last_dims


class Pose9D(NamedTuple):
    """A batch of 9-DoF poses X_cam = R (s * X) + t."""

    R: torch.Tensor
    """Rotations (..., 3, 3)."""
    t: torch.Tensor
    """Translations (..., 3), metres."""
    s: torch.Tensor
    """Per-axis scales (..., 3), positive."""


def _check_pose(R: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> None:
    check_last_dims("R", R, (3, 3))
    check_last_dims("t", t, (3,))
    check_last_dims("s", s, (3,))


def apply_pose(
    points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor
) -> torch.Tensor:
    """Canonical points (..., N, 3) -> camera points (..., N, 3): R (s * X) + t."""
    check_last_dims("points", points, (3,))
    _check_pose(R, t, s)
    return (points * s[..., None, :]) @ R.transpose(-1, -2) + t[..., None, :]


def inverse_apply_pose(
    points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor
) -> torch.Tensor:
    """Camera points (..., N, 3) -> canonical points (..., N, 3): s^-1 * R^T (X_cam - t)."""
    check_last_dims("points", points, (3,))
    _check_pose(R, t, s)
    return ((points - t[..., None, :]) @ R) / s[..., None, :]


def pose_to_matrix(R: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Pose (R (..., 3, 3), t (..., 3), s (..., 3)) -> homogeneous matrices (..., 4, 4)."""
    _check_pose(R, t, s)
    block = R * s[..., None, :]  # scales the columns: R diag(s)
    batch = torch.broadcast_shapes(block.shape[:-2], t.shape[:-1])
    top = torch.cat((block.expand(*batch, 3, 3), t[..., None].expand(*batch, 3, 1)), dim=-1)
    bottom = top.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(*batch, 1, 4)
    return torch.cat((top, bottom), dim=-2)


def matrix_to_pose(M: torch.Tensor, atol: float = 1e-4) -> Pose9D:
    """Homogeneous matrices (..., 4, 4) = [R diag(s) | t] -> Pose9D.

    s is the column norms of the 3x3 block and R the block with its columns normalised. Raises
    ValueError on non-finite input, a last row other than (0, 0, 0, 1), a zero scale, a block
    whose normalised columns are not orthonormal within `atol` (shear), or a reflection
    (negative determinant), since none of these is a 9-DoF pose.
    """
    check_last_dims("M", M, (4, 4))
    if not torch.isfinite(M).all():
        raise ValueError("M must be finite, got NaN or inf entries")
    last_row = M.new_tensor([0.0, 0.0, 0.0, 1.0])
    if ((M[..., 3, :] - last_row).abs() > atol).any():
        raise ValueError("M must have last row (0, 0, 0, 1)")
    block = M[..., :3, :3]
    s = block.norm(dim=-2)
    if (s <= 0).any():
        raise ValueError("M has a zero scale (a zero column in its 3x3 block)")
    R = block / s[..., None, :]
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    if ((R.transpose(-1, -2) @ R - eye).abs() > atol).any():
        raise ValueError("M's 3x3 block is not a rotation times a diagonal scale (it shears)")
    if (torch.linalg.det(R) < 0).any():
        raise ValueError("M's 3x3 block is a reflection (negative determinant), not a rotation")
    return Pose9D(R=R, t=M[..., :3, 3], s=s)


def transform_pose(
    R_a: torch.Tensor, t_a: torch.Tensor, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor
) -> Pose9D:
    """The pose followed by the rigid motion X -> R_a X + t_a: (R_a R, R_a t + t_a, s).

    R_a (..., 3, 3) and t_a (..., 3) are rigid; the pose keeps its scale.
    """
    check_last_dims("R_a", R_a, (3, 3))
    check_last_dims("t_a", t_a, (3,))
    _check_pose(R, t, s)
    t_new = (R_a @ t[..., None]).squeeze(-1) + t_a
    return Pose9D(R=R_a @ R, t=t_new, s=s)
