"""ONNX export: a valid fixed-shape graph without the CAD encoder, and a truthful sidecar."""

import hashlib

import numpy as np
import onnx
import pytest
import torch

from cad_perception.engine.errors import EngineError
from cad_perception.engine.export import OPSET, checkpoint_sha256, export_onnx
from cad_perception.engine.onnx_backend import OnnxBackend
from cad_perception.engine.output import INPUT_NAMES, OUTPUT_NAMES
from cad_perception.engine.sidecar import ONNX_FILE, read_sidecar
from cad_perception.model.checkpoint import cad_encoder_key, load_model, save_checkpoint
from cad_perception.model.roca import Roca
from tests.engine.conftest import SIZE, detecting, intrinsics, make_checkpoint, synthetic_image
from tests.model.mini_dataset import mini_config


def test_graph_is_valid_with_fixed_named_inputs_and_outputs(exported):
    model = onnx.load(exported / ONNX_FILE)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET

    def shapes(values):
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    assert shapes(model.graph.input) == {"image": [1, 3, *SIZE], "K": [1, 3, 3]}
    assert tuple(v.name for v in model.graph.input) == INPUT_NAMES
    outputs = shapes(model.graph.output)
    assert tuple(outputs) == OUTPUT_NAMES
    assert outputs["boxes"] == [20, 4] and outputs["masks"] == [20, 32, 32]
    assert outputs["embeddings"] == [20, 256] and outputs["R"] == [20, 3, 3]


def test_the_cad_encoder_stays_outside_the_graph(exported, checkpoint):
    names = {tensor.name for tensor in onnx.load(exported / ONNX_FILE).graph.initializer}
    assert any(name.startswith("model.retrieval_head.noc_encoder") for name in names)
    assert not any("cad_encoder" in name or "decoder" in name for name in names)


def test_sidecar_describes_the_graph_and_its_source(exported, checkpoint):
    info = read_sidecar(exported)
    model = load_model(checkpoint)
    assert info.input_size == SIZE
    assert info.categories == model.config.categories
    assert info.encoder == cad_encoder_key(model)
    assert (info.opset, info.max_detections, info.roi_size, info.embedding_dim) == (
        OPSET,
        20,
        32,
        256,
    )
    expected = hashlib.sha256(
        (checkpoint / "model.safetensors").read_bytes() + (checkpoint / "config.json").read_bytes()
    ).hexdigest()
    assert info.checkpoint_sha256 == checkpoint_sha256(checkpoint) == expected


def test_a_model_without_detections_exports_to_padding(tmp_path):
    """A model that detects nothing (as a trained one may on the random export image)."""
    model_dir = make_checkpoint(tmp_path / "m", detecting(mini_config(), score_threshold=1.0))
    size = (64, 96)
    export_onnx(model_dir, tmp_path / "out", input_size=size)
    output = OnnxBackend(tmp_path / "out")(synthetic_image(0, size), intrinsics(size))
    assert output.count == 0 and not output.valid.any()
    np.testing.assert_array_equal(output.R, np.broadcast_to(np.eye(3), (20, 3, 3)))


def test_refuses_a_network_without_proposals(tmp_path):
    """A trace without proposals would bake torchvision's empty-decode branch into the graph."""
    torch.manual_seed(0)
    model = Roca(config=mini_config())
    bbox_pred = model.detector.rpn.head.bbox_pred  # (dx, dy, dw, dh) per anchor
    torch.nn.init.zeros_(bbox_pred.weight)
    with torch.no_grad():
        bbox_pred.bias.copy_(torch.tensor([0.0, 0.0, -30.0, -30.0]).repeat(3))  # ~0 px boxes
    model_dir = save_checkpoint(tmp_path / "m", model)
    with pytest.raises(EngineError, match="proposes no regions"):
        export_onnx(model_dir, tmp_path / "out", input_size=(64, 96))
    assert not (tmp_path / "out").exists()


def test_refuses_missing_checkpoints_and_tiny_sizes(tmp_path):
    with pytest.raises(EngineError, match="not a checkpoint folder"):
        export_onnx(tmp_path, tmp_path / "out")
    with pytest.raises(EngineError, match="at least 32x32"):
        export_onnx(tmp_path, tmp_path / "out", input_size=(16, 320))
    with pytest.raises(EngineError, match="opset must be >= 16"):
        export_onnx(tmp_path, tmp_path / "out", opset=13)
