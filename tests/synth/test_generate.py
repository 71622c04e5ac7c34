import itertools

import numpy as np
import pytest

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.errors import DatabaseError
from cad_perception.cad.ingest import build_procedural
from cad_perception.synth.generate import PathFrames, SceneFrames
from cad_perception.synth.scene import SceneConfig

CONFIG = SceneConfig(image_size=(60, 80), min_visible_pixels=20)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "db"
    with CadDatabase.create(path) as database:
        build_procedural(database, 1, 0, progress=False)
    with CadDatabase.open(path, readonly=True) as database:
        yield database


def test_scene_frames_are_sized_seeded_and_distinct(db):
    frames = SceneFrames(db=db, scenes=3, seed=5, config=CONFIG)
    first, again = list(frames), list(frames)
    assert len(frames) == len(first) == 3
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(first[0].rgb, first[1].rgb)
    other = list(SceneFrames(db=db, scenes=1, seed=6, config=CONFIG))
    assert not np.array_equal(other[0].rgb, first[0].rgb)


def test_path_frames_follow_one_scene_with_fixed_lighting(db):
    frames = list(PathFrames(db=db, frames=4, seed=2, config=CONFIG))
    assert len(frames) == 4
    cad_ids = [{o.cad_id for o in frame.objects} for frame in frames]
    assert set.union(*cad_ids) and all(ids <= set.union(*cad_ids) for ids in cad_ids)
    # One scene seen from nearby viewpoints: an object moves little between consecutive frames.
    steps = []
    for a, b in itertools.pairwise(frames):
        t_b = {o.cad_id: o.t for o in b.objects}
        steps += [np.linalg.norm(o.t - t_b[o.cad_id]) for o in a.objects if o.cad_id in t_b]
    assert steps and max(steps) < 0.2


def _assert_same_frames(expected, actual):
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual, strict=True):
        for name in ("rgb", "depth", "instance", "noc", "K"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert len(a.objects) == len(b.objects)
        for x, y in zip(a.objects, b.objects, strict=True):
            assert (x.cad_id, x.instance, x.bbox, x.visible_pixels, x.occlusion_ratio) == (
                y.cad_id,
                y.instance,
                y.bbox,
                y.visible_pixels,
                y.occlusion_ratio,
            )
            for name in ("R", "t", "s"):
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name))


@pytest.mark.parametrize("stream, count", [(SceneFrames, "scenes"), (PathFrames, "frames")])
def test_worker_processes_render_the_same_frames_in_order(db, stream, count):
    options = {"db": db, "seed": 3, "config": CONFIG, count: 4}
    in_process = list(stream(**options))
    in_workers = list(stream(**options, workers=2))
    _assert_same_frames(in_process, in_workers)
    assert not np.array_equal(in_workers[0].rgb, in_workers[1].rgb)
    # More workers than frames is fine (and renders the same).
    _assert_same_frames(in_process[:1], list(stream(**{**options, count: 1}, workers=3)))


def test_a_worker_error_names_the_frame_and_keeps_its_type(tmp_path):
    path = tmp_path / "db"
    with CadDatabase.create(path) as database:
        build_procedural(database, 1, 0, progress=False)
    with CadDatabase.open(path, readonly=True) as database:
        frames = SceneFrames(db=database, scenes=3, seed=0, config=CONFIG, workers=2)
        path.rename(tmp_path / "moved")  # the workers open the database from its folder
        with pytest.raises(DatabaseError, match=r"^frame 0: no CAD catalogue at "):
            list(frames)


@pytest.mark.parametrize("stream", [SceneFrames, PathFrames])
def test_workers_must_be_positive(db, stream):
    count = "scenes" if stream is SceneFrames else "frames"
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        stream(db=db, seed=0, config=CONFIG, workers=0, **{count: 2})
