"""The TensorRT backend: a serialized engine built from the exported ONNX, cached beside it.

Building (TensorRT >= 10, whose networks are always explicit-batch): the ONNX parser fills a
network definition, the builder config sets the precision flag (FP16 by default) and a
workspace limit, one optimisation profile pins the inputs to their fixed shapes, and
build_serialized_network produces the plan. The plan is cached next to the ONNX as

    model.plan          the serialized engine
    model.plan.json     its cache key: sha256 of the ONNX, TensorRT version, GPU name, compute
                        capability and precision (`engine_cache_key`)

and reloaded while the key matches; otherwise (key mismatch, missing or corrupt file) it is
rebuilt with a log line saying why (`load_or_build`, written against injected build and
deserialize functions so its logic is testable without TensorRT). Running: one execution
context whose inputs and outputs are bound once to CUDA tensors of torch
(set_tensor_address), executed with execute_async_v3 on torch's current stream.

TensorRT is imported only when a backend is created, so this module imports without it.
"""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from cad_perception.engine.backend import check_inputs
from cad_perception.engine.errors import EngineError
from cad_perception.engine.output import INPUT_NAMES, OUTPUT_NAMES, EngineOutput, engine_output
from cad_perception.engine.sidecar import ONNX_FILE, read_engine_folder

logger = logging.getLogger(__name__)

PLAN_FILE = "model.plan"
PLAN_KEY_FILE = "model.plan.json"
PRECISIONS = ("fp16", "fp32")
DEFAULT_WORKSPACE_BYTES = 4 << 30
"""Most scratch memory TensorRT's kernels may use (4 GiB)."""

Engine = TypeVar("Engine")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def engine_cache_key(
    *,
    onnx_sha256: str,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    precision: str,
) -> dict[str, str]:
    """Everything a serialized engine depends on, as the JSON object stored beside it.

    An engine is only valid for the graph it was built from, the TensorRT version that built
    it and the GPU model (name and compute capability) it was tuned on, at its precision."""
    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    major, minor = compute_capability
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": f"{major}.{minor}",
        "precision": precision,
    }


def stale_reason(directory: Path, key: dict[str, str]) -> str | None:
    """Why the cached engine in `directory` cannot be used for `key`, None if it can."""
    plan, key_file = directory / PLAN_FILE, directory / PLAN_KEY_FILE
    if not plan.is_file() or not key_file.is_file():
        return "no cached engine"
    try:
        stored = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"unreadable {key_file.name} ({err})"
    if stored != key:
        stored = stored if isinstance(stored, dict) else {}
        changed = [
            f"{name} {stored.get(name)!r} -> {value!r}"
            for name, value in key.items()
            if stored.get(name) != value
        ]
        return "key mismatch: " + (", ".join(changed) or "extra fields")
    return None


def load_or_build(
    onnx_path: Path,
    key: dict[str, str],
    *,
    build: Callable[[Path], bytes],
    deserialize: Callable[[bytes], Engine],
) -> Engine:
    """The engine for onnx_path: the cached plan beside it when its key equals `key`, else a
    new plan from build(onnx_path), cached with the key. deserialize(plan) raises EngineError
    on a corrupt plan, which is then rebuilt as well."""
    directory = onnx_path.parent
    plan_path = directory / PLAN_FILE
    reason = stale_reason(directory, key)
    if reason is None:
        try:
            engine = deserialize(plan_path.read_bytes())
        except (OSError, EngineError) as err:
            reason = f"corrupt {plan_path.name} ({err})"
        else:
            logger.info("reusing TensorRT engine %s", plan_path)
            return engine
    logger.info("building TensorRT engine %s: %s", plan_path, reason)
    plan = build(onnx_path)
    _write_atomically(plan_path, plan)
    _write_atomically(directory / PLAN_KEY_FILE, (json.dumps(key, indent=1) + "\n").encode())
    return deserialize(plan)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as err:
        raise EngineError(
            "the tensorrt backend needs the TensorRT Python package (>= 10), which is not "
            "installed; use --backend onnxruntime or torch"
        ) from err
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise EngineError(f"the tensorrt backend needs TensorRT >= 10, not {tensorrt.__version__}")
    return tensorrt


def build_plan(trt: Any, trt_logger: Any, onnx_path: Path, precision: str, workspace: int) -> bytes:
    """A serialized engine of the ONNX graph at its fixed input shapes (see the module doc)."""
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(tensor.shape)
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"{onnx_path}: TensorRT failed to build an engine (see its log)")
    return bytes(plan)


class TensorRTBackend:
    """Backend protocol over a TensorRT engine of an exported folder (see the module docstring)."""

    name = "tensorrt"

    def __init__(
        self,
        engine_dir: str | Path,
        *,
        input_size: tuple[int, int] | None = None,
        device: str | torch.device = "cuda",
        precision: str = "fp16",
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    ):
        """engine_dir: an exported folder (its engine cache lives there too)."""
        info = read_engine_folder(engine_dir, input_size)
        self.input_size, self.categories, self.encoder = (
            info.input_size,
            info.categories,
            info.encoder,
        )
        self.score_threshold = info.score_threshold
        trt = _import_tensorrt()
        self.device = torch.device(device)
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise EngineError(f"the tensorrt backend needs a CUDA device, got {device}")
        properties = torch.cuda.get_device_properties(self.device)
        onnx_path = Path(engine_dir) / ONNX_FILE
        key = engine_cache_key(
            onnx_sha256=file_sha256(onnx_path),
            tensorrt_version=trt.__version__,
            gpu_name=properties.name,
            compute_capability=(properties.major, properties.minor),
            precision=precision,
        )
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._trt_logger)

        def deserialize(plan: bytes) -> Any:
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise EngineError("TensorRT cannot deserialize the plan")
            return engine

        with torch.cuda.device(self.device):
            self._engine = load_or_build(
                onnx_path,
                key,
                build=lambda path: build_plan(
                    trt, self._trt_logger, path, precision, workspace_bytes
                ),
                deserialize=deserialize,
            )
            self._context = self._engine.create_execution_context()
            self._buffers = {
                name: torch.empty(
                    tuple(self._engine.get_tensor_shape(name)),
                    dtype=_torch_dtype(trt, self._engine.get_tensor_dtype(name)),
                    device=self.device,
                )
                for name in (*INPUT_NAMES, *OUTPUT_NAMES)
            }
        for name, buffer in self._buffers.items():
            self._context.set_tensor_address(name, buffer.data_ptr())
        logger.info("tensorrt backend: %s (%s) on %s", onnx_path, precision, properties.name)

    def __call__(self, image: np.ndarray, K: np.ndarray) -> EngineOutput:
        """image (3, H, W) float32 in [0, 1] at input_size, K (3, 3) -> EngineOutput."""
        image, K = check_inputs(image, K, self.input_size)
        for name, array in zip(INPUT_NAMES, (image, K), strict=True):
            self._buffers[name].copy_(torch.from_numpy(array))
        stream = torch.cuda.current_stream(self.device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise EngineError("TensorRT failed to run the engine (see its log)")
        stream.synchronize()
        return engine_output({name: self._buffers[name].cpu().numpy() for name in OUTPUT_NAMES})


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT DataType of the engine's inputs and outputs."""
    dtypes = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.bool: torch.bool,
    }
    if dtype not in dtypes:
        raise EngineError(f"unsupported TensorRT tensor type {dtype}")
    return dtypes[dtype]
