import sqlite3

import pytest

from cad_perception.cad.catalogue import (
    SCHEMA_VERSION,
    SYMMETRIES,
    bump_version,
    connect,
    create_catalogue,
    read_version,
    transaction,
)
from cad_perception.cad.errors import DatabaseError
from cad_perception.geometry import rotations


@pytest.fixture
def catalogue(tmp_path):
    path = tmp_path / "catalogue.sqlite"
    create_catalogue(path)
    return path


def test_a_new_catalogue_has_the_schema_version_wal_and_passes_integrity_check(catalogue):
    connection = connect(catalogue)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    assert {"meta", "cads", "encoders", "embeddings", "failures"} <= tables
    assert read_version(connection) == 0


def test_create_refuses_an_existing_file(catalogue):
    with pytest.raises(DatabaseError, match="exists"):
        create_catalogue(catalogue)


def test_a_newer_schema_is_refused_with_a_clear_error(catalogue):
    raw = sqlite3.connect(catalogue)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(DatabaseError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        connect(catalogue)


def test_files_that_are_not_catalogues_are_refused(tmp_path):
    with pytest.raises(DatabaseError, match="no CAD catalogue"):
        connect(tmp_path / "missing.sqlite")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not an SQLite file at all" * 100)
    with pytest.raises(DatabaseError, match="not a readable SQLite"):
        connect(garbage)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DatabaseError, match="not a CAD catalogue"):
        connect(other)


def test_a_transaction_commits_on_success_and_rolls_back_on_error(catalogue):
    connection = connect(catalogue)
    with transaction(connection):
        assert bump_version(connection) == 1
    with pytest.raises(RuntimeError), transaction(connection):
        bump_version(connection)
        raise RuntimeError("abort")
    assert read_version(connection) == 1
    assert read_version(connect(catalogue, readonly=True)) == 1


def test_a_read_only_connection_cannot_write(catalogue):
    connection = connect(catalogue, readonly=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        connection.execute("UPDATE meta SET value = 5")


def test_the_schema_rejects_unknown_symmetries(catalogue):
    connection = connect(catalogue)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        connection.execute(
            "INSERT INTO cads (cad_id, category, symmetry, source, mesh_path, voxels, samples,"
            " content_hash, added_at) VALUES ('a', 'chair', 'rot3', 's', 'm', x'', x'', 'h', 0)"
        )


def test_the_symmetries_are_those_of_the_geometry_core():
    assert SYMMETRIES == rotations.SYMMETRIES
