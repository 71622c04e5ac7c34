"""Pipeline benchmark: per-stage latency, frames/s, peak memory, FLOPs and the share of this
machine's GEMM peak that the network achieves.

Frames are rendered synthetic scenes (real content, so detections and retrieval run) at the
requested size; every backend in one run sees the same frames. The GEMM peak is the best of a
few float32 matrix products on the same device and threads, measured in the same run.
"""

import logging
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cad_perception.cad.database import CadDatabase
from cad_perception.engine.backend import check_inputs
from cad_perception.engine.factory import cached_export
from cad_perception.engine.output import INPUT_NAMES
from cad_perception.engine.profile import profile_onnx
from cad_perception.engine.sidecar import ONNX_FILE, read_engine_folder
from cad_perception.model.checkpoint import load_model
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


def peak_gemm_gflops(device: str = "cpu", size: int = GEMM_SIZE, repeats: int = 5) -> float:
    """The best float32 GEMM rate (GFLOP/s) of `repeats` (size x size) @ (size x size)
    products on `device` with torch's current thread count."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


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


def benchmark_pipeline(
    pipeline: Pipeline, frames: list[Any], *, iters: int, warmup: int = 2
) -> dict[str, Any]:
    """Latency of `pipeline` over `iters` calls cycling through `frames` (after `warmup`)."""
    for index in range(warmup):
        frame = frames[index % len(frames)]
        pipeline(frame.rgb, frame.K)
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals, detections = [], []
    for index in range(iters):
        frame = frames[index % len(frames)]
        start = time.perf_counter()
        found = pipeline(frame.rgb, frame.K)
        totals.append((time.perf_counter() - start) * 1000.0)
        detections.append(len(found))
        for stage in STAGES:
            stages[stage].append(pipeline.last_timings[stage])
    latency = {"total": percentiles(totals)} | {s: percentiles(v) for s, v in stages.items()}
    return {
        "backend": pipeline.backend.name,
        "latency_ms": latency,
        "fps": round(1000.0 / latency["total"]["median"], 2),
        "detections_mean": round(float(np.mean(detections)), 2),
        "score_threshold": pipeline.score_threshold,
    }


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
) -> dict[str, Any]:
    """Benchmark the pipeline on each backend (module docstring), each in a fresh process so
    its peak memory is its own; JSON-able results with one entry per backend and, for two or
    more, the speed-up of each over the first."""
    gemm = peak_gemm_gflops("cuda" if device and device.startswith("cuda") else "cpu")
    results: dict[str, Any] = {
        "size": list(size),
        "iters": iters,
        "threads": torch.get_num_threads(),
        "peak_gemm_gflops": round(gemm, 1),
        "backends": {},
    }
    context = multiprocessing.get_context("spawn")
    for name in backends:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            job = pool.submit(
                _benchmark_backend,
                str(model_dir),
                str(db_dir),
                name,
                device,
                size,
                iters,
                frames,
                seed,
                score_threshold,
            )
            entry = job.result()
        engine_s = entry["latency_ms"]["engine"]["median"] / 1000.0
        results["model_gflops"] = entry.pop("model_gflops")
        entry["achieved_gflops"] = round(results["model_gflops"] / engine_s, 2)
        entry["fraction_of_gemm_peak"] = round(results["model_gflops"] / engine_s / gemm, 3)
        results["backends"][name] = entry
        logger.info("%s: median %.1f ms", name, entry["latency_ms"]["total"]["median"])
    if len(backends) > 1:
        reference = results["backends"][backends[0]]["latency_ms"]["total"]["median"]
        results["speedup_vs_" + backends[0]] = {
            name: round(reference / results["backends"][name]["latency_ms"]["total"]["median"], 2)
            for name in backends[1:]
        }
    return results


def _benchmark_backend(
    model_dir: str,
    db_dir: str,
    backend: str,
    device: str | None,
    size: tuple[int, int],
    iters: int,
    frames: int,
    seed: int,
    score_threshold: float,
) -> dict[str, Any]:
    """One backend's entry, measured in the calling (fresh) process."""
    scenes = benchmark_frames(db_dir, size, frames, seed)
    pipeline = Pipeline.from_dirs(
        model_dir, db_dir, backend=backend, device=device, score_threshold=score_threshold
    )
    entry = benchmark_pipeline(pipeline, scenes, iters=iters)
    entry["size"] = list(size)
    entry["peak_rss_mb"] = round(peak_rss_mb(), 1)
    entry["model_gflops"] = round(model_gflops(model_dir, size, scenes[0]), 2)
    return entry


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
