"""Weighted rigid Procrustes: the rotation and translation that best map one point set onto another.

Given source points src (B, N, 3), destination points dst (B, N, 3) and weights (B, N), both
solvers return the R (B, 3, 3) in SO(3) and t (B, 3) minimising

    sum_i w_i |R src_i + t - dst_i|^2

with column vectors (dst_i ~ R src_i + t; for row-stacked points, dst ~ src @ R^T + t).

Two solvers share one problem statement and one degeneracy rule:

- `procrustes_svd`: SVD of the weighted cross-covariance in float64 with the reflection fix
  (Umeyama / Kabsch). The reference; use it for training and offline work.
- `procrustes_horn`: Horn's unit-quaternion method with the top eigenvector of the 4x4 matrix
  found by repeated squaring and power iteration, in the input dtype, using only matmuls and
  elementwise ops, so it exports to ONNX opset 17 (SVD and eigh do not) and runs in TensorRT.

Weights are clamped at 0 (a negative weight acts as weight 0); checking their sign instead
would put a data-dependent branch into exported graphs.

Degeneracy rule (identical in both solvers). The problem has a unique solution iff the weighted
cross-covariance S = sum_i w_i (src_i - src_mean)(dst_i - dst_mean)^T / sum_i w_i has rank >= 2:
then both centred point sets span at least a plane, and the rotation is pinned down (rank 2 is
enough because R must be proper). Rank < 2 is detected without eigh from the cofactor matrix of
S, whose squared Frobenius norm is s1^2 s2^2 + s1^2 s3^2 + s2^2 s3^2 for singular values
s1 >= s2 >= s3, so |cof(S)|_F / |S|_F^2 is about s2 / s1. An entry is valid iff that ratio
exceeds MIN_SPREAD_RATIO and at least MIN_EFFECTIVE_POINTS weights exceed WEIGHT_EPS. S holds
second moments, so s2 / s1 is about the squared ratio of the point sets' second to first
extent: the default 1e-4 rejects clouds thinner than about 1 % of their length. Above it the
float32 Horn solver stays within about 0.1 degree of the float64 SVD (its error grows like
float32 eps / (s2 / s1)) and its squarings converge with a wide margin. Invalid entries (all-zero
weights, fewer than 3 weighted points, coincident or collinear points) get R = identity,
t = 0 and valid = False, never NaN, and their gradients are zero.
"""

from typing import NamedTuple

import torch

from cad_perception.geometry._checks import check_last_dims
from cad_perception.geometry.rotations import quaternion_to_matrix

WEIGHT_EPS = 1e-8
"""Points with weight at or below this do not count towards MIN_EFFECTIVE_POINTS."""

MIN_EFFECTIVE_POINTS = 3
"""Fewest points with weight > WEIGHT_EPS for a valid solve."""

MIN_SPREAD_RATIO = 1e-4
"""Smallest accepted |cof(S)|_F / |S|_F^2 (about s2 / s1 of the cross-covariance S)."""

DIVISION_EPS = 1e-12
"""Lower bound on every denominator, so that no division produces inf or NaN."""

HORN_SQUARINGS = 24
"""Renormalised squarings of the shifted Horn matrix: it is raised to the power 2^24."""

HORN_POWER_ITERATIONS = 4
"""Power iterations with the shifted Horn matrix after the squarings."""


class ProcrustesResult(NamedTuple):
    """A batch of rigid transforms dst ~ R src + t and whether each solve was well-posed."""

    R: torch.Tensor
    """Rotations (B, 3, 3), identity where not valid."""
    t: torch.Tensor
    """Translations (B, 3), zero where not valid."""
    valid: torch.Tensor
    """(B,) bool: False for degenerate inputs (see the module docstring)."""


def _check_inputs(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor) -> None:
    check_last_dims("src", src, (3,))
    check_last_dims("dst", dst, (3,))
    if src.dim() != 3 or src.shape != dst.shape:
        raise ValueError(
            f"src and dst must both have shape (B, N, 3), got {tuple(src.shape)} and "
            f"{tuple(dst.shape)}"
        )
    if not isinstance(weights, torch.Tensor) or weights.shape != src.shape[:2]:
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights)
        raise ValueError(f"weights must have shape {tuple(src.shape[:2])} (B, N), got {shape}")
    if not src.is_floating_point() or src.dtype != dst.dtype:
        raise ValueError(f"src and dst must share a floating dtype, got {src.dtype}, {dst.dtype}")


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross products (..., 3) of a, b (..., 3), written out (exports to ONNX)."""
    a0, a1, a2 = torch.unbind(a, dim=-1)
    b0, b1, b2 = torch.unbind(b, dim=-1)
    return torch.stack((a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), dim=-1)


def _has_rank_two(S: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether S (B, 3, 3) has rank >= 2 (relative to MIN_SPREAD_RATIO)."""
    r0, r1, r2 = torch.unbind(S, dim=-2)
    cofactors = torch.stack((_cross(r1, r2), _cross(r2, r0), _cross(r0, r1)), dim=-2)
    cofactor_norm = cofactors.square().sum(dim=(-2, -1)).sqrt()
    return cofactor_norm > MIN_SPREAD_RATIO * S.square().sum(dim=(-2, -1))


class _CentredProblem(NamedTuple):
    src_mean: torch.Tensor  # (B, 3)
    dst_mean: torch.Tensor  # (B, 3)
    covariance: torch.Tensor  # (B, 3, 3): S[a, b] = sum_i w_i src_i[a] dst_i[b] / sum_i w_i
    valid: torch.Tensor  # (B,) bool


def _centre(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor) -> _CentredProblem:
    """Weighted centroids and cross-covariance of the centred points, and the validity rule."""
    weights = weights.clamp_min(0.0)
    total = weights.sum(dim=-1, keepdim=True)  # (B, 1)
    normalised = (weights / total.clamp_min(DIVISION_EPS))[..., None]  # (B, N, 1)
    src_mean = (normalised * src).sum(dim=-2)
    dst_mean = (normalised * dst).sum(dim=-2)
    covariance = (normalised * (src - src_mean[:, None])).transpose(-1, -2) @ (
        dst - dst_mean[:, None]
    )
    enough_points = (weights > WEIGHT_EPS).sum(dim=-1) >= MIN_EFFECTIVE_POINTS
    valid = enough_points & _has_rank_two(covariance)
    return _CentredProblem(src_mean, dst_mean, covariance, valid)


def _finish(problem: _CentredProblem, R: torch.Tensor) -> ProcrustesResult:
    """Translation t = dst_mean - R src_mean, and identity / zero where not valid."""
    valid = problem.valid
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    R = torch.where(valid[:, None, None], R, eye)
    t = problem.dst_mean - (R @ problem.src_mean[..., None])[..., 0]
    t = torch.where(valid[:, None], t, torch.zeros_like(t))
    return ProcrustesResult(R, t, valid)


def procrustes_svd(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor) -> ProcrustesResult:
    """Weighted rigid Procrustes by SVD in float64 (Kabsch / Umeyama with the reflection fix).

    src, dst: (B, N, 3) of one floating dtype; weights: (B, N), clamped at 0. Returns
    ProcrustesResult(R (B, 3, 3), t (B, 3), valid (B,)) in the dtype of src. Not exportable to
    ONNX (torch.linalg.svd); use `procrustes_horn` there. Gradients are exact but, as for any
    SVD, grow without bound as two singular values of the cross-covariance approach each other.
    """
    _check_inputs(src, dst, weights)
    problem = _centre(src.double(), dst.double(), weights.to(torch.float64))
    # Degenerate entries solve a harmless stand-in, so the SVD backward sees distinct
    # singular values and no NaN reaches the gradients through torch.where.
    stand_in = torch.diag(src.new_tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    S = torch.where(problem.valid[:, None, None], problem.covariance, stand_in)
    # S = U diag(s) V^T; maximising trace(R S) over SO(3) gives R = V diag(1, 1, d) U^T.
    U, _, Vh = torch.linalg.svd(S)
    V = Vh.transpose(-1, -2)
    d = torch.where(torch.linalg.det(V @ U.transpose(-1, -2)) < 0, -1.0, 1.0).detach()
    signs = torch.stack((torch.ones_like(d), torch.ones_like(d), d), dim=-1)  # (B, 3)
    R = (V * signs[:, None, :]) @ U.transpose(-1, -2)
    result = _finish(problem, R)
    return ProcrustesResult(result.R.to(src.dtype), result.t.to(src.dtype), result.valid)


def _horn_matrix(S: torch.Tensor) -> torch.Tensor:
    """Cross-covariance S (B, 3, 3) -> Horn's symmetric matrix (B, 4, 4).

    Its eigenvector of largest eigenvalue is the unit quaternion (w, x, y, z) of the rotation
    maximising trace(R S) (Horn, "Closed-form solution of absolute orientation using unit
    quaternions", JOSA A 1987).
    """
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = (torch.unbind(r, -1) for r in S.unbind(-2))
    rows = (
        sxx + syy + szz, syz - szy, szx - sxz, sxy - syx,
        syz - szy, sxx - syy - szz, sxy + syx, szx + sxz,
        szx - sxz, sxy + syx, syy - sxx - szz, syz + szy,
        sxy - syx, szx + sxz, syz + szy, szz - sxx - syy,
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(S.shape[0], 4, 4)


def _top_eigenvector(N: torch.Tensor) -> torch.Tensor:
    """Unit eigenvector (B, 4) of the largest eigenvalue of symmetric N (B, 4, 4), eigh-free.

    A = (N + |N|_F I) / (2 |N|_F) has the same eigenvectors with eigenvalues in [0, 1], so it is
    positive semi-definite and its largest eigenvalue is the largest of N. Squaring A
    HORN_SQUARINGS times (rescaled to max |entry| 1 each time) leaves about the rank-one
    projector onto the top eigenvector; its column of largest norm is refined by
    HORN_POWER_ITERATIONS power iterations with A.
    """
    eye = torch.eye(4, dtype=N.dtype, device=N.device)
    norm = N.square().sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(DIVISION_EPS)
    A = (N + norm * eye) / (2 * norm)
    M = A
    for _ in range(HORN_SQUARINGS):
        M = M @ M
        M = M / M.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(DIVISION_EPS)
    largest = M.square().sum(dim=-2).argmax(dim=-1)  # (B,) index of the largest column
    one_hot = (torch.arange(4, device=N.device) == largest[:, None]).to(N.dtype)  # (B, 4)
    v = M @ one_hot[..., None]  # (B, 4, 1)
    for _ in range(HORN_POWER_ITERATIONS):
        v = v / v.square().sum(dim=-2, keepdim=True).sqrt().clamp_min(DIVISION_EPS)
        v = A @ v
    return v[..., 0] / v.square().sum(dim=(-2, -1)).sqrt().clamp_min(DIVISION_EPS)[:, None]


def procrustes_horn(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor
) -> ProcrustesResult:
    """Weighted rigid Procrustes by Horn's quaternion method, exportable to ONNX opset 17.

    src, dst: (B, N, 3) of one floating dtype; weights: (B, N), clamped at 0. Returns
    ProcrustesResult(R (B, 3, 3), t (B, 3), valid (B,)), computed in the dtype of src with
    matmuls, reductions, argmax and elementwise ops only (no SVD, eigh or det). In float32 it
    agrees with `procrustes_svd` to about 1e-4 degree on well-spread points and to about 0.1
    degree on the thinnest valid ones; `valid` is decided by the same rule. Its gradients are
    those of the eigenvector it converged to, i.e. they match `procrustes_svd`'s.
    """
    _check_inputs(src, dst, weights)
    problem = _centre(src, dst, weights.to(src.dtype))
    N = _horn_matrix(problem.covariance)
    # Degenerate entries use a stand-in whose top eigenvector is the identity quaternion, so no
    # zero norm is divided by and no NaN reaches the gradients through torch.where.
    stand_in = torch.diag(src.new_tensor([3.0, -1.0, -1.0, -1.0]))
    N = torch.where(problem.valid[:, None, None], N, stand_in)
    R = quaternion_to_matrix(_top_eigenvector(N))
    return _finish(problem, R)
