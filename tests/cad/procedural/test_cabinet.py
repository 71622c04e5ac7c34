"""Cabinets: sizes follow the parameters; one front per door and drawer, each with a handle
that stands out at +z."""

import numpy as np
import pytest

from cad_perception.cad.procedural import cabinet, model_seed
from cad_perception.cad.procedural.parts import assemble

FRONT = 0.02  # thickness of the door and drawer fronts


def designs(count: int = 30):
    return [cabinet.design(np.random.default_rng(model_seed("cabinet", s))) for s in range(count)]


def test_extents_follow_the_parameters():
    for design in designs():
        p = design.params
        depth = p["carcass_depth"] + FRONT + max(p["handle_reach"], p["top_overhang"])
        np.testing.assert_allclose(assemble(design.parts).extents, [p["width"], p["height"], depth])


def test_one_front_per_door_and_drawer_each_with_a_handle_in_front():
    for design in designs():
        p = design.params
        front_z = p["carcass_depth"]  # the carcass spans z in [0, carcass_depth]
        z_ranges = [(part.vertices[:, 2].min(), part.vertices[:, 2].max()) for part in design.parts]
        fronts = [r for r in z_ranges if np.allclose(r, (front_z, front_z + FRONT))]
        handles = [r for r in z_ranges if r[0] >= front_z + FRONT - 1e-9]
        assert len(fronts) == p["door_count"] + p["drawer_rows"] >= 1
        parts_per_handle = 1 if p["handle"] == "knob" else 3  # a knob, or a bar on two posts
        assert len(handles) == parts_per_handle * len(fronts)
        assert max(r[1] for r in handles) == pytest.approx(front_z + FRONT + p["handle_reach"])


def test_drawers_are_tall_enough():
    for design in designs():
        front_z = design.params["carcass_depth"]
        for part in design.parts:
            z, y = part.vertices[:, 2], part.vertices[:, 1]
            if np.isclose(z.min(), front_z) and np.isclose(z.max(), front_z + FRONT):
                assert y.max() - y.min() >= cabinet.MIN_DRAWER - 0.005
