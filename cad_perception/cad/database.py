"""The CAD database: a folder holding a SQLite catalogue and the normalised meshes.

Layout of a database folder DB:

    DB/catalogue.sqlite      the catalogue (tables in `cad.catalogue`)
    DB/meshes/<cad_id>.glb   one normalised mesh (canonical frame) per catalogue row
    DB/ingest.lock           locked by the one process that ingests at a time

Crash safety: `add` writes a mesh under a temporary name, flushes it and renames it into place
before committing its catalogue row, so a killed process never leaves a row without its mesh;
a mesh without a row (killed between the two) is deleted by `remove_orphan_meshes`, which
ingest runs first.

Retrieval: `search` ranks the CADs of one category by the Euclidean (L2) distance between
embedding vectors of one encoder version (see `cad.search`); `chamfer_search` is the
training-free baseline on surface samples (see `cad.chamfer`); `like` lists the CADs most
similar to a stored one. The per-category matrices are loaded on first use and reloaded when
the database version (the change counter of `cad.catalogue`) moves, also when another process
wrote. A CadDatabase is meant for one thread.
"""

import fcntl
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import trimesh

from cad_perception.cad.catalogue import (
    SCHEMA_VERSION,
    SYMMETRIES,
    bump_version,
    connect,
    create_catalogue,
    read_version,
    transaction,
)
from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.chamfer import rank_by_chamfer
from cad_perception.cad.errors import CadError, DatabaseError, MeshError
from cad_perception.cad.mesh import export_glb
from cad_perception.cad.search import SearchResult, VectorIndex, check_vectors
from cad_perception.cad.voxel import GRID_SIZE, PACKED_GRID_BYTES, pack_grid, unpack_grid

logger = logging.getLogger(__name__)

CATALOGUE_NAME = "catalogue.sqlite"
MESH_FOLDER = "meshes"
LOCK_NAME = "ingest.lock"

_CAD_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
"""Ids are relative paths of safe names ('03001627/1a2b', 'proc-chair-00001'), never '..'."""
_CATEGORY = re.compile(r"[a-z][a-z0-9_]*")
_FLOAT32 = np.dtype("<f4")


@dataclass(frozen=True, eq=False)
class PreparedCad:
    """A normalised CAD model ready to be added (what ingest produces)."""

    cad_id: str
    category: str
    symmetry: str
    source: str
    """Where it came from: a file path or 'procedural:<category>:<seed>'."""
    content_hash: str
    """sha256 hex of the source bytes or of the procedural recipe."""
    mesh: trimesh.Trimesh
    """Normalised mesh in the canonical frame."""
    voxels: np.ndarray
    """(32, 32, 32) bool occupancy, indexed [x, y, z]."""
    samples: np.ndarray
    """(S, 3) float32 surface samples in the canonical frame."""
    extents: np.ndarray | None
    """(3,) metric bounding-box extents of the source in metres, None when unknown."""


@dataclass(frozen=True, eq=False)
class CadRecord:
    """One stored CAD model."""

    cad_id: str
    category: str
    symmetry: str
    source: str
    content_hash: str
    mesh_path: Path
    """Absolute path of the normalised GLB."""
    voxels: np.ndarray
    """(32, 32, 32) bool occupancy, indexed [x, y, z]."""
    samples: np.ndarray
    """(S, 3) float32 surface samples in the canonical frame."""
    extents: np.ndarray | None
    """(3,) float64 metric extents of the source in metres, None when unknown."""


@dataclass(frozen=True)
class EncoderInfo:
    """One stored embedding space and how many CADs have a vector in it."""

    name: str
    version: str
    dim: int
    count: int


class CadDatabase:
    """A CAD database folder; open one with `CadDatabase.create` or `CadDatabase.open`."""

    def __init__(self, root: Path, connection: sqlite3.Connection, *, readonly: bool):
        self.root = root
        self.readonly = readonly
        self._connection = connection
        self._cache: dict[tuple, Any] = {}
        self._cache_version = -1

    # Opening and closing.

    @classmethod
    def create(cls, path: str | Path, *, exist_ok: bool = False) -> Self:
        """Create an empty database folder at `path` and open it for writing.

        With exist_ok, an existing database there is opened instead of raising DatabaseError.
        """
        root = Path(path)
        if (root / CATALOGUE_NAME).exists():
            if not exist_ok:
                raise DatabaseError(f"a CAD database already exists at {root}")
        else:
            (root / MESH_FOLDER).mkdir(parents=True, exist_ok=True)
            create_catalogue(root / CATALOGUE_NAME)
            logger.info("created CAD database %s", root)
        return cls.open(root)

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Self:
        """Open the database folder at `path` (DatabaseError if absent or of a newer schema)."""
        root = Path(path)
        return cls(root, connect(root / CATALOGUE_NAME, readonly=readonly), readonly=readonly)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Reading the catalogue.

    @property
    def version(self) -> int:
        """The database version: incremented by every committed model and embedding write."""
        return read_version(self._connection)

    def __len__(self) -> int:
        return self._connection.execute("SELECT COUNT(*) FROM cads").fetchone()[0]

    def contains(self, cad_id: str) -> bool:
        return self._scalar("SELECT 1 FROM cads WHERE cad_id = ?", cad_id) is not None

    def has_content(self, content_hash: str) -> bool:
        """Whether a CAD with this content hash is stored (ingest skips it then)."""
        return self._scalar("SELECT 1 FROM cads WHERE content_hash = ?", content_hash) is not None

    def ids(self, category: str | None = None) -> list[str]:
        """The stored CAD ids, sorted, of one category or of all."""
        if category is None:
            rows = self._connection.execute("SELECT cad_id FROM cads ORDER BY cad_id")
        else:
            rows = self._connection.execute(
                "SELECT cad_id FROM cads WHERE category = ? ORDER BY cad_id", (category,)
            )
        return [cad_id for (cad_id,) in rows]

    def get(self, cad_id: str) -> CadRecord:
        """The stored CAD `cad_id` (DatabaseError if unknown)."""
        row = self._connection.execute(
            "SELECT category, symmetry, source, content_hash, mesh_path, extent_x, extent_y,"
            " extent_z, voxels, samples FROM cads WHERE cad_id = ?",
            (cad_id,),
        ).fetchone()
        if row is None:
            raise DatabaseError(f"no CAD {cad_id!r} in {self.root}")
        category, symmetry, source, content_hash, mesh_path, *extents, voxels, samples = row
        return CadRecord(
            cad_id=cad_id,
            category=category,
            symmetry=symmetry,
            source=source,
            content_hash=content_hash,
            mesh_path=(self.root / mesh_path).resolve(),
            voxels=unpack_grid(voxels),
            samples=_unpack_points(samples),
            extents=None if extents[0] is None else np.array(extents, dtype=np.float64),
        )

    def failures(self) -> list[tuple[str, str]]:
        """(source, reason) of every source that failed to ingest, oldest first."""
        rows = self._connection.execute("SELECT source, reason FROM failures ORDER BY time")
        return [(source, reason) for source, reason in rows]

    def encoders(self) -> list[EncoderInfo]:
        """The stored embedding spaces, oldest first."""
        rows = self._connection.execute(
            "SELECT n.encoder, n.version, n.dim, COUNT(e.cad_id) FROM encoders n"
            " LEFT JOIN embeddings e ON e.encoder = n.encoder AND e.version = n.version"
            " GROUP BY n.encoder, n.version ORDER BY n.created_at, n.rowid"
        )
        return [EncoderInfo(*row) for row in rows]

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary: version, schema_version, total, per_category (every known
        category, zeros included), encoders (name, version, dim, count) and failed."""
        per_category = dict.fromkeys(CATEGORIES, 0)
        rows = self._connection.execute(
            "SELECT category, COUNT(*) FROM cads GROUP BY category ORDER BY category"
        )
        per_category.update(rows)
        return {
            "version": self.version,
            "schema_version": SCHEMA_VERSION,
            "total": sum(per_category.values()),
            "per_category": per_category,
            "encoders": [asdict(encoder) for encoder in self.encoders()],
            "failed": self._scalar("SELECT COUNT(*) FROM failures"),
        }

    # Writing.

    def add(self, cad: PreparedCad) -> None:
        """Store `cad`: its GLB first (temporary name, flushed, renamed), then its row, the
        database version bump and the removal of any failure of its source in one transaction.

        DatabaseError if the id or the content hash is already stored; MeshError if the mesh
        cannot be written as GLB. Run ingests under `ingest_lock`.
        """
        self._check_writable()
        _check_prepared(cad)
        if self.contains(cad.cad_id):
            raise DatabaseError(f"{cad.cad_id!r} is already in {self.root}")
        relative = f"{MESH_FOLDER}/{cad.cad_id}.glb"
        mesh_path = self.root / relative
        _write_glb(cad.mesh, mesh_path, cad.cad_id)
        extents = (None,) * 3 if cad.extents is None else tuple(map(float, cad.extents))
        try:
            with transaction(self._connection):
                self._connection.execute(
                    "INSERT INTO cads (cad_id, category, symmetry, source, mesh_path, extent_x,"
                    " extent_y, extent_z, voxels, samples, content_hash, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cad.cad_id,
                        cad.category,
                        cad.symmetry,
                        cad.source,
                        relative,
                        *extents,
                        pack_grid(cad.voxels),
                        np.ascontiguousarray(cad.samples, dtype=_FLOAT32).tobytes(),
                        cad.content_hash,
                        time.time(),
                    ),
                )
                self._connection.execute("DELETE FROM failures WHERE source = ?", (cad.source,))
                bump_version(self._connection)
        except sqlite3.IntegrityError as err:
            mesh_path.unlink(missing_ok=True)
            raise DatabaseError(f"cannot add {cad.cad_id!r}: {err}") from err

    def record_failure(self, source: str, reason: str) -> None:
        """Remember that `source` failed to ingest and why (replacing an older reason)."""
        self._check_writable()
        with transaction(self._connection):
            self._connection.execute(
                "INSERT OR REPLACE INTO failures (source, reason, time) VALUES (?, ?, ?)",
                (source, reason, time.time()),
            )

    def put_embeddings(
        self, encoder: str, version: str, ids: Sequence[str], vectors: np.ndarray
    ) -> None:
        """Store (or replace) the (N, D) vectors of the CADs `ids` under encoder@version.

        The first write of an encoder version fixes its dimension; a write of another dimension
        raises DatabaseError, as do unknown ids. ValueError on bad shapes or duplicate ids.
        One transaction, one database version increment.
        """
        self._check_writable()
        version = str(version)
        if not encoder:
            raise ValueError("the encoder name must not be empty")
        vectors = check_vectors("vectors", vectors)
        ids = list(ids)
        if len(ids) != len(vectors) or not ids:
            raise ValueError(
                f"need one vector per id and at least one: {len(ids)} ids, {len(vectors)} vectors"
            )
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in put_embeddings")
        dim = vectors.shape[1]
        with transaction(self._connection):
            stored_dim = self._scalar(
                "SELECT dim FROM encoders WHERE encoder = ? AND version = ?", encoder, version
            )
            if stored_dim is None:
                self._connection.execute(
                    "INSERT INTO encoders (encoder, version, dim, created_at) VALUES (?, ?, ?, ?)",
                    (encoder, version, dim, time.time()),
                )
            elif stored_dim != dim:
                raise DatabaseError(
                    f"encoder {encoder}@{version} stores {stored_dim}-d vectors, refusing "
                    f"{dim}-d ones: vectors of a changed encoder need a new version"
                )
            unknown = self._unknown_ids(ids)
            if unknown:
                raise DatabaseError(f"{len(unknown)} unknown CAD ids, e.g. {unknown[:3]}")
            rows = [
                (cad_id, encoder, version, vector.tobytes())
                for cad_id, vector in zip(ids, vectors.astype(_FLOAT32), strict=True)
            ]
            self._connection.executemany(
                "INSERT OR REPLACE INTO embeddings (cad_id, encoder, version, vector)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            bump_version(self._connection)

    def embedded_ids(self, encoder: tuple[str, str]) -> set[str]:
        """Ids of the CADs that have a vector of encoder (name, version) (empty if none)."""
        rows = self._connection.execute(
            "SELECT cad_id FROM embeddings WHERE encoder = ? AND version = ?", tuple(encoder)
        ).fetchall()
        return {cad_id for (cad_id,) in rows}

    @contextmanager
    def ingest_lock(self) -> Iterator[None]:
        """Hold the database's ingest lock (DatabaseError if another process holds it)."""
        self._check_writable()
        with open(self.root / LOCK_NAME, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise DatabaseError(f"another process is ingesting into {self.root}") from err
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_orphan_meshes(self) -> int:
        """Delete files under meshes/ that no row references (left by a killed ingest); call it
        under `ingest_lock`. Returns how many were deleted."""
        self._check_writable()
        referenced = {path for (path,) in self._connection.execute("SELECT mesh_path FROM cads")}
        removed = 0
        for path in sorted((self.root / MESH_FOLDER).rglob("*")):
            if path.is_file() and path.relative_to(self.root).as_posix() not in referenced:
                path.unlink()
                removed += 1
        if removed:
            logger.info("removed %d orphan mesh files from %s", removed, self.root)
        return removed

    # Retrieval.

    def search(
        self,
        category: str,
        queries: np.ndarray,
        k: int,
        *,
        encoder: tuple[str, str] | None = None,
    ) -> SearchResult:
        """The k CADs of `category` nearest (L2) to each of the (M, D) `queries` among the
        vectors of `encoder` = (name, version) (default: the newest stored encoder).

        DatabaseError if that encoder version is not stored (naming the stored ones); ValueError
        if D differs from its dimension. All of the category's CADs when k exceeds their number.
        """
        info = self._resolve_encoder(encoder)
        queries = np.asarray(queries)
        if queries.ndim == 2 and queries.shape[1] != info.dim:
            raise ValueError(
                f"queries have dimension {queries.shape[1]}, but encoder "
                f"{info.name}@{info.version} stores {info.dim}-d vectors"
            )
        return self._vector_index(category, info).search(queries, k)

    def chamfer_search(self, category: str, points: np.ndarray, k: int) -> SearchResult:
        """The k CADs of `category` nearest to the NOC `points` (P, 3) by single-sided Chamfer
        distance to their surface samples (training-free retrieval)."""
        ids, samples = self.surface_samples(category)
        return rank_by_chamfer(points, ids, samples, k)

    def like(self, cad_id: str, k: int) -> SearchResult:
        """The k CADs of `cad_id`'s category most similar to it, itself excluded (one row).

        By L2 distance between vectors of the newest encoder when `cad_id` has one, otherwise
        by 1 - IoU of the voxel grids.
        """
        category = self._scalar("SELECT category FROM cads WHERE cad_id = ?", cad_id)
        if category is None:
            raise DatabaseError(f"no CAD {cad_id!r} in {self.root}")
        encoders = self.encoders()
        vector = None
        if encoders:
            newest = encoders[-1]
            vector = self._scalar(
                "SELECT vector FROM embeddings WHERE cad_id = ? AND encoder = ? AND version = ?",
                cad_id,
                newest.name,
                newest.version,
            )
        if vector is not None:
            query = np.frombuffer(vector, dtype=_FLOAT32)[None, :]
            result = self.search(category, query, k + 1, encoder=(newest.name, newest.version))
        else:
            ids, bits = self._packed_grids(category)
            query = bits[ids.index(cad_id)]
            intersection = np.bitwise_count(bits & query).sum(axis=1)
            union = np.bitwise_count(bits | query).sum(axis=1)
            iou = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
            order = np.argsort(1.0 - iou, kind="stable")[: k + 1]
            distances = (1.0 - iou[order]).astype(np.float32)[None, :]
            result = SearchResult([[ids[i] for i in order]], distances, "1 - voxel IoU")
        keep = [i for i, other in enumerate(result.ids[0]) if other != cad_id][:k]
        return SearchResult(
            [[result.ids[0][i] for i in keep]], result.distances[:, keep], result.metric
        )

    def surface_samples(self, category: str) -> tuple[list[str], np.ndarray]:
        """The sorted ids of `category` and their surface samples (N, S, 3) float32 (cached)."""

        def load() -> tuple[list[str], np.ndarray]:
            rows = self._connection.execute(
                "SELECT cad_id, samples FROM cads WHERE category = ? ORDER BY cad_id", (category,)
            ).fetchall()
            points = [_unpack_points(blob) for _, blob in rows]
            count = min((len(p) for p in points), default=0)
            stacked = np.stack([p[:count] for p in points]) if points else np.zeros((0, 1, 3))
            return [cad_id for cad_id, _ in rows], stacked.astype(np.float32)

        return self._cached(("samples", category), load)

    # Internals.

    def _check_writable(self) -> None:
        if self.readonly:
            raise DatabaseError(f"{self.root} was opened read-only")

    def _scalar(self, sql: str, *parameters: Any) -> Any:
        row = self._connection.execute(sql, parameters).fetchone()
        return None if row is None else row[0]

    def _unknown_ids(self, ids: list[str]) -> list[str]:
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT cad_id FROM cads WHERE cad_id IN ({marks})", chunk
            )
            known.update(cad_id for (cad_id,) in rows)
        return [cad_id for cad_id in ids if cad_id not in known]

    def _resolve_encoder(self, encoder: tuple[str, str] | None) -> EncoderInfo:
        stored = self._cached(("encoders",), self.encoders)
        if not stored:
            raise DatabaseError(f"{self.root} holds no embeddings")
        if encoder is None:
            return stored[-1]
        name, version = encoder[0], str(encoder[1])
        for info in stored:
            if (info.name, info.version) == (name, version):
                return info
        names = ", ".join(f"{info.name}@{info.version} ({info.dim}-d)" for info in stored)
        raise DatabaseError(f"no embeddings of encoder {name}@{version}; stored: {names}")

    def _vector_index(self, category: str, info: EncoderInfo) -> VectorIndex:
        def load() -> VectorIndex:
            rows = self._connection.execute(
                "SELECT e.cad_id, e.vector FROM embeddings e JOIN cads c ON c.cad_id = e.cad_id"
                " WHERE c.category = ? AND e.encoder = ? AND e.version = ? ORDER BY e.cad_id",
                (category, info.name, info.version),
            ).fetchall()
            matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=_FLOAT32)
            return VectorIndex([cad_id for cad_id, _ in rows], matrix.reshape(-1, info.dim))

        return self._cached(("vectors", category, info.name, info.version), load)

    def _packed_grids(self, category: str) -> tuple[list[str], np.ndarray]:
        """Sorted ids of `category` and their packed voxel grids, (N, PACKED_GRID_BYTES) uint8."""

        def load() -> tuple[list[str], np.ndarray]:
            rows = self._connection.execute(
                "SELECT cad_id, voxels FROM cads WHERE category = ? ORDER BY cad_id", (category,)
            ).fetchall()
            # pack_grid is a plain bit packing, so IoU can count bits of the stored bytes.
            bits = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.uint8)
            return [cad_id for cad_id, _ in rows], bits.reshape(len(rows), PACKED_GRID_BYTES)

        return self._cached(("grids", category), load)

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        """`load()`'s result, kept until the database version changes."""
        version = self.version
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]


def _check_prepared(cad: PreparedCad) -> None:
    if not _CAD_ID.fullmatch(cad.cad_id):
        raise DatabaseError(
            f"invalid CAD id {cad.cad_id!r}: use letters, digits, '.', '_', "
            "'-' and '/' between names"
        )
    if not _CATEGORY.fullmatch(cad.category):
        raise DatabaseError(f"invalid category {cad.category!r}: lower-case identifier expected")
    if cad.symmetry not in SYMMETRIES:
        raise DatabaseError(f"invalid symmetry {cad.symmetry!r}: one of {', '.join(SYMMETRIES)}")
    if np.shape(cad.voxels) != (GRID_SIZE,) * 3:
        raise DatabaseError(f"voxels of {cad.cad_id} have shape {np.shape(cad.voxels)}")
    samples_shape = np.shape(cad.samples)
    if len(samples_shape) != 2 or samples_shape[1] != 3 or samples_shape[0] == 0:
        raise DatabaseError(f"samples of {cad.cad_id} have shape {samples_shape}, not (S, 3)")
    if cad.extents is not None and np.shape(cad.extents) != (3,):
        raise DatabaseError(f"extents of {cad.cad_id} have shape {np.shape(cad.extents)}")


def _unpack_points(blob: bytes) -> np.ndarray:
    """(S, 3) float32 points from their little-endian bytes (a fresh, writable array)."""
    return np.frombuffer(blob, dtype=_FLOAT32).reshape(-1, 3).astype(np.float32)


def _write_glb(mesh: trimesh.Trimesh, path: Path, cad_id: str) -> None:
    """Write `mesh` as GLB at `path` atomically: temporary file, fsync, rename, fsync folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.glb")
    try:
        export_glb(mesh, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
    except (CadError, OSError):
        temporary.unlink(missing_ok=True)
        raise
    except Exception as err:
        temporary.unlink(missing_ok=True)
        raise MeshError(f"cannot write the GLB of {cad_id}: {err}") from err
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
