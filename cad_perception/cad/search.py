"""Exact nearest-neighbour search over the embedding vectors of one category.

Convention: vectors are rows, (N, D) float32; the distance is Euclidean (L2, not squared), as in
ROCA's retrieval between embeddings. The search is exact: numpy by default, faiss's flat (also
exact) index when faiss is installed and the index holds at least FAISS_MIN_SIZE vectors; faiss
is optional and never required.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

try:  # Optional accelerator; the numpy path gives the same answers.
    import faiss
except ImportError:
    faiss = None

FAISS_MIN_SIZE = 50_000
"""Smallest index that uses faiss (when installed); below it numpy is as fast."""

_MAX_DISTANCE_ELEMENTS = 1 << 24
"""Bound on the (queries x vectors) distance block computed at once (64 MiB of float32)."""


class SearchResult(NamedTuple):
    """Ranked neighbours of M queries, nearest first; k' = min(k, candidates)."""

    ids: list[list[str]]
    """(M, k') CAD ids."""
    distances: np.ndarray
    """(M, k') float32 distances, ascending along each row."""
    metric: str = "l2"
    """What the distances measure."""


def check_vectors(name: str, vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """`vectors` as a C-contiguous (N, D) float32 array; ValueError on bad shape or values."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with D > 0, got {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} have dimension {array.shape[1]}, expected {dim}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers")
    return np.ascontiguousarray(array, dtype=np.float32)


class VectorIndex:
    """An exact L2 index over the rows of an (N, D) matrix, each row named by an id."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray):
        self.vectors = check_vectors("vectors", vectors)
        if len(ids) != len(self.vectors):
            raise ValueError(f"{len(ids)} ids for {len(self.vectors)} vectors")
        self.ids = list(ids)
        self._squared_norms = np.einsum("nd,nd->n", self.vectors, self.vectors)
        self._faiss_index = None
        if faiss is not None and len(self.ids) >= FAISS_MIN_SIZE:
            self._faiss_index = faiss.IndexFlatL2(self.dim)
            self._faiss_index.add(self.vectors)

    @property
    def dim(self) -> int:
        """D, the vector dimension."""
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """The k nearest rows to each of the (M, D) queries (all rows when k exceeds N)."""
        queries = check_vectors("queries", queries, self.dim)
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        k = min(k, len(self))
        if self._faiss_index is not None:
            squared, indices = self._faiss_index.search(queries, k)
        else:
            squared, indices = self._search_numpy(queries, k)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        ids = [[self.ids[i] for i in row] for row in indices]
        return SearchResult(ids, distances)

    def _search_numpy(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(M, k) squared distances and row indices, by |q|^2 - 2 q.x + |x|^2 in query blocks;
        the k chosen distances are then recomputed directly for accuracy."""
        count = len(queries)
        indices = np.empty((count, k), dtype=np.int64)
        block = max(1, _MAX_DISTANCE_ELEMENTS // max(1, len(self)))
        for start in range(0, count, block):
            chunk = queries[start : start + block]
            squared = self._squared_norms[None, :] - 2.0 * (chunk @ self.vectors.T)
            if k < len(self):
                squared_k = np.argpartition(squared, k - 1, axis=1)[:, :k]
            else:
                squared_k = np.broadcast_to(np.arange(k), (len(chunk), k))
            indices[start : start + block] = squared_k
        differences = self.vectors[indices] - queries[:, None, :]
        squared = np.einsum("mkd,mkd->mk", differences, differences)
        order = np.argsort(squared, axis=1, kind="stable")
        return np.take_along_axis(squared, order, 1), np.take_along_axis(indices, order, 1)
