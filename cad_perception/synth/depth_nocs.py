"""NOC maps from depth, instance map and poses, for datasets that store no NOC images.

ROCA's own Scan2CAD renderings hold the rendered CAD depth and an instance map per frame but
(by default) no NOC image. Each object pixel's NOC follows from them exactly: back-project the
pixel with K (pixel centres at integer coordinates, as `synth.renderer`), then invert the pose
X_cam = R (s * X_noc) + t.
"""

import numpy as np


def nocs_from_depth(
    depth: np.ndarray,
    instance: np.ndarray,
    K: np.ndarray,
    instances: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    s: np.ndarray,
) -> np.ndarray:
    """The NOC map (H, W, 3) float32, NaN where no listed object has depth.

    depth (H, W) z-depth in metres (0 = unknown); instance (H, W) integer map; K (3, 3);
    instances (N,) the instance-map values of N objects with poses R (N, 3, 3), t (N, 3) and
    per-axis scales s (N, 3) (all > 0).
    """
    height, width = depth.shape
    if instance.shape != depth.shape:
        raise ValueError(f"instance map {instance.shape} and depth {depth.shape} differ in size")
    if np.any(np.asarray(s) <= 0):
        raise ValueError("scales must be positive to invert a pose")
    noc = np.full((height, width, 3), np.nan, dtype=np.float32)
    K_inv = np.linalg.inv(np.asarray(K, dtype=np.float64))
    for value, rotation, translation, scale in zip(instances, R, t, s, strict=True):
        rows, cols = np.nonzero((instance == value) & (depth > 0))
        if rows.size == 0:
            continue
        pixels = np.stack([cols, rows, np.ones_like(rows)], axis=-1).astype(np.float64)
        points = (pixels @ K_inv.T) * depth[rows, cols, None]  # (P, 3) camera frame
        canonical = (points - np.asarray(translation)) @ np.asarray(rotation, dtype=np.float64)
        noc[rows, cols] = canonical / np.asarray(scale, dtype=np.float64)
    return noc
