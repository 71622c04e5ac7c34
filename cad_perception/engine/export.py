"""ONNX export of a checkpoint: one graph from (image, K) to the padded detections.

`export_onnx(model_dir, out_dir)` writes out_dir/model.onnx and its sidecar out_dir/model.json
(engine/sidecar.py). The graph is FixedShapeRoca (engine/fixed_shape.py) traced with the legacy
exporter (the dynamo exporter fails inside torchvision's batched NMS) at opset OPSET:

    inputs   image (1, 3, H, W) float32 in [0, 1], K (1, 3, 3) float32
    outputs  boxes (D, 4), scores (D,), classes (D,) int64, masks (D, S, S), R (D, 3, 3),
             t (D, 3), s (D, 3), valid (D,) bool, embeddings (D, E)

Everything from pixels to embeddings is inside (detection, depth, NOCs, the Horn Procrustes
solve, NOC voxelisation and the embedding networks); the CAD encoder is not (CAD embeddings are
computed offline into the CAD database) and neither is the nearest-neighbour search. Shapes are
fixed, so TensorRT can build the graph with a single optimisation profile.
"""

import hashlib
import logging
import os
import warnings
from pathlib import Path

import onnx
import torch

from cad_perception.engine.errors import EngineError
from cad_perception.engine.fixed_shape import FixedShapeRoca
from cad_perception.engine.output import INPUT_NAMES, OUTPUT_NAMES
from cad_perception.engine.sidecar import ONNX_FILE, EngineInfo, write_sidecar
from cad_perception.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    cad_encoder_key,
    load_model,
)

logger = logging.getLogger(__name__)

OPSET = 17
"""The ONNX opset of exported graphs (RoiAlign with half-pixel offsets needs >= 16)."""

GRAPH_VERSION = 2
"""Revision of how the graph is built, part of the cache key (engine/factory.py): bump it when a
change of the network's export path changes the graph of an unchanged checkpoint, so that
cached exports are rebuilt. 2: the RoI poolers merge their levels by a gather."""

DEFAULT_INPUT_SIZE = (240, 320)
"""(H, W) of exported graphs when none is given: the size the default model trains at
(checkpoints do not record their training image size)."""


def checkpoint_sha256(model_dir: str | Path) -> str:
    """Hex sha256 of a checkpoint's model.safetensors followed by its config.json."""
    digest = hashlib.sha256()
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        path = Path(model_dir) / name
        try:
            with path.open("rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
        except FileNotFoundError as err:
            raise EngineError(f"{path}: no such file (not a checkpoint folder?)") from err
    return digest.hexdigest()


def count_proposals(network: FixedShapeRoca, image: torch.Tensor, K: torch.Tensor) -> int:
    """How many region proposals the network's RPN makes for image (1, 3, H, W), K (1, 3, 3)."""
    counts: list[int] = []

    def record(module: torch.nn.Module, inputs: object, output: tuple) -> None:
        counts.append(sum(len(boxes) for boxes in output[0]))

    hook = network.model.detector.rpn.register_forward_hook(record)
    try:
        with torch.no_grad():
            network(image, K)
    finally:
        hook.remove()
    return sum(counts)


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    input_size: tuple[int, int] | None = None,
    opset: int = OPSET,
    score_threshold: float | None = None,
) -> Path:
    """Export the checkpoint in model_dir to out_dir/model.onnx + model.json; returns the ONNX
    path. input_size (H, W) defaults to DEFAULT_INPUT_SIZE; score_threshold to the model's own
    (engine/fixed_shape.py: a deployment's threshold skips the heads of lower detections). The
    graph is checked with onnx.checker; the sidecar is written last, so a folder with one holds
    a complete export."""
    height, width = input_size or DEFAULT_INPUT_SIZE
    if height < 32 or width < 32:
        raise EngineError(f"input size must be at least 32x32, got {height}x{width}")
    if opset < 16:
        raise EngineError(f"opset must be >= 16 (RoiAlign with half-pixel offsets), got {opset}")
    digest = checkpoint_sha256(model_dir)
    model = load_model(model_dir, "cpu")
    try:
        network = FixedShapeRoca(model, score_threshold=score_threshold)
    except ValueError as err:
        raise EngineError(str(err)) from err
    image = torch.rand(1, 3, height, width)
    K = torch.tensor([[[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]]])
    if count_proposals(network, image, K) == 0:
        # torchvision's box decoding branches on the proposal count in Python, so a trace
        # without proposals builds a graph that fails on every image that has some
        raise EngineError(
            f"{model_dir}: the network proposes no regions for the export's example image, so "
            "its traced graph would fail on real images; is the checkpoint broken (e.g. NaN "
            "weights) or untrained? Check it with `cad-perception infer`"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONNX_FILE
    partial = path.with_name(path.name + ".partial")
    logger.info("exporting %s at %dx%d (opset %d) to %s", model_dir, height, width, opset, path)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about every shape check in the network; the shapes here are fixed.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            network,
            (image, K),
            str(partial),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamo=False,
        )
    try:
        onnx.checker.check_model(str(partial), full_check=True)
    except onnx.checker.ValidationError as err:
        raise EngineError(f"{path}: the exported graph is not valid ONNX: {err}") from err
    os.replace(partial, path)
    config = model.config
    write_sidecar(
        out_dir,
        EngineInfo(
            input_size=(height, width),
            categories=config.categories,
            encoder=cad_encoder_key(model),
            opset=opset,
            max_detections=config.detector.detections_per_image,
            roi_size=config.roi_size,
            embedding_dim=config.retrieval.embedding_dim,
            checkpoint_sha256=digest,
            score_threshold=network.score_threshold,
        ),
    )
    return path
