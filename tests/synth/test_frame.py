import dataclasses

import numpy as np
import pytest

from cad_perception.synth.frame import Frame, FrameObject


def make_frame(height: int = 4, width: int = 6) -> Frame:
    instance = np.zeros((height, width), dtype=np.int32)
    instance[1:3, 2:5] = 1
    noc = np.full((height, width, 3), np.nan, dtype=np.float32)
    noc[instance == 1] = 0.1
    item = FrameObject(
        instance=1,
        cad_id="proc-chair-00001",
        category="chair",
        symmetry="none",
        R=np.eye(3),
        t=np.array([0.0, 0.0, 2.0]),
        s=np.array([0.5, 0.9, 0.5]),
        bbox=(2, 1, 3, 2),
        visible_pixels=6,
        occlusion_ratio=0.25,
    )
    return Frame(
        rgb=np.zeros((height, width, 3), dtype=np.uint8),
        depth=np.ones((height, width), dtype=np.float32),
        instance=instance,
        noc=noc,
        K=np.array([[5.0, 0.0, 2.5], [0.0, 5.0, 1.5], [0.0, 0.0, 1.0]]),
        objects=(item,),
    )


def test_frame_reports_its_size_and_holds_its_objects():
    frame = make_frame(4, 6)
    assert frame.size == (4, 6)
    (item,) = frame.objects
    x, y, w, h = item.bbox
    assert (
        np.count_nonzero(frame.instance[y : y + h, x : x + w] == item.instance)
        == item.visible_pixels
    )


def test_frames_and_objects_are_frozen():
    frame = make_frame()
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.rgb = np.zeros((1, 1, 3), dtype=np.uint8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.objects[0].cad_id = "other"
