import itertools
import math

import numpy as np
import pytest

from cad_perception.synth.camera_path import (
    CameraConfig,
    CameraView,
    camera_intrinsics,
    look_at,
    orbit_path,
    sample_view,
)
from cad_perception.synth.room import Footprint, make_room, yaw_rotation

SIZE = (60, 80)


def furnished_room():
    """A 6 x 5 m room with three boxes; the first is the focus (footprint, height)."""
    room = make_room(6.0, 5.0, 2.8)
    boxes = [((0.5, 0.0, 0.5), 0.3, (0.6, 0.4, 0.4)), ((-1.5, 0.0, -1.0), 1.2, (0.5, 1.0, 0.3))]
    boxes.append(((1.8, 0.0, -1.2), 2.0, (0.8, 0.5, 0.6)))
    footprints = [
        Footprint.of_box(yaw_rotation(yaw), centre, -np.array(half), np.array(half))
        for centre, yaw, half in boxes
    ]
    return room, footprints, (footprints[0], 0.8)


def rotation_angle(R1: np.ndarray, R2: np.ndarray) -> float:
    return math.acos(np.clip((np.trace(R1.T @ R2) - 1) / 2, -1, 1))


def test_intrinsics_have_the_horizontal_field_of_view_and_square_pixels():
    for fov in (55.0, 75.0):
        K = camera_intrinsics((240, 320), fov)
        assert K[0, 0] == K[1, 1] and K[0, 1] == 0
        assert (K[0, 2], K[1, 2]) == (159.5, 119.5)
        left, right = np.linalg.inv(K) @ [-0.5, 119.5, 1], np.linalg.inv(K) @ [319.5, 119.5, 1]
        angle = math.degrees(math.acos(left @ right / np.linalg.norm(left) / np.linalg.norm(right)))
        assert angle == pytest.approx(fov)
    # Scaled to the image size: half the width, half the focal length.
    np.testing.assert_allclose(
        camera_intrinsics((120, 160), 60)[0, 0] * 2, camera_intrinsics((240, 320), 60)[0, 0]
    )
    assert camera_intrinsics((240, 320), 60, (3.0, -2.0))[:2, 2].tolist() == [162.5, 117.5]
    with pytest.raises(ValueError, match="fov"):
        camera_intrinsics((240, 320), 180.0)


def test_look_at_points_the_optical_axis_at_the_target_with_a_level_horizon():
    rng = np.random.default_rng(0)
    K = camera_intrinsics((240, 320), 60)
    for _ in range(50):
        centre, target = rng.uniform(-3, 3, size=3), rng.uniform(-3, 3, size=3)
        R = look_at(centre, target)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        view = CameraView(K=K, size=(240, 320), R_cw=R, t_cw=-R @ centre)
        np.testing.assert_allclose(view.centre, centre, atol=1e-12)
        camera = view.R_cw @ target + view.t_cw
        assert camera[2] > 0
        np.testing.assert_allclose(camera[:2], 0.0, atol=1e-9)  # on the principal point
        assert abs(R[0] @ [0, 1, 0]) < 1e-12  # image x is horizontal
        assert R[1] @ [0, 1, 0] < 0  # image y points down in the world
    rolled = look_at([0, 1, 0], [0, 1, 2], roll=0.1)
    assert rotation_angle(rolled, look_at([0, 1, 0], [0, 1, 2])) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="above or below"):
        look_at([0, 1, 0], [0, 0, 0])


def test_sampled_views_stand_clear_at_eye_height_and_look_at_the_focus():
    room, footprints, focus = furnished_room()
    config = CameraConfig()
    heights = []
    for seed in range(40):
        view = sample_view(np.random.default_rng(seed), room, footprints, focus, SIZE, config)
        centre = view.centre
        assert room.contains(centre[[0, 2]], config.wall_clearance).all()
        assert min(f.distance(centre[[0, 2]])[0] for f in footprints) >= config.object_clearance
        heights.append(centre[1])
        # The view looks at a point near the focus object.
        forward = view.R_cw[2]
        to_focus = np.append(focus[0].centre, 0.0)[[0, 2, 1]] - centre
        assert forward @ to_focus / np.linalg.norm(to_focus) > math.cos(math.radians(30))
        fx = view.K[0, 0]
        fov = math.degrees(2 * math.atan(SIZE[1] / 2 / fx))
        assert 55 - 1e-9 <= fov <= 75 + 1e-9 and view.K[1, 1] == fx
    heights = np.array(heights)
    robot = (heights >= 0.4) & (heights <= 1.0)
    person = (heights >= 1.4) & (heights <= 1.8)
    assert (robot | person).all() and robot.any() and person.any()


def test_orbit_is_smooth_and_stays_clear():
    room, footprints, focus = furnished_room()
    config = CameraConfig(speed=0.04)
    for seed in range(5):
        views = orbit_path(np.random.default_rng(seed), room, footprints, focus, SIZE, 120, config)
        assert len(views) == 120
        centres = np.array([view.centre for view in views])
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        assert steps.max() <= config.speed + 1e-12
        assert steps.max() > 0.2 * config.speed  # it does move
        accelerations = np.linalg.norm(np.diff(centres, 2, axis=0), axis=1)
        assert accelerations.max() < 0.005
        turns = [rotation_angle(a.R_cw, b.R_cw) for a, b in itertools.pairwise(views)]
        assert max(turns) < math.radians(3.0)
        assert all(np.array_equal(view.K, views[0].K) for view in views)
        assert room.contains(centres[:, [0, 2]], config.wall_clearance).all()
        for footprint in footprints:
            assert footprint.distance(centres[:, [0, 2]]).min() >= config.object_clearance


def test_orbit_falls_back_to_a_smooth_pan_when_no_orbit_fits():
    room, footprints, focus = furnished_room()
    config = CameraConfig(object_clearance=10.0, attempts=3)  # no place is free
    views = orbit_path(np.random.default_rng(0), room, footprints, focus, SIZE, 50, config)
    centres = np.array([view.centre for view in views])
    np.testing.assert_allclose(centres - centres[0], 0.0, atol=1e-12)
    assert room.contains(centres[:1, [0, 2]], config.wall_clearance).all()
    # The most open place: no footprint is closer than from the four room corners' side.
    assert min(f.distance(centres[:1, [0, 2]])[0] for f in footprints) > 1.0
    turns = [rotation_angle(a.R_cw, b.R_cw) for a, b in itertools.pairwise(views)]
    assert 0 < max(turns) < math.radians(3.0)


def test_paths_are_deterministic_and_validated():
    room, footprints, focus = furnished_room()
    config = CameraConfig()
    first = orbit_path(np.random.default_rng(4), room, footprints, focus, SIZE, 10, config)
    again = orbit_path(np.random.default_rng(4), room, footprints, focus, SIZE, 10, config)
    other = orbit_path(np.random.default_rng(5), room, footprints, focus, SIZE, 10, config)
    assert all(
        np.array_equal(a.R_cw, b.R_cw) and np.array_equal(a.t_cw, b.t_cw)
        for a, b in zip(first, again, strict=True)
    )
    assert not np.array_equal(first[0].t_cw, other[0].t_cw)
    with pytest.raises(ValueError, match="n_frames"):
        orbit_path(np.random.default_rng(0), room, footprints, focus, SIZE, 0, config)
    with pytest.raises(ValueError, match="distance"):
        CameraConfig(distance=(0.0, 1.0))
