"""Primitive parts: closed, outward-facing surfaces with known volumes; assembly and colours."""

import math

import numpy as np
import pytest
import trimesh

from cad_perception.cad.procedural.parts import (
    Part,
    assemble,
    box,
    cylinder,
    ellipse,
    loft,
    prism,
    rectangle,
    rotation,
    superellipse,
)

RED, BLUE = (200, 30, 30, 255), (30, 30, 200, 255)


def as_mesh(part: Part) -> trimesh.Trimesh:
    return trimesh.Trimesh(part.vertices, part.faces, process=False)


def polygon_area(outline: np.ndarray) -> float:
    x, z = outline[:, 0], outline[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(z, -1)) - np.dot(z, np.roll(x, -1))))


def assert_closed_outward(part: Part) -> None:
    mesh = as_mesh(part)
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals: positive signed volume


def triangle_set(vertices: np.ndarray, faces: np.ndarray) -> set[frozenset]:
    rounded = np.round(vertices, 9) + 0.0  # + 0.0 turns -0.0 into 0.0
    return {frozenset(map(tuple, rounded[face])) for face in faces}


def test_box_is_a_closed_box_with_its_corners_and_volume():
    part = box((0.1, 0.2, -0.3), (0.5, 1.2, 0.3), RED)
    assert_closed_outward(part)
    np.testing.assert_allclose(as_mesh(part).bounds, [[0.1, 0.2, -0.3], [0.5, 1.2, 0.3]])
    assert as_mesh(part).volume == pytest.approx(0.4 * 1.0 * 0.6)
    assert part.color == RED


def test_box_rejects_inverted_corners():
    with pytest.raises(ValueError, match="lo < hi"):
        box((0, 0, 0), (1, 0, 1), RED)


@pytest.mark.parametrize("segments", [16, 32])
def test_cylinder_volume_is_its_polygon_area_times_height(segments):
    part = cylinder(0.3, 0.1, 0.9, RED, x=1.0, z=-2.0, segments=segments)
    assert_closed_outward(part)
    area = 0.5 * segments * 0.3**2 * math.sin(2 * math.pi / segments)
    assert as_mesh(part).volume == pytest.approx(area * 0.8)
    np.testing.assert_allclose(as_mesh(part).bounds, [[0.7, 0.1, -2.3], [1.3, 0.9, -1.7]])


def test_frustum_volume_matches_the_frustum_formula():
    part = prism(rectangle(0.6, 0.4), 0.0, 0.5, RED, top_scale=0.5)
    assert_closed_outward(part)
    bottom, top = 0.24, 0.06
    assert as_mesh(part).volume == pytest.approx(0.5 / 3 * (bottom + top + math.sqrt(bottom * top)))


def test_closed_loft_is_a_ring_of_the_outer_minus_the_inner_prism():
    outer, inner = ellipse(0.5, 0.3), ellipse(0.4, 0.2)
    ring = loft([outer, outer, inner, inner], [0.0, 0.2, 0.2, 0.0], RED, closed=True)
    assert_closed_outward(ring)
    expected = (polygon_area(outer) - polygon_area(inner)) * 0.2
    assert as_mesh(ring).volume == pytest.approx(expected)


def test_open_loft_through_an_inner_surface_is_a_bowl():
    outer, inner = ellipse(0.5, 0.5), ellipse(0.45, 0.45)
    bowl = loft([outer, outer, inner, inner], [0.0, 0.3, 0.3, 0.05], RED)
    assert_closed_outward(bowl)
    expected = polygon_area(outer) * 0.3 - polygon_area(inner) * 0.25
    assert as_mesh(bowl).volume == pytest.approx(expected)


def test_loft_rejects_mismatched_outlines():
    with pytest.raises(ValueError, match="shape"):
        loft([ellipse(1, 1, 16), ellipse(1, 1, 32)], [0, 1], RED)
    with pytest.raises(ValueError, match="one per height"):
        loft([ellipse(1, 1)], [0], RED)


@pytest.mark.parametrize("exponent", [2.0, 4.0, 10.0])
def test_superellipse_spans_its_semi_axes_and_has_their_symmetries(exponent):
    outline = superellipse(0.7, 0.3, exponent)
    np.testing.assert_allclose(outline.min(axis=0), [-0.7, -0.3])
    np.testing.assert_allclose(outline.max(axis=0), [0.7, 0.3])
    values = np.abs(outline[:, 0] / 0.7) ** exponent + np.abs(outline[:, 1] / 0.3) ** exponent
    np.testing.assert_allclose(values, 1.0)
    # A half turn maps the vertex list onto itself, shifted by half the segments.
    np.testing.assert_allclose(-outline, np.roll(outline, -16, axis=0), atol=1e-15)
    square = superellipse(0.5, 0.5, exponent)
    quarter = np.stack([-square[:, 1], square[:, 0]], axis=-1)  # (x, z) turned by 90 deg
    np.testing.assert_allclose(quarter, np.roll(square, -8, axis=0), atol=1e-15)


def test_ellipse_vertices_lie_on_the_ellipse():
    outline = ellipse(2.0, 0.5, 24)
    np.testing.assert_allclose((outline[:, 0] / 2.0) ** 2 + (outline[:, 1] / 0.5) ** 2, 1.0)


def test_rotations_follow_the_right_hand_rule():
    # As geometry.rotations.rotation_about_y: a quarter turn about y takes z to x and x to -z.
    quarter = math.pi / 2
    np.testing.assert_allclose(rotation("y", quarter) @ [0, 0, 1], [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(rotation("y", quarter) @ [1, 0, 0], [0, 0, -1], atol=1e-15)
    np.testing.assert_allclose(rotation("x", quarter) @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(rotation("z", quarter) @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    for axis in "xyz":
        matrix = rotation(axis, 0.7)
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-15)
        assert np.linalg.det(matrix) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="axis"):
        rotation("w", 1.0)


def test_rotated_part_keeps_its_pivot_and_volume_and_stays_outward():
    part = box((0, 0, 0), (1, 2, 3), RED)
    turned = part.rotated("x", 0.4, pivot=(0, 0, 0))
    assert_closed_outward(turned)
    assert as_mesh(turned).volume == pytest.approx(6.0)
    np.testing.assert_allclose(turned.vertices.min(axis=0)[0], 0.0)  # x untouched
    corner = part.rotated("z", 1.0, pivot=(1, 2, 3)).vertices
    assert np.isclose(corner, [1, 2, 3]).all(axis=1).any()  # the pivot corner stays put
    np.testing.assert_allclose(
        part.moved([1, -1, 2]).vertices, part.vertices + np.array([1, -1, 2])
    )


def test_quarter_turn_maps_a_square_prism_triangulation_onto_itself():
    part = prism(rectangle(0.4, 0.4), 0.0, 1.0, RED, top_scale=0.7)
    turned = part.vertices @ rotation("y", math.pi / 2).T
    assert triangle_set(turned, part.faces) == triangle_set(part.vertices, part.faces)
    rectangular = prism(rectangle(0.6, 0.4), 0.0, 1.0, RED)
    turned = rectangular.vertices @ rotation("y", math.pi / 2).T
    assert triangle_set(turned, part.faces) != triangle_set(rectangular.vertices, part.faces)


def test_assemble_centres_the_bounding_box_and_colours_faces_by_part():
    parts = [box((0, 0, 0), (1, 1, 1), RED), cylinder(0.5, 1.0, 3.0, BLUE, x=0.5, z=0.5)]
    mesh = assemble(parts)
    np.testing.assert_allclose(mesh.bounds, [[-0.5, -1.5, -0.5], [0.5, 1.5, 0.5]])
    assert len(mesh.vertices) == sum(len(p.vertices) for p in parts)
    colors = mesh.visual.face_colors
    assert (colors[: len(parts[0].faces)] == RED).all()
    assert (colors[len(parts[0].faces) :] == BLUE).all()
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(sum(as_mesh(p).volume for p in parts))


def test_assemble_rejects_no_parts():
    with pytest.raises(ValueError, match="no parts"):
        assemble([])
