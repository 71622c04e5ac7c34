"""Detections -> Detection3DArray / MarkerArray / TFMessage / VisionInfo / DiagnosticArray."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.serialization import deserialize_message, serialize_message
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import Marker

from cad_perception.pipeline.detection import CadMatch, Detection
from cad_perception.pipeline.overlay import category_colour
from cad_perception.ros.messages import (
    LABEL_NAMESPACE,
    MESH_NAMESPACE,
    detections_message,
    diagnostics_message,
    markers_message,
    tf_message,
    vision_info_message,
)
from cad_perception.ros.status import StatusSnapshot

CATEGORIES = ("bathtub", "bed", "bin", "bookshelf", "cabinet", "chair", "display", "sofa", "table")
HEADER = Header(frame_id="camera_optical")
HEADER.stamp.sec, HEADER.stamp.nanosec = 12, 345


def detection(seed: int, cads: tuple[CadMatch, ...]) -> Detection:
    rotation = Rotation.random(random_state=seed)
    x, y, z, w = rotation.as_quat()
    return Detection(
        category="chair",
        score=0.8,
        box=np.array([10, 20, 60, 90], np.float32),
        mask=np.zeros((4, 4), bool),
        R=rotation.as_matrix(),
        q=np.array([w, x, y, z]) * np.sign(w),
        t=np.array([0.3, -0.2, 2.5]),
        s=np.array([0.5, 0.9, 0.6]),
        extents=np.array([0.4, 0.85, 0.45]),
        alignment_valid=True,
        cads=cads,
    )


MATCHES = (CadMatch("proc-chair-00001", 0.2), CadMatch("proc-chair-00007", 1.0))
DETECTIONS = [detection(0, MATCHES), detection(1, ())]


def test_detection3darray_carries_pose_size_and_the_retrieved_cads():
    array = deserialize_message(
        serialize_message(detections_message(HEADER, DETECTIONS)), Detection3DArray
    )
    assert array.header == HEADER and [d.id for d in array.detections] == ["0", "1"]
    first = array.detections[0]
    assert first.header == HEADER
    q = first.bbox.center.orientation
    np.testing.assert_allclose(
        Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), DETECTIONS[0].R, atol=1e-12
    )
    position = first.bbox.center.position
    assert (position.x, position.y, position.z) == (0.3, -0.2, 2.5)
    assert (first.bbox.size.x, first.bbox.size.y, first.bbox.size.z) == (0.4, 0.85, 0.45)
    ids = [r.hypothesis.class_id for r in first.results]
    scores = [r.hypothesis.score for r in first.results]
    assert ids == ["proc-chair-00001", "proc-chair-00007"]
    np.testing.assert_allclose(scores, [0.8 * 0.9, 0.8 * 0.5])
    assert all(r.pose.pose == first.bbox.center for r in first.results)
    # Without a retrieved CAD the results still name the object (never empty).
    second = array.detections[1]
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in second.results] == [("chair", 0.8)]


def test_markers_clear_the_last_frame_then_draw_meshes_and_labels():
    markers = markers_message(
        HEADER, DETECTIONS, CATEGORIES, lambda cad_id: f"file:///db/{cad_id}.glb"
    ).markers
    assert markers[0].action == Marker.DELETEALL and len(markers) == 5
    mesh, label, box, _ = markers[1:]
    assert (mesh.ns, mesh.id, mesh.type) == (MESH_NAMESPACE, 0, Marker.MESH_RESOURCE)
    assert mesh.mesh_resource == "file:///db/proc-chair-00001.glb" and mesh.header == HEADER
    assert (mesh.scale.x, mesh.scale.y, mesh.scale.z) == (0.5, 0.9, 0.6)
    red, green, blue = category_colour("chair", CATEGORIES)
    assert (mesh.color.r, mesh.color.g, mesh.color.b) == pytest.approx(
        (red / 255, green / 255, blue / 255)
    )
    assert (label.ns, label.type, label.text) == (
        LABEL_NAMESPACE,
        Marker.TEXT_VIEW_FACING,
        "chair 0.80",
    )
    # The label sits above the object: along the object's up axis (canonical +y), past its top.
    offset = np.array([label.pose.position.x, label.pose.position.y, label.pose.position.z])
    along_up = (offset - DETECTIONS[0].t) @ DETECTIONS[0].R[:, 1]
    assert along_up > DETECTIONS[0].extents[1] / 2
    assert (box.type, box.id, box.scale.y) == (Marker.CUBE, 1, 0.85)


def test_tf_frames_are_children_of_the_image_frame():
    transforms = tf_message(HEADER, DETECTIONS, "object_").transforms
    assert [t.child_frame_id for t in transforms] == ["object_0", "object_1"]
    assert all(t.header == HEADER for t in transforms)
    assert transforms[1].transform.translation.z == 2.5
    assert transforms[1].transform.rotation.w == pytest.approx(DETECTIONS[1].q[0])


def test_vision_info_and_diagnostics():
    info = vision_info_message(HEADER, "ROCA /m on torch", "/db", 7)
    assert (info.method, info.database_location, info.database_version) == (
        "ROCA /m on torch",
        "/db",
        7,
    )
    snapshot = StatusSnapshot(
        level="warn", message="empty image: 0x0", processed=5, dropped=2, unpaired=1,
        rate_hz=2.5, latency_ms=310.0, pipeline_ms=250.0, overhead_ms=4.25,
        last_error="empty image: 0x0", problems={"empty image": 3},
    )  # fmt: skip
    array = diagnostics_message(HEADER, "cad_perception: /n", "/n", "torch", snapshot)
    status = array.status[0]
    assert status.level == DiagnosticStatus.WARN and status.message == "empty image: 0x0"
    values = {v.key: v.value for v in status.values}
    assert values["backend"] == "torch" and values["frames_dropped"] == "2"
    assert values["overhead_ms"] == "4.25" and values["problem: empty image"] == "3"
