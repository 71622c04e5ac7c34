"""How many pixels each rendered object would cover without the other objects in front of it.

Camera points are rows (N, 3) in the OpenCV / ROS optical frame (x right, y down, z forward);
pixel (u, v) has its centre at integer coordinates, as in `synth.renderer`.

Only other objects can hide an object: the room is convex and the camera is inside it, so the
walls never stand in front of an object. An object whose projected bounding box meets no
bounding box of an object partly in front of it (by their corners' depths) keeps its visible
count; the others are ray-cast alone over the pixels of their projected bounding box, with
the same rays as the renderer, so the counts agree pixel for pixel where nothing occludes.
Truncation by the image border is not occlusion: pixels outside the image count for neither.
"""

from collections.abc import Sequence

import numpy as np
import open3d as o3d

from cad_perception.synth.renderer import RenderObject, camera_rays

__all__ = ["projected_boxes", "unoccluded_pixel_counts"]

NEAR = 1e-6
"""Bounding boxes with a corner closer to the camera plane than this (metres) project to the
whole image."""


def projected_boxes(
    objects: Sequence[RenderObject], K: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes and depth ranges of the objects' posed mesh bounding boxes.

    Returns boxes (N, 4) int64 (u0, v0, u1, v1), inclusive, clipped to the image (H, W), with
    u0 > u1 or v0 > v1 for a box entirely outside the image, and depths (N, 2) float64: the
    smallest and largest z of each bounding box's corners.
    """
    height, width = size
    boxes = np.empty((len(objects), 4), dtype=np.int64)
    depths = np.empty((len(objects), 2), dtype=np.float64)
    for index, item in enumerate(objects):
        lower, upper = np.asarray(item.mesh.bounds, dtype=np.float64)
        corners = np.array([[(lower, upper)[k >> a & 1][a] for a in range(3)] for k in range(8)])
        camera = (corners * item.s) @ item.R.T + item.t
        depths[index] = camera[:, 2].min(), camera[:, 2].max()
        if depths[index, 0] <= NEAR:
            boxes[index] = (0, 0, width - 1, height - 1)
            continue
        pixels = camera @ np.asarray(K, dtype=np.float64).T
        pixels = pixels[:, :2] / pixels[:, 2:]
        low = np.maximum(np.floor(pixels.min(axis=0)), 0)
        high = np.minimum(np.ceil(pixels.max(axis=0)), [width - 1, height - 1])
        boxes[index] = (*low.astype(np.int64), *high.astype(np.int64))
    return boxes, depths


def unoccluded_pixel_counts(
    objects: Sequence[RenderObject],
    K: np.ndarray,
    size: tuple[int, int],
    visible_pixels: np.ndarray,
    needed: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) int64 number of image pixels each object covers when rendered alone.

    visible_pixels (N,) are the objects' pixel counts in the full render (their instance
    areas), kept where nothing can occlude. `needed` (N,) bool limits the work to those
    objects; the others get -1.
    """
    visible_pixels = np.asarray(visible_pixels, dtype=np.int64)
    if visible_pixels.shape != (len(objects),):
        raise ValueError(
            f"visible_pixels must have shape ({len(objects)},), got {visible_pixels.shape}"
        )
    needed = np.ones(len(objects), bool) if needed is None else np.asarray(needed, dtype=bool)
    boxes, depths = projected_boxes(objects, K, size)
    empty = (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])
    counts = np.full(len(objects), -1, dtype=np.int64)
    rays = None
    for index in np.flatnonzero(needed):
        if empty[index]:
            counts[index] = 0
            continue
        u0, v0, u1, v1 = boxes[index]
        occluders = ~empty & (np.arange(len(objects)) != index)
        occluders &= (boxes[:, 0] <= u1) & (boxes[:, 2] >= u0)
        occluders &= (boxes[:, 1] <= v1) & (boxes[:, 3] >= v0)
        occluders &= depths[:, 0] < depths[index, 1]  # partly in front of it
        if not occluders.any():
            counts[index] = visible_pixels[index]
            continue
        if rays is None:
            rays = camera_rays(K, size)
        scene = o3d.t.geometry.RaycastingScene()
        item = objects[index]
        scene.add_triangles(
            o3d.core.Tensor(item.camera_vertices().astype(np.float32)),
            o3d.core.Tensor(np.asarray(item.mesh.faces, dtype=np.uint32)),
        )
        window = np.ascontiguousarray(rays[v0 : v1 + 1, u0 : u1 + 1])
        hits = scene.cast_rays(o3d.core.Tensor(window))["t_hit"].numpy()
        counts[index] = np.count_nonzero(np.isfinite(hits))
    return counts
