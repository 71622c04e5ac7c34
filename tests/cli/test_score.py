import json
import subprocess
import sys
from pathlib import Path

import pytest

from cad_perception.cli import COMMANDS, build_parser, main


def record(category: str, x: float, cad_id: str = "cad0", **extra) -> dict:
    return {"scene": "scene0", "category": category, "cad_id": cad_id, "t": [x, 0.0, 2.0],
            "q": [1, 0, 0, 0], "s": [1.0, 1.0, 1.0], "sym": "none", **extra}  # fmt: skip


GT = [record("chair", 0.0, "a"), record("chair", 1.0, "b"), record("chair", 2.0, "c"),
      record("table", 0.0)]  # fmt: skip
PREDICTIONS = [
    record("chair", 0.05, "a", score=0.9),
    record("chair", 1.0, "x", score=0.8),
    record("chair", 2.1, "c", score=0.7),
    record("table", 0.3, score=0.6),  # 0.3 m off: wrong by default, right with --t-thresh 0.35
    record("bed", 0.0, score=0.5),  # no bed in the GT: ignored
]


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def files(tmp_path):
    return write(tmp_path, "pred.json", PREDICTIONS), write(tmp_path, "gt.json", GT)


def test_score_prints_a_table_and_writes_json(tmp_path, files, capsys):
    pred, gt = files
    out = tmp_path / "score.json"
    assert main(["score", "--pred", pred, "--gt", gt, "--json", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["chair", "table"]
    assert lines[2].split() == ["chair", "3", "3", "100.0", "2", "66.7"]
    assert lines[3].split() == ["table", "0", "1", "0.0", "0", "0.0"]
    assert lines[4].split() == ["class", "average", "50.0", "33.3"]
    assert lines[5].split() == ["instance", "average", "3", "4", "75.0", "2", "50.0"]
    assert "bed" not in stdout
    assert json.loads(out.read_text()) == {
        "class_avg": 50.0,
        "instance_avg": 75.0,
        "retrieval_class_avg": pytest.approx(100 / 3),
        "retrieval_instance_avg": 50.0,
        "per_class": {
            "chair": {"correct": 3, "retrieval_correct": 2, "total": 3, "accuracy": 100.0,
                      "retrieval_accuracy": pytest.approx(200 / 3)},
            "table": {"correct": 0, "retrieval_correct": 0, "total": 1, "accuracy": 0.0,
                      "retrieval_accuracy": 0.0},
        },
        "thresholds": {"translation_m": 0.2, "rotation_deg": 20.0, "scale": 0.2},
    }  # fmt: skip


def test_threshold_flags(tmp_path, files, capsys):
    pred, gt = files
    out = tmp_path / "score.json"
    args = ["score", "--pred", pred, "--gt", gt, "--json", str(out)]
    assert main([*args, "--t-thresh", "0.35", "--r-thresh", "5", "--s-thresh", "0.1"]) == 0
    result = json.loads(out.read_text())
    assert result["thresholds"] == {"translation_m": 0.35, "rotation_deg": 5.0, "scale": 0.1}
    assert result["per_class"]["table"]["correct"] == 1
    assert "translation <= 0.35 m" in capsys.readouterr().out


def test_without_json_flag_only_prints(tmp_path, files, capsys):
    pred, gt = files
    assert main(["score", "--pred", pred, "--gt", gt]) == 0
    assert "chair" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json", "pred.json"]


def assert_one_line_error(capsys, *fragments: str) -> None:
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("cad-perception score: error: ")
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr


def test_missing_file(tmp_path, files, capsys):
    _, gt = files
    missing = str(tmp_path / "missing.json")
    assert main(["score", "--pred", missing, "--gt", gt]) == 2
    assert_one_line_error(capsys, "predictions file", "missing.json", "No such file")


def test_invalid_json(tmp_path, files, capsys):
    pred, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text('[{"scene": "s",\n "category": ')
    assert main(["score", "--pred", pred, "--gt", str(bad)]) == 2
    assert_one_line_error(capsys, "ground truth file", "bad.json", "not valid JSON")


def test_malformed_record(tmp_path, files, capsys):
    _, gt = files
    bad = write(tmp_path, "bad_pred.json", [*PREDICTIONS[:3], {**PREDICTIONS[3], "q": [1, 0]}])
    assert main(["score", "--pred", bad, "--gt", gt]) == 2
    assert_one_line_error(
        capsys, "prediction 3: field 'q' must be a list of 4 finite numbers, got [1, 0]"
    )


def test_wrong_top_level_type(tmp_path, files, capsys):
    pred, _ = files
    gt = write(tmp_path, "dict.json", {"records": GT})
    assert main(["score", "--pred", pred, "--gt", gt]) == 2
    assert_one_line_error(capsys, "ground truth must be a JSON list of records, got object")


def test_empty_ground_truth(tmp_path, files, capsys):
    pred, _ = files
    assert main(["score", "--pred", pred, "--gt", write(tmp_path, "empty.json", [])]) == 2
    assert_one_line_error(capsys, "ground truth holds no records")


def test_unwritable_output(tmp_path, files, capsys):
    pred, gt = files
    out = str(tmp_path / "no_such_dir" / "score.json")
    assert main(["score", "--pred", pred, "--gt", gt, "--json", out]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.splitlines()) == 1 and "no_such_dir" in stderr


@pytest.mark.parametrize(
    "argv",
    [[], ["score"], ["score", "--pred", "p.json"], ["frobnicate"],
     ["score", "--pred", "p", "--gt", "g", "--t-thresh", "-1"],
     ["score", "--pred", "p", "--gt", "g", "--r-thresh", "nan"],
     ["score", "--pred", "p", "--gt", "g", "--s-thresh", "big"]],
)  # fmt: skip
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_every_command_registers_a_handler():
    parser = build_parser()
    assert len(COMMANDS) >= 1 and all(callable(c.register) for c in COMMANDS)
    args = parser.parse_args(["score", "--pred", "p", "--gt", "g"])
    assert callable(args.handler) and args.command == "score"


def test_runs_as_a_module(tmp_path, files):
    pred, _ = files
    missing = str(tmp_path / "missing.json")
    result = subprocess.run(
        [sys.executable, "-m", "cad_perception.cli", "score", "--pred", pred, "--gt", missing],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2
    assert result.stderr.startswith("cad-perception score: error: cannot read ground truth file")
    assert "Traceback" not in result.stderr
