import math

import pytest
import torch

from cad_perception.eval.errors import EmptyGroundTruthError
from cad_perception.eval.records import AlignmentRecord
from cad_perception.eval.scan2cad import (
    AlignmentScore,
    CategoryScore,
    Thresholds,
    greedy_matches,
    score_alignments,
)
from cad_perception.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_quaternion,
)

F64 = torch.float64
R_GT = axis_angle_to_matrix(torch.tensor([0.4, -1.1, 0.7], dtype=F64))
"""A generic GT orientation, so that a symmetry applied about the wrong axis shows."""
T_GT = (0.3, -0.2, 2.5)


def record(
    *,
    scene: str = "scene0",
    category: str = "chair",
    cad_id: str = "cad0",
    t: tuple[float, float, float] = T_GT,
    R: torch.Tensor = R_GT,
    s: tuple[float, float, float] = (0.8, 1.0, 0.6),
    sym: str = "none",
    score: float | None = None,
) -> AlignmentRecord:
    q = tuple(matrix_to_quaternion(R).tolist())
    return AlignmentRecord(scene, category, cad_id, t, q, s, sym, score)  # type: ignore[arg-type]


def pred(score: float = 0.9, **fields) -> AlignmentRecord:
    return record(score=score, **fields)


def turned(axis: tuple[float, float, float], deg: float) -> torch.Tensor:
    """R_GT followed by a turn about `axis` of the CAD's own frame."""
    axis_angle = torch.tensor(axis, dtype=F64) * math.radians(deg)
    return R_GT @ axis_angle_to_matrix(axis_angle)


def shifted(dx: float) -> tuple[float, float, float]:
    return (T_GT[0] + dx, T_GT[1], T_GT[2])


def correct(predictions, ground_truth, thresholds=None) -> int:
    return score_alignments(predictions, ground_truth, thresholds).overall.correct


# --- single prediction against single GT ---

Y, X = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)
SINGLE_CASES = {
    "exact": ({}, {}, 1),
    "rot2 table turned 180 about y": (dict(R=turned(Y, 180)), dict(sym="rot2"), 1),
    "chair (none) turned 180 about y": (dict(R=turned(Y, 180)), dict(sym="none"), 0),
    "rot4 turned 90 about y": (dict(R=turned(Y, 90)), dict(sym="rot4"), 1),
    "rot2 turned 90 about y": (dict(R=turned(Y, 90)), dict(sym="rot2"), 0),
    "inf turned 37 about y": (dict(R=turned(Y, 37)), dict(sym="inf"), 1),
    "none turned 37 about y": (dict(R=turned(Y, 37)), dict(sym="none"), 0),
    "inf tilted 25 about x": (dict(R=turned(X, 25)), dict(sym="inf"), 0),
    "rotation 19 deg": (dict(R=turned((0.6, 0.0, 0.8), 19)), {}, 1),
    "rotation 21 deg": (dict(R=turned((0.6, 0.0, 0.8), 21)), {}, 0),
    "translation 0.19 m": (dict(t=shifted(0.19)), {}, 1),
    "translation 0.21 m": (dict(t=shifted(0.21)), {}, 0),
    "scale 19% larger": (dict(s=(0.8 * 1.19, 1.19, 0.6 * 1.19)), {}, 1),
    "scale 21% larger": (dict(s=(0.8 * 1.21, 1.21, 0.6 * 1.21)), {}, 0),
    "scale 19% smaller": (dict(s=(0.8 * 0.81, 0.81, 0.6 * 0.81)), {}, 1),
    "scale 21% smaller": (dict(s=(0.8 * 0.79, 0.79, 0.6 * 0.79)), {}, 0),
    "scale off on one axis, mean within": (dict(s=(0.8 * 1.45, 1.0, 0.6)), {}, 1),
    "wrong category": (dict(category="table"), {}, 0),
    "other scene": (dict(scene="scene1"), {}, 0),
}


@pytest.mark.parametrize(
    ("pred_fields", "gt_fields", "expected"), SINGLE_CASES.values(), ids=SINGLE_CASES
)
def test_single_prediction(pred_fields, gt_fields, expected):
    assert correct([pred(**pred_fields)], [record(**gt_fields)]) == expected


def test_symmetry_of_the_ground_truth_is_used():
    # The prediction's own symmetry label does not matter; the GT's does.
    assert correct([pred(R=turned(Y, 180), sym="rot2")], [record(sym="none")]) == 0
    assert correct([pred(R=turned(Y, 180), sym="none")], [record(sym="rot2")]) == 1


def test_thresholds_are_options():
    far = [pred(t=shifted(0.25), R=turned(X, 25), s=(1.0, 1.25, 0.75))]
    assert correct(far, [record()]) == 0
    assert correct(far, [record()], Thresholds(translation_m=0.3, rotation_deg=30, scale=0.3)) == 1
    assert correct(far, [record()], Thresholds(translation_m=0.3, rotation_deg=30)) == 0


# --- matching ---


def test_duplicate_predictions_count_once():
    # Two GTs, only the first of which the (identical) predictions align with.
    gts = [record(), record(t=shifted(2.0))]
    assert correct([pred(0.9), pred(0.9)], gts) == 1


def test_duplicate_predictions_of_a_single_gt_are_capped():
    score = score_alignments([pred(0.9), pred(0.8)], [record()])
    assert score.per_class["chair"] == CategoryScore(correct=1, retrieval_correct=1, total=1)


def test_per_scene_cap_drops_the_lowest_scoring_prediction():
    gts = [record(), record(t=shifted(2.0))]
    preds = [pred(0.9), pred(0.8, t=shifted(-3.0)), pred(0.7, t=shifted(2.0))]
    assert correct(preds, gts) == 1  # the third would match the second GT, but is capped
    assert correct([preds[0], preds[2]], gts) == 2


def test_cap_counts_per_scene_and_category():
    # A chair in another scene or a table does not use up this scene's chair quota.
    gts = [record(), record(scene="scene1"), record(category="table")]
    preds = [pred(0.9), pred(0.8, scene="scene1"), pred(0.7, category="table")]
    assert correct(preds, gts) == 3


def test_higher_score_takes_the_ground_truth_first():
    # GT 0 and GT 1 are 0.15 m apart; the high-score prediction aligns with both and takes the
    # first, the low-score one only with GT 0, which is then taken.
    gts = [record(), record(t=shifted(0.15))]
    low, high = pred(0.3, t=shifted(-0.1)), pred(0.9, t=shifted(0.07))
    assert correct([low, high], gts) == 1
    assert correct([high, low], gts) == 1


def test_greedy_matches_first_free_column_in_row_order():
    accepted = torch.tensor(
        [[True, True, False], [True, False, False], [True, True, True], [False, True, False]]
    )
    assert greedy_matches(accepted) == [0, None, 1, None]
    assert greedy_matches(torch.zeros(0, 2, dtype=torch.bool)) == []
    with pytest.raises(ValueError):
        greedy_matches(torch.ones(3, dtype=torch.bool))


# --- averages ---


def unbalanced_score() -> AlignmentScore:
    """chair: 3 of 3 right; table: 0 of 1; predictions of a bed, which has no GT."""
    gts = [record(t=shifted(d)) for d in (0.0, 1.0, 2.0)] + [record(category="table")]
    preds = [pred(t=shifted(d)) for d in (0.0, 1.0, 2.0)]
    preds += [pred(category="table", t=shifted(1.0)), pred(category="bed")]
    return score_alignments(preds, gts)


def test_class_and_instance_averages_differ_on_unbalanced_categories():
    score = unbalanced_score()
    assert list(score.per_class) == ["chair", "table"]  # no bed: it has no GT
    assert score.per_class["chair"].accuracy == 100.0
    assert score.per_class["table"].accuracy == 0.0
    assert score.class_avg == pytest.approx(50.0)
    assert score.instance_avg == pytest.approx(75.0)


def test_category_without_predictions_counts_as_zero():
    gts = [record(), record(category="sofa"), record(category="sofa", scene="scene1")]
    score = score_alignments([pred()], gts)
    assert score.per_class["sofa"] == CategoryScore(correct=0, retrieval_correct=0, total=2)
    assert score.class_avg == pytest.approx(50.0)
    assert score.instance_avg == pytest.approx(100 / 3)


def test_empty_ground_truth_is_an_error():
    with pytest.raises(EmptyGroundTruthError):
        score_alignments([pred()], [])


def test_prediction_without_score_is_rejected():
    with pytest.raises(ValueError, match="scores"):
        score_alignments([record()], [record()])


# --- retrieval-aware ---


def test_retrieval_needs_the_right_cad_id():
    gts = [record(cad_id="a"), record(cad_id="b", t=shifted(1.0))]
    preds = [pred(cad_id="a"), pred(cad_id="x", t=shifted(1.0))]
    chair = score_alignments(preds, gts).per_class["chair"]
    assert chair == CategoryScore(correct=2, retrieval_correct=1, total=2)
    assert chair.retrieval_accuracy == pytest.approx(50.0)


def test_retrieval_is_its_own_greedy_pass():
    # Both predictions align with both GTs. The alignment pass pairs them in order (0-0, 1-1)
    # with the CAD ids crossed; the retrieval pass lets each find the GT with its own CAD.
    gts = [record(cad_id="a"), record(cad_id="b", t=shifted(0.1))]
    preds = [pred(0.9, cad_id="b", t=shifted(0.05)), pred(0.8, cad_id="a", t=shifted(0.05))]
    score = score_alignments(preds, gts)
    assert score.per_class["chair"] == CategoryScore(correct=2, retrieval_correct=2, total=2)


def test_retrieval_averages():
    gts = [record(cad_id="a"), record(cad_id="b", t=shifted(1.0))]
    gts += [record(category="table", cad_id="t"), record(category="table", t=shifted(1.0))]
    gts += [record(category="table", t=shifted(2.0)), record(category="table", t=shifted(3.0))]
    preds = [pred(cad_id="a"), pred(cad_id="a", t=shifted(1.0))]
    preds += [
        pred(category="table", cad_id="t"),
        pred(category="table", cad_id="z", t=shifted(1.0)),
    ]
    score = score_alignments(preds, gts)
    assert score.per_class["chair"] == CategoryScore(correct=2, retrieval_correct=1, total=2)
    assert score.per_class["table"] == CategoryScore(correct=2, retrieval_correct=1, total=4)
    assert score.class_avg == pytest.approx((100 + 50) / 2)
    assert score.retrieval_class_avg == pytest.approx((50 + 25) / 2)
    assert score.instance_avg == pytest.approx(100 * 4 / 6)
    assert score.retrieval_instance_avg == pytest.approx(100 * 2 / 6)


def test_to_json():
    assert unbalanced_score().to_json() == {
        "class_avg": 50.0,
        "instance_avg": 75.0,
        "retrieval_class_avg": 50.0,
        "retrieval_instance_avg": 75.0,
        "per_class": {
            "chair": {"correct": 3, "retrieval_correct": 3, "total": 3, "accuracy": 100.0,
                      "retrieval_accuracy": 100.0},
            "table": {"correct": 0, "retrieval_correct": 0, "total": 1, "accuracy": 0.0,
                      "retrieval_accuracy": 0.0},
        },
        "thresholds": {"translation_m": 0.2, "rotation_deg": 20.0, "scale": 0.2},
    }  # fmt: skip


def test_default_thresholds_are_scan2cad():
    assert Thresholds() == Thresholds(translation_m=0.2, rotation_deg=20.0, scale=0.2)
    with pytest.raises(ValueError):
        Thresholds(scale=-1.0)
