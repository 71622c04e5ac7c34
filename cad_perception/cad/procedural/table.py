"""Tables: a round, square, rectangular or oval top on four legs (with an apron or not) or on
pedestals.

Symmetry about y: a round top on one pedestal with a disk foot is inf; a round top on four legs
or on a cross foot, and every square table, is rot4 (legs on the diagonals, equal x and z
extents); rectangular and oval tables are rot2.
"""

import math

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import (
    Color,
    Part,
    box,
    cylinder,
    ellipse,
    loft,
    prism,
    rectangle,
    superellipse,
)

SIZE_RANGE = ((0.5, 0.38, 0.5), (2.25, 0.82, 1.2))
"""(min, max) extents in metres (width x, height y, depth z)."""

SHAPES = ("round", "square", "rectangular", "oval")
LEG_STYLES = ("square", "round", "tapered")


def design(rng: np.random.Generator) -> Design:
    """A random table (see the module docstring)."""
    p = ParamSampler(rng)
    shape = p.choice("top_shape", SHAPES)
    if shape == "round":
        width = depth = p.uniform("diameter", 0.6, 1.2)
    elif shape == "square":
        width = depth = p.uniform("width", 0.5, 1.1)
    else:
        depth = p.uniform("depth", 0.6, 1.1)
        width = p.uniform("width", max(1.0, depth / 0.75), 2.2)
    height = p.uniform("height", 0.4, 0.78)
    top_thickness = p.uniform("top_thickness", 0.02, 0.06)
    base = p.choice("base", ("legs", "pedestal"))
    colors = pick_colors(
        rng,
        {
            "top": p.choice("top_material", ("wood", "plastic")),
            "base": p.choice("base_material", ("wood", "metal")),
        },
    )

    rounded = shape in ("round", "oval")
    outline = ellipse(width / 2, depth / 2) if rounded else rectangle(width, depth)
    under_top = height - top_thickness
    parts = [prism(outline, under_top, height, colors["top"])]
    if base == "legs":
        parts += _legs(p, width, depth, rounded, under_top, colors["base"])
        symmetry = "rot4" if shape in ("round", "square") else "rot2"
    elif shape in ("round", "square"):
        foot = p.choice("foot", ("disk", "cross"))
        parts += _pedestal(p, min(width, depth) / 2, foot, under_top, colors["base"])
        symmetry = "inf" if shape == "round" and foot == "disk" else "rot4"
    else:
        parts += _trestles(p, width, depth, under_top, colors["base"])
        symmetry = "rot2"
    return Design(parts, symmetry, p.params)


def _legs(
    p: ParamSampler, width: float, depth: float, rounded: bool, top: float, color: Color
) -> list[Part]:
    """Four legs on the diagonals of the top, with an apron joining them or not."""
    style = p.choice("leg_style", LEG_STYLES)
    thickness = p.uniform("leg_thickness", 0.035, 0.08)
    inset = p.uniform("leg_inset", 0.02, 0.1)
    # Leg axes lie on the rectangle (for a rounded top: the ellipse, at 45 deg) inset from the rim.
    half_x, half_z = width / 2 - inset - thickness / 2, depth / 2 - inset - thickness / 2
    scale = math.sqrt(0.5) if rounded else 1.0
    corners = [(sx * half_x * scale, sz * half_z * scale) for sx in (-1, 1) for sz in (-1, 1)]
    parts = [_leg(style, thickness, top, color).moved([x, 0.0, z]) for x, z in corners]
    if p.flag("apron"):
        apron_height = p.uniform("apron_height", 0.06, 0.12)
        apron = 0.02
        if rounded:
            outer = ellipse(half_x + apron / 2, half_z + apron / 2)
            inner = ellipse(half_x - apron / 2, half_z - apron / 2)
            y0 = top - apron_height
            parts.append(loft([outer, outer, inner, inner], [y0, top, top, y0], color, closed=True))
        else:
            y0 = top - apron_height
            parts += [
                box(
                    (-half_x, y0, sz * half_z - apron / 2),
                    (half_x, top, sz * half_z + apron / 2),
                    color,
                )
                for sz in (-1, 1)
            ] + [
                box(
                    (sx * half_x - apron / 2, y0, -half_z),
                    (sx * half_x + apron / 2, top, half_z),
                    color,
                )
                for sx in (-1, 1)
            ]
    return parts


def _leg(style: str, thickness: float, top: float, color: Color) -> Part:
    """One leg (on the y axis) from the floor to `top`."""
    if style == "round":
        return cylinder(thickness / 2, 0.0, top, color, segments=16)
    if style == "tapered":
        return prism(rectangle(thickness * 0.6, thickness * 0.6), 0.0, top, color, 1 / 0.6)
    return prism(rectangle(thickness, thickness), 0.0, top, color)


def _pedestal(p: ParamSampler, half_size: float, foot: str, top: float, color: Color) -> list[Part]:
    """A central column on a disk foot or on four feet in a cross along the diagonals."""
    column = p.uniform("column_radius", 0.04, 0.08)
    reach = p.uniform("foot_reach", 0.55, 0.9) * half_size
    foot_height = p.uniform("foot_height", 0.02, 0.05)
    parts = [cylinder(column, 0.0, top, color)]
    if foot == "disk":
        parts.append(cylinder(reach, 0.0, foot_height, color, top_radius=reach * 0.9))
    else:
        bar = prism(superellipse(reach, 0.03, 4.0), 0.0, foot_height, color)
        parts += [bar.rotated("y", math.pi / 4), bar.rotated("y", -math.pi / 4)]
    return parts


def _trestles(p: ParamSampler, width: float, depth: float, top: float, color: Color) -> list[Part]:
    """Two pedestals near the ends, each on a foot bar along z, joined by a stretcher."""
    inset = p.uniform("trestle_inset", 0.12, 0.3) * width / 2
    post = p.uniform("post_width", 0.05, 0.1)
    foot_length = p.uniform("foot_length", 0.6, 0.85) * depth
    x = width / 2 - inset
    parts = [box((-x, 0.15, -0.02), (x, 0.2, 0.02), color)]
    for sx in (-1, 1):
        cx = sx * x
        parts.append(box((cx - post / 2, 0.0, -post / 2), (cx + post / 2, top, post / 2), color))
        parts.append(
            box((cx - 0.03, 0.0, -foot_length / 2), (cx + 0.03, 0.05, foot_length / 2), color)
        )
    return parts
