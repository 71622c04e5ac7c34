"""The PyTorch backend: the fixed-shape network run eagerly on the CPU or a CUDA GPU.

It runs the very module that is exported (engine/fixed_shape.py), so its outputs are the
reference the ONNX Runtime and TensorRT backends are compared with. On CUDA it runs under
float16 autocast by default (half=False keeps float32).
"""

import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from cad_perception.engine.backend import check_inputs
from cad_perception.engine.errors import EngineError
from cad_perception.engine.export import DEFAULT_INPUT_SIZE
from cad_perception.engine.fixed_shape import FixedShapeRoca
from cad_perception.engine.output import OUTPUT_NAMES, EngineOutput, engine_output
from cad_perception.model.checkpoint import cad_encoder_key, load_model
from cad_perception.model.roca import Roca

logger = logging.getLogger(__name__)


class TorchBackend:
    """Backend protocol over a Roca in eval mode (see the module docstring)."""

    name = "torch"

    def __init__(
        self,
        model: Roca,
        *,
        input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
        device: str | torch.device = "cpu",
        half: bool | None = None,
        score_threshold: float | None = None,
    ):
        """model: moved to `device` and owned from now on; half: float16 autocast, default on
        CUDA (CUDA only); score_threshold: the detector's, default the model's own."""
        self.device = torch.device(device)
        self.half = self.device.type == "cuda" if half is None else half
        if self.half and self.device.type != "cuda":
            raise EngineError(f"float16 inference needs a CUDA device, got {self.device}")
        self.network = FixedShapeRoca(model.to(self.device), score_threshold=score_threshold)
        self.score_threshold = self.network.score_threshold
        self.input_size = tuple(input_size)
        self.categories = model.config.categories
        self.encoder = cad_encoder_key(model)

    @classmethod
    def from_checkpoint(
        cls,
        model_dir: str | Path,
        *,
        input_size: tuple[int, int] | None = None,
        device: str | torch.device | None = None,
        half: bool | None = None,
        score_threshold: float | None = None,
    ) -> "TorchBackend":
        """Load a checkpoint folder (model.checkpoint.load_model); device defaults to CUDA
        when available, else the CPU."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = load_model(model_dir, device)
        logger.info("torch backend: %s on %s", model_dir, device)
        return cls(
            model,
            input_size=input_size or DEFAULT_INPUT_SIZE,
            device=device,
            half=half,
            score_threshold=score_threshold,
        )

    def __call__(self, image: np.ndarray, K: np.ndarray) -> EngineOutput:
        """image (3, H, W) float32 in [0, 1] at input_size, K (3, 3) -> EngineOutput."""
        image, K = check_inputs(image, K, self.input_size)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.half else nullcontext()
        with torch.inference_mode(), autocast:
            outputs = self.network(
                torch.from_numpy(image).to(self.device), torch.from_numpy(K).to(self.device)
            )
        arrays = {name: t.cpu().numpy() for name, t in zip(OUTPUT_NAMES, outputs, strict=True)}
        return engine_output(arrays)  # casts float16 (autocast) outputs to float32
