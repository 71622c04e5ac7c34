"""Bathtubs: a rectangular or oval tub, its long side along x, either built in (a basin hanging
from a flat deck over a panelled enclosure) or freestanding (a tub narrowing downwards under a
rolled lip) on claw feet or a plinth; a central drain.

Every part is symmetric under a half turn about y (rot2).
"""

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import Color, Part, cylinder, loft, prism, superellipse

SIZE_RANGE = ((1.35, 0.42, 0.68), (1.95, 0.8, 1.0))
"""(min, max) extents in metres (width x, height y, depth z)."""

WALL = 0.025
"""Thickness of the tub's walls and floor."""


def design(rng: np.random.Generator) -> Design:
    """A random bathtub (see the module docstring)."""
    p = ParamSampler(rng)
    built_in = p.choice("mount", ("built_in", "freestanding")) == "built_in"
    if built_in:
        shape = p.record("shape", "rectangular")
    else:
        shape = p.choice("shape", ("rectangular", "oval"))
    length = p.uniform("length", 1.4, 1.85)
    width = p.uniform("width", 0.7, 0.95)
    height = p.uniform("height", *((0.45, 0.62) if built_in else (0.58, 0.78)))
    lift = 0.0 if built_in else p.uniform("lift", 0.08, 0.15)
    rim = p.uniform("rim_width", *((0.05, 0.12) if built_in else (0.03, 0.06)))
    floor = height - p.uniform("basin_depth", 0.32, height - lift - 0.06)
    taper = p.uniform("basin_taper", 0.75, 0.92)
    corner = 2.0 if shape == "oval" else p.uniform("corner_exponent", 3.0, 6.0)
    supports = ("plastic", "wood") if built_in else ("metal", "wood")
    colors = pick_colors(
        rng, {"tub": "ceramic", "drain": "metal", "support": p.choice("support_material", supports)}
    )

    a, b = length / 2, width / 2  # half length and half width of the tub

    def basin(scale: float, grow: float) -> np.ndarray:
        """The basin's top outline scaled by `scale`, then grown outwards by `grow` metres."""
        return superellipse((a - rim) * scale + grow, (b - rim) * scale + grow, corner)

    inner_top, inner_floor = basin(1.0, 0.0), basin(taper, 0.0)
    if built_in:
        deck = height - 0.03
        outer = superellipse(a, b, 16.0)
        under_rim = basin(1.0, WALL)
        parts = [
            loft(
                [basin(taper, WALL), under_rim, outer, outer, inner_top, inner_floor],
                [floor - WALL, deck, deck, height, height, floor],
                colors["tub"],
            ),
            loft(
                [outer * 0.995, outer * 0.995, under_rim, under_rim],
                [0.0, deck, deck, 0.0],
                colors["support"],
                closed=True,
            ),
        ]
    else:
        lip = superellipse(a, b, corner)
        body = superellipse(a - 0.015, b - 0.015, corner)
        bottom = basin(taper, WALL)
        parts = [
            loft(
                [bottom, body, inner_top, inner_floor],
                [lift, height - 0.03, height, floor],
                colors["tub"],
            ),
            loft(
                [lip, lip, inner_top, inner_top],
                [height - 0.04, height, height, height - 0.04],
                colors["tub"],
                closed=True,
            ),
        ]
        parts += _supports(
            p.choice("support", ("clawfoot", "plinth")), bottom, lift, colors["support"]
        )
    parts.append(cylinder(0.03, floor - 0.01, floor + 0.004, colors["drain"]))
    return Design(parts, "rot2", p.params)


def _supports(style: str, bottom: np.ndarray, lift: float, color: Color) -> list[Part]:
    """Four claw feet under the tub's bottom outline (N, 2), or a plinth under its middle."""
    if style == "plinth":
        return [prism(bottom * 0.8, 0.0, lift + 0.02, color)]
    half_x, half_z = bottom[:, 0].max(), bottom[:, 1].max()
    foot = cylinder(0.035, 0.0, lift + 0.03, color, top_radius=0.05, segments=16)
    return [
        foot.moved([sx * half_x * 0.7, 0.0, sz * half_z * 0.55]) for sx in (-1, 1) for sz in (-1, 1)
    ]
