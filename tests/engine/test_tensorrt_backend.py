"""The TensorRT engine cache: its key, and reuse / rebuild decisions with injected build and
deserialize functions (TensorRT itself only where it imports)."""

import importlib.util
import json
import logging

import numpy as np
import pytest
import torch

from cad_perception.engine.errors import EngineError
from cad_perception.engine.tensorrt_backend import (
    PLAN_FILE,
    PLAN_KEY_FILE,
    engine_cache_key,
    file_sha256,
    load_or_build,
    stale_reason,
)

KEY = engine_cache_key(
    onnx_sha256="ab" * 32,
    tensorrt_version="10.3.0",
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability=(9, 0),
    precision="fp16",
)


def test_cache_key_names_everything_an_engine_depends_on():
    assert KEY == {
        "onnx_sha256": "ab" * 32,
        "tensorrt_version": "10.3.0",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "precision": "fp16",
    }
    assert json.loads(json.dumps(KEY)) == KEY
    with pytest.raises(EngineError, match="precision must be one of"):
        engine_cache_key(
            onnx_sha256="", tensorrt_version="", gpu_name="", compute_capability=(0, 0),
            precision="int8",
        )  # fmt: skip


class FakeTensorRT:
    """build: plan bytes naming the build count; deserialize: refuses plans it did not build."""

    def __init__(self):
        self.builds = 0

    def build(self, onnx_path):
        self.builds += 1
        return f"plan {self.builds} of {onnx_path.name}".encode()

    def deserialize(self, plan: bytes) -> str:
        if not plan.startswith(b"plan "):
            raise EngineError("cannot deserialize the plan")
        return plan.decode()


@pytest.fixture
def onnx_path(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"graph")
    return path


def test_builds_once_then_reuses(onnx_path, caplog):
    trt = FakeTensorRT()
    caplog.set_level(logging.INFO, "cad_perception.engine.tensorrt_backend")
    first = load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize)
    assert first == "plan 1 of model.onnx" and "no cached engine" in caplog.text
    assert json.loads((onnx_path.parent / PLAN_KEY_FILE).read_text()) == KEY
    caplog.clear()
    again = load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize)
    assert again == first and trt.builds == 1
    assert "reusing TensorRT engine" in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("tensorrt_version", "10.4.0"), ("gpu_name", "NVIDIA L4"), ("precision", "fp32"),
     ("compute_capability", "8.9"), ("onnx_sha256", "cd" * 32)],
)  # fmt: skip
def test_a_changed_key_rebuilds_and_says_why(onnx_path, caplog, field, value):
    trt = FakeTensorRT()
    load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize)
    caplog.set_level(logging.INFO, "cad_perception.engine.tensorrt_backend")
    changed = {**KEY, field: value}
    engine = load_or_build(onnx_path, changed, build=trt.build, deserialize=trt.deserialize)
    assert engine == "plan 2 of model.onnx"
    assert f"key mismatch: {field} {KEY[field]!r} -> {value!r}" in caplog.text
    assert json.loads((onnx_path.parent / PLAN_KEY_FILE).read_text()) == changed
    assert stale_reason(onnx_path.parent, changed) is None


def test_corrupt_or_missing_files_rebuild(onnx_path, caplog):
    trt = FakeTensorRT()
    directory = onnx_path.parent
    load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize)
    caplog.set_level(logging.INFO, "cad_perception.engine.tensorrt_backend")
    (directory / PLAN_FILE).write_bytes(b"\x00garbage")
    assert load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize) == (
        "plan 2 of model.onnx"
    )
    assert "corrupt model.plan" in caplog.text
    (directory / PLAN_KEY_FILE).write_text("{")
    load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize)
    assert "unreadable model.plan.json" in caplog.text
    (directory / PLAN_FILE).unlink()
    load_or_build(onnx_path, KEY, build=trt.build, deserialize=trt.deserialize)
    assert trt.builds == 4


def test_file_sha256_changes_with_the_graph(onnx_path):
    before = file_sha256(onnx_path)
    onnx_path.write_bytes(b"graph 2")
    assert file_sha256(onnx_path) != before and len(before) == 64


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available(),
    reason="needs the TensorRT Python package (not installable here) and a CUDA GPU",
)
def test_tensorrt_matches_onnxruntime(exported):
    from cad_perception.engine.onnx_backend import OnnxBackend
    from cad_perception.engine.tensorrt_backend import TensorRTBackend
    from tests.engine.conftest import SIZE, intrinsics, synthetic_image

    reference = OnnxBackend(exported, device="cpu")(synthetic_image(0), intrinsics(SIZE))
    backend = TensorRTBackend(exported, precision="fp32")
    output = backend(synthetic_image(0), intrinsics(SIZE))
    np.testing.assert_array_equal(output.classes, reference.classes)
    np.testing.assert_allclose(output.boxes, reference.boxes, atol=0.5)
    assert (exported / PLAN_FILE).is_file()
