"""Shaded RGB images from geometry buffers: part colours, procedural textures, random lights and
camera effects.

Vectors are rows (N, 3) in the camera frame (OpenCV optical: x right, y down, z forward),
metres; internally, per-pixel vectors and colours are processed as planes (3, H W).
A pixel's linear colour is gains * albedo * (ambient + sum over lights of colour *
max(0, n . l) * falloff), with sRGB approximated by gamma 2 (linear = srgb^2) and the gains the
camera's exposure and white balance; the encoded image is then blurred, given sensor noise and
a contrast change. The albedo is the hit face's colour (a mesh without colours gets one random
colour; all colours get a random saturation change) times the texture factor of the face's part
(the faces of one colour of one mesh); pixels that hit nothing get a random flat colour. No
shadows.
Every random draw comes from the numpy Generator passed in, in an order that depends only on the
meshes and the config (not on what is visible), so a seed determines the image.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import trimesh
from scipy.ndimage import gaussian_filter

from cad_perception.synth.renderer import GeometryBuffers
from cad_perception.synth.textures import (
    TEXTURE_KINDS,
    Texture,
    sample_textures,
    texture_factor,
)

MIN_BLUR_SIGMA = 0.2
"""Blur standard deviations (pixels) below this leave the image sharp."""

Range = tuple[float, float]
"""(low, high) of a uniform draw; low == high fixes the value."""


@dataclass(frozen=True, kw_only=True)
class ShadingConfig:
    """The appearance knobs; every value is drawn once per image, uniformly in its range."""

    exposure: Range = (0.75, 1.1)
    """Linear irradiance of a surface facing every light (at the scene centre for point lights):
    ambient plus all lights; 1 shows a white albedo at full white."""
    ambient: Range = (0.15, 0.45)
    """Fraction of the exposure that is ambient light."""
    light_count: tuple[int, int] = (1, 3)
    """Number of lights (inclusive range)."""
    light_weight: Range = (0.3, 1.0)
    """Relative intensity of a light; the lights share the rest of the exposure in proportion."""
    point_light_probability: float = 0.4
    """Chance that a light is a point light, else directional."""
    light_tint: float = 0.1
    """Largest relative deviation of a light's colour channels from white."""
    point_light_offset: float = 2.0
    """Point lights lie up to this far (metres) from the camera along x and z, above it in y."""
    texture_probability: float = 0.7
    """Chance that a part (the faces of one colour of one mesh) gets a texture."""
    texture_kinds: tuple[str, ...] = ("noise", "stripes", "wood")
    texture_period: Range = (0.02, 0.3)
    """Texture feature size in metres."""
    texture_strength: Range = (0.05, 0.35)
    void_brightness: Range = (0.0, 0.8)
    """Brightness of the random flat colour of pixels that hit nothing."""
    brightness: Range = (0.8, 1.2)
    """Camera gain on linear light (exposure)."""
    white_balance: float = 0.08
    """Largest relative deviation of a colour channel's gain on linear light."""
    saturation: Range = (0.8, 1.2)
    """Gain of each surface colour's difference from its own grey (0 gives grey surfaces)."""
    contrast: Range = (0.85, 1.15)
    """Gain of the encoded image about its mean."""
    blur_sigma: Range = (0.0, 0.7)
    """Gaussian blur standard deviation in pixels (below MIN_BLUR_SIGMA, no blur)."""
    noise_std: Range = (0.0, 3.0)
    """Sensor noise standard deviation in 8-bit levels."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.type in (Range, tuple[int, int]):
                low, high = getattr(self, field.name)
                if not 0 <= low <= high:
                    raise ValueError(
                        f"{field.name} must be a range 0 <= low <= high, got {(low, high)}"
                    )
        for name in ("point_light_probability", "texture_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.light_count[1] < 1 or self.light_weight[1] <= 0 or self.ambient[1] > 1:
            raise ValueError(
                "light_count and light_weight must allow a light and ambient must stay within "
                f"[0, 1], got {self.light_count}, {self.light_weight}, {self.ambient}"
            )
        if self.texture_strength[1] >= 1 or self.texture_period[0] <= 0:
            raise ValueError("texture_strength must stay below 1 and texture_period above 0")
        if not self.texture_kinds or not set(self.texture_kinds) <= set(TEXTURE_KINDS):
            raise ValueError(f"texture_kinds must be some of {TEXTURE_KINDS}")
        if not 0 <= self.light_tint < 1 or not 0 <= self.white_balance < 1:
            raise ValueError("light_tint and white_balance must lie in [0, 1)")
        if self.point_light_offset < 0:
            raise ValueError(f"point_light_offset must be >= 0, got {self.point_light_offset}")


@dataclass(frozen=True, eq=False)
class Lighting:
    """Lights in the camera frame; colours are linear RGB irradiances (3,)."""

    ambient: np.ndarray
    """(3,) ambient irradiance."""
    directions: np.ndarray
    """(D, 3) unit vectors pointing towards the directional lights."""
    directional_colors: np.ndarray
    """(D, 3) irradiance of each directional light on a surface facing it."""
    positions: np.ndarray
    """(P, 3) point light positions, metres."""
    point_colors: np.ndarray
    """(P, 3) irradiance of each point light on a surface facing it at distance point_ranges."""
    point_ranges: np.ndarray
    """(P,) reference distances, metres: the irradiance falls off as (range / distance)^2."""


def sample_lighting(
    rng: np.random.Generator, config: ShadingConfig, scene_centre: np.ndarray
) -> Lighting:
    """Random lights for a scene centred at scene_centre (3,) (camera frame, metres).

    Directional lights shine from the camera's side of the scene and from above (their
    direction towards the light has z <= 0 and y <= 0). Point lights sit near the camera; their
    intensity is the one they have at the scene centre.
    """
    exposure = rng.uniform(*config.exposure)
    ambient_fraction = rng.uniform(*config.ambient)
    count = int(rng.integers(config.light_count[0], config.light_count[1] + 1))
    is_point = rng.random(count) < config.point_light_probability
    weights = rng.uniform(*config.light_weight, size=(count, 1))
    weights *= (1 - ambient_fraction) * exposure / max(weights.sum(), 1e-12)
    colors = weights * rng.uniform(1 - config.light_tint, 1 + config.light_tint, size=(count, 3))
    directions = rng.normal(size=(count, 3))
    directions[:, 1:] = -np.abs(directions[:, 1:])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    offset = config.point_light_offset
    positions = rng.uniform([-offset, -offset, -offset / 2], [offset, 0.0, offset], (count, 3))
    ambient = (
        ambient_fraction
        * exposure
        * rng.uniform(1 - config.light_tint, 1 + config.light_tint, size=3)
    )
    return Lighting(
        ambient=ambient,
        directions=directions[~is_point],
        directional_colors=colors[~is_point],
        positions=positions[is_point],
        point_colors=colors[is_point],
        point_ranges=np.linalg.norm(positions[is_point] - scene_centre, axis=1),
    )


def irradiance(normals: np.ndarray, points: np.ndarray, lighting: Lighting) -> np.ndarray:
    """Lambertian irradiance (N, 3) float32 at points (N, 3) with unit normals (N, 3)."""
    return _irradiance(_planes(normals), _planes(points), lighting).T


def _irradiance(normals: np.ndarray, points: np.ndarray, lighting: Lighting) -> np.ndarray:
    """`irradiance` (3, N) of normals and points given as planes (3, N)."""
    total = np.empty(normals.shape, dtype=np.float32)
    total[:] = lighting.ambient[:, None]
    for direction, color in zip(lighting.directions, lighting.directional_colors, strict=True):
        cosines = np.maximum(_dot(normals, direction), 0.0)
        total += cosines * color.astype(np.float32)[:, None]
    for position, color, reach in zip(
        lighting.positions, lighting.point_colors, lighting.point_ranges, strict=True
    ):
        to_light = position.astype(np.float32)[:, None] - points
        squared = np.maximum(_dot(to_light, to_light), 1e-4)
        cosines = np.maximum(_dot(normals, to_light), 0.0) / np.sqrt(squared)
        total += cosines * (np.float32(reach**2) / squared) * color.astype(np.float32)[:, None]
    return total


def face_colors(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """(F, 3) uint8 sRGB colour of each face, or None when the mesh defines no colours."""
    if mesh.visual.kind not in ("face", "vertex"):
        return None
    return np.asarray(mesh.visual.face_colors, dtype=np.uint8)[:, :3]


def shade(
    buffers: GeometryBuffers,
    meshes: Sequence[trimesh.Trimesh],
    rng: np.random.Generator,
    config: ShadingConfig = ShadingConfig(),
    lighting: Lighting | None = None,
) -> np.ndarray:
    """A shaded RGB image (H, W, 3) uint8 of the rendered buffers.

    `meshes` are the rendered meshes in render order (objects, then background), as indexed by
    buffers.mesh_ids. The lights are `lighting` when given, else drawn with `sample_lighting`.
    Raises ValueError when the buffers index a mesh that is not given.
    """
    if buffers.mesh_ids.max(initial=-1) >= len(meshes):
        raise ValueError(
            f"the buffers hit mesh {buffers.mesh_ids.max()} but only {len(meshes)} meshes are given"
        )
    face_srgb, face_parts = _face_tables(meshes, rng)
    textures = _sample_part_textures(rng, config, int(face_parts.max()) + 1)
    if lighting is None:
        lighting = sample_lighting(rng, config, _mean_hit_point(buffers))
    void = (rng.random(3) * rng.uniform(*config.void_brightness)).astype(np.float32)
    camera = _sample_camera(rng, config)

    face_albedo = _saturate(face_srgb, camera.saturation) ** 2  # linear
    albedo = _textured_albedo(buffers, meshes, face_albedo, face_parts, textures)
    light = _irradiance(_planes(buffers.normals), _planes(buffers.points), lighting)
    radiance = albedo * light
    radiance *= camera.gains[:, None]
    image = np.sqrt(np.clip(radiance, 0.0, 1.0)).reshape(3, *buffers.depth.shape)  # gamma 2
    image[:, buffers.mesh_ids < 0] = void[:, None]
    return _camera_effects(image, camera, rng)


class _Camera(NamedTuple):
    """The camera's effects on one image."""

    gains: np.ndarray
    """(3,) float32 gains on linear light: brightness times white balance."""
    saturation: float
    contrast: float
    blur_sigma: float
    noise_std: float
    """8-bit levels."""


def _sample_camera(rng: np.random.Generator, config: ShadingConfig) -> _Camera:
    gains = rng.uniform(*config.brightness) * rng.uniform(
        1 - config.white_balance, 1 + config.white_balance, size=3
    )
    return _Camera(
        gains=gains.astype(np.float32),
        saturation=float(rng.uniform(*config.saturation)),
        contrast=float(rng.uniform(*config.contrast)),
        blur_sigma=float(rng.uniform(*config.blur_sigma)),
        noise_std=float(rng.uniform(*config.noise_std)),
    )


def _saturate(colors: np.ndarray, saturation: float) -> np.ndarray:
    """Colours (N, 3) moved away from (saturation > 1) or towards (< 1) their own grey."""
    grey = colors.mean(axis=1, keepdims=True)
    return np.clip(grey + saturation * (colors - grey), 0.0, 1.0)


def _textured_albedo(
    buffers: GeometryBuffers,
    meshes: Sequence[trimesh.Trimesh],
    face_albedo: np.ndarray,
    face_parts: np.ndarray,
    textures: Sequence[Texture | None],
) -> np.ndarray:
    """Linear albedo planes (3, H W) float32: each pixel's face albedo times its part's
    texture factor; 0 where nothing is hit."""
    # The face tables end with a "no hit" row, picked by face index -1.
    face_offsets = np.cumsum([0] + [len(mesh.faces) for mesh in meshes])
    face_offsets[-1] = 0
    faces = np.take(face_offsets, buffers.mesh_ids) + buffers.face_ids  # (H, W)
    albedo = np.take(np.ascontiguousarray(face_albedo.T), faces.reshape(-1), axis=1)
    parts = np.take(face_parts, faces).reshape(-1)
    local_points = _planes(buffers.local_points)
    factors = np.ones(len(parts), dtype=np.float32)
    for part in np.flatnonzero(np.bincount(parts + 1, minlength=len(textures) + 1)[1:]):
        if textures[part] is not None:
            pixels = np.flatnonzero(parts == part)
            factors[pixels] = texture_factor(textures[part], local_points[:, pixels].T)
    albedo *= factors
    return albedo


def _mean_hit_point(buffers: GeometryBuffers) -> np.ndarray:
    """(3,) mean camera point of the hit pixels, estimated on every 4th row and column; 1 m
    ahead of the camera when none is hit there."""
    points = buffers.points[::4, ::4]
    hit_count = np.count_nonzero(buffers.mesh_ids[::4, ::4] >= 0)
    if hit_count == 0:
        return np.array([0.0, 0.0, 1.0])
    return points.reshape(-1, 3).sum(axis=0, dtype=np.float64) / hit_count


def _face_tables(
    meshes: Sequence[trimesh.Trimesh], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """sRGB colour in [0, 1] (F + 1, 3) float32 and part id (F + 1,) of the F faces of all
    meshes (concatenated in order), followed by a "no hit" row (colour 0, part -1).

    A part is the faces of one colour of one mesh; a mesh without colours gets one random
    colour.
    """
    colors = []
    for mesh in meshes:
        mesh_colors = face_colors(mesh)
        if mesh_colors is None:
            mesh_colors = np.tile(rng.integers(40, 231, size=3), (len(mesh.faces), 1))
        colors.append(mesh_colors.astype(np.int64))
    if not colors:
        return np.zeros((1, 3), dtype=np.float32), np.array([-1])
    mesh_of_face = np.repeat(np.arange(len(meshes)), [len(mesh.faces) for mesh in meshes])
    rgb = np.concatenate(colors)
    keys = (mesh_of_face << 24) | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    _, parts = np.unique(keys, return_inverse=True)
    srgb = np.concatenate([rgb, np.zeros((1, 3), dtype=np.int64)]).astype(np.float32) / 255.0
    return srgb, np.concatenate([parts.reshape(-1), [-1]])


def _sample_part_textures(
    rng: np.random.Generator, config: ShadingConfig, part_count: int
) -> list[Texture | None]:
    """One texture per part, None for an untextured part."""
    textured = rng.random(part_count) < config.texture_probability
    textures = sample_textures(
        rng, part_count, config.texture_kinds, config.texture_period, config.texture_strength
    )
    return [texture if keep else None for texture, keep in zip(textures, textured, strict=True)]


def _camera_effects(image: np.ndarray, camera: _Camera, rng: np.random.Generator) -> np.ndarray:
    """Blur, sensor noise and contrast of float sRGB planes (3, H, W) -> image (H, W, 3) uint8.

    The noise is uniformly distributed with the camera's standard deviation: after 8-bit
    quantisation it looks like Gaussian noise at these levels and is three times cheaper to draw.
    The contrast scales the image about its mean, folded into the quantisation.
    """
    if camera.blur_sigma >= MIN_BLUR_SIGMA:
        sigma = camera.blur_sigma
        image = gaussian_filter(image, sigma=(0.0, sigma, sigma), mode="nearest", truncate=3.0)
    if camera.noise_std > 0:
        uniform = rng.random(image.shape, dtype=np.float32) - np.float32(0.5)
        image += np.float32(camera.noise_std / 255.0 * np.sqrt(12.0)) * uniform
    scale = 255.0 * camera.contrast
    shift = 255.0 * (1.0 - camera.contrast) * float(image.mean()) + 0.5  # + 0.5: rounds
    planes = np.clip(image * np.float32(scale) + np.float32(shift), 0.0, 255.0).astype(np.uint8)
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


def _planes(vectors: np.ndarray) -> np.ndarray:
    """Vectors (..., 3) as contiguous float32 planes (3, N): numpy runs arithmetic on whole
    planes several times faster than on the interleaved columns of (N, 3)."""
    return np.ascontiguousarray(vectors.reshape(-1, 3).T, dtype=np.float32)


def _dot(planes: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Dot products (N,) of planes (3, N) with a vector (3,) or other planes (3, N)."""
    other = np.asarray(other, dtype=np.float32)
    return planes[0] * other[0] + planes[1] * other[1] + planes[2] * other[2]
