"""Ray-cast geometry buffers of posed meshes: z-depth, instance ids, NOC, normals, face ids.

Points are rows (N, 3) (per-pixel buffers (H, W, 3)). Camera points are in the OpenCV / ROS
optical frame (x right, y down, z forward), metres, and pixel (u, v) has its centre at integer
coordinates (geometry/camera.py).
A mesh with pose (R, t, s) puts its vertex X at the camera point R (s * X) + t (geometry/pose.py);
for an object the mesh is normalised (canonical frame, every vertex in [-0.5, 0.5]^3), so a hit
point's mesh coordinates are its NOC.

Each pixel casts one ray from the camera centre along d = K^-1 (u, v, 1), whose z component is 1,
so the ray parameter of a hit is its z-depth. Rays and meshes go to Open3D's Embree-backed
`RaycastingScene` (float32), one geometry per mesh, in one scene built per call; the NOC and
mesh coordinates of a hit are the barycentric interpolation of its triangle's mesh vertices.
"""

import atexit
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import open3d as o3d
import torch
import trimesh

from cad_perception.geometry.camera import validate_intrinsics

ROTATION_ATOL = 1e-4
"""Largest entry of |R^T R - I| accepted for a pose's rotation."""


@dataclass(frozen=True, eq=False)
class RenderObject:
    """A triangle mesh placed in the camera frame by a 9-DoF pose X_cam = R (s * X) + t.

    For an object, `mesh` is the normalised canonical CAD mesh (its vertices are NOCs) and s its
    size in metres along its own axes; for background geometry (room floor and walls), any mesh,
    e.g. in world coordinates with (R, t) the camera-from-world motion and s = 1. Face colours
    of the mesh, if any, are the part colours used by `synth.shading`.

    The arrays are stored as float64 copies; construction raises ValueError on a mesh without
    triangles, a non-finite pose, a rotation that is not one within ROTATION_ATOL, or s <= 0.
    """

    mesh: trimesh.Trimesh
    R: np.ndarray
    """(3, 3) rotation."""
    t: np.ndarray
    """(3,) translation, metres."""
    s: np.ndarray
    """(3,) per-axis scale, > 0."""

    def __post_init__(self) -> None:
        if not isinstance(self.mesh, trimesh.Trimesh) or len(self.mesh.faces) == 0:
            raise ValueError("mesh must be a trimesh.Trimesh with at least one triangle")
        for name, shape in (("R", (3, 3)), ("t", (3,)), ("s", (3,))):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name} must be finite, got {value.tolist()}")
            object.__setattr__(self, name, value)
        if (self.s <= 0).any():
            raise ValueError(f"s must be > 0 on every axis, got {self.s.tolist()}")
        if np.abs(self.R.T @ self.R - np.eye(3)).max() > ROTATION_ATOL or np.linalg.det(self.R) < 0:
            raise ValueError(f"R must be a rotation matrix, got {self.R.tolist()}")

    @classmethod
    def in_camera_frame(cls, mesh: trimesh.Trimesh) -> "RenderObject":
        """A mesh whose vertices are camera points already (identity pose)."""
        return cls(mesh=mesh, R=np.eye(3), t=np.zeros(3), s=np.ones(3))

    def camera_vertices(self) -> np.ndarray:
        """(V, 3) float64 mesh vertices in the camera frame: (X * s) @ R^T + t."""
        return (np.asarray(self.mesh.vertices) * self.s) @ self.R.T + self.t


class GeometryBuffers(NamedTuple):
    """Per-pixel ground truth of one rendered view of H x W pixels.

    Meshes are indexed in render order: the objects first, then the background meshes.
    """

    depth: np.ndarray
    """(H, W) float32 z-depth in metres, 0 where no mesh is hit."""
    instance: np.ndarray
    """(H, W) int32: i + 1 where object i is hit, 0 for background meshes and empty pixels."""
    noc: np.ndarray
    """(H, W, 3) float32 the hit point in the hit object's canonical frame, NaN off objects."""
    normals: np.ndarray
    """(H, W, 3) float32 unit normals of the hit triangles in the camera frame, turned towards
    the camera (two-sided surfaces), 0 where no mesh is hit."""
    points: np.ndarray
    """(H, W, 3) float32 hit points in the camera frame, metres, 0 where no mesh is hit."""
    local_points: np.ndarray
    """(H, W, 3) float32 hit points in the hit mesh's own axes scaled to metres (s * X), the
    surface coordinates textures are computed from so that they stick to the surface; NaN where
    no mesh is hit."""
    mesh_ids: np.ndarray
    """(H, W) int32 index of the hit mesh in render order, -1 where no mesh is hit."""
    face_ids: np.ndarray
    """(H, W) int32 index of the hit triangle within its mesh, -1 where no mesh is hit."""


def camera_rays(K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rays (H, W, 6) float32 = (origin, direction) through the pixel centres of K (3, 3).

    Origins are the camera centre (0); directions are K^-1 (u, v, 1), so their z is exactly 1
    and a hit's ray parameter is its z-depth. Raises ValueError on invalid K or size.
    """
    height, width = _checked_size(size)
    return _cached_rays(_as_intrinsics(K).tobytes(), height, width).numpy().copy()


def render(
    objects: Sequence[RenderObject],
    K: np.ndarray,
    size: tuple[int, int],
    background: Sequence[RenderObject] = (),
) -> GeometryBuffers:
    """Ray-cast `objects` and `background` meshes seen through intrinsics K (3, 3).

    size is (H, W) in pixels. Objects get instance ids 1, 2, ... in order and NOCs; background
    meshes occlude and are occluded like objects but have instance 0 and NaN NOC. The nearest
    surface along each ray wins. Raises ValueError on invalid K (see
    geometry.camera.validate_intrinsics), a non-positive size or items that are not
    RenderObjects.
    """
    height, width = _checked_size(size)
    rays = _cached_rays(_as_intrinsics(K).tobytes(), height, width)
    items = [*objects, *background]
    for item in items:
        if not isinstance(item, RenderObject):
            raise ValueError(f"objects and background must be RenderObjects, got {type(item)}")

    if not items:
        return _empty_buffers(height, width)
    scene = o3d.t.geometry.RaycastingScene()
    geometry_ids = [
        scene.add_triangles(
            o3d.core.Tensor(item.camera_vertices().astype(np.float32)),
            o3d.core.Tensor(np.asarray(item.mesh.faces, dtype=np.uint32)),
        )
        for item in items
    ]
    hits = scene.cast_rays(rays)

    # The per-mesh tables below have one extra last row for "no hit", picked by mesh id -1.
    mesh_ids = _mesh_ids(hits["geometry_ids"].numpy(), geometry_ids)
    hit = mesh_ids >= 0
    face_ids = np.where(hit, hits["primitive_ids"].numpy().astype(np.int32), -1)
    local = _barycentric_points(items, mesh_ids, face_ids, hits["primitive_uvs"].numpy())
    on_object = np.take(np.arange(len(items) + 1) < len(objects), mesh_ids)
    scales = np.vstack([*(item.s for item in items), np.full(3, np.nan)]).astype(np.float32)

    depth = np.where(hit, hits["t_hit"].numpy(), np.float32(0.0))
    directions = rays.numpy()[..., 3:]
    normals = hits["primitive_normals"].numpy()  # 0 where no mesh is hit
    facing_away = _dot(normals, directions) > 0
    normals = np.where(facing_away[..., None], -normals, normals)  # a copy, owned by numpy
    return GeometryBuffers(
        depth=depth,
        instance=np.where(on_object, mesh_ids + 1, 0).astype(np.int32),
        noc=np.where(on_object[..., None], local, np.float32(np.nan)),
        normals=normals,
        points=directions * depth[..., None],
        local_points=local * np.take(scales, mesh_ids, axis=0),
        mesh_ids=mesh_ids,
        face_ids=face_ids,
    )


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products (...) of vectors (..., 3), as channel arithmetic (faster than einsum)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _mesh_ids(geometry_ids: np.ndarray, added: Sequence[int]) -> np.ndarray:
    """(H, W) int32 position in `added` of each pixel's Open3D geometry id (H, W), -1 for none
    (Open3D's INVALID_ID)."""
    lookup = np.full(max(added) + 2, -1, dtype=np.int32)
    lookup[list(added)] = np.arange(len(added))
    return np.take(lookup, np.minimum(geometry_ids, len(lookup) - 1))


def _barycentric_points(
    items: Sequence[RenderObject], mesh_ids: np.ndarray, face_ids: np.ndarray, uvs: np.ndarray
) -> np.ndarray:
    """(H, W, 3) float32 mesh-frame points of the hits on triangles face_ids (H, W) of meshes
    mesh_ids (H, W); 0 where no mesh is hit (ids -1).

    uvs (H, W, 2) are Embree's barycentric coordinates: p = (1 - u - v) p0 + u p1 + v p2
    = p0 + u (p1 - p0) + v (p2 - p0).
    """
    # Per face: its first corner p0 and its edges p1 - p0, p2 - p0, as 9 planes (9, F + 1);
    # planes, as numpy runs arithmetic on whole planes faster than on interleaved columns.
    tables = []
    for item in items:
        corners = np.asarray(item.mesh.vertices, dtype=np.float32)[item.mesh.faces]
        edges = corners[:, 1:] - corners[:, :1]
        tables.append(np.concatenate([corners[:, 0], edges[:, 0], edges[:, 1]], axis=1))
    tables.append(np.zeros((1, 9), dtype=np.float32))  # the "no hit" row, face index -1
    face_offsets = np.cumsum([0] + [len(item.mesh.faces) for item in items])
    face_offsets[-1] = 0
    faces = np.take(face_offsets, mesh_ids) + face_ids  # (H, W), -1 where no mesh is hit
    table = np.ascontiguousarray(np.concatenate(tables).T)
    corner, edge1, edge2 = np.take(table, faces.reshape(-1), axis=1).reshape(3, 3, -1)
    u, v = uvs[..., 0].reshape(-1), uvs[..., 1].reshape(-1)
    planes = corner + u * edge1 + v * edge2  # (3, H W)
    return np.ascontiguousarray(planes.T).reshape(*mesh_ids.shape, 3)


def _empty_buffers(height: int, width: int) -> GeometryBuffers:
    """The buffers of a view in which nothing is hit."""
    zeros = np.zeros((height, width, 3), dtype=np.float32)
    nans = np.full((height, width, 3), np.nan, dtype=np.float32)
    no_ids = np.full((height, width), -1, dtype=np.int32)
    return GeometryBuffers(
        depth=np.zeros((height, width), dtype=np.float32),
        instance=np.zeros((height, width), dtype=np.int32),
        noc=nans,
        normals=zeros,
        points=zeros.copy(),
        local_points=nans.copy(),
        mesh_ids=no_ids,
        face_ids=no_ids.copy(),
    )


@functools.lru_cache(maxsize=8)
def _cached_rays(K_bytes: bytes, height: int, width: int) -> o3d.core.Tensor:
    """Open3D tensor (H, W, 6) float32 of `camera_rays` for the float64 K (3, 3) in K_bytes.

    K is validated here, so a valid camera is checked once; an invalid one raises ValueError on
    every call (exceptions are not cached). Directions are K^-1 (u, v, 1) for the pixel centres,
    written out for an upper-triangular K: scenes draw new intrinsics, so this runs per camera.
    """
    K = np.frombuffer(K_bytes, dtype=np.float64).reshape(3, 3)
    validate_intrinsics(torch.from_numpy(K.copy()))
    (fx, skew, cx), (_, fy, cy) = K[0], K[1]
    y = ((np.arange(height) - cy) / fy)[:, None]  # (H, 1): K is upper triangular
    x = (np.arange(width)[None, :] - cx - skew * y) / fx  # (H, W)
    rays = np.zeros((height, width, 6), dtype=np.float32)  # origins stay at the camera centre
    rays[..., 3] = x
    rays[..., 4] = y
    rays[..., 5] = 1.0  # exactly, so that a hit's ray parameter is its z-depth
    return o3d.core.Tensor(rays)


# Cached open3d tensors still alive when the interpreter exits make open3d report a leak and
# turn the exit code into 1, so the cache is emptied first.
atexit.register(_cached_rays.cache_clear)


def _as_intrinsics(K: np.ndarray) -> np.ndarray:
    """K as a (3, 3) float64 array; ValueError on another shape (values: see _cached_rays)."""
    K = np.array(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {K.shape}")
    return K


def _checked_size(size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) as ints; ValueError unless both are positive integers."""
    size = tuple(np.ravel(size))
    if len(size) != 2 or any(int(n) != n or n <= 0 for n in size):
        raise ValueError(f"size must be (H, W) with positive integers, got {size}")
    return int(size[0]), int(size[1])
