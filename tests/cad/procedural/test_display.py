"""Displays: the panel has the diagonal and aspect ratio drawn; the screen faces +z with the
housing and stand behind it."""

import math

import numpy as np
import pytest

from cad_perception.cad.procedural import display, model_seed
from cad_perception.cad.procedural.parts import assemble


def designs(count: int = 30):
    return [display.design(np.random.default_rng(model_seed("display", s))) for s in range(count)]


def test_width_and_height_follow_diagonal_aspect_and_stand():
    for design in designs():
        p = design.params
        ratio_w, ratio_h = (int(v) for v in p["aspect"].split(":"))
        width = p["diagonal"] * ratio_w / math.hypot(ratio_w, ratio_h)
        height = p["diagonal"] * ratio_h / math.hypot(ratio_w, ratio_h)
        extents = assemble(design.parts).extents
        np.testing.assert_allclose(extents[:2], [width, height + p.get("stand_height", 0.0)])
        assert p["diagonal"] * 0.999 <= math.hypot(width, height) <= p["diagonal"] * 1.001


def test_the_screen_is_the_front_of_the_panel_and_the_housing_is_behind():
    for design in designs():
        p = design.params
        vertices = np.concatenate([part.vertices for part in design.parts])
        above_stand = vertices[vertices[:, 1] > p.get("stand_height", 0.0) + 1e-9]
        # The panel's front face is z = panel_thickness; the screen stands 2 mm proud of it.
        assert above_stand[:, 2].max() == pytest.approx(p["panel_thickness"] + 0.002)
        assert vertices[:, 2].min() <= -p["housing_depth"]


def test_every_stand_and_aspect_occurs():
    params = [design.params for design in designs()]
    assert {p["stand"] for p in params} == set(display.STANDS)
    assert {p["aspect"] for p in params} == set(display.DIAGONALS)
