import sqlite3

import numpy as np
import pytest
import trimesh

from cad_perception.cad.database import CadDatabase, PreparedCad
from cad_perception.cad.errors import DatabaseError
from cad_perception.cad.mesh import load_mesh, normalize_mesh
from cad_perception.cad.voxel import grid_iou, sample_surface, voxelize


def prepared_box(cad_id: str, category: str = "chair", size=(1.0, 1.0, 1.0), **changes):
    """A box of `size` metres, normalised, voxelised and sampled like ingest does."""
    normalized = normalize_mesh(trimesh.creation.box(extents=size))
    fields = dict(
        cad_id=cad_id,
        category=category,
        symmetry="rot2",
        source=f"test:{cad_id}",
        content_hash=f"hash-{cad_id}",
        mesh=normalized.mesh,
        voxels=voxelize(normalized.mesh),
        samples=sample_surface(normalized.mesh, 256, seed=0),
        extents=normalized.source_extents,
    )
    fields.update(changes)
    return PreparedCad(**fields)


@pytest.fixture
def db(tmp_path):
    with CadDatabase.create(tmp_path / "db") as database:
        yield database


def fill(db: CadDatabase, categories=("chair", "table", "sofa"), per_category=8) -> None:
    """Boxes of growing height: per category, ids <category>-00 ... <category>-NN."""
    for category in categories:
        for i in range(per_category):
            size = (1.0, 0.2 + 0.1 * i, 0.8)
            db.add(prepared_box(f"{category}-{i:02d}", category, size))


def test_a_cad_round_trips_through_add_and_get(db):
    cad = prepared_box("03001627/abc", size=(0.5, 0.9, 0.6))
    db.add(cad)
    record = db.get("03001627/abc")
    assert (record.category, record.symmetry, record.source) == ("chair", "rot2", cad.source)
    assert record.content_hash == cad.content_hash
    np.testing.assert_array_equal(record.voxels, cad.voxels)
    np.testing.assert_array_equal(record.samples, cad.samples)
    np.testing.assert_allclose(record.extents, [0.5, 0.9, 0.6])
    assert record.mesh_path == (db.root / "meshes/03001627/abc.glb").resolve()
    mesh = load_mesh(record.mesh_path)
    np.testing.assert_allclose(mesh.bounds, cad.mesh.bounds, atol=1e-6)
    assert db.contains("03001627/abc") and db.has_content(cad.content_hash)
    assert db.ids() == ["03001627/abc"] and len(db) == 1


def test_unknown_extents_are_stored_as_null(db):
    db.add(prepared_box("a", extents=None))
    assert db.get("a").extents is None


def test_create_and_open(tmp_path):
    with pytest.raises(DatabaseError, match="no CAD catalogue"):
        CadDatabase.open(tmp_path / "missing")
    CadDatabase.create(tmp_path / "db").close()
    with pytest.raises(DatabaseError, match="already exists"):
        CadDatabase.create(tmp_path / "db")
    with CadDatabase.create(tmp_path / "db", exist_ok=True) as db:
        db.add(prepared_box("a"))
    with CadDatabase.open(tmp_path / "db", readonly=True) as db:
        assert db.ids() == ["a"]
        with pytest.raises(DatabaseError, match="read-only"):
            db.add(prepared_box("b"))
        with pytest.raises(DatabaseError, match="read-only"):
            db.put_embeddings("enc", "1", ["a"], np.zeros((1, 2)))


def test_the_version_counts_models_and_embedding_writes_but_not_failures(db):
    assert db.version == 0
    db.add(prepared_box("a"))
    db.add(prepared_box("b"))
    assert db.version == 2
    db.record_failure("bad.obj", "broken")
    assert db.version == 2
    db.put_embeddings("enc", "1", ["a", "b"], np.ones((2, 4)))
    assert db.version == 3


def test_adding_a_stored_id_or_content_is_refused_and_keeps_the_stored_mesh(db):
    db.add(prepared_box("a", size=(1, 2, 3)))
    stored = db.get("a").mesh_path.read_bytes()
    with pytest.raises(DatabaseError, match="already in"):
        db.add(prepared_box("a", size=(3, 2, 1), content_hash="other"))
    assert db.get("a").mesh_path.read_bytes() == stored
    with pytest.raises(DatabaseError, match="UNIQUE"):
        db.add(prepared_box("b", content_hash="hash-a"))
    assert not (db.root / "meshes/b.glb").exists()
    assert db.ids() == ["a"] and db.version == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cad_id": "../escape"}, "invalid CAD id"),
        ({"cad_id": "a//b"}, "invalid CAD id"),
        ({"category": "Chair!"}, "invalid category"),
        ({"symmetry": "rot3"}, "invalid symmetry"),
        ({"voxels": np.zeros((16, 16, 16), bool)}, "voxels"),
        ({"samples": np.zeros((10, 2), np.float32)}, "samples"),
    ],
)
def test_bad_prepared_cads_are_refused_before_anything_is_written(db, changes, message):
    with pytest.raises(DatabaseError, match=message):
        db.add(prepared_box(**{"cad_id": "a", **changes}))
    assert len(db) == 0
    assert not any(path.is_file() for path in (db.root / "meshes").rglob("*"))


def test_a_failure_is_recorded_once_per_source_and_cleared_by_a_success(db):
    db.record_failure("test:a", "first reason")
    db.record_failure("test:a", "second reason")
    db.record_failure("other.obj", "broken")
    assert db.failures() == [("test:a", "second reason"), ("other.obj", "broken")]
    db.add(prepared_box("a"))  # its source is "test:a"
    assert db.failures() == [("other.obj", "broken")]


def test_info_summarises_the_database(db):
    fill(db, ("chair", "sofa"), per_category=2)
    db.put_embeddings("roca", "1", ["chair-00", "sofa-01"], np.zeros((2, 8)))
    db.record_failure("x.obj", "broken")
    info = db.info()
    assert info["version"] == 5 and info["schema_version"] == 1
    assert info["total"] == 4
    assert info["per_category"]["chair"] == 2 and info["per_category"]["sofa"] == 2
    assert info["per_category"]["bathtub"] == 0 and len(info["per_category"]) == 9
    assert info["encoders"] == [{"name": "roca", "version": "1", "dim": 8, "count": 2}]
    assert info["failed"] == 1


def test_search_equals_brute_force_within_each_category(db):
    fill(db)
    rng = np.random.default_rng(0)
    ids = db.ids()
    vectors = rng.standard_normal((len(ids), 16)).astype(np.float32)
    db.put_embeddings("roca", "1", ids, vectors)
    for category in ("chair", "table", "sofa"):
        members = [i for i, cad_id in enumerate(ids) if cad_id.startswith(category)]
        queries = rng.standard_normal((4, 16)).astype(np.float32)
        result = db.search(category, queries, 5, encoder=("roca", "1"))
        distances = np.linalg.norm(queries[:, None] - vectors[members][None], axis=-1)
        order = np.argsort(distances, axis=1)[:, :5]
        assert result.ids == [[ids[members[j]] for j in row] for row in order]
        np.testing.assert_allclose(
            result.distances, np.take_along_axis(distances, order, 1), rtol=1e-5
        )


def test_k_beyond_the_category_returns_it_all_and_other_categories_are_empty(db):
    fill(db, ("chair",), per_category=3)
    db.put_embeddings("roca", "1", db.ids(), np.eye(3))
    result = db.search("chair", np.array([[1.0, 0.0, 0.0]]), 10)
    assert result.ids == [["chair-00", "chair-01", "chair-02"]]
    np.testing.assert_allclose(result.distances, [[0.0, np.sqrt(2), np.sqrt(2)]], rtol=1e-6)
    assert db.search("bed", np.zeros((2, 3)), 4).ids == [[], []]


def test_mixed_encoder_versions_and_dimensions_are_refused(db):
    fill(db, ("chair",), per_category=3)
    ids = db.ids()
    with pytest.raises(DatabaseError, match="holds no embeddings"):
        db.search("chair", np.zeros((1, 16)), 1)
    db.put_embeddings("roca", "1", ids, np.zeros((3, 16)))
    with pytest.raises(DatabaseError, match=r"roca@1 stores 16-d vectors, refusing 8-d"):
        db.put_embeddings("roca", "1", ids[:1], np.zeros((1, 8)))
    db.put_embeddings("roca", "2", ids, np.ones((3, 8)))  # a new version may change dimension
    with pytest.raises(DatabaseError, match=r"roca@3; stored: roca@1 \(16-d\), roca@2 \(8-d\)"):
        db.search("chair", np.zeros((1, 8)), 1, encoder=("roca", "3"))
    with pytest.raises(ValueError, match="dimension 16, but encoder roca@2 stores 8-d"):
        db.search("chair", np.zeros((1, 16)), 1)  # the default is the newest encoder
    assert db.search("chair", np.zeros((1, 16)), 1, encoder=("roca", 1)).distances[0, 0] == 0
    np.testing.assert_allclose(db.search("chair", np.ones((1, 8)), 3).distances, 0.0)


def test_bad_embedding_writes_are_refused_without_a_trace(db):
    fill(db, ("chair",), per_category=2)
    with pytest.raises(DatabaseError, match="1 unknown CAD ids"):
        db.put_embeddings("roca", "1", ["chair-00", "nope"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="duplicate"):
        db.put_embeddings("roca", "1", ["chair-00", "chair-00"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="one vector per id"):
        db.put_embeddings("roca", "1", ["chair-00"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        db.put_embeddings("roca", "1", ["chair-00"], np.full((1, 4), np.inf))
    assert db.encoders() == [] and db.version == 2


def test_search_sees_new_vectors_from_this_and_other_connections(db):
    fill(db, ("chair",), per_category=2)
    db.put_embeddings("roca", "1", ["chair-00", "chair-01"], np.array([[0.0], [5.0]]))
    assert db.search("chair", np.array([[4.0]]), 1).ids == [["chair-01"]]
    db.put_embeddings("roca", "1", ["chair-00"], np.array([[4.5]]))
    assert db.search("chair", np.array([[4.0]]), 1).ids == [["chair-00"]]
    with CadDatabase.open(db.root) as other:
        other.put_embeddings("roca", "1", ["chair-01"], np.array([[4.1]]))
    assert db.search("chair", np.array([[4.0]]), 1).ids == [["chair-01"]]


def test_like_ranks_by_voxel_iou_before_embeddings_and_by_vectors_after(db):
    fill(db, ("chair", "table"), per_category=6)
    result = db.like("chair-02", 3)
    assert result.metric == "1 - voxel IoU"
    assert result.ids[0][0] in ("chair-01", "chair-03")
    assert "chair-02" not in result.ids[0] and len(result.ids[0]) == 3
    assert all(cad_id.startswith("chair") for cad_id in result.ids[0])
    target = db.get("chair-02").voxels
    expected = [1 - grid_iou(target, db.get(cad_id).voxels) for cad_id in result.ids[0]]
    np.testing.assert_allclose(result.distances[0], expected, rtol=1e-6)

    ids = db.ids("chair")
    db.put_embeddings("roca", "1", ids, np.arange(6, dtype=np.float32)[::-1, None])
    result = db.like("chair-02", 2)
    assert result.metric == "l2"
    assert sorted(result.ids[0]) == ["chair-01", "chair-03"]
    np.testing.assert_allclose(result.distances, [[1.0, 1.0]])
    with pytest.raises(DatabaseError, match="no CAD 'nope'"):
        db.like("nope", 3)


def test_chamfer_search_ranks_the_source_cad_first(db):
    fill(db, ("chair",), per_category=8)
    rng = np.random.default_rng(1)
    source = db.get("chair-05").samples
    query = source[rng.choice(len(source), 100, replace=False)] + rng.normal(0, 0.003, (100, 3))
    result = db.chamfer_search("chair", query, 3)
    assert result.ids[0][0] == "chair-05" and result.metric == "chamfer"
    ids, samples = db.surface_samples("chair")
    assert ids == db.ids("chair") and samples.shape == (8, 256, 3)


def test_orphan_meshes_are_removed_and_referenced_ones_kept(db):
    db.add(prepared_box("03001627/a"))
    orphan = db.root / "meshes/03001627/b.glb"
    leftover = db.root / "meshes/.c.glb.123.tmp.glb"
    orphan.write_bytes(b"x")
    leftover.write_bytes(b"y")
    assert db.remove_orphan_meshes() == 2
    assert not orphan.exists() and not leftover.exists()
    assert db.get("03001627/a").mesh_path.is_file()


def test_only_one_ingest_holds_the_lock(db):
    with CadDatabase.open(db.root) as other:
        refused = pytest.raises(DatabaseError, match="another process is ingesting")
        with db.ingest_lock(), refused, other.ingest_lock():
            pass
        with other.ingest_lock():  # released
            pass


def test_the_catalogue_stays_consistent(db):
    fill(db, ("chair",), per_category=2)
    connection = sqlite3.connect(db.root / "catalogue.sqlite")
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    voxels, samples = connection.execute("SELECT voxels, samples FROM cads LIMIT 1").fetchone()
    assert len(voxels) == 4096 and len(samples) == 256 * 3 * 4
