import numpy as np
import pytest

from cad_perception.engine.backend import check_inputs

SIZE = (24, 32)
K = np.array([[30.0, 0, 16], [0, 30, 12], [0, 0, 1]])


def test_check_inputs_adds_the_batch_dimension_as_contiguous_float32():
    image = np.random.default_rng(0).random((3, 24, 32))  # float64
    batch_image, batch_K = check_inputs(image, K, SIZE)
    assert batch_image.shape == (1, 3, 24, 32) and batch_image.dtype == np.float32
    assert batch_K.shape == (1, 3, 3) and batch_K.dtype == np.float32
    assert batch_image.flags.c_contiguous and batch_K.flags.c_contiguous
    np.testing.assert_allclose(batch_image[0], image, atol=1e-7)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((24, 32, 3), np.float32), r"\(3, 24, 32\)"),  # HWC
        (np.zeros((3, 48, 64), np.float32), "engine's input size"),
        (np.zeros((3, 24, 32), np.uint8), "dtype uint8"),
        (np.full((3, 24, 32), 255.0, np.float32), r"\[0, 1\]"),
        (np.full((3, 24, 32), np.nan, np.float32), r"\[0, 1\]"),
        ([[0.0]], "array"),
    ],
)
def test_check_inputs_rejects_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(image, K, SIZE)


@pytest.mark.parametrize(
    "bad_K",
    [
        np.eye(4),
        np.where(np.eye(3) > 0, np.nan, 0.0),
        np.diag([-30.0, 30.0, 1.0]),
        np.zeros((3, 3)),
    ],
)
def test_check_inputs_rejects_bad_intrinsics(bad_K):
    with pytest.raises(ValueError, match="K must"):
        check_inputs(np.zeros((3, 24, 32), np.float32), bad_K, SIZE)
