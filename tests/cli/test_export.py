"""`cad-perception export` end to end: a loadable graph and sidecar (float32 or INT8), clear
errors."""

import json

import pytest
import torch

from cad_perception.cli import main
from cad_perception.engine.onnx_backend import OnnxBackend
from cad_perception.model.checkpoint import save_checkpoint
from cad_perception.model.roca import Roca
from cad_perception.synth.dataset import RocaDataset
from tests.model.mini_dataset import build_mini_dataset, mini_config


def test_export_writes_a_graph_the_onnx_backend_runs(tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = save_checkpoint(tmp_path / "model", Roca(config=mini_config()))
    out = tmp_path / "out"
    code = main(["export", "--model", str(model_dir), "--out", str(out), "--size", "64x96"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"-> {out / 'model.onnx'} (64x96, opset 17, 20 detections" in printed
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["input_size"] == [64, 96] and sidecar["opset"] == 17
    assert OnnxBackend(out).input_size == (64, 96)
    assert sidecar["score_threshold"] == 0.05  # the model's own


def test_export_builds_in_a_deployment_score_threshold(tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = save_checkpoint(tmp_path / "model", Roca(config=mini_config()))
    out = tmp_path / "out"
    command = ["export", "--model", str(model_dir), "--out", str(out), "--size", "64x96"]
    assert main([*command, "--score-threshold", "0.4"]) == 0
    assert "20 detections scoring over 0.4, fp32" in capsys.readouterr().out
    assert OnnxBackend(out).score_threshold == 0.4
    assert main([*command, "--score-threshold", "1.5"]) == 2
    assert "score_threshold must lie in [0, 1], got 1.5" in capsys.readouterr().err


def test_export_reports_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    code = main(["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("cad-perception export: error: ") and error.count("\n") == 1
    assert "not a checkpoint folder" in error


@pytest.mark.parametrize("size", ["240", "16x320", "axb"])
def test_export_refuses_bad_sizes(tmp_path, size, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(tmp_path), "--out", str(tmp_path), "--size", size])
    assert exit_info.value.code == 2
    assert "expected HxW" in capsys.readouterr().err


def test_export_int8_calibrates_on_a_dataset_or_synthetic_scenes(tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = save_checkpoint(tmp_path / "model", Roca(config=mini_config()))
    data_dir, _ = build_mini_dataset(tmp_path / "mini", scenes=2, seed=1)
    size = "x".join(str(side) for side in RocaDataset(data_dir)[0]["image"].shape[1:])
    common = ["export", "--model", str(model_dir), "--size", size, "--int8"]
    assert main([*common, "--out", str(tmp_path / "a"), "--calibration", str(data_dir)]) == 0
    assert main([*common, "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.count(", int8, ") == 2
    for name in ("a", "b"):
        assert OnnxBackend(tmp_path / name).name == "onnxruntime-int8"
    code = main(["export", "--model", str(model_dir), "--out", str(tmp_path / "c"),
                 "--calibration", str(data_dir)])  # fmt: skip
    assert code == 2
    assert "--calibration only applies with --int8" in capsys.readouterr().err
