"""Evaluation: an oracle that predicts the ground truth scores 100 %, a shifted one 0 %, and
the real network runs through the CLI."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.cli import main
from cad_perception.engine.factory import CACHE_ENV
from cad_perception.model.alignment_head import roi_pixel_coordinates
from cad_perception.model.checkpoint import cad_encoder_key, save_checkpoint
from cad_perception.model.embed import embed_database
from cad_perception.model.outputs import RocaOutput
from cad_perception.model.roca import Roca
from cad_perception.pipeline.evaluate import dataset_image_size, evaluate_predictions
from cad_perception.synth.annotations import load_annotations
from tests.model.mini_dataset import build_mini_dataset, mini_config

ROI = 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Roca, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    data_dir, db_path = build_mini_dataset(root, scenes=3, seed=3)
    torch.manual_seed(0)
    model = Roca(config=mini_config()).eval()
    with CadDatabase.open(db_path) as db:
        embed_database(db, model, progress=False)
    save_checkpoint(root / "model", model)
    return data_dir, db_path, model, root / "model"


def _oracle(model: Roca, db_path: Path, shift: float = 0.0):
    """predict(item) returning the item's ground truth as network output."""
    db = CadDatabase.open(db_path, readonly=True)

    def predict(item: dict) -> RocaOutput:
        n = len(item["labels"])
        grids = torch.from_numpy(np.stack([db.get(c).voxels for c in item["cad_ids"]]))
        with torch.no_grad():
            embeddings = model.embed_cads(grids)
        # GT NOC sampled at the RoI cell centres of the GT boxes
        uv = roi_pixel_coordinates(item["boxes"].float(), ROI).round().long()
        h, w = item["depth"].shape
        u, v = uv[..., 0].clamp(0, w - 1), uv[..., 1].clamp(0, h - 1)
        noc = item["noc"][:, v, u].permute(1, 0, 2, 3)  # (N, 3, S, S)
        t = item["t"].float() + torch.tensor([shift, 0.0, 0.0])
        return RocaOutput(
            boxes=item["boxes"].float(),
            scores=torch.linspace(0.9, 0.8, n),
            classes=item["labels"],
            batch_index=torch.zeros(n, dtype=torch.long),
            masks=torch.ones(n, 1, ROI, ROI),
            R=item["R"].float(),
            t=t,
            s=item["s"].float(),
            alignment_valid=torch.ones(n, dtype=torch.bool),
            noc=noc,
            embeddings=embeddings,
            depth=item["depth"][None, None] + 0.1,
        )

    return predict


def test_oracle_scores_perfectly(setup) -> None:
    data_dir, db_path, model, _ = setup
    report = evaluate_predictions(
        _oracle(model, db_path),
        db_path,
        data_dir,
        categories=model.config.categories,
        encoder=cad_encoder_key(model),
        progress=False,
    )
    assert report["gt_objects"] > 0
    assert report["class_avg"] == 100.0
    assert report["instance_avg"] == 100.0
    assert report["retrieval_instance_avg"] == 100.0
    assert report["detection_ap50"] == pytest.approx(100.0)
    assert report["matched_objects"] == report["gt_objects"]
    assert report["median_translation_error_m"] == pytest.approx(0.0, abs=1e-5)
    assert report["median_rotation_error_deg"] == pytest.approx(0.0, abs=0.05)
    assert report["noc_l1_error"] == pytest.approx(0.0, abs=1e-6)
    assert report["depth_abs_error_m"] == pytest.approx(0.1, abs=1e-4)
    assert set(report["retrieval_top1"].values()) == {100.0}


def test_shifted_translations_fail_alignment_but_not_detection(setup) -> None:
    data_dir, db_path, model, _ = setup
    report = evaluate_predictions(
        _oracle(model, db_path, shift=0.25),
        db_path,
        data_dir,
        categories=model.config.categories,
        encoder=cad_encoder_key(model),
        progress=False,
    )
    assert report["instance_avg"] == 0.0
    assert report["detection_ap50"] == pytest.approx(100.0)
    assert report["median_translation_error_m"] == pytest.approx(0.25, abs=1e-5)


def test_missing_embeddings_say_what_to_run(setup, tmp_path: Path) -> None:
    data_dir, db_path, model, _ = setup
    with pytest.raises(ValueError, match="db embed"):
        evaluate_predictions(
            _oracle(model, db_path),
            db_path,
            data_dir,
            categories=model.config.categories,
            encoder=("roca-voxel", "not-a-version"),
            progress=False,
        )


def run_eval_cli(setup, out: Path, *options: str) -> dict:
    """`cad-perception eval` of the setup's model and data with `options`; its JSON report."""
    data_dir, db_path, _, model_dir = setup
    code = main(
        ["eval", "--model", str(model_dir), "--db", str(db_path), "--data", str(data_dir),
         "--json", str(out), "--quiet", *options]
    )  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


def test_cli_runs_the_network_and_writes_json(setup, tmp_path: Path, capsys) -> None:
    report = run_eval_cli(setup, tmp_path / "report.json", "--score-threshold", "0")
    for key in ("class_avg", "instance_avg", "retrieval_class_avg", "retrieval_instance_avg",
                "per_class", "detection_ap50", "median_rotation_error_deg", "noc_l1_error",
                "depth_abs_error_m", "retrieval_top1"):  # fmt: skip
        assert key in report
    assert report["images"] == 3 and report["backend"] == "torch"
    assert "class avg" in capsys.readouterr().out


def test_cli_runs_an_engine(setup, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    reads = []

    def counted_load(path):
        reads.append(path)
        return load_annotations(path)

    monkeypatch.setattr("cad_perception.synth.dataset.load_annotations", counted_load)
    report = run_eval_cli(setup, tmp_path / "report.json", "--backend", "onnxruntime")
    assert report["backend"] == "onnxruntime" and report["images"] == 3
    assert len(reads) == 1 and report["data"] == str(setup[0])  # the dataset is read once
    assert report["depth_abs_error_m"] is None
    assert list((tmp_path / "cache").iterdir())  # exported there, not into the user's cache


def test_engines_need_one_image_size() -> None:
    images = [SimpleNamespace(height=240, width=320), SimpleNamespace(height=240, width=320)]
    assert dataset_image_size(images, "data") == (240, 320)
    images.append(SimpleNamespace(height=480, width=640))
    with pytest.raises(ValueError, match=r"data: an engine runs one input size.*--backend torch"):
        dataset_image_size(images, "data")
