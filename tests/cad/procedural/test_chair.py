"""Chairs: sizes follow the seat and back parameters; the back leans backwards at -z."""

import math

import numpy as np
import pytest

from cad_perception.cad.procedural import generate

CHAIRS = [generate("chair", seed) for seed in range(40)]


def test_the_top_of_the_back_is_at_the_rear():
    for chair in CHAIRS:
        vertices = chair.mesh.vertices
        top = vertices[vertices[:, 1] > vertices[:, 1].max() - 1e-9]
        assert (top[:, 2] < 0).all(), chair.params


def test_plain_four_legged_chairs_have_known_extents():
    plain = [c for c in CHAIRS if c.params["base"] == "four_legs" and not c.params["arms"]]
    assert len(plain) >= 3
    for chair in plain:
        p = chair.params
        tilt = math.radians(p["back_tilt_deg"])
        back_length = p["seat_thickness"] + p["back_height"]  # from the seat's underside
        height = (
            p["seat_height"] - p["seat_thickness"]
            + back_length * math.cos(tilt) + p["back_thickness"] * math.sin(tilt)
        )  # fmt: skip
        depth = p["seat_depth"] + back_length * math.sin(tilt)
        np.testing.assert_allclose(chair.mesh.extents, [p["seat_width"], height, depth])


def test_arms_widen_the_chair_by_their_width():
    armed = [c for c in CHAIRS if c.params["arms"] and c.params["base"] != "star"]
    assert len(armed) >= 3
    for chair in armed:
        expected = chair.params["seat_width"] + 2 * chair.params["arm_width"]
        assert chair.mesh.extents[0] == pytest.approx(expected)


def test_star_bases_reach_their_radius():
    stars = [c for c in CHAIRS if c.params["base"] == "star"]
    assert len(stars) >= 3
    for chair in stars:
        vertices = chair.mesh.vertices
        feet = vertices[vertices[:, 1] < vertices[:, 1].min() + 0.05]  # the casters
        radii = np.linalg.norm(feet[:, [0, 2]] - feet[:, [0, 2]].mean(axis=0), axis=1)
        assert radii.max() == pytest.approx(chair.params["star_radius"], abs=1e-3)
