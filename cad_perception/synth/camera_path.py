"""Cameras of the synthetic scenes: intrinsics, look-at poses, single views and smooth paths.

World frame as in `synth.room` (metres, y up, floor at y = 0); the camera frame is the OpenCV /
ROS optical frame (x right, y down, z forward). A view maps world points to camera points by
X_c = R_cw X_w + t_cw; its centre in the world is C = -R_cw^T t_cw. Floor-plan points are
(x, z) rows (N, 2).

A camera stands where it has `wall_clearance` to the walls and `object_clearance` to every
object footprint, at robot or person eye height, and looks at a target point: a single view
prefers a place from which the floor-plan line of sight to the target crosses no footprint.
A trajectory orbits its target: the azimuth, the distance and the height each follow a slow
sine whose peak speed keeps the camera below `speed` metres per frame, so positions and
orientations change smoothly (and the path swings back and forth instead of circling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cad_perception.synth.room import Footprint, Room, footprints_overlap

__all__ = [
    "CameraConfig",
    "CameraView",
    "camera_intrinsics",
    "look_at",
    "orbit_path",
    "sample_view",
]

Range = tuple[float, float]
"""(low, high) of a uniform draw."""

MIN_PERIOD = 90
"""Fewest frames per period of the sine motions of a trajectory (6 s at 15 Hz)."""


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    """How cameras are placed."""

    robot_height: Range = (0.4, 1.0)
    """Eye height range of a robot's camera, metres."""
    person_height: Range = (1.4, 1.8)
    """Eye height range of a hand-held or head camera, metres."""
    person_probability: float = 0.5
    """Chance that a camera is at person height, else at robot height."""
    horizontal_fov_deg: Range = (55.0, 75.0)
    principal_point_jitter: float = 0.02
    """Largest offset of the principal point from the image centre, as a fraction of the size."""
    distance: Range = (1.3, 3.5)
    """Floor-plan distance from the camera to its target, metres."""
    target_height: Range = (0.2, 0.8)
    """Target height as a fraction of the height of the object looked at."""
    target_jitter: float = 0.3
    """Largest floor-plan offset of the target from the centre of the object looked at."""
    max_roll_deg: float = 3.0
    wall_clearance: float = 0.25
    object_clearance: float = 0.3
    attempts: int = 64
    """Candidate places tried per view before settling for the most open one."""
    speed: float = 0.03
    """Largest camera movement between consecutive frames of a trajectory, metres."""
    max_sweep_deg: float = 50.0
    """Largest azimuth swing of a trajectory to either side of its start."""

    def __post_init__(self) -> None:
        for name in ("robot_height", "person_height", "horizontal_fov_deg", "distance"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(low, high)}")
        if not 0 < self.horizontal_fov_deg[1] < 180:
            raise ValueError("horizontal_fov_deg must lie in (0, 180)")
        if not 0 <= self.person_probability <= 1:
            raise ValueError("person_probability must lie in [0, 1]")
        if self.attempts < 1 or self.speed <= 0:
            raise ValueError("attempts must be >= 1 and speed > 0")


@dataclass(frozen=True, eq=False)
class CameraView:
    """A pinhole camera placed in the world: X_c = R_cw X_w + t_cw."""

    K: np.ndarray
    """(3, 3) float64 intrinsics."""
    size: tuple[int, int]
    """Image (H, W) in pixels."""
    R_cw: np.ndarray
    """(3, 3) float64 rotation world -> camera."""
    t_cw: np.ndarray
    """(3,) float64 translation world -> camera, metres."""

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera centre in the world."""
        return -self.R_cw.T @ self.t_cw


def camera_intrinsics(
    size: tuple[int, int], horizontal_fov_deg: float, principal_offset: Sequence[float] = (0, 0)
) -> np.ndarray:
    """(3, 3) float64 K of square pixels (fx = fy) with the given horizontal field of view for
    an image (H, W); the principal point is the image centre ((W - 1) / 2, (H - 1) / 2) moved by
    principal_offset (du, dv) pixels."""
    height, width = size
    if not 0 < horizontal_fov_deg < 180:
        raise ValueError(f"horizontal_fov_deg must lie in (0, 180), got {horizontal_fov_deg}")
    focal = width / 2 / math.tan(math.radians(horizontal_fov_deg) / 2)
    cx = (width - 1) / 2 + principal_offset[0]
    cy = (height - 1) / 2 + principal_offset[1]
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def look_at(centre: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(3, 3) R_cw of a camera at centre (3,) whose optical axis points at target (3,), image
    x axis horizontal (world y up), then turned by `roll` radians about the optical axis.

    Raises ValueError when the target coincides with the centre or lies straight above or below.
    """
    forward = np.asarray(target, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    if np.linalg.norm(right) < 1e-9 * max(np.linalg.norm(forward), 1e-300):
        raise ValueError("the target must not lie at or straight above or below the camera")
    forward /= np.linalg.norm(forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R_cw = np.stack([right, down, forward])  # rows: the camera axes in world coordinates
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R_cw


def _view(K: np.ndarray, size: tuple[int, int], centre: np.ndarray, R_cw: np.ndarray) -> CameraView:
    return CameraView(K=K, size=size, R_cw=R_cw, t_cw=-R_cw @ centre)


def _free(
    points: np.ndarray, room: Room, footprints: Sequence[Footprint], config: CameraConfig
) -> np.ndarray:
    """(N,) bool: which floor-plan points (N, 2) keep the clearances to walls and objects."""
    free = room.contains(points, config.wall_clearance)
    for footprint in footprints:
        free &= footprint.distance(points) >= config.object_clearance
    return free


def _sample_target(
    rng: np.random.Generator,
    room: Room,
    focus: tuple[Footprint, float] | None,
    config: CameraConfig,
) -> np.ndarray:
    """(3,) a look-at point near the focus (footprint, height) or, without one, the room centre."""
    if focus is None:
        return np.array([0.0, rng.uniform(0.3, 1.0), 0.0])
    footprint, height = focus
    offset = rng.uniform(-config.target_jitter, config.target_jitter, size=2)
    x, z = np.clip(
        footprint.centre + offset,
        -np.array([room.width, room.depth]) / 2,
        np.array([room.width, room.depth]) / 2,
    )
    return np.array([x, height * rng.uniform(*config.target_height), z])


def _sample_height(rng: np.random.Generator, room: Room, config: CameraConfig) -> float:
    person = rng.random() < config.person_probability
    height = rng.uniform(*(config.person_height if person else config.robot_height))
    return float(min(height, room.height - 0.1))


def _sample_intrinsics(
    rng: np.random.Generator, size: tuple[int, int], config: CameraConfig
) -> np.ndarray:
    fov = rng.uniform(*config.horizontal_fov_deg)
    offset = rng.uniform(-1, 1, size=2) * config.principal_point_jitter * np.array(size[::-1])
    return camera_intrinsics(size, fov, offset)


def _place(
    rng: np.random.Generator,
    room: Room,
    footprints: Sequence[Footprint],
    target: np.ndarray,
    config: CameraConfig,
) -> np.ndarray:
    """(2,) a floor-plan camera place at config.distance from the target's (x, z).

    The first free candidate with a clear line of sight wins, else the first free one, else the
    most open of the candidates and of as many uniform places in the room.
    """
    count = config.attempts
    azimuths = rng.uniform(0, 2 * math.pi, size=count)
    distances = rng.uniform(*config.distance, size=count)
    ring = target[[0, 2]] + distances[:, None] * np.stack([np.cos(azimuths), np.sin(azimuths)], 1)
    free = _free(ring, room, footprints, config)
    in_sight = free.copy()
    if footprints:
        sight_lines = Footprint.of_segment(ring[:, None], target[[0, 2]])  # batch (count, 1)
        in_sight &= ~footprints_overlap(sight_lines, Footprint.stack(footprints)).any(axis=1)
    if in_sight.any():
        return ring[np.argmax(in_sight)]
    if free.any():
        return ring[np.argmax(free)]
    half = np.array([room.width, room.depth]) / 2 - config.wall_clearance
    candidates = np.concatenate([ring, rng.uniform(-half, half, size=(count, 2))])
    candidates = np.clip(candidates, -half, half)
    clearance = np.full(len(candidates), np.inf)
    for footprint in footprints:
        clearance = np.minimum(clearance, footprint.distance(candidates))
    return candidates[int(np.argmax(clearance))]


def sample_view(
    rng: np.random.Generator,
    room: Room,
    footprints: Sequence[Footprint],
    focus: tuple[Footprint, float] | None,
    size: tuple[int, int],
    config: CameraConfig,
) -> CameraView:
    """One random camera in the room looking at a point of the focus object, given as its
    (footprint, height in metres), or at the room centre when focus is None.

    footprints are the objects the camera must keep clear of; size is the image (H, W).
    """
    K = _sample_intrinsics(rng, size, config)
    target = _sample_target(rng, room, focus, config)
    height = _sample_height(rng, room, config)
    x, z = _place(rng, room, footprints, target, config)
    centre = np.array([x, height, z])
    roll = math.radians(rng.uniform(-config.max_roll_deg, config.max_roll_deg))
    return _view(K, size, centre, look_at(centre, _target_off_axis(centre, target), roll))


def _target_off_axis(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The target, moved sideways by 1 mm if it lies straight above or below the centre."""
    if np.linalg.norm((target - centre)[[0, 2]]) < 1e-6:
        return target + np.array([1e-3, 0.0, 0.0])
    return target


def orbit_path(
    rng: np.random.Generator,
    room: Room,
    footprints: Sequence[Footprint],
    focus: tuple[Footprint, float] | None,
    size: tuple[int, int],
    n_frames: int,
    config: CameraConfig,
) -> list[CameraView]:
    """n_frames views of one camera (fixed K and roll) swinging smoothly about a target.

    Tries config.attempts orbits whose every position keeps the clearances; when none does,
    the camera stands still at a sampled place and pans slowly across the target.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    K = _sample_intrinsics(rng, size, config)
    roll = math.radians(rng.uniform(-config.max_roll_deg, config.max_roll_deg))
    steps = np.arange(n_frames, dtype=np.float64)
    for _ in range(config.attempts):
        target = _sample_target(rng, room, focus, config)
        centres = _orbit(rng, room, footprints, target, steps, config)
        if _free(centres[:, [0, 2]], room, footprints, config).all():
            return [
                _view(K, size, c, look_at(c, _target_off_axis(c, target), roll)) for c in centres
            ]
    target = _sample_target(rng, room, focus, config)
    x, z = _place(rng, room, footprints, target, config)
    centre = np.array([x, _sample_height(rng, room, config), z])
    # Pan: the target slides sideways at most `speed` per frame, an angular rate below
    # speed / distance.
    sideways = np.cross(target - centre, [0.0, 1.0, 0.0])
    sideways /= max(np.linalg.norm(sideways), 1e-9)
    amplitude = 0.5
    rate = config.speed / amplitude
    targets = target + np.outer(amplitude * np.sin(rate * steps), sideways)
    return [
        _view(K, size, centre, look_at(centre, _target_off_axis(centre, t), roll)) for t in targets
    ]


def _orbit(
    rng: np.random.Generator,
    room: Room,
    footprints: Sequence[Footprint],
    target: np.ndarray,
    steps: np.ndarray,
    config: CameraConfig,
) -> np.ndarray:
    """(N, 3) camera centres at frame numbers steps (N,) of one random orbit about target.

    The azimuth, distance and height are sines a sin(w k + p) of periods of at least
    MIN_PERIOD frames; a sine moves at most a w per frame, and the amplitudes keep these peak
    speeds below 0.8, 0.4 and 0.2 times config.speed, so the camera moves less than
    config.speed per frame (sqrt(0.64 + 0.16 + 0.04) < 1).
    """
    start = _place(rng, room, footprints, target, config)
    offset = start - target[[0, 2]]
    azimuth0 = math.atan2(offset[1], offset[0])
    max_rate = 2 * math.pi / MIN_PERIOD
    rates = rng.uniform(0.5, 1.0, size=3) * max_rate
    radius_swing = min(rng.uniform(0.0, 0.3), 0.4 * config.speed / rates[1])
    height_swing = min(rng.uniform(0.0, 0.05), 0.2 * config.speed / rates[2])
    radius = max(float(np.linalg.norm(offset)), 0.5 + radius_swing)
    sweep = math.radians(rng.uniform(0.3, 1.0) * config.max_sweep_deg)
    rates[0] = min(rates[0], 0.8 * config.speed / ((radius + radius_swing) * sweep))
    phases = rng.uniform(0, 2 * math.pi, size=2)
    direction = rng.choice([-1.0, 1.0])
    azimuth = azimuth0 + direction * sweep * np.sin(rates[0] * steps)
    distance = radius + radius_swing * np.sin(rates[1] * steps + phases[0])
    heights = _sample_height(rng, room, config) + height_swing * np.sin(
        rates[2] * steps + phases[1]
    )
    xz = target[[0, 2]] + distance[:, None] * np.stack([np.cos(azimuth), np.sin(azimuth)], 1)
    return np.stack([xz[:, 0], heights, xz[:, 1]], axis=1)
