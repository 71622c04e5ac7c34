"""`cad-perception bench` prints and writes one JSON document of measured figures."""

import json

from cad_perception.cli import main


def test_bench_writes_json_with_measured_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--search-sizes", "300", "--synth-frames", "3", "--json", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    cad = printed["cad"]
    assert cad["procedural"]["models"] == 45 and cad["procedural"]["failed"] == 0
    assert cad["procedural"]["models_per_s"] > 0 and cad["procedural"]["bytes_per_cad"] > 1000
    assert cad["shapenet"] is None
    search = cad["search"]["300"]
    assert search["cads"] == 300 and search["latency_ms_per_query_single"] > 0
    synth = printed["synth"]
    assert synth["size"] == [240, 320] and synth["render"]["objects_requested"] == 10
    assert 1 <= synth["render"]["objects_placed_mean"] <= 10
    assert synth["render"]["frames_per_s"] > 0 and synth["render"]["median_ms"] > 0
    assert synth["dataset"]["scenes_per_s"] > 0 and synth["bag"]["frames_per_s"] > 0
