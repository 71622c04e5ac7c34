"""Pipeline benchmark: per-stage latency, frames/s, peak memory, FLOPs and the share of this
machine's GEMM peak that the network achieves.

Frames are rendered synthetic scenes (real content, so detections and retrieval run) at the
requested size; every backend in one run sees the same frames, and the backends take turns
frame by frame (`run_pipeline_benchmarks`). The GEMM peak is the best rate of a few float32
matrix products on the same device and threads, measured in the same run, by torch and (on a
CPU) by ONNX Runtime: the faster of the two is the yardstick, since neither runtime's GEMM
library is bound to reach the CPU's peak, and a single best-of-few reading drifts with the host.
"""

import logging
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from torch.utils.flop_counter import FlopCounterMode

from cad_perception.cad.database import CadDatabase
from cad_perception.engine.backend import check_inputs
from cad_perception.engine.export import OPSET
from cad_perception.engine.factory import cached_export
from cad_perception.engine.onnx_backend import CPU_PROVIDER, session_options
from cad_perception.engine.output import INPUT_NAMES
from cad_perception.engine.profile import profile_onnx
from cad_perception.engine.sidecar import ONNX_FILE, read_engine_folder
from cad_perception.model.checkpoint import load_model
from cad_perception.pipeline.backbone_bench import TURN_PAUSE_S, compare_backbones
from cad_perception.pipeline.pipeline import DEFAULT_SCORE_THRESHOLD, STAGES, Pipeline
from cad_perception.pipeline.preprocess import fit_image
from cad_perception.synth.generate import SceneFrames
from cad_perception.synth.scene import SceneConfig

logger = logging.getLogger(__name__)

GEMM_SIZE = 1024
"""Side of the square float32 matrices of the GEMM peak measurement."""


def percentiles(values: list[float]) -> dict[str, float]:
    """{"median", "p90", "p99", "mean"} of millisecond values, rounded to 0.01 ms."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "median": round(float(np.median(array)), 2),
        "p90": round(float(np.percentile(array, 90)), 2),
        "p99": round(float(np.percentile(array, 99)), 2),
        "mean": round(float(array.mean()), 2),
    }


def torch_gemm_gflops(device: str = "cpu", size: int = GEMM_SIZE, repeats: int = 10) -> float:
    """The best float32 GEMM rate (GFLOP/s) of torch over `repeats` (size x size) @
    (size x size) products on `device`, with torch's current thread count."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)

    def product() -> None:
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return 2.0 * size**3 / _best_seconds(product, repeats) / 1e9


def onnxruntime_gemm_gflops(size: int = GEMM_SIZE, repeats: int = 10) -> float:
    """The best float32 GEMM rate (GFLOP/s) of ONNX Runtime's CPU provider (a one-MatMul
    graph, the backend's session options) over `repeats` (size x size) @ (size x size)
    products, with torch's current thread count."""
    square = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "abc"]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", square[:2], square[2:]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    options = session_options(torch.get_num_threads())
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[CPU_PROVIDER])
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((size, size), dtype=np.float32) for n in "ab"}
    return 2.0 * size**3 / _best_seconds(lambda: session.run(None, feed), repeats) / 1e9


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The shortest wall time of `repeats` calls of run() after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def model_gflops(model_dir: str | Path, size: tuple[int, int], frame: Any) -> float:
    """GFLOPs (2 per multiply-add) of one eager forward of the model at `size` on `frame`
    (torch's FLOP counter: convolutions, matrix products and their relatives)."""
    model = load_model(model_dir)
    image = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255.0
    K = torch.from_numpy(frame.K)[None].float()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(image, K)
    return counter.get_total_flops() / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


class FrameTiming(NamedTuple):
    """One timed pipeline call: total and per-stage milliseconds, detections returned."""

    total_ms: float
    stage_ms: dict[str, float]
    detections: int


def summarise(pipeline_name: str, score_threshold: float, timings: list[FrameTiming]) -> dict:
    """A backend's JSON entry from its timed calls: latency percentiles per stage, frames/s,
    mean detections per frame."""
    latency = {"total": percentiles([t.total_ms for t in timings])}
    for stage in STAGES:
        latency[stage] = percentiles([t.stage_ms[stage] for t in timings])
    return {
        "backend": pipeline_name,
        "latency_ms": latency,
        "fps": round(1000.0 / latency["total"]["median"], 2),
        "detections_mean": round(float(np.mean([t.detections for t in timings])), 2),
        "score_threshold": score_threshold,
    }


def time_call(pipeline: Pipeline, frame: Any) -> FrameTiming:
    """Run `pipeline` once on a SceneFrames item and time it."""
    start = time.perf_counter()
    found = pipeline(frame.rgb, frame.K)
    total = (time.perf_counter() - start) * 1000.0
    return FrameTiming(total, dict(pipeline.last_timings), len(found))


class WorkerJob(NamedTuple):
    """What a BackendWorker process loads: the model, CAD database, backend and frames."""

    model_dir: str
    db_dir: str
    backend: str
    device: str | None
    size: tuple[int, int]
    frames: int
    seed: int
    score_threshold: float


class BackendWorker:
    """One backend's pipeline in a process of its own (so its peak memory is its own), timed
    one call at a time on the benchmark frames. Use as a context manager."""

    def __init__(self, context: Any, job: WorkerJob):
        """context: a multiprocessing context; job: what the process loads."""
        self.backend = job.backend
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        try:
            self._pool.submit(_worker_load, job).result()
        except BaseException:
            self._pool.shutdown(cancel_futures=True)
            raise

    def time_frame(self, index: int) -> FrameTiming:
        """Time the pipeline on frame `index` (cycling through the frames)."""
        return self._pool.submit(_worker_time_frame, index).result()

    def finish(self) -> dict[str, Any]:
        """The process's figures besides latency: peak_rss_mb and the pipeline's name."""
        return self._pool.submit(_worker_finish).result()

    def __enter__(self) -> "BackendWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(cancel_futures=True)


_WORKER: dict[str, Any] = {}
"""The worker process's pipeline and frames (set by _worker_load)."""


def _worker_load(job: WorkerJob) -> None:
    scenes = benchmark_frames(job.db_dir, job.size, job.frames, job.seed)
    pipeline = Pipeline.from_dirs(
        job.model_dir,
        job.db_dir,
        backend=job.backend,
        device=job.device,
        score_threshold=job.score_threshold,
    )
    _WORKER.update(pipeline=pipeline, scenes=scenes)


def _worker_time_frame(index: int) -> FrameTiming:
    scenes = _WORKER["scenes"]
    return time_call(_WORKER["pipeline"], scenes[index % len(scenes)])


def _worker_finish() -> dict[str, Any]:
    return {"backend": _WORKER["pipeline"].backend.name, "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_pipeline_benchmarks(
    model_dir: str | Path,
    db_dir: str | Path,
    *,
    backends: tuple[str, ...] = ("torch", "onnxruntime"),
    size: tuple[int, int] = (240, 320),
    iters: int = 20,
    device: str | None = None,
    frames: int = 5,
    seed: int = 0,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    warmup: int = 2,
) -> dict[str, Any]:
    """Benchmark the pipeline on each backend (module docstring); JSON-able results with one
    entry per backend and, for two or more, the speed-up of each over the first.

    Each backend runs in a process of its own, and the backends take turns frame by frame
    (forwards on even rounds, backwards on odd ones), one call at a time after a pause of
    TURN_PAUSE_S: a change in the machine's speed during the run (other tenants, clock, heat)
    then touches every backend alike, so their ratio is fair even when the absolute figures
    drift, and no call shares the cores with the previous one's spinning threads.
    """
    if iters < 1 or frames < 1:
        raise ValueError(f"iters and frames must be >= 1, got {iters} and {frames}")
    on_cuda = bool(device and device.startswith("cuda"))
    gemm_rates = {"torch": torch_gemm_gflops("cuda" if on_cuda else "cpu")}
    if not on_cuda:
        gemm_rates["onnxruntime"] = onnxruntime_gemm_gflops()
    gemm = max(gemm_rates.values())
    results: dict[str, Any] = {
        "size": list(size),
        "iters": iters,
        "threads": torch.get_num_threads(),
        "peak_gemm_gflops": round(gemm, 1),
        "gemm_gflops": {name: round(rate, 1) for name, rate in gemm_rates.items()},
        "interleaved": True,
        "backends": {},
    }
    context = multiprocessing.get_context("spawn")
    jobs = [
        WorkerJob(str(model_dir), str(db_dir), name, device, size, frames, seed, score_threshold)
        for name in backends
    ]
    with ExitStack() as stack:
        workers = [stack.enter_context(BackendWorker(context, job)) for job in jobs]
        timings: dict[str, list[FrameTiming]] = {name: [] for name in backends}
        for index in range(warmup):
            for worker in workers:
                worker.time_frame(index)
        for index in range(iters):
            for worker in workers if index % 2 == 0 else workers[::-1]:
                time.sleep(TURN_PAUSE_S)
                timings[worker.backend].append(worker.time_frame(index))
        finished = {worker.backend: worker.finish() for worker in workers}
    frame = benchmark_frames(db_dir, size, 1, seed)[0]  # the workers' first frame
    results["model_gflops"] = round(model_gflops(model_dir, size, frame), 2)
    for name in backends:
        extra = finished[name]
        entry = summarise(extra["backend"], score_threshold, timings[name])
        entry["size"] = list(size)
        entry["peak_rss_mb"] = extra["peak_rss_mb"]
        engine_s = entry["latency_ms"]["engine"]["median"] / 1000.0
        entry["achieved_gflops"] = round(results["model_gflops"] / engine_s, 2)
        entry["fraction_of_gemm_peak"] = round(results["model_gflops"] / engine_s / gemm, 3)
        results["backends"][name] = entry
        logger.info("%s: median %.1f ms", name, entry["latency_ms"]["total"]["median"])
    if {"torch", "onnxruntime"} <= set(backends) and not on_cuda:
        results["backbone"] = compare_backbones(model_dir, frame, iters=iters)
    if len(backends) > 1:
        reference = results["backends"][backends[0]]["latency_ms"]["total"]["median"]
        results["speedup_vs_" + backends[0]] = {
            name: round(reference / results["backends"][name]["latency_ms"]["total"]["median"], 2)
            for name in backends[1:]
        }
    return results


def benchmark_frames(db_dir: str | Path, size: tuple[int, int], frames: int, seed: int) -> list:
    """The benchmark's synthetic scenes (SceneFrames items, images of `size`)."""
    with CadDatabase.open(db_dir, readonly=True) as db:
        config = SceneConfig(image_size=size)
        return list(SceneFrames(db=db, scenes=frames, seed=seed, config=config))


def run_onnx_profile(
    model_dir: str | Path,
    db_dir: str | Path,
    *,
    size: tuple[int, int] = (240, 320),
    iters: int = 20,
    frames: int = 5,
    seed: int = 0,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> dict[str, Any]:
    """onnxruntime's own profile (engine/profile.py) of the export that the pipeline benchmark
    runs (the checkpoint's cached one at the engine's default input size), `iters` runs over
    the benchmark frames of `size` fitted to it: per operator type, slowest nodes, and the
    convolutions' GFLOP/s."""
    engine_dir = cached_export(Path(model_dir), score_threshold=score_threshold)
    input_size = read_engine_folder(engine_dir, None).input_size
    feeds = []
    for scene in benchmark_frames(db_dir, size, frames, seed):
        image, K, _ = fit_image(scene.rgb, scene.K, input_size)
        feeds.append(dict(zip(INPUT_NAMES, check_inputs(image, K, input_size), strict=True)))
    return profile_onnx(engine_dir / ONNX_FILE, [feeds[i % len(feeds)] for i in range(iters)])
