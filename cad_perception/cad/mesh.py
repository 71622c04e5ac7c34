"""Mesh files in, canonical CAD meshes out: loading, normalisation and GLB export.

Points are rows (N, 3) of (x, y, z). A loaded mesh is one `trimesh.Trimesh` with one RGBA colour
(uint8) per face: the parts of a scene are merged with their scene-graph transforms applied, and
textures and materials are baked into the face colours. The canonical frame (DESIGN.md) is y up,
bounding box centred at the origin, bounding-box diagonal 1. Input meshes are assumed to be y up
already (ShapeNet's are), so normalisation only translates and scales uniformly, never rotates.

A usable mesh has at least one triangle, finite vertices and a surface: meshes whose triangles
are all degenerate (every vertex on one line or at one point) are rejected, flat ones (a single
plane, one zero extent) are accepted.
"""

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import trimesh

from cad_perception.cad.errors import MeshError

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".off", ".ply", ".stl")
"""File types `load_mesh` reads (case-insensitive); an OBJ's MTL and textures come along."""

MIN_RELATIVE_AREA = 1e-12
"""Surface area / squared bounding-box diagonal below which a mesh counts as a line or point."""


class NormalizedMesh(NamedTuple):
    """A mesh in the canonical frame and the similarity that put it there.

    For vertices as rows: normalised = (source - offset) * factor.
    """

    mesh: trimesh.Trimesh
    offset: np.ndarray
    """(3,) float64, the source bounding-box centre (subtracted first)."""
    factor: float
    """1 / the source bounding-box diagonal (multiplied after)."""
    source_extents: np.ndarray
    """(3,) float64, the source bounding-box size along x, y, z."""


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a mesh file into one Trimesh with per-face colours.

    Scenes with many parts (OBJ groups and materials, glTF nodes) are merged into one mesh with
    each part's scene-graph transform applied; points and lines in the file are ignored. A face's
    colour is its texture's colour at the face's UV centroid where it has a texture, else its
    material's colour, else its own face or vertex colour. Assets (MTL files, textures) are found
    by their relative paths, also outside the file's folder (ShapeNet's "../images/").
    Coincident vertices are merged.

    Raises MeshError, naming the file, when it is missing, of an unsupported type (the message
    lists SUPPORTED_SUFFIXES), unreadable, or holds no usable mesh (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such file")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise MeshError(f"{path}: unsupported file type {path.suffix!r} (supported: {supported})")
    try:
        # ShapeNet's MTL files name their textures as ../images/*, outside the file's folder.
        resolver = trimesh.resolvers.FilePathResolver(str(path), allow_anywhere=True)
        # process=False keeps the file's data as is, so that bad vertices are seen, not dropped.
        scene = trimesh.load_scene(str(path), resolver=resolver, process=False)
    except Exception as err:  # trimesh's parsers raise many unrelated types on corrupt files
        raise MeshError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from err

    vertices, faces, colors = [], [], []
    vertex_count = 0
    for node in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node]
        part = scene.geometry[geometry_name]
        if not isinstance(part, trimesh.Trimesh) or len(part.faces) == 0:
            continue
        vertices.append(trimesh.transform_points(part.vertices, transform))
        faces.append(part.faces + vertex_count)
        colors.append(_face_colors(part))
        vertex_count += len(part.vertices)
    if not faces:
        raise MeshError(f"{path}: the file holds no triangles")

    mesh = trimesh.Trimesh(
        vertices=np.concatenate(vertices),
        faces=np.concatenate(faces),
        face_colors=np.concatenate(colors),
        process=False,
        metadata={"file_path": str(path)},
    )
    _check_usable(mesh, str(path))
    mesh.merge_vertices()
    mesh.remove_unreferenced_vertices()
    logger.debug("loaded %s: %d vertices, %d faces", path, len(mesh.vertices), len(mesh.faces))
    return mesh


def normalize_mesh(mesh: trimesh.Trimesh) -> NormalizedMesh:
    """Move `mesh` into the canonical frame: bounding box centred at the origin, diagonal 1.

    Returns a new mesh (face colours kept); the input is not modified. Raises MeshError, naming
    the mesh's file when known (metadata "file_path"), when the mesh is not usable.
    """
    _check_usable(mesh, mesh.metadata.get("file_path", "mesh"))
    lower, upper = mesh.bounds
    offset = (lower + upper) / 2
    extents = upper - lower
    factor = 1.0 / float(np.linalg.norm(extents))
    normalized = mesh.copy()
    normalized.vertices = (mesh.vertices - offset) * factor
    return NormalizedMesh(mesh=normalized, offset=offset, factor=factor, source_extents=extents)


def export_glb(mesh: trimesh.Trimesh, path: str | os.PathLike) -> None:
    """Write `mesh` as binary glTF with its face colours as vertex colours (COLOR_0).

    glTF has no face colours, so a vertex shared by faces of different colours is written once
    per colour; every face's three vertices then carry the face's colour. Positions are stored
    as float32, as glTF requires.
    """
    face_colors = np.asarray(mesh.visual.face_colors, dtype=np.uint8)  # (F, 4)
    palette, color_ids = np.unique(face_colors, axis=0, return_inverse=True)
    corners = np.stack([mesh.faces.reshape(-1), np.repeat(color_ids.reshape(-1), 3)], axis=1)
    # One output vertex per distinct (vertex, colour) pair; sorted, so uncoloured splits keep
    # the original vertex order.
    pairs, corner_ids = np.unique(corners, axis=0, return_inverse=True)
    flat = trimesh.Trimesh(
        vertices=mesh.vertices[pairs[:, 0]],
        faces=corner_ids.reshape(-1, 3),
        vertex_colors=palette[pairs[:, 1]],
        process=False,
    )
    Path(path).write_bytes(flat.export(file_type="glb"))


def _face_colors(part: trimesh.Trimesh) -> np.ndarray:
    """(F, 4) uint8 RGBA colour of each face of one loaded part (see `load_mesh`)."""
    visual = part.visual
    if not isinstance(visual, trimesh.visual.TextureVisuals):
        return np.asarray(visual.face_colors, dtype=np.uint8)
    material = visual.material
    colors = None
    if visual.uv is not None and len(visual.uv) == len(part.vertices):
        colors = material.to_color(visual.uv[part.faces].mean(axis=1))
    if colors is None or np.ndim(colors) != 2:  # no texture image: one colour for the part
        main_color = getattr(material, "main_color", None)
        if main_color is None:
            main_color = trimesh.visual.DEFAULT_COLOR
        colors = np.tile(trimesh.visual.to_rgba(main_color), (len(part.faces), 1))
    return np.asarray(colors, dtype=np.uint8)


def _check_usable(mesh: trimesh.Trimesh, source: str) -> None:
    """Raise MeshError naming `source` unless `mesh` has triangles, finite vertices, a surface."""
    if len(mesh.faces) == 0:
        raise MeshError(f"{source}: the mesh has no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise MeshError(f"{source}: the mesh has non-finite vertex coordinates (NaN or inf)")
    if mesh.faces.min() < 0 or mesh.faces.max() >= len(mesh.vertices):
        raise MeshError(f"{source}: the mesh has face indices out of range")
    diagonal = float(np.linalg.norm(mesh.extents))
    if diagonal == 0.0:
        raise MeshError(f"{source}: the mesh has zero size (all vertices coincide)")
    if mesh.area <= MIN_RELATIVE_AREA * diagonal**2:
        raise MeshError(f"{source}: the mesh has no surface (all its vertices lie on one line)")
