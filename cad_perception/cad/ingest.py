"""Filling a CAD database: the procedural library and mesh files (ShapeNet layout or plain).

Every model is normalised into the canonical frame, voxelised and surface-sampled
(`prepare_cad`), then stored by `CadDatabase.add` in its own transaction. Ingest never aborts on
a bad model: it records the reason in the database's failures table, goes on, and reports the
failures at the end. It is idempotent: a model whose content hash (sha256 of the source file's
bytes, or of the procedural recipe) is already stored is skipped. One process ingests into a
database at a time (`CadDatabase.ingest_lock`); it first deletes mesh files left without a row
by a killed ingest.
"""

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trimesh
from tqdm import tqdm

from cad_perception.cad.categories import CATEGORIES, SHAPENET_SYNSETS
from cad_perception.cad.database import CadDatabase, PreparedCad
from cad_perception.cad.errors import CadError
from cad_perception.cad.mesh import SUPPORTED_SUFFIXES, load_mesh, normalize_mesh
from cad_perception.cad.procedural import generate
from cad_perception.cad.voxel import sample_surface, voxelize

logger = logging.getLogger(__name__)

SAMPLE_COUNT = 2048
"""Surface samples stored per CAD (the Chamfer baseline's candidate points)."""

SAMPLE_SEED = 0
"""Seed of the surface sampling, so that re-ingesting a model gives the same samples."""

PROCEDURAL_VERSION = 1
"""Version of the procedural generators, part of a procedural model's content hash: bump it when
`cad.procedural` changes the models it generates."""

SHAPENET_MESH = "model_normalized.obj"
"""File name of a model in the ShapeNetCore.v2 layout <synset>/<id>/models/model_normalized.obj."""


@dataclass
class IngestReport:
    """What one ingest did."""

    added: int = 0
    skipped_existing: int = 0
    """Models whose content hash was already stored."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) of each model that could not be ingested."""


def prepare_cad(
    mesh: trimesh.Trimesh,
    *,
    cad_id: str,
    category: str,
    symmetry: str,
    source: str,
    content_hash: str,
    metric: bool,
) -> PreparedCad:
    """Normalise, voxelise and sample `mesh`; `metric` says whether its units are metres
    (then its extents are kept). Raises MeshError or ValueError for an unusable mesh."""
    normalized = normalize_mesh(mesh)
    return PreparedCad(
        cad_id=cad_id,
        category=category,
        symmetry=symmetry,
        source=source,
        content_hash=content_hash,
        mesh=normalized.mesh,
        voxels=voxelize(normalized.mesh),
        samples=sample_surface(normalized.mesh, SAMPLE_COUNT, SAMPLE_SEED),
        extents=normalized.source_extents if metric else None,
    )


def build_procedural(
    db: CadDatabase, per_category: int, seed: int, *, progress: bool = True
) -> IngestReport:
    """Add `per_category` procedural models of each category: generate(category, seed + i)."""
    if per_category < 0:
        raise ValueError(f"per_category must be >= 0, got {per_category}")
    jobs = [
        _procedural_job(category, seed + i) for category in CATEGORIES for i in range(per_category)
    ]
    return _ingest(db, jobs, progress=progress, description="procedural CADs")


def add_source(
    db: CadDatabase,
    source: str | Path,
    category: str | None = None,
    *,
    shapenet: bool = False,
    progress: bool = True,
) -> IngestReport:
    """Add a mesh file, or every mesh file below a folder.

    With `shapenet`, files are `<synset>/<id>/models/model_normalized.obj`, the category comes
    from the synset (unknown synsets are recorded as failures) and the id is "<synset>/<id>"
    (Scan2CAD's); a given `category` then restricts the ingest to that category. Otherwise
    `category` is required (ValueError) and the id is the file name's stem, made unique with a
    "-2", "-3", ... suffix. Extents are unknown (None) for files. FileNotFoundError if `source`
    does not exist.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    if shapenet:
        files = [source] if source.is_file() else sorted(source.rglob(SHAPENET_MESH))
        jobs = [_shapenet_job(path) for path in files]
        if category is not None:
            jobs = [job for job in jobs if job.category == category]
    else:
        if category is None:
            raise ValueError("a category is required to add meshes outside the ShapeNet layout")
        if category not in CATEGORIES:
            logger.warning("adding a category beyond the standard ones: %r", category)
        files = [source] if source.is_file() else sorted(_mesh_files(source))
        jobs = [_file_job(db, path, category) for path in files]
    if not jobs:
        logger.warning("no mesh files to add under %s", source)
    return _ingest(db, jobs, progress=progress, description=f"adding {source.name}")


@dataclass(frozen=True)
class _Job:
    """One model to ingest: `content_hash()` identifies it, `prepare(hash)` builds it."""

    source: str
    category: str | None
    content_hash: Callable[[], str]
    prepare: Callable[[str], PreparedCad]


def _procedural_job(category: str, seed: int) -> _Job:
    source = f"procedural:{category}:{seed}"

    def prepare(content_hash: str) -> PreparedCad:
        model = generate(category, seed)
        return prepare_cad(
            model.mesh,
            cad_id=model.cad_id,
            category=model.category,
            symmetry=model.symmetry,
            source=source,
            content_hash=content_hash,
            metric=True,
        )

    recipe = f"{source}:generator-{PROCEDURAL_VERSION}".encode()
    return _Job(source, category, lambda: hashlib.sha256(recipe).hexdigest(), prepare)


def _shapenet_job(path: Path) -> _Job:
    model_folder = path.parent.parent
    synset, model_id = model_folder.parent.name, model_folder.name
    category = SHAPENET_SYNSETS.get(synset)

    def cad_id() -> str:
        if path.parent.name != "models":
            raise CadError(f"{path}: not in the ShapeNet layout <synset>/<id>/models/{path.name}")
        if category is None:
            raise CadError(f"{path}: unknown ShapeNet synset {synset!r}")
        return f"{synset}/{model_id}"

    return _mesh_file_job(path, category, cad_id)


def _file_job(db: CadDatabase, path: Path, category: str) -> _Job:
    return _mesh_file_job(path, category, lambda: _unique_id(db, path.stem))


def _mesh_file_job(path: Path, category: str | None, cad_id: Callable[[], str]) -> _Job:
    """A job adding the mesh file `path` (unknown symmetry and units) under the id `cad_id()`,
    which is asked for first, so that it may reject the file before the mesh is read."""

    def prepare(content_hash: str) -> PreparedCad:
        identity = cad_id()
        return prepare_cad(
            load_mesh(path),
            cad_id=identity,
            category=category,
            symmetry="none",
            source=str(path.resolve()),
            content_hash=content_hash,
            metric=False,
        )

    return _Job(str(path.resolve()), category, lambda: _file_hash(path), prepare)


def _ingest(db: CadDatabase, jobs: list[_Job], *, progress: bool, description: str) -> IngestReport:
    report = IngestReport()
    with db.ingest_lock():
        db.remove_orphan_meshes()
        for job in tqdm(jobs, desc=description, unit="model", disable=not progress):
            _ingest_one(db, job, report)
    logger.info(
        "%s: %d added, %d already there, %d failed",
        description,
        report.added,
        report.skipped_existing,
        len(report.failed),
    )
    return report


def _ingest_one(db: CadDatabase, job: _Job, report: IngestReport) -> None:
    """Add one model, recording any failure of its own (I/O errors of the database propagate)."""
    try:
        content_hash = job.content_hash()
    except OSError as err:
        _record_failure(db, report, job.source, err)
        return
    if db.has_content(content_hash):
        report.skipped_existing += 1
        return
    try:
        cad = job.prepare(content_hash)
    except Exception as err:  # a bad model, whatever the parser raised, must not stop the ingest
        _record_failure(db, report, job.source, err)
        return
    try:
        db.add(cad)
    except CadError as err:
        _record_failure(db, report, job.source, err)
        return
    report.added += 1


def _record_failure(db: CadDatabase, report: IngestReport, source: str, err: Exception) -> None:
    reason = str(err) if isinstance(err, CadError) else f"{type(err).__name__}: {err}"
    logger.warning("skipping %s: %s", source, reason)
    db.record_failure(source, reason)
    report.failed.append((source, reason))


def _mesh_files(folder: Path) -> list[Path]:
    suffixes = set(SUPPORTED_SUFFIXES)
    return [
        path for path in folder.rglob("*") if path.suffix.lower() in suffixes and path.is_file()
    ]


def _file_hash(path: Path) -> str:
    """sha256 hex of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unique_id(db: CadDatabase, stem: str) -> str:
    """A CAD id from a file stem: unsafe characters replaced, "-2", "-3", ... if taken."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._") or "cad"
    candidate, number = base, 2
    while db.contains(candidate):
        candidate, number = f"{base}-{number}", number + 1
    return candidate
