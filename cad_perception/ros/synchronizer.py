"""Pair images with camera infos by stamp (message_filters is not on PyPI; this is the small
part of it the node needs).

A pair is formed as soon as an image and a camera info whose stamps differ by at most `slop`
nanoseconds are both in: the nearest stamp wins among those that are waiting (slop 0 pairs exact
stamps only). Only newer frames matter, so forming a pair drops the images waiting before it
(counted in `unpaired`), and a bounded number of messages wait. A stamp older than the newest one
of its stream raises InputError(STAMP_BACKWARDS) and clears the waiting messages, so that a bag
played again in a loop pairs again from its first frame on.
"""

from collections import deque
from dataclasses import dataclass
from typing import Any

from cad_perception.ros.errors import InputError, Problem

QUEUE_SIZE = 10
"""Messages of each stream kept waiting for their partner."""


@dataclass(frozen=True)
class Pair:
    """An image message and the camera info paired with it (`stamp_ns`: the image's stamp)."""

    image: Any
    info: Any
    stamp_ns: int


class StampSynchronizer:
    """Pairs image and camera-info messages by stamp (module docstring). Not thread-safe."""

    def __init__(self, slop_ns: int, queue_size: int = QUEUE_SIZE):
        if slop_ns < 0:
            raise ValueError(f"slop_ns must be >= 0, got {slop_ns}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop_ns = slop_ns
        self._images: deque[tuple[int, Any]] = deque()
        self._infos: deque[tuple[int, Any]] = deque(maxlen=queue_size)
        self._queue_size = queue_size
        self._newest = {"image": -1, "camera_info": -1}
        self.unpaired = 0
        """Images dropped without a camera info (superseded, queue full or stamps reset)."""

    def add_image(self, stamp_ns: int, image: Any) -> Pair | None:
        """Add an image; the Pair it completes, or None while it waits."""
        self._check_order("image", stamp_ns)
        info = _nearest(self._infos, stamp_ns, self.slop_ns)
        if info is not None:
            self._drop_images_before(stamp_ns)
            return Pair(image, info, stamp_ns)
        self._images.append((stamp_ns, image))
        if len(self._images) > self._queue_size:
            self._images.popleft()
            self.unpaired += 1
        return None

    def add_info(self, stamp_ns: int, info: Any) -> Pair | None:
        """Add a camera info; the Pair it completes with the newest waiting image it fits, or
        None."""
        self._check_order("camera_info", stamp_ns)
        self._infos.append((stamp_ns, info))
        for index in range(len(self._images) - 1, -1, -1):
            image_stamp, image = self._images[index]
            if _nearest(self._infos, image_stamp, self.slop_ns) is info:
                del self._images[index]
                self._drop_images_before(image_stamp)
                return Pair(image, info, image_stamp)
        return None

    @property
    def waiting_images(self) -> int:
        return len(self._images)

    def _check_order(self, stream: str, stamp_ns: int) -> None:
        newest = self._newest[stream]
        if stamp_ns < newest:
            self.unpaired += len(self._images)
            self._images.clear()
            self._infos.clear()
            self._newest = {"image": -1, "camera_info": -1}
            raise InputError(
                Problem.STAMP_BACKWARDS,
                f"{stream} stamp went backwards by {(newest - stamp_ns) / 1e9:.3f} s; the waiting "
                "messages were dropped (a restarted or looping source pairs again from here)",
            )
        self._newest[stream] = stamp_ns

    def _drop_images_before(self, stamp_ns: int) -> None:
        while self._images and self._images[0][0] <= stamp_ns:
            self._images.popleft()
            self.unpaired += 1


def _nearest(messages: deque[tuple[int, Any]], stamp_ns: int, slop_ns: int) -> Any | None:
    """The message of `messages` nearest to stamp_ns within slop_ns, or None."""
    best, best_gap = None, slop_ns + 1
    for stamp, message in messages:
        gap = abs(stamp - stamp_ns)
        if gap < best_gap:
            best, best_gap = message, gap
    return best
