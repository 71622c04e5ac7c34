"""Bookshelves: two sides, a top and a bottom board, evenly spaced shelves, one or two columns,
a plinth or not and a back panel or not.

Open-backed bookshelves are symmetric front to back and left to right (rot2); a back panel
makes them asymmetric (none).
"""

import math

import numpy as np

from cad_perception.cad.procedural.design import Design, ParamSampler
from cad_perception.cad.procedural.materials import pick_colors
from cad_perception.cad.procedural.parts import box

SIZE_RANGE = ((0.4, 0.7, 0.2), (1.6, 2.2, 0.45))
"""(min, max) extents in metres (width x, height y, depth z)."""

BACK_THICKNESS = 0.008


def design(rng: np.random.Generator) -> Design:
    """A random bookshelf (see the module docstring)."""
    p = ParamSampler(rng)
    width = p.uniform("width", 0.4, 1.6)
    height = p.uniform("height", 0.7, 2.2)
    depth = p.uniform("depth", 0.22, 0.42)
    side = p.uniform("side_thickness", 0.015, 0.05)
    board = p.uniform("board_thickness", 0.015, 0.035)
    overhang = p.uniform("top_overhang", 0.0, 0.03)
    plinth = p.uniform("plinth_height", 0.04, 0.1) if p.flag("plinth") else 0.0
    columns = p.integer("columns", 1, 2 if width >= 0.9 else 1)
    interior = height - plinth - 2 * board
    shelves = p.integer(
        "shelf_count",
        max(1, math.ceil(interior / 0.42) - 1),
        max(1, math.floor(interior / 0.24) - 1),
    )
    back = p.flag("back_panel")
    colors = pick_colors(
        rng,
        {
            "frame": p.choice("frame_material", ("wood", "paint", "metal")),
            "shelves": "wood",
            "back": "wood",
        },
    )

    x = width / 2 - overhang
    z = depth / 2
    bottom, top = plinth + board, height - board
    shelf_z0 = -z + BACK_THICKNESS if back else -z
    parts = [
        box((-x, 0.0, -z), (-x + side, height - board, z), colors["frame"]),
        box((x - side, 0.0, -z), (x, height - board, z), colors["frame"]),
        box((-width / 2, top, -z), (width / 2, height, z), colors["frame"]),
        box((-x + side, plinth, shelf_z0), (x - side, bottom, z), colors["shelves"]),
    ]
    if plinth > 0:
        parts.append(
            box((-x + side, 0.0, -z + 0.02), (x - side, plinth, z - 0.02), colors["frame"])
        )
    spacing = (top - bottom) / (shelves + 1)
    for k in range(1, shelves + 1):
        y = bottom + k * spacing - board / 2
        parts.append(box((-x + side, y, shelf_z0), (x - side, y + board, z), colors["shelves"]))
    if columns == 2:
        parts.append(box((-side / 2, bottom, shelf_z0), (side / 2, top, z), colors["frame"]))
    if back:
        parts.append(
            box((-x + side, plinth, -z), (x - side, top, -z + BACK_THICKNESS), colors["back"])
        )
    return Design(parts, "none" if back else "rot2", p.params)
