"""Draw detections on their image: mask tint, the retrieved CAD's surface points and 3D box
projected with the predicted pose, the 2D box and a "category score" label."""

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from cad_perception.pipeline.detection import Detection

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)
"""Colour of each category, in the model's category order (cycled)."""
MASK_ALPHA = 0.35
BOX_EDGES = (
    (0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip


def category_colour(category: str, categories: Sequence[str]) -> tuple[int, int, int]:
    """The palette colour of `category` (grey for one outside `categories`)."""
    if category not in categories:
        return (200, 200, 200)
    return PALETTE[list(categories).index(category) % len(PALETTE)]


def project_points(points: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (N, 3) -> pixel coordinates (N, 2) and (N,) bool in front (z > 1 cm)."""
    z = points[:, 2]
    front = z > 0.01
    uv = (points @ np.asarray(K, dtype=np.float64).T)[:, :2] / np.where(front, z, 1.0)[:, None]
    return uv, front


def draw_detections(
    image: np.ndarray,
    K: np.ndarray,
    detections: Sequence[Detection],
    categories: Sequence[str],
    cad_points: Callable[[str], np.ndarray] | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of `image` with every detection drawn.

    cad_points(cad_id) -> (P, 3) canonical surface points of a CAD (e.g. the database's
    samples); without it, or for a detection without a CAD, only the 3D box is drawn.
    """
    canvas = np.asarray(image, dtype=np.float32).copy()
    for det in detections:
        colour = np.asarray(category_colour(det.category, categories), dtype=np.float32)
        canvas[det.mask] = (1 - MASK_ALPHA) * canvas[det.mask] + MASK_ALPHA * colour
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for det in sorted(detections, key=lambda d: -float(d.t[2])):  # far objects first
        colour = category_colour(det.category, categories)
        if cad_points is not None and det.cad_id is not None:
            points = np.asarray(cad_points(det.cad_id), dtype=np.float64)[:1500]
            uv, front = project_points((points * det.s) @ det.R.T + det.t, K)
            for u, v in uv[front]:
                draw.point((float(u), float(v)), fill=colour)
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / 2.0
        uv, front = project_points((corners * det.extents) @ det.R.T + det.t, K)
        for a, b in BOX_EDGES:
            if front[a] and front[b]:
                draw.line([tuple(uv[a]), tuple(uv[b])], fill=colour, width=1)
        x0, y0, x1, y1 = (float(v) for v in det.box)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=1)
        label = f"{det.category} {det.score:.2f}"
        text_box = draw.textbbox((x0 + 2, y0 + 1), label)
        draw.rectangle(text_box, fill=(0, 0, 0))
        draw.text((x0 + 2, y0 + 1), label, fill=colour)
    return np.asarray(picture)
