import dataclasses

import numpy as np
import pytest

from cad_perception.synth.textures import (
    OCTAVES,
    TEXTURE_KINDS,
    Texture,
    sample_textures,
    texture_factor,
    wave_noise,
)


def texture(kind: str, seed: int = 0, strength: float = 0.3, period: float = 0.1) -> Texture:
    sampled = sample_textures(np.random.default_rng(seed), 1, [kind], (period, period), (0.1, 0.1))
    return dataclasses.replace(sampled[0], strength=strength)


def random_points(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(count, 3))


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_factors_stay_within_the_strength_and_vary(kind):
    for seed in range(5):
        factors = texture_factor(texture(kind, seed, strength=0.3), random_points(2000, seed))
        assert factors.shape == (2000,) and factors.dtype == np.float32
        assert factors.min() >= 0.7 - 1e-6 and factors.max() <= 1.3 + 1e-6
        assert factors.std() > 0.02


def test_stripes_repeat_every_period_along_their_axis_and_are_constant_across_it():
    stripes = texture("stripes", period=0.1)
    points = random_points(500)
    across = np.cross(stripes.axis, [0.3, 0.5, 0.7])
    base = texture_factor(stripes, points)
    np.testing.assert_allclose(
        texture_factor(stripes, points + 0.1 * stripes.axis), base, atol=1e-4
    )
    np.testing.assert_allclose(texture_factor(stripes, points + across), base, atol=1e-4)
    assert np.abs(texture_factor(stripes, points + 0.05 * stripes.axis) - base).max() > 0.3


def test_noise_is_smooth_below_its_period_and_varies_over_it():
    noise = texture("noise", period=0.2)
    points = random_points(1000)
    step = np.random.default_rng(2).normal(size=(1000, 3))
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    base = wave_noise(noise, points.astype(np.float32))
    assert base.min() >= 0.0 and base.max() <= 1.0
    nearby = wave_noise(noise, (points + 0.002 * step).astype(np.float32))
    far = wave_noise(noise, (points + 0.2 * step).astype(np.float32))
    assert np.abs(nearby - base).max() < 0.05
    assert np.abs(far - base).mean() > 5 * np.abs(nearby - base).mean()


def test_sampling_is_deterministic_for_a_seed_and_covers_the_ranges():
    def draw(seed: int) -> list[Texture]:
        rng = np.random.default_rng(seed)
        return sample_textures(rng, 60, TEXTURE_KINDS, (0.02, 0.3), (0.05, 0.35))

    points = random_points(100)
    first, again, other = draw(3), draw(3), draw(4)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(texture_factor(a, points), texture_factor(b, points))
        assert not np.array_equal(texture_factor(a, points), texture_factor(c, points))
        assert 0.02 <= a.period <= 0.3 and 0.05 <= a.strength <= 0.35
        np.testing.assert_allclose(np.linalg.norm(a.axis), 1.0)
        np.testing.assert_allclose(
            np.linalg.norm(a.waves, axis=1) * a.period / (2 * np.pi), OCTAVES
        )
    assert {texture.kind for texture in first} == set(TEXTURE_KINDS)


def test_invalid_textures_and_points_raise():
    valid = texture("wood")
    with pytest.raises(ValueError, match="kind"):
        dataclasses.replace(valid, kind="marble")
    with pytest.raises(ValueError, match="period"):
        dataclasses.replace(valid, period=0.0)
    with pytest.raises(ValueError, match="strength"):
        dataclasses.replace(valid, strength=1.0)
    with pytest.raises(ValueError, match="points"):
        texture_factor(valid, np.zeros((4, 2)))
