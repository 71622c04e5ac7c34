"""One detected object: its box and mask, 9-DoF pose, metric size and retrieved CAD models.

Pose convention (DESIGN.md): a point X of the retrieved CAD's canonical (normalised) mesh lies
at X_cam = R (s * X) + t in the camera's optical frame (x right, y down, z forward, metres).
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CadMatch:
    """A retrieved CAD model and its embedding distance (smaller is more similar)."""

    cad_id: str
    distance: float

    @property
    def similarity(self) -> float:
        """The distance mapped into [0, 1]: 1 - d / 2 for unit embeddings (d in [0, 2])."""
        return float(np.clip(1.0 - self.distance / 2.0, 0.0, 1.0))


@dataclass(frozen=True)
class Detection:
    """One object in the caller's image (pixel coordinates of the image passed in)."""

    category: str
    score: float
    """Detection confidence in [0, 1]."""
    box: np.ndarray
    """(4,) float32 x0, y0, x1, y1 (pixel-edge coordinates)."""
    mask: np.ndarray
    """(H, W) bool object pixels."""
    R: np.ndarray
    """(3, 3) float64 rotation."""
    q: np.ndarray
    """(4,) float64 the same rotation as a unit quaternion (w, x, y, z), w >= 0."""
    t: np.ndarray
    """(3,) float64 translation in metres."""
    s: np.ndarray
    """(3,) float64 per-axis scale of the canonical mesh."""
    extents: np.ndarray
    """(3,) float64 metric size of the object's bounding box: s * the retrieved CAD's
    canonical extents (s itself where no CAD was retrieved)."""
    alignment_valid: bool
    """R and t come from a well-posed Procrustes solve."""
    cads: tuple[CadMatch, ...] = field(default_factory=tuple)
    """Retrieved CADs of the category, nearest first (empty when the database has none)."""

    @property
    def cad_id(self) -> str | None:
        """The best CAD's id, or None."""
        return self.cads[0].cad_id if self.cads else None

    @property
    def retrieval_distance(self) -> float | None:
        """The best CAD's embedding distance, or None."""
        return self.cads[0].distance if self.cads else None

    def to_json(self) -> dict:
        """JSON-able dict: category, score, box, t, q, s, extents, cad_id, retrieval_distance,
        alignment_valid, alternatives [{cad_id, distance}] (the mask is left out)."""
        return {
            "category": self.category,
            "score": round(float(self.score), 6),
            "box": [round(float(v), 3) for v in self.box],
            "t": [float(v) for v in self.t],
            "q": [float(v) for v in self.q],
            "s": [float(v) for v in self.s],
            "extents": [float(v) for v in self.extents],
            "cad_id": self.cad_id,
            "retrieval_distance": self.retrieval_distance,
            "alignment_valid": bool(self.alignment_valid),
            "alternatives": [{"cad_id": m.cad_id, "distance": m.distance} for m in self.cads[1:]],
        }
