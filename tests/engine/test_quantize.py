"""INT8 engines: only the heavy convolutions are quantised, the result runs in onnxruntime with
the float graph's interface, the cache quantises once, and bad requests are refused clearly."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from cad_perception.engine.errors import EngineError
from cad_perception.engine.factory import cached_int8, create_backend
from cad_perception.engine.onnx_backend import OnnxBackend
from cad_perception.engine.quantize import (
    QUANTIZED_PREFIXES,
    convolutions_to_quantize,
    quantize_int8,
    synthetic_calibration,
)
from cad_perception.engine.sidecar import ONNX_FILE, SIDECAR_FILE, read_sidecar
from tests.engine.conftest import SIZE, intrinsics, synthetic_image


def calibration(count: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(synthetic_image(seed), intrinsics(SIZE)) for seed in range(count)]


@pytest.fixture(scope="module")
def int8(exported, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "engine"
    quantize_int8(exported, out, calibration())
    return out


def op_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_only_the_heavy_convolutions_become_int8(exported, int8) -> None:
    heavy = convolutions_to_quantize(onnx.load(str(exported / ONNX_FILE)))
    assert len(heavy) > 20
    before, after = op_counts(exported / ONNX_FILE), op_counts(int8 / ONNX_FILE)
    assert after.get("QLinearConv", 0) == len(heavy)
    assert after["Conv"] == before["Conv"] - len(heavy) > 0  # depth / alignment stay float
    graph = onnx.load(str(int8 / ONNX_FILE)).graph
    float_convs = [node.name for node in graph.node if node.op_type == "Conv"]
    assert not any(name.startswith(QUANTIZED_PREFIXES) for name in float_convs)
    assert (int8 / ONNX_FILE).stat().st_size < 0.75 * (exported / ONNX_FILE).stat().st_size


def test_int8_sidecar_is_the_float_one_with_its_precision(exported, int8) -> None:
    source, quantised = read_sidecar(exported), read_sidecar(int8)
    assert source.precision == "fp32" and quantised.precision == "int8"
    assert quantised == type(source)(**{**vars(source), "precision": "int8"})


def test_int8_engine_runs_with_the_same_interface(exported, int8) -> None:
    image, K = synthetic_image(11), intrinsics(SIZE)
    fast, exact = OnnxBackend(int8), OnnxBackend(exported)
    assert fast.name == "onnxruntime-int8" and exact.name == "onnxruntime"
    quantised, reference = fast(image, K), exact(image, K)
    for field, a, b in zip(quantised._fields, quantised, reference, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, field
    assert quantised.count == reference.count > 0  # the untrained network detects at score 0
    assert np.all(np.isfinite(quantised.t)) and np.all(np.isfinite(quantised.embeddings))


def test_refuses_bad_requests(exported, int8, tmp_path) -> None:
    with pytest.raises(EngineError, match="already int8"):
        quantize_int8(int8, tmp_path / "again", calibration(1))
    with pytest.raises(EngineError, match="at least one calibration image"):
        quantize_int8(exported, tmp_path / "none", [])
    small = [(synthetic_image(0, (120, 160)), intrinsics((120, 160)))]
    with pytest.raises(EngineError, match=r"do not fit the export \(3, 240, 320\)"):
        quantize_int8(exported, tmp_path / "small", small)
    with pytest.raises(EngineError, match="a float32 export; onnxruntime-int8 needs"):
        create_backend(exported, "onnxruntime-int8")


def test_sidecar_precision_defaults_to_float_and_is_validated(exported, tmp_path) -> None:
    data = json.loads((exported / SIDECAR_FILE).read_text())
    data.pop("precision")
    (tmp_path / SIDECAR_FILE).write_text(json.dumps(data))
    assert read_sidecar(tmp_path).precision == "fp32"
    (tmp_path / SIDECAR_FILE).write_text(json.dumps(data | {"precision": "int4"}))
    with pytest.raises(EngineError, match="precision must be one of"):
        read_sidecar(tmp_path)


def test_synthetic_calibration_renders_varied_scenes_at_the_size() -> None:
    inputs = synthetic_calibration((60, 80), count=3)
    assert len(inputs) == 3
    for image, K in inputs:
        assert image.shape == (3, 60, 80) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0 and K.shape == (3, 3)
    assert not np.array_equal(inputs[0][0], inputs[1][0])


def test_the_cache_quantises_a_checkpoint_once(mini_checkpoint, tmp_path) -> None:
    backend = create_backend(mini_checkpoint, "onnxruntime-int8", cache_dir=tmp_path)
    assert backend.name == "onnxruntime-int8"
    folder = cached_int8(mini_checkpoint, None, tmp_path)
    assert folder.name.endswith("-int8") and read_sidecar(folder).precision == "int8"
    stamp = (folder / ONNX_FILE).stat().st_mtime_ns
    assert cached_int8(mini_checkpoint, None, tmp_path) == folder
    assert (folder / ONNX_FILE).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name[: -len("-int8")], folder.name]
