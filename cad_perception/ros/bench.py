"""Node benchmark and soak run: the real node in-process, fed by a camera at a fixed rate.

    python -m cad_perception.ros.bench [--model DIR] [--db DB] [--backend B] [--rate 30]
        [--duration S] [--size HxW] [--score-threshold T] [--json OUT]

What it does: render a handful of synthetic frames (SceneFrames of the CAD database) at --size;
start the node (CadPerceptionNode, in the namespace NAMESPACE, on its own single-threaded
executor as `cad_perception_node` runs it) with the model, database and backend (defaults: the
shipped model and the default CAD database; --score-threshold: the node's default); publish the
frames cycled at --rate Hz as rgb8 Image + CameraInfo with increasing stamps (the system clock
at publishing) and collect the node's `detections`. A warm-up publishes until the node has
answered WARMUP_FRAMES frames, then waits until the node is idle; the measured span publishes for
--duration seconds, then waits until the node is idle again, so that no frame is in flight when
the counts are read.

What it measures, over the frames published in the measured span (exact definitions):
- frames.published: frames the camera published.
- frames.processed: of those, frames answered on `detections`.
- frames.dropped = published - processed, of which
  dropped_by_worker: pairs the node's worker replaced with a newer one (by design when busy),
  unpaired: images the node's synchroniser dropped without a camera_info,
  unanswered: the rest (lost in transport, failed in the Pipeline, or still unanswered when the
  node fell silent for the drain's patience).
- overhead_ms, pipeline_ms: per processed frame, the node's own timings (NodeStatus.frame_done):
  time in the node beyond the Pipeline (conversion + publishing) and the Pipeline call.
- latency_ms: per processed frame, receive time of its detections minus its stamp (both the
  system clock of this process).
- detections_mean: objects per answer (an untrained model at the default threshold finds none,
  and then the overhead covers empty messages only: pass --score-threshold 0 to it).
- rss_mb: this process's resident memory, sampled every RSS_PERIOD_S from the start of the
  measured span (after warm-up): start, max, end, and growth = end minus the sample at
  BASELINE_AFTER_S (the end of the first minute), or minus start for runs not longer than that.

Everything runs in one process (camera, node, collector): the figures include the camera's
publishing cost on the same CPU, as a camera driver on the same computer would.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.errors import CadError
from cad_perception.cli._output import image_size
from cad_perception.model.errors import ModelError
from cad_perception.pipeline.bench import percentiles
from cad_perception.pipeline.defaults import default_model_dir, ensure_default_db
from cad_perception.ros.image_conversion import rgb_to_image
from cad_perception.ros.node import CadPerceptionNode
from cad_perception.ros.parameters import BACKENDS
from cad_perception.ros.status import NodeStatus, StatusSnapshot
from cad_perception.synth.errors import SynthError
from cad_perception.synth.generate import SceneFrames
from cad_perception.synth.scene import SceneConfig

logger = logging.getLogger(__name__)

NAMESPACE = "/cad_perception_bench"
FRAME_ID = "bench_camera"
FRAMES = 4
"""Distinct rendered frames, cycled."""
WARMUP_FRAMES = 2
"""Frames the node answers before the measured span starts."""
STARTUP_TIMEOUT_S = 600.0
"""Loading the model and answering the warm-up frames (an ONNX export or the default CAD
database may be built on first use: minutes on a CPU)."""
DISCOVERY_TIMEOUT_S = 30.0
DRAIN_MIN_S = 3.0
"""Waiting for the node to go idle gives up after this long without progress (or 3x the
slowest Pipeline call, if longer)."""
RSS_PERIOD_S = 1.0
BASELINE_AFTER_S = 60.0
"""RSS growth is measured from this far into the measured span (when it is longer)."""
ANSWER_QOS = QoSProfile(depth=100)


class Answer(NamedTuple):
    """The node's answer to one frame."""

    latency_ms: float
    """Receive time of its detections minus the frame's stamp."""
    detections: int


class NodeBenchError(RuntimeError):
    """The node did not start, or answered nothing (the message says why)."""


class RecordingStatus(NodeStatus):
    """NodeStatus that also keeps every frame's Pipeline and overhead times (NodeStatus keeps
    only a window): installed as the node's `status` before it starts. Two floats per
    processed frame, so a soak run's lists stay small."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline_ms: list[float] = []
        self.overhead_ms: list[float] = []

    def frame_done(self, *, latency_ms: float, pipeline_ms: float, overhead_ms: float) -> None:
        super().frame_done(latency_ms=latency_ms, pipeline_ms=pipeline_ms, overhead_ms=overhead_ms)
        self.pipeline_ms.append(pipeline_ms)
        self.overhead_ms.append(overhead_ms)


@dataclass(frozen=True)
class NodeBenchResult:
    """The raw record of one run (module docstring); `summary()` is the JSON."""

    backend: str
    size: tuple[int, int]
    rate_hz: float
    duration_s: float
    """The measured span's length as run."""
    published: tuple[int, ...]
    """Stamps (ns) of the frames published in the measured span, increasing."""
    answers: dict[int, Answer]
    """Stamp -> answer, for each answered frame of the measured span, in stamp order."""
    dropped_by_worker: int
    unpaired: int
    node_processed: int
    """Frames the node itself counted as processed in the measured span."""
    pipeline_ms: tuple[float, ...]
    overhead_ms: tuple[float, ...]
    rss_mb: tuple[tuple[float, float], ...]
    """(seconds into the measured span, MiB) samples."""

    @property
    def processed(self) -> int:
        return len(self.answers)

    @property
    def dropped(self) -> int:
        return len(self.published) - self.processed

    @property
    def unanswered(self) -> int:
        return self.dropped - self.dropped_by_worker - self.unpaired

    def rss_growth_mb(self) -> float:
        """End RSS minus the sample at BASELINE_AFTER_S (or the first, for shorter runs)."""
        baseline = self.rss_mb[0][1]
        if self.duration_s > BASELINE_AFTER_S:
            baseline = next(mb for t, mb in self.rss_mb if t >= BASELINE_AFTER_S)
        return self.rss_mb[-1][1] - baseline

    def summary(self) -> dict[str, Any]:
        """The JSON figures (module docstring); timing entries are None without frames."""
        rss = [mb for _, mb in self.rss_mb]
        return {
            "backend": self.backend,
            "size": list(self.size),
            "rate_hz": self.rate_hz,
            "duration_s": round(self.duration_s, 2),
            "overhead_ms": _stats(self.overhead_ms),
            "pipeline_ms": _stats(self.pipeline_ms),
            "latency_ms": _stats([answer.latency_ms for answer in self.answers.values()]),
            "detections_mean": _mean([answer.detections for answer in self.answers.values()]),
            "frames": {
                "published": len(self.published),
                "processed": self.processed,
                "dropped": self.dropped,
                "dropped_by_worker": self.dropped_by_worker,
                "unpaired": self.unpaired,
                "unanswered": self.unanswered,
            },
            "rss_mb": {
                "start": round(rss[0], 1),
                "max": round(max(rss), 1),
                "end": round(rss[-1], 1),
                "growth": round(self.rss_growth_mb(), 1),
            },
        }


def _stats(values: list[float] | tuple[float, ...]) -> dict[str, float] | None:
    return percentiles(list(values)) if len(values) else None


def _mean(values: list[int]) -> float | None:
    return round(float(np.mean(values)), 2) if values else None


def rss_mb() -> float:
    """Resident memory of this process now, MiB (Linux /proc)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError as err:
        raise NodeBenchError(f"cannot read this process's memory ({err}); Linux only") from err
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Camera(Node):
    """Publishes the frames cycled (from any thread) and records when each answer arrives."""

    def __init__(self, frames: list[Any], context: Context):
        super().__init__("bench_camera", namespace=NAMESPACE, context=context)
        qos = qos_profile_sensor_data
        self.image_publisher = self.create_publisher(Image, "image", qos)
        self.info_publisher = self.create_publisher(CameraInfo, "camera_info", qos)
        self.create_subscription(Detection3DArray, "detections", self._on_answer, ANSWER_QOS)
        self._messages = [(_image(frame), _camera_info(frame)) for frame in frames]
        self._next = 0
        self._last_stamp_ns = 0
        self._lock = threading.Lock()
        self.received: dict[int, tuple[int, int]] = {}
        """Stamp -> (receive time (ns, system clock), detections) of every answer."""

    def connected(self) -> bool:
        publishers = (self.image_publisher, self.info_publisher)
        return all(p.get_subscription_count() > 0 for p in publishers)

    def publish(self) -> int:
        """Publish the next frame (camera info, then image) stamped now; returns the stamp."""
        image, info = self._messages[self._next]
        self._next = (self._next + 1) % len(self._messages)
        stamp = max(self.get_clock().now().nanoseconds, self._last_stamp_ns + 1)
        self._last_stamp_ns = stamp
        for message in (info, image):
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 10**9)
        self.info_publisher.publish(info)
        self.image_publisher.publish(image)
        return stamp

    def answered(self, stamps: set[int]) -> dict[int, tuple[int, int]]:
        """(receive time, detections) of the answers to `stamps` so far."""
        with self._lock:
            return {s: answer for s, answer in self.received.items() if s in stamps}

    def _on_answer(self, message: Detection3DArray) -> None:
        received = self.get_clock().now().nanoseconds
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        with self._lock:
            self.received.setdefault(stamp, (received, len(message.detections)))


def _image(frame: Any) -> Image:
    return rgb_to_image(frame.rgb, Header(frame_id=FRAME_ID))


def _camera_info(frame: Any) -> CameraInfo:
    height, width = frame.rgb.shape[:2]
    info = CameraInfo(header=Header(frame_id=FRAME_ID), height=height, width=width)
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = np.asarray(frame.K, dtype=np.float64).reshape(-1).tolist()
    info.r = np.eye(3).reshape(-1).tolist()
    info.p = np.hstack([frame.K, np.zeros((3, 1))]).reshape(-1).tolist()
    return info


class _SpinThread:
    """An executor spinning `nodes` in a background thread until `stop()`."""

    def __init__(self, context: Context, *nodes: Node):
        self.executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            self.executor.add_node(node)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="bench_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stopping.is_set():
            self.executor.spin_once(timeout_sec=0.1)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10.0)
        self.executor.shutdown()


def render_frames(
    db_dir: str | Path, size: tuple[int, int], count: int = FRAMES, seed: int = 0
) -> list[Any]:
    """`count` rendered synth Frames (rgb (H, W, 3) uint8, K (3, 3)) of the database at size."""
    with CadDatabase.open(db_dir, readonly=True) as db:
        config = SceneConfig(image_size=size)
        return list(SceneFrames(db=db, scenes=count, seed=seed, config=config))


def run_node_bench(
    *,
    model_dir: str | Path | None = None,
    db_dir: str | Path | None = None,
    backend: str = "auto",
    rate_hz: float = 30.0,
    duration_s: float = 60.0,
    size: tuple[int, int] = (240, 320),
    score_threshold: float | None = None,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> NodeBenchResult:
    """Benchmark the node (module docstring) in a ROS context of its own (the domain of
    $ROS_DOMAIN_ID). model_dir / db_dir None: the shipped model and the default CAD database
    (built if absent); score_threshold None: the node's default. ValueError for bad
    arguments, NodeBenchError when the node fails."""
    if not rate_hz > 0 or not duration_s > 0:
        raise ValueError(f"rate and duration must be > 0, got {rate_hz} Hz and {duration_s} s")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    db_dir = Path(db_dir) if db_dir is not None else ensure_default_db(model_dir)
    frames = render_frames(db_dir, size)
    parameters: dict[str, object] = {
        "model_dir": str(model_dir),
        "cad_db": str(db_dir),
        "backend": backend,
    }
    if score_threshold is not None:
        parameters["score_threshold"] = float(score_threshold)

    context = Context()
    rclpy.init(context=context)
    node = CadPerceptionNode(
        context=context,
        namespace=NAMESPACE,
        parameter_overrides=[Parameter(name, value=value) for name, value in parameters.items()],
    )
    status = node.status = RecordingStatus()
    camera = _Camera(frames, context)
    spinners: list[_SpinThread] = []
    try:
        if not node.autostart():
            raise NodeBenchError(f"the node did not start with {parameters} (see its log)")
        spinners = [_SpinThread(context, node), _SpinThread(context, camera)]
        _wait(camera.connected, DISCOVERY_TIMEOUT_S, "the node to subscribe to the camera")
        _warm_up(node, camera, status, 1.0 / rate_hz, startup_timeout)
        before = node.snapshot()
        done_before = len(status.pipeline_ms)
        start = time.monotonic()
        published, rss = _publish_for(camera, 1.0 / rate_hz, duration_s)
        measured_s = time.monotonic() - start
        _drain(node, camera, published, before, status)
        after = node.snapshot()
        received = camera.answered(set(published))
    finally:
        for spinner in spinners:
            spinner.stop()
        node.close()
        node.destroy_node()
        camera.destroy_node()
        rclpy.try_shutdown(context=context)
    return NodeBenchResult(
        backend=node.backend,
        size=size,
        rate_hz=rate_hz,
        duration_s=measured_s,
        published=tuple(published),
        answers={
            stamp: Answer((received[stamp][0] - stamp) / 1e6, received[stamp][1])
            for stamp in sorted(received)
        },
        dropped_by_worker=after.dropped - before.dropped,
        unpaired=after.unpaired - before.unpaired,
        node_processed=after.processed - before.processed,
        pipeline_ms=tuple(status.pipeline_ms[done_before:]),
        overhead_ms=tuple(status.overhead_ms[done_before:]),
        rss_mb=tuple(rss),
    )


def _warm_up(
    node: CadPerceptionNode, camera: _Camera, status: NodeStatus, period: float, timeout: float
) -> None:
    """Publish at the rate until the node answered WARMUP_FRAMES frames, then let it go idle."""
    before = node.snapshot()
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    while status.processed < WARMUP_FRAMES:
        if time.monotonic() > deadline:
            raise NodeBenchError(
                f"the node answered {status.processed} of {len(stamps)} warm-up frames within "
                f"{timeout:.0f} s; last problem: {node.snapshot().last_error or 'none'}"
            )
        stamps.append(camera.publish())
        time.sleep(period)
    _drain(node, camera, stamps, before, status)


def _publish_for(
    camera: _Camera, period: float, duration_s: float
) -> tuple[list[int], list[tuple[float, float]]]:
    """Publish every `period` for duration_s, sampling RSS every RSS_PERIOD_S (and at the
    end); returns the stamps and the (seconds since start, MiB) samples."""
    stamps: list[int] = []
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    end = start + duration_s
    next_frame = next_sample = start
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            samples.append((now - start, rss_mb()))
            next_sample += RSS_PERIOD_S
        if now >= next_frame:
            stamps.append(camera.publish())
            next_frame = max(next_frame + period, now)  # no burst after a stall
        time.sleep(max(0.0, min(next_frame, next_sample, end) - time.monotonic()))
    samples.append((time.monotonic() - start, rss_mb()))
    return stamps, samples


def _drain(
    node: CadPerceptionNode,
    camera: _Camera,
    stamps: list[int],
    before: StatusSnapshot,
    status: RecordingStatus,
) -> None:
    """Wait until every frame of `stamps` is answered or dropped by the node, or nothing
    changed for DRAIN_MIN_S (or 3x the slowest Pipeline call)."""
    wanted = set(stamps)
    patience = max(DRAIN_MIN_S, 3.0 * max(status.pipeline_ms, default=0.0) / 1000.0)
    last_count, last_change = -1, time.monotonic()
    while True:
        now_status = node.snapshot()
        count = (
            len(camera.answered(wanted))
            + now_status.dropped
            - before.dropped
            + now_status.unpaired
            - before.unpaired
        )
        if count >= len(wanted):
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > patience:
            logger.warning("%d frames unanswered after %.0f s", len(wanted) - count, patience)
            return
        time.sleep(0.05)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise NodeBenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON (and write it with --json); on failure log one line
    and return 2."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {__name__}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="model folder (default: the shipped model)")
    parser.add_argument("--db", help="CAD database folder (default: the default database)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--size", type=image_size, default=(240, 320), help="image size HxW")
    parser.add_argument(
        "--score-threshold", type=float, help="detection threshold (default: the node's)"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    try:
        result = run_node_bench(
            model_dir=args.model,
            db_dir=args.db,
            backend=args.backend,
            rate_hz=args.rate,
            duration_s=args.duration,
            size=args.size,
            score_threshold=args.score_threshold,
        )
    except (NodeBenchError, CadError, ModelError, SynthError, ValueError, OSError) as err:
        logger.debug("node bench failed", exc_info=True)
        logger.error(" ".join(str(err).split()))
        return 2
    text = json.dumps(result.summary(), indent=2) + "\n"
    if args.json is not None:
        args.json.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
