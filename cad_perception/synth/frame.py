"""One rendered view with its exact ground truth: the unit every synth writer consumes.

Conventions: the camera frame is the OpenCV / ROS optical frame (x right, y down, z forward,
metres); an object's pose maps its canonical (NOC) coordinates to the camera frame,
X_cam = R (s * X_noc) + t, with s the per-axis metric size of the canonical bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Frame", "FrameObject"]


@dataclass(frozen=True)
class FrameObject:
    """Ground truth of one visible object in a frame.

    Attributes:
        instance: its value in the frame's instance map (>= 1).
        cad_id: id of its CAD model in the database.
        category: its category name.
        symmetry: 'none' | 'rot2' | 'rot4' | 'inf' about the canonical y axis.
        R: (3, 3) float64 rotation canonical -> camera.
        t: (3,) float64 translation in metres (camera frame).
        s: (3,) float64 per-axis scale (metres per canonical unit).
        bbox: (x, y, w, h) of its visible pixels, integer pixels, w and h >= 1.
        visible_pixels: number of pixels where it is visible.
        occlusion_ratio: 1 - visible / unoccluded pixels, in [0, 1].
    """

    instance: int
    cad_id: str
    category: str
    symmetry: str
    R: np.ndarray
    t: np.ndarray
    s: np.ndarray
    bbox: tuple[int, int, int, int]
    visible_pixels: int
    occlusion_ratio: float


@dataclass(frozen=True)
class Frame:
    """A rendered image with its dense ground truth and its visible objects.

    Attributes:
        rgb: (H, W, 3) uint8 shaded image.
        depth: (H, W) float32 z-depth in metres, 0 where no surface was hit.
        instance: (H, W) int32 instance map, 0 = background, else a FrameObject's `instance`.
        noc: (H, W, 3) float32 canonical coordinates of object pixels, NaN off-object.
        K: (3, 3) float64 intrinsics.
        objects: the objects that passed visibility filtering.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    noc: np.ndarray
    K: np.ndarray
    objects: tuple[FrameObject, ...]

    @property
    def size(self) -> tuple[int, int]:
        """Image size (H, W)."""
        return (int(self.depth.shape[0]), int(self.depth.shape[1]))
