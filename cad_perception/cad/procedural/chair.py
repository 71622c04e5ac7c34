"""Chairs: a seat, a tilted back, four legs / a star base on casters / sled runners, arms or not.

Built with the floor at y = 0 and the seat's front edge towards +z; the back breaks every
rotational symmetry.
"""

import math

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import Color, Part, box, cylinder, prism, rectangle

SIZE_RANGE = ((0.38, 0.65, 0.38), (0.72, 1.15, 0.8))
"""(min, max) extents in metres (width x, height y, depth z)."""

BASES = ("four_legs", "star", "sled")


def design(rng: np.random.Generator) -> Design:
    """A random chair (see the module docstring)."""
    p = ParamSampler(rng)
    width = p.uniform("seat_width", 0.4, 0.52)
    depth = p.uniform("seat_depth", 0.38, 0.5)
    seat_top = p.uniform("seat_height", 0.42, 0.5)
    seat_thickness = p.uniform("seat_thickness", 0.03, 0.08)
    back_height = p.uniform("back_height", 0.3, 0.55)
    back_tilt = math.radians(p.uniform("back_tilt_deg", 0.0, 18.0))
    back_thickness = p.uniform("back_thickness", 0.02, 0.06)
    base = p.choice("base", BASES)
    arms = p.flag("arms")
    colors = pick_colors(
        rng, {"frame": p.choice("frame_material", ("wood", "metal")), "upholstery": "fabric"}
    )

    seat_bottom = seat_top - seat_thickness
    parts = [
        box(
            (-width / 2, seat_bottom, -depth / 2),
            (width / 2, seat_top, depth / 2),
            colors["upholstery"],
        )
    ]
    back = box(
        (-width / 2, seat_bottom, -depth / 2),
        (width / 2, seat_top + back_height, -depth / 2 + back_thickness),
        colors["upholstery"],
    )
    parts.append(back.rotated("x", -back_tilt, pivot=(0.0, seat_bottom, -depth / 2)))
    if base == "four_legs":
        parts += _four_legs(p, width, depth, seat_bottom, colors["frame"])
    elif base == "star":
        parts += _star_base(p, seat_bottom, colors["frame"])
    else:
        parts += _sled_base(p, width, depth, seat_bottom, colors["frame"])
    if arms:
        parts += _arms(p, width, depth, seat_top, colors["frame"])
    return Design(parts, "none", p.params)


def _four_legs(p: ParamSampler, width: float, depth: float, top: float, color: Color) -> list[Part]:
    thickness = p.uniform("leg_thickness", 0.025, 0.045)
    round_legs = p.flag("round_legs")
    x, z = width / 2 - thickness, depth / 2 - thickness
    corners = [(sx * x, sz * z) for sx in (-1, 1) for sz in (-1, 1)]
    if round_legs:
        return [cylinder(thickness / 2, 0.0, top, color, cx, cz, segments=16) for cx, cz in corners]
    half = thickness / 2
    return [
        box((cx - half, 0.0, cz - half), (cx + half, top, cz + half), color) for cx, cz in corners
    ]


def _star_base(p: ParamSampler, top: float, color: Color) -> list[Part]:
    radius = p.uniform("star_radius", 0.26, 0.32)
    spokes = p.integer("star_spokes", 4, 5)
    caster_height = 0.05
    hub = 0.04
    parts = [
        cylinder(0.025, caster_height, top, color),
        cylinder(hub, caster_height, caster_height + 0.05, color),
        box((-0.08, top - 0.04, -0.08), (0.08, top, 0.08), color),
    ]
    for k in range(spokes):
        angle = 2 * math.pi * k / spokes + math.pi / 2
        spoke = prism(rectangle(radius - hub, 0.04), caster_height, caster_height + 0.03, color)
        spoke = spoke.moved([hub + (radius - hub) / 2 - 0.02, 0.0, 0.0])
        caster = cylinder(0.02, 0.0, caster_height, color, x=radius - 0.02)
        parts += [part.rotated("y", angle) for part in (spoke, caster)]
    return parts


def _sled_base(p: ParamSampler, width: float, depth: float, top: float, color: Color) -> list[Part]:
    tube = p.uniform("sled_tube", 0.015, 0.03)
    x = width / 2 - tube
    parts = []
    for sx in (-1, 1):
        cx = sx * x
        parts.append(box((cx - tube / 2, 0.0, -depth / 2), (cx + tube / 2, tube, depth / 2), color))
        for z in (-depth / 2 + tube / 2, depth / 2 - tube * 1.5):
            parts.append(box((cx - tube / 2, 0.0, z), (cx + tube / 2, top, z + tube), color))
    return parts


def _arms(p: ParamSampler, width: float, depth: float, seat_top: float, color: Color) -> list[Part]:
    arm_height = p.uniform("arm_height", 0.18, 0.25)
    arm_width = p.uniform("arm_width", 0.03, 0.06)
    top = seat_top + arm_height
    parts = []
    for sx in (-1, 1):
        inner, outer = sx * width / 2, sx * (width / 2 + arm_width)
        lo_x, hi_x = min(inner, outer), max(inner, outer)
        parts.append(box((lo_x, top - 0.03, -depth / 2), (hi_x, top, depth / 2 - 0.03), color))
        post_z = depth / 2 - 0.08
        parts.append(box((lo_x, seat_top - 0.05, post_z), (hi_x, top, post_z + 0.03), color))
    return parts
