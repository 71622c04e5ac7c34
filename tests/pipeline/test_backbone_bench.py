"""The backbone comparison: both runtimes timed on the checkpoint's own backbone."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cad_perception.model.checkpoint import save_checkpoint
from cad_perception.model.errors import CheckpointError
from cad_perception.model.roca import Roca
from cad_perception.pipeline.backbone_bench import compare_backbones
from tests.model.mini_dataset import mini_config


def test_times_both_runtimes_and_reports_their_ratio(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model", Roca(config=mini_config()))
    frame = SimpleNamespace(rgb=np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8))
    result = compare_backbones(tmp_path / "model", frame, iters=3, warmup=1)
    assert set(result) == {"torch_ms", "onnxruntime_ms", "speedup"}
    assert result["torch_ms"] > 0 and result["onnxruntime_ms"] > 0
    assert result["speedup"] == pytest.approx(
        result["torch_ms"] / result["onnxruntime_ms"], abs=0.01
    )


def test_a_missing_checkpoint_is_reported(tmp_path: Path) -> None:
    frame = SimpleNamespace(rgb=np.zeros((96, 128, 3), np.uint8))
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        compare_backbones(tmp_path / "nothing", frame)
