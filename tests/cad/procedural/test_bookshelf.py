"""Bookshelves: sizes are the parameters; a back panel makes them asymmetric."""

import numpy as np

from cad_perception.cad.procedural import bookshelf, generate, model_seed

SEEDS = range(30)


def test_extents_are_width_height_depth():
    for seed in SEEDS:
        shelf = generate("bookshelf", seed)
        p = shelf.params
        np.testing.assert_allclose(shelf.mesh.extents, [p["width"], p["height"], p["depth"]])


def test_symmetry_is_none_exactly_with_a_back_panel():
    for seed in SEEDS:
        shelf = generate("bookshelf", seed)
        assert shelf.symmetry == ("none" if shelf.params["back_panel"] else "rot2")


def test_one_board_per_shelf_and_feature():
    for seed in SEEDS:
        design = bookshelf.design(np.random.default_rng(model_seed("bookshelf", seed)))
        p = design.params
        # Two sides, top, bottom, the shelves, then a plinth, a divider, a back panel if any.
        expected = 4 + p["shelf_count"] + p["plinth"] + (p["columns"] == 2) + p["back_panel"]
        assert len(design.parts) == expected
        interior = p["height"] - p.get("plinth_height", 0.0) - 2 * p["board_thickness"]
        assert 0.24 - 1e-9 <= interior / (p["shelf_count"] + 1) <= 0.42 + 1e-9
