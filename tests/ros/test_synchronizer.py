"""Pairing images with camera infos by stamp."""

import pytest

from cad_perception.ros.errors import InputError, Problem
from cad_perception.ros.synchronizer import StampSynchronizer

MS = 1_000_000


def test_exact_stamps_pair_whichever_arrives_first():
    sync = StampSynchronizer(slop_ns=0)
    assert sync.add_image(100, "image-a") is None
    pair = sync.add_info(100, "info-a")
    assert (pair.image, pair.info, pair.stamp_ns) == ("image-a", "info-a", 100)
    assert sync.add_info(200, "info-b") is None
    assert sync.add_image(200, "image-b").info == "info-b"
    assert sync.unpaired == 0 and sync.waiting_images == 0


def test_slop_zero_never_pairs_different_stamps():
    sync = StampSynchronizer(slop_ns=0)
    sync.add_info(100, "info")
    assert sync.add_image(101, "image") is None


def test_nearest_info_within_slop_wins_and_outside_slop_waits():
    sync = StampSynchronizer(slop_ns=10 * MS)
    sync.add_info(0, "info-0")
    sync.add_info(33 * MS, "info-33")
    assert sync.add_image(30 * MS, "image-30").info == "info-33"
    assert sync.add_image(50 * MS, "image-50") is None  # 17 ms from the nearest info
    assert sync.add_info(55 * MS, "info-55").image == "image-50"


def test_a_pair_drops_the_images_waiting_before_it():
    sync = StampSynchronizer(slop_ns=0)
    for stamp in (1, 2, 3):
        sync.add_image(stamp, f"image-{stamp}")
    assert sync.add_info(3, "info-3").image == "image-3"
    assert (sync.unpaired, sync.waiting_images) == (2, 0)


def test_waiting_images_are_bounded():
    sync = StampSynchronizer(slop_ns=0, queue_size=3)
    for stamp in range(10):
        sync.add_image(stamp, stamp)
    assert (sync.waiting_images, sync.unpaired) == (3, 7)


def test_stamps_going_backwards_raise_reset_and_pair_again():
    sync = StampSynchronizer(slop_ns=0)
    sync.add_info(500, "info-500")
    sync.add_image(600, "image-600")
    with pytest.raises(InputError, match=r"image stamp went backwards by 0\.000 s") as error:
        sync.add_image(100, "image-100")
    assert error.value.problem is Problem.STAMP_BACKWARDS
    assert sync.unpaired == 1 and sync.waiting_images == 0
    # A looping source starts over: its older stamps pair again.
    assert sync.add_info(100, "info-100") is None
    assert sync.add_image(100, "image-100").info == "info-100"
    with pytest.raises(InputError):
        sync.add_info(50, "info-50")


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="slop_ns"):
        StampSynchronizer(slop_ns=-1)
    with pytest.raises(ValueError, match="queue_size"):
        StampSynchronizer(slop_ns=0, queue_size=0)
