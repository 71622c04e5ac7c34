"""Beds: a frame for a single, double, queen or king mattress on legs or a platform, a panel,
slatted or padded headboard at -z, a lower footboard or none, pillows and a blanket or not.

The headboard is always taller than any footboard, so beds are asymmetric (none).
"""

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import Color, Part, box

SIZE_RANGE = ((0.9, 0.75, 1.9), (2.0, 1.45, 2.3))
"""(min, max) extents in metres (width x, height y, depth z)."""

MATTRESS_WIDTHS = {"single": 0.9, "double": 1.4, "queen": 1.6, "king": 1.8}
HEADBOARD_STYLES = ("panel", "slatted", "padded")


def design(rng: np.random.Generator) -> Design:
    """A random bed (see the module docstring)."""
    p = ParamSampler(rng)
    width = MATTRESS_WIDTHS[p.choice("size", tuple(MATTRESS_WIDTHS))]
    length = p.uniform("mattress_length", 1.9, 2.05)
    mattress = p.uniform("mattress_thickness", 0.15, 0.28)
    frame_top = p.uniform("frame_height", 0.2, 0.4)
    rail = p.uniform("rail_thickness", 0.03, 0.08)
    base = p.choice("base", ("legs", "platform"))
    head_top = p.uniform("headboard_height", 0.8, 1.4)
    head_style = p.choice("headboard_style", HEADBOARD_STYLES)
    head = p.uniform("headboard_thickness", 0.04, 0.1)
    colors = pick_colors(
        rng,
        {
            "frame": p.choice("frame_material", ("wood", "paint", "metal")),
            "mattress": "bedding",
            "pillows": "bedding",
            "blanket": "fabric",
            "padding": "fabric",
        },
    )

    x = width / 2 + rail
    z0, z1 = -length / 2, length / 2
    if base == "legs":
        rail_bottom = max(0.05, frame_top - p.uniform("rail_depth", 0.12, 0.2))
    else:
        rail_bottom = 0.0
    mattress_bottom = frame_top - 0.05
    mattress_top = mattress_bottom + mattress
    parts = [
        box((-x, rail_bottom, z0), (-x + rail, frame_top, z1), colors["frame"]),
        box((x - rail, rail_bottom, z0), (x, frame_top, z1), colors["frame"]),
        box((-x + rail, rail_bottom, z1 - rail), (x - rail, frame_top, z1), colors["frame"]),
        box((-x + rail, rail_bottom, z0), (x - rail, mattress_bottom, z1 - rail), colors["frame"]),
        box(
            (-width / 2, mattress_bottom, z0),
            (width / 2, mattress_top, z1 - rail),
            colors["mattress"],
        ),
    ]
    if base == "legs":
        xs, half = (-x + rail / 2, x - rail / 2), rail / 2  # legs as thick as the rails
        parts += [
            box(
                (cx - half, 0.0, cz - half),
                (cx + half, rail_bottom + 0.01, cz + half),
                colors["frame"],
            )
            for cx in xs
            for cz in (z0 + 0.05, z1 - 0.05)
        ]
    parts += _headboard(head_style, x, head, frame_top, head_top, z0, colors)
    if p.flag("footboard"):
        foot_top = p.uniform("footboard_height", frame_top + 0.05, min(head_top - 0.25, 0.7))
        parts.append(box((-x, 0.0, z1), (x, foot_top, z1 + 0.04), colors["frame"]))
    pillows = p.integer("pillow_count", 1, 1 if width < 1.2 else 2)
    step = width / pillows
    parts += [
        box(
            (-width / 2 + k * step + 0.03, mattress_top - 0.01, z0 + 0.05),
            (-width / 2 + (k + 1) * step - 0.03, mattress_top + 0.12, z0 + 0.45),
            colors["pillows"],
        )
        for k in range(pillows)
    ]
    if p.flag("blanket"):
        parts.append(
            box(
                (-width / 2 - 0.02, mattress_top - 0.12, z0 + 0.55),
                (width / 2 + 0.02, mattress_top + 0.02, z1 - rail + 0.02),
                colors["blanket"],
            )
        )
    return Design(parts, "none", p.params)


def _headboard(
    style: str,
    x: float,
    thickness: float,
    frame_top: float,
    top: float,
    front: float,
    colors: dict[str, Color],
) -> list[Part]:
    """The headboard between x in [-x, x], from the floor to `top`, behind the plane z = front."""
    z0, z1, frame = front - thickness, front, colors["frame"]
    if style == "panel":
        return [box((-x, 0.0, z0), (x, top, z1), frame)]
    post = 0.06
    posts = [
        box((-x, 0.0, z0), (-x + post, top, z1), frame),
        box((x - post, 0.0, z0), (x, top, z1), frame),
    ]
    if style == "padded":
        return [
            *posts,
            box((-x + post, frame_top, z0), (x - post, top - 0.03, z1 + 0.04), colors["padding"]),
        ]
    rails = [
        box((-x + post, top - 0.08, z0), (x - post, top, z1), frame),
        box((-x + post, frame_top, z0), (x - post, frame_top + 0.08, z1), frame),
    ]
    inner = 2 * (x - post)
    count = max(3, int(inner / 0.15))
    slat = 0.04
    step = inner / count
    slats = [
        box(
            (-x + post + (k + 0.5) * step - slat / 2, frame_top, z0 + 0.01),
            (-x + post + (k + 0.5) * step + slat / 2, top, z1 - 0.01),
            frame,
        )
        for k in range(count)
    ]
    return posts + rails + slats
