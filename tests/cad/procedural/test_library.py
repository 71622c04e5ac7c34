"""The procedural library: determinism, diversity, sizes, valid coloured meshes, and symmetry
labels that hold on the geometry."""

import functools
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import trimesh

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.mesh import normalize_mesh
from cad_perception.cad.procedural import (
    CATEGORY_SIZES,
    GENERATORS,
    ProceduralModel,
    generate,
    model_seed,
)
from cad_perception.cad.procedural.parts import rotation
from cad_perception.cad.voxel import grid_iou, sample_surface, voxelize

ROOT = Path(__file__).resolve().parents[3]
SEEDS = range(24)
"""Seeds whose models every property test below draws from."""

EXPECTED_SYMMETRIES = {
    "bathtub": {"rot2"},
    "bed": {"none"},
    "bin": {"inf", "rot4", "rot2"},
    "bookshelf": {"none", "rot2"},
    "cabinet": {"none"},
    "chair": {"none"},
    "display": {"none"},
    "sofa": {"none"},
    "table": {"inf", "rot4", "rot2"},
}

SUB_VOXEL_ASYMMETRY = {"cabinet"}
"""Categories whose only asymmetric features (fronts and handles, 4.5-6 cm deep) can be thinner
than one voxel of a large model's 32^3 grid; their asymmetry is checked on the surface instead."""

IOU_THRESHOLD = 0.95


@functools.cache
def model(category: str, seed: int) -> ProceduralModel:
    return generate(category, seed)


@functools.cache
def grid(category: str, seed: int, angle_deg: float = 0.0) -> np.ndarray:
    """Occupancy of the normalised model turned by angle_deg about y (read-only)."""
    mesh = normalize_mesh(model(category, seed).mesh).mesh
    mesh.vertices = mesh.vertices @ rotation("y", math.radians(angle_deg)).T
    occupancy = voxelize(mesh)
    occupancy.flags.writeable = False
    return occupancy


def seeds_by_symmetry(category: str, per_label: int) -> dict[str, list[int]]:
    """The first `per_label` seeds in SEEDS of each symmetry label of `category`."""
    found = defaultdict(list)
    for seed in SEEDS:
        label = model(category, seed).symmetry
        if len(found[label]) < per_label:
            found[label].append(seed)
    return dict(found)


def model_digest(category: str, seed: int) -> str:
    """SHA-256 of a model's id, symmetry, parameters, vertices, faces and face colours."""
    m = generate(category, seed)
    digest = hashlib.sha256(f"{m.cad_id}|{m.symmetry}|".encode())
    digest.update(json.dumps(m.params, sort_keys=True).encode())
    for array in (m.mesh.vertices, m.mesh.faces, m.mesh.visual.face_colors):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def part_labels(mesh: trimesh.Trimesh) -> np.ndarray:
    """(F,) connected-component label of each face; parts share no vertices, so one per part."""
    return trimesh.graph.connected_component_labels(mesh.face_adjacency, len(mesh.faces))


def triangle_set(vertices: np.ndarray, faces: np.ndarray) -> set[frozenset]:
    rounded = np.round(vertices, 9) + 0.0  # + 0.0 turns -0.0 into 0.0
    return {frozenset(map(tuple, rounded[face])) for face in faces}


def test_every_category_has_a_generator_and_a_size_range():
    assert set(GENERATORS) == set(CATEGORIES)
    assert set(CATEGORY_SIZES) == set(CATEGORIES)
    for low, high in CATEGORY_SIZES.values():
        assert len(low) == len(high) == 3
        assert all(0 < lo < hi for lo, hi in zip(low, high, strict=True))


@pytest.mark.parametrize("category", CATEGORIES)
def test_model_identity(category):
    m = model(category, 7)
    assert m.cad_id == f"proc-{category}-00007"
    assert m.category == category
    assert m.symmetry in ("none", "rot2", "rot4", "inf")


def test_bad_requests_are_rejected():
    with pytest.raises(ValueError, match="no procedural generator"):
        generate("lamp", 0)
    for seed in (-1, 100_000):
        with pytest.raises(ValueError, match="seed"):
            generate("chair", seed)


def test_model_seed_is_a_fixed_function_of_category_and_seed():
    # Known answers: changing the derivation would silently change every model.
    assert model_seed("chair", 0) == 6817270679914069632
    assert model_seed("table", 12345) == 17134477339615206225
    seeds = {model_seed(c, s) for c in CATEGORIES for s in range(50)}
    assert len(seeds) == len(CATEGORIES) * 50


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_category_and_seed_give_the_same_model(category):
    first, second = generate(category, 3), generate(category, 3)
    np.testing.assert_array_equal(first.mesh.vertices, second.mesh.vertices)
    np.testing.assert_array_equal(first.mesh.faces, second.mesh.faces)
    np.testing.assert_array_equal(first.mesh.visual.face_colors, second.mesh.visual.face_colors)
    assert first.params == second.params
    assert first.symmetry == second.symmetry


def test_models_are_the_same_in_a_fresh_process_with_another_hash_seed():
    script = "\n".join([
        "import hashlib, json",
        "import numpy as np",
        "from cad_perception.cad.categories import CATEGORIES",
        "from cad_perception.cad.procedural import generate, model_seed",
        inspect.getsource(model_digest),
        "print(json.dumps({c: [model_seed(c, 3), model_digest(c, 3)] for c in CATEGORIES}))",
    ])  # fmt: skip
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    fresh = json.loads(result.stdout)
    assert fresh == {c: [model_seed(c, 3), model_digest(c, 3)] for c in CATEGORIES}


@pytest.mark.parametrize("category", CATEGORIES)
def test_models_have_at_least_six_json_ready_params(category):
    for seed in SEEDS:
        params = model(category, seed).params
        assert len(params) >= 6
        assert json.loads(json.dumps(params)) == params


@pytest.mark.parametrize("category", CATEGORIES)
def test_extents_lie_in_the_category_size_range(category):
    low, high = (np.array(bound) for bound in CATEGORY_SIZES[category])
    for seed in SEEDS:
        mesh = model(category, seed).mesh
        np.testing.assert_allclose(mesh.bounds.sum(axis=0), 0.0, atol=1e-12)  # centred box
        assert np.all(mesh.extents >= low) and np.all(mesh.extents <= high), (seed, mesh.extents)


@pytest.mark.parametrize("category", CATEGORIES)
def test_meshes_are_valid_closed_parts_with_outward_normals(category):
    for seed in range(8):
        mesh = model(category, seed).mesh
        assert np.isfinite(mesh.vertices).all()
        assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
        assert len(mesh.faces) < 20_000
        assert mesh.is_watertight and mesh.is_winding_consistent
        # Signed volume per part (tetrahedra to the origin): positive iff the part faces outwards.
        triangles = mesh.triangles
        signed = np.einsum("fi,fi->f", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2]))
        volumes = np.bincount(part_labels(mesh), weights=signed / 6)
        assert volumes.min() > 0, (seed, volumes.min())


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_part_has_one_colour_and_models_have_several(category):
    for seed in range(8):
        mesh = model(category, seed).mesh
        colors = np.asarray(mesh.visual.face_colors)
        labels = part_labels(mesh)
        for label in np.unique(labels):
            assert len(np.unique(colors[labels == label], axis=0)) == 1
        assert len(np.unique(colors, axis=0)) >= 2


@pytest.mark.parametrize("category", CATEGORIES)
def test_eight_seeds_give_eight_distinct_designs(category):
    params = {json.dumps(model(category, seed).params, sort_keys=True) for seed in range(8)}
    assert len(params) == 8
    grids = [grid(category, seed) for seed in range(8)]
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.array_equal(grids[i], grids[j]), (i, j)


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_expected_symmetry_occurs(category):
    assert {model(category, seed).symmetry for seed in SEEDS} == EXPECTED_SYMMETRIES[category]


@pytest.mark.parametrize("category", CATEGORIES)
def test_symmetry_labels_hold_on_voxel_grids(category):
    for label, seeds in seeds_by_symmetry(category, per_label=3).items():
        for seed in seeds:
            original = grid(category, seed)
            half_turn = original[::-1, :, ::-1]
            quarter_turn = original.transpose(2, 1, 0)[:, :, ::-1]  # (x, z) -> (z, -x)
            if label == "none":
                if category not in SUB_VOXEL_ASYMMETRY:
                    assert grid_iou(original, half_turn) < IOU_THRESHOLD, seed
                continue
            assert grid_iou(original, half_turn) >= IOU_THRESHOLD, seed
            if label in ("rot4", "inf"):
                assert grid_iou(original, quarter_turn) >= IOU_THRESHOLD, seed
                np.testing.assert_array_equal(quarter_turn, grid(category, seed, 90.0))
            if label == "inf":
                assert grid_iou(original, grid(category, seed, 30.0)) >= IOU_THRESHOLD, seed


@pytest.mark.parametrize("category", CATEGORIES)
def test_symmetric_models_map_exactly_onto_themselves(category):
    for seed in range(12):
        m = model(category, seed)
        if m.symmetry == "none":
            continue
        # inf: round parts have 16 or 32 segments, so their polygons turn onto themselves by 1/16.
        angle = {"rot2": math.pi, "rot4": math.pi / 2, "inf": math.pi / 8}[m.symmetry]
        turned = m.mesh.vertices @ rotation("y", angle).T
        assert triangle_set(turned, m.mesh.faces) == triangle_set(m.mesh.vertices, m.mesh.faces)
        if m.symmetry in ("rot4", "inf"):
            assert m.mesh.extents[0] == pytest.approx(m.mesh.extents[2], abs=1e-12)


ASYMMETRIC_CATEGORIES = sorted(c for c, labels in EXPECTED_SYMMETRIES.items() if "none" in labels)


@pytest.mark.parametrize("category", ASYMMETRIC_CATEGORIES)
def test_asymmetric_models_move_under_a_half_turn(category):
    for seed in seeds_by_symmetry(category, per_label=2)["none"]:
        mesh = model(category, seed).mesh
        points = sample_surface(mesh, 100, seed=0).astype(np.float64) * [-1.0, 1.0, -1.0]
        _, distances, _ = trimesh.proximity.closest_point_naive(mesh, points)
        assert distances.max() >= 0.01, seed  # some turned surface point is >= 1 cm off
