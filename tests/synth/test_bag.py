"""Rosbag writer and reader: round trips (rosbags, mcap_ros2), foreign encodings, errors."""

import json
import logging
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from cad_perception.geometry.rotations import quaternion_to_matrix
from cad_perception.synth.bag import (
    CAMERA_INFO_TOPIC,
    GROUND_TRUTH_FILE,
    IMAGE_TOPIC,
    load_ground_truth,
    read_bag,
    write_bag,
)
from cad_perception.synth.errors import BagError
from cad_perception.synth.frame import Frame, FrameObject

with warnings.catch_warnings():  # mcap_ros2 imports mcap_ros1's deprecated reader module
    warnings.simplefilter("ignore", DeprecationWarning)
    from mcap_ros2.reader import read_ros2_messages

START_NS = 1_700_000_000_123_456_789
SIZE = (6, 8)  # (H, W)
TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def make_frame(rng: np.random.Generator, index: int, size: tuple[int, int] = SIZE) -> Frame:
    """A frame with random pixels, per-frame intrinsics and two randomly posed objects."""
    height, width = size
    K = np.array([[50.0 + index, 0.0, width / 2 - 0.3], [0.0, 52.5 + index, height / 2], [0, 0, 1]])
    quaternions = torch.as_tensor(rng.normal(size=(2, 4)))
    rotations = quaternion_to_matrix(quaternions).numpy()
    objects = tuple(
        FrameObject(
            instance=k + 1,
            cad_id=f"proc-chair-{index:03d}{k}",
            category=("chair", "table")[k],
            symmetry=("none", "rot4")[k],
            R=rotations[k],
            t=rng.uniform(-1, 3, size=3),
            s=rng.uniform(0.3, 2.0, size=3),
            bbox=(0, 0, 2, 2),
            visible_pixels=4,
            occlusion_ratio=0.25,
        )
        for k in range(2)
    )
    return Frame(
        rgb=rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8),
        depth=np.zeros(size, np.float32),
        instance=np.zeros(size, np.int32),
        noc=np.full((height, width, 3), np.nan, np.float32),
        K=K,
        objects=objects,
    )


def make_frames(count: int, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [make_frame(rng, i) for i in range(count)]


def expected_stamps(count: int) -> list[int]:
    return [START_NS + round(Fraction(i * 10**9, 15)) for i in range(count)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_then_read_round_trips(tmp_path: Path, storage: str):
    frames = make_frames(16)
    out = tmp_path / "bag"
    summary = write_bag(frames, out, storage=storage, start_ns=START_NS, progress=False)

    assert summary.frames == 16 and summary.records == 32
    assert list(out.glob("*.mcap" if storage == "mcap" else "*.db3"))
    read = list(read_bag(out))
    assert len(read) == len(frames)
    stamps = [frame.stamp_ns for frame in read]
    assert stamps == expected_stamps(16)
    assert stamps[15] - stamps[0] == 10**9  # exactly 15 Hz over a second
    assert (summary.start_ns, summary.end_ns) == (stamps[0], stamps[-1])
    for got, frame in zip(read, frames, strict=True):
        assert got.rgb.dtype == np.uint8 and got.rgb.shape == (*SIZE, 3)
        assert got.rgb.tobytes() == frame.rgb.tobytes()
        assert got.K.dtype == np.float64 and np.array_equal(got.K, frame.K)
        assert got.frame_id == "camera_color_optical_frame"


def test_mcap_bag_decodes_with_mcap_ros2(tmp_path: Path):
    frames = make_frames(3)
    out = tmp_path / "bag"
    write_bag(frames, out, start_ns=START_NS, frame_id="cam", progress=False)
    (mcap_file,) = out.glob("*.mcap")

    images, infos = [], []
    for message in read_ros2_messages(str(mcap_file)):
        msg = message.ros_msg
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert message.log_time_ns == stamp and msg.header.frame_id == "cam"
        {IMAGE_TOPIC: images, CAMERA_INFO_TOPIC: infos}[message.channel.topic].append((stamp, msg))

    assert [s for s, _ in images] == [s for s, _ in infos] == expected_stamps(3)
    for (_, image), (_, info), frame in zip(images, infos, frames, strict=True):
        assert (image.height, image.width) == SIZE
        assert image.encoding == "rgb8" and image.is_bigendian == 0 and image.step == 3 * SIZE[1]
        assert bytes(image.data) == frame.rgb.tobytes()
        assert (info.height, info.width) == SIZE and info.distortion_model == "plumb_bob"
        assert list(info.d) == [0.0] * 5
        assert list(info.k) == frame.K.reshape(-1).tolist()
        assert list(info.r) == np.eye(3).reshape(-1).tolist()
        expected_p = np.hstack([frame.K, np.zeros((3, 1))]).reshape(-1).tolist()
        assert list(info.p) == expected_p


def test_ground_truth_matches_frame_objects(tmp_path: Path):
    frames = make_frames(4, seed=1)
    out = tmp_path / "bag"
    write_bag(frames, out, start_ns=START_NS, progress=False)
    raw = json.loads((out / GROUND_TRUTH_FILE).read_text())
    records = load_ground_truth(out)

    assert records is not None and len(records) == len(raw) == 8
    image_stamps = [str(frame.stamp_ns) for frame in read_bag(out)]
    assert [record["scene"] for record in raw] == [s for s in image_stamps for _ in range(2)]
    objects = [obj for frame in frames for obj in frame.objects]
    for record, obj in zip(records, objects, strict=True):
        assert (record.cad_id, record.category, record.sym) == (
            obj.cad_id,
            obj.category,
            obj.symmetry,
        )
        assert record.score is None
        np.testing.assert_array_equal(record.t, obj.t)
        np.testing.assert_array_equal(record.s, obj.s)
        assert record.q[0] >= 0
        R = quaternion_to_matrix(torch.tensor(record.q, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(R, obj.R, atol=1e-12)


def test_ground_truth_is_none_without_file(tmp_path: Path):
    write_bag(make_frames(1), tmp_path / "bag", progress=False)
    (tmp_path / "bag" / GROUND_TRUTH_FILE).unlink()
    assert load_ground_truth(tmp_path / "bag") is None


def write_foreign_bag(path: Path, images: list[tuple[int, str, np.ndarray, int]]) -> None:
    """A sqlite3 bag as `ros2 bag record` could write it, by hand with rosbags.

    `images` are (stamp, encoding, (H, W, C) pixels, row padding bytes), each logged just after
    its camera info. Also recorded: an unrelated topic; an image at 3 s whose camera info is
    logged last, and a complete pair at 3.5 s logged last: the reader must skip these four
    messages, since pairing them would yield stamps out of order. No ground truth.
    """
    height, width = SIZE
    types = TYPESTORE.types
    K = np.array([[40.0, 0, 3.5], [0, 40.0, 2.5], [0, 0, 1]])

    def header(stamp: int) -> object:
        time = types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9)
        return types["std_msgs/msg/Header"](stamp=time, frame_id="camera")

    def camera_info(stamp: int) -> object:
        roi = types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False)
        return types["sensor_msgs/msg/CameraInfo"](
            header(stamp), height, width, "plumb_bob", np.zeros(5), K.reshape(-1),
            np.eye(3).reshape(-1), np.zeros(12), 0, 0, roi,
        )  # fmt: skip

    def image(stamp: int, encoding: str, pixels: np.ndarray, padding: int) -> object:
        rows = pixels.reshape(height, -1)
        data = np.hstack([rows, np.full((height, padding), 7, np.uint8)]).reshape(-1)
        step = rows.shape[1] + padding
        return types["sensor_msgs/msg/Image"](header(stamp), height, width, encoding, 0, step, data)

    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        other = writer.add_connection("/tf_static", "std_msgs/msg/String", typestore=TYPESTORE)
        image_conn = writer.add_connection(
            IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=TYPESTORE
        )
        info_conn = writer.add_connection(
            CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TYPESTORE
        )

        def write(connection, log_time: int, message: object) -> None:
            writer.write(connection, log_time, TYPESTORE.serialize_cdr(message, connection.msgtype))

        write(other, 1, types["std_msgs/msg/String"](data="x"))
        for stamp, encoding, pixels, padding in images:
            write(info_conn, stamp + 5, camera_info(stamp))
            write(image_conn, stamp + 9, image(stamp, encoding, pixels, padding))
        late = 3 * 10**9
        write(image_conn, late, image(late, "rgb8", np.zeros((*SIZE, 3), np.uint8), 0))
        write(info_conn, 10**12, camera_info(late))
        write(image_conn, 10**12 + 1, image(late + 5 * 10**8, "rgb8", images[0][2], 0))
        write(info_conn, 10**12 + 2, camera_info(late + 5 * 10**8))


def test_reads_foreign_encodings_as_rgb(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(4, *SIZE, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=SIZE, dtype=np.uint8)
    alpha = np.full((*SIZE, 1), 200, np.uint8)
    images = [
        (10**9, "bgr8", rgb[0][..., ::-1], 0),
        (2 * 10**9, "rgba8", np.concatenate([rgb[1], alpha], axis=-1), 3),
        (4 * 10**9, "bgra8", np.concatenate([rgb[2][..., ::-1], alpha], axis=-1), 0),
        (5 * 10**9, "mono8", gray, 2),
        (6 * 10**9, "rgb8", rgb[3], 1),
    ]
    write_foreign_bag(tmp_path / "bag", images)

    with caplog.at_level(logging.WARNING):
        read = list(read_bag(tmp_path / "bag"))
    assert [frame.stamp_ns for frame in read] == [stamp for stamp, *_ in images]
    assert "skipped 4 messages without a partner" in caplog.text
    expected = [rgb[0], rgb[1], rgb[2], np.repeat(gray[..., None], 3, axis=-1), rgb[3]]
    for frame, want in zip(read, expected, strict=True):
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (*SIZE, 3)
        np.testing.assert_array_equal(frame.rgb, want)
        assert frame.frame_id == "camera" and frame.K[0, 0] == 40.0
    assert load_ground_truth(tmp_path / "bag") is None


def test_unsupported_encoding_is_an_error(tmp_path: Path):
    data = np.zeros((*SIZE, 2), np.uint8)
    write_foreign_bag(tmp_path / "bag", [(10**9, "16UC1", data, 0)])
    with pytest.raises(BagError, match="unsupported image encoding '16UC1'"):
        list(read_bag(tmp_path / "bag"))


def test_missing_bag_is_an_error(tmp_path: Path):
    with pytest.raises(BagError, match="no bag at"):
        read_bag(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="cannot open bag"):
        read_bag(tmp_path / "empty")


def test_wrong_topic_names_list_the_topics_present(tmp_path: Path):
    write_bag(make_frames(2), tmp_path / "bag", progress=False)
    with pytest.raises(BagError, match="no topic /rgb/image") as info:
        read_bag(tmp_path / "bag", image_topic="/rgb/image")
    assert f"{IMAGE_TOPIC} (sensor_msgs/msg/Image)" in str(info.value)
    assert f"{CAMERA_INFO_TOPIC} (sensor_msgs/msg/CameraInfo)" in str(info.value)
    with pytest.raises(BagError, match="holds sensor_msgs/msg/Image, expected"):
        read_bag(tmp_path / "bag", camera_info_topic=IMAGE_TOPIC)


def test_refuses_to_overwrite(tmp_path: Path):
    out = tmp_path / "bag"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BagError, match="exists already"):
        write_bag(make_frames(1), out, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("rgb", np.zeros((*SIZE, 3), np.float32), "uint8"),
        ("rgb", np.zeros((*SIZE, 4), np.uint8), r"\(6, 8, 4\)"),
        ("K", np.diag([50.0, -50.0, 1.0]), "invalid K"),
    ],
)
def test_invalid_frame_is_an_error_and_leaves_no_bag(tmp_path: Path, field, value, match):
    frames = make_frames(3)
    bad = frames[2]
    frames[2] = Frame(**{**bad.__dict__, field: value})
    with pytest.raises(BagError, match=f"frame 2: .*{match}"):
        write_bag(iter(frames), tmp_path / "bag", progress=False)
    assert not (tmp_path / "bag").exists()


def test_invalid_object_is_an_error_and_leaves_no_bag(tmp_path: Path):
    frames = make_frames(2)
    bad = frames[1].objects[0]
    objects = (FrameObject(**{**bad.__dict__, "symmetry": "rot3"}), frames[1].objects[1])
    frames[1] = Frame(**{**frames[1].__dict__, "objects": objects})
    with pytest.raises(BagError, match=r"invalid ground truth.*'sym'"):
        write_bag(frames, tmp_path / "bag", progress=False)
    assert not (tmp_path / "bag").exists()


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="storage"):
        write_bag([], tmp_path / "a", storage="rosbag1", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate_hz"):
        write_bag([], tmp_path / "b", rate_hz=0.0, progress=False)


def test_empty_sequence_writes_an_empty_bag(tmp_path: Path):
    summary = write_bag([], tmp_path / "bag", progress=False)
    assert (summary.frames, summary.records) == (0, 0)
    assert list(read_bag(tmp_path / "bag")) == []
    assert load_ground_truth(tmp_path / "bag") == []
