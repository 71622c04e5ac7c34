"""Fit a camera image to the engine's input size and map the engine's pixels back.

The image is resized (bilinear, antialiased) by one factor so that it covers the engine input,
then centre-cropped; K follows both steps (geometry.camera, pixel centres at integer
coordinates). An image with the engine's aspect ratio is only resized.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from cad_perception.geometry.camera import crop_intrinsics, scale_intrinsics, validate_intrinsics

SUPPORTED_CHANNELS = 3


@dataclass(frozen=True)
class Fit:
    """How an (H, W) image maps to the engine input: u_in = sx * u - x0 and v_in = sy * v - y0
    on pixel-edge coordinates."""

    sx: float
    sy: float
    x0: float
    y0: float
    image_size: tuple[int, int]
    """(H, W) of the caller's image."""

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x0, y0, x1, y1 engine-input boxes -> the caller's image, clipped to it."""
        boxes = np.asarray(boxes, dtype=np.float64)
        offset = np.array([self.x0, self.y0, self.x0, self.y0])
        out = (boxes + offset) / np.array([self.sx, self.sy, self.sx, self.sy])
        height, width = self.image_size
        return np.clip(out, 0.0, [width, height, width, height]).astype(np.float32)


def check_image(image: np.ndarray) -> None:
    """ValueError unless `image` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != SUPPORTED_CHANNELS:
        raise ValueError(f"image must have shape (H, W, 3) RGB, got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape[:2]}")


def check_intrinsics(K: np.ndarray) -> np.ndarray:
    """K as a (3, 3) float64 array; ValueError unless it is a finite pinhole matrix with
    positive focal lengths and [0, 0, 1] as last row."""
    K = np.array(K, dtype=np.float64)  # a copy: callers' arrays may be read-only
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {K.shape}")
    if not np.isfinite(K).all():
        raise ValueError(f"K must be finite, got {K.tolist()}")
    validate_intrinsics(torch.from_numpy(K))
    return K


def fit_image(
    image: np.ndarray, K: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, Fit]:
    """(H, W, 3) uint8 RGB + K (3, 3) -> engine image (3, h, w) float32 in [0, 1], its K (3, 3)
    float32 and the Fit that maps engine pixels back (input_size = (h, w))."""
    check_image(image)
    K = check_intrinsics(K)
    height, width = image.shape[:2]
    in_height, in_width = input_size
    scale = max(in_height / height, in_width / width)
    new_height = max(in_height, round(height * scale))
    new_width = max(in_width, round(width * scale))
    x0 = (new_width - in_width) // 2
    y0 = (new_height - in_height) // 2
    pixels = np.ascontiguousarray(image) if image.flags.writeable else image.copy()
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
    if (new_height, new_width) != (height, width):
        tensor = functional.interpolate(
            tensor,
            size=(new_height, new_width),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
    tensor = tensor[0, :, y0 : y0 + in_height, x0 : x0 + in_width].clamp(0.0, 1.0)
    K_in = scale_intrinsics(torch.from_numpy(K), new_width / width, new_height / height)
    K_in = crop_intrinsics(K_in, float(x0), float(y0))
    fit = Fit(
        sx=new_width / width,
        sy=new_height / height,
        x0=float(x0),
        y0=float(y0),
        image_size=(height, width),
    )
    return tensor.contiguous().numpy(), K_in.numpy().astype(np.float32), fit


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int], threshold: float = 0.5
) -> np.ndarray:
    """RoI-grid mask probabilities (N, S, S) of boxes (N, 4) (image pixel-edge coordinates) ->
    (N, H, W) bool image masks, by bilinear sampling at every pixel centre inside the box."""
    height, width = image_size
    out = np.zeros((len(masks), height, width), dtype=bool)
    for index, (mask, box) in enumerate(zip(masks, boxes, strict=True)):
        x_lo, y_lo, x_hi, y_hi = (float(v) for v in box)
        if x_hi - x_lo <= 0 or y_hi - y_lo <= 0:
            continue
        u0, u1 = max(0, int(np.ceil(x_lo - 0.5))), min(width, int(np.floor(x_hi - 0.5)) + 1)
        v0, v1 = max(0, int(np.ceil(y_lo - 0.5))), min(height, int(np.floor(y_hi - 0.5)) + 1)
        if u1 <= u0 or v1 <= v0:
            continue
        gx = 2.0 * (np.arange(u0, u1) + 0.5 - x_lo) / (x_hi - x_lo) - 1.0
        gy = 2.0 * (np.arange(v0, v1) + 0.5 - y_lo) / (y_hi - y_lo) - 1.0
        grid = np.stack(np.meshgrid(gx, gy, indexing="xy"), axis=-1)[None].astype(np.float32)
        sampled = functional.grid_sample(
            torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None],
            torch.from_numpy(grid),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )[0, 0].numpy()
        out[index, v0:v1, u0:u1] = sampled >= threshold
    return out
