"""INT8 engines for CPUs: static quantisation of an exported graph's heavy convolutions.

On a CPU the convolutions of the backbone, the feature pyramid, the RPN and the mask head are
most of an image's time. `quantize_int8` rewrites exactly those (matched by node-name prefix)
as onnxruntime QLinearConv with per-channel int8 weights and uint8 activations whose ranges are
calibrated on real inputs; everything that regresses geometry (depth head, alignment head,
Procrustes, retrieval) stays float32. The result is an exported folder like any other (same
inputs, outputs and sidecar, with "precision": "int8") that the onnxruntime backend runs.

Calibration images are synthetic scenes of procedural CADs rendered at the engine's input size
(`synthetic_calibration`, a fixed seed that no training or held-out set uses), or the images of
a dataset folder the caller passes (`dataset_calibration`).
"""

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.engine.errors import EngineError
from cad_perception.engine.output import INPUT_NAMES
from cad_perception.engine.sidecar import ONNX_FILE, read_engine_folder, write_sidecar
from cad_perception.synth.dataset import RocaDataset
from cad_perception.synth.generate import SceneFrames
from cad_perception.synth.scene import SceneConfig

logger = logging.getLogger(__name__)

QUANTIZED_PREFIXES = ("/model/backbone/", "/model/rpn/", "/model/mask_head/")
"""Node-name prefixes of the convolutions made int8 (names as engine/export.py writes them)."""

CALIBRATION_IMAGES = 16
CALIBRATION_SEED = 777001
"""Seed of the synthetic calibration scenes (never used for training or held-out sets)."""

CalibrationInput = tuple[np.ndarray, np.ndarray]
"""One calibration input: image (3, H, W) float32 in [0, 1] and K (3, 3) float32."""


def quantize_int8(
    engine_dir: str | Path, out_dir: str | Path, calibration: Sequence[CalibrationInput]
) -> Path:
    """Write an INT8 copy of the float32 export in engine_dir to out_dir (model.onnx +
    model.json with precision "int8"); returns out_dir/model.onnx.

    calibration: inputs at the export's size whose activation ranges set the quantisation
    (a dozen or more varied images). EngineError if engine_dir is not a float32 export, no
    node matches QUANTIZED_PREFIXES, or a calibration input has the wrong shape."""
    from onnxruntime.quantization import (  # onnxruntime is optional
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    engine_dir, out_dir = Path(engine_dir), Path(out_dir)
    info = read_engine_folder(engine_dir, None)
    if info.precision != "fp32":
        raise EngineError(f"{engine_dir}: already {info.precision}; quantise a float32 export")
    if not calibration:
        raise EngineError("quantisation needs at least one calibration image")
    inputs = [_checked_input(image, K, info.input_size) for image, K in calibration]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(engine_dir / ONNX_FILE), str(prepared), skip_symbolic_shape=True)
        nodes = convolutions_to_quantize(onnx.load(str(prepared)))
        if not nodes:
            raise EngineError(
                f"{engine_dir / ONNX_FILE}: no convolution under {', '.join(QUANTIZED_PREFIXES)}"
                "; was it exported by this version?"
            )
        logger.info("quantising %d convolutions on %d images", len(nodes), len(inputs))
        partial = out_dir / (ONNX_FILE + ".partial")
        quantize_static(
            str(prepared),
            str(partial),
            Reader(),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            nodes_to_quantize=nodes,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
    onnx.checker.check_model(str(partial))
    (out_dir / ONNX_FILE).unlink(missing_ok=True)
    partial.rename(out_dir / ONNX_FILE)
    write_sidecar(out_dir, replace(info, precision="int8"))
    return out_dir / ONNX_FILE


def convolutions_to_quantize(graph: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes of `graph` under QUANTIZED_PREFIXES."""
    return [
        node.name
        for node in graph.graph.node
        if node.op_type == "Conv" and node.name.startswith(QUANTIZED_PREFIXES)
    ]


def synthetic_calibration(
    input_size: tuple[int, int], count: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED
) -> list[CalibrationInput]:
    """`count` synthetic room scenes of procedural CADs rendered at input_size (H, W)."""
    with (
        tempfile.TemporaryDirectory(prefix="calibration-") as folder,
        CadDatabase.create(Path(folder) / "db") as db,
    ):
        build_procedural(db, 2, 0, progress=False)  # the default library's first CADs
        config = SceneConfig(image_size=input_size)
        frames = SceneFrames(db=db, scenes=count, seed=seed, config=config)
        return [_frame_input(frame.rgb, frame.K) for frame in frames]


def dataset_calibration(
    data_dir: str | Path, count: int = CALIBRATION_IMAGES
) -> list[CalibrationInput]:
    """Up to `count` images spread evenly over a dataset folder (the ROCA layout)."""
    dataset = RocaDataset(data_dir)
    picks = np.unique(np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).round())
    return [_tensors_input(dataset[int(i)]) for i in picks]


def _frame_input(rgb: np.ndarray, K: np.ndarray) -> CalibrationInput:
    return rgb.transpose(2, 0, 1).astype(np.float32) / 255.0, K.astype(np.float32)


def _tensors_input(item: dict) -> CalibrationInput:
    return item["image"].numpy().astype(np.float32), item["K"].numpy().astype(np.float32)


def _checked_input(
    image: np.ndarray, K: np.ndarray, size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """One calibration feed {image: (1, 3, H, W), K: (1, 3, 3)}; EngineError on a wrong shape."""
    if image.shape != (3, *size) or K.shape != (3, 3):
        raise EngineError(
            f"calibration image {image.shape} / K {K.shape} do not fit the export "
            f"(3, {size[0]}, {size[1]}) / (3, 3)"
        )
    feeds = (image[None].astype(np.float32), K[None].astype(np.float32))
    return dict(zip(INPUT_NAMES, feeds, strict=True))
