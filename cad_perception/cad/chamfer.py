"""Training-free retrieval (ROCA's "P+E+W" baseline): single-sided Chamfer distance.

A detection's predicted NOC points (P, 3) are compared with each candidate CAD's surface samples
(N, S, 3), all in the canonical CAD frame. The distance of a CAD is the mean, over the predicted
points, of the Euclidean distance to the nearest sample of that CAD: it is single-sided (from the
prediction to the CAD), so a partial observation of an object is not penalised for the parts of
the CAD it cannot see.
"""

from collections.abc import Sequence

import numpy as np

from cad_perception.cad.search import SearchResult

DEFAULT_CHUNK_ELEMENTS = 1 << 24
"""Bound on the (CADs x points x samples) distance block computed at once (128 MiB float64)."""


def single_sided_chamfer(
    points: np.ndarray, samples: np.ndarray, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> np.ndarray:
    """Mean nearest-sample distance from `points` (P, 3) to each of `samples` (N, S, 3) -> (N,).

    Computed in float64 blocks of at most `chunk_elements` point-sample pairs (at least one CAD
    per block); returns float32.
    """
    points = np.asarray(points, dtype=np.float64)
    samples = np.asarray(samples)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"points must have shape (P, 3) with P > 0, got {points.shape}")
    if samples.ndim != 3 or samples.shape[2] != 3 or samples.shape[1] == 0:
        raise ValueError(f"samples must have shape (N, S, 3) with S > 0, got {samples.shape}")
    count, per_cad = samples.shape[:2]
    result = np.empty(count, dtype=np.float32)
    block = max(1, chunk_elements // (len(points) * per_cad))
    point_norms = np.einsum("pd,pd->p", points, points)[None, :, None]  # (1, P, 1)
    for start in range(0, count, block):
        chunk = samples[start : start + block].astype(np.float64)  # (C, S, 3)
        sample_norms = np.einsum("csd,csd->cs", chunk, chunk)[:, None, :]  # (C, 1, S)
        squared = point_norms - 2.0 * (points @ chunk.transpose(0, 2, 1)) + sample_norms
        nearest = np.sqrt(np.maximum(squared.min(axis=2), 0.0))  # (C, P)
        result[start : start + block] = nearest.mean(axis=1)
    return result


def rank_by_chamfer(
    points: np.ndarray, ids: Sequence[str], samples: np.ndarray, k: int
) -> SearchResult:
    """The k CADs (of `ids`, samples (N, S, 3)) nearest to `points` (P, 3) by
    `single_sided_chamfer`, as a one-query SearchResult (all N when k exceeds N)."""
    if len(ids) != len(samples):
        raise ValueError(f"{len(ids)} ids for {len(samples)} sample sets")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if len(ids) == 0:
        return SearchResult([[]], np.zeros((1, 0), dtype=np.float32), "chamfer")
    distances = single_sided_chamfer(points, samples)
    order = np.argsort(distances, kind="stable")[:k]
    return SearchResult([[ids[i] for i in order]], distances[order][None, :], "chamfer")
