"""Live replay: a rosbag published over DDS to the real cad_perception node, its detections
collected into a replay run (pipeline/replay.py).

    python -m cad_perception.ros.replay_live BAG --out RUN.json [--model DIR] [--db DB]
        [--backend B] [--rate R] [--score-threshold T] [--image-topic T] [--camera-info-topic T]

Why a process of its own: `cad-perception replay --live` lives in the CLI layer, which sits
below ROS and must not import rclpy, so it runs this module and reads the RUN.json it writes;
scoring and the report are the CLI's, shared with the offline mode.

What it does: start the node (`python -m cad_perception.ros.node`) as a child process in the
namespace NAMESPACE, its `image` and `camera_info` remapped to the bag's topics; wait until the
node is active (its latched vision_info arrived and it subscribes to both topics); publish the
bag's synchronised frames (as an rgb8 Image and a CameraInfo with the recorded header stamp,
frame_id and K, so the node sees what the offline replay sees) at their recorded rate scaled by
--rate; collect `detections` until every frame is answered or the node falls silent; stop the
node. A frame's latency is the time from publishing it to receiving its detections; published
frames never answered (the node keeps only the newest frame when busy) count as dropped.

From a vision_msgs/Detection3D back to a Detection: results[0].hypothesis.class_id is the best
CAD's id (its category comes from the CAD database) or, without a CAD, the category; the score
is results[0]'s (the node publishes detection score x retrieval similarity); bbox.center is the
pose, bbox.size the metric extents, and s = extents / the CAD's canonical extents (as the
Pipeline computes them). The message holds no 2D box or mask: the box is the image rectangle
around the projected 3D box, the mask is empty, the retrieval distances unknown (NaN).
"""

import argparse
import json
import logging
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection3D, Detection3DArray, VisionInfo

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.database import CadDatabase
from cad_perception.geometry.rotations import quaternion_to_matrix
from cad_perception.pipeline.defaults import default_model_dir, ensure_default_db
from cad_perception.pipeline.detection import CadMatch, Detection
from cad_perception.pipeline.overlay import project_points
from cad_perception.pipeline.replay import FrameResult, ReplayRun, run_to_json
from cad_perception.ros.image_conversion import rgb_to_image
from cad_perception.synth.bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, BagFrame, read_bag
from cad_perception.synth.errors import SynthError

logger = logging.getLogger(__name__)

NAMESPACE = "/cad_perception_replay"
"""The node's namespace: its detections arrive on NAMESPACE/detections."""
NODE_MODULE = "cad_perception.ros.node"
STARTUP_TIMEOUT_S = 600.0
"""Loading the model may export it to ONNX first (minutes on a CPU)."""
DRAIN_MIN_S = 3.0
"""After the last frame, wait at least this long (and 3x the slowest latency) for answers."""
STOP_TIMEOUT_S = 15.0
QUEUE = QoSProfile(depth=100)
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
_BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / 2.0


class LiveReplayError(RuntimeError):
    """The node did not start, died, or never became active (the message says why)."""


@dataclass(frozen=True)
class SentFrame:
    """A published frame: when, and what the converter needs of it."""

    published_s: float
    K: np.ndarray
    image_size: tuple[int, int]


class _Replayer(Node):
    """Publishes frames and records the node's answers (receive time, message) by stamp."""

    def __init__(self, image_topic: str, camera_info_topic: str, context: Context):
        super().__init__("cad_perception_replayer", context=context)
        self.image_publisher = self.create_publisher(Image, image_topic, QUEUE)
        self.info_publisher = self.create_publisher(CameraInfo, camera_info_topic, QUEUE)
        self.create_subscription(
            Detection3DArray, f"{NAMESPACE}/detections", self._on_detections, QUEUE
        )
        self.create_subscription(VisionInfo, f"{NAMESPACE}/vision_info", self._on_info, LATCHED)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, QUEUE)
        self.lock = threading.Lock()
        self.answers: dict[int, tuple[float, Detection3DArray]] = {}
        self.last_answer_s = -math.inf
        self.vision_info = threading.Event()
        self.backend: str | None = None

    def ready(self) -> bool:
        """The node is active and subscribes to both topics."""
        publishers = (self.image_publisher, self.info_publisher)
        subscribed = all(p.get_subscription_count() > 0 for p in publishers)
        return self.vision_info.is_set() and subscribed

    def publish(self, frame: BagFrame) -> float:
        """Publish one frame (camera info, then image); returns the publish time."""
        sec, nanosec = divmod(frame.stamp_ns, 10**9)
        header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame.frame_id)
        height, width = frame.rgb.shape[:2]
        info = CameraInfo(header=header, height=height, width=width, distortion_model="plumb_bob")
        info.d = [0.0] * 5
        info.k = frame.K.reshape(-1).tolist()
        info.r = np.eye(3).reshape(-1).tolist()
        info.p = np.hstack([frame.K, np.zeros((3, 1))]).reshape(-1).tolist()
        image = rgb_to_image(frame.rgb, header)
        published = time.perf_counter()
        self.info_publisher.publish(info)
        self.image_publisher.publish(image)
        return published

    def _on_detections(self, message: Detection3DArray) -> None:
        received = time.perf_counter()
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        with self.lock:
            self.answers.setdefault(stamp, (received, message))
            self.last_answer_s = received

    def _on_info(self, message: VisionInfo) -> None:
        logger.info("node active: %s", message.method)
        self.vision_info.set()

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            if status.hardware_id.startswith(NAMESPACE):
                values = {kv.key: kv.value for kv in status.values}
                self.backend = values.get("backend", self.backend)


def replay_live(
    bag: str | Path,
    *,
    model_dir: str | Path | None = None,
    db_dir: str | Path | None = None,
    backend: str = "auto",
    rate: float = 1.0,
    score_threshold: float = 0.5,
    image_topic: str = IMAGE_TOPIC,
    camera_info_topic: str = CAMERA_INFO_TOPIC,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> ReplayRun:
    """Replay `bag` through the node (module docstring), in a ROS context of its own.

    model_dir / db_dir None: the shipped model and the default CAD database (built if absent).
    The database is also read here, to turn CAD ids back into categories and scales. BagError
    for an unreadable bag, LiveReplayError when the node fails.
    """
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    frames = read_bag(bag, image_topic=image_topic, camera_info_topic=camera_info_topic)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    db_dir = Path(db_dir) if db_dir is not None else ensure_default_db(model_dir)
    parameters = {
        "model_dir": str(model_dir),
        "cad_db": str(db_dir),
        "backend": backend,
        "score_threshold": float(score_threshold),
        "publish_tf": False,
    }
    with tempfile.TemporaryFile(mode="w+", prefix="cad_perception_node_") as log:
        node_process = _start_node(parameters, image_topic, camera_info_topic, log)
        context = Context()
        rclpy.init(context=context)
        replayer = _Replayer(image_topic, camera_info_topic, context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(replayer)
        spinner = threading.Thread(target=executor.spin, name="replay_spin", daemon=True)
        spinner.start()
        try:
            _wait_until_ready(replayer, node_process, log, startup_timeout)
            sent = _publish(replayer, frames, rate)
            _drain(replayer, sent)
        finally:
            executor.shutdown()
            spinner.join(timeout=5.0)
            replayer.destroy_node()
            rclpy.try_shutdown(context=context)
            _stop_node(node_process)
    resolved_backend = replayer.backend or backend
    with CadDatabase.open(db_dir, readonly=True) as db:
        convert = DetectionConverter(db)
        results = []
        for stamp, frame in sent.items():
            if stamp not in replayer.answers:
                continue
            received, message = replayer.answers[stamp]
            detections = tuple(convert(d, frame) for d in message.detections)
            latency_ms = (received - frame.published_s) * 1000.0
            results.append(FrameResult(stamp, frame.image_size, detections, latency_ms, {}, False))
    logger.info("live replay: %d of %d frames answered", len(results), len(sent))
    return ReplayRun("live", resolved_backend, CATEGORIES, len(sent), tuple(results))


def _start_node(
    parameters: dict[str, object], image_topic: str, camera_info_topic: str, log
) -> subprocess.Popen:
    arguments = [sys.executable, "-m", NODE_MODULE, "--ros-args", "-r", f"__ns:={NAMESPACE}"]
    for name, value in parameters.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        arguments += ["-p", f"{name}:={text}"]
    arguments += ["-r", f"image:={image_topic}", "-r", f"camera_info:={camera_info_topic}"]
    logger.info("starting the node: %s", " ".join(arguments))
    return subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)


def _node_log_tail(log, lines: int = 5) -> str:
    log.flush()
    log.seek(0)
    tail = [line.strip() for line in log.read().splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(no output)"


def _wait_until_ready(replayer: _Replayer, process: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not replayer.ready():
        if process.poll() is not None:
            raise LiveReplayError(
                f"the node exited with status {process.returncode} before becoming active: "
                f"{_node_log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise LiveReplayError(
                f"the node did not become active within {timeout:.0f} s: {_node_log_tail(log)}"
            )
        time.sleep(0.05)


def _publish(replayer: _Replayer, frames, rate: float) -> dict[int, SentFrame]:
    """Publish every frame at its recorded time / rate; returns what was sent, by stamp."""
    sent: dict[int, SentFrame] = {}
    start_s = first_stamp = None
    for frame in frames:
        if first_stamp is None:
            start_s, first_stamp = time.perf_counter(), frame.stamp_ns
        due = start_s + (frame.stamp_ns - first_stamp) / 1e9 / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        published = replayer.publish(frame)
        sent[frame.stamp_ns] = SentFrame(published, frame.K, frame.rgb.shape[:2])
    logger.info("published %d frames", len(sent))
    return sent


def _drain(replayer: _Replayer, sent: dict[int, SentFrame]) -> None:
    """Wait until every sent frame is answered or no answer came for a while."""
    last_sent = max((s.published_s for s in sent.values()), default=time.perf_counter())
    while True:
        with replayer.lock:
            answered = sum(stamp in replayer.answers for stamp in sent)
            latencies = [
                r - sent[s].published_s for s, (r, _) in replayer.answers.items() if s in sent
            ]
            last_event = max(last_sent, replayer.last_answer_s)
        if answered == len(sent):
            return
        patience = max(DRAIN_MIN_S, 3.0 * max(latencies, default=0.0))
        if time.perf_counter() - last_event > patience:
            return
        time.sleep(0.05)


def _stop_node(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning(
                "the node did not stop on SIGINT within %.0f s; killing it", STOP_TIMEOUT_S
            )
            process.kill()
            process.wait()


class DetectionConverter:
    """Detection3D -> Detection (module docstring), with per-CAD lookups cached."""

    def __init__(self, db: CadDatabase):
        self.db = db
        self._cads: dict[str, tuple[str, np.ndarray] | None] = {}

    def cad(self, class_id: str) -> tuple[str, np.ndarray] | None:
        """(category, canonical extents (3,)) of a CAD id, None if class_id is no CAD."""
        if class_id not in self._cads:
            found = None
            if self.db.contains(class_id):
                record = self.db.get(class_id)
                samples = record.samples  # the Pipeline's canonical extents, bit for bit
                extents = (samples.max(axis=0) - samples.min(axis=0)).astype(np.float64)
                found = record.category, extents
            self._cads[class_id] = found
        return self._cads[class_id]

    def __call__(self, message: Detection3D, frame: SentFrame) -> Detection:
        if not message.results:
            raise LiveReplayError("the node published a detection without results")
        best = message.results[0].hypothesis
        center = message.bbox.center
        t = np.array([center.position.x, center.position.y, center.position.z])
        o = center.orientation
        q = np.array([o.w, o.x, o.y, o.z])
        q = q / np.linalg.norm(q) * (1.0 if q[0] >= 0 else -1.0)
        R = quaternion_to_matrix(torch.from_numpy(q)).numpy()
        extents = np.array([message.bbox.size.x, message.bbox.size.y, message.bbox.size.z])
        cad = self.cad(best.class_id)
        if cad is None:
            category, s, cads = best.class_id, extents.copy(), ()
        else:
            category, s = cad[0], extents / cad[1]
            cads = tuple(CadMatch(r.hypothesis.class_id, math.nan) for r in message.results)
        return Detection(
            category=category,
            score=float(best.score),
            box=_projected_box(R, t, extents, frame.K, frame.image_size),
            mask=np.broadcast_to(np.False_, frame.image_size),
            R=R,
            q=q,
            t=t,
            s=s,
            extents=extents,
            alignment_valid=True,
            cads=cads,
        )


def _projected_box(
    R: np.ndarray, t: np.ndarray, extents: np.ndarray, K: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """(4,) float32 x0, y0, x1, y1: the image rectangle around the projected 3D box (its
    corners in front of the camera), clipped to the image; zeros when none is in front."""
    uv, front = project_points((_BOX_CORNERS * extents) @ R.T + t, K)
    if not front.any():
        return np.zeros(4, np.float32)
    height, width = size
    x0, y0 = uv[front].min(axis=0)
    x1, y1 = uv[front].max(axis=0)
    return np.array(
        [
            np.clip(x0, 0, width),
            np.clip(y0, 0, height),
            np.clip(x1, 0, width),
            np.clip(y1, 0, height),
        ],
        np.float32,
    )


def main(argv: list[str] | None = None) -> int:
    """Run a live replay and write its run JSON; on failure log one line and return 2."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    parser.add_argument("bag")
    parser.add_argument("--out", required=True, help="run JSON to write")
    parser.add_argument("--model", help="model folder (default: the node's)")
    parser.add_argument("--db", help="CAD database folder (default: the node's)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--image-topic", default=IMAGE_TOPIC)
    parser.add_argument("--camera-info-topic", default=CAMERA_INFO_TOPIC)
    parser.add_argument("--startup-timeout", type=float, default=STARTUP_TIMEOUT_S)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    try:
        run = replay_live(
            args.bag,
            model_dir=args.model,
            db_dir=args.db,
            backend=args.backend,
            rate=args.rate,
            score_threshold=args.score_threshold,
            image_topic=args.image_topic,
            camera_info_topic=args.camera_info_topic,
            startup_timeout=args.startup_timeout,
        )
    except (LiveReplayError, ValueError, OSError, SynthError) as err:
        logger.debug("live replay failed", exc_info=True)
        logger.error(" ".join(str(err).split()))
        return 2
    Path(args.out).write_text(json.dumps(run_to_json(run)) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
