"""Sofas: one to four seat cushions on a frame, a back with or without back cushions, no arms,
box arms or rounded arms, on legs or on a plinth.

The back lies at -z, so sofas are asymmetric (none).
"""

import math

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import Color, Part, box, cylinder

SIZE_RANGE = ((0.55, 0.65, 0.75), (3.25, 1.0, 1.05))
"""(min, max) extents in metres (width x, height y, depth z)."""

ARM_STYLES = ("none", "box", "rounded")
CUSHION_GAP = 0.01


def design(rng: np.random.Generator) -> Design:
    """A random sofa (see the module docstring)."""
    p = ParamSampler(rng)
    seats = p.integer("seat_count", 1, 4)
    seat_width = p.uniform("seat_width", 0.55, 0.7)
    depth = p.uniform("depth", 0.8, 1.0)
    seat_top = p.uniform("seat_height", 0.38, 0.46)
    cushion = p.uniform("cushion_thickness", 0.1, 0.18)
    back_top = p.uniform("back_height", 0.7, 0.95)
    back_depth = p.uniform("back_depth", 0.15, 0.25)
    arm_style = p.choice("arm_style", ARM_STYLES)
    base = p.choice("base", ("legs", "plinth"))
    colors = pick_colors(
        rng,
        {
            "body": "fabric",
            "cushions": "fabric",
            "legs": p.choice("leg_material", ("wood", "metal")),
        },
    )

    frame_bottom = p.uniform("leg_height", 0.05, 0.15) if base == "legs" else 0.0
    frame_top = seat_top - cushion
    inner = seats * seat_width / 2  # half-width between the arms
    z0, z1 = -depth / 2, depth / 2
    parts = [
        box((-inner, frame_bottom, z0), (inner, frame_top, z1), colors["body"]),
        box((-inner, frame_bottom, z0), (inner, back_top, z0 + back_depth), colors["body"]),
    ]
    seat_z0 = z0 + back_depth
    if p.flag("back_cushions"):
        thickness = p.uniform("back_cushion_thickness", 0.1, 0.18)
        parts += _row(
            seats,
            inner,
            seat_top,
            back_top - 0.04,
            seat_z0,
            seat_z0 + thickness,
            colors["cushions"],
        )
    parts += _row(seats, inner, frame_top, seat_top, seat_z0, z1, colors["cushions"])
    outer = inner
    if arm_style != "none":
        arm_width = p.uniform("arm_width", 0.1, 0.22)
        arm_top = p.uniform("arm_height", 0.5, 0.68)
        parts += _arms(arm_style, inner, arm_width, frame_bottom, arm_top, z0, z1, colors["body"])
        outer = inner + arm_width
    if base == "legs":
        parts += _legs(seats, outer, frame_bottom, z0, z1, colors["legs"])
    return Design(parts, "none", p.params)


def _row(
    count: int, half_width: float, y0: float, y1: float, z0: float, z1: float, color: Color
) -> list[Part]:
    """`count` equal cushions side by side across [-half_width, half_width]."""
    step = 2 * half_width / count
    return [
        box(
            (-half_width + k * step + CUSHION_GAP / 2, y0, z0),
            (-half_width + (k + 1) * step - CUSHION_GAP / 2, y1, z1),
            color,
        )
        for k in range(count)
    ]


def _arms(
    style: str,
    inner: float,
    width: float,
    bottom: float,
    top: float,
    z0: float,
    z1: float,
    color: Color,
) -> list[Part]:
    """Two arms outside [-inner, inner]; rounded arms end in a half-buried roll along z."""
    parts = []
    for sx in (-1, 1):
        x0, x1 = sorted((sx * inner, sx * (inner + width)))
        if style == "box":
            parts.append(box((x0, bottom, z0), (x1, top, z1), color))
            continue
        radius = width / 2
        parts.append(box((x0, bottom, z0), (x1, top - radius, z1), color))
        # A vertical cylinder over y in [z0, z1], turned about x so that it spans z in [z0, z1].
        roll = cylinder(radius, z0, z1, color).rotated("x", math.pi / 2)
        parts.append(roll.moved([(x0 + x1) / 2, top - radius, 0.0]))
    return parts


def _legs(
    seats: int, half_width: float, bottom: float, z0: float, z1: float, color: Color
) -> list[Part]:
    """Short tapered legs at the corners, plus middle ones under long sofas."""
    inset = 0.05
    xs = [-half_width + inset, half_width - inset] + ([0.0] if seats >= 3 else [])
    return [
        cylinder(0.025, 0.0, bottom + 0.01, color, x, z, top_radius=0.03, segments=16)
        for x in xs
        for z in (z0 + inset, z1 - inset)
    ]
