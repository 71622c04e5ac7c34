"""`cad-perception db build|add|info|query`, run in-process against databases in tmp_path."""

import json
from pathlib import Path

import pytest
import trimesh

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cli import main

SHAPENET_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared/data/shapenet_sample"


def info_json(db: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["db", "info", str(db), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_build_then_rebuild_is_idempotent(tmp_path, capsys):
    db = tmp_path / "db"
    assert main(["db", "build", "--out", str(db), "--procedural", "1", "--quiet"]) == 0
    assert "added 9, already present 0, failed 0" in capsys.readouterr().out
    info = info_json(db, capsys)
    assert info["total"] == 9 and info["version"] == 9 and info["failed"] == 0
    assert info["per_category"] == dict.fromkeys(CATEGORIES, 1)
    assert info["encoders"] == []

    assert main(["db", "build", "--out", str(db), "--procedural", "1", "--quiet"]) == 0
    assert "added 0, already present 9" in capsys.readouterr().out
    assert info_json(db, capsys)["version"] == 9


def test_add_meshes_records_failures_and_exits_1(tmp_path, capsys):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.box(extents=(0.5, 0.8, 0.4)).export(meshes / "crate.stl")
    trimesh.creation.cylinder(radius=0.2, height=0.6).export(meshes / "drum.ply")
    (meshes / "broken.obj").write_text("v 0 0 0\nthis is not an obj file\n")
    db = tmp_path / "db"

    code = main(["db", "add", str(db), str(meshes), "--category", "bin", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "added 2, already present 0, failed 1" in out
    assert "failed: " in out and "broken.obj" in out
    info = info_json(db, capsys)
    assert info["per_category"]["bin"] == 2 and info["total"] == 2 and info["failed"] == 1


def test_add_without_category_outside_shapenet_layout_is_a_usage_error(tmp_path, capsys):
    mesh = tmp_path / "crate.stl"
    trimesh.creation.box().export(mesh)
    assert main(["db", "add", str(tmp_path / "db"), str(mesh)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cad-perception db: error:") and "category" in err
    assert "Traceback" not in err


def test_query_shows_a_record_and_its_neighbours(tmp_path, capsys):
    db = tmp_path / "db"
    assert main(["db", "build", "--out", str(db), "--procedural", "3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["db", "query", str(db), "--cad-id", "proc-table-00001"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["category"] == "table" and Path(record["mesh"]).is_file()
    assert record["symmetry"] in ("rot2", "rot4", "inf")
    assert all(size > 0 for size in record["extents_m"])

    assert main(["db", "query", str(db), "--like", "proc-table-00001", "--k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "voxel IoU" in lines[0]
    neighbours = [line.split()[1] for line in lines[2:]]
    assert sorted(neighbours) == ["proc-table-00000", "proc-table-00002"]


def test_unknown_cad_and_missing_database_fail_cleanly(tmp_path, capsys):
    db = tmp_path / "db"
    assert main(["db", "build", "--out", str(db), "--procedural", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["db", "query", str(db), "--cad-id", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["db", "info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


def test_shapenet_sample_ingests_with_its_categories(tmp_path, capsys):
    if not SHAPENET_SAMPLE.is_dir():
        pytest.skip(f"the team's ShapeNet sample is absent ({SHAPENET_SAMPLE})")
    db = tmp_path / "db"
    assert main(["db", "add", str(db), str(SHAPENET_SAMPLE), "--shapenet", "--quiet"]) == 0
    per_category = info_json(db, capsys)["per_category"]
    assert {name: n for name, n in per_category.items() if n} == {"chair": 4, "table": 1, "bin": 1}
