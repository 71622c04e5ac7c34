"""The SQLite catalogue of a CAD database: schema, schema version, transactions, change counter.

The catalogue is one SQLite file in WAL mode (readers never block the single writer) whose
`PRAGMA user_version` is the schema version. Tables:

- `meta(key, value)`: the database version under key 'version', a counter that every committed
  change of the CAD set or of the embeddings increments (consumers reload when it moves).
- `cads`: one row per CAD model: id, category, symmetry, source, normalised GLB path relative
  to the database folder, metric extents of the source (NULL when unknown), packed 32^3 voxel
  grid, surface samples (S x 3 float32 bytes, canonical frame) and the content hash that makes
  ingest idempotent.
- `encoders(encoder, version, dim, created_at)`: one row per embedding space; its dimension is
  fixed by its first write.
- `embeddings(cad_id, encoder, version, vector)`: float32 vector bytes of one CAD in one space.
- `failures(source, reason, time)`: sources that could not be ingested (latest reason only).

Connections run in autocommit mode; group writes with `transaction(connection)`.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cad_perception.cad.errors import DatabaseError

SCHEMA_VERSION = 1
"""Version of the table layout below, stored as PRAGMA user_version."""

SYMMETRIES = ("none", "rot2", "rot4", "inf")
"""The symmetry labels of geometry.rotations.SYMMETRIES, repeated so that opening a database
does not import torch (a test keeps the two equal)."""

_SYMMETRY_LIST = ", ".join(f"'{sym}'" for sym in SYMMETRIES)

_SCHEMA = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('version', 0);
CREATE TABLE cads (
    cad_id TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    symmetry TEXT NOT NULL CHECK (symmetry IN ({_SYMMETRY_LIST})),
    source TEXT NOT NULL,
    mesh_path TEXT NOT NULL UNIQUE,
    extent_x REAL,
    extent_y REAL,
    extent_z REAL,
    voxels BLOB NOT NULL,
    samples BLOB NOT NULL,
    content_hash TEXT NOT NULL UNIQUE,
    added_at REAL NOT NULL
);
CREATE INDEX cads_by_category ON cads (category);
CREATE TABLE encoders (
    encoder TEXT NOT NULL,
    version TEXT NOT NULL,
    dim INTEGER NOT NULL CHECK (dim > 0),
    created_at REAL NOT NULL,
    PRIMARY KEY (encoder, version)
);
CREATE TABLE embeddings (
    cad_id TEXT NOT NULL REFERENCES cads (cad_id) ON DELETE CASCADE,
    encoder TEXT NOT NULL,
    version TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (encoder, version, cad_id),
    FOREIGN KEY (encoder, version) REFERENCES encoders (encoder, version)
);
CREATE TABLE failures (
    source TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    time REAL NOT NULL
);
"""


def create_catalogue(path: Path) -> None:
    """Create a new, empty catalogue file at `path` (DatabaseError if one exists)."""
    if path.exists():
        raise DatabaseError(f"{path} already exists")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        # One script, one transaction: a file either has the whole schema or none of it.
        connection.executescript(
            f"BEGIN;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
        )
    finally:
        connection.close()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the catalogue at `path`, checking that this code understands its schema.

    Raises DatabaseError when the file is missing, is not SQLite, is not a catalogue, or has a
    newer schema version than SCHEMA_VERSION. A read-only connection cannot write.
    """
    if not path.is_file():
        raise DatabaseError(f"no CAD catalogue at {path}")
    mode = "ro" if readonly else "rw"
    connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None, timeout=30.0
    )
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{path} has schema version {version}, newer than the version {SCHEMA_VERSION} "
                "this cad_perception understands: upgrade cad_perception to open it"
            )
        if version < SCHEMA_VERSION:
            raise DatabaseError(f"{path} is not a CAD catalogue (schema version {version})")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as err:
        connection.close()
        raise DatabaseError(f"{path} is not a readable SQLite catalogue: {err}") from err
    except DatabaseError:
        connection.close()
        raise
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction: committed on success, rolled back on error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def read_version(connection: sqlite3.Connection) -> int:
    """The database version (change counter)."""
    return connection.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]


def bump_version(connection: sqlite3.Connection) -> int:
    """Increment the database version inside the caller's transaction; return the new value."""
    row = connection.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value"
    ).fetchone()
    return row[0]
