"""Occupancy grids and surface samples of canonical CAD meshes.

Points are rows (N, 3) of (x, y, z) in the canonical frame (DESIGN.md: y up, bounding box
centred at the origin, diagonal 1, so a normalised mesh lies in [-0.5, 0.5]^3). A grid is a
(32, 32, 32) bool array indexed [x, y, z]: voxel [i, j, k] is the closed cube of side 1/32 centred
at ((i, j, k) + 0.5) / 32 - 0.5, so the grid covers [-0.5, 0.5]^3 exactly.
"""

import numpy as np
import trimesh
from scipy import ndimage

GRID_SIZE = 32
"""Voxels per side of an occupancy grid."""

GRID_SHAPE = (GRID_SIZE, GRID_SIZE, GRID_SIZE)

PACKED_GRID_BYTES = GRID_SIZE**3 // 8
"""Length of `pack_grid`'s output: one bit per voxel."""

TOUCH_TOLERANCE = 1e-6
"""Gap (in voxel sides) up to which a triangle still counts as touching a voxel, so that a
surface lying on a voxel boundary occupies the voxels on both sides despite round-off."""

_PAIRS_PER_CHUNK = 1 << 16
"""Bound on the (triangle, voxel) pairs tested at once, to bound memory for huge triangles."""

_BOUNDS_TOLERANCE = 1e-6
"""How far (canonical units) a mesh may stick out of [-0.5, 0.5]^3 before voxelize refuses it."""


def voxelize(mesh: trimesh.Trimesh, *, solid: bool = True) -> np.ndarray:
    """Occupancy grid (32, 32, 32) bool, indexed [x, y, z], of a normalised mesh.

    A voxel is occupied when the mesh surface touches it (exact triangle / cube overlap by the
    separating axis theorem, boundaries included). With `solid` (the default) every voxel that
    the surface voxels enclose (unreachable from the grid border through face-adjacent empty
    voxels) is occupied too. For a watertight mesh that is exactly its interior. A mesh that is
    not watertight (most ShapeNet models) is filled wherever its surface voxels close up, as
    binvox's solid grids are, so that a model's grid does not hinge on a tiny gap; an open one
    (a bin without a lid) stays a shell. Without `solid` the grid is the surface voxels only.

    Raises ValueError when the mesh is empty or sticks out of [-0.5, 0.5]^3 (not normalised).
    """
    triangles = np.asarray(mesh.triangles, dtype=np.float64)  # (F, 3, 3)
    if len(triangles) == 0:
        raise ValueError("cannot voxelize a mesh without triangles")
    if np.abs(triangles).max() > 0.5 + _BOUNDS_TOLERANCE:
        raise ValueError(
            f"mesh exceeds [-0.5, 0.5]^3 (max |coordinate| {np.abs(triangles).max():.6g}); "
            "normalise it first"
        )
    # Voxel units, laid out (3 axes, 3 vertices, F) so that every per-axis array is contiguous.
    grid = _surface_grid(np.ascontiguousarray(((triangles + 0.5) * GRID_SIZE).transpose(2, 1, 0)))
    return ndimage.binary_fill_holes(grid) if solid else grid


def sample_surface(mesh: trimesh.Trimesh, count: int, seed: int) -> np.ndarray:
    """Points (count, 3) float32 drawn uniformly over the surface area of `mesh`.

    Faces are drawn with probability proportional to their area, points uniformly inside each
    face; the same mesh, count and seed give the same points. Raises ValueError for a negative
    count or a mesh without surface area.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    areas = np.asarray(mesh.area_faces, dtype=np.float64)  # (F,)
    total = areas.sum()
    if not total > 0:
        raise ValueError("cannot sample a mesh without surface area")
    rng = np.random.default_rng(seed)
    face_ids = rng.choice(len(areas), size=count, p=areas / total)
    # Uniform barycentric coordinates: (1 - sqrt(r1), sqrt(r1) (1 - r2), sqrt(r1) r2).
    r1, r2 = rng.random((2, count))
    root = np.sqrt(r1)
    weights = np.stack([1 - root, root * (1 - r2), root * r2], axis=1)  # (count, 3)
    points = np.einsum("nv,nvd->nd", weights, mesh.triangles[face_ids])
    return points.astype(np.float32)


def pack_grid(grid: np.ndarray) -> bytes:
    """(32, 32, 32) bool grid -> PACKED_GRID_BYTES bytes (np.packbits of the C-order flattening)."""
    grid = np.asarray(grid)
    if grid.shape != GRID_SHAPE or grid.dtype != np.bool_:
        raise ValueError(f"grid must be a {GRID_SHAPE} bool array, got {grid.shape} {grid.dtype}")
    return np.packbits(grid.reshape(-1)).tobytes()


def unpack_grid(data: bytes) -> np.ndarray:
    """Inverse of `pack_grid`: PACKED_GRID_BYTES bytes -> (32, 32, 32) bool grid."""
    if len(data) != PACKED_GRID_BYTES:
        raise ValueError(f"a packed grid has {PACKED_GRID_BYTES} bytes, got {len(data)}")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    return bits.astype(bool).reshape(GRID_SHAPE)


def grid_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (32, 32, 32) bool grids; 1.0 when both are empty."""
    return float(pairwise_grid_iou(a[None], b[None])[0, 0])


def pairwise_grid_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N, M) float64 of every grid in a (N, 32, 32, 32) with every grid in b (M, 32, 32, 32).

    Two empty grids have IoU 1.0 (they are identical).
    """
    for name, grids in (("a", a), ("b", b)):
        if grids.ndim != 4 or grids.shape[1:] != GRID_SHAPE or grids.dtype != np.bool_:
            raise ValueError(
                f"{name} must be a (N, {GRID_SIZE}, {GRID_SIZE}, {GRID_SIZE}) bool array"
            )
    flat_a = a.reshape(len(a), -1).astype(np.float32)
    flat_b = b.reshape(len(b), -1).astype(np.float32)
    intersection = (flat_a @ flat_b.T).astype(np.float64)  # exact: counts < 2^24
    union = flat_a.sum(1)[:, None] + flat_b.sum(1)[None, :] - intersection
    return np.divide(intersection, union, out=np.ones_like(intersection), where=union > 0)


def _surface_grid(vertices: np.ndarray) -> np.ndarray:
    """(32, 32, 32) bool grid of the voxels touched by triangles (3 axes, 3 vertices, F).

    Coordinates are in voxel units: voxel [i, j, k] is the closed cube [i, i+1] x [j, j+1] x
    [k, k+1], its lowest corner is (i, j, k). Each triangle is tested against the voxels its
    bounding box overlaps.
    """
    lower = np.ceil(vertices.min(axis=1) - TOUCH_TOLERANCE) - 1  # (3, F) first voxel touched
    upper = np.floor(vertices.max(axis=1) + TOUCH_TOLERANCE)  # (3, F) last voxel touched
    lower = np.clip(lower, 0, GRID_SIZE - 1).astype(np.int64)
    upper = np.clip(upper, 0, GRID_SIZE - 1).astype(np.int64)
    box_sizes = upper - lower + 1  # (3, F) voxels per axis in each bounding box
    box_counts = box_sizes.prod(axis=0)  # (F,)
    weights, biases = _touch_inequalities(vertices)

    grid = np.zeros(GRID_SHAPE, dtype=bool)
    chunk_ends = np.searchsorted(
        np.cumsum(box_counts), np.arange(_PAIRS_PER_CHUNK, box_counts.sum(), _PAIRS_PER_CHUNK)
    )
    for faces in np.split(np.arange(vertices.shape[2]), chunk_ends):
        # One entry per (triangle, voxel of its bounding box) pair.
        counts = box_counts[faces]
        face_of = np.repeat(faces, counts)  # (P,)
        rank = np.arange(len(face_of)) - np.repeat(np.cumsum(counts) - counts, counts)
        size_x, size_y = box_sizes[0, face_of], box_sizes[1, face_of]
        rank_in_box = (rank % size_x, rank // size_x % size_y, rank // (size_x * size_y))
        voxels = np.take(lower, face_of, axis=1) + np.stack(rank_in_box)  # (3, P)
        # The plane test first: it rules out most of a large triangle's bounding box.
        near_plane = _satisfy(weights[:, :2], biases[:2], face_of, voxels)
        face_of, voxels = face_of[near_plane], voxels[:, near_plane]
        touching = _satisfy(weights[:, 2:], biases[2:], face_of, voxels)
        grid[tuple(voxels[:, touching])] = True
    return grid


def _satisfy(
    weights: np.ndarray, biases: np.ndarray, face_of: np.ndarray, voxels: np.ndarray
) -> np.ndarray:
    """(P,) bool: does voxel p (lowest corners (3, P)) satisfy every inequality of triangle
    face_of[p] (P,), given weights (3, R, F) and biases (R, F)? See `_touch_inequalities`."""
    values = np.take(biases, face_of, axis=1)  # (R, P)
    for axis, coordinate in enumerate(voxels.astype(np.float64)):
        values += np.take(weights[axis], face_of, axis=1) * coordinate
    return values.min(axis=0) >= -TOUCH_TOLERANCE


def _touch_inequalities(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """11 inequalities w . c + b >= 0 per triangle on a voxel's lowest corner c (voxel units)
    that all hold iff the triangle touches the voxel, given that their bounding boxes overlap.

    `vertices` is (3 axes, 3 vertices, F). Returns weights (3, 11, F) (x, y, z components) and
    biases (11, F), each inequality scaled to a unit weight vector so that its value is a
    distance. This is the separating axis theorem in the form of Schwarz and Seidel ("Fast
    parallel surface and solid voxelization on GPUs", 2010): 2 inequalities put the voxel's
    extreme corners along the triangle normal on either side of the triangle's plane, and 9 keep
    the voxel's projection onto each coordinate plane from lying wholly outside one edge of the
    projected triangle. Degenerate triangles and edges give zero weights and biases, which
    always hold.
    """
    edges = np.roll(vertices, -1, axis=1) - vertices  # (3, 3 edges, F): edge e leaves vertex e
    normal = np.cross(edges[:, 0], edges[:, 1], axis=0)  # (3, F)
    height = (normal * vertices[:, 0]).sum(axis=0)  # (F,) normal . x on the triangle's plane
    weights = np.zeros((3, 11, vertices.shape[2]))
    biases = np.empty((11, vertices.shape[2]))
    # The voxel corner highest along the normal is on or above the plane, the lowest on or below.
    weights[:, 0], biases[0] = normal, np.maximum(normal, 0).sum(axis=0) - height
    weights[:, 1], biases[1] = -normal, height - np.minimum(normal, 0).sum(axis=0)
    for view, (i, j, k) in enumerate(((0, 1, 2), (1, 2, 0), (2, 0, 1))):
        rows = slice(2 + 3 * view, 5 + 3 * view)
        # Inward normals (3 edges, F) of the triangle projected along axis k onto axes (i, j);
        # the projection runs anticlockwise when normal[k] >= 0.
        sign = np.where(normal[k] >= 0, 1.0, -1.0)
        inward_i, inward_j = -edges[j] * sign, edges[i] * sign
        weights[i, rows], weights[j, rows] = inward_i, inward_j
        # The voxel corner farthest inward, relative to the lowest corner, must not be outside.
        reach = np.maximum(inward_i, 0) + np.maximum(inward_j, 0)
        biases[rows] = reach - inward_i * vertices[i] - inward_j * vertices[j]
    length = np.sqrt((weights**2).sum(axis=0))  # (11, F)
    scale = np.divide(1.0, length, out=np.zeros_like(length), where=length > 0)
    return weights * scale, biases * scale
