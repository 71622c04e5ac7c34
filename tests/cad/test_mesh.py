"""Mesh loading (every format, colours, scenes), normalisation, MeshError cases, GLB export."""

from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from cad_perception.cad.errors import MeshError
from cad_perception.cad.mesh import (
    SUPPORTED_SUFFIXES,
    export_glb,
    load_mesh,
    normalize_mesh,
)

SHAPENET_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "shapenet_sample"

RED, GREEN, BLUE, YELLOW = (255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255), (255, 255, 0, 255)
GREY = tuple(trimesh.visual.DEFAULT_COLOR)


def sorted_triangles(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Triangles (F, 9) and face colours (F, 4) in a canonical face order, for comparisons of
    meshes whose faces may come in another order (merged scene parts)."""
    rows = mesh.triangles.reshape(-1, 9)
    order = np.lexsort(np.round(rows, 9).T[::-1])
    return rows[order], np.asarray(mesh.visual.face_colors)[order]


def colored_box(extents=(1.0, 2.0, 3.0)) -> trimesh.Trimesh:
    """A box whose 12 faces have 12 different colours."""
    box = trimesh.creation.box(extents)
    colors = np.zeros((12, 4), dtype=np.uint8)
    colors[:, 0] = np.arange(12) * 20
    colors[:, 1] = 255 - np.arange(12) * 20
    colors[:, 2:] = 255
    box.visual.face_colors = colors
    return box


# -- loading, format by format ------------------------------------------------------------------


def write_textured_box(folder: Path) -> tuple[Path, trimesh.Trimesh]:
    """A box as a ShapeNet-style OBJ: models/box.obj + box.mtl, texture in images/ (found as
    ../images/texture.png). The 8x8 texture has four coloured quadrants; the UV centroids of the
    faces across x lie in the red one, across y in the green one, across z in the blue one (each
    face's first UV corner lies in another quadrant). The MTL's Kd is yellow."""
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    (folder / "models").mkdir()
    (folder / "images").mkdir()
    texture = np.zeros((8, 8, 3), dtype=np.uint8)  # rows from the top (v = 1) down
    texture[:4, :4], texture[:4, 4:] = RED[:3], GREEN[:3]
    texture[4:, :4], texture[4:, 4:] = BLUE[:3], YELLOW[:3]
    Image.fromarray(texture).save(folder / "images" / "texture.png")
    quadrant_uv = {0: (0.25, 0.75), 1: (0.75, 0.75), 2: (0.25, 0.25)}  # red, green, blue
    lines = ["mtllib box.mtl", "usemtl skin"]
    lines += [f"v {x} {y} {z}" for x, y, z in box.vertices]
    for face_index, (face, normal) in enumerate(zip(box.faces, box.face_normals, strict=True)):
        u, v = quadrant_uv[int(np.argmax(np.abs(normal)))]
        lines += [f"vt {u + du} {v + dv}" for du, dv in ((0.4, -0.2), (-0.2, -0.2), (-0.2, 0.4))]
        first_uv = 3 * face_index + 1
        lines.append("f " + " ".join(f"{v + 1}/{first_uv + c}" for c, v in enumerate(face)))
    (folder / "models" / "box.obj").write_text("\n".join(lines) + "\n")
    (folder / "models" / "box.mtl").write_text(
        "newmtl skin\nKd 1 1 0\nmap_Kd ../images/texture.png\n"
    )
    return folder / "models" / "box.obj", box


def test_obj_colours_come_from_the_texture_outside_the_obj_folder(tmp_path):
    path, box = write_textured_box(tmp_path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12
    assert len(mesh.vertices) == 8  # the per-face UV seams are merged away
    assert mesh.is_watertight
    expected = np.array([(RED, GREEN, BLUE)[np.argmax(np.abs(n))] for n in mesh.face_normals])
    np.testing.assert_array_equal(mesh.visual.face_colors, expected)
    np.testing.assert_allclose(sorted_triangles(mesh)[0], sorted_triangles(box)[0])


def test_obj_without_its_texture_falls_back_to_the_material_colour(tmp_path):
    path, _ = write_textured_box(tmp_path)
    (tmp_path / "images" / "texture.png").unlink()
    mesh = load_mesh(path)
    assert (np.asarray(mesh.visual.face_colors) == YELLOW).all()


@pytest.mark.parametrize("suffix", [".ply", ".stl", ".off", ".glb", ".PLY"])
def test_single_mesh_formats_keep_the_geometry(tmp_path, suffix):
    box = colored_box()
    path = tmp_path / f"box{suffix}"
    box.export(path, file_type=suffix[1:].lower())
    mesh = load_mesh(path)
    assert mesh.metadata["file_path"] == str(path)
    triangles, colors = sorted_triangles(mesh)
    expected_triangles, expected_colors = sorted_triangles(box)
    np.testing.assert_allclose(triangles, expected_triangles, atol=1e-6)
    if suffix.lower() == ".ply":  # face colours in the file (GLB colours: tests below)
        np.testing.assert_array_equal(colors, expected_colors)
    elif suffix.lower() in (".stl", ".off"):  # no colours in the file
        assert (colors == GREY).all()


def two_part_scene() -> tuple[trimesh.Scene, trimesh.Trimesh]:
    """A scene with a red cylinder and a blue box placed by rotating and translating transforms,
    and the expected merged mesh."""
    cylinder = trimesh.creation.cylinder(radius=0.2, height=1.0, sections=12)
    cylinder.visual.face_colors = RED
    box = trimesh.creation.box((0.5, 0.3, 0.1))
    box.visual.face_colors = BLUE
    place_cylinder = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    place_cylinder[:3, 3] = [1.0, 0.5, 0.0]
    place_box = trimesh.transformations.translation_matrix([-1.0, 0.0, 2.0])
    scene = trimesh.Scene()
    scene.add_geometry(cylinder, node_name="leg", transform=place_cylinder)
    scene.add_geometry(box, node_name="seat", transform=place_box)
    expected = trimesh.util.concatenate(
        [cylinder.copy().apply_transform(place_cylinder), box.copy().apply_transform(place_box)]
    )
    return scene, expected


@pytest.mark.parametrize("file_type", ["glb", "gltf"])
def test_scene_parts_are_merged_with_their_transforms_and_colours(tmp_path, file_type):
    scene, expected = two_part_scene()
    if file_type == "glb":
        path = tmp_path / "scene.glb"
        path.write_bytes(scene.export(file_type="glb"))
    else:  # a .gltf with its buffers in separate files
        for name, data in scene.export(file_type="gltf").items():
            (tmp_path / name).write_bytes(data)
        path = tmp_path / "model.gltf"
    mesh = load_mesh(path)
    triangles, colors = sorted_triangles(mesh)
    expected_triangles, expected_colors = sorted_triangles(expected)
    np.testing.assert_allclose(triangles, expected_triangles, atol=1e-6)
    np.testing.assert_array_equal(colors, expected_colors)


# -- errors ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(MeshError, match=r"nothing\.obj: no such file"):
        load_mesh(tmp_path / "nothing.obj")


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "chair.fbx"
    path.write_bytes(b"Kaydara FBX Binary")
    with pytest.raises(MeshError, match=r"chair\.fbx: unsupported file type '\.fbx'") as info:
        load_mesh(path)
    assert all(suffix in str(info.value) for suffix in SUPPORTED_SUFFIXES)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.obj", "", "no triangles"),
        ("empty.ply", "", "cannot read"),
        ("empty.glb", "", "cannot read"),
        ("garbage.glb", "glTF\x02\x00\x00\x00garbage", "cannot read"),
        ("points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no triangles"),
        ("nan.obj", "v 0 0 0\nv 1 0 0\nv 0 nan 0\nf 1 2 3\n", "non-finite"),
        ("inf.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 inf 0\n3 0 1 2\n", "non-finite"),
        ("point.obj", "v 1 2 3\nv 1 2 3\nv 1 2 3\nf 1 2 3\n", "zero size"),
        ("line.obj", "v 0 0 0\nv 1 1 1\nv 3 3 3\nv 2 2 2\nf 1 2 3\nf 2 3 4\n", "no surface"),
        ("axis_line.stl", "", None),  # written below: collinear along x, two zero extents
    ],
)
def test_unusable_files_raise_mesh_error_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    if name == "axis_line.stl":
        line = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], process=False)
        path.write_bytes(line.export(file_type="stl"))
        reason = "no surface"
    else:
        path.write_text(content)
    with pytest.raises(MeshError, match=rf"{name}: .*{reason}"):
        load_mesh(path)


def test_a_flat_mesh_is_accepted(tmp_path):
    # A single quad in the y = 0.3 plane: one zero extent, like a thin display or sheet.
    path = tmp_path / "sheet.obj"
    path.write_text("v 0 0.3 0\nv 2 0.3 0\nv 2 0.3 1\nv 0 0.3 1\nf 1 3 2\nf 1 4 3\n")
    normalized = normalize_mesh(load_mesh(path))
    np.testing.assert_allclose(normalized.mesh.extents, np.array([2, 0, 1]) / np.sqrt(5))


def test_normalize_rejects_degenerate_meshes_naming_their_source():
    line = trimesh.Trimesh([[0, 0, 0], [1, 1, 1], [2, 2, 2]], [[0, 1, 2]], process=False)
    with pytest.raises(MeshError, match=r"^mesh: .*no surface"):
        normalize_mesh(line)
    line.metadata["file_path"] = "/cad/line.obj"
    with pytest.raises(MeshError, match=r"^/cad/line\.obj: .*no surface"):
        normalize_mesh(line)


# -- normalisation --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_normalize_centres_the_box_at_unit_diagonal_and_reports_the_map(seed):
    rng = np.random.default_rng(seed)
    source = trimesh.creation.cylinder(radius=rng.uniform(0.1, 2), height=rng.uniform(0.1, 2))
    source.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    source.apply_translation(rng.normal(0, 5, 3))
    source.visual.face_colors = rng.integers(0, 256, (len(source.faces), 4))
    before = source.vertices.copy()

    normalized = normalize_mesh(source)

    lower, upper = normalized.mesh.bounds
    np.testing.assert_allclose(lower + upper, 0, atol=1e-12)
    assert np.linalg.norm(upper - lower) == pytest.approx(1, abs=1e-12)
    assert np.abs(normalized.mesh.vertices).max() <= 0.5
    # The reported offset and factor map the source onto the normalised mesh exactly.
    np.testing.assert_array_equal(
        (source.vertices - normalized.offset) * normalized.factor, normalized.mesh.vertices
    )
    np.testing.assert_allclose(normalized.source_extents, source.extents, rtol=1e-12)
    assert normalized.offset.shape == (3,) and normalized.offset.dtype == np.float64
    assert isinstance(normalized.factor, float)
    # Faces, their order and colours are kept; the source is untouched.
    np.testing.assert_array_equal(normalized.mesh.faces, source.faces)
    np.testing.assert_array_equal(normalized.mesh.visual.face_colors, source.visual.face_colors)
    np.testing.assert_array_equal(source.vertices, before)


@pytest.mark.parametrize("seed", range(5))
def test_normalize_is_invariant_to_scale_and_translation_and_never_rotates(seed):
    rng = np.random.default_rng(seed)
    base = trimesh.creation.box(rng.uniform(0.2, 1.0, 3))
    scale, shift = rng.uniform(0.1, 10), rng.normal(0, 3, 3)
    moved = base.copy()
    moved.vertices = base.vertices * scale + shift

    a, b = normalize_mesh(base), normalize_mesh(moved)

    np.testing.assert_allclose(a.mesh.vertices, b.mesh.vertices, atol=1e-12)
    assert b.factor == pytest.approx(a.factor / scale, rel=1e-12)
    np.testing.assert_allclose(b.offset, a.offset * scale + shift, atol=1e-12)
    # Axis-aligned extents keep their proportions: no axis is swapped or rotated.
    np.testing.assert_allclose(a.mesh.extents, base.extents / np.linalg.norm(base.extents))


# -- GLB export -----------------------------------------------------------------------------------


def test_exported_glb_loads_back_with_the_same_vertices_and_colours(tmp_path):
    _, merged = two_part_scene()
    merged.visual.face_colors = np.random.default_rng(0).integers(0, 256, (len(merged.faces), 4))
    normalized = normalize_mesh(merged).mesh
    path = tmp_path / "normalized.glb"

    export_glb(normalized, path)
    loaded = load_mesh(path)

    # Face order is kept, so faces compare one to one; positions went through float32.
    np.testing.assert_allclose(loaded.triangles, normalized.triangles, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(loaded.visual.face_colors, normalized.visual.face_colors)


@pytest.mark.parametrize(("face_colors", "vertex_count"), [("one", 8), ("per_side", 24)])
def test_glb_splits_vertices_only_between_colours(tmp_path, face_colors, vertex_count):
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    if face_colors == "one":
        box.visual.face_colors = RED
    else:  # each side (2 triangles) its own colour: each corner is written for its 3 sides
        sides = np.argmax(np.abs(box.face_normals), axis=1) * 2 + (box.face_normals.sum(1) > 0)
        box.visual.face_colors = np.array([RED, GREEN, BLUE, YELLOW, GREY, (9, 9, 9, 255)])[sides]
    path = tmp_path / "box.glb"
    export_glb(box, path)
    written = trimesh.load_scene(str(path), process=False)
    (part,) = written.geometry.values()
    assert len(part.vertices) == vertex_count
    np.testing.assert_array_equal(load_mesh(path).visual.face_colors, box.visual.face_colors)


# -- the real ShapeNet sample ---------------------------------------------------------------------


def shapenet_models() -> list[Path]:
    return sorted(SHAPENET_SAMPLE.glob("*/*/models/model_normalized.obj"))


@pytest.mark.skipif(not shapenet_models(), reason=f"ShapeNet sample absent at {SHAPENET_SAMPLE}")
def test_shapenet_sample_loads_and_normalises():
    for path in shapenet_models():
        mesh = load_mesh(path)
        normalized = normalize_mesh(mesh)
        # ShapeNet's own normalisation: diagonal 1, roughly (not exactly) centred.
        assert normalized.factor == pytest.approx(1, abs=1e-3), path
        assert 0 < np.abs(normalized.offset).max() < 0.25, path
        lower, upper = normalized.mesh.bounds
        np.testing.assert_allclose(lower + upper, 0, atol=1e-12)
        assert np.linalg.norm(upper - lower) == pytest.approx(1, abs=1e-12)


@pytest.mark.skipif(not shapenet_models(), reason=f"ShapeNet sample absent at {SHAPENET_SAMPLE}")
def test_shapenet_textures_are_found_in_the_images_folder():
    # The table's top is textured with ../images/texture0.jpg (brown wood); its MTL says white.
    (path,) = SHAPENET_SAMPLE.glob("04379243/*/models/model_normalized.obj")
    colors = np.asarray(load_mesh(path).visual.face_colors, dtype=float)
    wood = colors[(colors[:, 0] > colors[:, 2] + 50)]
    assert len(wood) > len(colors) / 4
