import dataclasses
import json

import pytest

from cad_perception.engine.errors import EngineError
from cad_perception.engine.sidecar import (
    ONNX_FILE,
    SIDECAR_FILE,
    EngineInfo,
    read_engine_folder,
    read_sidecar,
    write_sidecar,
)

INFO = EngineInfo(
    input_size=(240, 320),
    categories=("chair", "table"),
    encoder=("roca-voxel", "0123456789abcdef"),
    opset=17,
    max_detections=20,
    roi_size=32,
    embedding_dim=256,
    checkpoint_sha256="ab" * 32,
)


def test_round_trip(tmp_path):
    write_sidecar(tmp_path, INFO)
    assert read_sidecar(tmp_path) == INFO
    data = json.loads((tmp_path / SIDECAR_FILE).read_text())
    assert data["format"] == 1 and data["input_size"] == [240, 320]
    assert data["score_threshold"] == 0.05
    write_sidecar(tmp_path, dataclasses.replace(INFO, score_threshold=0.3, precision="int8"))
    assert read_sidecar(tmp_path).score_threshold == 0.3


def test_sidecars_from_before_the_score_threshold_read_as_the_model_default(tmp_path):
    rewrite(tmp_path, score_threshold=None)  # None: the field is left out
    assert "score_threshold" not in json.loads((tmp_path / SIDECAR_FILE).read_text())
    assert read_sidecar(tmp_path).score_threshold == 0.05


def rewrite(tmp_path, **changes):
    write_sidecar(tmp_path, INFO)
    path = tmp_path / SIDECAR_FILE
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": 2}, "format 1"),
        ({"input_size": [240]}, "input_size must be 2 positive integers"),
        ({"opset": "17"}, "opset must be a positive integer"),
        ({"max_detections": True}, "max_detections"),
        ({"categories": []}, "categories must be a list"),
        ({"encoder": ["roca-voxel"]}, "encoder must be 2"),
        ({"checkpoint_sha256": None}, "checkpoint_sha256 must be a non-empty string"),
        ({"score_threshold": 1.5}, "score_threshold must be a number in"),
        ({"score_threshold": "0.3"}, "score_threshold must be a number in"),
        ({"score_threshold": True}, "score_threshold must be a number in"),
    ],
)
def test_invalid_fields_are_named(tmp_path, changes, message):
    rewrite(tmp_path, **changes)
    with pytest.raises(EngineError, match=message):
        read_sidecar(tmp_path)


def test_missing_and_unreadable_sidecars(tmp_path):
    with pytest.raises(EngineError, match="no such file; export the model first"):
        read_sidecar(tmp_path)
    (tmp_path / SIDECAR_FILE).write_text("{not json")
    with pytest.raises(EngineError, match="cannot read JSON"):
        read_sidecar(tmp_path)
    (tmp_path / SIDECAR_FILE).write_text("[1, 2]")
    with pytest.raises(EngineError, match="not an engine sidecar"):
        read_sidecar(tmp_path)


def test_engine_folder_needs_the_graph_and_the_exported_size(tmp_path):
    write_sidecar(tmp_path, INFO)
    with pytest.raises(EngineError, match=f"{ONNX_FILE}: no such file"):
        read_engine_folder(tmp_path, None)
    (tmp_path / ONNX_FILE).write_bytes(b"")
    assert read_engine_folder(tmp_path, None) == INFO
    assert read_engine_folder(tmp_path, (240, 320)) == INFO
    with pytest.raises(EngineError, match="exported for 240x320 images, asked for 480x640"):
        read_engine_folder(tmp_path, (480, 640))
