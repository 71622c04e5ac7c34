"""Cabinets: a carcass on a recessed plinth or on legs, rows of drawers above columns of doors,
a top that may overhang, bar or knob handles.

The fronts and handles stand out of the carcass at +z, so cabinets are asymmetric (none).
"""

import math

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import Color, Part, box, cylinder

SIZE_RANGE = ((0.4, 0.45, 0.35), (1.65, 2.05, 0.7))
"""(min, max) extents in metres (width x, height y, depth z)."""

GAP = 0.003
"""Gap between neighbouring fronts (doors, drawers)."""

MIN_DRAWER = 0.12
"""Least height of a drawer front."""


def design(rng: np.random.Generator) -> Design:
    """A random cabinet (see the module docstring)."""
    p = ParamSampler(rng)
    width = p.uniform("width", 0.4, 1.6)
    height = p.uniform("height", 0.5, 2.0)
    carcass_depth = p.uniform("carcass_depth", 0.33, 0.6)
    base = p.choice("base", ("plinth", "legs"))
    base_height = p.uniform("base_height", 0.05, 0.12 if base == "plinth" else 0.2)
    top_thickness = p.uniform("top_thickness", 0.015, 0.04)
    overhang = p.uniform("top_overhang", 0.0, 0.03)
    front_height = height - top_thickness - base_height
    doors = p.integer("door_count", 0, min(3, max(1, math.floor(width / 0.3))))
    # Drawers at least MIN_DRAWER tall, in at most half the front when there are doors below.
    max_rows = min(5, max(1, math.floor(front_height * (0.5 if doors else 1.0) / MIN_DRAWER)))
    drawers = p.integer("drawer_rows", 0 if doors else 1, max_rows)
    handle = p.choice("handle", ("bar", "knob"))
    reach = p.uniform("handle_reach", 0.025, 0.04)
    colors = pick_colors(
        rng,
        {
            "body": p.choice("body_material", ("wood", "paint")),
            "front": p.choice("front_material", ("wood", "paint")),
            "handle": "metal",
            "legs": "metal",
        },
    )

    x = width / 2 - overhang
    front_z = carcass_depth  # the carcass spans z in [0, carcass_depth]; fronts lie in front
    front = 0.02
    body_top = height - top_thickness
    parts = [
        box((-x, base_height, 0.0), (x, body_top, carcass_depth), colors["body"]),
        box(
            (-width / 2, body_top, 0.0),
            (width / 2, height, carcass_depth + front + overhang),
            colors["body"],
        ),
    ]
    if base == "plinth":
        recess = p.uniform("plinth_recess", 0.02, 0.06)
        parts.append(box((-x, 0.0, 0.0), (x, base_height, carcass_depth - recess), colors["body"]))
    else:
        inset = 0.04
        parts += [
            cylinder(
                0.02,
                0.0,
                base_height + 0.01,
                colors["legs"],
                sx * (x - inset),
                z,
                top_radius=0.015,
            )
            for sx in (-1, 1)
            for z in (inset, carcass_depth - inset)
        ]

    if doors and drawers:
        share = p.uniform("drawer_share", MIN_DRAWER * drawers / front_height, 0.5)
    else:
        share = 1.0 if drawers else 0.0
    drawer_bottom = body_top - front_height * share
    panels: list[tuple[float, float, float, float, bool]] = []  # x0, x1, y0, y1, is_door
    for k in range(drawers):
        row = (body_top - drawer_bottom) / drawers
        y1 = body_top - k * row
        panels.append((-x, x, y1 - row, y1, False))
    for k in range(doors):
        column = 2 * x / doors
        panels.append((-x + k * column, -x + (k + 1) * column, base_height, drawer_bottom, True))
    for x0, x1, y0, y1, is_door in panels:
        lo = (x0 + GAP / 2, y0 + GAP / 2, front_z)
        hi = (x1 - GAP / 2, y1 - GAP / 2, front_z + front)
        parts.append(box(lo, hi, colors["front"]))
        parts += _handle(handle, reach, lo, hi, is_door, colors["handle"])
    return Design(parts, "none", p.params)


def _handle(
    style: str,
    reach: float,
    lo: tuple[float, float, float],
    hi: tuple[float, float, float],
    is_door: bool,
    color: Color,
) -> list[Part]:
    """The handle of the front between corners lo and hi, reaching `reach` out of it (+z).

    Drawers get a centred horizontal handle; doors a vertical one near their opening edge (the
    edge nearer the cabinet's middle; the right edge for a centred door).
    """
    if is_door:
        centre_x = (lo[0] + hi[0]) / 2
        x = lo[0] + 0.05 if centre_x > 1e-9 else hi[0] - 0.05
        y = hi[1] - min(0.2, (hi[1] - lo[1]) * 0.25)
    else:
        x, y = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2
    z = hi[2]
    if style == "knob":
        knob = cylinder(0.015, 0.0, reach, color, top_radius=0.012, segments=16)
        return [knob.rotated("x", math.pi / 2).moved([x, y, z])]
    length, bar = 0.12, 0.012
    half = (0.006, length / 2) if is_door else (length / 2, 0.006)
    grip = box(
        (x - half[0], y - half[1], z + reach - bar), (x + half[0], y + half[1], z + reach), color
    )
    offsets = (
        [(0.0, -length / 2 + 0.01), (0.0, length / 2 - 0.01)]
        if is_door
        else [(-length / 2 + 0.01, 0.0), (length / 2 - 0.01, 0.0)]
    )
    posts = [
        box((x + dx - 0.005, y + dy - 0.005, z), (x + dx + 0.005, y + dy + 0.005, z + reach), color)
        for dx, dy in offsets
    ]
    return [grip, *posts]
