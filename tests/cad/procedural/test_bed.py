"""Beds: sizes follow the mattress, frame and boards; the headboard is the top, at -z."""

import numpy as np

from cad_perception.cad.procedural import generate
from cad_perception.cad.procedural.bed import MATTRESS_WIDTHS

BEDS = [generate("bed", seed) for seed in range(30)]


def test_extents_follow_mattress_frame_and_boards():
    for bed in BEDS:
        p = bed.params
        width = MATTRESS_WIDTHS[p["size"]] + 2 * p["rail_thickness"]
        depth = p["mattress_length"] + p["headboard_thickness"] + (0.04 if p["footboard"] else 0)
        np.testing.assert_allclose(bed.mesh.extents, [width, p["headboard_height"], depth])


def test_the_headboard_is_the_top_at_the_rear_and_the_footboard_is_lower():
    for bed in BEDS:
        vertices = bed.mesh.vertices
        top = vertices[vertices[:, 1] > vertices[:, 1].max() - 1e-9]
        assert np.allclose(top[:, 2].min(), vertices[:, 2].min())  # flush with the rear
        assert (top[:, 2] < 0).all()
        if bed.params["footboard"]:
            assert bed.params["footboard_height"] < bed.params["headboard_height"] - 0.2


def test_every_size_and_base_occurs():
    assert {bed.params["size"] for bed in BEDS} == set(MATTRESS_WIDTHS)
    assert {bed.params["base"] for bed in BEDS} == {"legs", "platform"}
