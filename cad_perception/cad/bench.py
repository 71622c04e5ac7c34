"""Benchmarks of the CAD database: ingest throughput, size on disk, search latency.

`run_cad_benchmarks()` returns a JSON-ready dict (`make bench` writes it); every database it
builds lives in a temporary folder.
"""

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cad_perception.cad.catalogue import bump_version, connect, transaction
from cad_perception.cad.database import CATALOGUE_NAME, CadDatabase
from cad_perception.cad.ingest import IngestReport, add_source, build_procedural


def run_cad_benchmarks(
    *,
    per_category: int = 5,
    shapenet_root: Path | None = None,
    search_sizes: Sequence[int] = (10_000, 100_000),
    dim: int = 256,
    k: int = 5,
    repeats: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure the database on this machine.

    - "procedural": ingest of `per_category` procedural models per category (models/s, bytes on
      disk per CAD);
    - "shapenet": the same for the models under `shapenet_root`, None when it is absent;
    - "search": for each size N, N CADs of one category with random `dim`-d vectors written by
      put_embeddings: write time, first-search index load time, and the median latency per
      query over `repeats` searches of one query and of a batch of 32 (top-`k`).
    """
    with tempfile.TemporaryDirectory(prefix="cad-bench-") as folder:
        folder = Path(folder)
        procedural = _ingest_benchmark(
            folder / "procedural",
            lambda db: build_procedural(db, per_category, seed, progress=False),
        )
        shapenet = None
        if shapenet_root is not None and shapenet_root.is_dir():
            shapenet = _ingest_benchmark(
                folder / "shapenet",
                lambda db: add_source(db, shapenet_root, shapenet=True, progress=False),
            )
        search = {
            str(size): _search_benchmark(folder / f"search-{size}", size, dim, k, repeats, seed)
            for size in search_sizes
        }
    return {"procedural": procedural, "shapenet": shapenet, "search": search, "dim": dim, "k": k}


def _ingest_benchmark(folder: Path, ingest: Any) -> dict[str, Any]:
    """Time `ingest(db)` on a fresh database at `folder` and measure its size on disk."""
    with CadDatabase.create(folder) as db:
        start = time.perf_counter()
        report: IngestReport = ingest(db)
        seconds = time.perf_counter() - start
        count = len(db)
    # Closed: the write-ahead log is checkpointed into the catalogue.
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return {
        "models": report.added,
        "failed": len(report.failed),
        "seconds": round(seconds, 3),
        "models_per_s": round(report.added / seconds, 2) if seconds > 0 else None,
        "bytes_per_cad": round(size / count) if count else None,
    }


def _search_benchmark(folder: Path, size: int, dim: int, k: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    CadDatabase.create(folder).close()
    ids = _insert_placeholder_cads(folder / CATALOGUE_NAME, "chair", size)
    with CadDatabase.open(folder) as db:
        vectors = rng.standard_normal((size, dim)).astype(np.float32)
        start = time.perf_counter()
        db.put_embeddings("bench", "1", ids, vectors)
        write_s = time.perf_counter() - start

        queries = rng.standard_normal((repeats, 32, dim)).astype(np.float32)
        start = time.perf_counter()
        db.search("chair", queries[0, :1], k)  # loads the category's matrix
        load_s = time.perf_counter() - start
        single = [_timed(db, queries[i, :1], k) for i in range(repeats)]
        batched = [_timed(db, queries[i], k) / 32 for i in range(repeats)]
    return {
        "cads": size,
        "put_embeddings_s": round(write_s, 3),
        "index_load_s": round(load_s, 3),
        "latency_ms_per_query_single": round(1e3 * float(np.median(single)), 4),
        "latency_ms_per_query_batch32": round(1e3 * float(np.median(batched)), 4),
    }


def _timed(db: CadDatabase, queries: np.ndarray, k: int) -> float:
    start = time.perf_counter()
    db.search("chair", queries, k)
    return time.perf_counter() - start


def _insert_placeholder_cads(catalogue: Path, category: str, count: int) -> list[str]:
    """Insert `count` catalogue rows without mesh, voxels or samples (search needs only ids)."""
    ids = [f"bench-{i:07d}" for i in range(count)]
    connection = connect(catalogue)
    try:
        with transaction(connection):
            connection.executemany(
                "INSERT INTO cads (cad_id, category, symmetry, source, mesh_path, voxels, samples,"
                " content_hash, added_at) VALUES (?, ?, 'none', 'bench', ?, x'', x'', ?, 0)",
                ((cad_id, category, f"meshes/{cad_id}.glb", cad_id) for cad_id in ids),
            )
            bump_version(connection)
    finally:
        connection.close()
    return ids
