"""The message packages set-up builds (or a ROS install provides): import, wire format, DDS."""

import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (run `make setup`)")
serialization = pytest.importorskip("rclpy.serialization")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (`make setup`)")
tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (`make setup`)")
typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed")

from geometry_msgs.msg import TransformStamped  # noqa: E402

# Upstream field lists (ros-perception/vision_msgs, ROS 2 4.x): what our package must match.
UPSTREAM_VISION_MSGS = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection3DArray": (
        "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n"
    ),
    "vision_msgs/msg/VisionInfo": (
        "std_msgs/Header header\nstring method\nstring database_location\nint32 database_version\n"
    ),
}


def upstream_typestore():
    """A rosbags typestore holding ROS 2 Kilted's types plus upstream vision_msgs."""
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    types = {}
    for name, text in UPSTREAM_VISION_MSGS.items():
        types.update(typesys.get_types_from_msg(text, name))
    store.register(types)
    return store


def sample_detections() -> "vision_msgs.Detection3DArray":
    array = vision_msgs.Detection3DArray()
    array.header.frame_id = "camera_color_optical_frame"
    array.header.stamp.sec, array.header.stamp.nanosec = 17, 250
    for index in range(2):
        detection = vision_msgs.Detection3D()
        detection.header = array.header
        detection.id = str(index)
        detection.bbox.center.position.x = 0.5 + index
        detection.bbox.center.orientation.w = 1.0
        detection.bbox.size.x, detection.bbox.size.y, detection.bbox.size.z = 0.4, 0.9, 0.5
        hypothesis = vision_msgs.ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = f"chair/cad_{index}"
        hypothesis.hypothesis.score = 0.75
        hypothesis.pose.pose = detection.bbox.center
        hypothesis.pose.covariance = np.arange(36, dtype=np.float64)
        detection.results.append(hypothesis)
        array.detections.append(detection)
    return array


def test_detection3darray_wire_format_matches_upstream_definition():
    message = sample_detections()
    raw = serialization.serialize_message(message)
    decoded = upstream_typestore().deserialize_cdr(raw, "vision_msgs/msg/Detection3DArray")
    assert decoded.header.frame_id == "camera_color_optical_frame"
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == (17, 250)
    assert [d.id for d in decoded.detections] == ["0", "1"]
    second = decoded.detections[1]
    assert second.bbox.center.position.x == 1.5
    assert (second.bbox.size.x, second.bbox.size.y, second.bbox.size.z) == (0.4, 0.9, 0.5)
    assert second.results[0].hypothesis.class_id == "chair/cad_1"
    np.testing.assert_array_equal(second.results[0].pose.covariance, np.arange(36.0))


def test_vision_info_wire_format_matches_upstream_definition():
    info = vision_msgs.VisionInfo(method="roca r18 v1", database_location="/db", database_version=7)
    decoded = upstream_typestore().deserialize_cdr(
        serialization.serialize_message(info), "vision_msgs/msg/VisionInfo"
    )
    assert (decoded.method, decoded.database_location, decoded.database_version) == (
        "roca r18 v1",
        "/db",
        7,
    )


def test_tf_message_round_trips_through_ros_kilted_definition():
    transform = TransformStamped()
    transform.header.frame_id = "camera"
    transform.child_frame_id = "object_0"
    transform.transform.translation.z = 2.0
    transform.transform.rotation.w = 1.0
    message = tf2_msgs.TFMessage(transforms=[transform])
    raw = serialization.serialize_message(message)

    # CDR alignment padding is unspecified, so compare decoded messages, not bytes.
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    decoded = store.deserialize_cdr(raw, "tf2_msgs/msg/TFMessage")
    assert decoded.transforms[0].child_frame_id == "object_0"
    assert decoded.transforms[0].transform.translation.z == 2.0
    reencoded = store.serialize_cdr(decoded, "tf2_msgs/msg/TFMessage").tobytes()
    assert serialization.deserialize_message(reencoded, tf2_msgs.TFMessage) == message


PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import rclpy
    from vision_msgs.msg import Detection3D, Detection3DArray
    rclpy.init()
    node = rclpy.create_node("test_publisher")
    pub = node.create_publisher(Detection3DArray, sys.argv[1], 10)
    array = Detection3DArray()
    array.header.frame_id = "cam"
    array.detections.append(Detection3D(id="chair-7"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pub.publish(array)
        time.sleep(0.05)
    """
)


def test_detection3darray_crosses_processes_over_dds():
    from rclpy.node import Node

    topic = f"detections_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "42")}
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, topic], env=env)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env["ROS_DOMAIN_ID"]))
    received = []
    try:
        node = Node("test_subscriber", context=context)
        node.create_subscription(vision_msgs.Detection3DArray, topic, received.append, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        for _ in range(300):
            executor.spin_once(timeout_sec=0.05)
            if received:
                break
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        publisher.kill()
        publisher.wait()
    assert received, "no Detection3DArray arrived over DDS within 15 s"
    assert received[0].header.frame_id == "cam"
    assert received[0].detections[0].id == "chair-7"
