import json
import math

import pytest
import torch

from cad_perception.eval.errors import InvalidRecordError, RecordFileError
from cad_perception.eval.records import (
    AlignmentRecord,
    load_ground_truth,
    load_predictions,
    parse_ground_truth,
    parse_predictions,
    stack_poses,
)


def raw_record(**changes) -> dict:
    record = {
        "scene": "scene0000_00",
        "category": "chair",
        "cad_id": "abc123",
        "t": [0.5, -0.25, 2],
        "q": [1, 0, 0, 0],
        "s": [0.5, 1.0, 0.75],
        "sym": "none",
        "score": 0.9,
    }
    record.update(changes)
    return record


def without(field: str) -> dict:
    record = raw_record()
    del record[field]
    return record


def test_parse_prediction_keeps_every_field_as_float_tuples():
    (record,) = parse_predictions([raw_record()])
    assert record == AlignmentRecord(
        scene="scene0000_00",
        category="chair",
        cad_id="abc123",
        t=(0.5, -0.25, 2.0),
        q=(1.0, 0.0, 0.0, 0.0),
        s=(0.5, 1.0, 0.75),
        sym="none",
        score=0.9,
    )
    assert all(isinstance(v, float) for v in record.t)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ([2, 0, 0, 0], (1.0, 0.0, 0.0, 0.0)),
        ([0, 0, 3, 4], (0.0, 0.0, 0.6, 0.8)),
        ([-1, 1, -1, 1], (0.5, -0.5, 0.5, -0.5)),  # w < 0 flips the sign (same rotation)
    ],
)
def test_quaternions_are_normalised_with_non_negative_w(q, expected):
    (record,) = parse_predictions([raw_record(q=q)])
    assert record.q == pytest.approx(expected, abs=1e-15)


def test_score_is_optional_for_ground_truth_and_kept_when_given():
    records = parse_ground_truth([without("score"), raw_record(score=1)])
    assert [r.score for r in records] == [None, 1.0]


def test_unknown_keys_are_ignored():
    (record,) = parse_predictions([raw_record(frame=12, note="x")])
    assert record == parse_predictions([raw_record()])[0]


def test_to_json_round_trips():
    records = parse_predictions([raw_record(), raw_record(q=[0, 0, 3, 4], sym="inf")])
    assert parse_predictions([r.to_json() for r in records]) == records
    gt = parse_ground_truth([without("score")])
    assert "score" not in gt[0].to_json()
    assert parse_ground_truth([r.to_json() for r in gt]) == gt


LIST3 = "must be a list of 3 finite numbers"
INVALID_FIELDS = [
    ("q", [1, 0], "must be a list of 4 finite numbers, got [1, 0]"),
    ("t", [0, 0, math.nan], f"{LIST3}, got [0, 0, nan]"),
    ("t", [0, 0, math.inf], f"{LIST3}, got [0, 0, inf]"),
    ("t", [0, True, 1], f"{LIST3}, got [0, True, 1]"),
    ("t", [0, "1", 1], f"{LIST3}, got [0, '1', 1]"),
    ("t", "0 0 1", f"{LIST3}, got '0 0 1'"),
    ("q", [0, 0, 0, 0], "must be a quaternion of non-zero norm, got [0, 0, 0, 0]"),
    ("s", [1, -1, 1], "must be a list of 3 positive numbers, got [1, -1, 1]"),
    ("s", [1, 0, 1], "must be a list of 3 positive numbers, got [1, 0, 1]"),
    ("sym", "rot3", "must be one of none, rot2, rot4, inf, got 'rot3'"),
    ("sym", ["none"], "must be one of none, rot2, rot4, inf, got ['none']"),
    ("score", math.nan, "must be a finite number, got nan"),
    ("score", "high", "must be a finite number, got 'high'"),
    ("score", None, "must be a finite number, got None"),
    ("scene", "", "must be a non-empty string, got ''"),
    ("category", 3, "must be a non-empty string, got 3"),
    ("cad_id", None, "must be a non-empty string, got None"),
]


@pytest.mark.parametrize(("field", "value", "problem"), INVALID_FIELDS)
def test_invalid_field_names_the_index_and_field(field, value, problem):
    with pytest.raises(InvalidRecordError) as info:
        parse_predictions([raw_record(), raw_record(**{field: value}), raw_record()])
    assert str(info.value) == f"prediction 1: field {field!r} {problem}"
    assert (info.value.index, info.value.field) == (1, field)


@pytest.mark.parametrize("field", ["scene", "category", "cad_id", "t", "q", "s", "sym", "score"])
def test_missing_field_names_the_index_and_field(field):
    with pytest.raises(InvalidRecordError) as info:
        parse_predictions([raw_record(), raw_record(), without(field)])
    assert str(info.value) == f"prediction 2: missing field {field!r}"
    assert (info.value.index, info.value.field) == (2, field)


def test_int_beyond_float_range_is_not_finite():
    with pytest.raises(InvalidRecordError, match=r"^prediction 0: field 't' must be a list of 3"):
        parse_predictions([raw_record(t=[0, 0, 10**400])])


def test_ground_truth_errors_say_ground_truth():
    with pytest.raises(
        InvalidRecordError, match=r"^ground truth 0: field 'score' must be a finite"
    ):
        parse_ground_truth([raw_record(score=None)])


def test_long_values_are_shortened_in_messages():
    with pytest.raises(InvalidRecordError) as info:
        parse_predictions([raw_record(t=list(range(100)))])
    assert len(str(info.value)) < 150 and str(info.value).endswith("...")


@pytest.mark.parametrize(
    ("record", "got"), [([1, 2], "list"), ("chair", "string"), (None, "null"), (3, "number")]
)
def test_record_that_is_not_an_object_is_rejected(record, got):
    with pytest.raises(
        InvalidRecordError, match=rf"^prediction 0: must be a JSON object, got {got}$"
    ):
        parse_predictions([record])


@pytest.mark.parametrize(("data", "got"), [({"records": []}, "object"), ("x", "string")])
def test_top_level_must_be_a_list(data, got):
    with pytest.raises(InvalidRecordError, match=rf"^predictions must be a JSON list .*got {got}$"):
        parse_predictions(data)
    with pytest.raises(InvalidRecordError, match=r"^ground truth must be a JSON list"):
        parse_ground_truth(data)


def test_invalid_record_error_is_a_value_error():
    assert issubclass(InvalidRecordError, ValueError)


def test_empty_list_is_valid():
    assert parse_predictions([]) == []


# --- files ---


def test_load_files(tmp_path):
    pred, gt = tmp_path / "pred.json", tmp_path / "gt.json"
    pred.write_text(json.dumps([raw_record(), raw_record(score=0.1)]))
    gt.write_text(json.dumps([without("score")]))
    assert [r.score for r in load_predictions(pred)] == [0.9, 0.1]
    assert [r.score for r in load_ground_truth(str(gt))] == [None]


def test_missing_file(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(RecordFileError, match=r"cannot read predictions file .*missing\.json"):
        load_predictions(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(RecordFileError, match=r"cannot read ground truth file"):
        load_ground_truth(tmp_path)


@pytest.mark.parametrize("text", ["[{", "", "\xff\xfe"])
def test_invalid_json(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(RecordFileError, match=r"predictions file .*bad\.json' is not valid JSON"):
        load_predictions(path)


def test_nan_literal_in_a_file_is_an_invalid_record(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(json.dumps([raw_record(), raw_record(s=[1, math.nan, 1])]))
    assert "NaN" in path.read_text()
    with pytest.raises(InvalidRecordError, match=r"^prediction 1: field 's'"):
        load_predictions(path)


# --- poses ---


def test_stack_poses_known_rotation():
    half = math.sqrt(0.5)
    records = parse_predictions([raw_record(), raw_record(q=[half, 0, half, 0], t=[1, 2, 3])])
    poses = stack_poses(records)
    assert poses.R.shape == (2, 3, 3) and poses.R.dtype == torch.float64
    # +90 deg about y maps x to -z
    x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(poses.R[1] @ x, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(poses.R[0], torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(poses.t[1], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(poses.s[0], torch.tensor([0.5, 1.0, 0.75], dtype=torch.float64))


def test_stack_poses_of_no_records():
    poses = stack_poses([])
    assert poses.R.shape == (0, 3, 3) and poses.t.shape == (0, 3) and poses.s.shape == (0, 3)
