"""Helpers of the ROS adapter tests: message builders, a background executor, polling."""

import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image


def image_message(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera") -> Image:
    """rgb8 sensor_msgs/Image of (H, W, 3) uint8 `rgb`."""
    message = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=3 * rgb.shape[1])
    message.data = rgb.tobytes()
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return message


def camera_info_message(
    K: np.ndarray, size: tuple[int, int], stamp_ns: int, frame_id: str = "camera"
) -> CameraInfo:
    """CameraInfo of K (3, 3) for an (H, W) image."""
    message = CameraInfo(height=size[0], width=size[1], k=np.asarray(K, dtype=np.float64).ravel())
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return message


class Spinner:
    """An executor spinning nodes in a background thread until `stop()`."""

    def __init__(self, context: "rclpy.Context"):
        self.executor = MultiThreadedExecutor(num_threads=2, context=context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stopping = threading.Event()

    def add(self, node) -> None:
        self.executor.add_node(node)

    def start(self) -> "Spinner":
        self._thread.start()
        return self

    def _spin(self) -> None:
        while not self._stopping.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "executor thread did not stop"
        self.executor.shutdown()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` every 20 ms until truthy; AssertionError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Inbox:
    """Subscriptions of a test node that keep every message received, per topic."""

    def __init__(self, node, topics: dict[str, tuple[type, object]]):
        self.messages: dict[str, list] = {topic: [] for topic in topics}
        self._subscriptions = [
            node.create_subscription(kind, topic, self.messages[topic].append, qos)
            for topic, (kind, qos) in topics.items()
        ]

    def wait(self, topic: str, condition: Callable[[list], object], timeout: float) -> list:
        """The messages of `topic` once condition(messages) holds."""
        wait_for(lambda: condition(self.messages[topic]), timeout, f"messages on {topic}")
        return self.messages[topic]


def stamp_of(message) -> int:
    """The header stamp of `message` in nanoseconds."""
    return message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
