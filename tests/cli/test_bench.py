"""`cad-perception bench` prints and writes one JSON document of measured figures."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cad_perception.cli import main
from tests.model.mini_dataset import mini_config, save_model_and_db


def test_bench_writes_json_with_measured_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--only", "cad", "--search-sizes", "300", "--json", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert "synth" not in printed and "pipeline" not in printed
    cad = printed["cad"]
    assert cad["procedural"]["models"] == 45 and cad["procedural"]["failed"] == 0
    assert cad["procedural"]["models_per_s"] > 0 and cad["procedural"]["bytes_per_cad"] > 1000
    assert cad["shapenet"] is None
    search = cad["search"]["300"]
    assert search["cads"] == 300 and search["latency_ms_per_query_single"] > 0
    assert main(["bench", "--only", "synth", "--synth-frames", "3"]) == 0
    synth = json.loads(capsys.readouterr().out)["synth"]
    assert synth["size"] == [240, 320] and synth["render"]["objects_requested"] == 10
    assert 1 <= synth["render"]["objects_placed_mean"] <= 10
    assert synth["render"]["frames_per_s"] > 0 and synth["render"]["median_ms"] > 0
    assert synth["dataset"]["scenes_per_s"] > 0 and synth["bag"]["frames_per_s"] > 0
    parallel = synth["render_parallel"]
    assert parallel["processes"] >= 1 and parallel["median_ms"] > 0
    expected = parallel["processes"] * 1e3 / parallel["median_ms"]
    assert parallel["frames_per_s"] == pytest.approx(expected, abs=0.1)
    throughput = synth["throughput"]
    assert throughput["workers"] >= 1 and throughput["frames"] == 3
    assert throughput["frames_per_s"] > 0 and throughput["first_frame_s"] > 0


def test_pipeline_bench_compares_backends(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CAD_PERCEPTION_CACHE", str(tmp_path / "cache"))
    model_dir, db_dir = save_model_and_db(tmp_path, mini_config())
    argv = ["bench", "--only", "pipeline", "--model", str(model_dir), "--db", str(db_dir),
            "--size", "96x128", "--iters", "3", "--backend", "torch",
            "onnxruntime", "onnxruntime-int8", "--score-threshold", "0.2", "--profile",
            "--svg", str(tmp_path / "bench.svg")]  # fmt: skip
    assert main(argv) == 0
    pipeline = json.loads(capsys.readouterr().out)["pipeline"]
    assert pipeline["model_gflops"] > 0 and pipeline["peak_gemm_gflops"] > 0
    rates = pipeline["gemm_gflops"]
    assert set(rates) == {"torch", "onnxruntime"} and min(rates.values()) > 0
    assert pipeline["peak_gemm_gflops"] == max(rates.values())
    for name in ("torch", "onnxruntime", "onnxruntime-int8"):
        entry = pipeline["backends"][name]
        assert entry["backend"] == name and entry["size"] == [96, 128]
        total = entry["latency_ms"]["total"]
        assert 0 < total["median"] <= total["p90"] <= total["p99"]
        assert set(entry["latency_ms"]) == {"total", "preprocess", "engine", "postprocess",
                                            "retrieval"}  # fmt: skip
        assert entry["fps"] > 0 and entry["peak_rss_mb"] > 100
        assert entry["score_threshold"] == 0.2
        assert 0 < entry["fraction_of_gemm_peak"] < 2
    assert set(pipeline["speedup_vs_torch"]) == {"onnxruntime", "onnxruntime-int8"}
    assert all(ratio > 0 for ratio in pipeline["speedup_vs_torch"].values())
    profile = pipeline["onnxruntime_profile"]
    assert profile["runs"] == 3 and profile["kernel_ms"] > 0
    assert profile["convolution"]["gflop"] > 0 and profile["convolution"]["gflops"] > 0
    assert {"Conv", "FusedConv"} & set(profile["op_types"])
    picture = ET.parse(tmp_path / "bench.svg").getroot()
    rows = {rect.get("data-row") for rect in picture.iter("{http://www.w3.org/2000/svg}rect")}
    assert rows == {"torch", "onnxruntime", "onnxruntime-int8", "profile", None}  # None: legend
    exports = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith("int8")]
    assert len(exports) == 1 and exports[0].endswith("score0.2")  # profiled the benched export


def test_a_picture_without_the_pipeline_part_is_refused(tmp_path: Path, capsys) -> None:
    argv = ["bench", "--only", "cad", "--svg", str(tmp_path / "bench.svg")]
    assert main(argv) == 2
    assert "--svg draws the pipeline figures" in capsys.readouterr().err
    assert not (tmp_path / "bench.svg").exists()
