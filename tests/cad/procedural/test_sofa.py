"""Sofas: sizes follow the seat count and arms; the back is at -z; one cushion per seat."""

import numpy as np
import pytest

from cad_perception.cad.procedural import model_seed, sofa
from cad_perception.cad.procedural.parts import assemble


def designs(count: int = 30):
    return [sofa.design(np.random.default_rng(model_seed("sofa", s))) for s in range(count)]


def test_extents_follow_seats_arms_depth_and_back():
    for design in designs():
        p = design.params
        width = p["seat_count"] * p["seat_width"]
        if p["arm_style"] != "none":
            width += 2 * p["arm_width"]
        extents = assemble(design.parts).extents
        np.testing.assert_allclose(extents, [width, p["back_height"], p["depth"]])


def test_one_seat_cushion_per_seat_and_back_cushions_alike():
    for design in designs():
        p = design.params
        spans = [(part.vertices[:, 1].min(), part.vertices[:, 1].max()) for part in design.parts]
        seat = (p["seat_height"] - p["cushion_thickness"], p["seat_height"])
        back = (p["seat_height"], p["back_height"] - 0.04)
        assert sum(np.allclose(span, seat) for span in spans) == p["seat_count"]
        back_count = p["seat_count"] if p["back_cushions"] else 0
        assert sum(np.allclose(span, back) for span in spans) == back_count


def test_the_back_is_the_top_at_the_rear():
    for design in designs():
        vertices = assemble(design.parts).vertices
        top = vertices[vertices[:, 1] > vertices[:, 1].max() - 1e-9]
        assert (top[:, 2] < 0).all()
        assert top[:, 2].min() == pytest.approx(vertices[:, 2].min())
