"""`cad-perception synth` / `synth-bag` write datasets and bags that read back with ground truth."""

import json

import numpy as np
import pytest

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.cli import main
from cad_perception.eval.records import load_ground_truth
from cad_perception.synth.bag import read_bag
from cad_perception.synth.dataset import RocaDataset
from cad_perception.synth.encoding import read_rgb


@pytest.fixture(scope="module")
def cad_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "db"
    with CadDatabase.create(path) as db:
        build_procedural(db, 2, 0, progress=False)
    return path


def test_synth_writes_a_dataset_and_scorer_records(cad_db, tmp_path, capsys):
    out, gt = tmp_path / "data", tmp_path / "gt.json"
    argv = ["synth", "--db", str(cad_db), "--out", str(out), "--scenes", "4", "--seed", "7",
            "--size", "120x160", "--to-scorer", str(gt), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    dataset = RocaDataset(out)
    assert len(dataset) == 4
    item = dataset[0]
    assert tuple(item["image"].shape) == (3, 120, 160)
    records = load_ground_truth(gt)
    annotations = json.loads((out / "annotations.json").read_text())["annotations"]
    assert len(records) == len(annotations) > 0
    assert "wrote 4 images" in capsys.readouterr().out

    # The same seed renders the same images.
    again = tmp_path / "again"
    assert main([*argv[:4], str(again), *argv[5:11], "--quiet"]) == 0
    assert (again / "images/000003.png").read_bytes() == (out / "images/000003.png").read_bytes()


def test_synth_bag_writes_a_bag_with_ground_truth_per_frame(cad_db, tmp_path):
    bag = tmp_path / "bag"
    preview = tmp_path / "preview.png"
    argv = ["synth-bag", "--db", str(cad_db), "--out", str(bag), "--frames", "5",
            "--size", "120x160", "--storage", "sqlite3", "--preview", str(preview),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    sheet = read_rgb(preview)
    assert sheet.shape == (4 * 120 + 3 * 2, 4 * 160 + 3 * 2, 3)
    frames = list(read_bag(bag))
    np.testing.assert_array_equal(sheet[:120, :160], frames[0].rgb)  # the written frames
    assert len(frames) == 5
    stamps = [frame.stamp_ns for frame in frames]
    assert np.allclose(np.diff(stamps), 1e9 / 15, atol=1)
    records = json.loads((bag / "ground_truth.json").read_text())
    assert {r["scene"] for r in records} <= {str(s) for s in stamps}
    assert len(records) > 0
    # Consecutive frames see the scene from nearby viewpoints, not from new random cameras.
    assert np.abs(frames[0].rgb.astype(int) - frames[1].rgb.astype(int)).mean() < 40


def test_synth_bad_input_fails_cleanly(cad_db, tmp_path, capsys):
    assert main(["synth", "--db", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--scenes", "1"]) == 2  # fmt: skip
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--db", str(cad_db), "--out", "o", "--scenes", "1", "--size", "12"])
    bag = tmp_path / "bag"
    bag.mkdir()
    assert main(["synth-bag", "--db", str(cad_db), "--out", str(bag), "--frames", "2",
                 "--quiet"]) == 2  # fmt: skip
    assert "bag" in capsys.readouterr().err


def test_workers_write_the_same_dataset_and_bag_as_one_process(cad_db, tmp_path):
    common = ["--db", str(cad_db), "--seed", "3", "--size", "60x80", "--quiet"]
    for workers in ("1", "2"):
        assert main(["synth", *common, "--out", str(tmp_path / f"data{workers}"),
                     "--scenes", "3", "--workers", workers]) == 0  # fmt: skip
        assert main(["synth-bag", *common, "--out", str(tmp_path / f"bag{workers}"),
                     "--frames", "3", "--workers", workers]) == 0  # fmt: skip
    files = sorted(p.relative_to(tmp_path / "data1") for p in (tmp_path / "data1").rglob("*.*"))
    assert len(files) > 3 * 4  # annotations.json and rgb, depth, NOC, instance per image
    for name in files:
        assert (tmp_path / "data1" / name).read_bytes() == (tmp_path / "data2" / name).read_bytes()
    one, two = list(read_bag(tmp_path / "bag1")), list(read_bag(tmp_path / "bag2"))
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)
    assert (tmp_path / "bag1/ground_truth.json").read_text() == (
        tmp_path / "bag2/ground_truth.json"
    ).read_text()


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_synth_rejects_a_bad_worker_count(cad_db, workers, capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--db", str(cad_db), "--out", "o", "--scenes", "1", "--workers", workers])
    assert "--workers" in capsys.readouterr().err
