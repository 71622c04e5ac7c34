"""Bins (category "bin"): a round, square or rectangular (rounded-corner) container, straight
or widening upwards, on a base band, with a rim or not, and no lid, a flat lid or a domed lid.

Every part is centred on the y axis: round bins are inf, square bins rot4 (equal x and z
extents), rectangular bins rot2.
"""

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import cylinder, loft, prism, superellipse

SIZE_RANGE = ((0.18, 0.25, 0.1), (0.6, 0.9, 0.6))
"""(min, max) extents in metres (width x, height y, depth z)."""

SHAPES = ("round", "square", "rectangular")
SYMMETRIES = {"round": "inf", "square": "rot4", "rectangular": "rot2"}


def design(rng: np.random.Generator) -> Design:
    """A random bin (see the module docstring)."""
    p = ParamSampler(rng)
    shape = p.choice("shape", SHAPES)
    width = p.uniform("width", 0.2, 0.42)
    depth = width * p.uniform("depth_ratio", 0.5, 0.8) if shape == "rectangular" else width
    height = p.uniform("height", 0.25, 0.75)
    flare = p.uniform("flare", 1.05, 1.25) if p.flag("tapered") else 1.0
    wall = p.uniform("wall_thickness", 0.003, 0.012)
    base = p.uniform("base_height", 0.01, 0.04)
    corner = 2.0 if shape == "round" else p.uniform("corner_exponent", 4.0, 12.0)
    rim = p.flag("rim")
    lid = p.choice("lid", ("none", "flat", "dome"))
    colors = pick_colors(
        rng,
        {
            "body": p.choice("body_material", ("plastic", "metal")),
            "base": "plastic",
            "trim": "plastic",
        },
    )

    def outline(half_width: float, half_depth: float) -> np.ndarray:
        return superellipse(half_width, half_depth, corner)

    # The bottom outline is width x depth; the top widens by `flare` with a constant-ish wall.
    rx, rz = width / 2, depth / 2
    outer_bottom, outer_top = outline(rx, rz), outline(rx * flare, rz * flare)
    inner_bottom = outline(rx - wall, rz - wall)
    inner_top = outline(rx * flare - wall, rz * flare - wall)
    floor = base + 0.01
    parts = [
        prism(outer_bottom, 0.0, base, colors["base"]),
        loft(
            [outer_bottom, outer_top, inner_top, inner_bottom],
            [base, height, height, floor],
            colors["body"],
        ),
    ]
    top = height
    if rim:
        rim_height = p.uniform("rim_height", 0.01, 0.04)
        overhang = p.uniform("rim_overhang", 0.004, 0.015)
        rim_outer = outline(rx * flare + overhang, rz * flare + overhang)
        rim_inner = outline(rx * flare - wall / 2, rz * flare - wall / 2)  # inside the wall
        parts.append(
            loft(
                [rim_outer, rim_outer, rim_inner, rim_inner],
                [height - rim_height, height + 0.005, height + 0.005, height - rim_height],
                colors["trim"],
                closed=True,
            )
        )
        top = height + 0.005
    if lid != "none":
        lid_height = p.uniform("lid_height", 0.015, 0.03) if lid == "flat" else rx * flare * 0.5
        lip = outline(rx * flare + 0.005, rz * flare + 0.005)
        if lid == "flat":
            parts.append(prism(lip, top, top + lid_height, colors["trim"]))
            parts.append(
                cylinder(0.02, top + lid_height - 0.001, top + lid_height + 0.02, colors["trim"])
            )
        else:
            fractions = (1.0, 0.92, 0.72, 0.4)
            rises = (0.0, 0.4, 0.75, 1.0)
            parts.append(
                loft(
                    [lip * f for f in fractions],
                    [top + r * lid_height for r in rises],
                    colors["trim"],
                )
            )
    return Design(parts, SYMMETRIES[shape], p.params)
