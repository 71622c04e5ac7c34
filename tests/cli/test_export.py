"""`cad-perception export` end to end: a loadable graph and sidecar, clear errors."""

import json

import pytest
import torch

from cad_perception.cli import main
from cad_perception.engine.onnx_backend import OnnxBackend
from cad_perception.model.checkpoint import save_checkpoint
from cad_perception.model.roca import Roca
from tests.model.mini_dataset import mini_config


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
