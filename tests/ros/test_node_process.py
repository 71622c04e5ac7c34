"""The node as users run it: a separate process started like the console script, with the
parameters file, overrides, a namespace and remapped inputs; synthetic frames in over DDS,
detections, markers, TF and vision_info out; a clean exit on Ctrl-C."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray, VisionInfo
from visualization_msgs.msg import Marker, MarkerArray

from tests.ros.helpers import Inbox, Spinner, camera_info_message, image_message, stamp_of

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / "config" / "cad_perception.yaml"
START_TIMEOUT_S = 90.0


def node_command(*ros_args: str) -> list[str]:
    """The console script's entry point (`cad_perception_node` once the package is installed)."""
    return [sys.executable, "-m", "cad_perception.ros.node", "--ros-args", *ros_args]


@pytest.mark.slow  # ~30 s on a busy 2-core CPU: process start-up, model load, a frame
def test_process_turns_camera_frames_into_detections_markers_and_tf(model_files, frames):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        node_command(
            "--params-file", str(PARAMS_FILE),
            "-p", f"model_dir:={model_files.model_dir}",
            "-p", f"cad_db:={model_files.db_dir}",
            "-p", "backend:=torch", "-p", "score_threshold:=0.0", "-p", "top_k:=2",
            "-r", "__ns:=/robot",
            "-r", "image:=/camera/image_rect", "-r", "camera_info:=/camera/camera_info",
        ),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    camera = Node("camera_driver", context=context)
    spinner = Spinner(context)
    try:
        images = camera.create_publisher(Image, "/camera/image_rect", 10)
        infos = camera.create_publisher(CameraInfo, "/camera/camera_info", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        inbox = Inbox(
            camera,
            {
                "/robot/detections": (Detection3DArray, 10),
                "/robot/markers": (MarkerArray, 10),
                "/tf": (TFMessage, 100),
                "/robot/vision_info": (VisionInfo, latched),
            },
        )
        spinner.add(camera)
        spinner.start()
        published = {}
        for index in range(int(START_TIMEOUT_S / 0.5)):  # until the node is up and answers
            frame = frames[index % 2]
            stamp = 1_700_000_000_000_000_000 + index * 500_000_000
            infos.publish(camera_info_message(frame.K, frame.rgb.shape[:2], stamp, "cam_optical"))
            images.publish(image_message(frame.rgb, stamp, "cam_optical"))
            published[stamp] = frame
            if inbox.messages["/robot/detections"] or process.poll() is not None:
                break
            spinner._stopping.wait(0.5)
        assert process.poll() is None, process.communicate()[0]
        array = inbox.wait("/robot/detections", len, 5)[0]
        stamp = stamp_of(array)
        assert stamp in published and array.header.frame_id == "cam_optical"
        assert 1 <= len(array.detections) <= 4
        for detection in array.detections:
            assert 1 <= len(detection.results) <= 2  # top_k 2; one CAD per category
            assert detection.results[0].hypothesis.class_id.startswith("proc-")
            assert all(0.0 <= r.hypothesis.score <= 1.0 for r in detection.results)
            assert detection.bbox.center.position.z != 0.0

        def this_frame(message):
            return stamp_of(message) == stamp

        markers = inbox.wait(
            "/robot/markers", lambda m: any(this_frame(a.markers[0]) for a in m), 10
        )
        meshes = [
            marker
            for marker in next(a for a in markers if this_frame(a.markers[0])).markers
            if marker.type == Marker.MESH_RESOURCE
        ]
        assert len(meshes) == len(array.detections)
        for marker in meshes:
            assert marker.mesh_resource.startswith("file://")
            assert Path(marker.mesh_resource.removeprefix("file://")).is_file()
        tf = inbox.wait("/tf", lambda m: any(this_frame(t.transforms[0]) for t in m), 10)
        transforms = next(t for t in tf if this_frame(t.transforms[0])).transforms
        assert [t.child_frame_id for t in transforms] == [
            f"object_{i}" for i in range(len(array.detections))
        ]
        assert {t.header.frame_id for t in transforms} == {"cam_optical"}
        np.testing.assert_allclose(
            transforms[0].transform.translation.z, array.detections[0].bbox.center.position.z
        )
        info = inbox.wait("/robot/vision_info", len, 10)[0]
        assert info.database_location == str(model_files.db_dir.resolve())
        assert info.database_version > 0 and "torch" in info.method
    finally:
        spinner.stop()
        camera.destroy_node()
        rclpy.try_shutdown(context=context)
        process.send_signal(signal.SIGINT)
        try:
            output = process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0]
            raise AssertionError(f"the node did not exit on SIGINT:\n{output}") from None
    assert process.returncode == 0, output
    assert "active: /camera/image_rect + /camera/camera_info -> /robot/detections" in output


def test_process_exits_with_status_1_naming_a_bad_parameter():
    result = subprocess.run(
        node_command("-p", "qos:=fast", "-p", "top_k:=0"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "parameter qos must be one of sensor_data, reliable, got 'fast'" in result.stderr
    assert "parameter top_k must be an integer >= 1, got 0" in result.stderr
