"""CAD retrieval for a frame's detections: one nearest-neighbour search per category present."""

from collections.abc import Sequence

import numpy as np

from cad_perception.cad.database import CadDatabase
from cad_perception.pipeline.detection import CadMatch


def categories_with_cads(db: CadDatabase) -> set[str]:
    """The categories of `db` that hold at least one CAD."""
    return {category for category, count in db.info()["per_category"].items() if count > 0}


def retrieve(
    db: CadDatabase,
    encoder: tuple[str, str],
    categories: Sequence[str],
    embeddings: np.ndarray,
    k: int,
    searchable: set[str],
) -> list[tuple[CadMatch, ...]]:
    """The k nearest CADs of each detection's category under `encoder`, nearest first.

    categories (N,) names the detections' categories and embeddings (N, D) their unit vectors;
    a detection whose category is not in `searchable` (categories_with_cads) gets ()."""
    matches: list[tuple[CadMatch, ...]] = [()] * len(categories)
    for category in set(categories) & searchable:
        rows = [i for i, name in enumerate(categories) if name == category]
        result = db.search(category, np.asarray(embeddings)[rows], k, encoder=encoder)
        for row, ids, distances in zip(rows, result.ids, result.distances, strict=True):
            matches[row] = tuple(
                CadMatch(cad_id, float(d)) for cad_id, d in zip(ids, distances, strict=True)
            )
    return matches
