"""The ONNX Runtime backend: an exported engine folder (model.onnx + model.json) run by an
onnxruntime InferenceSession, on the CUDA execution provider when present, else the CPU's."""

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from cad_perception.engine.backend import check_inputs
from cad_perception.engine.errors import EngineError
from cad_perception.engine.output import INPUT_NAMES, OUTPUT_NAMES, EngineOutput, engine_output
from cad_perception.engine.sidecar import ONNX_FILE, read_engine_folder

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
NO_SPINNING = "session.intra_op.allow_spinning"
"""Session config key; "0" puts idle intra-op threads to sleep instead of busy-waiting."""


def execution_providers(device: str | None = None) -> list[str]:
    """The providers to ask for, best first: CUDA (when onnxruntime offers it and device is not
    "cpu"), then the CPU. device "cuda" without the CUDA provider is an EngineError."""
    available = ort.get_available_providers()
    wants_cuda = device is not None and device.startswith("cuda")
    if wants_cuda and CUDA_PROVIDER not in available:
        raise EngineError(
            f"device {device!r} needs onnxruntime's {CUDA_PROVIDER} (install onnxruntime-gpu); "
            f"this onnxruntime offers {', '.join(available)}"
        )
    use_cuda = CUDA_PROVIDER in available and device != "cpu"
    return [CUDA_PROVIDER, CPU_PROVIDER] if use_cuda else [CPU_PROVIDER]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """The backend's session options: idle intra-op threads sleep, `threads` intra-op threads
    (default: onnxruntime's choice, one per core)."""
    options = ort.SessionOptions()
    # Idle intra-op threads would otherwise spin after each run and starve the caller's own
    # work between frames (pre-processing took ~30 ms instead of ~1 ms on 2 cores).
    options.add_session_config_entry(NO_SPINNING, "0")
    if threads is not None:
        if threads < 1:
            raise EngineError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
    return options


def open_session(
    path: Path, options: ort.SessionOptions, providers: list[str]
) -> ort.InferenceSession:
    """An InferenceSession of the graph at `path`; EngineError naming the file when
    onnxruntime cannot load it."""
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime's own types (InvalidProtobuf, NoSuchFile, Fail, ...)
        raise EngineError(f"{path}: onnxruntime cannot load the graph: {err}") from err


class OnnxBackend:
    """Backend protocol over an exported engine folder (see the module docstring)."""

    name = "onnxruntime"

    def __init__(
        self,
        engine_dir: str | Path,
        *,
        input_size: tuple[int, int] | None = None,
        device: str | None = None,
        threads: int | None = None,
    ):
        """engine_dir: an exported folder; input_size, when given, must be the exported one;
        device "cpu" or "cuda" (default: CUDA when onnxruntime offers it); threads: intra-op
        threads (default: onnxruntime's choice, one per core)."""
        self.info = read_engine_folder(engine_dir, input_size)
        if self.info.precision == "int8":
            self.name = "onnxruntime-int8"
        self.input_size = self.info.input_size
        self.categories = self.info.categories
        self.encoder = self.info.encoder
        self.score_threshold = self.info.score_threshold
        options = session_options(threads)
        path = Path(engine_dir) / ONNX_FILE
        self.session = open_session(path, options, execution_providers(device))
        names = tuple(output.name for output in self.session.get_outputs())
        if names != OUTPUT_NAMES:
            raise EngineError(f"{path}: outputs {names}, expected {OUTPUT_NAMES}; re-export")
        logger.info("onnxruntime backend: %s on %s", path, self.session.get_providers()[0])

    def __call__(self, image: np.ndarray, K: np.ndarray) -> EngineOutput:
        """image (3, H, W) float32 in [0, 1] at input_size, K (3, 3) -> EngineOutput."""
        image, K = check_inputs(image, K, self.input_size)
        outputs = self.session.run(None, dict(zip(INPUT_NAMES, (image, K), strict=True)))
        return engine_output(dict(zip(OUTPUT_NAMES, outputs, strict=True)))
