"""The one interface every inference backend offers, and the input checks they share.

A backend runs the network on one image at its fixed input size and returns an EngineOutput
(engine/output.py). Backends are plain classes satisfying the `Backend` protocol; the factory
(engine/factory.py) picks one by name.
"""

from typing import Protocol

import numpy as np

from cad_perception.engine.output import EngineOutput


class Backend(Protocol):
    """Runs the exported-shape network on one image (see the module docstring)."""

    name: str
    """"torch", "onnxruntime", "onnxruntime-int8" or "tensorrt"."""
    input_size: tuple[int, int]
    """(H, W) of the images the engine takes."""
    categories: tuple[str, ...]
    """Class c of the output is categories[c - 1]."""
    encoder: tuple[str, str]
    """model.checkpoint.cad_encoder_key of the source model: the CAD embeddings to search."""
    score_threshold: float
    """The engine outputs only detections scoring above this (engine/fixed_shape.py)."""

    def __call__(self, image: np.ndarray, K: np.ndarray) -> EngineOutput:
        """image (3, H, W) float32 in [0, 1] at input_size, K (3, 3) float32 of that image."""
        ...


def check_inputs(
    image: np.ndarray, K: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one engine input; returns (image (1, 3, H, W), K (1, 3, 3)) as contiguous float32.

    ValueError unless image is a floating (3, H, W) array at input_size with values in [0, 1]
    and K a finite (3, 3) pinhole matrix with fx, fy > 0.
    """
    height, width = input_size
    if not isinstance(image, np.ndarray) or image.shape != (3, height, width):
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(
            f"image must be a (3, {height}, {width}) array (the engine's input size), got {shape}; "
            "resize the image and scale K to the engine's input size first"
        )
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be float32 in [0, 1], got dtype {image.dtype}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    if not (low >= 0.0 and high <= 1.0):  # NaN fails both comparisons
        raise ValueError(f"image values must lie in [0, 1], got [{low}, {high}]")
    if not isinstance(K, np.ndarray) or K.shape != (3, 3):
        raise ValueError(f"K must be a (3, 3) array, got {getattr(K, 'shape', type(K).__name__)}")
    K = np.asarray(K, dtype=np.float32)
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K must be finite with fx > 0 and fy > 0, got {K.tolist()}")
    return image[None], np.ascontiguousarray(K[None])
