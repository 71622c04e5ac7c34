"""The pipeline benchmark: per-backend summaries, and backends taking turns frame by frame."""

import time
from pathlib import Path

import pytest

from cad_perception.cad.errors import DatabaseError
from cad_perception.pipeline import bench
from cad_perception.pipeline.bench import (
    FrameTiming,
    onnxruntime_gemm_gflops,
    run_pipeline_benchmarks,
    summarise,
    torch_gemm_gflops,
)
from tests.model.mini_dataset import mini_config, save_model_and_db


def timing(total: float, detections: int) -> FrameTiming:
    stages = {"preprocess": 1.0, "engine": total - 3.0, "postprocess": 1.5, "retrieval": 0.5}
    return FrameTiming(total, stages, detections)


def test_summarise_reports_percentiles_per_stage_and_mean_detections() -> None:
    timings = [timing(total, n) for total, n in ((100.0, 1), (300.0, 2), (200.0, 4), (110.0, 1))]
    entry = summarise("onnxruntime", 0.5, timings)
    assert entry["backend"] == "onnxruntime" and entry["score_threshold"] == 0.5
    assert entry["latency_ms"]["total"]["median"] == 155.0
    assert entry["latency_ms"]["engine"]["median"] == 152.0
    assert entry["latency_ms"]["retrieval"] == {"median": 0.5, "p90": 0.5, "p99": 0.5, "mean": 0.5}
    assert entry["latency_ms"]["total"]["p90"] == pytest.approx(270.0)
    assert entry["fps"] == round(1000.0 / 155.0, 2)
    assert entry["detections_mean"] == 2.0


@pytest.mark.parametrize("iters, frames", [(0, 5), (3, 0)])
def test_nothing_to_time_is_refused(tmp_path: Path, iters: int, frames: int) -> None:
    with pytest.raises(ValueError, match="iters and frames must be >= 1"):
        run_pipeline_benchmarks(tmp_path, tmp_path, iters=iters, frames=frames)


def test_a_backend_that_cannot_load_raises_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no CAD catalogue"):
        run_pipeline_benchmarks(tmp_path / "model", tmp_path / "missing", iters=1)


def test_backends_take_turns_forwards_then_backwards(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAD_PERCEPTION_CACHE", str(tmp_path / "cache"))
    model_dir, db_dir = save_model_and_db(tmp_path, mini_config())
    calls: list[tuple[str, int]] = []
    spans: list[tuple[float, float]] = []  # (start, end) of each call, perf_counter seconds
    time_frame = bench.BackendWorker.time_frame

    def recorded(worker: bench.BackendWorker, index: int) -> FrameTiming:
        calls.append((worker.backend, index))
        start = time.perf_counter()
        timing = time_frame(worker, index)
        spans.append((start, time.perf_counter()))
        return timing

    monkeypatch.setattr(bench.BackendWorker, "time_frame", recorded)
    monkeypatch.setattr(bench, "TURN_PAUSE_S", 0.25)
    results = run_pipeline_benchmarks(
        model_dir, db_dir, backends=("torch", "onnxruntime"),
        size=(96, 128), iters=3, frames=2, warmup=1, score_threshold=0.2,
    )  # fmt: skip
    assert calls == [
        ("torch", 0), ("onnxruntime", 0),  # warm-up
        ("torch", 0), ("onnxruntime", 0),
        ("onnxruntime", 1), ("torch", 1),
        ("torch", 2), ("onnxruntime", 2),
    ]  # fmt: skip
    timed = spans[2:]  # the warm-up calls follow each other at once, the timed ones after a pause
    gaps = [after[0] - before[1] for before, after in zip(spans[1:-1], timed, strict=True)]
    assert len(gaps) == 6 and min(gaps) >= 0.25
    assert results["interleaved"] is True and results["iters"] == 3
    assert set(results["backends"]) == {"torch", "onnxruntime"}
    for entry in results["backends"].values():
        assert entry["peak_rss_mb"] > 100 and entry["latency_ms"]["total"]["median"] > 0
    torch_ms = results["backends"]["torch"]["latency_ms"]["total"]["median"]
    onnx_ms = results["backends"]["onnxruntime"]["latency_ms"]["total"]["median"]
    assert results["speedup_vs_torch"] == {"onnxruntime": round(torch_ms / onnx_ms, 2)}
    backbone = results["backbone"]
    assert backbone["torch_ms"] > 0 and backbone["onnxruntime_ms"] > 0
    assert backbone["speedup"] == round(backbone["torch_ms"] / backbone["onnxruntime_ms"], 2)


def test_gemm_rates_of_both_runtimes_count_two_flops_per_multiply_add() -> None:
    # 2 * 256^3 FLOPs per product; a rate below 0.1 GFLOP/s or above 10 TFLOP/s on a CPU would
    # mean a wrong FLOP count or a product that did not run.
    for rate in (torch_gemm_gflops(size=256, repeats=3), onnxruntime_gemm_gflops(256, 3)):
        assert 0.1 < rate < 10_000
