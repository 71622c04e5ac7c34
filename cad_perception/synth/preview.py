"""A picture of frames and their ground truth: one row per frame, RGB | depth | NOC | instance."""

from collections.abc import Iterable

import numpy as np

from cad_perception.synth.frame import Frame

_PALETTE_SEED = 7
_GAP = 2
"""Pixels of white between the panels and between the rows."""


def instance_colours(count: int) -> np.ndarray:
    """(count, 3) uint8 distinct-looking colours; entry 0 (background) is black."""
    colours = np.random.default_rng(_PALETTE_SEED).integers(60, 256, size=(count, 3))
    colours[0] = 0
    return colours.astype(np.uint8)


def depth_image(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 grey, near bright and far dark, no hit black."""
    hit = depth > 0
    if not hit.any():
        return np.zeros((*depth.shape, 3), dtype=np.uint8)
    near, far = depth[hit].min(), depth[hit].max()
    level = 1.0 - (depth - near) / max(far - near, 1e-6)
    grey = np.where(hit, 40 + 215 * level, 0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def noc_image(noc: np.ndarray) -> np.ndarray:
    """(H, W, 3) NOCs in [-0.5, 0.5] (NaN off objects) -> uint8 RGB = (x, y, z) + 0.5."""
    return np.nan_to_num((noc + 0.5) * 255, nan=0.0).clip(0, 255).astype(np.uint8)


def frame_row(frame: Frame) -> np.ndarray:
    """(H, 4 W + 3 gap, 3) uint8: the frame's RGB, depth, NOC and instance panels."""
    instance = instance_colours(int(frame.instance.max()) + 1)[frame.instance]
    panels = [frame.rgb, depth_image(frame.depth), noc_image(frame.noc), instance]
    gap = np.full((frame.rgb.shape[0], _GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1)


def contact_sheet(frames: Iterable[Frame]) -> np.ndarray:
    """(rows, columns, 3) uint8: `frame_row` of each frame, stacked; ValueError if none or if
    their sizes differ."""
    rows = [frame_row(frame) for frame in frames]
    if not rows:
        raise ValueError("contact_sheet needs at least one frame")
    if len({row.shape for row in rows}) != 1:
        raise ValueError("frames of a contact sheet must share one image size")
    gap = np.full((_GAP, rows[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)
