import math

import pytest
import torch

from cad_perception.eval.errors import InvalidRecordError
from cad_perception.eval.nms import NmsThresholds, nms_3d
from cad_perception.eval.records import AlignmentRecord
from cad_perception.geometry.rotations import axis_angle_to_matrix, matrix_to_quaternion

F64 = torch.float64
R0 = axis_angle_to_matrix(torch.tensor([0.4, -1.1, 0.7], dtype=F64))
"""A generic orientation, so that a symmetry applied about the wrong axis shows."""
T0 = (0.3, -0.2, 2.5)
S0 = (0.8, 1.0, 0.6)


def turned(axis: tuple[float, float, float], deg: float) -> torch.Tensor:
    """R0 followed by a turn about `axis` of the CAD's own frame."""
    return R0 @ axis_angle_to_matrix(torch.tensor(axis, dtype=F64) * math.radians(deg))


def pred(
    score: float,
    *,
    scene: str = "scene0",
    category: str = "chair",
    dx: float = 0.0,
    R: torch.Tensor = R0,
    scale: float = 1.0,
    sym: str = "none",
    cad_id: str = "cad0",
) -> AlignmentRecord:
    t = (T0[0] + dx, T0[1], T0[2])
    q = tuple(matrix_to_quaternion(R).tolist())
    s = tuple(scale * v for v in S0)
    return AlignmentRecord(scene, category, cad_id, t, q, s, sym, score)  # type: ignore[arg-type]


Y, X = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)


def test_near_duplicates_merge_keeping_the_higher_score():
    high = pred(0.9)
    low = pred(0.6, dx=0.35, R=turned(X, 50), scale=1.2, cad_id="other")
    assert nms_3d([low, high]) == [high]
    assert nms_3d([high, low]) == [high]


@pytest.mark.parametrize(
    "fields",
    [
        dict(category="table"),
        dict(scene="scene1"),
        dict(dx=0.45),
        dict(R=turned(X, 65)),
        dict(scale=0.55),  # |mean(s_kept / s) - 1| = 1 / 0.55 - 1 = 0.82
    ],
    ids=["other category", "other scene", "0.45 m apart", "65 deg apart", "scale 0.55"],
)
def test_distinct_predictions_are_kept(fields):
    high, low = pred(0.9), pred(0.6, **fields)
    assert nms_3d([low, high]) == [high, low]


def test_scale_difference_is_relative_to_the_kept_prediction():
    # ROCA's scale_ratio(kept, other) = |mean(s_kept / s_other) - 1|.
    assert nms_3d([pred(0.9, scale=0.5), pred(0.6, scale=1.0)]) == [pred(0.9, scale=0.5)]  # 0.5
    assert len(nms_3d([pred(0.9, scale=1.0), pred(0.6, scale=0.5)])) == 2  # |2 - 1| = 1


def test_rotation_uses_the_symmetry_of_the_kept_prediction():
    kept_rot2 = [pred(0.9, sym="rot2"), pred(0.6, R=turned(Y, 180), sym="none")]
    assert nms_3d(kept_rot2) == kept_rot2[:1]
    kept_none = [pred(0.9, sym="none"), pred(0.6, R=turned(Y, 180), sym="rot2")]
    assert nms_3d(kept_none) == kept_none


def test_symmetry_is_about_the_cad_axis():
    turned_in_camera_frame = axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0], dtype=F64)) @ R0
    predictions = [pred(0.9, sym="rot2"), pred(0.6, R=turned_in_camera_frame, sym="rot2")]
    assert nms_3d(predictions) == predictions


def test_suppressed_predictions_suppress_nothing():
    # b duplicates a, c duplicates b but not a: a and c survive.
    a, b, c = pred(0.9), pred(0.8, dx=0.3), pred(0.7, dx=0.6)
    assert nms_3d([c, b, a]) == [a, c]


def test_output_is_in_descending_score_order_with_ties_in_input_order():
    first, second = pred(0.5, category="sofa"), pred(0.5, category="bed")
    top = pred(0.95, category="table")
    assert nms_3d([first, second, top]) == [top, first, second]


def test_thresholds_are_options():
    high, low = pred(0.9), pred(0.6, dx=0.45)
    assert nms_3d([high, low], NmsThresholds(translation_m=0.5)) == [high]
    assert NmsThresholds() == NmsThresholds(translation_m=0.4, rotation_deg=60.0, scale=0.6)


def test_prediction_without_score_is_rejected():
    unscored = AlignmentRecord("scene0", "chair", "c", T0, (1.0, 0.0, 0.0, 0.0), S0, "none")
    with pytest.raises(InvalidRecordError, match=r"^prediction 1: NMS needs a score") as info:
        nms_3d([pred(0.9), unscored])
    assert (info.value.index, info.value.field) == (1, "score")


def test_no_predictions():
    assert nms_3d([]) == []
