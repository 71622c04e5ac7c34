"""Benchmarks of the synthetic data engine: renderer latency and frame, dataset and bag
throughput.

`run_synth_benchmarks()` returns a JSON-ready dict (`cad-perception bench` prints it); every
file it writes lives in a temporary folder.
"""

import functools
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.synth.bag import write_bag
from cad_perception.synth.dataset import write_dataset
from cad_perception.synth.frame import Frame
from cad_perception.synth.generate import PathFrames, SceneFrames
from cad_perception.synth.parallel import available_cpus, check_workers, ordered_map
from cad_perception.synth.renderer import render
from cad_perception.synth.scene import SceneConfig, generate_scene, posed_meshes, sample_camera
from cad_perception.synth.shading import ShadingConfig, shade


def run_synth_benchmarks(
    *,
    size: tuple[int, int] = (240, 320),
    objects: int = 10,
    frames: int = 60,
    seed: int = 0,
    workers: int | None = None,
) -> dict[str, Any]:
    """Measure on this machine, at image `size`, with `workers` processes (default: the CPUs
    this process may use):

    - "render": latency of one process: median ms and frames/s of `render` + `shade` alone of
      scenes asking for `objects` procedural objects in a room (fewer when the room is full:
      the mean placed is reported), over `frames` views (new intrinsics and lights each);
    - "render_parallel": the same timed in `workers` processes rendering at once (so they
      compete for caches and memory), frames/s = workers x 1000 / median ms: what the
      renderer gives on that many cores;
    - "throughput": frames/s of a SceneFrames stream of such scenes in `workers` processes
      (scene generation, camera, render and shading per frame): "first_frame_s" is the wait
      for the first frame (pool start-up, including the fork server's one-off imports, and one
      frame), "frames_per_s" counts it in, "steady_frames_per_s" is the rate after each worker
      has delivered one frame;
    - "dataset": scenes/s of `cad-perception synth` (scene, camera, render, PNG files);
    - "bag": frames/s of `cad-perception synth-bag` (MCAP).
    """
    workers = available_cpus() if workers is None else check_workers(workers)
    config = SceneConfig(image_size=size, min_objects=objects, max_objects=objects)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as folder:
        folder = Path(folder)
        with CadDatabase.create(folder / "db") as db:
            build_procedural(db, 4, seed, progress=False)
            render_ms, placed = _render_times(db, config, frames, seed)
            parallel_ms = _parallel_render_times(db, config, frames, seed, workers)
            stream = SceneFrames(db=db, scenes=frames, seed=seed, config=config, workers=workers)
            arrivals = _arrival_times(stream)
            options = {"db": db, "seed": seed, "config": SceneConfig(image_size=size)}
            dataset_s = _timed(
                lambda: write_dataset(
                    SceneFrames(scenes=frames, workers=workers, **options),
                    folder / "dataset",
                    progress=False,
                )
            )
            bag_s = _timed(
                lambda: write_bag(
                    PathFrames(frames=frames, workers=workers, **options),
                    folder / "bag",
                    progress=False,
                )
            )
    median = float(np.median(render_ms))
    return {
        "size": list(size),
        "render": {
            "processes": 1,
            "objects_requested": objects,
            "objects_placed_mean": round(float(np.mean(placed)), 2),
            "median_ms": round(median, 2),
            "frames_per_s": round(1e3 / median, 1),
        },
        "render_parallel": {
            "processes": workers,
            "objects_requested": objects,
            "median_ms": round(float(np.median(parallel_ms)), 2),
            "frames_per_s": round(workers * 1e3 / float(np.median(parallel_ms)), 1),
        },
        "throughput": {"objects_requested": objects, **_stream_rates(arrivals, workers)},
        "dataset": {
            "workers": workers,
            "scenes": frames,
            "scenes_per_s": round(frames / dataset_s, 1),
        },
        "bag": {"workers": workers, "frames": frames, "frames_per_s": round(frames / bag_s, 1)},
    }


def _render_times(
    db: CadDatabase, config: SceneConfig, frames: int, seed: int
) -> tuple[list[float], list[int]]:
    """Milliseconds of render + shade per view (scene set-up excluded), objects per scene."""
    timed = [_render_time(db, index, config=config, seed=seed) for index in range(frames)]
    return [ms for ms, _ in timed], [count for _, count in timed]


def _parallel_render_times(
    db: CadDatabase, config: SceneConfig, frames: int, seed: int, workers: int
) -> list[float]:
    """_render_times' milliseconds, measured in `workers` processes at once."""
    timed = ordered_map(
        functools.partial(_render_time, config=config, seed=seed),
        range(frames),
        setup=functools.partial(CadDatabase.open, db.root, readonly=True),
        workers=workers,
        label="frame",
        preload=(__name__,),
    )
    return [ms for ms, _ in timed]


def _render_time(
    db: CadDatabase, index: int, *, config: SceneConfig, seed: int
) -> tuple[float, int]:
    """Milliseconds of render + shade of view `index` (scene set-up excluded), and its number
    of objects."""
    scene = generate_scene(db, seed + index, config)
    rng = np.random.default_rng(index)
    view = sample_camera(scene, rng)
    objects, room = posed_meshes(scene, view)
    start = time.perf_counter()
    buffers = render(objects, view.K, view.size, background=[room])
    shade(buffers, [o.mesh for o in objects] + [room.mesh], rng, ShadingConfig())
    return 1e3 * (time.perf_counter() - start), len(objects)


def _arrival_times(frames: Iterable[Frame]) -> list[float]:
    """Seconds from the start of the iteration until each frame arrived, in order."""
    start = time.perf_counter()
    return [time.perf_counter() - start for _ in frames]


def _stream_rates(arrivals: list[float], workers: int) -> dict[str, Any]:
    """Worker count, frames, first-frame wait, overall and steady frames/s of a stream whose
    frames arrived at `arrivals` (seconds from its start); steady: after the first `workers`
    frames (one per worker), None when the stream is not longer than that."""
    count, first, last = len(arrivals), arrivals[0], arrivals[-1]
    warm = min(workers, count) - 1
    steady = (count - 1 - warm) / (last - arrivals[warm]) if count - 1 > warm else None
    return {
        "workers": workers,
        "frames": count,
        "first_frame_s": round(first, 2),
        "frames_per_s": round(count / last, 1),
        "steady_frames_per_s": None if steady is None else round(steady, 1),
    }


def _timed(work: Callable[[], object]) -> float:
    """Seconds `work()` took."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start
