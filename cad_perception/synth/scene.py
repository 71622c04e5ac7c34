"""Random indoor scenes of CAD models, their cameras and their rendered, labelled frames.

World frame: metres, y up, the floor is the plane y = 0, and the room spans x in [-W/2, W/2],
z in [-D/2, D/2] (`synth.room`). The camera frame is the OpenCV / ROS optical frame (x right,
y down, z forward); a CameraView maps world to camera points by X_c = R_cw X_w + t_cw
(`synth.camera_path`). An object's mesh is its normalised canonical CAD mesh (y up, bounding
box centred at the origin, diagonal 1) and X_w = R_world (s * X) + t_world, so its metric
bounding-box extents are s * (normalised extents) and in a view its pose is
R = R_cw R_world, t = R_cw t_world + t_cw.

A scene is a box room (floor, walls and ceiling in random colours; the shading module adds
textures and lights per rendered view) with 1 to 8 objects standing on the floor: each object's
lowest point is at y = 0 and its top below the ceiling, it is turned by a random yaw about y,
and its footprint (the floor-plan rectangle of its bounding box) stays inside the walls
(touching allowed) and at least `placement_margin` from every other footprint by the
separating axis test.

Sizes: a CAD whose database record knows its metric extents gets those; one without them gets
a uniform scale of its normalised mesh that fits its category's size range
(`cad.procedural.CATEGORY_SIZES`; when no scale fits, the one closest to the range centre in
log scale), or a 1 m diagonal for a category without a range. Each axis is then multiplied by
its own factor in [1 - size_jitter, 1 + size_jitter].

CAD splits: `cad_split` puts a CAD in 'train', 'val' or 'test' by the SHA-256 of its id
(80 / 10 / 10). `generate_scene(..., split=S)` draws only CADs of split S; split=None draws
from every CAD; unseen_cads=True draws only the held-out 'test' CADs, whatever `split` says.
Categories without a CAD to draw are skipped; a ValueError says when none has any.

A scene, a camera or a trajectory is a function of its seed or generator only (and of the
database's content), so equal seeds give identical frames, rgb bytes included.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage
import trimesh

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.mesh import load_mesh
from cad_perception.cad.procedural import CATEGORY_SIZES
from cad_perception.synth.camera_path import (
    CameraConfig,
    CameraView,
    orbit_path,
    sample_view,
)
from cad_perception.synth.frame import Frame, FrameObject
from cad_perception.synth.renderer import RenderObject, render
from cad_perception.synth.room import Footprint, Room, footprints_overlap, make_room, yaw_rotation
from cad_perception.synth.shading import ShadingConfig, shade
from cad_perception.synth.visibility import unoccluded_pixel_counts

__all__ = [
    "SPLITS",
    "CameraConfig",
    "CameraView",
    "MeshCache",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "cad_split",
    "camera_trajectory",
    "generate_scene",
    "min_visible_pixels",
    "posed_meshes",
    "render_view",
    "sample_camera",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
HELD_OUT_SPLIT = "test"
"""The split `unseen_cads` draws from."""
REFERENCE_IMAGE_AREA = 240 * 320
"""The image area at which SceneConfig.min_visible_pixels applies as given."""

Range = tuple[float, float]
"""(low, high) of a uniform draw."""


@dataclass(frozen=True, kw_only=True)
class SceneConfig:
    """How scenes are built and filtered; the camera placement is in `camera`."""

    image_size: tuple[int, int] = (240, 320)
    """(H, W) of rendered views."""
    min_objects: int = 1
    max_objects: int = 8
    room_width: Range = (4.0, 7.0)
    """Room extent along x, metres."""
    room_depth: Range = (4.0, 7.0)
    """Room extent along z, metres."""
    room_height: Range = (2.5, 3.2)
    size_jitter: float = 0.1
    """Largest relative change of each metric extent of an object."""
    placement_margin: float = 0.05
    """Smallest floor-plan gap between two objects' footprints, metres."""
    placement_attempts: int = 50
    """Random positions tried per object before it is left out."""
    categories: tuple[str, ...] | None = None
    """Categories to draw from; None: every category of the database."""
    min_visible_pixels: int = 200
    """Fewest visible pixels of an object kept in a frame, at a 240 x 320 image; scaled with
    the image area (see `min_visible_pixels`)."""
    camera: CameraConfig = field(default_factory=CameraConfig)

    def __post_init__(self) -> None:
        height, width = self.image_size
        if height < 1 or width < 1:
            raise ValueError(f"image_size must be positive (H, W), got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        for name in ("room_width", "room_depth", "room_height"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(low, high)}")
        if not 0 <= self.size_jitter < 1 or self.placement_margin < 0:
            raise ValueError("size_jitter must lie in [0, 1) and placement_margin be >= 0")
        if self.placement_attempts < 1 or self.min_visible_pixels < 0:
            raise ValueError("placement_attempts must be >= 1 and min_visible_pixels >= 0")


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One CAD model standing in the room: X_w = R_world (s * X) + t_world for its normalised
    mesh's vertices X."""

    cad_id: str
    category: str
    symmetry: str
    mesh: trimesh.Trimesh
    """The normalised canonical mesh (shared with the mesh cache: do not modify)."""
    R_world: np.ndarray
    """(3, 3) float64 rotation about y."""
    t_world: np.ndarray
    """(3,) float64 metres."""
    s: np.ndarray
    """(3,) float64 per-axis scale."""

    @property
    def metric_extents(self) -> np.ndarray:
        """(3,) bounding-box extents in metres along the object's own axes: s * mesh extents."""
        return self.s * self.mesh.extents

    @functools.cached_property
    def footprint(self) -> Footprint:
        """Its floor-plan rectangle (computed once)."""
        lower, upper = self.mesh.bounds
        return Footprint.of_box(self.R_world, self.t_world, self.s * lower, self.s * upper)

    def world_vertices(self) -> np.ndarray:
        """(V, 3) float64 mesh vertices in the world."""
        return (np.asarray(self.mesh.vertices) * self.s) @ self.R_world.T + self.t_world


@dataclass(frozen=True, eq=False)
class Scene:
    """A generated room with its objects; its appearance (colours) is in the room mesh and the
    objects' meshes, lights and textures are drawn per rendered view."""

    seed: int
    config: SceneConfig
    room: Room
    objects: tuple[SceneObject, ...]


class MeshCache:
    """A small least-recently-used cache of loaded meshes, keyed by file path, modification
    time and size (so a rewritten file is loaded again). Cached meshes are shared: do not
    modify them."""

    def __init__(self, capacity: int = 256):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._meshes: OrderedDict[tuple, trimesh.Trimesh] = OrderedDict()

    def __len__(self) -> int:
        return len(self._meshes)

    def get(self, path: str | os.PathLike) -> trimesh.Trimesh:
        """The mesh in file `path` (MeshError as `cad.mesh.load_mesh` when unreadable)."""
        path = Path(path)
        try:
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = (str(path), None, None)  # load_mesh raises a MeshError naming the file
        mesh = self._meshes.get(key)
        if mesh is None:
            mesh = load_mesh(path)
            self._meshes[key] = mesh
            if len(self._meshes) > self.capacity:
                self._meshes.popitem(last=False)
        else:
            self._meshes.move_to_end(key)
        return mesh


_SHARED_MESH_CACHE = MeshCache()
"""The cache `generate_scene` uses when it is given none."""


@functools.lru_cache(maxsize=1 << 16)
def cad_split(cad_id: str) -> str:
    """'train', 'val' or 'test' for a CAD id: SHA-256 of the id's UTF-8 bytes, first 8 bytes as
    a big-endian integer, modulo 10: 0-7 train, 8 val, 9 test."""
    digest = hashlib.sha256(cad_id.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10
    return "train" if bucket < 8 else "val" if bucket == 8 else "test"


def min_visible_pixels(config: SceneConfig, size: tuple[int, int]) -> int:
    """The fewest visible pixels of a kept object in an image (H, W): config.min_visible_pixels
    scaled by the image area relative to 240 x 320, rounded up."""
    return math.ceil(config.min_visible_pixels * size[0] * size[1] / REFERENCE_IMAGE_AREA)


def _cad_pool(
    db: CadDatabase, split: str | None, categories: tuple[str, ...] | None
) -> dict[str, list[str]]:
    """Category -> sorted CAD ids of `split` (all CADs for None), for the categories that have
    any. Raises ValueError when none has."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    stored = [name for name, count in db.info()["per_category"].items() if count > 0]
    wanted = sorted(stored if categories is None else set(stored) & set(categories))
    pool = {}
    for category in wanted:
        ids = [i for i in db.ids(category) if split is None or cad_split(i) == split]
        if ids:
            pool[category] = ids
    if not pool:
        which = "any split" if split is None else f"split {split!r}"
        among = "any category" if categories is None else f"categories {list(categories)}"
        raise ValueError(f"the CAD database {db.root} has no CAD of {which} in {among}")
    return pool


def _metric_base_extents(
    rng: np.random.Generator, category: str, extents: np.ndarray | None, unit: np.ndarray
) -> np.ndarray:
    """(3,) metric extents before jitter of a CAD with known metric `extents` or None, whose
    normalised mesh has extents `unit` (3,)."""
    if extents is not None:
        return np.asarray(extents, dtype=np.float64)
    if category not in CATEGORY_SIZES:
        return unit  # a 1 m diagonal
    lower, upper = (np.asarray(bound, dtype=np.float64) for bound in CATEGORY_SIZES[category])
    fitting = (np.max(lower / unit), np.min(upper / unit))
    if fitting[0] <= fitting[1]:
        return rng.uniform(*fitting) * unit
    return math.exp(np.mean(np.log(np.sqrt(lower * upper) / unit))) * unit


def _place(
    rng: np.random.Generator,
    room: Room,
    placed: list[SceneObject],
    mesh: trimesh.Trimesh,
    s: np.ndarray,
    config: SceneConfig,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(R_world, t_world) of the first free one of config.placement_attempts random places on
    the floor for the mesh at scale s, or None."""
    lower, upper = np.asarray(mesh.bounds) * s
    count = config.placement_attempts
    R = yaw_rotation(rng.uniform(0, 2 * math.pi, size=count))
    half_room = np.array([room.width, room.depth]) / 2
    x, z = rng.uniform(-half_room, half_room, size=(count, 2)).T
    t = np.stack([x, np.full(count, -lower[1]), z], axis=1)  # lowest point on the floor
    candidates = Footprint.of_box(R[:, None], t[:, None], lower, upper)  # batch (count, 1)
    free = room.contains(candidates.corners().reshape(-1, 2)).reshape(count, 4).all(axis=1)
    if placed:
        others = Footprint.stack([item.footprint for item in placed])  # batch (P,)
        free &= ~footprints_overlap(candidates, others, config.placement_margin).any(axis=1)
    if not free.any():
        return None
    first = int(np.argmax(free))
    return R[first], t[first]


def generate_scene(
    db: CadDatabase,
    seed: int,
    config: SceneConfig | None = None,
    split: str | None = None,
    unseen_cads: bool = False,
    *,
    mesh_cache: MeshCache | None = None,
) -> Scene:
    """A random scene of CADs from `db`, a function of `seed` and the database content.

    split / unseen_cads choose the CADs (module docstring); mesh_cache keeps loaded meshes
    between calls (a module-wide one by default). Up to 3 * count CADs are drawn to place the
    count sampled objects; ValueError when none can be placed or no CAD can be drawn.
    """
    config = SceneConfig() if config is None else config
    pool = _cad_pool(db, HELD_OUT_SPLIT if unseen_cads else split, config.categories)
    meshes = _SHARED_MESH_CACHE if mesh_cache is None else mesh_cache
    rng = np.random.default_rng(seed)
    room = make_room(
        rng.uniform(*config.room_width),
        rng.uniform(*config.room_depth),
        rng.uniform(*config.room_height),
        _room_colors(rng),
    )
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    categories = list(pool)
    objects: list[SceneObject] = []
    for _ in range(3 * count):
        if len(objects) == count:
            break
        ids = pool[categories[rng.integers(len(categories))]]
        record = db.get(ids[rng.integers(len(ids))])
        mesh = meshes.get(record.mesh_path)
        unit = np.maximum(mesh.extents, 1e-6)
        base = _metric_base_extents(rng, record.category, record.extents, unit)
        jitter = rng.uniform(1 - config.size_jitter, 1 + config.size_jitter, size=3)
        s = base * jitter / unit
        pose = (
            None if s[1] * unit[1] >= room.height else _place(rng, room, objects, mesh, s, config)
        )
        if pose is None:
            logger.debug("no free place for %s in scene %s", record.cad_id, seed)
            continue
        objects.append(
            SceneObject(
                cad_id=record.cad_id,
                category=record.category,
                symmetry=record.symmetry,
                mesh=mesh,
                R_world=pose[0],
                t_world=pose[1],
                s=s,
            )
        )
    if not objects:
        raise ValueError(f"scene {seed}: no drawn CAD fits into the room")
    return Scene(seed=seed, config=config, room=room, objects=tuple(objects))


def _room_colors(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) uint8 floor, wall and ceiling colours: any floor, light walls, a near-white
    ceiling."""
    floor = rng.integers(40, 200, size=3)
    walls = rng.integers(130, 245, size=3)
    ceiling = rng.integers(200, 250) + rng.integers(-5, 6, size=3)
    return np.stack([floor, walls, ceiling]).astype(np.uint8)


def _focus(scene: Scene, rng: np.random.Generator) -> tuple[Footprint, float] | None:
    """(footprint, height) of a random object to look at, None in an empty scene."""
    if not scene.objects:
        return None
    item = scene.objects[rng.integers(len(scene.objects))]
    return item.footprint, float(item.metric_extents[1])


def sample_camera(
    scene: Scene, rng: np.random.Generator, config: SceneConfig | None = None
) -> CameraView:
    """A random camera in the scene looking at one of its objects (config: the scene's own
    when None); see `synth.camera_path`."""
    config = scene.config if config is None else config
    footprints = [item.footprint for item in scene.objects]
    focus = _focus(scene, rng)
    return sample_view(rng, scene.room, footprints, focus, config.image_size, config.camera)


def camera_trajectory(
    scene: Scene, n_frames: int, rng: np.random.Generator, config: SceneConfig | None = None
) -> list[CameraView]:
    """n_frames views along a smooth path of one camera about one of the scene's objects
    (config: the scene's own when None); see `synth.camera_path`."""
    config = scene.config if config is None else config
    footprints = [item.footprint for item in scene.objects]
    focus = _focus(scene, rng)
    return orbit_path(
        rng, scene.room, footprints, focus, config.image_size, n_frames, config.camera
    )


def posed_meshes(scene: Scene, view: CameraView) -> tuple[list[RenderObject], RenderObject]:
    """The scene's objects (in scene order) and its room, posed in the camera frame of `view`."""
    objects = [
        RenderObject(
            mesh=item.mesh,
            R=view.R_cw @ item.R_world,
            t=view.R_cw @ item.t_world + view.t_cw,
            s=item.s,
        )
        for item in scene.objects
    ]
    room = RenderObject(mesh=scene.room.mesh, R=view.R_cw, t=view.t_cw, s=np.ones(3))
    return objects, room


def render_view(
    scene: Scene,
    view: CameraView,
    rng: np.random.Generator,
    shading: ShadingConfig | None = None,
) -> Frame:
    """The scene rendered through `view`, shaded with random lights and textures from rng.

    Objects with fewer than `min_visible_pixels(scene.config, view.size)` visible pixels are
    left out of the frame: their pixels become background in the instance and NOC maps (they
    stay in rgb and depth). The kept objects are numbered 1, 2, ... in scene order.
    """
    objects, room = posed_meshes(scene, view)
    buffers = render(objects, view.K, view.size, background=[room])
    rgb = shade(
        buffers,
        [item.mesh for item in objects] + [room.mesh],
        rng,
        ShadingConfig() if shading is None else shading,
    )

    visible = np.bincount(buffers.instance.ravel(), minlength=len(objects) + 1)[1:]
    kept = visible >= max(min_visible_pixels(scene.config, view.size), 1)
    unoccluded = unoccluded_pixel_counts(objects, view.K, view.size, visible, needed=kept)
    relabel = np.zeros(len(objects) + 1, dtype=np.int32)
    relabel[1:][kept] = np.arange(1, np.count_nonzero(kept) + 1)
    instance = relabel[buffers.instance]
    noc = np.where((instance > 0)[..., None], buffers.noc, np.float32(np.nan))

    boxes = scipy.ndimage.find_objects(instance)
    frame_objects = []
    for index in np.flatnonzero(kept):
        rows, columns = boxes[relabel[index + 1] - 1]
        item, posed = scene.objects[index], objects[index]
        frame_objects.append(
            FrameObject(
                instance=int(relabel[index + 1]),
                cad_id=item.cad_id,
                category=item.category,
                symmetry=item.symmetry,
                R=posed.R,
                t=posed.t,
                s=posed.s,
                bbox=(
                    columns.start,
                    rows.start,
                    columns.stop - columns.start,
                    rows.stop - rows.start,
                ),
                visible_pixels=int(visible[index]),
                occlusion_ratio=float(np.clip(1 - visible[index] / unoccluded[index], 0, 1)),
            )
        )
    return Frame(
        rgb=rgb,
        depth=buffers.depth,
        instance=instance,
        noc=noc,
        K=np.array(view.K, dtype=np.float64),
        objects=tuple(frame_objects),
    )
