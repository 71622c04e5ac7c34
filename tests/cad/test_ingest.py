import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import SAMPLE_COUNT, add_source, build_procedural
from cad_perception.cad.mesh import load_mesh

REPO = Path(__file__).resolve().parents[2]
SHAPENET_SAMPLE = REPO.parent / "shared" / "data" / "shapenet_sample"


@pytest.fixture
def db(tmp_path):
    with CadDatabase.create(tmp_path / "db") as database:
        yield database


def write_cylinders(folder: Path, count: int, suffix: str = ".ply") -> list[Path]:
    """`count` distinct cylinder mesh files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        mesh = trimesh.creation.cylinder(radius=0.2 + 0.01 * i, height=0.5, sections=12)
        path = folder / f"cylinder{i:03d}{suffix}"
        mesh.export(path)
        paths.append(path)
    return paths


def stored_mesh_files(db: CadDatabase) -> set[str]:
    return {
        p.relative_to(db.root).as_posix() for p in (db.root / "meshes").rglob("*") if p.is_file()
    }


def referenced_mesh_files(db: CadDatabase) -> set[str]:
    return {
        db.get(cad_id).mesh_path.relative_to(db.root.resolve()).as_posix() for cad_id in db.ids()
    }


def test_build_procedural_adds_n_models_per_category_and_counts_versions(db):
    report = build_procedural(db, 1, seed=7, progress=False)
    assert (report.added, report.skipped_existing, report.failed) == (9, 0, [])
    assert db.info()["per_category"] == dict.fromkeys(CATEGORIES, 1)
    assert db.version == 9
    record = db.get("proc-chair-00007")
    assert record.category == "chair" and record.source == "procedural:chair:7"
    assert record.extents is not None and np.all(record.extents > 0.1)  # metric, metres
    assert record.samples.shape == (SAMPLE_COUNT, 3)
    assert np.abs(record.samples).max() <= 0.5 + 1e-6
    assert record.voxels.any()
    mesh = load_mesh(record.mesh_path)
    np.testing.assert_allclose(np.linalg.norm(mesh.extents), 1.0, rtol=1e-5)

    again = build_procedural(db, 1, seed=7, progress=False)
    assert (again.added, again.skipped_existing, again.failed) == (0, 9, [])
    assert db.version == 9
    more = build_procedural(db, 2, seed=7, progress=False)  # seeds 7 (stored) and 8 (new)
    assert (more.added, more.skipped_existing) == (9, 9)
    assert db.version == 18 and len(db) == 18


def test_bad_meshes_are_recorded_as_failures_and_the_rest_is_ingested(db, tmp_path):
    folder = tmp_path / "meshes"
    write_cylinders(folder / "good", 3, ".obj")
    (folder / "bad").mkdir()
    (folder / "bad/empty.obj").write_text("# no geometry\n")
    (folder / "bad/garbage.ply").write_bytes(b"ply\nformat nonsense\n" + bytes(range(256)))
    (folder / "bad/nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    (folder / "bad/line.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    (folder / "notes.txt").write_text("not a mesh, ignored")
    report = add_source(db, folder, "bin", progress=False)
    assert report.added == 3 and report.skipped_existing == 0
    failed = {Path(source).name: reason for source, reason in report.failed}
    assert set(failed) == {"empty.obj", "garbage.ply", "nan.obj", "line.obj"}
    assert all(name in reason for name, reason in failed.items())  # reasons name the file
    assert db.info()["failed"] == 4 and db.info()["per_category"]["bin"] == 3
    assert sorted(db.ids()) == ["cylinder000", "cylinder001", "cylinder002"]
    assert db.get("cylinder000").extents is None  # units of a file are unknown

    again = add_source(db, folder, "bin", progress=False)
    assert (again.added, again.skipped_existing, len(again.failed)) == (0, 3, 4)
    assert len(db.failures()) == 4


def test_file_stems_become_unique_ids(db, tmp_path):
    write_cylinders(tmp_path / "a", 1)
    (tmp_path / "b").mkdir()
    trimesh.creation.box().export(tmp_path / "b/cylinder000.ply")
    (tmp_path / "c").mkdir()
    trimesh.creation.icosphere(1).export(tmp_path / "c/odd name!.stl")
    report = add_source(db, tmp_path, "table", progress=False)
    assert report.added == 3
    assert db.ids() == ["cylinder000", "cylinder000-2", "odd_name_"]


def test_a_single_file_can_be_added(db, tmp_path):
    (path,) = write_cylinders(tmp_path, 1)
    assert add_source(db, path, "bin", progress=False).added == 1
    assert db.get("cylinder000").source == str(path.resolve())


def test_add_source_needs_an_existing_source_and_a_category(db, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        add_source(db, tmp_path / "missing", "chair", progress=False)
    with pytest.raises(ValueError, match="category is required"):
        add_source(db, tmp_path, progress=False)


def write_shapenet_model(root: Path, synset: str, model_id: str, size: float) -> Path:
    path = root / synset / model_id / "models" / "model_normalized.obj"
    path.parent.mkdir(parents=True)
    trimesh.creation.box(extents=(size, 1.0, 0.5)).export(path)
    return path


def test_the_shapenet_layout_maps_synsets_to_categories(db, tmp_path):
    write_shapenet_model(tmp_path, "03001627", "chair1", 0.4)
    write_shapenet_model(tmp_path, "04379243", "table1", 0.6)
    write_shapenet_model(tmp_path, "99999999", "thing1", 0.8)
    report = add_source(db, tmp_path, "chair", shapenet=True, progress=False)  # chairs only
    assert (report.added, report.failed) == (1, [])
    report = add_source(db, tmp_path, shapenet=True, progress=False)
    assert (report.added, report.skipped_existing) == (1, 1)
    assert len(report.failed) == 1 and "unknown ShapeNet synset '99999999'" in report.failed[0][1]
    assert db.ids() == ["03001627/chair1", "04379243/table1"]
    assert db.get("04379243/table1").category == "table"
    assert (db.root / "meshes/03001627/chair1.glb").is_file()


def test_the_shapenet_sample_ingests_as_four_chairs_a_table_and_a_bin(db):
    if not SHAPENET_SAMPLE.is_dir():
        pytest.skip(f"the ShapeNet sample is absent ({SHAPENET_SAMPLE})")
    report = add_source(db, SHAPENET_SAMPLE, shapenet=True, progress=False)
    assert (report.added, report.failed) == (6, [])
    counts = db.info()["per_category"]
    assert (counts["chair"], counts["table"], counts["bin"], len(db)) == (4, 1, 1, 6)
    chairs = db.ids("chair")
    assert all(cad_id.startswith("03001627/") and len(cad_id) > 12 for cad_id in chairs)
    for cad_id in db.ids():
        record = db.get(cad_id)
        assert record.extents is None
        assert record.voxels.sum() > 50
        np.testing.assert_allclose(np.linalg.norm(np.ptp(record.samples, axis=0)), 1.0, atol=0.05)


INGEST_SCRIPT = """
import sys
from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import add_source
add_source(CadDatabase.open(sys.argv[1]), sys.argv[2], "bin", progress=False)
"""


def count_rows(catalogue: Path) -> int:
    connection = sqlite3.connect(f"{catalogue.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT COUNT(*) FROM cads").fetchone()[0]
    finally:
        connection.close()


def test_a_killed_ingest_leaves_a_consistent_database_that_a_rerun_completes(db, tmp_path):
    total = 60
    folder = tmp_path / "meshes"
    write_cylinders(folder, total)
    catalogue = db.root / "catalogue.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, str(db.root), str(folder)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while count_rows(catalogue) < 3:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the ingest did not start"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
        process.stderr.close()
    committed = count_rows(catalogue)
    assert 3 <= committed < total, "the ingest ended before the kill: make it longer"

    with CadDatabase.open(db.root) as reopened:
        connection = sqlite3.connect(catalogue)
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        connection.close()
        assert len(reopened) == committed
        for cad_id in reopened.ids():
            assert len(load_mesh(reopened.get(cad_id).mesh_path).faces) > 0

        report = add_source(reopened, folder, "bin", progress=False)
        assert (report.added, report.skipped_existing, report.failed) == (
            total - committed,
            committed,
            [],
        )
        assert sorted(reopened.ids()) == [f"cylinder{i:03d}" for i in range(total)]
        assert stored_mesh_files(reopened) == referenced_mesh_files(reopened)


def test_an_ingest_removes_meshes_left_without_a_row(db, tmp_path):
    (db.root / "meshes/.proc-bed-00000.glb.99.tmp.glb").write_bytes(b"partial")
    (db.root / "meshes/lost.glb").write_bytes(b"renamed but never committed")
    write_cylinders(tmp_path / "in", 1)
    add_source(db, tmp_path / "in", "bin", progress=False)
    assert stored_mesh_files(db) == {"meshes/cylinder000.glb"}
