import numpy as np
import pytest

from cad_perception.synth.frame import Frame
from cad_perception.synth.preview import contact_sheet, depth_image, frame_row, noc_image


def frame(height: int = 6, width: int = 8) -> Frame:
    depth = np.zeros((height, width), np.float32)
    depth[:, : width // 2] = 1.0
    depth[:, width // 2 :] = 3.0
    depth[0, 0] = 0.0
    instance = np.zeros((height, width), np.int32)
    instance[2:4, 2:5] = 1
    noc = np.full((height, width, 3), np.nan, np.float32)
    noc[2:4, 2:5] = [0.5, -0.5, 0.0]
    rgb = np.full((height, width, 3), 100, np.uint8)
    K = np.array([[10.0, 0, 4], [0, 10, 3], [0, 0, 1]])
    return Frame(rgb=rgb, depth=depth, instance=instance, noc=noc, K=K, objects=())


def test_depth_image_is_bright_near_dark_far_and_black_without_hit():
    image = depth_image(frame().depth)
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image[1, 0, 0] == 255 and image[1, -1, 0] == 40


def test_noc_image_maps_coordinates_to_colours():
    image = noc_image(frame().noc)
    assert image[2, 2].tolist() == [255, 0, 127]
    assert image[0, 0].tolist() == [0, 0, 0]


def test_row_and_sheet_layout():
    row = frame_row(frame())
    assert row.shape == (6, 4 * 8 + 3 * 2, 3)
    assert (row[:, 8:10] == 255).all()  # the gap after the RGB panel
    instance_panel = row[:, 3 * 10 :]
    assert (instance_panel[2:4, 2:5] != 0).any(axis=-1).all()
    assert (instance_panel[0] == 0).all()
    sheet = contact_sheet([frame(), frame()])
    assert sheet.shape == (6 * 2 + 2, row.shape[1], 3)
    with pytest.raises(ValueError):
        contact_sheet([])
    with pytest.raises(ValueError):
        contact_sheet([frame(), frame(6, 10)])
