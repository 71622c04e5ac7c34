import collections
import itertools
import math

import numpy as np
import pytest
import trimesh

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.cad.procedural import CATEGORY_SIZES
from cad_perception.synth.camera_path import CameraView, camera_intrinsics, look_at
from cad_perception.synth.room import make_room, yaw_rotation
from cad_perception.synth.scene import (
    MeshCache,
    Scene,
    SceneConfig,
    SceneObject,
    cad_split,
    camera_trajectory,
    generate_scene,
    min_visible_pixels,
    render_view,
    sample_camera,
)

CONFIG = SceneConfig(image_size=(90, 120))
SEEDS = range(12)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """18 procedural CADs (2 per category): 14 train, 3 val (bathtub-0, bed-0, chair-1) and
    1 test (cabinet-0)."""
    path = tmp_path_factory.mktemp("cads")
    with CadDatabase.create(path) as database:
        build_procedural(database, 2, 0, progress=False)
    database = CadDatabase.open(path, readonly=True)
    yield database
    database.close()


@pytest.fixture(scope="module")
def scenes(db):
    return [generate_scene(db, seed, CONFIG) for seed in SEEDS]


def sample_footprint(item: SceneObject, count: int = 21) -> np.ndarray:
    """(count^2, 2) floor-plan points filling the object's posed bounding box, from its world
    vertices' box (independent of Footprint)."""
    lower, upper = item.mesh.bounds * item.s
    a, b = np.meshgrid(
        np.linspace(lower[0], upper[0], count), np.linspace(lower[2], upper[2], count)
    )
    local = np.stack([a.ravel(), np.zeros(a.size), b.ravel()], axis=1)
    return (local @ item.R_world.T + item.t_world)[:, [0, 2]]


def inside_box(points: np.ndarray, item: SceneObject) -> np.ndarray:
    """(N,) whether floor-plan points lie strictly inside the object's posed bounding box."""
    lower, upper = item.mesh.bounds * item.s
    world = np.stack([points[:, 0], np.zeros(len(points)), points[:, 1]], axis=1)
    local = (world - item.t_world) @ item.R_world  # R^T (X - t) as rows
    return (
        (local[:, [0, 2]] > lower[[0, 2]] + 1e-9) & (local[:, [0, 2]] < upper[[0, 2]] - 1e-9)
    ).all(1)


def test_cad_split_is_a_fixed_80_10_10_hash():
    assert [cad_split(f"proc-{c}-00000") for c in ("bathtub", "cabinet", "chair", "table")] == [
        "val",
        "test",
        "train",
        "train",
    ]
    assert cad_split("proc-sofa-00002") == "test"
    assert cad_split("proc-chair-00001") == "val"
    counts = collections.Counter(cad_split(f"03001627/{i:032x}") for i in range(10000))
    assert abs(counts["train"] - 8000) < 150
    assert abs(counts["val"] - 1000) < 100
    assert abs(counts["test"] - 1000) < 100


def test_scenes_hold_one_to_eight_objects_standing_on_the_floor_inside_the_walls(scenes):
    counts = [len(scene.objects) for scene in scenes]
    assert min(counts) >= 1 and max(counts) <= 8 and len(set(counts)) > 2
    for scene in scenes:
        half = np.array([scene.room.width, scene.room.depth]) / 2
        for item in scene.objects:
            vertices = item.world_vertices()
            assert abs(vertices[:, 1].min()) < 1e-6
            assert (np.abs(vertices[:, [0, 2]]) <= half + 1e-9).all()
            assert vertices[:, 1].max() < scene.room.height
            np.testing.assert_allclose(
                item.R_world,
                yaw_rotation(math.atan2(item.R_world[0, 2], item.R_world[0, 0])),
                atol=1e-12,
            )


def test_footprints_never_overlap(scenes):
    pairs = 0
    for scene in scenes:
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1 :]:
                assert not inside_box(sample_footprint(a), b).any()
                assert not inside_box(sample_footprint(b), a).any()
                pairs += 1
    assert pairs > 20


def test_metric_sizes_are_the_records_extents_within_the_jitter(db, scenes):
    jitter = CONFIG.size_jitter
    for scene in scenes:
        for item in scene.objects:
            record = db.get(item.cad_id)
            ratio = item.metric_extents / record.extents
            assert ((ratio >= 1 - jitter - 1e-9) & (ratio <= 1 + jitter + 1e-9)).all()
            lower, upper = (np.array(bound) for bound in CATEGORY_SIZES[item.category])
            assert (item.metric_extents >= lower * (1 - jitter) - 1e-6).all()
            assert (item.metric_extents <= upper * (1 + jitter) + 1e-6).all()
            np.testing.assert_allclose(item.metric_extents, item.s * item.mesh.extents)
            assert item.symmetry == record.symmetry and item.category == record.category


def test_splits_choose_the_cads(db):
    for seed in range(4):
        assert all(
            cad_split(i.cad_id) == "train"
            for i in generate_scene(db, seed, CONFIG, split="train").objects
        )
        assert all(
            cad_split(i.cad_id) == "val"
            for i in generate_scene(db, seed, CONFIG, split="val").objects
        )
        # The test split holds one cabinet only: the other categories are skipped.
        for scene in (
            generate_scene(db, seed, CONFIG, split="test"),
            generate_scene(db, seed, CONFIG, split="train", unseen_cads=True),
        ):
            assert {i.cad_id for i in scene.objects} == {"proc-cabinet-00000"}
    with pytest.raises(ValueError, match="no CAD of split 'test'"):
        generate_scene(db, 0, SceneConfig(categories=("chair",)), split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        generate_scene(db, 0, CONFIG, split="training")


def test_equal_seeds_give_identical_frames_and_other_seeds_differ(db):
    def frame(seed: int, cache: MeshCache):
        scene = generate_scene(db, seed, CONFIG, mesh_cache=cache)
        rng = np.random.default_rng(seed)
        return scene, render_view(scene, sample_camera(scene, rng), rng)

    (scene_a, a), (scene_b, b) = frame(3, MeshCache()), frame(3, MeshCache())
    assert [i.cad_id for i in scene_a.objects] == [i.cad_id for i in scene_b.objects]
    assert a.rgb.tobytes() == b.rgb.tobytes()
    assert a.depth.tobytes() == b.depth.tobytes() and a.noc.tobytes() == b.noc.tobytes()
    assert np.array_equal(a.instance, b.instance) and np.array_equal(a.K, b.K)
    assert [(o.cad_id, o.t.tolist()) for o in a.objects] == [
        (o.cad_id, o.t.tolist()) for o in b.objects
    ]
    _, c = frame(4, MeshCache())
    assert a.rgb.tobytes() != c.rgb.tobytes()


def test_frame_poses_reproduce_the_noc_map_from_depth(scenes):
    """Back-projected depth mapped through the inverse pose gives the stored NOCs."""
    checked = 0
    for scene in scenes[:6]:
        rng = np.random.default_rng(scene.seed)
        frame = render_view(scene, sample_camera(scene, rng), rng)
        height, width = frame.size
        v, u = np.mgrid[0:height, 0:width].astype(np.float64)
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(frame.K).T
        points = rays * frame.depth[..., None].astype(np.float64)
        for item in frame.objects:
            mask = frame.instance == item.instance
            noc = ((points[mask] - item.t) @ item.R) / item.s
            assert np.abs(noc - frame.noc[mask]).max() < 1e-3
            assert (np.abs(frame.noc[mask]) <= 0.5 + 1e-4).all()
            checked += mask.sum()
        assert np.isnan(frame.noc[frame.instance == 0]).all()
        assert not np.isnan(frame.noc[frame.instance > 0]).any()
    assert checked > 5000


def test_frame_poses_are_the_world_placements_seen_from_the_camera(scenes):
    for scene in scenes[:6]:
        rng = np.random.default_rng(scene.seed)
        view = sample_camera(scene, rng)
        frame = render_view(scene, view, rng)
        for item in frame.objects:
            matches = [o for o in scene.objects if o.cad_id == item.cad_id]
            errors = []
            for candidate in matches:
                posed = (np.asarray(candidate.mesh.vertices) * item.s) @ item.R.T + item.t
                seen = candidate.world_vertices() @ view.R_cw.T + view.t_cw
                errors.append(np.abs(posed - seen).max())
            assert min(errors) < 1e-9


def test_frame_objects_agree_with_the_instance_map(scenes):
    threshold = min_visible_pixels(CONFIG, CONFIG.image_size)
    for scene in scenes[:6]:
        rng = np.random.default_rng(scene.seed + 100)
        frame = render_view(scene, sample_camera(scene, rng), rng)
        assert sorted(np.unique(frame.instance[frame.instance > 0])) == [
            o.instance for o in frame.objects
        ]
        assert [o.instance for o in frame.objects] == list(range(1, len(frame.objects) + 1))
        for item in frame.objects:
            rows, columns = np.nonzero(frame.instance == item.instance)
            assert item.visible_pixels == len(rows) >= threshold
            assert item.bbox == (columns.min(), rows.min(), np.ptp(columns) + 1, np.ptp(rows) + 1)
            assert 0 <= item.occlusion_ratio <= 1
            np.testing.assert_allclose(item.R @ item.R.T, np.eye(3), atol=1e-9)


def test_min_visible_pixels_scales_with_the_image_area():
    config = SceneConfig(min_visible_pixels=200)
    assert min_visible_pixels(config, (240, 320)) == 200
    assert min_visible_pixels(config, (480, 640)) == 800
    assert min_visible_pixels(config, (120, 160)) == 50
    assert min_visible_pixels(config, (90, 120)) == math.ceil(200 * 90 * 120 / 76800)


def box_object(cad_id: str, size, position, yaw: float = 0.0) -> SceneObject:
    """A box of metric size (3,) standing on the floor at floor-plan position (x, z)."""
    size = np.asarray(size, dtype=np.float64)
    unit = size / np.linalg.norm(size)
    mesh = trimesh.creation.box(extents=unit)
    return SceneObject(
        cad_id=cad_id,
        category="cabinet",
        symmetry="none",
        mesh=mesh,
        R_world=yaw_rotation(yaw),
        t_world=np.array([position[0], size[1] / 2, position[1]]),
        s=size / unit,
    )


def test_visibility_filter_drops_hidden_objects_and_measures_occlusion():
    wall = box_object("wall", (2.0, 2.0, 0.2), (0.0, 0.0))
    hidden = box_object("hidden", (0.4, 0.4, 0.4), (0.0, 1.0))
    peeking = box_object("peeking", (0.8, 0.8, 0.4), (1.2, 1.2))
    free = box_object("free", (0.5, 0.5, 0.5), (-1.8, 0.0))
    config = SceneConfig(image_size=(120, 160))
    room = make_room(6.0, 6.0, 3.0)
    centre = np.array([0.0, 1.0, -2.8])
    R = look_at(centre, [0.0, 0.6, 0.5])
    view = CameraView(
        K=camera_intrinsics((120, 160), 70.0), size=(120, 160), R_cw=R, t_cw=-R @ centre
    )

    def frame_of(*objects):
        scene = Scene(seed=0, config=config, room=room, objects=objects)
        return render_view(scene, view, np.random.default_rng(0))

    frame = frame_of(wall, hidden, peeking, free)
    kept = {o.cad_id: o for o in frame.objects}
    assert set(kept) == {"wall", "peeking", "free"}
    threshold = min_visible_pixels(config, config.image_size)
    assert frame_of(hidden).objects[0].visible_pixels > 2 * threshold  # it is in view
    assert kept["wall"].occlusion_ratio == 0 and kept["free"].occlusion_ratio == 0
    alone = frame_of(peeking).objects[0]
    assert alone.occlusion_ratio == 0
    expected = 1 - kept["peeking"].visible_pixels / alone.visible_pixels
    assert 0.1 < expected < 0.9
    assert kept["peeking"].occlusion_ratio == pytest.approx(expected, abs=1e-9)


def test_cameras_stand_in_the_room_and_see_objects(scenes):
    seen = floor_seen = 0
    for scene in scenes:
        rng = np.random.default_rng(scene.seed)
        view = sample_camera(scene, rng)
        centre = view.centre
        assert abs(centre[0]) < scene.room.width / 2 and abs(centre[2]) < scene.room.depth / 2
        assert 0.4 <= centre[1] <= 1.8
        frame = render_view(scene, view, rng)
        assert (frame.depth > 0).all()  # a closed room: every ray hits the room or an object
        # Background pixels back-projected into the world lie on the floor, walls or ceiling.
        height, width = frame.size
        v, u = np.mgrid[0:height, 0:width].astype(np.float64)
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(frame.K).T
        camera = (rays * frame.depth[..., None])[frame.instance == 0]
        world = (camera - view.t_cw) @ view.R_cw
        room = scene.room
        surfaces = np.stack(
            [
                np.abs(world[:, 1]),
                np.abs(world[:, 1] - room.height),
                np.abs(np.abs(world[:, 0]) - room.width / 2),
                np.abs(np.abs(world[:, 2]) - room.depth / 2),
            ]
        )
        on_objects = np.zeros(len(world), dtype=bool)  # dropped objects are background too
        for item in scene.objects:
            local = (world - item.t_world) @ item.R_world / item.s
            on_objects |= (np.abs(local) <= np.asarray(item.mesh.bounds[1]) + 1e-4).all(axis=1)
        assert (surfaces.min(axis=0)[~on_objects] < 1e-3).all()
        floor_seen += np.mean(world[:, 1] < 1e-3) > 0.1
        seen += len(frame.objects) > 0
    assert seen >= 0.8 * len(scenes)
    assert floor_seen >= 0.75 * len(scenes)


def test_trajectories_are_smooth_through_the_scene(scenes):
    scene = scenes[0]
    views = camera_trajectory(scene, 40, np.random.default_rng(1))
    centres = np.array([view.centre for view in views])
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() <= CONFIG.camera.speed + 1e-12
    for a, b in itertools.pairwise(views):
        angle = math.acos(np.clip((np.trace(a.R_cw.T @ b.R_cw) - 1) / 2, -1, 1))
        assert angle < math.radians(3.0)
    assert views[0].size == CONFIG.image_size


def test_mesh_cache_reuses_and_evicts(db, tmp_path):
    cache = MeshCache(capacity=2)
    paths = [db.get(cad_id).mesh_path for cad_id in db.ids()[:3]]
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first
    cache.get(paths[1])
    cache.get(paths[2])
    assert len(cache) == 2
    assert cache.get(paths[0]) is not first  # evicted, loaded again
    with pytest.raises(ValueError, match="capacity"):
        MeshCache(capacity=0)


def test_cads_without_metric_extents_get_plausible_sizes(tmp_path):
    from cad_perception.cad.ingest import add_source

    trimesh.creation.box(extents=[1.0, 2.0, 1.0]).export(tmp_path / "chair.obj")
    trimesh.creation.box(extents=[1.0, 2.0, 1.5]).export(tmp_path / "lamp.obj")
    with CadDatabase.create(tmp_path / "db") as database:
        add_source(database, tmp_path / "chair.obj", "chair", progress=False)
        add_source(database, tmp_path / "lamp.obj", "lamp", progress=False)
    config = SceneConfig(image_size=(30, 40), size_jitter=0.05)
    jitter = config.size_jitter
    lower, upper = (np.array(bound) for bound in CATEGORY_SIZES["chair"])
    with CadDatabase.open(tmp_path / "db", readonly=True) as database:
        assert database.get("chair").extents is None
        categories = set()
        for seed in range(5):
            for item in generate_scene(database, seed, config).objects:
                categories.add(item.category)
                unit = item.mesh.extents
                if item.category == "chair":
                    # One scale fits the chair range; the aspect changes by the jitter only.
                    assert (item.metric_extents >= lower * (1 - jitter) - 1e-9).all()
                    assert (item.metric_extents <= upper * (1 + jitter) + 1e-9).all()
                    assert np.ptp(item.s) <= item.s.mean() * 2.1 * jitter
                else:  # no size range: a 1 m diagonal
                    ratio = item.metric_extents / unit
                    assert ((ratio >= 1 - jitter - 1e-9) & (ratio <= 1 + jitter + 1e-9)).all()
        assert categories == {"chair", "lamp"}
