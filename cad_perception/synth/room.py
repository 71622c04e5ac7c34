"""Room geometry and object footprints of the synthetic indoor scenes.

World frame (used by every synth scene module): metres, y up, the floor is the plane y = 0, and
a room of width W, depth D and height H spans x in [-W/2, W/2], z in [-D/2, D/2], y in [0, H].
Points are rows (N, 3); floor-plan points are rows (N, 2) of (x, z).

A footprint is the floor-plan rectangle of an object's bounding box after a rotation about y:
the points centre + a * axes[:, 0] + b * axes[:, 1] with |a| <= half_size[0] and
|b| <= half_size[1]. Footprints may carry a leading batch shape (...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh

__all__ = [
    "Footprint",
    "Room",
    "footprints_overlap",
    "make_room",
    "yaw_rotation",
]


@dataclass(frozen=True, eq=False)
class Room:
    """An empty box-shaped room; `mesh` holds its floor, four walls and ceiling in world
    coordinates, facing inwards, with one face colour per surface kind (floor, walls, ceiling),
    so that the shading module treats each kind as one part."""

    width: float
    """Extent along x, metres."""
    depth: float
    """Extent along z, metres."""
    height: float
    """Extent along y, metres."""
    mesh: trimesh.Trimesh

    def contains(self, points: np.ndarray, clearance: float = 0.0) -> np.ndarray:
        """(N,) bool: which floor-plan points (N, 2) lie at least `clearance` inside the walls."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        half = np.array([self.width, self.depth]) / 2 - clearance
        return (np.abs(points) <= half).all(axis=1)


def make_room(width: float, depth: float, height: float, colors: np.ndarray | None = None) -> Room:
    """A Room of the given size; colors (3, 3) uint8 are the floor, wall and ceiling colours
    (grey shades when None)."""
    if min(width, depth, height) <= 0:
        raise ValueError(f"room size must be positive, got {(width, depth, height)}")
    if colors is None:
        colors = np.array([[120, 120, 120], [200, 200, 200], [230, 230, 230]], dtype=np.uint8)
    colors = np.asarray(colors, dtype=np.uint8)
    if colors.shape != (3, 3):
        raise ValueError(f"colors must have shape (3, 3), got {colors.shape}")
    x, z = width / 2, depth / 2
    # Corner k: x sign from bit 0, z sign from bit 1, y = height from bit 2.
    corners = np.array(
        [[(-x, x)[k & 1], (0.0, height)[k >> 2 & 1], (-z, z)[k >> 1 & 1]] for k in range(8)]
    )
    quads = {  # each quad's corners in order, counter-clockwise seen from inside the room
        "floor": [0, 2, 3, 1],
        "ceiling": [4, 5, 7, 6],
        "wall -z": [0, 1, 5, 4],
        "wall +z": [2, 6, 7, 3],
        "wall -x": [0, 4, 6, 2],
        "wall +x": [1, 3, 7, 5],
    }
    faces, face_colors = [], []
    for name, (a, b, c, d) in quads.items():
        faces += [[a, b, c], [a, c, d]]
        kind = 0 if name == "floor" else 2 if name == "ceiling" else 1
        face_colors += [colors[kind]] * 2
    mesh = trimesh.Trimesh(corners, np.array(faces), face_colors=face_colors, process=False)
    return Room(width=float(width), depth=float(depth), height=float(height), mesh=mesh)


def yaw_rotation(yaw: np.ndarray | float) -> np.ndarray:
    """Rotations (..., 3, 3) float64 by angles yaw (...,) in radians about +y (as
    geometry.rotations.rotation_about_y)."""
    c, s = np.cos(yaw), np.sin(yaw)
    zero, one = np.zeros_like(c), np.ones_like(c)
    rows = (c, zero, s, zero, one, zero, -s, zero, c)
    return np.stack(rows, axis=-1).reshape((*np.shape(yaw), 3, 3))


@dataclass(frozen=True, eq=False)
class Footprint:
    """Oriented rectangles on the floor plan (x, z), with any leading batch shape (...)."""

    centre: np.ndarray
    """(..., 2) float64 (x, z)."""
    axes: np.ndarray
    """(..., 2, 2) float64 orthonormal columns: the rectangle's two directions."""
    half_size: np.ndarray
    """(..., 2) float64 half extents along the two axes, >= 0."""

    @classmethod
    def of_box(
        cls, R: np.ndarray, t: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> Footprint:
        """The footprints of the boxes [lower, upper] (..., 3) + (..., 3) placed by X -> R X + t,
        where R (..., 3, 3) are rotations about y and t (..., 3) translations."""
        R, lower, upper = np.asarray(R), np.asarray(lower), np.asarray(upper)
        centre = (R @ ((lower + upper) / 2)[..., None])[..., 0] + np.asarray(t)
        return cls(
            centre=centre[..., [0, 2]],
            axes=R[..., [0, 2], :][..., [0, 2]],
            half_size=np.broadcast_to((upper - lower)[..., [0, 2]] / 2, centre[..., :2].shape),
        )

    @classmethod
    def of_segment(cls, start: np.ndarray, end: np.ndarray) -> Footprint:
        """The degenerate footprints of the floor-plan segments from start (..., 2) to
        end (..., 2)."""
        start, end = np.broadcast_arrays(np.asarray(start, float), np.asarray(end, float))
        length = np.linalg.norm(end - start, axis=-1)
        safe = np.where(length > 0, length, 1.0)[..., None]
        direction = np.where(length[..., None] > 0, (end - start) / safe, [1.0, 0.0])
        dx, dz = direction[..., 0], direction[..., 1]
        axes = np.stack([np.stack([dx, -dz], -1), np.stack([dz, dx], -1)], axis=-2)
        half_size = np.stack([length / 2, np.zeros_like(length)], axis=-1)
        return cls(centre=(start + end) / 2, axes=axes, half_size=half_size)

    @classmethod
    def stack(cls, footprints: Sequence[Footprint]) -> Footprint:
        """One batch (N, ...) of N footprints of equal batch shapes (N >= 1)."""
        return cls(
            centre=np.stack([f.centre for f in footprints]),
            axes=np.stack([f.axes for f in footprints]),
            half_size=np.stack([f.half_size for f in footprints]),
        )

    def corners(self) -> np.ndarray:
        """(..., 4, 2) corners in order around each rectangle."""
        signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
        offsets = signs * self.half_size[..., None, :]  # (..., 4, 2) along the axes
        return self.centre[..., None, :] + offsets @ np.swapaxes(self.axes, -1, -2)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """(N,) Euclidean distance of floor-plan points (N, 2) to one footprint (0 inside)."""
        if self.centre.shape != (2,):
            raise ValueError("distance needs a single footprint, not a batch")
        local = (np.asarray(points, dtype=np.float64).reshape(-1, 2) - self.centre) @ self.axes
        outside = np.maximum(np.abs(local) - self.half_size, 0.0)
        return np.linalg.norm(outside, axis=1)


def footprints_overlap(a: Footprint, b: Footprint, margin: float = 0.0) -> np.ndarray:
    """(...) bool: whether footprints a and b (batch shapes broadcast) come closer than
    `margin` metres, by the separating axis test.

    Two rectangles are apart when, on one of the four edge normals, their projected intervals
    leave a gap >= margin (touching is apart for margin 0). As projections never lengthen
    distances, apart rectangles are at least `margin` from each other; rectangles whose corners
    are diagonally within `margin` may count as overlapping (the test errs towards overlap).
    """
    axes = np.concatenate(np.broadcast_arrays(a.axes, b.axes), axis=-1)  # (..., 2, 4)
    projected_a = a.corners() @ axes  # (..., 4 corners, 4 axes)
    projected_b = b.corners() @ axes
    gaps = np.maximum(
        projected_b.min(axis=-2) - projected_a.max(axis=-2),
        projected_a.min(axis=-2) - projected_b.max(axis=-2),
    )
    return gaps.max(axis=-1) < margin
