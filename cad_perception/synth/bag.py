"""Rosbag2 recordings of rendered frames with their ground truth, written and read without ROS.

A bag is a rosbag2 directory (MCAP or sqlite3 storage, written with `rosbags`) holding, per frame,
a sensor_msgs/msg/Image (rgb8) on IMAGE_TOPIC and a sensor_msgs/msg/CameraInfo (plumb_bob, zero
distortion) on CAMERA_INFO_TOPIC, both stamped with the frame's time; messages are logged at their
header stamp. Next to the storage lies GROUND_TRUTH_FILE: a JSON list of scorer records
(eval/records.py) for every object of every frame, with scene = the frame's header stamp in
nanoseconds as a decimal string and the pose in the camera optical frame of DESIGN.md
(X_cam = R(q) (s * X_noc) + t, q = (w, x, y, z), w >= 0).

The reader also accepts bags recorded by `ros2 bag record` from a real camera: it pairs images
and camera infos by exact header stamp and converts the common 8-bit encodings to RGB.
"""

import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from cad_perception.eval import records
from cad_perception.eval.errors import EvalError
from cad_perception.eval.records import AlignmentRecord
from cad_perception.geometry.camera import validate_intrinsics
from cad_perception.geometry.rotations import matrix_to_quaternion
from cad_perception.synth.errors import BagError
from cad_perception.synth.frame import Frame, FrameObject

logger = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/color/image_raw"
CAMERA_INFO_TOPIC = "/camera/color/camera_info"
FRAME_ID = "camera_color_optical_frame"
GROUND_TRUTH_FILE = "ground_truth.json"
DEFAULT_RATE_HZ = 15.0
DEFAULT_START_NS = 1_767_225_600 * 10**9
"""Stamp of the first frame by default: 2026-01-01T00:00:00Z."""

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_BAG_VERSION = 9

_ENCODINGS = {
    "rgb8": (3, [0, 1, 2]),
    "bgr8": (3, [2, 1, 0]),
    "rgba8": (4, [0, 1, 2]),
    "bgra8": (4, [2, 1, 0]),
    "mono8": (1, [0, 0, 0]),
}
"""Readable image encodings: channels per pixel and the channels that give R, G, B."""


class BagSummary(NamedTuple):
    """What `write_bag` wrote."""

    path: Path
    frames: int
    """Number of frames (one Image and one CameraInfo each)."""
    records: int
    """Number of ground-truth records (objects over all frames)."""
    start_ns: int
    """Header stamp of the first frame (of the would-be first frame if there were none)."""
    end_ns: int
    """Header stamp of the last frame (start_ns if there were none)."""


class BagFrame(NamedTuple):
    """One image of a bag with its intrinsics."""

    stamp_ns: int
    """Header stamp, nanoseconds since the epoch."""
    rgb: np.ndarray
    """(H, W, 3) uint8 image."""
    K: np.ndarray
    """(3, 3) float64 intrinsics."""
    frame_id: str
    """The image's header frame_id."""


def frame_stamp_ns(index: int, *, start_ns: int, rate_hz: float) -> int:
    """Header stamp of frame `index` at `rate_hz`: start_ns + round(index * 1e9 / rate_hz)."""
    return start_ns + round(index * 1e9 / rate_hz)


def write_bag(
    frames: Iterable[Frame],
    out: str | Path,
    *,
    storage: Literal["mcap", "sqlite3"] = "mcap",
    rate_hz: float = DEFAULT_RATE_HZ,
    start_ns: int = DEFAULT_START_NS,
    frame_id: str = FRAME_ID,
    progress: bool = True,
) -> BagSummary:
    """Write `frames` as a new rosbag2 directory `out` with its GROUND_TRUTH_FILE.

    Frame i is stamped `frame_stamp_ns(i, start_ns=start_ns, rate_hz=rate_hz)`. Frames are
    consumed lazily, so a generator that renders them streams to disk. Raises BagError if `out`
    exists already (nothing is overwritten) or a frame is invalid (rgb not (H, W, 3) uint8, K not
    a pinhole matrix); on any error the partly written directory is removed.
    """
    out = Path(out)
    if storage not in _STORAGES:
        raise ValueError(f"storage must be one of {', '.join(_STORAGES)}, got {storage!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    if out.exists():
        raise BagError(f"cannot write bag '{out}': it exists already (not overwriting)")
    writer = Writer(out, version=_BAG_VERSION, storage_plugin=_STORAGES[storage])
    try:
        writer.open()
    except (WriterError, OSError) as err:
        raise BagError(f"cannot write bag '{out}': {err}") from err
    try:  # from here on `out` is ours
        summary = _write(writer, frames, rate_hz, start_ns, frame_id, progress)
    except BaseException:
        writer.abort()
        shutil.rmtree(out, ignore_errors=True)
        raise
    logger.info("wrote %d frames and %d records to %s", summary.frames, summary.records, out)
    return summary


def _write(
    writer: Writer,
    frames: Iterable[Frame],
    rate_hz: float,
    start_ns: int,
    frame_id: str,
    progress: bool,
) -> BagSummary:
    typestore = _typestore()
    scenes: list[str] = []
    objects: list[FrameObject] = []
    stamp = start_ns
    count = 0
    total = len(frames) if hasattr(frames, "__len__") else None
    image_conn = writer.add_connection(IMAGE_TOPIC, IMAGE_TYPE, typestore=typestore)
    info_conn = writer.add_connection(CAMERA_INFO_TOPIC, CAMERA_INFO_TYPE, typestore=typestore)
    for index, frame in enumerate(
        tqdm(frames, total=total, desc="writing bag", unit="frame", disable=not progress)
    ):
        _check_frame(index, frame)
        stamp = frame_stamp_ns(index, start_ns=start_ns, rate_hz=rate_hz)
        header = _header(typestore, stamp, frame_id)
        image = _image_message(typestore, header, frame.rgb)
        info = _camera_info_message(typestore, header, frame.K, frame.rgb.shape[:2])
        writer.write(image_conn, stamp, typestore.serialize_cdr(image, IMAGE_TYPE))
        writer.write(info_conn, stamp, typestore.serialize_cdr(info, CAMERA_INFO_TYPE))
        scenes += [str(stamp)] * len(frame.objects)
        objects += frame.objects
        count = index + 1
    writer.close()
    ground_truth = _ground_truth(scenes, objects)
    try:  # never write what the loader would reject
        records.parse_ground_truth(ground_truth)
    except EvalError as err:
        raise BagError(f"invalid ground truth for bag '{writer.path}': {err}") from err
    with (writer.path / GROUND_TRUTH_FILE).open("w", encoding="utf-8") as file:
        json.dump(ground_truth, file, indent=1)
    return BagSummary(writer.path, count, len(ground_truth), start_ns, stamp)


def _check_frame(index: int, frame: Frame) -> None:
    rgb = frame.rgb
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise BagError(f"frame {index}: rgb must be an (H, W, 3) uint8 array")
    if rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise BagError(f"frame {index}: rgb must be an (H, W, 3) uint8 array, got {rgb.shape}")
    try:
        validate_intrinsics(torch.tensor(np.asarray(frame.K, dtype=np.float64)))
    except ValueError as err:
        raise BagError(f"frame {index}: invalid K: {err}") from err


def _ground_truth(scenes: list[str], objects: list[FrameObject]) -> list[dict[str, Any]]:
    """Scorer records (as JSON dicts) of `objects`, object i seen in scene `scenes[i]`."""
    if not objects:
        return []
    R = torch.tensor(np.stack([np.asarray(obj.R, dtype=np.float64) for obj in objects]))
    quaternions = matrix_to_quaternion(R).tolist()  # one batched call: (N, 4)
    return [
        AlignmentRecord(
            scene=scene,
            category=obj.category,
            cad_id=obj.cad_id,
            t=tuple(np.asarray(obj.t, dtype=np.float64).tolist()),
            q=tuple(q),
            s=tuple(np.asarray(obj.s, dtype=np.float64).tolist()),
            sym=obj.symmetry,
        ).to_json()
        for scene, obj, q in zip(scenes, objects, quaternions, strict=True)
    ]


@cache
def _typestore() -> Typestore:
    return get_typestore(Stores.ROS2_KILTED)


def _header(typestore: Typestore, stamp_ns: int, frame_id: str) -> object:
    sec, nanosec = divmod(stamp_ns, 10**9)
    time = typestore.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return typestore.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def _image_message(typestore: Typestore, header: object, rgb: np.ndarray) -> object:
    height, width, _ = rgb.shape
    return typestore.types[IMAGE_TYPE](
        header=header,
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(rgb).reshape(-1),
    )


def _camera_info_message(
    typestore: Typestore, header: object, K: np.ndarray, size: tuple[int, int]
) -> object:
    K = np.asarray(K, dtype=np.float64)
    roi = typestore.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return typestore.types[CAMERA_INFO_TYPE](
        header=header,
        height=size[0],
        width=size[1],
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=np.hstack([K, np.zeros((3, 1))]).reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def read_bag(
    path: str | Path,
    *,
    image_topic: str = IMAGE_TOPIC,
    camera_info_topic: str = CAMERA_INFO_TOPIC,
) -> Iterator[BagFrame]:
    """The frames of the bag at `path` (a rosbag2 directory or a single .mcap/.db3 file).

    Each image on `image_topic` is paired with the camera info on `camera_info_topic` of exactly
    the same header stamp; frames come in increasing stamp order as their pairs complete in the
    bag (log time). A message whose partner has not arrived when a later pair completes is
    skipped (counted in a warning). Images of encodings rgb8, bgr8, rgba8, bgra8 and mono8 are
    converted to RGB.

    Opening the bag and checking its topics happen at the call, so a missing or unreadable bag
    or a missing topic raises BagError at once. While iterating, BagError is raised for an
    unsupported encoding, an invalid K, a camera info of another image size, and at the end if
    the topics hold messages but not a single pair.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at '{path}'")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError) as err:
        raise BagError(f"cannot open bag '{path}': {err}") from err
    try:
        image_connections = _topic_connections(reader, path, image_topic, IMAGE_TYPE)
        info_connections = _topic_connections(reader, path, camera_info_topic, CAMERA_INFO_TYPE)
    except BagError:
        reader.close()
        raise
    return _paired_frames(reader, path, image_connections + info_connections, image_topic)


def _topic_connections(reader: Reader, path: Path, topic: str, msgtype: str) -> list[Connection]:
    topics = reader.topics
    if topic not in topics:
        present = ", ".join(f"{name} ({info.msgtype})" for name, info in sorted(topics.items()))
        raise BagError(f"bag '{path}' has no topic {topic}; topics present: {present or 'none'}")
    if topics[topic].msgtype != msgtype:
        raise BagError(
            f"bag '{path}': topic {topic} holds {topics[topic].msgtype}, expected {msgtype}"
        )
    return topics[topic].connections


def _paired_frames(
    reader: Reader, path: Path, connections: list[Connection], image_topic: str
) -> Iterator[BagFrame]:
    """Pair images and camera infos by header stamp, yielding frames in increasing stamp order.

    When a pair completes, messages still waiting with older stamps are dropped, and so is any
    later message stamped at or before the last frame: its partner could only come out of order.
    """
    typestore = _typestore()
    pending: dict[str, dict[int, Any]] = {IMAGE_TYPE: {}, CAMERA_INFO_TYPE: {}}
    last_stamp = -1
    paired = skipped = 0
    try:
        for connection, _, data in reader.messages(connections):
            try:
                message = typestore.deserialize_cdr(data, connection.msgtype)
            except SerdeError as err:
                raise BagError(f"bag '{path}': cannot decode {connection.topic}: {err}") from err
            stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
            if stamp <= last_stamp:
                skipped += 1
                continue
            other = CAMERA_INFO_TYPE if connection.msgtype == IMAGE_TYPE else IMAGE_TYPE
            partner = pending[other].pop(stamp, None)
            if partner is None:
                pending[connection.msgtype][stamp] = message
                continue
            image, info = (message, partner) if other == CAMERA_INFO_TYPE else (partner, message)
            skipped += sum(_drop_older(waiting, stamp) for waiting in pending.values())
            last_stamp = stamp
            paired += 1
            yield _bag_frame(path, stamp, image, info)
    finally:
        reader.close()
    skipped += sum(len(waiting) for waiting in pending.values())
    if skipped:
        logger.warning("bag '%s': skipped %d messages without a partner", path, skipped)
    if paired == 0 and skipped > 0:
        raise BagError(
            f"bag '{path}': no image on {image_topic} has a camera info with the same stamp"
        )


def _drop_older(waiting: dict[int, Any], stamp: int) -> int:
    """Remove the entries of `waiting` stamped before `stamp`; return how many there were."""
    stale = [s for s in waiting if s < stamp]
    for s in stale:
        del waiting[s]
    return len(stale)


def _bag_frame(path: Path, stamp: int, image: Any, info: Any) -> BagFrame:
    where = f"bag '{path}', stamp {stamp}"
    rgb = _image_to_rgb(image, where)
    K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    try:
        validate_intrinsics(torch.tensor(K))
    except ValueError as err:
        raise BagError(f"{where}: invalid camera info K: {err}") from err
    if (info.height, info.width) not in {(0, 0), rgb.shape[:2]}:
        raise BagError(
            f"{where}: camera info is for {info.width}x{info.height} images, "
            f"the image is {rgb.shape[1]}x{rgb.shape[0]}"
        )
    return BagFrame(stamp, rgb, K, image.header.frame_id)


def _image_to_rgb(image: Any, where: str) -> np.ndarray:
    """A sensor_msgs Image of a readable encoding as an (H, W, 3) uint8 array."""
    if image.encoding not in _ENCODINGS:
        raise BagError(
            f"{where}: unsupported image encoding {image.encoding!r} "
            f"(supported: {', '.join(_ENCODINGS)})"
        )
    channels, order = _ENCODINGS[image.encoding]
    height, width, step = image.height, image.width, image.step
    data = np.asarray(image.data, dtype=np.uint8)
    if step < width * channels or data.size < height * step:
        raise BagError(
            f"{where}: {image.encoding} image of {width}x{height} with step {step} "
            f"has {data.size} bytes"
        )
    rows = data[: height * step].reshape(height, step)[:, : width * channels]
    return np.ascontiguousarray(rows.reshape(height, width, channels)[..., order])


def load_ground_truth(bag: str | Path) -> list[AlignmentRecord] | None:
    """The ground-truth records stored in bag directory `bag`, None if it has none."""
    path = Path(bag) / GROUND_TRUTH_FILE
    if not path.is_file():
        return None
    try:
        return records.load_ground_truth(path)
    except EvalError as err:
        raise BagError(f"invalid ground truth in bag '{bag}': {err}") from err
