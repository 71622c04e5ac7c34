"""Benchmarks of the synthetic data engine: renderer frame rate, dataset and bag throughput.

`run_synth_benchmarks()` returns a JSON-ready dict (`cad-perception bench` prints it); every
file it writes lives in a temporary folder.
"""

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.synth.bag import write_bag
from cad_perception.synth.dataset import write_dataset
from cad_perception.synth.generate import PathFrames, SceneFrames
from cad_perception.synth.renderer import render
from cad_perception.synth.scene import SceneConfig, generate_scene, posed_meshes, sample_camera
from cad_perception.synth.shading import ShadingConfig, shade


def run_synth_benchmarks(
    *, size: tuple[int, int] = (240, 320), objects: int = 10, frames: int = 60, seed: int = 0
) -> dict[str, Any]:
    """Measure on this machine, at image `size`:

    - "render": median ms and frames/s of `render` + `shade` of scenes asking for `objects`
      procedural objects in a room (fewer when the room is full: the mean placed is reported),
      over `frames` views (new intrinsics and lights each);
    - "dataset": scenes/s of `cad-perception synth` (scene, camera, render, PNG files);
    - "bag": frames/s of `cad-perception synth-bag` (MCAP).
    """
    config = SceneConfig(image_size=size, min_objects=objects, max_objects=objects)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as folder:
        folder = Path(folder)
        with CadDatabase.create(folder / "db") as db:
            build_procedural(db, 4, seed, progress=False)
            render_ms, placed = _render_times(db, config, frames, seed)
            dataset_s = _timed(
                lambda: write_dataset(
                    SceneFrames(
                        db=db, scenes=frames, seed=seed, config=SceneConfig(image_size=size)
                    ),
                    folder / "dataset",
                    progress=False,
                )
            )
            bag_s = _timed(
                lambda: write_bag(
                    PathFrames(
                        db=db, frames=frames, seed=seed, config=SceneConfig(image_size=size)
                    ),
                    folder / "bag",
                    progress=False,
                )
            )
    median = float(np.median(render_ms))
    return {
        "size": list(size),
        "render": {
            "objects_requested": objects,
            "objects_placed_mean": round(float(np.mean(placed)), 2),
            "median_ms": round(median, 2),
            "frames_per_s": round(1e3 / median, 1),
        },
        "dataset": {"scenes": frames, "scenes_per_s": round(frames / dataset_s, 1)},
        "bag": {"frames": frames, "frames_per_s": round(frames / bag_s, 1)},
    }


def _render_times(
    db: CadDatabase, config: SceneConfig, frames: int, seed: int
) -> tuple[list[float], list[int]]:
    """Milliseconds of render + shade per view (scene set-up excluded), objects per scene."""
    times, placed = [], []
    for index in range(frames):
        scene = generate_scene(db, seed + index, config)
        rng = np.random.default_rng(index)
        view = sample_camera(scene, rng)
        objects, room = posed_meshes(scene, view)
        start = time.perf_counter()
        buffers = render(objects, view.K, view.size, background=[room])
        shade(buffers, [o.mesh for o in objects] + [room.mesh], rng, ShadingConfig())
        times.append(1e3 * (time.perf_counter() - start))
        placed.append(len(objects))
    return times, placed


def _timed(work: Any) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start
