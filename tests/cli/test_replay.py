"""`cad-perception replay`: the offline replay end to end (table, JSON that re-scores to the same
figures, report), a bag without ground truth, and one-line errors for bad inputs."""

import json
import shutil
from pathlib import Path

import pytest

from cad_perception.cad.database import CadDatabase
from cad_perception.cli import main
from cad_perception.pipeline.replay import run_from_json, summarize
from cad_perception.synth.bag import load_ground_truth
from tests.pipeline.test_replay import BAG_FRAMES, ReplayFiles, build_replay_files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ReplayFiles:
    return build_replay_files(tmp_path_factory.mktemp("cli_replay"))


def _replay(files: ReplayFiles, bag: Path, *extra: str) -> int:
    return main(
        ["replay", str(bag), "--model", str(files.model_dir), "--db", str(files.db_dir),
         "--backend", "torch", "--score-threshold", "0", "--quiet", *extra]
    )  # fmt: skip


def test_offline_replay_prints_writes_json_and_a_report(files, tmp_path, capsys):
    out, report = tmp_path / "replay.json", tmp_path / "report"
    assert _replay(files, files.bag, "--json", str(out), "--report", str(report)) == 0
    stdout = capsys.readouterr().out
    assert "class avg" in stdout and "instance avg" in stdout
    assert f"offline on torch: {BAG_FRAMES} frames total, {BAG_FRAMES} processed" in stdout
    data = json.loads(out.read_text())
    assert data["mode"] == "offline" and data["backend"] == "torch"
    assert data["frames"] == {"total": BAG_FRAMES, "processed": BAG_FRAMES, "dropped": 0}
    assert data["latency_ms"]["p90"] >= data["latency_ms"]["median"] > 0
    truth = load_ground_truth(files.bag)
    assert data["ground_truth"]["objects"] == len(truth)
    assert set(data["per_class"]) == {r.category for r in truth}
    # the per-frame detections in the JSON re-score to the same figures
    run = run_from_json(
        {"mode": "offline", "backend": "torch", "categories": [], "published": BAG_FRAMES,
         "frames": data["per_frame"]}
    )  # fmt: skip
    with CadDatabase.open(files.db_dir, readonly=True) as db:
        again = summarize(run, truth, lambda c: db.get(c).symmetry)
    assert again["per_class"] == data["per_class"] and again["detections"] == data["detections"]
    assert (report / "index.html").is_file()
    assert len(list((report / "overlays").glob("*.png"))) == BAG_FRAMES
    assert f"report: {report / 'index.html'}" in stdout


def test_bag_without_ground_truth_reports_detections_and_latency_only(files, tmp_path, capsys):
    bag = tmp_path / "bag"
    shutil.copytree(files.bag, bag)
    (bag / "ground_truth.json").unlink()
    out = tmp_path / "replay.json"
    assert _replay(files, bag, "--json", str(out)) == 0
    stdout = capsys.readouterr().out
    assert "no accuracy: the bag has no ground truth; detections and latency only" in stdout
    data = json.loads(out.read_text())
    assert data["ground_truth"] is None and "class_avg" not in data
    assert data["frames"]["processed"] == BAG_FRAMES


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no bag at"),
        ("no_topic", "has no topic /camera/depth/image_raw"),
        ("bad_truth", "invalid ground truth"),
    ],
)
def test_bad_inputs_end_in_one_line_errors(files, tmp_path, capsys, case, message):
    bag, extra = files.bag, []
    if case == "missing":
        bag = tmp_path / "nothing"
    elif case == "no_topic":
        extra = ["--image-topic", "/camera/depth/image_raw"]
    else:
        bag = tmp_path / "bag"
        shutil.copytree(files.bag, bag)
        (bag / "ground_truth.json").write_text('{"not": "a list"}')
    assert _replay(files, bag, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cad-perception replay: error:") and message in err
    assert len(err.splitlines()) == 1
