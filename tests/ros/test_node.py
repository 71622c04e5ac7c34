"""The node in-process over real DDS: every bad input is skipped with a warning and a diagnostics
status while the node keeps serving; the newest frame wins; lifecycle transitions by service."""

import io
import itertools
import os
import time
from dataclasses import dataclass

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from moveit_msgs.msg import CollisionObject
from PIL import Image as PilImage
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray, VisionInfo
from visualization_msgs.msg import MarkerArray

from cad_perception.ros.errors import Problem
from cad_perception.ros.node import CAMERA_INFO_TIMEOUT_S, CadPerceptionNode
from tests.ros.helpers import (
    Inbox,
    Spinner,
    camera_info_message,
    image_message,
    stamp_of,
    wait_for,
)

STAMPS = itertools.count(1_000_000_000_000, 50_000_000)  # 50 ms apart, always increasing
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
PIPELINE_TIMEOUT_S = 60.0
"""A frame through the untrained model takes seconds on a busy 2-core CPU."""


@dataclass
class Session:
    node: CadPerceptionNode
    camera: Node
    inbox: Inbox
    publishers: dict
    frame_rgb: np.ndarray
    frame_k: np.ndarray

    def publish(self, image=None, info=None, *, stamp=None, send_info=True) -> int:
        """Publish the frame (or the given image / camera info) at a new stamp; returns it."""
        stamp = next(STAMPS) if stamp is None else stamp
        if image is None:
            image = image_message(self.frame_rgb, stamp)
        if info is None:
            info = camera_info_message(self.frame_k, self.frame_rgb.shape[:2], stamp)
        for message in (image, info):
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 10**9)
        if send_info:
            self.publishers["info"].publish(info)
        self.publishers["image"].publish(image)
        return stamp

    def problems(self, problem: Problem) -> int:
        return self.node.status.snapshot(dropped=0, unpaired=0).problems.get(problem.value, 0)


def node_parameters(model_files, **extra) -> list[Parameter]:
    values = {
        "model_dir": str(model_files.model_dir),
        "cad_db": str(model_files.db_dir),
        "backend": "torch",
        "device": "cpu",
        "score_threshold": 0.0,
        "sync_slop": 0.0,
        "qos": "reliable",
        **extra,
    }
    return [Parameter(name, value=value) for name, value in values.items()]


def start_session(model_files, frames, namespace: str, **extra):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = CadPerceptionNode(
        context=context,
        namespace=namespace,
        parameter_overrides=node_parameters(model_files, **extra),
    )
    assert node.autostart()
    camera = Node("camera", namespace=namespace, context=context)
    image_kind = CompressedImage if extra.get("use_compressed") else Image
    image_topic = "image/compressed" if extra.get("use_compressed") else "image"
    publishers = {
        "image": camera.create_publisher(image_kind, image_topic, 10),
        "info": camera.create_publisher(CameraInfo, "camera_info", 10),
    }
    inbox = Inbox(
        camera,
        {
            "detections": (Detection3DArray, 10),
            "markers": (MarkerArray, 10),
            "/tf": (TFMessage, 100),
            "/diagnostics": (DiagnosticArray, 10),
            "debug_image": (Image, 10),
            "vision_info": (VisionInfo, LATCHED),
            "collision_object": (CollisionObject, 100),
        },
    )
    spinner = Spinner(context)
    spinner.add(node)
    spinner.add(camera)
    spinner.start()
    wait_for(
        lambda: publishers["image"].get_subscription_count() and inbox.messages["vision_info"],
        20,
        "the node's subscriptions and vision_info",
    )
    session = Session(node, camera, inbox, publishers, frames[0].rgb, frames[0].K)

    def stop():
        spinner.stop()
        node.close()
        node.destroy_node()
        camera.destroy_node()
        rclpy.try_shutdown(context=context)

    return session, stop


@pytest.fixture(scope="module")
def session(model_files, frames):
    session, stop = start_session(
        model_files,
        frames,
        "/node_test",
        publish_debug_image=True,
        object_frame_prefix="obj_",
        publish_collision_objects=True,
    )
    yield session
    stop()


def info_with(session: Session, **fields) -> CameraInfo:
    info = camera_info_message(session.frame_k, session.frame_rgb.shape[:2], 0)
    for name, value in fields.items():
        setattr(info, name, value)
    return info


BAD_INPUTS = {
    "unsupported_encoding": (
        lambda s: {"image": Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8))},
        Problem.UNSUPPORTED_ENCODING,
    ),
    "step_too_small": (
        lambda s: {"image": Image(height=2, width=4, encoding="rgb8", step=6, data=bytes(12))},
        Problem.INCONSISTENT_IMAGE,
    ),
    "data_size": (
        lambda s: {"image": Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11))},
        Problem.INCONSISTENT_IMAGE,
    ),
    "empty_image": (lambda s: {"image": Image(encoding="rgb8")}, Problem.EMPTY_IMAGE),
    "zero_k": (lambda s: {"info": info_with(s, k=np.zeros(9))}, Problem.INVALID_CAMERA_INFO),
    "nan_k": (
        lambda s: {"info": info_with(s, k=np.r_[np.nan, s.frame_k.ravel()[1:]])},
        Problem.INVALID_CAMERA_INFO,
    ),
    "size_mismatch": (
        lambda s: {"info": info_with(s, width=640, height=480)},
        Problem.SIZE_MISMATCH,
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_a_bad_frame_is_skipped_with_a_problem(session, case):
    make, problem = BAD_INPUTS[case]
    before = session.problems(problem)
    detections = len(session.inbox.messages["detections"])
    session.publish(**make(session))
    wait_for(lambda: session.problems(problem) > before, 10, f"problem {problem.value!r}")
    assert len(session.inbox.messages["detections"]) == detections


def test_stamps_going_backwards_are_a_problem(session):
    before = session.problems(Problem.STAMP_BACKWARDS)
    stamp = session.publish(image=image_message(np.zeros((4, 4, 3), np.uint8), 0))
    session.publish(stamp=stamp - 10**9)
    wait_for(lambda: session.problems(Problem.STAMP_BACKWARDS) > before, 10, "stamps backwards")


def test_images_without_camera_info_are_a_problem(session):
    before = session.problems(Problem.NO_CAMERA_INFO)
    small = np.zeros((4, 4, 3), np.uint8)
    deadline = CAMERA_INFO_TIMEOUT_S + 3
    for _ in range(int(deadline / 0.1)):
        session.publish(image=image_message(small, 0), send_info=False)
        if session.problems(Problem.NO_CAMERA_INFO) > before:
            break
        time.sleep(0.1)
    assert session.problems(Problem.NO_CAMERA_INFO) > before


def test_diagnostics_report_the_problems(session):
    def warned(messages):
        if not messages:
            return False
        status = messages[-1].status[0]
        values = {v.key: v.value for v in status.values}
        return status.level == DiagnosticStatus.WARN and all(
            f"problem: {p.value}" in values
            for p in (Problem.UNSUPPORTED_ENCODING, Problem.SIZE_MISMATCH, Problem.NO_CAMERA_INFO)
        )

    messages = session.inbox.wait("/diagnostics", warned, 5)
    status = messages[-1].status[0]
    assert status.name == "cad_perception: /node_test/cad_perception"
    assert {v.key: v.value for v in status.values}["backend"] == "torch"


def test_after_bad_input_it_serves_the_newest_frame_and_counts_drops(session):
    inbox = session.inbox
    seen = len(inbox.messages["detections"])
    stamps = [session.publish() for _ in range(5)]  # far faster than the pipeline runs
    inbox.wait("detections", lambda m: m and stamp_of(m[-1]) == stamps[-1], PIPELINE_TIMEOUT_S)
    received = [stamp_of(m) for m in inbox.messages["detections"][seen:]]
    assert received[0] == stamps[0] and len(received) < len(stamps)
    assert session.node._worker.dropped >= len(stamps) - len(received)

    array = inbox.messages["detections"][-1]
    assert array.header.frame_id == "camera" and 1 <= len(array.detections) <= 4
    for detection in array.detections:
        assert detection.results and all(0 <= r.hypothesis.score <= 1 for r in detection.results)
        assert detection.results[0].hypothesis.class_id.startswith("proc-")
        assert min(detection.bbox.size.x, detection.bbox.size.y, detection.bbox.size.z) > 0
    markers = inbox.wait("markers", lambda m: m and stamp_of(m[-1].markers[0]) == stamps[-1], 5)
    assert len(markers[-1].markers) == 1 + 2 * len(array.detections)
    tf = inbox.wait("/tf", lambda m: m and stamp_of(m[-1].transforms[0]) == stamps[-1], 5)
    assert [t.child_frame_id for t in tf[-1].transforms][:1] == ["obj_0"]
    debug = inbox.wait("debug_image", lambda m: m and stamp_of(m[-1]) == stamps[-1], 5)
    assert (debug[-1].height, debug[-1].width, debug[-1].encoding) == (240, 320, "rgb8")
    objects = inbox.wait("collision_object", lambda m: m and stamp_of(m[-1]) == stamps[-1], 5)
    latest = [m for m in objects if stamp_of(m) == stamps[-1]]
    adds = [m for m in latest if m.operation == CollisionObject.ADD]
    assert len(adds) == len(array.detections)
    assert {m.type.key for m in adds} == {
        d.results[0].hypothesis.class_id for d in array.detections
    }
    assert all(m.meshes and m.meshes[0].triangles for m in adds)


def change_state(session: Session, transition: int) -> bool:
    client = session.camera.create_client(ChangeState, "cad_perception/change_state")
    try:
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        wait_for(future.done, 30, "change_state")
        return future.result().success
    finally:
        session.camera.destroy_client(client)


def test_deactivate_stops_processing_and_activate_resumes(session):
    assert change_state(session, Transition.TRANSITION_DEACTIVATE)
    wait_for(lambda: session.publishers["image"].get_subscription_count() == 0, 10, "unsubscribe")
    assert change_state(session, Transition.TRANSITION_ACTIVATE)
    wait_for(lambda: session.publishers["image"].get_subscription_count() == 1, 10, "subscribe")


def test_configure_fails_with_a_bad_parameter(ros_context, model_files, capfd):
    node = CadPerceptionNode(
        context=ros_context,
        namespace="/bad_parameter",
        parameter_overrides=node_parameters(model_files, backend="cuda", autostart=False),
    )
    try:
        assert node.autostart()  # autostart false: nothing to do
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        message = (
            "parameter backend must be one of auto, tensorrt, onnxruntime, onnxruntime-int8, "
            "torch, got 'cuda'"
        )
        assert message in capfd.readouterr().err
    finally:
        node.close()
        node.destroy_node()


def test_compressed_images_are_decoded_and_bad_ones_skipped(model_files, frames):
    session, stop = start_session(model_files, frames, "/compressed_test", use_compressed=True)
    try:
        before = session.problems(Problem.UNDECODABLE_IMAGE)
        session.publish(image=CompressedImage(format="jpeg", data=b"\xff\xd8 broken"))
        wait_for(lambda: session.problems(Problem.UNDECODABLE_IMAGE) > before, 10, "undecodable")
        buffer = io.BytesIO()
        PilImage.fromarray(session.frame_rgb).save(buffer, format="PNG")
        stamp = session.publish(image=CompressedImage(format="png", data=buffer.getvalue()))
        session.inbox.wait(
            "detections", lambda m: m and stamp_of(m[-1]) == stamp, PIPELINE_TIMEOUT_S
        )
    finally:
        stop()
