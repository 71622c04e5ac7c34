"""Image, CompressedImage and CameraInfo conversion: known pixels per encoding, every bad input."""

import io

import numpy as np
import pytest
from PIL import Image as PilImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from cad_perception.ros.errors import InputError, Problem
from cad_perception.ros.image_conversion import (
    camera_info_to_intrinsics,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_image,
)

RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7  # (H=2, W=3, 3), distinct values
K = np.array([[200.0, 0.0, 1.5], [0.0, 210.0, 1.0], [0.0, 0.0, 1.0]])


def raw(encoding: str, pixels: np.ndarray, pad: int = 0) -> Image:
    """An Image of (H, W, C) or (H, W) pixels with `pad` bytes of row padding."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    rows = np.concatenate([rows, np.full((height, pad), 255, np.uint8)], axis=1)
    return Image(
        height=height, width=width, encoding=encoding, step=rows.shape[1], data=rows.tobytes()
    )


@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("rgba8", np.concatenate([RGB, np.full((2, 3, 1), 9, np.uint8)], axis=2)),
        ("bgra8", np.concatenate([RGB[..., ::-1], np.full((2, 3, 1), 9, np.uint8)], axis=2)),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_give_the_same_rgb(encoding, pixels, pad):
    rgb = image_to_rgb(raw(encoding, np.ascontiguousarray(pixels), pad))
    np.testing.assert_array_equal(rgb, RGB)
    assert rgb.flags.writeable and rgb.dtype == np.uint8


def test_mono8_is_replicated_into_three_channels():
    grey = RGB[..., 0]
    np.testing.assert_array_equal(image_to_rgb(raw("mono8", grey)), np.stack([grey] * 3, axis=2))


def test_rgb_to_image_round_trips():
    message = rgb_to_image(RGB, Header(frame_id="cam"))
    assert (message.encoding, message.step, message.header.frame_id) == ("rgb8", 9, "cam")
    np.testing.assert_array_equal(image_to_rgb(message), RGB)


@pytest.mark.parametrize(
    ("message", "problem", "words"),
    [
        (raw("16UC1", RGB[..., :2]), Problem.UNSUPPORTED_ENCODING, "'16UC1' is not supported"),
        (Image(encoding="rgb8"), Problem.EMPTY_IMAGE, "0x0"),
        (Image(height=2, width=3, encoding="rgb8", step=6, data=bytes(12)),
         Problem.INCONSISTENT_IMAGE, "step 6 is smaller than width 3"),
        (Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(17)),
         Problem.INCONSISTENT_IMAGE, "17 bytes, expected step 9 x height 2 = 18"),
    ],
)  # fmt: skip
def test_bad_images_raise_the_named_problem(message, problem, words):
    with pytest.raises(InputError, match=words) as error:
        image_to_rgb(message)
    assert error.value.problem is problem


def encoded(rgb: np.ndarray, kind: str) -> CompressedImage:
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format=kind)
    return CompressedImage(format=kind.lower(), data=buffer.getvalue())


def test_png_decodes_exactly_and_jpeg_closely():
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(compressed_to_rgb(encoded(rgb, "PNG")), rgb)
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 24, 0)
    smooth = np.repeat(smooth, 3, axis=2)
    jpeg = compressed_to_rgb(encoded(smooth, "JPEG"))
    assert jpeg.shape == (24, 32, 3) and np.abs(jpeg.astype(int) - smooth).max() <= 8


@pytest.mark.parametrize(
    ("data", "problem"),
    [(b"", Problem.EMPTY_IMAGE), (b"\xff\xd8 not a jpeg", Problem.UNDECODABLE_IMAGE)],
)
def test_bad_compressed_images_raise_the_named_problem(data, problem):
    with pytest.raises(InputError) as error:
        compressed_to_rgb(CompressedImage(format="jpeg", data=data))
    assert error.value.problem is problem


def info(k=None, height=2, width=3, **fields) -> CameraInfo:
    k = K.ravel() if k is None else np.asarray(k, dtype=np.float64)
    return CameraInfo(height=height, width=width, k=k, **fields)


def test_camera_info_gives_k():
    np.testing.assert_array_equal(camera_info_to_intrinsics(info(), (2, 3)), K)


@pytest.mark.parametrize(
    ("message", "problem", "words"),
    [
        (info(k=np.zeros(9)), Problem.INVALID_CAMERA_INFO, "K is invalid"),
        (info(k=np.r_[np.nan, K.ravel()[1:]]), Problem.INVALID_CAMERA_INFO, "must be finite"),
        (info(height=480, width=640), Problem.SIZE_MISMATCH, "640x480 but the image is 3x2"),
        (info(binning_x=2), Problem.INVALID_CAMERA_INFO, "binning"),
    ],
)
def test_bad_camera_infos_raise_the_named_problem(message, problem, words):
    with pytest.raises(InputError, match=words) as error:
        camera_info_to_intrinsics(message, (2, 3))
    assert error.value.problem is problem
