"""Collision objects for MoveIt: CAD meshes in metres at the detected pose, stable ids, REMOVE
for objects that left, upstream-compatible wire format, delivered over real DDS."""

import threading
import time
import uuid

import numpy as np
import pytest
import trimesh

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (run `make setup`)")
moveit_msgs = pytest.importorskip("moveit_msgs.msg", reason="moveit_msgs not built (make setup)")
typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed")

from rclpy.serialization import serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from cad_perception.cad.database import CadDatabase  # noqa: E402
from cad_perception.cad.ingest import build_procedural  # noqa: E402
from cad_perception.pipeline.detection import CadMatch, Detection  # noqa: E402
from cad_perception.ros.collision_objects import CollisionScene  # noqa: E402

CollisionObject = moveit_msgs.CollisionObject

# moveit_msgs 2.x and object_recognition_msgs (ROS 2) field lists, as upstream defines them.
UPSTREAM = {
    "object_recognition_msgs/msg/ObjectType": "string key\nstring db\n",
    "moveit_msgs/msg/CollisionObject": (
        "std_msgs/Header header\ngeometry_msgs/Pose pose\nstring id\n"
        "object_recognition_msgs/ObjectType type\nshape_msgs/SolidPrimitive[] primitives\n"
        "geometry_msgs/Pose[] primitive_poses\nshape_msgs/Mesh[] meshes\n"
        "geometry_msgs/Pose[] mesh_poses\nshape_msgs/Plane[] planes\n"
        "geometry_msgs/Pose[] plane_poses\nstring[] subframe_names\n"
        "geometry_msgs/Pose[] subframe_poses\nbyte ADD=0\nbyte REMOVE=1\nbyte APPEND=2\n"
        "byte MOVE=3\nbyte operation\n"
    ),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> CadDatabase:
    path = tmp_path_factory.mktemp("collision") / "db"
    with CadDatabase.create(path) as database:
        build_procedural(database, 1, 0, progress=False)
    return CadDatabase.open(path, readonly=True)


def _detection(category: str, t: tuple[float, float, float], score: float = 0.9) -> Detection:
    angle = 0.4
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    q = np.array([np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0])
    return Detection(
        category=category,
        score=score,
        box=np.zeros(4, np.float32),
        mask=np.zeros((2, 2), bool),
        R=R,
        q=q,
        t=np.array(t),
        s=np.array([0.8, 1.1, 0.9]),
        extents=np.ones(3),
        alignment_valid=True,
        cads=(CadMatch(f"proc-{category}-00000", 0.1),),
    )


def _header() -> Header:
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = 12
    return header


def test_meshes_are_scaled_cads_at_the_detected_pose(db: CadDatabase) -> None:
    scene = CollisionScene(db, max_triangles=300)
    chair = _detection("chair", (0.3, 0.2, 2.0))
    (message,) = scene.update(_header(), [chair])
    assert message.operation == CollisionObject.ADD
    assert message.header.frame_id == "camera_color_optical_frame"
    assert message.type.key == "proc-chair-00000"
    assert message.id.startswith("cad_perception/chair_")
    assert (message.pose.position.x, message.pose.position.z) == (0.3, 2.0)
    assert message.pose.orientation.y == pytest.approx(np.sin(0.2))
    (mesh,) = message.meshes
    assert 0 < len(mesh.triangles) <= 300
    vertices = np.array([[p.x, p.y, p.z] for p in mesh.vertices])
    canonical = trimesh.load(db.get("proc-chair-00000").mesh_path, force="mesh")
    # the mesh's extents are the canonical mesh's times s, in metres (decimation moves the
    # surface by well under 2 %)
    np.testing.assert_allclose(
        np.ptp(vertices, axis=0), np.ptp(canonical.vertices, axis=0) * chair.s, rtol=0.02
    )


def test_ids_follow_objects_and_leavers_are_removed(db: CadDatabase) -> None:
    scene = CollisionScene(db)
    first = scene.update(
        _header(), [_detection("chair", (0, 0, 2)), _detection("table", (1, 0, 3))]
    )
    ids = {m.type.key: m.id for m in first}
    assert len(set(ids.values())) == 2
    # the chair moved 20 cm, the table left, a sofa came in
    second = scene.update(
        _header(), [_detection("chair", (0.2, 0, 2)), _detection("sofa", (-1, 0, 3), 0.5)]
    )
    adds = {m.type.key: m.id for m in second if m.operation == CollisionObject.ADD}
    removes = [m.id for m in second if m.operation == CollisionObject.REMOVE]
    assert adds["proc-chair-00000"] == ids["proc-chair-00000"]
    assert adds["proc-sofa-00000"] not in ids.values()
    assert removes == [ids["proc-table-00000"]]
    # a chair 2 m away is another object
    third = scene.update(_header(), [_detection("chair", (2.5, 0, 2))])
    assert {m.operation for m in third} == {CollisionObject.ADD, CollisionObject.REMOVE}
    assert [m.id for m in third if m.operation == CollisionObject.ADD] != [ids["proc-chair-00000"]]
    assert len(scene.clear(_header())) == 1


def test_wire_format_matches_upstream(db: CadDatabase) -> None:
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    types = {}
    for name, text in UPSTREAM.items():
        types.update(typesys.get_types_from_msg(text, name))
    store.register(types)
    (message,) = CollisionScene(db).update(_header(), [_detection("bed", (0, 0.5, 3))])
    decoded = store.deserialize_cdr(serialize_message(message), "moveit_msgs/msg/CollisionObject")
    assert decoded.id == message.id and decoded.type.key == "proc-bed-00000"
    assert decoded.operation == 0 and decoded.pose.position.z == 3.0
    assert len(decoded.meshes[0].vertices) == len(message.meshes[0].vertices)


def test_delivered_to_a_real_subscriber(db: CadDatabase) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        publisher_node = rclpy.create_node(f"co_pub_{uuid.uuid4().hex[:6]}", context=context)
        subscriber_node = rclpy.create_node(f"co_sub_{uuid.uuid4().hex[:6]}", context=context)
        topic = f"collision_object_{uuid.uuid4().hex[:6]}"
        received: list = []
        subscriber_node.create_subscription(CollisionObject, topic, received.append, 10)
        publisher = publisher_node.create_publisher(CollisionObject, topic, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(subscriber_node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        messages = CollisionScene(db).update(_header(), [_detection("cabinet", (0, 0, 2))])
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            for message in messages:
                publisher.publish(message)
            time.sleep(0.2)
        assert received, "no CollisionObject arrived within 15 s"
        assert received[0].type.key == "proc-cabinet-00000"
        assert received[0].meshes[0].triangles
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)
