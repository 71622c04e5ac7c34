"""sensor_msgs images and camera infos -> the Pipeline's inputs, validated, and RGB -> Image.

Every check raises InputError naming the problem (errors.Problem), what was received and what
to do; the node skips such a frame and keeps serving. K is CameraInfo.k: the image is expected
to be undistorted with it (publish image_rect with its camera_info).
"""

import io

import numpy as np
from PIL import Image as PilImage
from PIL import UnidentifiedImageError
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from cad_perception.pipeline.preprocess import check_intrinsics
from cad_perception.ros.errors import InputError, Problem

ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
"""Supported encoding -> (channels, the source channel of R, G and B)."""


def image_to_rgb(message: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB (a copy)."""
    if message.encoding not in ENCODINGS:
        raise InputError(
            Problem.UNSUPPORTED_ENCODING,
            f"image encoding {message.encoding!r} is not supported; publish one of "
            f"{', '.join(ENCODINGS)}",
        )
    height, width, step = int(message.height), int(message.width), int(message.step)
    if height == 0 or width == 0:
        raise InputError(Problem.EMPTY_IMAGE, f"image is empty ({width}x{height} pixels)")
    channels, order = ENCODINGS[message.encoding]
    if step < width * channels:
        raise InputError(
            Problem.INCONSISTENT_IMAGE,
            f"image step {step} is smaller than width {width} x {channels} bytes per pixel "
            f"({message.encoding})",
        )
    data = np.frombuffer(message.data, dtype=np.uint8)
    if data.size != step * height:
        raise InputError(
            Problem.INCONSISTENT_IMAGE,
            f"image data has {data.size} bytes, expected step {step} x height {height} = "
            f"{step * height}",
        )
    pixels = data.reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_to_rgb(message: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, any format PIL decodes) -> (H, W, 3) uint8 RGB."""
    if len(message.data) == 0:
        raise InputError(Problem.EMPTY_IMAGE, "compressed image has no data")
    try:
        with PilImage.open(io.BytesIO(bytes(message.data))) as picture:
            rgb = np.asarray(picture.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(
            Problem.UNDECODABLE_IMAGE,
            f"compressed image (format {message.format!r}, {len(message.data)} bytes) does not "
            f"decode: {err}",
        ) from err
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(Problem.EMPTY_IMAGE, f"compressed image decodes to {rgb.shape[:2]}")
    return rgb


def camera_info_to_intrinsics(message: CameraInfo, image_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) float64 K of a CameraInfo whose width x height equals the image's `(H, W)`."""
    height, width = image_size
    if (int(message.height), int(message.width)) != (height, width):
        raise InputError(
            Problem.SIZE_MISMATCH,
            f"camera_info is {message.width}x{message.height} but the image is {width}x{height}; "
            "pair the image with the camera_info of the same camera and resolution",
        )
    if message.binning_x > 1 or message.binning_y > 1 or message.roi.width or message.roi.height:
        raise InputError(
            Problem.INVALID_CAMERA_INFO,
            "camera_info with binning or a region of interest is not supported; publish the "
            "full-resolution image",
        )
    K = np.asarray(message.k, dtype=np.float64).reshape(3, 3)
    try:
        return check_intrinsics(K)
    except ValueError as err:
        raise InputError(Problem.INVALID_CAMERA_INFO, f"camera_info K is invalid: {err}") from err


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 with `header`."""
    height, width = rgb.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(rgb, dtype=np.uint8).tobytes(),
    )
