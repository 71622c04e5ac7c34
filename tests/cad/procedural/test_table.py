"""Tables: sizes follow the top and height; the symmetry follows the top and the base."""

import numpy as np

from cad_perception.cad.procedural import generate

TABLES = [generate("table", seed) for seed in range(60)]


def expected_symmetry(params: dict) -> str:
    if params["top_shape"] in ("rectangular", "oval"):
        return "rot2"
    if params["top_shape"] == "round" and params.get("foot") == "disk":
        return "inf"
    return "rot4"


def test_symmetry_follows_the_top_shape_and_the_base():
    for table in TABLES:
        assert table.symmetry == expected_symmetry(table.params), table.params
    kinds = {(t.params["top_shape"], t.params["base"]) for t in TABLES}
    assert len(kinds) == 8  # every top on legs and on pedestals


def test_extents_are_the_top_and_the_height():
    for table in TABLES:
        p = table.params
        if p["top_shape"] == "round":
            footprint = [p["diameter"], p["diameter"]]
        elif p["top_shape"] == "square":
            footprint = [p["width"], p["width"]]
        else:
            footprint = [p["width"], p["depth"]]
            assert p["depth"] <= 0.75 * p["width"] + 1e-9  # clearly longer than deep
        np.testing.assert_allclose(table.mesh.extents, [footprint[0], p["height"], footprint[1]])
