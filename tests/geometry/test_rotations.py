import math

import pytest
import torch

from cad_perception.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    random_rotations,
    rotation_6d_to_matrix,
    rotation_about_y,
    symmetric_geodesic_angle,
    symmetry_rotations,
)

F64 = torch.float64
EYE = torch.eye(3, dtype=F64)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_unit_vectors(n: int, seed: int) -> torch.Tensor:
    v = torch.randn(n, 3, generator=seeded(seed), dtype=F64)
    return v / v.norm(dim=-1, keepdim=True)


def assert_rotations(R: torch.Tensor, atol: float = 1e-10) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype))


# --- known answers: +90 deg about y maps x to -z and z to x (right-hand rule) ---

X_AXIS = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
Z_AXIS = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
QUARTER_TURN_Y = [
    rotation_about_y(torch.tensor(math.pi / 2, dtype=F64)),
    axis_angle_to_matrix(torch.tensor([0.0, math.pi / 2, 0.0], dtype=F64)),
    quaternion_to_matrix(
        torch.tensor([math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0], dtype=F64)
    ),
]


@pytest.mark.parametrize("R", QUARTER_TURN_Y, ids=["about_y", "axis_angle", "quaternion"])
def test_quarter_turn_about_y_maps_x_to_minus_z(R):
    torch.testing.assert_close(R @ X_AXIS, -Z_AXIS, atol=1e-15, rtol=0)
    torch.testing.assert_close(R @ Z_AXIS, X_AXIS, atol=1e-15, rtol=0)


def test_quarter_turn_about_z_maps_x_to_y():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64))
    torch.testing.assert_close(
        R @ X_AXIS, torch.tensor([0.0, 1.0, 0.0], dtype=F64), atol=1e-15, rtol=0
    )


# --- quaternions ---


def test_matrix_quaternion_round_trip_with_w_nonnegative():
    q = torch.randn(500, 4, generator=seeded(0), dtype=F64)
    q = q / q.norm(dim=-1, keepdim=True)
    q_back = matrix_to_quaternion(quaternion_to_matrix(q))
    assert (q_back[:, 0] >= 0).all()
    torch.testing.assert_close(q_back, torch.where(q[:, :1] < 0, -q, q), atol=1e-12, rtol=0)
    torch.testing.assert_close(quaternion_to_matrix(-q), quaternion_to_matrix(q))


def test_matrix_to_quaternion_half_turns():
    axes = random_unit_vectors(50, seed=1)
    R = axis_angle_to_matrix(math.pi * axes)
    q = matrix_to_quaternion(R)
    torch.testing.assert_close(q[:, 0], torch.zeros(50, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(quaternion_to_matrix(q), R, atol=1e-12, rtol=0)


def test_matrix_to_quaternion_keeps_batch_shape():
    R = random_rotations(6, generator=seeded(2), dtype=F64).reshape(2, 3, 3, 3)
    assert matrix_to_quaternion(R).shape == (2, 3, 4)


# --- axis-angle ---


def test_axis_angle_matches_quaternion_formula():
    axes = random_unit_vectors(200, seed=3)
    angles = torch.rand(200, 1, generator=seeded(4), dtype=F64) * math.pi
    q = torch.cat((torch.cos(angles / 2), torch.sin(angles / 2) * axes), dim=-1)
    torch.testing.assert_close(axis_angle_to_matrix(axes * angles), quaternion_to_matrix(q))


def test_axis_angle_round_trip():
    axes = random_unit_vectors(500, seed=5)
    angles = torch.rand(500, 1, generator=seeded(6), dtype=F64) * (math.pi - 1e-3)
    v = axes * angles
    torch.testing.assert_close(matrix_to_axis_angle(axis_angle_to_matrix(v)), v, atol=1e-12, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-8, 1e-5])
def test_axis_angle_near_zero(angle):
    v = angle * random_unit_vectors(20, seed=7)
    R = axis_angle_to_matrix(v)
    skew = torch.zeros(20, 3, 3, dtype=F64)
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    skew = skew - skew.transpose(-1, -2)
    # First-order Rodrigues, exact to O(angle^2).
    torch.testing.assert_close(R, EYE + skew, atol=angle**2 + 1e-15, rtol=0)
    v_back = matrix_to_axis_angle(R)
    assert torch.isfinite(v_back).all()
    torch.testing.assert_close(v_back, v, atol=1e-15 + 1e-8 * angle, rtol=0)


def test_axis_angle_gradients_finite_at_zero():
    v = torch.zeros(3, dtype=F64, requires_grad=True)
    axis_angle_to_matrix(v).sum().backward()
    assert torch.isfinite(v.grad).all()
    R = torch.eye(3, dtype=F64, requires_grad=True)
    matrix_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()


@pytest.mark.parametrize("offset", [0.0, 1e-9, 1e-6, 1e-3])
def test_axis_angle_near_pi(offset):
    axes = random_unit_vectors(50, seed=8)
    angle = math.pi - offset
    R = axis_angle_to_matrix(angle * axes)
    v_back = matrix_to_axis_angle(R)
    torch.testing.assert_close(v_back.norm(dim=-1), torch.full((50,), angle, dtype=F64))
    torch.testing.assert_close(axis_angle_to_matrix(v_back), R, atol=1e-12, rtol=0)
    # Up to the sign ambiguity at exactly pi, the axis is recovered.
    alignment = (v_back / v_back.norm(dim=-1, keepdim=True) * axes).sum(-1)
    expected = alignment.abs() if offset == 0.0 else alignment
    torch.testing.assert_close(expected, torch.ones(50, dtype=F64))


# --- 6D ---


def test_rotation_6d_round_trip_uses_columns():
    R = random_rotations(200, generator=seeded(9), dtype=F64)
    d6 = matrix_to_rotation_6d(R)
    torch.testing.assert_close(d6[:, :3], R[:, :, 0])
    torch.testing.assert_close(d6[:, 3:], R[:, :, 1])
    torch.testing.assert_close(rotation_6d_to_matrix(d6), R)


def test_rotation_6d_gram_schmidt_of_arbitrary_input():
    d6 = torch.randn(200, 6, generator=seeded(10), dtype=F64)
    R = rotation_6d_to_matrix(d6)
    assert_rotations(R)
    a1, a2 = d6[:, :3], d6[:, 3:]
    torch.testing.assert_close(R[:, :, 0], a1 / a1.norm(dim=-1, keepdim=True))
    # The second column lies in the plane of a1 and a2, on a2's side of a1.
    normal = torch.linalg.cross(a1, a2, dim=-1)
    torch.testing.assert_close((R[:, :, 1] * normal).sum(-1), torch.zeros(200, dtype=F64))
    assert ((R[:, :, 1] * a2).sum(-1) > 0).all()


# --- random rotations ---


def test_random_rotations_are_rotations_and_reproducible():
    R = random_rotations(100, generator=seeded(11), dtype=F64)
    assert R.shape == (100, 3, 3) and R.dtype == F64
    assert_rotations(R)
    torch.testing.assert_close(random_rotations(100, generator=seeded(11), dtype=F64), R)
    assert random_rotations(4).dtype == torch.float32


def test_random_rotations_are_uniform():
    R = random_rotations(20000, generator=seeded(12), dtype=F64)
    # Haar measure: E[R] = 0 and the angle has density (1 - cos a) / pi, mean pi/2 + 2/pi.
    assert R.mean(dim=0).abs().max() < 0.03
    mean_angle = geodesic_angle(EYE, R).mean().item()
    assert abs(mean_angle - (math.pi / 2 + 2 / math.pi)) < 0.02


# --- existing functions: symmetries and distances ---


@pytest.mark.parametrize(("sym", "count"), [("none", 1), ("rot2", 2), ("rot4", 4), ("inf", 36)])
def test_symmetry_rotations_about_y(sym, count):
    S = symmetry_rotations(sym)
    assert S.shape == (count, 3, 3)
    assert_rotations(S)
    torch.testing.assert_close(S[0], EYE)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    torch.testing.assert_close(S @ y, y.expand(count, 3))
    angles = geodesic_angle(EYE, S)
    expected = torch.arange(count, dtype=F64) * (2 * math.pi / count)
    torch.testing.assert_close(angles, torch.minimum(expected, 2 * math.pi - expected))


def test_symmetry_rotations_rejects_unknown():
    with pytest.raises(ValueError, match="unknown symmetry"):
        symmetry_rotations("rot3")


def test_symmetric_geodesic_angle():
    R_gt = random_rotations(10, generator=seeded(13), dtype=F64)
    half_turn = R_gt @ rotation_about_y(torch.tensor(math.pi, dtype=F64))
    zeros, pis = torch.zeros(10, dtype=F64), torch.full((10,), math.pi, dtype=F64)
    torch.testing.assert_close(
        symmetric_geodesic_angle(half_turn, R_gt, "rot2"), zeros, atol=1e-7, rtol=0
    )
    torch.testing.assert_close(symmetric_geodesic_angle(half_turn, R_gt, "none"), pis)
    quarter_turn = R_gt @ rotation_about_y(torch.tensor(math.pi / 2, dtype=F64))
    torch.testing.assert_close(
        symmetric_geodesic_angle(quarter_turn, R_gt, "rot4"), zeros, atol=1e-7, rtol=0
    )
    torch.testing.assert_close(symmetric_geodesic_angle(quarter_turn, R_gt, "rot2"), pis / 2)
    # inf is sampled every 10 deg: 37 deg about y is 3 deg from the nearest sample.
    turn_37 = R_gt @ rotation_about_y(torch.tensor(math.radians(37), dtype=F64))
    torch.testing.assert_close(
        symmetric_geodesic_angle(turn_37, R_gt, "inf"),
        torch.full((10,), math.radians(3), dtype=F64),
    )


def test_geodesic_angle_tiny_and_large():
    R = random_rotations(50, generator=seeded(14), dtype=F64)
    axes = random_unit_vectors(50, seed=15)
    for angle in (1e-4, 1e-7, 1.0, math.pi - 1e-6):
        delta = axis_angle_to_matrix(angle * axes)
        torch.testing.assert_close(
            geodesic_angle(R, R @ delta), torch.full((50,), angle, dtype=F64), atol=0, rtol=1e-8
        )


@pytest.mark.parametrize(
    ("function", "shape"),
    [
        (quaternion_to_matrix, (5, 3)),
        (matrix_to_quaternion, (5, 3, 4)),
        (axis_angle_to_matrix, (5, 4)),
        (matrix_to_axis_angle, (3,)),
        (rotation_6d_to_matrix, (5, 9)),
        (matrix_to_rotation_6d, (5, 2, 3)),
    ],
)
def test_bad_shapes_raise(function, shape):
    with pytest.raises(ValueError, match="must have shape"):
        function(torch.zeros(shape))


def test_geodesic_angle_bad_shape_raises():
    with pytest.raises(ValueError, match="R2 must have shape"):
        geodesic_angle(torch.eye(3), torch.eye(4))
