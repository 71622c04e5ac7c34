import json

from cad_perception.cad.bench import run_cad_benchmarks


def test_the_benchmarks_run_small_and_return_json_ready_figures():
    results = run_cad_benchmarks(
        per_category=1, shapenet_root=None, search_sizes=(40,), dim=8, repeats=2
    )
    json.dumps(results)
    procedural = results["procedural"]
    assert procedural["models"] == 9 and procedural["failed"] == 0
    assert procedural["models_per_s"] > 0
    assert procedural["bytes_per_cad"] > 4096 + 2048 * 3 * 4  # voxels + samples at least
    assert results["shapenet"] is None
    search = results["search"]["40"]
    assert search["cads"] == 40
    assert search["latency_ms_per_query_single"] > 0 and search["index_load_s"] >= 0
