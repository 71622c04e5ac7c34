"""Material palettes and the sampling of one distinct colour per part role."""

from collections.abc import Mapping

import numpy as np

from cad_perception.cad.procedural.parts import Color

PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "wood": (
        (196, 160, 110), (104, 71, 46), (150, 84, 52), (222, 190, 140), (160, 112, 62),
        (62, 46, 36), (236, 232, 222),
    ),
    "metal": (
        (170, 172, 176), (72, 74, 78), (32, 32, 34), (181, 150, 82), (212, 214, 218),
        (120, 96, 70),
    ),
    "fabric": (
        (128, 128, 132), (200, 186, 160), (44, 58, 92), (84, 112, 84), (200, 160, 64),
        (170, 92, 72), (60, 60, 66), (40, 112, 116), (110, 72, 48),
    ),
    "paint": (
        (238, 236, 230), (204, 204, 200), (120, 124, 128), (52, 54, 58), (150, 168, 146),
        (52, 70, 100), (196, 170, 140),
    ),
    "bedding": (
        (244, 244, 240), (228, 214, 180), (170, 174, 182), (150, 180, 220), (220, 170, 176),
        (170, 196, 160),
    ),
    "plastic": (
        (240, 240, 240), (26, 26, 28), (150, 150, 154), (190, 44, 40), (44, 92, 170),
        (62, 140, 82), (230, 190, 52),
    ),
    "ceramic": ((246, 246, 242), (238, 232, 218), (214, 218, 220)),
    "glass": ((16, 20, 30), (34, 42, 64)),
}  # fmt: skip
"""Base RGB colours per material; sampled colours vary their brightness by up to 8%."""

MIN_COLOR_DISTANCE = 40.0
"""Minimum RGB distance between the colours of two roles of one model."""

_MAX_DRAWS = 64


def pick_colors(rng: np.random.Generator, materials: Mapping[str, str]) -> dict[str, Color]:
    """One RGBA colour per role, drawn from the role's material palette (role -> material).

    Colours of different roles differ by at least MIN_COLOR_DISTANCE in RGB, so the parts of a
    model stay distinguishable. Roles of the smallest palettes draw first, as they have the
    fewest colours to choose from; the draw is deterministic given the generator's state.
    Raises ValueError for an unknown material or when no distinct colour can be found.
    """
    unknown = sorted(set(materials.values()) - set(PALETTES))
    if unknown:
        raise ValueError(f"unknown materials {unknown}: expected some of {sorted(PALETTES)}")
    picked: dict[str, np.ndarray] = {}
    for role in sorted(materials, key=lambda r: len(PALETTES[materials[r]])):
        palette = np.array(PALETTES[materials[role]], dtype=np.float64)
        for _ in range(_MAX_DRAWS):
            base = palette[rng.integers(len(palette))]
            rgb = np.clip(np.round(base * rng.uniform(0.92, 1.08)), 0, 255)
            if all(np.linalg.norm(rgb - other) >= MIN_COLOR_DISTANCE for other in picked.values()):
                break
        else:
            raise ValueError(f"no {materials[role]} colour for role {role!r} is distinct enough")
        picked[role] = rgb
    return {role: (*(int(v) for v in picked[role]), 255) for role in materials}
