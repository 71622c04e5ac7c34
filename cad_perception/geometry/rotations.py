"""Rotation representations and distances.

Rotation matrices act on column vectors (X' = R X). Quaternions are (w, x, y, z), unit norm,
canonicalised to w >= 0. Axis-angle vectors are axis * angle (radians, right-hand rule). The
6D representation (Zhou et al., CVPR 2019) is the first two COLUMNS of R, concatenated:
(R[:, 0], R[:, 1]). All functions accept arbitrary leading batch dimensions.
"""

import math

import torch
from torch.nn.functional import normalize

from cad_perception.geometry._checks import check_last_dims

SYMMETRIES = ("none", "rot2", "rot4", "inf")
"""Symmetry labels of a CAD model about its canonical y axis."""

INF_SYMMETRY_STEP_DEG = 10.0
"""Sampling step of continuous (inf) symmetry, as in the Scan2CAD evaluation."""


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) as (w, x, y, z) -> rotation matrices (..., 3, 3).

    The input is normalised first, so any non-zero quaternion is accepted.
    """
    check_last_dims("q", q, (4,))
    w, x, y, z = torch.unbind(q / q.norm(dim=-1, keepdim=True), dim=-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape((*q.shape[:-1], 3, 3))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z), w >= 0.

    Uses the numerically best of the four Shepperd candidates per matrix.
    """
    check_last_dims("R", R, (3, 3))
    m = R.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # 4 * (w^2, x^2, y^2, z^2) from the trace and diagonal, clamped against round-off.
    squares = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        dim=-1,
    )
    roots = torch.sqrt(squares.clamp_min(1e-12))  # (M, 4) = 2 * |component|
    d21, d12 = m[:, 2, 1], m[:, 1, 2]
    d02, d20 = m[:, 0, 2], m[:, 2, 0]
    d10, d01 = m[:, 1, 0], m[:, 0, 1]
    # Candidate k is computed with component k as pivot; each row is 4 * pivot * q.
    candidates = torch.stack(
        [
            torch.stack([squares[:, 0], d21 - d12, d02 - d20, d10 - d01], dim=-1),
            torch.stack([d21 - d12, squares[:, 1], d10 + d01, d02 + d20], dim=-1),
            torch.stack([d02 - d20, d10 + d01, squares[:, 2], d21 + d12], dim=-1),
            torch.stack([d10 - d01, d20 + d02, d21 + d12, squares[:, 3]], dim=-1),
        ],
        dim=1,
    ) / (2 * roots[..., None])
    best = squares.argmax(dim=-1)
    q = candidates[torch.arange(m.shape[0], device=R.device), best]
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    return q.reshape((*R.shape[:-2], 4))


def rotation_about_y(angle: torch.Tensor) -> torch.Tensor:
    """Angles (...,) in radians -> rotations (..., 3, 3) about the +y axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = (c, zero, s, zero, one, zero, -s, zero, c)
    return torch.stack(rows, dim=-1).reshape((*angle.shape, 3, 3))


def symmetry_rotations(sym: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The rotations (M, 3, 3) about the CAD's y axis that leave a model of symmetry `sym` alike.

    none -> identity only (M=1); rot2 -> 0, 180 deg (M=2); rot4 -> multiples of 90 deg (M=4);
    inf -> every INF_SYMMETRY_STEP_DEG degrees (M=36). The identity is always first.
    """
    counts = {"none": 1, "rot2": 2, "rot4": 4, "inf": round(360.0 / INF_SYMMETRY_STEP_DEG)}
    if sym not in counts:
        raise ValueError(f"unknown symmetry {sym!r}: expected one of {', '.join(SYMMETRIES)}")
    n = counts[sym]
    angles = torch.arange(n, dtype=dtype) * (2 * math.pi / n)
    return rotation_about_y(angles)


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle in radians (...,) of the relative rotation R1^T R2 for R1, R2 (..., 3, 3).

    Computed with atan2 of the skew and trace parts, so it is accurate near 0 and pi.
    """
    check_last_dims("R1", R1, (3, 3))
    check_last_dims("R2", R2, (3, 3))
    rel = R1.transpose(-1, -2) @ R2
    trace = rel.diagonal(dim1=-2, dim2=-1).sum(-1)
    skew = torch.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0],
         rel[..., 1, 0] - rel[..., 0, 1]],
        dim=-1,
    )  # fmt: skip
    return torch.atan2(skew.norm(dim=-1), trace - 1)


def symmetric_geodesic_angle(R_pred: torch.Tensor, R_gt: torch.Tensor, sym: str) -> torch.Tensor:
    """Rotation error (...,) in radians minimised over the GT model's symmetry rotations.

    R_pred, R_gt: (..., 3, 3). The GT pose R_gt is equivalent to R_gt @ S for every symmetry
    rotation S of its CAD model about y (poses map canonical points, so S acts first).
    """
    S = symmetry_rotations(sym, dtype=R_gt.dtype).to(R_gt.device)  # (M, 3, 3)
    alternatives = R_gt[..., None, :, :] @ S  # (..., M, 3, 3)
    return geodesic_angle(R_pred[..., None, :, :], alternatives).min(dim=-1).values


def _cross_product_matrix(v: torch.Tensor) -> torch.Tensor:
    """Vectors (..., 3) -> skew-symmetric matrices (..., 3, 3) with [v]_x w = v x w."""
    x, y, z = torch.unbind(v, dim=-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape((*v.shape[:-1], 3, 3))


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors (..., 3) -> rotation matrices (..., 3, 3) by Rodrigues' formula.

    R = I + sin(a)/a K + (1 - cos a)/a^2 K^2 with a = |axis_angle| and K its cross-product
    matrix. Both coefficients are written with sinc, so the result (and its gradient) is exact
    at and near a = 0.
    """
    check_last_dims("axis_angle", axis_angle, (3,))
    angle = axis_angle.norm(dim=-1)[..., None, None]
    K = _cross_product_matrix(axis_angle)
    # torch.sinc(x) = sin(pi x) / (pi x); (1 - cos a) / a^2 = 0.5 * (sin(a/2) / (a/2))^2.
    sin_coef = torch.sinc(angle / math.pi)
    cos_coef = 0.5 * torch.sinc(angle / (2 * math.pi)) ** 2
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sin_coef * K + cos_coef * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> axis-angle vectors (..., 3) with angle in [0, pi].

    Goes through the Shepperd quaternion (accurate at every angle, including 0 and pi). At
    exactly pi both axis signs describe the same rotation; either may be returned.
    """
    q = matrix_to_quaternion(R)
    w, v = q[..., :1], q[..., 1:]
    half_angle = torch.atan2(v.norm(dim=-1, keepdim=True), w)  # in [0, pi/2] since w >= 0
    # v = sin(a/2) * axis, so axis * a = 2 v / sinc(a/2); sinc(a/2) >= 2/pi on [0, pi].
    return 2 * v / torch.sinc(half_angle / math.pi)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D rotations (..., 6) -> rotation matrices (..., 3, 3) by Gram-Schmidt (Zhou et al.).

    d6 = (a1, a2) holds the first two columns before orthonormalisation: column 0 is a1 / |a1|,
    column 1 is a2 made orthogonal to column 0 and normalised, column 2 = column 0 x column 1.
    Any d6 with a1 and a2 linearly independent gives a proper rotation.
    """
    check_last_dims("d6", d6, (6,))
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = normalize(a1, dim=-1)
    b2 = normalize(a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rotation_6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> 6D rotations (..., 6): first two columns concatenated."""
    check_last_dims("R", R, (3, 3))
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def random_rotations(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """`n` rotation matrices (n, 3, 3) drawn uniformly (Haar measure) from SO(3).

    Normalised 4D Gaussian vectors are uniform on the unit 3-sphere, and unit quaternions cover
    SO(3) uniformly. Pass a seeded (CPU) `generator` for reproducible draws.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return quaternion_to_matrix(torch.randn(n, 4, generator=generator, dtype=dtype))
