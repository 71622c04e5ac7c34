"""create_backend: names, folder kinds, and the export cache (reuse, and a new export when the
checkpoint changes)."""

import logging

import numpy as np
import pytest

from cad_perception.engine.errors import EngineError
from cad_perception.engine.export import GRAPH_VERSION, checkpoint_sha256
from cad_perception.engine.factory import (
    BACKENDS,
    CACHE_ENV,
    create_backend,
    default_cache_dir,
    resolve_backend,
)
from cad_perception.engine.onnx_backend import OnnxBackend
from cad_perception.engine.sidecar import ONNX_FILE
from cad_perception.engine.torch_backend import TorchBackend
from cad_perception.model.checkpoint import load_config
from tests.engine.conftest import detecting, intrinsics, make_checkpoint, synthetic_image
from tests.model.mini_dataset import mini_config

SIZE = (64, 96)


def test_backend_names():
    assert BACKENDS == ("auto", "tensorrt", "onnxruntime", "onnxruntime-int8", "torch")
    assert resolve_backend("torch") == "torch"
    assert resolve_backend("auto", "cpu") == "onnxruntime"  # TensorRT never runs on the CPU
    with pytest.raises(EngineError, match="unknown backend 'tflite'; choose one of auto"):
        resolve_backend("tflite")


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parts[-2:] == (".cache", "cad_perception")


def test_onnxruntime_exports_a_checkpoint_once_and_again_when_it_changes(tmp_path, caplog):
    caplog.set_level(logging.INFO, "cad_perception.engine.factory")
    model_dir = make_checkpoint(tmp_path / "model", detecting(mini_config()), seed=0)
    cache = tmp_path / "cache"

    backend = create_backend(model_dir, "onnxruntime", input_size=SIZE, cache_dir=cache)
    assert isinstance(backend, OnnxBackend) and backend.input_size == SIZE
    (first,) = cache.iterdir()
    own = load_config(model_dir).detector.score_threshold
    expected = f"{checkpoint_sha256(model_dir)[:16]}-64x96-opset17-g{GRAPH_VERSION}-score{own:g}"
    assert first.name == expected
    assert "exporting" in caplog.text
    written = (first / ONNX_FILE).stat().st_mtime_ns

    caplog.clear()
    again = create_backend(model_dir, "onnxruntime", input_size=SIZE, cache_dir=cache)
    assert "reusing the export" in caplog.text
    assert (first / ONNX_FILE).stat().st_mtime_ns == written
    image, K = synthetic_image(0, SIZE), intrinsics(SIZE)
    assert (again(image, K).boxes == backend(image, K).boxes).all()

    make_checkpoint(model_dir, detecting(mini_config()), seed=1)  # retrained in place
    caplog.clear()
    create_backend(model_dir, "onnxruntime", input_size=SIZE, cache_dir=cache)
    assert "exporting" in caplog.text
    assert len(list(cache.iterdir())) == 2


def test_a_score_threshold_is_built_into_its_own_cached_export(mini_checkpoint, tmp_path):
    image, K = synthetic_image(0, SIZE), intrinsics(SIZE)
    cache = tmp_path / "cache"
    everything = create_backend(mini_checkpoint, "onnxruntime", input_size=SIZE, cache_dir=cache)
    assert everything.score_threshold == 0.0  # the checkpoint's own (tests detect everything)
    full = everything(image, K)
    same = create_backend(
        mini_checkpoint, "onnxruntime", input_size=SIZE, cache_dir=cache, score_threshold=0.0
    )
    assert same.score_threshold == 0.0 and len(list(cache.iterdir())) == 1  # one export
    threshold = float(full.scores[2] + full.scores[3]) / 2
    above = create_backend(
        mini_checkpoint, "onnxruntime", input_size=SIZE, cache_dir=cache, score_threshold=threshold
    )
    assert above.score_threshold == pytest.approx(threshold)
    digest = checkpoint_sha256(mini_checkpoint)[:16]
    assert sorted(p.name for p in cache.iterdir()) == [
        f"{digest}-64x96-opset17-g{GRAPH_VERSION}-score0",
        f"{digest}-64x96-opset17-g{GRAPH_VERSION}-score{threshold:g}",
    ]
    kept = above(image, K)
    assert (kept.classes > 0).sum() == 3
    np.testing.assert_allclose(kept.boxes[:3], full.boxes[:3], atol=1e-3)
    np.testing.assert_allclose(kept.t[:3], full.t[:3], atol=1e-4)
    torch_backend = create_backend(
        mini_checkpoint, "torch", device="cpu", input_size=SIZE, score_threshold=threshold
    )
    assert torch_backend.score_threshold == threshold
    assert (torch_backend(image, K).classes > 0).sum() == 3


def test_exported_folders_are_used_directly(exported, tmp_path):
    backend = create_backend(exported, "auto", device="cpu", cache_dir=tmp_path)
    assert backend.name == "onnxruntime" and not any(tmp_path.iterdir())
    with pytest.raises(EngineError, match="the torch backend needs a checkpoint folder"):
        create_backend(exported, "torch")


def test_torch_runs_the_checkpoint(mini_checkpoint):
    backend = create_backend(mini_checkpoint, "torch", device="cpu", input_size=SIZE)
    assert isinstance(backend, TorchBackend) and backend.input_size == SIZE


def test_folders_of_neither_kind_are_refused(tmp_path):
    with pytest.raises(EngineError, match="no such folder"):
        create_backend(tmp_path / "missing")
    with pytest.raises(EngineError, match="neither a checkpoint"):
        create_backend(tmp_path)
