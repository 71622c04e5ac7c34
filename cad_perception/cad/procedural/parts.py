"""Primitive parts of procedural furniture: lofted solids, boxes and cylinders of one colour each.

Frame: metres, y up, x to the right (width), z towards the front (depth). An outline is an
(N, 2) array of (x, z) points in increasing angle atan2(z, x), star-shaped about the origin.
Faces wind counter-clockwise seen from outside, so every part is a closed surface with outward
normals and a positive volume.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh

Color = tuple[int, int, int, int]
"""RGBA, 0-255."""

SEGMENTS = 32
"""Segments of round outlines (a multiple of 4, so round outlines are symmetric under 90 deg)."""


@dataclass(frozen=True)
class Part:
    """A closed triangle surface of one colour.

    vertices: (V, 3) float64 metres; faces: (F, 3) int64 indices into vertices.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: Color

    def moved(self, offset: Sequence[float]) -> "Part":
        """The part translated by offset (3,)."""
        return Part(self.vertices + np.asarray(offset, dtype=np.float64), self.faces, self.color)

    def rotated(self, axis: str, angle: float, pivot: Sequence[float] = (0.0, 0.0, 0.0)) -> "Part":
        """The part rotated by `angle` radians (right-hand rule) about `axis` through `pivot`."""
        pivot = np.asarray(pivot, dtype=np.float64)
        rotated = (self.vertices - pivot) @ rotation(axis, angle).T + pivot
        return Part(rotated, self.faces, self.color)


def rotation(axis: str, angle: float) -> np.ndarray:
    """The rotation matrix (3, 3) of `angle` radians about the coordinate axis 'x', 'y' or 'z'."""
    c, s = math.cos(angle), math.sin(angle)
    matrices = {
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
    }
    if axis not in matrices:
        raise ValueError(f"unknown axis {axis!r}: expected 'x', 'y' or 'z'")
    return np.array(matrices[axis], dtype=np.float64)


def ellipse(rx: float, rz: float, segments: int = SEGMENTS) -> np.ndarray:
    """Outline (segments, 2) of an ellipse with semi-axes rx (along x) and rz (along z)."""
    return superellipse(rx, rz, 2.0, segments)


def superellipse(rx: float, rz: float, exponent: float, segments: int = SEGMENTS) -> np.ndarray:
    """Outline (segments, 2) of |x/rx|^e + |z/rz|^e = 1: an ellipse for e = 2, a rounded
    rectangle for larger e. A vertex lies on each semi-axis, so the outline spans exactly
    [-rx, rx] x [-rz, rz].
    """
    angles = np.arange(segments) * (2 * math.pi / segments)
    # Exact zeros on the axes: |cos|^(2/e) would blow round-off such as cos(pi/2) = 6e-17 up.
    c, s = (np.where(np.abs(v) < 1e-12, 0.0, v) for v in (np.cos(angles), np.sin(angles)))
    power = 2.0 / exponent
    return np.stack(
        [rx * np.sign(c) * np.abs(c) ** power, rz * np.sign(s) * np.abs(s) ** power], axis=-1
    )


def rectangle(width: float, depth: float) -> np.ndarray:
    """Outline (4, 2) of a width x depth rectangle centred at the origin."""
    x, z = width / 2, depth / 2
    return np.array([[x, z], [-x, z], [-x, -z], [x, -z]], dtype=np.float64)


def loft(
    outlines: Sequence[np.ndarray], heights: Sequence[float], color: Color, closed: bool = False
) -> Part:
    """A solid swept through outlines (K of (N, 2)) placed at heights (K,).

    Consecutive outlines are joined by bands of quads. Open (the default): the first outline is
    capped facing down and the last facing up, so the outline sequence must run upwards through
    the outer surface and back down through any inner one (a bowl: outer bottom, outer top,
    inner top, inner floor). Closed: the last outline joins the first and there are no caps (a
    ring: outer bottom, outer top, inner top, inner bottom). Caps are fans from the outline's
    centroid and every quad is split alike, so a rotation that shifts the outlines' vertices
    cyclically (a half or quarter turn of a symmetric outline) maps the triangles onto each other.
    """
    if len(outlines) != len(heights) or len(outlines) < 2:
        raise ValueError(f"need >= 2 outlines, one per height: got {len(outlines)}, {len(heights)}")
    n = len(outlines[0])
    loops = []
    for outline, y in zip(outlines, heights, strict=True):
        outline = np.asarray(outline, dtype=np.float64)
        if outline.shape != (n, 2):
            raise ValueError(f"outlines must all have shape ({n}, 2), got {outline.shape}")
        loops.append(np.column_stack([outline[:, 0], np.full(n, float(y)), outline[:, 1]]))
    vertices = np.concatenate(loops)
    index = np.arange(len(loops) * n).reshape(len(loops), n)
    pairs = [(k, k + 1) for k in range(len(loops) - 1)] + ([(len(loops) - 1, 0)] if closed else [])
    faces = [_band(index[a], index[b]) for a, b in pairs]
    if not closed:
        first_centre, last_centre = len(vertices), len(vertices) + 1
        vertices = np.concatenate([vertices, [loops[0].mean(axis=0), loops[-1].mean(axis=0)]])
        faces.append(_fan(first_centre, index[0], facing_up=False))
        faces.append(_fan(last_centre, index[-1], facing_up=True))
    return Part(vertices, np.concatenate(faces).astype(np.int64), color)


def prism(outline: np.ndarray, y0: float, y1: float, color: Color, top_scale: float = 1.0) -> Part:
    """A vertical prism from y0 to y1 over `outline` (N, 2); a frustum if top_scale != 1."""
    outline = np.asarray(outline, dtype=np.float64)
    return loft([outline, outline * top_scale], [y0, y1], color)


def box(lo: Sequence[float], hi: Sequence[float], color: Color) -> Part:
    """An axis-aligned box between the corners lo (3,) and hi (3,)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if np.any(hi <= lo):
        raise ValueError(f"box corners must satisfy lo < hi, got {lo} and {hi}")
    size, centre = hi - lo, (hi + lo) / 2
    part = prism(rectangle(size[0], size[2]), lo[1], hi[1], color)
    return part.moved([centre[0], 0.0, centre[2]])


def cylinder(
    radius: float,
    y0: float,
    y1: float,
    color: Color,
    x: float = 0.0,
    z: float = 0.0,
    top_radius: float | None = None,
    segments: int = SEGMENTS,
) -> Part:
    """A vertical cylinder (a cone frustum if top_radius is given) on the axis through (x, z)."""
    top_scale = 1.0 if top_radius is None else top_radius / radius
    return prism(ellipse(radius, radius, segments), y0, y1, color, top_scale).moved([x, 0.0, z])


def assemble(parts: Sequence[Part]) -> trimesh.Trimesh:
    """One mesh of all parts, its bounding box centred at the origin, per-face colours by part.

    Parts keep their own vertices (no merging, no boolean union), so each stays a closed surface.
    """
    if not parts:
        raise ValueError("cannot assemble a mesh from no parts")
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    vertices = np.concatenate([p.vertices for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)])
    colors = np.concatenate(
        [np.tile(np.array(p.color, np.uint8), (len(p.faces), 1)) for p in parts]
    )
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    return trimesh.Trimesh(vertices - centre, faces, face_colors=colors, process=False)


def _band(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Triangles (2N, 3) joining vertex loops a (N,) and b (N,), facing outwards when b lies
    above a on an outer wall (and consistently elsewhere along a loft)."""
    a_next, b_next = a[_next(len(a))], b[_next(len(b))]
    first = np.stack([a, b, a_next], axis=-1)
    second = np.stack([a_next, b, b_next], axis=-1)
    return np.concatenate([first, second])


def _fan(centre: int, loop: np.ndarray, facing_up: bool) -> np.ndarray:
    """Triangles (N, 3) capping vertex loop (N,) from a centre vertex, facing +y or -y."""
    loop_next = loop[_next(len(loop))]
    centres = np.full_like(loop, centre)
    if facing_up:
        return np.stack([centres, loop_next, loop], axis=-1)
    return np.stack([centres, loop, loop_next], axis=-1)


def _next(n: int) -> np.ndarray:
    """Indices (n,) of each element's successor around a loop of n."""
    return (np.arange(n) + 1) % n
