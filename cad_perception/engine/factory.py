"""`create_backend`: a backend by name over a checkpoint or an exported engine folder.

model_dir is either a checkpoint folder (model.safetensors + config.json, model/checkpoint.py)
or an exported folder (model.onnx + model.json, engine/export.py). The torch backend needs a
checkpoint. The onnxruntime and tensorrt backends use an exported folder directly; given a
checkpoint they export it on first use into the cache folder

    <cache_dir>/<checkpoint sha256, 16 digits>-<H>x<W>-opset<opset>-g<GRAPH_VERSION>-score<T>/

and reuse that export afterwards (a TensorRT engine is then cached inside it; GRAPH_VERSION,
engine/export.py, changes when the export code builds a different graph). score_threshold
T (default: the checkpoint's own) is built into the engine (engine/fixed_shape.py: the heads
skip detections below it); an exported folder keeps the threshold it was exported with. Backend
"onnxruntime-int8" runs an INT8 export (engine/quantize.py): an exported folder of precision
int8, or for a checkpoint its cached export quantised on first use into `<export>-int8/`,
calibrated on synthetic scenes. cache_dir defaults to $CAD_PERCEPTION_CACHE, else
~/.cache/cad_perception. Backend "auto" picks tensorrt when it imports and CUDA is available,
else onnxruntime (float32: INT8 trades accuracy, so only asking for it gives it), else torch.
"""

import importlib.util
import logging
import os
from pathlib import Path

import torch

from cad_perception.engine.backend import Backend
from cad_perception.engine.errors import EngineError
from cad_perception.engine.export import (
    DEFAULT_INPUT_SIZE,
    GRAPH_VERSION,
    OPSET,
    checkpoint_sha256,
    export_onnx,
)
from cad_perception.engine.sidecar import ONNX_FILE, SIDECAR_FILE, read_sidecar
from cad_perception.engine.torch_backend import TorchBackend
from cad_perception.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_config

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-int8", "torch")
INT8_BACKEND = "onnxruntime-int8"
CACHE_ENV = "CAD_PERCEPTION_CACHE"
"""Environment variable naming the cache folder of exports and engines."""


def default_cache_dir() -> Path:
    """$CAD_PERCEPTION_CACHE, else ~/.cache/cad_perception."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cad_perception")


def resolve_backend(backend: str, device: str | None = None) -> str:
    """The concrete backend name for `backend` ("auto" resolved as the module docstring says;
    device "cpu" rules out tensorrt)."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    on_cpu = device is not None and torch.device(device).type == "cpu"
    if not on_cpu and _importable("tensorrt") and torch.cuda.is_available():
        return "tensorrt"
    if _importable("onnxruntime"):
        return "onnxruntime"
    return "torch"


def create_backend(
    model_dir: str | Path,
    backend: str = "auto",
    *,
    device: str | None = None,
    input_size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
    score_threshold: float | None = None,
) -> Backend:
    """A backend over model_dir (see the module docstring).

    device: "cpu", "cuda", "cuda:1", ... (default: CUDA where the backend can use it);
    input_size (H, W): for a checkpoint the size to run or export at (default 240 x 320), for an
    exported folder it must equal the exported size. EngineError on an unknown backend, a
    folder that is neither kind, or a torch backend asked to run an exported folder.
    """
    name = resolve_backend(backend, device)
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EngineError(f"{model_dir}: no such folder (expected a checkpoint or an export)")
    exported = (model_dir / ONNX_FILE).is_file() and (model_dir / SIDECAR_FILE).is_file()
    checkpoint = (model_dir / WEIGHTS_FILE).is_file() and (model_dir / CONFIG_FILE).is_file()
    if not (exported or checkpoint):
        raise EngineError(
            f"{model_dir}: neither a checkpoint ({WEIGHTS_FILE} + {CONFIG_FILE}) nor an "
            f"exported engine ({ONNX_FILE} + {SIDECAR_FILE})"
        )
    logger.info("backend %s (asked for %s) over %s", name, backend, model_dir)
    if name == "torch":
        if not checkpoint:
            raise EngineError(
                f"{model_dir}: the torch backend needs a checkpoint folder "
                f"({WEIGHTS_FILE} + {CONFIG_FILE}), not an exported engine"
            )
        return TorchBackend.from_checkpoint(
            model_dir, input_size=input_size, device=device, score_threshold=score_threshold
        )
    if name == INT8_BACKEND:
        engine_dir = (
            model_dir
            if exported
            else cached_int8(model_dir, input_size, cache_dir, score_threshold)
        )
        if read_sidecar(engine_dir).precision != "int8":
            raise EngineError(
                f"{engine_dir}: a float32 export; {INT8_BACKEND} needs `cad-perception export "
                "--int8` (or give the checkpoint folder)"
            )
    else:
        engine_dir = (
            model_dir
            if exported
            else cached_export(model_dir, input_size, cache_dir, score_threshold=score_threshold)
        )
        if name == "tensorrt" and read_sidecar(engine_dir).precision != "fp32":
            raise EngineError(f"{engine_dir}: tensorrt builds from a float32 export, not INT8")
    return ENGINE_BACKENDS[name](engine_dir, input_size, device)


def _onnxruntime_backend(
    engine_dir: Path, input_size: tuple[int, int] | None, device: str | None
) -> Backend:
    from cad_perception.engine.onnx_backend import OnnxBackend  # onnxruntime is optional

    return OnnxBackend(engine_dir, input_size=input_size, device=device)


def _tensorrt_backend(
    engine_dir: Path, input_size: tuple[int, int] | None, device: str | None
) -> Backend:
    from cad_perception.engine.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(engine_dir, input_size=input_size, device=device or "cuda")


ENGINE_BACKENDS = {
    "onnxruntime": _onnxruntime_backend,
    INT8_BACKEND: _onnxruntime_backend,
    "tensorrt": _tensorrt_backend,
}
"""Backends over an exported folder: name -> constructor (engine_dir, input_size, device)."""


def cached_export(
    model_dir: Path,
    input_size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
    opset: int = OPSET,
    score_threshold: float | None = None,
) -> Path:
    """The export of a checkpoint in the cache, made on first use; returns its folder."""
    height, width = input_size or DEFAULT_INPUT_SIZE
    digest = checkpoint_sha256(model_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if score_threshold is None:  # named by the threshold it has, so one export serves both
        score_threshold = load_config(model_dir).detector.score_threshold
    name = f"{digest[:16]}-{height}x{width}-opset{opset}-g{GRAPH_VERSION}-score{score_threshold:g}"
    engine_dir = cache_dir / name
    if _is_export_of(engine_dir, digest):
        logger.info("reusing the export %s of %s", engine_dir, model_dir)
        return engine_dir
    logger.info("exporting %s into the cache %s (first use)", model_dir, engine_dir)
    export_onnx(
        model_dir,
        engine_dir,
        input_size=(height, width),
        opset=opset,
        score_threshold=score_threshold,
    )
    return engine_dir


def cached_int8(
    model_dir: Path,
    input_size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
    score_threshold: float | None = None,
) -> Path:
    """The INT8 export of a checkpoint in the cache (its float32 export quantised on synthetic
    calibration scenes), made on first use; returns its folder."""
    from cad_perception.engine.quantize import quantize_int8, synthetic_calibration

    float_dir = cached_export(model_dir, input_size, cache_dir, score_threshold=score_threshold)
    engine_dir = float_dir.with_name(float_dir.name + "-int8")
    info = read_sidecar(float_dir)  # its digest is the checkpoint's, just checked
    if _is_export_of(engine_dir, info.checkpoint_sha256) and (
        read_sidecar(engine_dir).precision == "int8"
    ):
        logger.info("reusing the INT8 export %s of %s", engine_dir, model_dir)
        return engine_dir
    logger.info("quantising %s into the cache %s (first use)", float_dir, engine_dir)
    quantize_int8(float_dir, engine_dir, synthetic_calibration(info.input_size))
    return engine_dir


def _is_export_of(engine_dir: Path, digest: str) -> bool:
    """Whether engine_dir holds a complete export of the checkpoint with sha256 `digest`."""
    if not (engine_dir / ONNX_FILE).is_file():
        return False
    try:
        return read_sidecar(engine_dir).checkpoint_sha256 == digest
    except EngineError:  # an unreadable sidecar: export again
        return False


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
