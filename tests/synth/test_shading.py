import dataclasses
import itertools

import numpy as np
import pytest
import trimesh

from cad_perception.synth.renderer import RenderObject, render
from cad_perception.synth.shading import (
    Lighting,
    ShadingConfig,
    face_colors,
    irradiance,
    sample_lighting,
    shade,
)

K = np.array([[90.0, 0.0, 39.5], [0.0, 90.0, 29.5], [0.0, 0.0, 1.0]])
SIZE = (60, 80)
PLAIN = ShadingConfig(
    texture_probability=0.0,
    brightness=(1.0, 1.0),
    contrast=(1.0, 1.0),
    saturation=(1.0, 1.0),
    white_balance=0.0,
    blur_sigma=(0.0, 0.0),
    noise_std=(0.0, 0.0),
    void_brightness=(0.0, 0.0),
)
"""No textures, no camera effects, black where nothing is hit: the image is the lighting."""


def coloured(mesh: trimesh.Trimesh, rgb: tuple[int, int, int]) -> trimesh.Trimesh:
    mesh.visual.face_colors = [*rgb, 255]
    return mesh


def floor_and_box() -> tuple[list[RenderObject], list[trimesh.Trimesh]]:
    box = coloured(trimesh.creation.box(extents=[0.5, 0.4, 0.3]), (180, 150, 60))
    floor = coloured(trimesh.creation.box(extents=[20.0, 0.01, 20.0]), (120, 120, 140))
    items = [
        RenderObject(box, np.eye(3), np.array([0.0, 0.0, 2.5]), np.full(3, 1.5)),
        RenderObject(floor, np.eye(3), np.array([0.0, 0.6, 3.0]), np.ones(3)),
    ]
    return items, [item.mesh for item in items]


def ambient_only(level: float) -> Lighting:
    empty = np.zeros((0, 3))
    return Lighting(np.full(3, level), empty, empty, empty, empty, np.zeros(0))


def test_shade_returns_an_rgb_image_the_same_for_a_seed_and_different_across_seeds():
    items, meshes = floor_and_box()
    buffers = render(items[:1], K, SIZE, background=items[1:])
    first = shade(buffers, meshes, np.random.default_rng(7))
    assert first.shape == (*SIZE, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, shade(buffers, meshes, np.random.default_rng(7)))
    assert np.abs(first.astype(int) - shade(buffers, meshes, np.random.default_rng(8))).max() > 10


def test_different_seeds_give_different_lights_and_different_lit_images():
    items, meshes = floor_and_box()
    buffers = render(items[:1], K, SIZE, background=items[1:])
    config = dataclasses.replace(PLAIN, light_count=(2, 2), point_light_probability=0.5)
    centre = np.array([0.0, 0.0, 3.0])
    lights = [sample_lighting(np.random.default_rng(seed), config, centre) for seed in range(6)]
    directions = [tuple(np.round(light.directions.ravel(), 6)) for light in lights]
    assert len(set(directions)) == len(lights)
    images = [shade(buffers, meshes, np.random.default_rng(seed), config) for seed in range(6)]
    for a, b in itertools.pairwise(images):
        assert np.abs(a.astype(int) - b).mean() > 1.0


def test_sampled_lights_come_from_above_the_camera_side_with_the_configured_exposure():
    config = ShadingConfig(
        exposure=(0.9, 0.9), ambient=(0.2, 0.2), light_tint=0.0, point_light_probability=0.0
    )
    for seed in range(20):
        lighting = sample_lighting(np.random.default_rng(seed), config, np.array([0, 0, 3.0]))
        assert len(lighting.positions) == 0 and 1 <= len(lighting.directions) <= 3
        assert (lighting.directions[:, 1:] <= 0).all()  # y up is negative, z towards the camera
        np.testing.assert_allclose(np.linalg.norm(lighting.directions, axis=1), 1.0)
        np.testing.assert_allclose(lighting.ambient, 0.18)
        np.testing.assert_allclose(lighting.directional_colors.sum(axis=0), 0.72)


def test_lambertian_shading_known_answer_a_face_towards_the_light_is_brighter():
    sphere = coloured(trimesh.creation.icosphere(subdivisions=3, radius=0.5), (200, 200, 200))
    buffers = render([RenderObject(sphere, np.eye(3), np.array([0, 0, 2.0]), np.ones(3))], K, SIZE)
    towards_light = np.array([-1.0, -1.0, -1.0]) / np.sqrt(3.0)  # upper left, camera side
    empty = np.zeros((0, 3))
    lighting = Lighting(
        np.full(3, 0.1), towards_light[None], np.full((1, 3), 0.8), empty, empty, np.zeros(0)
    )
    image = shade(buffers, [sphere], np.random.default_rng(0), PLAIN, lighting)

    hit = buffers.instance == 1
    cosine = np.clip(buffers.normals @ towards_light, 0.0, None)
    expected = 255 * np.sqrt((200 / 255) ** 2 * (0.1 + 0.8 * cosine))
    assert np.abs(image[hit].astype(float) - expected[hit, None]).max() <= 1.0
    assert (image[~hit] == 0).all()
    lit, unlit = hit & (cosine > 0.7), hit & (cosine == 0)
    assert lit.sum() > 20 and unlit.sum() > 20
    assert image[lit].mean() > image[unlit].mean() + 80


def test_irradiance_follows_the_cosine_law_and_the_inverse_square_falloff():
    empty = np.zeros((0, 3))
    directional = Lighting(
        np.full(3, 0.1),
        np.array([[0.0, 0.0, -1.0]]),
        np.full((1, 3), 0.5),
        empty,
        empty,
        np.zeros(0),
    )
    normals = np.array([[0, 0, -1], [0, -np.sqrt(0.5), -np.sqrt(0.5)], [0, 0, 1]], np.float32)
    values = irradiance(normals, np.zeros((3, 3), np.float32), directional)
    np.testing.assert_allclose(values[:, 0], [0.6, 0.1 + 0.5 * np.sqrt(0.5), 0.1], rtol=1e-6)

    point = Lighting(
        np.zeros(3), empty, empty, np.zeros((1, 3)), np.full((1, 3), 0.4), np.array([2.0])
    )
    points = np.array([[0, 0, 2], [0, 0, 4], [0, 0, 4]], np.float32)
    normals = np.array([[0, 0, -1], [0, 0, -1], [0, 0, 1]], np.float32)
    np.testing.assert_allclose(irradiance(normals, points, point)[:, 0], [0.4, 0.1, 0.0], rtol=1e-6)


def two_part_box() -> trimesh.Trimesh:
    """A box whose left half is red and right half green (two parts)."""
    left = coloured(trimesh.creation.box(extents=[0.5, 1.0, 1.0]), (200, 30, 30))
    right = coloured(trimesh.creation.box(extents=[0.5, 1.0, 1.0]), (30, 190, 40))
    left.apply_translation([-0.25, 0, 0])
    right.apply_translation([0.25, 0, 0])
    return trimesh.util.concatenate([left, right])


@pytest.mark.parametrize("seed", range(5))
def test_part_colours_come_from_the_face_colours(seed):
    mesh = two_part_box()
    assert face_colors(mesh) is not None and len(np.unique(face_colors(mesh), axis=0)) == 2
    item = RenderObject(mesh, np.eye(3), np.array([0.0, 0.0, 3.0]), np.full(3, 1.2))
    buffers = render([item], K, SIZE)
    image = shade(buffers, [mesh], np.random.default_rng(seed)).astype(float)
    hit = buffers.instance == 1
    red = image[hit & (buffers.noc[..., 0] < -0.05)].mean(axis=0)
    green = image[hit & (buffers.noc[..., 0] > 0.05)].mean(axis=0)
    assert red[0] > 1.5 * red[1] and red[0] > 1.5 * red[2]
    assert green[1] > 1.5 * green[0] and green[1] > 1.5 * green[2]


def test_a_mesh_without_colours_gets_one_random_colour():
    mesh = trimesh.creation.box(extents=[0.6, 0.6, 0.6])
    assert face_colors(mesh) is None
    buffers = render([RenderObject(mesh, np.eye(3), np.array([0, 0, 2.0]), np.ones(3))], K, SIZE)
    hit = buffers.instance == 1
    colours = []
    for seed in (1, 2):
        image = shade(buffers, [mesh], np.random.default_rng(seed), PLAIN, ambient_only(1.0))
        assert len(np.unique(image[hit], axis=0)) == 1
        colours.append(image[hit][0])
    assert not np.array_equal(*colours)


def test_textures_vary_the_albedo_within_their_strength():
    mesh = coloured(trimesh.creation.box(extents=[1.0, 1.0, 0.1]), (160, 160, 160))
    buffers = render([RenderObject(mesh, np.eye(3), np.array([0, 0, 2.0]), np.ones(3))], K, SIZE)
    hit = buffers.instance == 1
    config = dataclasses.replace(
        PLAIN, texture_probability=1.0, texture_strength=(0.3, 0.3), texture_period=(0.1, 0.1)
    )
    for seed in range(4):
        image = shade(buffers, [mesh], np.random.default_rng(seed), config, ambient_only(1.0))
        values = image[hit].astype(float)
        assert values.std() > 3.0
        # sRGB = sqrt(linear albedo * factor): the factor lies in [0.7, 1.3]
        assert values.min() >= 160 * np.sqrt(0.7) - 1 and values.max() <= 160 * np.sqrt(1.3) + 1
    plain = shade(buffers, [mesh], np.random.default_rng(0), PLAIN, ambient_only(1.0))
    assert (plain[hit] == 160).all()


def test_sensor_noise_has_the_configured_standard_deviation():
    mesh = coloured(trimesh.creation.box(extents=[5.0, 5.0, 0.1]), (128, 128, 128))
    buffers = render([RenderObject(mesh, np.eye(3), np.array([0, 0, 2.0]), np.ones(3))], K, SIZE)
    clean = shade(buffers, [mesh], np.random.default_rng(0), PLAIN, ambient_only(1.0))
    config = dataclasses.replace(PLAIN, noise_std=(6.0, 6.0))
    noisy = shade(buffers, [mesh], np.random.default_rng(0), config, ambient_only(1.0))
    assert abs((noisy.astype(float) - clean).std() - 6.0) < 0.5


def test_blur_smooths_edges_and_keeps_the_mean():
    mesh = two_part_box()
    buffers = render([RenderObject(mesh, np.eye(3), np.array([0, 0, 3.0]), np.ones(3))], K, SIZE)
    sharp = shade(buffers, [mesh], np.random.default_rng(0), PLAIN, ambient_only(1.0))
    config = dataclasses.replace(PLAIN, blur_sigma=(1.0, 1.0))
    blurred = shade(buffers, [mesh], np.random.default_rng(0), config, ambient_only(1.0))
    sharp, blurred = sharp.astype(float), blurred.astype(float)
    assert abs(blurred.mean() - sharp.mean()) < 0.5
    assert np.abs(np.diff(blurred, axis=1)).max() < 0.7 * np.abs(np.diff(sharp, axis=1)).max()


def test_colour_jitter_keeps_grey_grey_and_gains_act_on_linear_light():
    mesh = coloured(trimesh.creation.box(extents=[5.0, 5.0, 0.1]), (100, 100, 100))
    buffers = render([RenderObject(mesh, np.eye(3), np.array([0, 0, 2.0]), np.ones(3))], K, SIZE)
    config = dataclasses.replace(PLAIN, brightness=(1.44, 1.44), saturation=(0.5, 1.5))
    image = shade(buffers, [mesh], np.random.default_rng(0), config, ambient_only(1.0))
    assert (image == 120).all()  # sRGB 100 * sqrt(1.44)


def test_saturation_and_contrast_change_colours_as_configured():
    mesh = two_part_box()
    buffers = render([RenderObject(mesh, np.eye(3), np.array([0, 0, 3.0]), np.ones(3))], K, SIZE)
    hit = buffers.instance == 1
    plain = shade(buffers, [mesh], np.random.default_rng(0), PLAIN, ambient_only(1.0))
    grey_config = dataclasses.replace(PLAIN, saturation=(0.0, 0.0))
    grey = shade(buffers, [mesh], np.random.default_rng(0), grey_config, ambient_only(1.0))
    assert np.ptp(grey[hit], axis=1).max() <= 1 and np.ptp(plain[hit], axis=1).min() > 100
    flat_config = dataclasses.replace(PLAIN, contrast=(0.5, 0.5))
    flat = shade(buffers, [mesh], np.random.default_rng(0), flat_config, ambient_only(1.0))
    mean = plain.astype(float).mean()
    np.testing.assert_allclose(flat, mean + 0.5 * (plain - mean), atol=1.0)


def test_shade_needs_every_rendered_mesh():
    items, meshes = floor_and_box()
    buffers = render(items[:1], K, SIZE, background=items[1:])
    with pytest.raises(ValueError, match="meshes"):
        shade(buffers, meshes[:1], np.random.default_rng(0))


@pytest.mark.parametrize(
    "knobs",
    [
        {"ambient": (0.5, 0.2)},
        {"exposure": (-1.0, 1.0)},
        {"light_count": (0, 0)},
        {"point_light_probability": 1.5},
        {"texture_strength": (0.2, 1.0)},
        {"texture_kinds": ("marble",)},
        {"white_balance": 1.0},
        {"noise_std": (3.0, 1.0)},
    ],
)
def test_invalid_configs_raise(knobs):
    with pytest.raises(ValueError):
        ShadingConfig(**knobs)
