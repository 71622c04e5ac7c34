"""Bins: the symmetry follows the shape; sizes follow the body, rim and lid."""

import numpy as np
import pytest

from cad_perception.cad.procedural import generate
from cad_perception.cad.procedural.waste_bin import SYMMETRIES

BINS = [generate("bin", seed) for seed in range(40)]


def test_symmetry_follows_the_shape():
    for waste_bin in BINS:
        assert waste_bin.symmetry == SYMMETRIES[waste_bin.params["shape"]]
    assert {b.params["shape"] for b in BINS} == set(SYMMETRIES)


def test_extents_follow_body_rim_and_lid():
    for waste_bin in BINS:
        p = waste_bin.params
        flare = p.get("flare", 1.0)
        ratio = p["depth_ratio"] if p["shape"] == "rectangular" else 1.0
        margin = max(p.get("rim_overhang", 0.0), 0.005 if p["lid"] != "none" else 0.0)
        top = p["height"] + (0.005 if p["rim"] else 0.0)
        if p["lid"] == "flat":
            top += p["lid_height"] + 0.02  # and its knob
        elif p["lid"] == "dome":
            top += p["width"] * flare / 4
        expected = [p["width"] * flare + 2 * margin, top, p["width"] * ratio * flare + 2 * margin]
        np.testing.assert_allclose(waste_bin.mesh.extents, expected)


def test_tapered_bins_widen_upwards():
    for waste_bin in (b for b in BINS if b.params["tapered"]):
        vertices = waste_bin.mesh.vertices
        low = vertices[:, 1] < vertices[:, 1].min() + 1e-9
        assert np.abs(vertices[low, 0]).max() == pytest.approx(waste_bin.params["width"] / 2)
        assert waste_bin.mesh.extents[0] > waste_bin.params["width"] * 1.04
