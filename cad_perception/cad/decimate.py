"""Bounded-size copies of CAD meshes for planners (quadric error decimation, open3d)."""

import numpy as np
import open3d as o3d
import trimesh

DEFAULT_MAX_TRIANGLES = 2000
"""Triangles of a planning mesh: enough for a chair's legs, small enough for collision checks."""


def decimate(mesh: trimesh.Trimesh, max_triangles: int = DEFAULT_MAX_TRIANGLES) -> trimesh.Trimesh:
    """A copy of `mesh` with at most `max_triangles` triangles (the mesh itself, merged, when it
    already has no more). Vertices (V, 3) float64 and faces (F, 3) int64; colours are dropped."""
    if max_triangles < 4:
        raise ValueError(f"max_triangles must be >= 4, got {max_triangles}")
    merged = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices, dtype=np.float64),
        faces=np.asarray(mesh.faces, dtype=np.int64),
        process=True,  # merges duplicate vertices so the decimation sees a connected surface
    )
    if len(merged.faces) <= max_triangles:
        return merged
    source = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(merged.vertices), o3d.utility.Vector3iVector(merged.faces)
    )
    reduced = source.simplify_quadric_decimation(target_number_of_triangles=max_triangles)
    reduced.remove_unreferenced_vertices()
    reduced.remove_degenerate_triangles()
    return trimesh.Trimesh(
        vertices=np.asarray(reduced.vertices), faces=np.asarray(reduced.triangles), process=False
    )
