"""The procedural CAD library: deterministic furniture models from (category, seed).

Models are metric (metres) in the canonical orientation: y up, front facing +z, bounding box
centred at the origin. The generator behind a model is seeded from a SHA-256 digest of its
category and seed, so a model is the same in every process and on every machine.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh

from cad_perception.cad.procedural import (
    bathtub,
    bed,
    bookshelf,
    cabinet,
    chair,
    display,
    sofa,
    table,
    waste_bin,
)
from cad_perception.cad.procedural.design import Design
from cad_perception.cad.procedural.parts import assemble

_MODULES = {
    "bathtub": bathtub,
    "bed": bed,
    "bin": waste_bin,
    "bookshelf": bookshelf,
    "cabinet": cabinet,
    "chair": chair,
    "display": display,
    "sofa": sofa,
    "table": table,
}

GENERATORS: dict[str, Callable[[np.random.Generator], Design]] = {
    name: module.design for name, module in _MODULES.items()
}
"""Category -> design function drawing one model's parts, symmetry and parameters."""

CATEGORY_SIZES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    name: module.SIZE_RANGE for name, module in _MODULES.items()
}
"""Category -> (min extents, max extents) in metres along (x width, y height, z depth); every
generated model's bounding box lies in its category's range."""


@dataclass(frozen=True)
class ProceduralModel:
    """One generated CAD model.

    mesh: metric, canonical orientation, per-face colours by part. params: the sampled shape
    parameters (JSON-serialisable). symmetry: 'none', 'rot2', 'rot4' or 'inf' about y.
    """

    cad_id: str
    category: str
    symmetry: str
    mesh: trimesh.Trimesh
    params: dict[str, Any]


def model_seed(category: str, seed: int) -> int:
    """The 64-bit generator seed of model (category, seed), stable across processes."""
    digest = hashlib.sha256(f"{category}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def generate(category: str, seed: int) -> ProceduralModel:
    """The procedural model `seed` (0 <= seed < 100000) of `category`."""
    if category not in GENERATORS:
        raise ValueError(
            f"no procedural generator for category {category!r}: expected one of "
            f"{', '.join(sorted(GENERATORS))}"
        )
    if not 0 <= seed < 100_000:
        raise ValueError(f"seed must lie in [0, 100000), got {seed}")
    design = GENERATORS[category](np.random.default_rng(model_seed(category, seed)))
    return ProceduralModel(
        cad_id=f"proc-{category}-{seed:05d}",
        category=category,
        symmetry=design.symmetry,
        mesh=assemble(design.parts),
        params=design.params,
    )
