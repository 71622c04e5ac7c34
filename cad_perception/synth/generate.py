"""Streams of rendered frames: independent scenes for datasets, one camera path for rosbags.

Both are lazy (a frame is rendered when the writer asks for it) and sized (progress bars know the
total). Every random draw derives from the user's seed through numpy's SeedSequence, so a seed
gives the same frames on every machine and run.

With workers > 1 the frames are rendered in that many worker processes (`synth.parallel`), a
few frames ahead of the consumer, and yielded in order; they are array-equal to the frames of
workers = 1, which renders in this process. Each worker opens the CAD database read-only from
its folder (a CadDatabase cannot be pickled); a PathFrames worker builds the scene and the
camera path once from the seed.
"""

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cad_perception.cad.database import CadDatabase
from cad_perception.synth.camera_path import CameraView
from cad_perception.synth.frame import Frame
from cad_perception.synth.parallel import check_workers, ordered_map
from cad_perception.synth.scene import (
    Scene,
    SceneConfig,
    camera_trajectory,
    generate_scene,
    render_view,
    sample_camera,
)


def _seed(*entropy: int) -> int:
    """A 32-bit seed derived from the given integers (stable, well mixed)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


@dataclass(frozen=True, kw_only=True)
class SceneFrames:
    """One view of each of `scenes` random scenes: scene i is built from seed (seed, i).

    workers: processes rendering the frames (1: this process; ValueError when < 1); a worker's
    exception is raised with "frame I: " (I the 0-based frame index) before its message.
    """

    db: CadDatabase
    scenes: int
    seed: int
    config: SceneConfig
    split: str | None = None
    unseen_cads: bool = False
    workers: int = 1

    def __post_init__(self) -> None:
        check_workers(self.workers)

    def __len__(self) -> int:
        return self.scenes

    def __iter__(self) -> Iterator[Frame]:
        render = functools.partial(
            _scene_frame,
            seed=self.seed,
            config=self.config,
            split=self.split,
            unseen_cads=self.unseen_cads,
        )
        workers = min(self.workers, self.scenes)
        if workers <= 1:
            for index in range(self.scenes):
                yield render(self.db, index)
            return
        yield from ordered_map(
            render,
            range(self.scenes),
            setup=functools.partial(_open_readonly, self.db.root),
            workers=workers,
            label="frame",
            preload=(__name__,),
        )


@dataclass(frozen=True, kw_only=True)
class PathFrames:
    """`frames` views along one smooth camera path through one random scene.

    Lights, textures and camera effects are drawn once for the whole sequence (every frame shades
    with a generator seeded alike), so only the viewpoint changes from frame to frame.
    workers: processes rendering the frames (1: this process; ValueError when < 1); a worker's
    exception is raised with "frame I: " (I the 0-based frame index) before its message.
    """

    db: CadDatabase
    frames: int
    seed: int
    config: SceneConfig
    split: str | None = None
    unseen_cads: bool = False
    workers: int = 1

    def __post_init__(self) -> None:
        check_workers(self.workers)

    def __len__(self) -> int:
        return self.frames

    def __iter__(self) -> Iterator[Frame]:
        build = functools.partial(
            _path_scene,
            seed=self.seed,
            frames=self.frames,
            config=self.config,
            split=self.split,
            unseen_cads=self.unseen_cads,
        )
        render = functools.partial(_path_frame, seed=self.seed)
        workers = min(self.workers, self.frames)
        if workers <= 1:
            path = build(self.db)
            for index in range(self.frames):
                yield render(path, index)
            return
        yield from ordered_map(
            render,
            range(self.frames),
            setup=functools.partial(_build_path, self.db.root, build),
            workers=workers,
            label="frame",
            preload=(__name__,),
        )


def _scene_frame(
    db: CadDatabase,
    index: int,
    *,
    seed: int,
    config: SceneConfig,
    split: str | None,
    unseen_cads: bool,
) -> Frame:
    """Frame `index` of SceneFrames(seed=seed, ...): one view of the scene of seed (seed, index)."""
    scene = generate_scene(db, _seed(seed, index), config, split, unseen_cads)
    rng = np.random.default_rng(_seed(seed, index, 1))
    return render_view(scene, sample_camera(scene, rng), rng)


def _path_scene(
    db: CadDatabase,
    *,
    seed: int,
    frames: int,
    config: SceneConfig,
    split: str | None,
    unseen_cads: bool,
) -> tuple[Scene, list[CameraView]]:
    """The scene of PathFrames(seed=seed, ...) and its `frames` camera views."""
    scene = generate_scene(db, _seed(seed), config, split, unseen_cads)
    return scene, camera_trajectory(scene, frames, np.random.default_rng(_seed(seed, 1)))


def _path_frame(path: tuple[Scene, list[CameraView]], index: int, *, seed: int) -> Frame:
    """Frame `index` of PathFrames(seed=seed, ...) from its scene and camera views."""
    scene, views = path
    return render_view(scene, views[index], np.random.default_rng(_seed(seed, 2)))


def _open_readonly(root: Path) -> CadDatabase:
    """A worker's read-only handle of the CAD database folder `root` (closed at its exit)."""
    return CadDatabase.open(root, readonly=True)


def _build_path(root: Path, build: functools.partial) -> tuple[Scene, list[CameraView]]:
    """A worker's PathFrames scene and views, from the database folder `root`."""
    with CadDatabase.open(root, readonly=True) as db:
        return build(db)
