"""Displays: a panel of a given diagonal and aspect ratio with a screen at the front and a
housing at the back, hung on a wall bracket or standing on a pedestal, two feet or an arm.

The screen faces +z and the housing and stand lie behind it, so displays are asymmetric (none).
"""

import math

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import Color, Part, box, cylinder, prism, superellipse

SIZE_RANGE = ((0.3, 0.2, 0.03), (1.45, 1.0, 0.36))
"""(min, max) extents in metres (width x, height y, depth z)."""

DIAGONALS = {"16:9": (0.5, 1.65), "16:10": (0.5, 0.8), "21:9": (0.6, 0.9), "4:3": (0.38, 0.55)}
"""Screen diagonal range in metres per aspect ratio."""

STANDS = ("wall", "pedestal", "feet", "arm")


def design(rng: np.random.Generator) -> Design:
    """A random display (see the module docstring)."""
    p = ParamSampler(rng)
    aspect = p.choice("aspect", tuple(DIAGONALS))
    diagonal = p.uniform("diagonal", *DIAGONALS[aspect])
    ratio_w, ratio_h = (int(v) for v in aspect.split(":"))
    ratio = ratio_w / ratio_h
    width, height = diagonal * ratio / math.hypot(ratio, 1), diagonal / math.hypot(ratio, 1)
    panel = p.uniform("panel_thickness", 0.01, 0.03)
    bezel = p.uniform("bezel", 0.004, 0.025)
    housing = p.uniform("housing_depth", 0.02, 0.06)
    housing_share = p.uniform("housing_share", 0.45, 0.75)
    stand = p.choice("stand", STANDS)
    colors = pick_colors(
        rng,
        {
            "screen": "glass",
            "stand": "metal",
            "body": p.choice("body_material", ("plastic", "metal")),
        },
    )

    if stand == "wall":
        bottom, stand_parts = 0.0, _wall_bracket(housing, height, colors["stand"])
    elif stand == "pedestal":
        bottom = p.uniform("stand_height", 0.04, 0.15)
        stand_parts = _pedestal(p, width, panel, housing, bottom + height / 2, colors["stand"])
    elif stand == "feet":
        bottom = p.uniform("stand_height", 0.03, 0.1)
        stand_parts = _feet(p, width, panel, housing, bottom, colors["stand"])
    else:
        bottom = p.uniform("stand_height", 0.1, 0.25)
        stand_parts = _arm(p, housing, bottom + height / 2, colors["stand"])

    # The panel's front face is the plane z = panel; the housing spans z in [-housing, 0].
    top = bottom + height
    parts = [
        box((-width / 2, bottom, 0.0), (width / 2, top, panel), colors["body"]),
        box(
            (-width / 2 + bezel, bottom + bezel, panel),
            (width / 2 - bezel, top - bezel, panel + 0.002),
            colors["screen"],
        ),
        box(
            (-width * housing_share / 2, bottom + height * (1 - housing_share) / 2, -housing),
            (width * housing_share / 2, top - height * (1 - housing_share) / 2, 0.001),
            colors["body"],
        ),
    ]
    return Design(parts + stand_parts, "none", p.params)


def _wall_bracket(housing: float, height: float, color: Color) -> list[Part]:
    """A flat plate behind the housing."""
    size = min(0.3, height * 0.4)
    return [
        box(
            (-size / 2, height / 2 - size / 2, -housing - 0.015),
            (size / 2, height / 2 + size / 2, -housing + 0.001),
            color,
        )
    ]


def _pedestal(
    p: ParamSampler, width: float, panel: float, housing: float, neck_top: float, color: Color
) -> list[Part]:
    """A neck behind the housing on a flat base centred under the display."""
    base_width = p.uniform("base_width", 0.16, 0.8 * min(width, 0.45))
    base_depth = p.uniform("base_depth", 0.14, 0.24)
    neck = 0.025
    base = prism(superellipse(base_width / 2, base_depth / 2, 4.0), 0.0, 0.015, color)
    return [
        base.moved([0.0, 0.0, (panel - housing - neck) / 2]),
        box((-0.035, 0.0, -housing - neck), (0.035, neck_top, -housing + 0.001), color),
    ]


def _feet(
    p: ParamSampler, width: float, panel: float, housing: float, bottom: float, color: Color
) -> list[Part]:
    """Two feet along z near the panel's ends, each with a post up into the panel."""
    spread = p.uniform("feet_spread", 0.55, 0.85) * width / 2
    length = p.uniform("feet_length", 0.15, 0.3)
    centre_z = (panel - housing) / 2
    parts = []
    for sx in (-1, 1):
        x = sx * spread
        parts.append(
            box(
                (x - 0.02, 0.0, centre_z - length / 2),
                (x + 0.02, 0.02, centre_z + length / 2),
                color,
            )
        )
        parts.append(
            box(
                (x - 0.015, 0.0, centre_z - 0.01),
                (x + 0.015, bottom + 0.05, centre_z + 0.01),
                color,
            )
        )
    return parts


def _arm(p: ParamSampler, housing: float, mount_height: float, color: Color) -> list[Part]:
    """A desk pole behind the display on a clamp block, with a horizontal arm to the housing."""
    reach = p.uniform("arm_reach", 0.1, 0.2)
    pole_z = -housing - reach
    return [
        box((-0.04, 0.0, pole_z - 0.04), (0.04, 0.06, pole_z + 0.04), color),
        cylinder(0.018, 0.0, mount_height + 0.03, color, z=pole_z),
        box(
            (-0.02, mount_height - 0.02, pole_z),
            (0.02, mount_height + 0.02, -housing + 0.001),
            color,
        ),
    ]
