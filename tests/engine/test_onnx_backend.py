"""ONNX Runtime vs the torch reference on the same checkpoint, and clear refusals."""

import dataclasses
import json

import numpy as np
import pytest

from cad_perception.engine.errors import EngineError
from cad_perception.engine.export import export_onnx
from cad_perception.engine.onnx_backend import (
    CPU_PROVIDER,
    NO_SPINNING,
    OnnxBackend,
    execution_providers,
)
from cad_perception.engine.output import EngineOutput
from cad_perception.engine.sidecar import SIDECAR_FILE
from cad_perception.engine.torch_backend import TorchBackend
from tests.engine.conftest import SIZE, detecting, intrinsics, make_checkpoint, synthetic_image
from tests.model.mini_dataset import mini_config


def rotation_angles_deg(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    cosine = (np.einsum("nij,nij->n", R1.astype(np.float64), R2.astype(np.float64)) - 1) / 2
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def assert_same_detections(reference: EngineOutput, other: EngineOutput) -> None:
    """The issue's parity bar: same classes, boxes within 0.5 px, rotations within 0.5 deg,
    translations within 5 mm, embeddings close."""
    np.testing.assert_array_equal(other.classes, reference.classes)
    np.testing.assert_array_equal(other.valid, reference.valid)
    np.testing.assert_allclose(other.boxes, reference.boxes, atol=0.5)
    np.testing.assert_allclose(other.scores, reference.scores, atol=1e-4)
    assert rotation_angles_deg(reference.R, other.R).max() < 0.5
    np.testing.assert_allclose(other.t, reference.t, atol=0.005)
    np.testing.assert_allclose(other.s, reference.s, rtol=1e-4)
    np.testing.assert_allclose(other.masks, reference.masks, atol=1e-3)
    np.testing.assert_allclose(other.embeddings, reference.embeddings, atol=1e-3)


def test_onnxruntime_matches_torch_on_synthetic_images(checkpoint, exported):
    torch_backend = TorchBackend.from_checkpoint(checkpoint, input_size=SIZE, device="cpu")
    onnx_backend = OnnxBackend(exported, input_size=SIZE, device="cpu", threads=2)
    assert onnx_backend.categories == torch_backend.categories
    assert onnx_backend.encoder == torch_backend.encoder
    K = intrinsics(SIZE)
    for seed in range(3):
        image = synthetic_image(seed)
        reference = torch_backend(image, K)
        assert reference.count > 0 and reference.valid.any()
        assert_same_detections(reference, onnx_backend(image, K))


def test_the_graph_holds_for_other_detection_counts_than_the_traced_one(tmp_path):
    size = (64, 96)
    model_dir = make_checkpoint(tmp_path / "m", detecting(mini_config(), score_threshold=0.165))
    export_onnx(model_dir, tmp_path / "out", input_size=size)
    torch_backend = TorchBackend.from_checkpoint(model_dir, input_size=size, device="cpu")
    onnx_backend = OnnxBackend(tmp_path / "out")
    counts = set()
    for seed in range(4):
        image, K = synthetic_image(seed, size), intrinsics(size)
        reference = torch_backend(image, K)
        counts.add(reference.count)
        assert_same_detections(reference, onnx_backend(image, K))
    assert len(counts) > 1, "the images should give different detection counts"


def test_the_graph_reads_the_focal_length_for_a_canonical_focal_depth_head(tmp_path):
    """Depth scaled by the input K's focal length (DepthConfig.canonical_focal) stays a
    function of K in the exported graph: translations agree for focal lengths other than
    the traced example's, and they differ from one focal length to the next."""
    size = (64, 96)
    config = detecting(mini_config(), score_threshold=0.165)
    config = dataclasses.replace(
        config, depth=dataclasses.replace(config.depth, canonical_focal=80.0)
    )
    model_dir = make_checkpoint(tmp_path / "m", config)
    export_onnx(model_dir, tmp_path / "out", input_size=size)
    torch_backend = TorchBackend.from_checkpoint(model_dir, input_size=size, device="cpu")
    onnx_backend = OnnxBackend(tmp_path / "out")
    image, depths = synthetic_image(0, size), []
    for scale in (0.8, 1.5):
        K = intrinsics(size)
        K[:2, :2] *= scale
        reference = torch_backend(image, K)
        assert reference.count > 0
        assert_same_detections(reference, onnx_backend(image, K))
        depths.append(reference.t[: reference.count, 2])
    assert not np.allclose(depths[0], depths[1], rtol=0.1)


def test_refuses_folders_that_do_not_fit(tmp_path, exported):
    with pytest.raises(EngineError, match="no such file; export the model first"):
        OnnxBackend(tmp_path)
    with pytest.raises(EngineError, match="re-export with --size 480x640"):
        OnnxBackend(exported, input_size=(480, 640))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a graph")
    (broken / SIDECAR_FILE).write_text((exported / SIDECAR_FILE).read_text())
    with pytest.raises(EngineError, match="onnxruntime cannot load the graph"):
        OnnxBackend(broken)
    (broken / SIDECAR_FILE).write_text(json.dumps({"format": 0}))
    with pytest.raises(EngineError, match="not an engine sidecar of format 1"):
        OnnxBackend(broken)


def test_rejects_inputs_of_another_size(exported):
    backend = OnnxBackend(exported)
    with pytest.raises(ValueError, match="engine's input size"):
        backend(synthetic_image(0, (120, 160)), intrinsics((120, 160)))


def test_execution_providers_end_with_the_cpu():
    assert execution_providers("cpu") == [CPU_PROVIDER]
    assert execution_providers()[-1] == CPU_PROVIDER


def test_idle_threads_sleep_between_runs(exported):
    """Spinning intra-op threads would steal the CPU from the pre-processing of the next frame."""
    options = OnnxBackend(exported).session.get_session_options()
    assert options.get_session_config_entry(NO_SPINNING) == "0"
