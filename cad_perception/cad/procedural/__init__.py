"""Procedural furniture: parametric CAD models of the nine categories, generated from a seed."""

from cad_perception.cad.procedural.library import (
    CATEGORY_SIZES,
    GENERATORS,
    ProceduralModel,
    generate,
    model_seed,
)

__all__ = ["CATEGORY_SIZES", "GENERATORS", "ProceduralModel", "generate", "model_seed"]
