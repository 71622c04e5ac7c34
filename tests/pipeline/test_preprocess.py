"""Fitting images to the engine input: content and K stay consistent, boxes map back, masks
paste onto the right pixels, bad inputs are refused."""

import numpy as np
import pytest

from cad_perception.pipeline.preprocess import fit_image, paste_masks

K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])


def _dot_image(height: int, width: int, u: int, v: int) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[v - 4 : v + 5, u - 4 : u + 5] = 255
    return image


@pytest.mark.parametrize("size", [(480, 640), (480, 480), (300, 900), (120, 160)])
def test_projected_point_lands_on_the_same_content(size: tuple[int, int]) -> None:
    height, width = size
    K_image = np.array([[400.0, 0, width / 2 - 0.5], [0, 400.0, height / 2 - 0.5], [0, 0, 1]])
    u, v = width // 2 + width // 7, height // 2 - height // 9  # an integer pixel off-centre
    point = 2.0 * np.linalg.solve(K_image, [u, v, 1.0])
    image = _dot_image(height, width, u, v)
    fitted, K_in, fit = fit_image(image, K_image, (240, 320))
    assert fitted.shape == (3, 240, 320) and fitted.dtype == np.float32
    assert fitted.min() >= 0.0 and fitted.max() <= 1.0
    u_in, v_in = (K_in.astype(np.float64) @ point)[:2] / point[2]
    brightness = fitted.mean(axis=0)
    ys, xs = np.nonzero(brightness > 0.5 * brightness.max())
    weights = brightness[ys, xs]
    centre = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
    assert np.abs(centre - [u_in, v_in]).max() < 1.0
    # an engine box around the dot maps back around the dot in the caller's image
    box = fit.boxes_to_image(np.array([[u_in - 2, v_in - 2, u_in + 3, v_in + 3]]))[0]
    assert box[0] < u + 0.5 < box[2] and box[1] < v + 0.5 < box[3]


def test_same_aspect_is_a_pure_resize() -> None:
    _, K_in, fit = fit_image(np.zeros((480, 640, 3), np.uint8), K, (240, 320))
    np.testing.assert_allclose(K_in[0], [250.0, 0.0, 159.5], atol=1e-4)
    assert (fit.x0, fit.y0) == (0.0, 0.0)
    np.testing.assert_allclose(
        fit.boxes_to_image(np.array([[10, 20, 30, 40.0]])), [[20, 40, 60, 80]]
    )


def test_paste_masks_fills_exactly_the_box_pixels() -> None:
    masks = np.ones((2, 16, 16), np.float32)
    masks[1, :, 8:] = 0.0  # right half empty
    pasted = paste_masks(masks, np.array([[10, 20, 30, 40], [0, 0, 8, 4.0]]), (50, 60))
    assert pasted.shape == (2, 50, 60)
    assert pasted[0].sum() == 400 and pasted[0, 20:40, 10:30].all()
    assert pasted[1, :4, :4].all() and not pasted[1, :, 4:].any()


@pytest.mark.parametrize(
    ("image", "K_bad", "message"),
    [
        (np.zeros((10, 10), np.uint8), K, "H, W, 3"),
        (np.zeros((10, 10, 3), np.float32), K, "uint8"),
        (np.zeros((0, 10, 3), np.uint8), K, "too small"),
        (np.zeros((10, 10, 3), np.uint8), np.eye(2), r"\(3, 3\)"),
        (np.zeros((10, 10, 3), np.uint8), np.full((3, 3), np.nan), "finite"),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((3, 3)), "fx > 0"),
    ],
)
def test_bad_inputs_are_refused(image, K_bad, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_image(image, K_bad, (240, 320))
