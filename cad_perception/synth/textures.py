"""Procedural albedo textures: noise, stripes and wood grain evaluated at surface points.

Points are rows (N, 3) in metres in a surface's own frame (`GeometryBuffers.local_points`), so a
texture sticks to its surface whatever the pose. A texture is a multiplicative albedo factor
1 + strength * (2 f - 1) with a pattern f in [0, 1], i.e. a factor in
[1 - strength, 1 + strength]. The noise is a sum of random plane waves over three octaves (cheap
to evaluate: a dot product and a sine per wave). Internally, points are processed as coordinate
planes (3, N).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEXTURE_KINDS = ("noise", "stripes", "wood")
"""noise: smooth random blotches; stripes: sinusoidal bands along `axis`; wood: rings about a
line along `axis`, warped by low-frequency noise."""

OCTAVES = (1.0, 1.0, 2.0, 2.0, 4.0, 4.0)
"""Frequency of each noise wave in cycles per period; a wave's amplitude is 1 / frequency."""

WOOD_WARP_OCTAVES = 2
"""Wood rings are warped by the noise of only the first (lowest-frequency) waves."""


@dataclass(frozen=True, eq=False)
class Texture:
    """One procedural texture.

    period: feature size in metres (noise blotch, stripe period, ring spacing); strength: the
    contrast, in [0, 1); axis (3,): a unit vector (stripe normal, wood grain direction);
    offset (3,): metres, shifts the pattern; waves (M, 3): the noise's wave vectors in radians
    per metre; phases (M,): their phases in radians.
    """

    kind: str
    period: float
    strength: float
    axis: np.ndarray
    offset: np.ndarray
    waves: np.ndarray
    phases: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in TEXTURE_KINDS:
            raise ValueError(f"unknown texture kind {self.kind!r}: expected one of {TEXTURE_KINDS}")
        if not self.period > 0 or not 0 <= self.strength < 1:
            raise ValueError(
                f"a texture needs period > 0 and 0 <= strength < 1, got {self.period}, "
                f"{self.strength}"
            )


def sample_textures(
    rng: np.random.Generator,
    count: int,
    kinds: Sequence[str],
    period: tuple[float, float],
    strength: tuple[float, float],
) -> list[Texture]:
    """`count` textures of kinds drawn uniformly from `kinds`, periods and strengths uniform in
    the given (low, high) ranges, and random axes, offsets (up to 20 periods) and noise waves."""
    kind_ids = rng.integers(len(kinds), size=count)
    periods = rng.uniform(*period, size=count)
    strengths = rng.uniform(*strength, size=count)
    directions = rng.normal(size=(count, len(OCTAVES) + 1, 3))
    directions /= np.linalg.norm(directions, axis=2, keepdims=True)
    offsets = rng.uniform(-20.0, 20.0, size=(count, 3)) * periods[:, None]
    waves = directions[:, :-1] * (2 * np.pi * np.array(OCTAVES))[:, None] / periods[:, None, None]
    phases = rng.uniform(0.0, 2 * np.pi, size=(count, len(OCTAVES)))
    return [
        Texture(
            kind=str(kinds[kind_ids[i]]),
            period=float(periods[i]),
            strength=float(strengths[i]),
            axis=directions[i, -1],
            offset=offsets[i],
            waves=waves[i],
            phases=phases[i],
        )
        for i in range(count)
    ]


def texture_factor(texture: Texture, points: np.ndarray) -> np.ndarray:
    """Albedo factors (N,) float32 of `texture` at surface points (N, 3) in metres."""
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    planes = _planes(points + texture.offset)
    cycles_per_metre = np.float32(1.0 / texture.period)
    if texture.kind == "noise":
        pattern = _noise(texture, planes)
    elif texture.kind == "stripes":
        pattern = 0.5 + 0.5 * np.sin(_dot(planes, texture.axis) * (2 * np.pi * cycles_per_metre))
    else:  # wood: rings about the line through -offset along the axis, warped by the noise
        along = _dot(planes, texture.axis)
        radius = np.sqrt(np.maximum(_dot(planes, planes) - along * along, 0.0))
        warp = _noise(texture, planes, octaves=WOOD_WARP_OCTAVES)
        pattern = ((radius * cycles_per_metre + warp) % 1.0) ** 3
    return (1.0 + texture.strength * (2.0 * pattern - 1.0)).astype(np.float32)


def wave_noise(texture: Texture, points: np.ndarray) -> np.ndarray:
    """Smooth noise (N,) float32 in [0, 1] at points (N, 3): 1/2 + 1/2 the amplitude-weighted
    mean of sin(w . p + phase) over the texture's waves."""
    return _noise(texture, _planes(points))


def _noise(texture: Texture, planes: np.ndarray, octaves: int = len(OCTAVES)) -> np.ndarray:
    """`wave_noise` at points given as coordinate planes (3, N), from the first `octaves`
    waves only."""
    total = np.zeros(planes.shape[1], dtype=np.float32)
    frequencies = OCTAVES[:octaves]
    for wave, phase, frequency in zip(texture.waves, texture.phases, frequencies, strict=False):
        total += np.sin(_dot(planes, wave) + np.float32(phase)) / np.float32(frequency)
    return 0.5 + total * np.float32(0.5 / sum(1.0 / f for f in frequencies))


def _planes(points: np.ndarray) -> np.ndarray:
    """Points (N, 3) as contiguous float32 coordinate planes (3, N): numpy runs arithmetic on
    whole planes several times faster than on the interleaved columns of (N, 3)."""
    return np.ascontiguousarray(points.T, dtype=np.float32)


def _dot(planes: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Dot products (N,) of planes (3, N) with a vector (3,) or other planes (3, N)."""
    other = np.asarray(other, dtype=np.float32)
    return planes[0] * other[0] + planes[1] * other[1] + planes[2] * other[2]
