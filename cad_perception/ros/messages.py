"""Detections and node health -> the ROS messages the node publishes.

Poses are the Detection's X_cam = R (s * X_canonical) + t in the image's optical frame: the
object frame's origin is the centre of the CAD's bounding box, its axes the CAD's canonical axes
(y up); quaternions go from (w, x, y, z) to geometry_msgs' named fields.
"""

from collections.abc import Callable, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, Quaternion, TransformStamped, Vector3
from std_msgs.msg import ColorRGBA, Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import (
    Detection3D,
    Detection3DArray,
    ObjectHypothesisWithPose,
    VisionInfo,
)
from visualization_msgs.msg import Marker, MarkerArray

from cad_perception.pipeline.detection import Detection
from cad_perception.pipeline.overlay import category_colour
from cad_perception.ros.status import StatusSnapshot

MESH_NAMESPACE = "cad_mesh"
LABEL_NAMESPACE = "cad_label"
MARKER_ALPHA = 0.8
LABEL_HEIGHT_M = 0.08
LABEL_MARGIN_M = 0.05
DIAGNOSTIC_LEVELS = {
    "ok": DiagnosticStatus.OK,
    "warn": DiagnosticStatus.WARN,
    "error": DiagnosticStatus.ERROR,
    "stale": DiagnosticStatus.STALE,
}


def detection_pose(detection: Detection) -> Pose:
    """The object's pose (its bounding-box centre and canonical axes) in the camera frame."""
    w, x, y, z = (float(v) for v in detection.q)
    tx, ty, tz = (float(v) for v in detection.t)
    return Pose(position=Point(x=tx, y=ty, z=tz), orientation=Quaternion(x=x, y=y, z=z, w=w))


def detections_message(header: Header, detections: Sequence[Detection]) -> Detection3DArray:
    """Detection3DArray: per object bbox = (pose, metric extents), id = its index in the frame,
    results = the retrieved CADs (class_id = CAD id, score = detection score x retrieval
    similarity, in [0, 1]); an object without a CAD gets one result: its category and score."""
    array = Detection3DArray(header=header)
    for index, detection in enumerate(detections):
        pose = detection_pose(detection)
        size = Vector3(**dict(zip("xyz", (float(v) for v in detection.extents), strict=True)))
        message = Detection3D(header=header, id=str(index))
        message.bbox.center, message.bbox.size = pose, size
        hypotheses = [(m.cad_id, detection.score * m.similarity) for m in detection.cads]
        for class_id, score in hypotheses or [(detection.category, detection.score)]:
            result = ObjectHypothesisWithPose()
            result.hypothesis.class_id = class_id
            result.hypothesis.score = float(np.clip(score, 0.0, 1.0))
            result.pose.pose = pose
            message.results.append(result)
        array.detections.append(message)
    return array


def markers_message(
    header: Header,
    detections: Sequence[Detection],
    categories: Sequence[str],
    mesh_uri: Callable[[str], str],
) -> MarkerArray:
    """MarkerArray: DELETEALL (clears the previous frame's markers), then per object a
    MESH_RESOURCE marker of its CAD (`mesh_uri(cad_id)`, scaled by s; a box of its extents when
    no CAD was retrieved) coloured by category, and a "category score" text above it."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for index, detection in enumerate(detections):
        red, green, blue = (c / 255.0 for c in category_colour(detection.category, categories))
        colour = ColorRGBA(r=red, g=green, b=blue, a=MARKER_ALPHA)
        body = Marker(header=header, ns=MESH_NAMESPACE, id=index, action=Marker.ADD, color=colour)
        body.pose = detection_pose(detection)
        if detection.cad_id is not None:
            body.type = Marker.MESH_RESOURCE
            body.mesh_resource = mesh_uri(detection.cad_id)
            scale = detection.s
        else:
            body.type = Marker.CUBE
            scale = detection.extents
        body.scale = Vector3(**dict(zip("xyz", (float(v) for v in scale), strict=True)))
        top = detection.R @ np.array([0.0, detection.extents[1] / 2 + LABEL_MARGIN_M, 0.0])
        tx, ty, tz = (float(v) for v in detection.t + top)
        label = Marker(header=header, ns=LABEL_NAMESPACE, id=index, action=Marker.ADD)
        label.type = Marker.TEXT_VIEW_FACING
        label.pose = Pose(position=Point(x=tx, y=ty, z=tz), orientation=Quaternion(w=1.0))
        label.scale.z = LABEL_HEIGHT_M
        label.color = ColorRGBA(r=red, g=green, b=blue, a=1.0)
        label.text = f"{detection.category} {detection.score:.2f}"
        markers += [body, label]
    return MarkerArray(markers=markers)


def tf_message(header: Header, detections: Sequence[Detection], prefix: str) -> TFMessage:
    """TFMessage: frame `<prefix><index>` of each object under the image's frame."""
    transforms = []
    for index, detection in enumerate(detections):
        pose = detection_pose(detection)
        transform = TransformStamped(header=header, child_frame_id=f"{prefix}{index}")
        position = pose.position
        transform.transform.translation = Vector3(x=position.x, y=position.y, z=position.z)
        transform.transform.rotation = pose.orientation
        transforms.append(transform)
    return TFMessage(transforms=transforms)


def vision_info_message(
    header: Header, method: str, database_location: str, database_version: int
) -> VisionInfo:
    """VisionInfo naming the model (method) and the CAD database and its version."""
    return VisionInfo(
        header=header,
        method=method,
        database_location=database_location,
        database_version=int(database_version),
    )


def diagnostics_message(
    header: Header, name: str, hardware_id: str, backend: str, snapshot: StatusSnapshot
) -> DiagnosticArray:
    """DiagnosticArray with one status: level and message of the snapshot, and its figures
    (rate, latencies, counters, backend, last error, problem counts) as key-values."""
    values = {
        "backend": backend,
        "rate_hz": f"{snapshot.rate_hz:.2f}",
        "latency_ms": f"{snapshot.latency_ms:.1f}",
        "pipeline_ms": f"{snapshot.pipeline_ms:.1f}",
        "overhead_ms": f"{snapshot.overhead_ms:.2f}",
        "frames_processed": str(snapshot.processed),
        "frames_dropped": str(snapshot.dropped),
        "images_unpaired": str(snapshot.unpaired),
        "last_error": snapshot.last_error,
        **{f"problem: {problem}": str(count) for problem, count in snapshot.problems.items()},
    }
    status = DiagnosticStatus(
        level=DIAGNOSTIC_LEVELS[snapshot.level],
        name=name,
        message=snapshot.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in values.items()],
    )
    return DiagnosticArray(header=header, status=[status])
