import itertools

import numpy as np
import pytest

from cad_perception.cad.database import CadDatabase
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
