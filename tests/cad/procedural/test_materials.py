"""Colour sampling: palette colours, distinct per role, deterministic."""

import numpy as np
import pytest

from cad_perception.cad.procedural.materials import MIN_COLOR_DISTANCE, PALETTES, pick_colors

ROLES = {"frame": "wood", "seat": "fabric", "legs": "wood", "feet": "metal", "screen": "glass"}


def test_colors_come_from_their_palettes_with_a_small_brightness_change():
    for seed in range(20):
        colors = pick_colors(np.random.default_rng(seed), ROLES)
        assert list(colors) == list(ROLES)
        for role, (r, g, b, a) in colors.items():
            assert a == 255
            assert all(isinstance(v, int) and 0 <= v <= 255 for v in (r, g, b))
            base = np.array(PALETTES[ROLES[role]], dtype=np.float64)  # (K, 3)
            # Some base colour, scaled by a factor in [0.92, 1.08], gives this colour (+- rounding).
            factors = np.linspace(0.92, 1.08, 161)
            candidates = base[:, None, :] * factors[None, :, None]  # (K, 161, 3)
            assert np.abs(candidates - [r, g, b]).max(axis=-1).min() <= 1.0


def test_roles_get_pairwise_distinct_colors():
    for seed in range(50):
        colors = pick_colors(np.random.default_rng(seed), ROLES)
        rgb = np.array([c[:3] for c in colors.values()], dtype=np.float64)
        distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
        assert distances[np.triu_indices(len(rgb), 1)].min() >= MIN_COLOR_DISTANCE - 1e-9


def test_same_generator_state_gives_same_colors():
    first = pick_colors(np.random.default_rng(7), ROLES)
    assert pick_colors(np.random.default_rng(7), ROLES) == first
    assert any(pick_colors(np.random.default_rng(s), ROLES) != first for s in range(8, 12))


def test_unknown_material_is_rejected():
    with pytest.raises(ValueError, match="unknown materials"):
        pick_colors(np.random.default_rng(0), {"frame": "unobtainium"})


def test_impossible_distinct_roles_raise():
    # Eight roles cannot all be 40 apart within the three close ceramic whites.
    with pytest.raises(ValueError, match="distinct"):
        pick_colors(np.random.default_rng(0), {f"r{k}": "ceramic" for k in range(8)})
