import math

import pytest
import torch

from cad_perception.eval.pose_errors import (
    PoseErrors,
    PoseThresholds,
    pairwise_pose_errors,
    rotation_errors_deg,
    scale_errors,
    translation_errors,
)
from cad_perception.geometry.pose import Pose9D
from cad_perception.geometry.rotations import (
    axis_angle_to_matrix,
    random_rotations,
    rotation_about_y,
    symmetric_geodesic_angle,
)

F64 = torch.float64
R_GT = axis_angle_to_matrix(torch.tensor([0.4, -1.1, 0.7], dtype=F64))
"""A generic ground-truth orientation, so that symmetry applied on the wrong side shows."""


def about_y(deg: float) -> torch.Tensor:
    return rotation_about_y(torch.tensor(math.radians(deg), dtype=F64))


def about_x(deg: float) -> torch.Tensor:
    return axis_angle_to_matrix(torch.tensor([math.radians(deg), 0.0, 0.0], dtype=F64))


def test_translation_errors_known_answer():
    t_a = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], dtype=F64)
    t_b = torch.tensor([[3.0, 4.0, 0.0]], dtype=F64)
    torch.testing.assert_close(
        translation_errors(t_a, t_b), torch.tensor([[5.0], [math.sqrt(12)]], dtype=F64)
    )


def test_scale_errors_are_relative_to_the_reference():
    s_a = torch.tensor([[2.0, 1.0, 1.0]], dtype=F64)
    s_b = torch.tensor([[1.0, 1.0, 1.0]], dtype=F64)
    torch.testing.assert_close(scale_errors(s_a, s_b), torch.tensor([[1 / 3]], dtype=F64))
    torch.testing.assert_close(scale_errors(s_b, s_a), torch.tensor([[1 / 6]], dtype=F64))


@pytest.mark.parametrize(
    ("sym", "turn_deg", "expected_deg"),
    [
        ("none", 180, 180),
        ("rot2", 180, 0),
        ("rot2", 90, 90),
        ("rot4", 90, 0),
        ("rot4", 270, 0),
        ("rot4", 100, 10),
        ("inf", 37, 3),  # the nearest 10-degree sample is 40
        ("none", 37, 37),
    ],
)
def test_rotation_error_about_the_symmetry_axis(sym, turn_deg, expected_deg):
    # The CAD is turned about its own (canonical) y axis: R_gt @ R_y, not R_y @ R_gt.
    R_pred = (R_GT @ about_y(turn_deg))[None]
    error = rotation_errors_deg(R_pred, R_GT[None], [sym])
    torch.testing.assert_close(
        error, torch.tensor([[float(expected_deg)]], dtype=F64), atol=1e-9, rtol=0
    )


def test_symmetry_is_about_the_cad_axis_not_the_camera_axis():
    R_pred = (about_y(180) @ R_GT)[None]  # turned about the camera's y axis
    assert rotation_errors_deg(R_pred, R_GT[None], ["rot2"]).item() > 20


def test_inf_symmetry_does_not_forgive_tilt():
    R_pred = (R_GT @ about_x(30) @ about_y(120))[None]
    torch.testing.assert_close(rotation_errors_deg(R_pred, R_GT[None], ["inf"]).item(), 30.0)


def test_mixed_symmetries_match_per_column_evaluation():
    generator = torch.Generator().manual_seed(0)
    R_a = random_rotations(5, generator, dtype=F64)
    R_b = random_rotations(6, generator, dtype=F64)
    syms = ["rot2", "none", "inf", "rot2", "rot4", "none"]
    errors = rotation_errors_deg(R_a, R_b, syms)
    for j, sym in enumerate(syms):
        expected = torch.rad2deg(symmetric_geodesic_angle(R_a, R_b[j].expand(5, 3, 3), sym))
        torch.testing.assert_close(errors[:, j], expected)


def test_pairwise_pose_errors_shapes_and_values():
    a = Pose9D(R=R_GT.expand(2, 3, 3), t=torch.tensor([[0, 0, 1.0], [0, 0, 2.0]], dtype=F64),
               s=torch.ones(2, 3, dtype=F64))  # fmt: skip
    b = Pose9D(R=(R_GT @ about_x(10)).expand(3, 3, 3), t=torch.zeros(3, 3, dtype=F64),
               s=torch.full((3, 3), 2.0, dtype=F64))  # fmt: skip
    errors = pairwise_pose_errors(a, b, ["none"] * 3)
    assert all(e.shape == (2, 3) for e in errors)
    torch.testing.assert_close(errors.translation[:, 0], torch.tensor([1.0, 2.0], dtype=F64))
    torch.testing.assert_close(errors.rotation_deg, torch.full((2, 3), 10.0, dtype=F64))
    torch.testing.assert_close(errors.scale, torch.full((2, 3), 0.5, dtype=F64))


def test_empty_sets_give_empty_matrices():
    empty = torch.zeros(0, 3, 3, dtype=F64)
    assert rotation_errors_deg(empty, R_GT[None], ["none"]).shape == (0, 1)
    assert translation_errors(torch.zeros(0, 3), torch.zeros(4, 3)).shape == (0, 4)


@pytest.mark.parametrize(
    "call",
    [
        lambda: translation_errors(torch.zeros(3), torch.zeros(2, 3)),
        lambda: translation_errors(torch.zeros(1, 2, 3), torch.zeros(2, 3)),
        lambda: scale_errors(torch.ones(2, 3), torch.ones(2, 4)),
        lambda: rotation_errors_deg(R_GT[None], R_GT[None], ["none", "none"]),
        lambda: rotation_errors_deg(R_GT[None], R_GT[None], ["rot3"]),
    ],
)
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_thresholds_are_inclusive_and_need_all_three():
    thresholds = PoseThresholds(translation_m=0.2, rotation_deg=20.0, scale=0.2)
    errors = PoseErrors(
        translation=torch.tensor([[0.2, 0.2, 0.2, 0.3]]),
        rotation_deg=torch.tensor([[20.0, 20.0, 21.0, 0.0]]),
        scale=torch.tensor([[0.2, 0.25, 0.0, 0.0]]),
    )
    assert thresholds.accept(errors).tolist() == [[True, False, False, False]]


@pytest.mark.parametrize("bad", [-0.1, math.nan, "0.2"])
def test_thresholds_reject_invalid_values(bad):
    with pytest.raises(ValueError, match="threshold rotation_deg"):
        PoseThresholds(translation_m=0.2, rotation_deg=bad, scale=0.2)


def test_thresholds_are_frozen_and_keyword_only():
    thresholds = PoseThresholds(translation_m=0.2, rotation_deg=20.0, scale=0.2)
    with pytest.raises(AttributeError):
        thresholds.scale = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        PoseThresholds(0.2, 20.0, 0.2)  # type: ignore[misc]
