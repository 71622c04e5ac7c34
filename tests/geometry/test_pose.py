import math

import pytest
import torch

from cad_perception.geometry.pose import (
    Pose9D,
    apply_pose,
    inverse_apply_pose,
    matrix_to_pose,
    pose_to_matrix,
    transform_pose,
)
from cad_perception.geometry.rotations import random_rotations, rotation_about_y

F64 = torch.float64


def random_pose(batch: int, seed: int) -> Pose9D:
    g = torch.Generator().manual_seed(seed)
    R = random_rotations(batch, generator=g, dtype=F64)
    t = torch.randn(batch, 3, generator=g, dtype=F64)
    s = torch.rand(batch, 3, generator=g, dtype=F64) * 2 + 0.1
    return Pose9D(R, t, s)


def random_points(batch: int, n: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64) - 0.5


def test_apply_pose_known_answer():
    R = rotation_about_y(torch.tensor([math.pi / 2], dtype=F64))  # x -> -z, z -> x
    t = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    s = torch.tensor([[2.0, 3.0, 4.0]], dtype=F64)
    X = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]], dtype=F64)
    # s * X = (2, 3, 4) -> R: (4, 3, -2) -> + t; (2, 0, 0) -> (0, 0, -2) -> + t
    expected = torch.tensor([[[5.0, 5.0, 1.0], [1.0, 2.0, 1.0]]], dtype=F64)
    torch.testing.assert_close(apply_pose(X, R, t, s), expected)
    torch.testing.assert_close(inverse_apply_pose(expected, R, t, s), X)


def test_apply_then_inverse_round_trip():
    pose = random_pose(8, seed=0)
    X = random_points(8, 100, seed=1)
    X_cam = apply_pose(X, *pose)
    assert X_cam.shape == (8, 100, 3)
    torch.testing.assert_close(inverse_apply_pose(X_cam, *pose), X)
    # scale acts along the canonical axes before rotating: distances along x scale by s_x
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    moved = apply_pose(torch.stack([0 * ex, ex]).expand(8, 2, 3), *pose)
    torch.testing.assert_close((moved[:, 1] - moved[:, 0]).norm(dim=-1), pose.s[:, 0])


def test_pose_to_matrix_acts_like_apply_pose():
    pose = random_pose(8, seed=2)
    X = random_points(8, 20, seed=3)
    M = pose_to_matrix(*pose)
    assert M.shape == (8, 4, 4)
    torch.testing.assert_close(M[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64).expand(8, 4))
    homogeneous = torch.cat((X, torch.ones(8, 20, 1, dtype=F64)), dim=-1)
    torch.testing.assert_close((homogeneous @ M.transpose(-1, -2))[..., :3], apply_pose(X, *pose))


def test_matrix_to_pose_round_trip():
    pose = random_pose(50, seed=4)
    back = matrix_to_pose(pose_to_matrix(*pose))
    assert isinstance(back, Pose9D)
    for recovered, original in zip(back, pose, strict=True):
        torch.testing.assert_close(recovered, original)
    M = pose_to_matrix(*pose)
    torch.testing.assert_close(pose_to_matrix(*matrix_to_pose(M)), M)
    # float32 input round-trips within the default tolerance
    matrix_to_pose(M.float())


def test_pose_to_matrix_broadcasts_shared_scale():
    pose = random_pose(4, seed=5)
    M = pose_to_matrix(pose.R, pose.t, pose.s[0])
    torch.testing.assert_close(M, pose_to_matrix(pose.R, pose.t, pose.s[0].expand(4, 3)))


def corrupted_matrix(case: str) -> torch.Tensor:
    M = pose_to_matrix(*random_pose(3, seed=6))
    if case == "reflection":
        M[1, :3, 2] *= -1
    elif case == "nan":
        M[2, 0, 3] = float("nan")
    elif case == "shear":
        M[0, :3, 1] += 0.1 * M[0, :3, 0]
    elif case == "last_row":
        M[0, 3, 0] = 0.5
    elif case == "zero_scale":
        M[2, :3, 0] = 0.0
    return M


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("reflection", "reflection"),
        ("nan", "finite"),
        ("shear", "shears"),
        ("last_row", "last row"),
        ("zero_scale", "zero scale"),
    ],
)
def test_matrix_to_pose_rejects_non_poses(case, message):
    with pytest.raises(ValueError, match=message):
        matrix_to_pose(corrupted_matrix(case))


def test_transform_pose_equals_rigid_motion_after_pose():
    pose = random_pose(6, seed=7)
    rigid = random_pose(6, seed=8)
    X = random_points(6, 30, seed=9)
    moved = transform_pose(rigid.R, rigid.t, *pose)
    expected = apply_pose(X, *pose) @ rigid.R.transpose(-1, -2) + rigid.t[:, None]
    torch.testing.assert_close(apply_pose(X, *moved), expected)
    torch.testing.assert_close(moved.s, pose.s)


def test_bad_shapes_raise():
    pose = random_pose(2, seed=10)
    X = random_points(2, 5, seed=11)
    with pytest.raises(ValueError, match="points must have shape"):
        apply_pose(X[..., :2], *pose)
    with pytest.raises(ValueError, match="R must have shape"):
        inverse_apply_pose(X, pose.R[..., :2], pose.t, pose.s)
    with pytest.raises(ValueError, match="s must have shape"):
        pose_to_matrix(pose.R, pose.t, pose.s[..., None])
    with pytest.raises(ValueError, match="M must have shape"):
        matrix_to_pose(torch.eye(3))
    with pytest.raises(ValueError, match="t_a must have shape"):
        transform_pose(pose.R, pose.t[..., :2], *pose)
