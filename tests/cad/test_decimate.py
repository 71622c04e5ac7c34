"""Decimation keeps the triangle budget and the shape's extent."""

import numpy as np
import pytest
import trimesh

from cad_perception.cad.decimate import decimate


def test_large_mesh_is_reduced_keeping_its_bounds() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces
    small = decimate(sphere, 500)
    assert 0 < len(small.faces) <= 500
    np.testing.assert_allclose(small.bounds, sphere.bounds, atol=0.05)
    assert small.faces.max() < len(small.vertices)


def test_small_mesh_is_kept() -> None:
    box = trimesh.creation.box()
    kept = decimate(box, 500)
    assert len(kept.faces) == 12
    np.testing.assert_allclose(kept.bounds, box.bounds)


def test_budget_must_be_sensible() -> None:
    with pytest.raises(ValueError, match="max_triangles"):
        decimate(trimesh.creation.box(), 2)
