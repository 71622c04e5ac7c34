"""Occupancy grids (known answers, symmetry, a sampling reference), surface samples, packing."""

from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from cad_perception.cad.mesh import load_mesh, normalize_mesh
from cad_perception.cad.voxel import (
    GRID_SIZE,
    PACKED_GRID_BYTES,
    grid_iou,
    pack_grid,
    pairwise_grid_iou,
    sample_surface,
    unpack_grid,
    voxelize,
)

SHAPENET_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "shapenet_sample"

CENTRES = (np.arange(GRID_SIZE) + 0.5) / GRID_SIZE - 0.5
"""Voxel centre coordinate along any axis."""


def box_between(lower, upper) -> trimesh.Trimesh:
    """An axis-aligned closed box mesh from corner `lower` to corner `upper`."""
    box = trimesh.creation.box()  # the unit cube centred at the origin
    box.vertices = np.where(box.vertices < 0, lower, upper)  # exact corners
    return box


def expected_box_grids(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """The (surface, solid) grids of a box, by interval arithmetic per axis.

    In voxel units voxel i is the closed interval [i, i + 1]: it overlaps the box's [a, b] for
    ceil(a) - 1 <= i <= floor(b), and lies strictly inside (a, b), touching no face, for
    floor(a) + 1 <= i <= ceil(b) - 2.
    """
    a = (np.asarray(lower) + 0.5) * GRID_SIZE
    b = (np.asarray(upper) + 0.5) * GRID_SIZE
    index = np.arange(GRID_SIZE)
    overlaps = [(np.ceil(a[d]) - 1 <= index) & (index <= np.floor(b[d])) for d in range(3)]
    inside = [(np.floor(a[d]) + 1 <= index) & (index <= np.ceil(b[d]) - 2) for d in range(3)]
    solid = overlaps[0][:, None, None] & overlaps[1][None, :, None] & overlaps[2][None, None, :]
    interior = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
    return solid & ~interior, solid


def triangle_soup(seed: int, count: int = 40) -> trimesh.Trimesh:
    """Random triangles of all sizes inside [-0.5, 0.5]^3."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.4, 0.4, (count, 1, 3))
    sizes = rng.choice([0.01, 0.05, 0.3], size=(count, 1, 1))
    triangles = np.clip(centres + rng.normal(0, 1, (count, 3, 3)) * sizes, -0.5, 0.5)
    return trimesh.Trimesh(triangles.reshape(-1, 3), np.arange(3 * count).reshape(-1, 3))


# -- voxelize ---------------------------------------------------------------------------------


def test_grid_shape_and_dtype():
    for solid in (True, False):
        grid = voxelize(normalize_mesh(trimesh.creation.box((1, 2, 3))).mesh, solid=solid)
        assert grid.shape == (32, 32, 32) and grid.dtype == np.bool_


def test_normalised_cube_known_answer():
    # A cube of diagonal 1 has side 1/sqrt(3): it spans voxel units 6.76..25.24, so it touches
    # voxels 6..25 along each axis (20^3 solid), of which 7..24 (18^3) touch no face.
    cube = normalize_mesh(trimesh.creation.box((2.0, 2.0, 2.0))).mesh
    surface, solid = voxelize(cube, solid=False), voxelize(cube)
    assert surface.sum() == 20**3 - 18**3
    assert solid.sum() == 20**3
    assert solid[6:26, 6:26, 6:26].all()
    assert not surface[7:25, 7:25, 7:25].any()


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ([-0.31, -0.12, -0.07], [0.31, 0.12, 0.07]),  # faces inside voxels
        ([-0.25, -0.125, -0.4375], [0.25, 0.125, 0.4375]),  # faces on voxel boundaries
        ([-0.5, -0.2, -0.01], [0.1, 0.49, 0.2]),  # off-centre, on the grid's border, thin
    ],
)
def test_box_known_answer(lower, upper):
    expected_surface, expected_solid = expected_box_grids(lower, upper)
    box = box_between(lower, upper)
    np.testing.assert_array_equal(voxelize(box, solid=False), expected_surface)
    np.testing.assert_array_equal(voxelize(box), expected_solid)


def test_the_grid_is_indexed_x_y_z():
    # A thin slab at large x, low y, mid z occupies exactly those index ranges.
    slab = box_between([0.40, -0.45, -0.05], [0.45, -0.30, 0.05])
    occupied = np.argwhere(voxelize(slab))
    assert occupied[:, 0].min() == 28 and occupied[:, 0].max() == 30
    assert occupied[:, 1].min() == 1 and occupied[:, 1].max() == 6
    assert occupied[:, 2].min() == 14 and occupied[:, 2].max() == 17


def test_an_open_box_is_not_filled():
    box = box_between([-0.3, -0.3, -0.3], [0.3, 0.3, 0.3])
    top = box.face_normals[:, 1] > 0.5
    open_box = trimesh.Trimesh(box.vertices, box.faces[~top])
    np.testing.assert_array_equal(voxelize(open_box), voxelize(open_box, solid=False))
    assert voxelize(open_box).sum() < voxelize(box).sum()


def test_sphere_grid_brackets_the_ball():
    sphere = normalize_mesh(trimesh.creation.icosphere(subdivisions=3)).mesh
    radius = 0.5 / np.sqrt(3)  # a diagonal-1 bounding box holds a ball of radius 1/(2 sqrt 3)
    grid = voxelize(sphere)
    # Per voxel: nearest and farthest distance of its cube from the origin.
    half = 0.5 / GRID_SIZE
    x, y, z = np.meshgrid(CENTRES, CENTRES, CENTRES, indexing="ij")
    centre_abs = np.abs(np.stack([x, y, z]))
    nearest = np.linalg.norm(np.maximum(centre_abs - half, 0), axis=0)
    farthest = np.linalg.norm(centre_abs + half, axis=0)
    assert grid[farthest < 0.95 * radius].all()  # well inside the (inscribed) polyhedron
    assert not grid[nearest > radius].any()  # wholly outside the ball
    ball_fraction = 4 / 3 * np.pi * radius**3
    shell_fraction = 4 * np.pi * radius**2 / GRID_SIZE  # a one-voxel-thick skin
    assert ball_fraction < grid.mean() < ball_fraction + shell_fraction


@pytest.mark.parametrize("seed", range(4))
def test_grid_follows_mirrors_and_quarter_turns_exactly(seed):
    mesh = triangle_soup(seed)
    grid = voxelize(mesh, solid=False)
    mirrored = mesh.copy()
    mirrored.vertices = mesh.vertices * [-1, 1, 1]
    np.testing.assert_array_equal(voxelize(mirrored, solid=False), grid[::-1])
    # A quarter turn about y maps (x, y, z) to (z, y, -x), so new[a, b, c] = old[31 - c, b, a].
    turned = mesh.copy()
    turned.vertices = mesh.vertices[:, [2, 1, 0]] * [1, 1, -1]
    np.testing.assert_array_equal(
        voxelize(turned, solid=False), grid.transpose(2, 1, 0)[:, :, ::-1]
    )


@pytest.mark.parametrize("seed", range(3))
def test_a_mirror_symmetric_mesh_gives_a_mirror_symmetric_grid(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, (30, 3))
    hull = trimesh.convex.convex_hull(np.concatenate([points, points * [-1, 1, 1]]))
    grid = voxelize(normalize_mesh(hull).mesh)
    assert grid.any()
    np.testing.assert_array_equal(grid, grid[::-1])


@pytest.mark.parametrize("seed", range(3))
def test_surface_grid_matches_dense_surface_samples(seed):
    # Every voxel holding a surface point is occupied, and every occupied voxel touches the
    # surface, so it lies next to (within one voxel of) a voxel holding a dense sample.
    mesh = triangle_soup(seed)
    grid = voxelize(mesh, solid=False)
    points = sample_surface(mesh, 200_000, seed=seed).astype(np.float64)
    hit = np.zeros_like(grid)
    cells = np.clip(np.floor((points + 0.5) * GRID_SIZE).astype(int), 0, GRID_SIZE - 1)
    hit[tuple(cells.T)] = True
    assert grid[hit].all()
    near_hit = ndimage.binary_dilation(hit, structure=np.ones((3, 3, 3), dtype=bool))
    assert not (grid & ~near_hit).any()


def test_voxelize_rejects_meshes_outside_the_unit_cube_and_empty_meshes():
    with pytest.raises(ValueError, match="normalise"):
        voxelize(trimesh.creation.box((1.2, 0.1, 0.1)))
    with pytest.raises(ValueError, match="without triangles"):
        voxelize(trimesh.Trimesh())


def shapenet_models() -> list[Path]:
    return sorted(SHAPENET_SAMPLE.glob("*/*/models/model_normalized.obj"))


@pytest.mark.skipif(not shapenet_models(), reason=f"ShapeNet sample absent at {SHAPENET_SAMPLE}")
def test_shapenet_sample_occupancy_is_plausible():
    for path in shapenet_models():
        grid = voxelize(normalize_mesh(load_mesh(path)).mesh)
        assert 0.005 < grid.mean() < 0.6, path
        # The bounding box is centred and has diagonal 1, so some voxel on each face of the
        # object's own box is occupied: occupied indices span the box symmetrically.
        for axis in range(3):
            used = np.flatnonzero(grid.any(axis=tuple(a for a in range(3) if a != axis)))
            assert abs(used.min() + used.max() - (GRID_SIZE - 1)) <= 1, path


# -- sample_surface ---------------------------------------------------------------------------


def two_squares() -> trimesh.Trimesh:
    """Two separate squares in the z = 0 and z = 1 planes with areas 1 and 3."""
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    lower = np.column_stack([unit, np.zeros(4)])
    upper = np.column_stack([unit * np.sqrt(3), np.ones(4)])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    return trimesh.Trimesh(np.concatenate([lower, upper]), faces)


def test_samples_are_area_weighted_and_on_the_surface():
    points = sample_surface(two_squares(), 20_000, seed=0)
    assert points.shape == (20_000, 3) and points.dtype == np.float32
    on_upper = points[:, 2] == 1
    assert np.all(on_upper | (points[:, 2] == 0))
    assert on_upper.mean() == pytest.approx(0.75, abs=0.015)
    # Uniform within a square: the mean is the centre, the x spread that of a uniform variable.
    lower = points[~on_upper, :2]
    np.testing.assert_allclose(lower.mean(axis=0), [0.5, 0.5], atol=0.015)
    np.testing.assert_allclose(lower.var(axis=0), [1 / 12, 1 / 12], atol=0.005)
    assert lower.min() >= 0 and lower.max() <= 1


def test_samples_are_deterministic_for_a_seed():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    np.testing.assert_array_equal(sample_surface(mesh, 500, 7), sample_surface(mesh, 500, 7))
    assert not np.array_equal(sample_surface(mesh, 500, 7), sample_surface(mesh, 500, 8))
    assert sample_surface(mesh, 0, 7).shape == (0, 3)
    with pytest.raises(ValueError, match="count"):
        sample_surface(mesh, -1, 7)


# -- packing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_pack_round_trip_is_exact(seed):
    grid = np.random.default_rng(seed).random((32, 32, 32)) < 0.3
    data = pack_grid(grid)
    assert isinstance(data, bytes) and len(data) == PACKED_GRID_BYTES == 4096
    restored = unpack_grid(data)
    assert restored.dtype == np.bool_
    np.testing.assert_array_equal(restored, grid)


def test_pack_bit_order_is_c_order_most_significant_bit_first():
    grid = np.zeros((32, 32, 32), dtype=bool)
    grid[0, 0, 0] = grid[31, 31, 31] = grid[0, 0, 9] = True
    data = pack_grid(grid)
    assert data[0] == 0x80 and data[1] == 0x40 and data[-1] == 0x01
    assert sum(bin(byte).count("1") for byte in data) == 3


def test_pack_and_unpack_reject_bad_input():
    with pytest.raises(ValueError, match="4096 bytes"):
        unpack_grid(bytes(4095))
    with pytest.raises(ValueError, match="4096 bytes"):
        unpack_grid(bytes(4097))
    with pytest.raises(ValueError, match="bool"):
        pack_grid(np.zeros((32, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="bool"):
        pack_grid(np.zeros((32, 32, 31), dtype=bool))


# -- IoU --------------------------------------------------------------------------------------


def test_grid_iou_known_answers():
    empty = np.zeros((32, 32, 32), dtype=bool)
    left, right, lower_left = empty.copy(), empty.copy(), empty.copy()
    left[:16] = True
    right[16:] = True
    lower_left[:16, :16] = True
    assert grid_iou(left, left) == 1.0
    assert grid_iou(left, right) == 0.0
    assert grid_iou(left, lower_left) == 0.5
    assert grid_iou(left | right, lower_left) == 0.25
    assert grid_iou(empty, empty) == 1.0
    assert grid_iou(empty, left) == 0.0


def test_pairwise_iou_matches_single_iou():
    rng = np.random.default_rng(0)
    a = rng.random((3, 32, 32, 32)) < rng.random((3, 1, 1, 1))
    b = rng.random((4, 32, 32, 32)) < rng.random((4, 1, 1, 1))
    ious = pairwise_grid_iou(a, b)
    assert ious.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            union = (a[i] | b[j]).sum()
            assert ious[i, j] == pytest.approx((a[i] & b[j]).sum() / union, rel=1e-12)
            assert grid_iou(a[i], b[j]) == ious[i, j]
    with pytest.raises(ValueError, match="bool"):
        pairwise_grid_iou(a[0], b)
