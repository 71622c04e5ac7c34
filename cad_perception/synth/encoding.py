"""PNG encodings of images and per-pixel ground truth, in ROCA's conventions.

- RGB: 8-bit, 3 channels.
- Depth: 16-bit, 1 channel, round(z-depth in millimetres), 0 = no hit, clipped at 65.535 m.
- NOC: 16-bit, 3 channels, round((noc + 1) * 10000) with the file's R, G, B channels holding the
  canonical x, y, z; 0 = no NOC. Valid NOCs lie in [-0.5, 0.5], so they encode to 5000..15000 and
  0 is unambiguous.
- Instance: 16-bit (8-bit accepted on read), 1 channel, 0 = background.

Arrays are in RGB channel order throughout: OpenCV, which writes and reads the files, works in
BGR, so channels are swapped at the file boundary only (in `write_png` / `read_png`). Reading a
missing, undecodable or wrongly typed file raises DatasetError naming the file; bad arrays raise
ValueError.
"""

from pathlib import Path

import cv2
import numpy as np

from cad_perception.synth.errors import DatasetError

DEPTH_UNITS_PER_METRE = 1000.0
"""Depth PNG values per metre (millimetres)."""
NOC_OFFSET = 1.0
NOC_SCALE = 10000.0
"""NOC PNG value = round((noc + NOC_OFFSET) * NOC_SCALE)."""
UINT16_MAX = np.iinfo(np.uint16).max
PNG_COMPRESSION = 1
"""zlib level of written PNGs (0-9): low, since encoding time dominates dataset writing."""


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """Depth (H, W) in metres -> (H, W) uint16 millimetres; non-finite or <= 0 -> 0 (no hit)."""
    depth = _checked(depth, "depth", 2)
    millimetres = np.where(np.isfinite(depth) & (depth > 0), depth * DEPTH_UNITS_PER_METRE, 0.0)
    return np.clip(np.rint(millimetres), 0, UINT16_MAX).astype(np.uint16)


def decode_depth(encoded: np.ndarray) -> np.ndarray:
    """(H, W) integer millimetres -> (H, W) float32 metres (0 = no hit)."""
    return (_checked(encoded, "encoded depth", 2) / DEPTH_UNITS_PER_METRE).astype(np.float32)


def encode_noc(noc: np.ndarray) -> np.ndarray:
    """NOC (H, W, 3) with NaN off-object -> (H, W, 3) uint16 in x, y, z order; 0 off-object.

    A pixel with any non-finite coordinate is off-object. Finite NOCs are clipped to the
    encodable range, never to 0.
    """
    noc = _checked(noc, "noc", 3)
    valid = np.isfinite(noc).all(axis=-1, keepdims=True)
    encoded = np.clip(np.rint((np.where(valid, noc, 0.0) + NOC_OFFSET) * NOC_SCALE), 1, UINT16_MAX)
    return np.where(valid, encoded, 0).astype(np.uint16)


def decode_noc(encoded: np.ndarray) -> np.ndarray:
    """(H, W, 3) integer NOC values -> (H, W, 3) float32 NOC, NaN where a channel is 0."""
    encoded = _checked(encoded, "encoded noc", 3)
    noc = encoded / NOC_SCALE - NOC_OFFSET
    valid = (encoded != 0).all(axis=-1, keepdims=True)
    return np.where(valid, noc, np.nan).astype(np.float32)


def encode_instance(instance: np.ndarray) -> np.ndarray:
    """Instance map (H, W) of integers in [0, 65535] -> (H, W) uint16."""
    instance = _checked(instance, "instance", 2)
    if not np.issubdtype(instance.dtype, np.integer):
        raise ValueError(f"instance must have an integer dtype, got {instance.dtype}")
    if instance.size and (instance.min() < 0 or instance.max() > UINT16_MAX):
        raise ValueError(f"instance values must lie in [0, {UINT16_MAX}]")
    return instance.astype(np.uint16)


def write_png(path: str | Path, image: np.ndarray, compression: int = PNG_COMPRESSION) -> None:
    """Write an (H, W) or (H, W, 3) uint8 / uint16 image, channels in RGB order, as a PNG."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG images must be uint8 or uint16, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"PNG images must have shape (H, W) or (H, W, 3), got {image.shape}")
    if image.ndim == 3:
        image = image[..., ::-1]  # RGB -> BGR for OpenCV
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"cannot encode PNG for '{path}'")
    Path(path).write_bytes(data.tobytes())


def read_png(path: str | Path) -> np.ndarray:
    """An image file (PNG, or any format OpenCV reads) as stored: (H, W) or (H, W, C) with
    channels in RGB(A) order and the file's bit depth. Raises DatasetError naming the file."""
    try:
        data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
    except OSError as err:
        raise DatasetError(f"cannot read image '{path}': {err.strerror or err}") from err
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DatasetError(f"cannot decode image '{path}'")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        channels = [2, 1, 0, 3][: image.shape[2]]  # BGR(A) -> RGB(A)
        image = image[..., channels]
    return np.ascontiguousarray(image)


def write_rgb(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image."""
    rgb = _checked(rgb, "rgb", 3)
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    write_png(path, rgb)


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image (grey is expanded, alpha dropped; JPEG is fine)."""
    image = read_png(path)
    if image.dtype != np.uint8:
        raise DatasetError(f"image '{path}' must be 8-bit, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.shape[2] not in (3, 4):
        raise DatasetError(f"image '{path}' must have 1, 3 or 4 channels, got {image.shape[2]}")
    return np.ascontiguousarray(image[..., :3])


def write_depth(path: str | Path, depth: np.ndarray) -> None:
    """Write a depth map (H, W) in metres as a 16-bit millimetre PNG."""
    write_png(path, encode_depth(depth))


def read_depth(path: str | Path) -> np.ndarray:
    """(H, W) float32 depth in metres from a 16-bit millimetre PNG (0 = no hit)."""
    return decode_depth(_read_typed(path, "depth", (np.uint16,), channels=1))


def write_noc(path: str | Path, noc: np.ndarray) -> None:
    """Write a NOC map (H, W, 3), NaN off-object, as a 16-bit PNG (R, G, B = x, y, z)."""
    write_png(path, encode_noc(noc))


def read_noc(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 NOC (x, y, z), NaN where the file holds 0."""
    return decode_noc(_read_typed(path, "NOC", (np.uint16,), channels=3))


def write_instance(path: str | Path, instance: np.ndarray) -> None:
    """Write an instance map (H, W) of integers in [0, 65535] as a 16-bit PNG."""
    write_png(path, encode_instance(instance))


def read_instance(path: str | Path) -> np.ndarray:
    """(H, W) int32 instance map (0 = background) from an 8- or 16-bit PNG."""
    return _read_typed(path, "instance", (np.uint8, np.uint16), channels=1).astype(np.int32)


def _read_typed(path: str | Path, kind: str, dtypes: tuple[type, ...], channels: int) -> np.ndarray:
    """The image at path, checked to have one of `dtypes` and `channels` channels."""
    image = read_png(path)
    if image.dtype not in dtypes:
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise DatasetError(f"{kind} image '{path}' must be {names}, got {image.dtype}")
    found = 1 if image.ndim == 2 else image.shape[2]
    if found != channels:
        raise DatasetError(f"{kind} image '{path}' must have {channels} channel(s), got {found}")
    return image


def _checked(array: np.ndarray, name: str, ndim: int) -> np.ndarray:
    """array as an ndarray of shape (H, W) (ndim 2) or (H, W, 3) (ndim 3), else ValueError."""
    array = np.asarray(array)
    expected = "(H, W)" if ndim == 2 else "(H, W, 3)"
    if array.ndim != ndim or (ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    return array
