import numpy as np
import pytest
from PIL import Image

from cad_perception.synth import encoding
from cad_perception.synth.errors import DatasetError

RNG_SEED = 7


def random_noc(rng: np.random.Generator, shape=(24, 32)) -> np.ndarray:
    """(H, W, 3) float32 NOCs in [-0.5, 0.5]^3 with about a third of the pixels off-object."""
    noc = rng.uniform(-0.5, 0.5, size=(*shape, 3)).astype(np.float32)
    noc[rng.random(shape) < 0.3] = np.nan
    return noc


def test_depth_round_trips_to_a_millimetre_with_zero_for_no_hit(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    depth = rng.uniform(0.05, 60.0, size=(24, 32)).astype(np.float32)
    depth[0, :4] = [0.0, np.nan, -1.0, np.inf]
    encoding.write_depth(tmp_path / "d.png", depth)
    decoded = encoding.read_depth(tmp_path / "d.png")

    assert decoded.dtype == np.float32 and decoded.shape == depth.shape
    assert (decoded[0, :4] == 0).all()
    np.testing.assert_allclose(decoded[1:], depth[1:], atol=0.5e-3 + 1e-6, rtol=0)
    # Stored in millimetres: 1.2346 m -> 1235
    assert encoding.encode_depth(np.array([[1.2346]]))[0, 0] == 1235


def test_depth_clips_at_the_largest_16_bit_value():
    encoded = encoding.encode_depth(np.array([[65.535, 70.0, 1000.0]]))
    assert encoded.dtype == np.uint16
    assert encoded.tolist() == [[65535, 65535, 65535]]


def test_noc_round_trips_to_1e4_with_nan_off_object(tmp_path):
    noc = random_noc(np.random.default_rng(RNG_SEED))
    encoding.write_noc(tmp_path / "n.png", noc)
    decoded = encoding.read_noc(tmp_path / "n.png")

    assert decoded.dtype == np.float32 and decoded.shape == noc.shape
    off = np.isnan(noc).any(axis=-1)
    assert np.isnan(decoded[off]).all()
    assert np.isfinite(decoded[~off]).all()
    assert np.abs(decoded[~off] - noc[~off]).max() <= 0.5e-4 + 1e-6


def test_noc_encoding_is_rocas_and_off_object_pixels_are_zero():
    noc = np.array([[[-0.5, 0.0, 0.5], [np.nan, 0.1, 0.2]]], dtype=np.float32)
    encoded = encoding.encode_noc(noc)
    assert encoded.dtype == np.uint16
    assert encoded.tolist() == [[[5000, 10000, 15000], [0, 0, 0]]]


def test_noc_file_holds_x_y_z_in_its_red_green_blue_channels(tmp_path):
    """PIL reads RGB order (and 16-bit RGB as its high bytes): R must carry x, B must carry z."""
    noc = np.zeros((4, 5, 3), dtype=np.float32)
    noc[..., 0], noc[..., 1], noc[..., 2] = -0.5, 0.0, 0.5  # 5000, 10000, 15000
    noc[0, 0] = np.nan
    encoding.write_noc(tmp_path / "n.png", noc)

    pixels = np.asarray(Image.open(tmp_path / "n.png"))
    assert pixels.shape == (4, 5, 3)
    assert pixels[1, 1].tolist() == [5000 >> 8, 10000 >> 8, 15000 >> 8]
    assert pixels[0, 0].tolist() == [0, 0, 0]


def test_rgb_file_is_in_rgb_order_and_round_trips_exactly(tmp_path):
    rgb = np.random.default_rng(RNG_SEED).integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    rgb[0, 0] = [255, 0, 0]
    encoding.write_rgb(tmp_path / "c.png", rgb)

    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), rgb)
    np.testing.assert_array_equal(encoding.read_rgb(tmp_path / "c.png"), rgb)


def test_instance_round_trips_exactly_over_the_16_bit_range(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    instance = rng.integers(0, 65536, size=(9, 11)).astype(np.int32)
    instance[0, 0], instance[0, 1] = 0, 65535
    encoding.write_instance(tmp_path / "i.png", instance)
    decoded = encoding.read_instance(tmp_path / "i.png")

    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, instance)
    assert np.asarray(Image.open(tmp_path / "i.png")).dtype != np.uint8  # a 16-bit file


def test_eight_bit_instance_maps_are_accepted(tmp_path):
    instance = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    encoding.write_png(tmp_path / "i.png", instance)
    np.testing.assert_array_equal(encoding.read_instance(tmp_path / "i.png"), instance)


@pytest.mark.parametrize("values", [[[-1, 0]], [[0, 65536]], [[0.5, 1.0]]])
def test_instance_values_outside_uint16_or_not_integers_are_rejected(values):
    with pytest.raises(ValueError, match="instance"):
        encoding.encode_instance(np.array(values))


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="depth"):
        encoding.encode_depth(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="noc"):
        encoding.encode_noc(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        encoding.write_png("unused.png", np.zeros((2, 3), dtype=np.float32))


def test_reading_a_missing_or_broken_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match=r"missing\.png"):
        encoding.read_depth(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"broken\.png"):
        encoding.read_rgb(tmp_path / "broken.png")


def test_reading_a_file_of_the_wrong_kind_names_it(tmp_path):
    encoding.write_rgb(tmp_path / "c.png", np.zeros((2, 3, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"depth image .*c\.png.* uint16"):
        encoding.read_depth(tmp_path / "c.png")
    encoding.write_depth(tmp_path / "d.png", np.ones((2, 3)))
    with pytest.raises(DatasetError, match=r"NOC image .*d\.png"):
        encoding.read_noc(tmp_path / "d.png")
