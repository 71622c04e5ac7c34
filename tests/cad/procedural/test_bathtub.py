"""Bathtubs: length along x, sizes are the parameters, the basin sits inside the tub."""

import numpy as np
import pytest

from cad_perception.cad.procedural import bathtub, model_seed
from cad_perception.cad.procedural.parts import assemble


def designs(count: int = 30):
    return [bathtub.design(np.random.default_rng(model_seed("bathtub", s))) for s in range(count)]


def test_extents_are_length_height_width():
    for design in designs():
        p = design.params
        extents = assemble(design.parts).extents
        np.testing.assert_allclose(extents, [p["length"], p["height"], p["width"]])
        assert extents[0] > extents[2]


def test_the_drain_sits_on_the_basin_floor_above_the_tub_bottom():
    for design in designs():
        p = design.params
        drain = design.parts[-1].vertices  # floor at y = 0 in the design's frame
        floor = p["height"] - p["basin_depth"]
        assert drain[:, 1].max() == pytest.approx(floor + 0.004)
        assert floor >= p.get("lift", 0.0) + 0.06 - 1e-9
        np.testing.assert_allclose(drain[:, [0, 2]].mean(axis=0), 0.0, atol=1e-12)


def test_every_kind_occurs():
    kinds = {(d.params["shape"], d.params["mount"], d.params.get("support")) for d in designs()}
    assert kinds == {
        ("rectangular", "built_in", None),
        ("rectangular", "freestanding", "clawfoot"),
        ("rectangular", "freestanding", "plinth"),
        ("oval", "freestanding", "clawfoot"),
        ("oval", "freestanding", "plinth"),
    }
