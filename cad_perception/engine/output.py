"""What every backend returns for one image: detections padded to a fixed count.

D = RocaConfig.detector.detections_per_image rows, sorted by score descending; the first rows
are detections, the rest padding (classes 0, score 0, zeros elsewhere, identity R). S is
RocaConfig.roi_size, E RetrievalConfig.embedding_dim. Boxes are in the pixels of the engine's
input image (pixel-edge coordinates, as model/outputs.py).
"""

from typing import NamedTuple

import numpy as np


class EngineOutput(NamedTuple):
    """One image's detections padded to D rows (see the module docstring)."""

    boxes: np.ndarray
    """(D, 4) float32 x0, y0, x1, y1 in engine-input pixels."""
    scores: np.ndarray
    """(D,) float32, descending; 0 on padding."""
    classes: np.ndarray
    """(D,) int64 class 1..C (categories[c - 1]), 0 on padding."""
    masks: np.ndarray
    """(D, S, S) float32 mask probabilities on each detection's RoI grid."""
    R: np.ndarray
    """(D, 3, 3) float32 rotation of X_cam = R (s * X_noc) + t."""
    t: np.ndarray
    """(D, 3) float32 translation in metres, camera optical frame."""
    s: np.ndarray
    """(D, 3) float32 per-axis scale in metres."""
    valid: np.ndarray
    """(D,) bool: R and t come from a well-posed Procrustes solve."""
    embeddings: np.ndarray
    """(D, E) float32 unit retrieval embeddings (zeros on padding)."""

    @property
    def count(self) -> int:
        """Number of real detections (the rows before the padding)."""
        return int(np.count_nonzero(self.classes))


OUTPUT_NAMES: tuple[str, ...] = EngineOutput._fields
"""Output names in order: the exported graph's outputs and the fixed-shape module's tuple."""

INPUT_NAMES: tuple[str, str] = ("image", "K")
"""Input names of the exported graph: image (1, 3, H, W) float32 in [0, 1], K (1, 3, 3)."""

OUTPUT_DTYPES: dict[str, type] = {
    "boxes": np.float32,
    "scores": np.float32,
    "classes": np.int64,
    "masks": np.float32,
    "R": np.float32,
    "t": np.float32,
    "s": np.float32,
    "valid": np.bool_,
    "embeddings": np.float32,
}
"""The dtype of every field, for backends converting their buffers."""


def engine_output(arrays: dict[str, np.ndarray]) -> EngineOutput:
    """An EngineOutput from arrays by name, cast to the field dtypes (float16 engines, int32
    classes, ...)."""
    missing = [name for name in OUTPUT_NAMES if name not in arrays]
    if missing:
        raise ValueError(f"engine outputs lack {', '.join(missing)}")
    return EngineOutput(
        **{name: np.asarray(arrays[name]).astype(OUTPUT_DTYPES[name]) for name in OUTPUT_NAMES}
    )
