import numpy as np
import pytest

from cad_perception.synth import rle

RNG_SEED = 11


def numpy_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_known_answer_for_a_3x3_mask():
    mask = np.array([[0, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
    # Column-major pixels: column 0 = 0 0 0, column 1 = 1 1 0, column 2 = 0 1 1
    # -> runs 3 (bg), 2 (fg), 2 (bg), 2 (fg). The 4th run is stored as 2 - run[1] = 0.
    # Each value fits one 5-bit group without the sign bit: chr(48 + value).
    assert rle.mask_to_runs(mask).tolist() == [3, 2, 2, 2]
    encoded = rle.encode(mask)
    assert encoded == {"size": [3, 3], "counts": "3220"}
    assert rle.area(encoded) == 4
    assert rle.bbox(encoded) == [1.0, 0.0, 2.0, 3.0]


def test_known_answer_with_multi_group_signed_and_delta_coded_runs():
    # A 1 x 100 mask: runs 40 (bg), 16 (fg), 2 (bg), 13 (fg), 29 (bg).
    mask = np.zeros((1, 100), dtype=bool)
    mask[0, 40:56] = True
    mask[0, 58:71] = True
    # run 0 = 40 = 8 + 1 * 32: group 8 with "more" (8 + 32 + 48 = 'X'), then group 1 ('1')
    # run 1 = 16: group 16 has the sign bit, so a 0 group must follow: '`' (16+32+48), '0'
    # run 2 = 2: '2'
    # run 3 = 13 - run 1 = -3: group -3 & 31 = 29, rest -1 and sign bit set: 'M' (29 + 48)
    # run 4 = 29 - run 2 = 27: group 27 has the sign bit: 'k' (27 + 32 + 48), then '0'
    expected = "X1`02Mk0"
    assert rle.encode(mask)["counts"] == expected
    assert rle.string_to_runs(expected).tolist() == [40, 16, 2, 13, 29]
    np.testing.assert_array_equal(rle.decode({"size": [1, 100], "counts": expected}), mask)


def test_a_mask_starting_with_foreground_starts_with_an_empty_run():
    mask = np.ones((2, 2), dtype=bool)
    assert rle.mask_to_runs(mask).tolist() == [0, 4]
    assert rle.encode(mask)["counts"] == "04"


def test_uncompressed_and_bytes_counts_are_accepted():
    mask = np.array([[0, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
    for counts in ([3, 2, 2, 2], b"3220"):
        decoded = rle.decode({"size": [3, 3], "counts": counts})
        np.testing.assert_array_equal(decoded, mask)
    assert rle.area({"size": [3, 3], "counts": [3, 2, 2, 2]}) == 4


@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 0.95, 1.0])
def test_round_trip_area_and_bbox_on_random_masks(density):
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(20):
        height, width = rng.integers(1, 40, size=2)
        mask = rng.random((height, width)) < density
        if density not in (0.0, 1.0) and rng.random() < 0.5:  # blobs as well as noise
            mask = np.zeros((height, width), dtype=bool)
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            mask[y0 : rng.integers(y0, height) + 1, x0 : rng.integers(x0, width) + 1] = True
        encoded = rle.encode(mask)
        assert encoded["size"] == [height, width] and isinstance(encoded["counts"], str)
        np.testing.assert_array_equal(rle.decode(encoded), mask)
        runs = rle.mask_to_runs(mask)
        np.testing.assert_array_equal(rle.string_to_runs(encoded["counts"]), runs)
        assert rle.area(encoded) == mask.sum()
        assert rle.bbox(encoded) == numpy_bbox(mask)
        uncompressed = {"size": [height, width], "counts": runs.tolist()}
        np.testing.assert_array_equal(rle.decode(uncompressed), mask)


def test_empty_and_full_masks():
    empty, full = np.zeros((4, 6), dtype=bool), np.ones((4, 6), dtype=bool)
    assert rle.mask_to_runs(empty).tolist() == [24]
    assert rle.bbox(rle.encode(empty)) == [0.0, 0.0, 0.0, 0.0]
    assert rle.area(rle.encode(empty)) == 0
    assert rle.bbox(rle.encode(full)) == [0.0, 0.0, 6.0, 4.0]
    assert rle.area(rle.encode(full)) == 24
    np.testing.assert_array_equal(rle.decode(rle.encode(full)), full)


def test_bbox_of_a_run_wrapping_into_the_next_column_spans_all_rows():
    mask = np.zeros((3, 3), dtype=bool)
    mask[2, 0] = mask[0, 1] = True  # one run: the last pixel of column 0, the first of column 1
    assert rle.mask_to_runs(mask).tolist() == [2, 2, 5]
    assert rle.bbox(rle.encode(mask)) == [0.0, 0.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"size": [3, 3], "counts": [3, 2, 2]}, "cover 7 pixels"),
        ({"size": [3, 3], "counts": [3, -2, 8]}, "negative"),
        ({"size": [3, 3], "counts": "3 20"}, "invalid character"),
        ({"size": [3, 3], "counts": "9X"}, "middle of a number"),
        ({"size": [3], "counts": "9"}, "size"),
        ({"counts": "9"}, "size"),
        ({"size": [3, 3], "counts": 9}, "counts"),
    ],
)
def test_malformed_rles_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        rle.decode(bad)
