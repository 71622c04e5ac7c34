"""Streams of rendered frames: independent scenes for datasets, one camera path for rosbags.

Both are lazy (a frame is rendered when the writer asks for it) and sized (progress bars know the
total). Every random draw derives from the user's seed through numpy's SeedSequence, so a seed
gives the same frames on every machine and run.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cad_perception.cad.database import CadDatabase
from cad_perception.synth.frame import Frame
from cad_perception.synth.scene import (
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
    """One view of each of `scenes` random scenes: scene i is built from seed (seed, i)."""

    db: CadDatabase
    scenes: int
    seed: int
    config: SceneConfig
    split: str | None = None
    unseen_cads: bool = False

    def __len__(self) -> int:
        return self.scenes

    def __iter__(self) -> Iterator[Frame]:
        for index in range(self.scenes):
            scene = generate_scene(
                self.db, _seed(self.seed, index), self.config, self.split, self.unseen_cads
            )
            rng = np.random.default_rng(_seed(self.seed, index, 1))
            yield render_view(scene, sample_camera(scene, rng), rng)


@dataclass(frozen=True, kw_only=True)
class PathFrames:
    """`frames` views along one smooth camera path through one random scene.

    Lights, textures and camera effects are drawn once for the whole sequence (every frame shades
    with a generator seeded alike), so only the viewpoint changes from frame to frame.
    """

    db: CadDatabase
    frames: int
    seed: int
    config: SceneConfig
    split: str | None = None
    unseen_cads: bool = False

    def __len__(self) -> int:
        return self.frames

    def __iter__(self) -> Iterator[Frame]:
        scene = generate_scene(self.db, _seed(self.seed), self.config, self.split, self.unseen_cads)
        views = camera_trajectory(scene, self.frames, np.random.default_rng(_seed(self.seed, 1)))
        for view in views:
            yield render_view(scene, view, np.random.default_rng(_seed(self.seed, 2)))
