"""`cad-perception bench` prints and writes one JSON document of measured figures."""

import json

from cad_perception.cli import main


def test_bench_writes_json_with_measured_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--search-sizes", "300", "--json", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    cad = printed["cad"]
    assert cad["procedural"]["models"] == 45 and cad["procedural"]["failed"] == 0
    assert cad["procedural"]["models_per_s"] > 0 and cad["procedural"]["bytes_per_cad"] > 1000
    assert cad["shapenet"] is None
    search = cad["search"]["300"]
    assert search["cads"] == 300 and search["latency_ms_per_query_single"] > 0
