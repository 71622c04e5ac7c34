import numpy as np
import pytest
import torch

from cad_perception.geometry.rotations import rotation_about_y
from cad_perception.synth.room import Footprint, footprints_overlap, make_room, yaw_rotation


def random_footprint(rng: np.random.Generator, spread: float = 2.0) -> Footprint:
    R = yaw_rotation(rng.uniform(0, 2 * np.pi))
    half = rng.uniform(0.05, 1.0, size=3)
    t = np.array([rng.uniform(-spread, spread), 0.3, rng.uniform(-spread, spread)])
    return Footprint.of_box(R, t, -half, half)


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_intersect(p1, p2, q1, q2) -> bool:
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return d1 * d2 <= 0 and d3 * d4 <= 0


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Whether a point lies in a convex polygon (4, 2) given in order (either orientation)."""
    signs = [_cross(polygon[k], polygon[(k + 1) % 4], point) for k in range(4)]
    return all(s >= 0 for s in signs) or all(s <= 0 for s in signs)


def polygons_intersect(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact test, independent of the separating axis test: two convex quadrilaterals meet iff
    two of their edges cross or one holds a corner of the other."""
    for i in range(4):
        for j in range(4):
            if _segments_intersect(a[i], a[(i + 1) % 4], b[j], b[(j + 1) % 4]):
                return True
    return _inside(a[0], b) or _inside(b[0], a)


def test_room_mesh_spans_the_room_with_inward_faces_and_three_colours():
    room = make_room(5.0, 4.0, 2.8, np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]]))
    np.testing.assert_allclose(room.mesh.bounds, [[-2.5, 0.0, -2.0], [2.5, 2.8, 2.0]])
    assert len(room.mesh.faces) == 12
    np.testing.assert_allclose(room.mesh.area, 2 * (5 * 4 + 5 * 2.8 + 4 * 2.8))
    centre = np.array([0.0, 1.4, 0.0])
    inward = np.einsum("ij,ij->i", room.mesh.face_normals, centre - room.mesh.triangles_center)
    assert (inward > 0).all()
    colors = np.asarray(room.mesh.visual.face_colors)[:, :3]
    floor = room.mesh.triangles_center[:, 1] == 0
    ceiling = np.isclose(room.mesh.triangles_center[:, 1], 2.8)
    assert (colors[floor] == [10, 20, 30]).all() and floor.sum() == 2
    assert (colors[ceiling] == [70, 80, 90]).all() and ceiling.sum() == 2
    assert (colors[~floor & ~ceiling] == [40, 50, 60]).all()


def test_room_contains_points_with_clearance():
    room = make_room(4.0, 2.0, 2.5)
    points = np.array([[0.0, 0.0], [1.9, 0.9], [2.0, 1.0], [2.01, 0.0], [0.0, -1.01]])
    assert room.contains(points).tolist() == [True, True, True, False, False]
    assert room.contains(points, clearance=0.2).tolist() == [True, False, False, False, False]


def test_make_room_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive"):
        make_room(0.0, 3.0, 2.5)
    with pytest.raises(ValueError, match="colors"):
        make_room(3.0, 3.0, 2.5, np.zeros((2, 3)))


def test_yaw_rotation_matches_geometry_rotation_about_y():
    angles = np.random.default_rng(0).uniform(-4, 4, size=(5, 2))
    expected = rotation_about_y(torch.from_numpy(angles)).numpy()
    np.testing.assert_allclose(yaw_rotation(angles), expected, atol=1e-12)
    assert yaw_rotation(0.3).shape == (3, 3)


def test_footprint_of_box_is_the_floor_plan_of_the_posed_box():
    rng = np.random.default_rng(1)
    for _ in range(20):
        R = yaw_rotation(rng.uniform(0, 2 * np.pi))
        t = rng.normal(size=3)
        lower = -rng.uniform(0.1, 1, size=3) + rng.normal(scale=0.1, size=3)
        upper = lower + rng.uniform(0.1, 1, size=3)
        box = np.array([[(lower, upper)[k >> a & 1][a] for a in range(3)] for k in range(8)])
        plan = (box @ R.T + t)[:, [0, 2]]
        corners = Footprint.of_box(R, t, lower, upper).corners()
        # Every posed box corner lies on one footprint corner (the top and bottom ones twice).
        distances = np.linalg.norm(plan[:, None] - corners[None], axis=-1)
        assert distances.min(axis=1).max() < 1e-12
        assert distances.min(axis=0).max() < 1e-12


def test_footprint_batches_broadcast():
    R = yaw_rotation(np.array([0.0, 0.5, 1.0]))
    t = np.zeros((3, 3))
    batch = Footprint.of_box(R, t, -np.ones(3), np.ones(3))
    assert batch.corners().shape == (3, 4, 2)
    stacked = Footprint.stack([batch, batch])
    assert stacked.centre.shape == (2, 3, 2)
    single = Footprint.of_box(np.eye(3), [5.0, 0.0, 0.0], -np.ones(3), np.ones(3))
    assert footprints_overlap(batch, single).tolist() == [False, False, False]
    assert footprints_overlap(batch, batch).all()


def test_separating_axis_test_agrees_with_an_exact_polygon_intersection():
    rng = np.random.default_rng(2)
    outcomes = []
    for _ in range(400):
        a, b = random_footprint(rng, spread=1.2), random_footprint(rng, spread=1.2)
        expected = polygons_intersect(a.corners(), b.corners())
        assert bool(footprints_overlap(a, b)) == expected
        assert bool(footprints_overlap(b, a)) == expected
        outcomes.append(expected)
    assert 0.2 < np.mean(outcomes) < 0.8  # both cases are exercised


def test_margin_separates_axis_aligned_rectangles_by_their_gap():
    unit = np.array([0.5, 0.5, 0.5])
    a = Footprint.of_box(np.eye(3), np.zeros(3), -unit, unit)
    for gap in (0.0, 0.04, 0.06, 0.3):
        b = Footprint.of_box(yaw_rotation(np.pi / 2), [1.0 + gap, 0.0, 0.2], -unit, unit)
        assert bool(footprints_overlap(a, b, margin=0.05)) == (gap < 0.05)
    touching = Footprint.of_box(np.eye(3), [1.0, 0.0, 0.0], -unit, unit)
    assert not footprints_overlap(a, touching)
    assert footprints_overlap(a, touching, margin=1e-9)


def test_apart_footprints_keep_the_margin():
    """Points sampled in one of two footprints that are apart for a margin are at least the
    margin away from the other (distance computed independently)."""
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 15), np.linspace(-1, 1, 15)), -1).reshape(-1, 2)
    checked = 0
    for _ in range(300):
        a, b = random_footprint(rng), random_footprint(rng)
        if footprints_overlap(a, b, margin=0.1):
            continue
        points = a.centre + (grid * a.half_size) @ a.axes.T
        assert b.distance(points).min() >= 0.1 - 1e-9
        checked += 1
    assert checked > 50


def test_segment_footprints_cross_rectangles():
    unit = np.array([0.5, 0.5, 0.5])
    box = Footprint.of_box(np.eye(3), np.zeros(3), -unit, unit)
    assert footprints_overlap(Footprint.of_segment([-2.0, 0.1], [2.0, -0.1]), box)
    assert not footprints_overlap(Footprint.of_segment([-2.0, 0.7], [2.0, 0.6]), box)
    assert not footprints_overlap(Footprint.of_segment([1.0, 1.0], [3.0, 1.0]), box)
    point = Footprint.of_segment([0.2, 0.2], [0.2, 0.2])
    assert footprints_overlap(point, box)


def test_footprint_distance_known_answers():
    unit = np.array([1.0, 0.5, 0.5])
    box = Footprint.of_box(yaw_rotation(np.pi / 2), [1.0, 0.0, 1.0], -unit, unit)
    # Turned by 90 degrees: half sizes 0.5 along x and 1 along z about (1, 1).
    points = np.array([[1.0, 1.0], [2.0, 1.0], [1.0, 3.0], [2.5, 2.0 + 2.0]])
    np.testing.assert_allclose(box.distance(points), [0.0, 0.5, 1.0, np.hypot(1.0, 2.0)])
