"""Replaying a rosbag: every synchronised frame through the Pipeline (offline), and the summary of
a replay, offline or live, scored against the bag's ground truth.

A replay is a `ReplayRun`: per processed frame its header stamp, detections and latency. Offline
(`replay_bag`) the latency is the Pipeline's wall time for the frame, with its stages; live
(ros/replay_live.py) it is the time from publishing the frame to receiving its detections.
`summarize` turns a run into the report: the scorer JSON of eval/scan2cad.py (scene = the stamp
as a decimal string, predictions after ROCA's 3D NMS, each with its retrieved CAD's symmetry)
over the processed frames, latency median and p90, and the frame counts (published = processed +
dropped). Only processed frames are scored: frames the node dropped show in "dropped", not as
misses, so accuracy and throughput stay two figures.

A run's JSON (`run_to_json`, `run_from_json`) is how the live replay process hands its result
over:

    {"mode": "offline" | "live", "backend": str, "categories": [str], "published": int,
     "frames": [{"stamp_ns": int, "image_size": [H, W], "latency_ms": float,
                 "stages_ms": {stage: ms}, "detections": [Detection.to_json()]}]}

Masks are not stored in it: a frame read from JSON has empty (all False) masks.
"""

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cad_perception.eval.nms import nms_3d
from cad_perception.eval.records import AlignmentRecord
from cad_perception.eval.scan2cad import score_alignments
from cad_perception.geometry.rotations import quaternion_to_matrix
from cad_perception.pipeline.detection import CadMatch, Detection
from cad_perception.pipeline.pipeline import Pipeline
from cad_perception.synth.bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, read_bag

logger = logging.getLogger(__name__)

MODES = ("offline", "live")
MASK_FRAMES = 16
"""An offline replay keeps the masks of between MASK_FRAMES and 2 MASK_FRAMES evenly spaced
frames (for overlays); the other frames' masks are dropped to bound memory on long bags."""
NO_CAD = "none"
"""cad_id of a prediction record whose detection retrieved no CAD."""


class ReplayError(ValueError):
    """A replay's JSON is malformed (the message names the field)."""


@dataclass(frozen=True)
class FrameResult:
    """What came out of one processed frame."""

    stamp_ns: int
    """The frame's header stamp, nanoseconds."""
    image_size: tuple[int, int]
    """(H, W) of the frame."""
    detections: tuple[Detection, ...]
    latency_ms: float
    stages_ms: Mapping[str, float] = field(default_factory=dict)
    """Milliseconds per Pipeline stage (offline only)."""
    has_masks: bool = True
    """False when the detections' masks were dropped (they are all False then)."""


@dataclass(frozen=True)
class ReplayRun:
    """All processed frames of one replay, in stamp order."""

    mode: str
    """One of MODES."""
    backend: str
    categories: tuple[str, ...]
    """The model's categories (overlay colours)."""
    published: int
    """Frames fed to the Pipeline or published to the node."""
    frames: tuple[FrameResult, ...]

    @property
    def dropped(self) -> int:
        """Published frames that never came back with detections."""
        return self.published - len(self.frames)


def replay_bag(
    pipeline: Pipeline,
    bag: str | Path,
    *,
    image_topic: str = IMAGE_TOPIC,
    camera_info_topic: str = CAMERA_INFO_TOPIC,
    mask_frames: int = MASK_FRAMES,
    progress: bool = False,
) -> ReplayRun:
    """Run every synchronised frame of `bag` through `pipeline` (offline; BagError for a bag
    that cannot be read). Between mask_frames and 2 mask_frames evenly spaced frames keep their
    masks (all of a short bag)."""
    if mask_frames < 1:
        raise ValueError(f"mask_frames must be >= 1, got {mask_frames}")
    frames: list[FrameResult] = []
    stride = 1
    frames_in = read_bag(bag, image_topic=image_topic, camera_info_topic=camera_info_topic)
    bar = tqdm(frames_in, desc="replaying", unit="frame", disable=not progress)
    for index, frame in enumerate(bar):
        start = time.perf_counter()
        detections = tuple(pipeline(frame.rgb, frame.K))
        latency_ms = (time.perf_counter() - start) * 1000.0
        result = FrameResult(
            frame.stamp_ns, frame.rgb.shape[:2], detections, latency_ms, pipeline.last_timings
        )
        frames.append(result if index % stride == 0 else _without_masks(result))
        if sum(f.has_masks for f in frames) > 2 * mask_frames:  # halve the kept frames
            stride *= 2
            frames = [f if i % stride == 0 else _without_masks(f) for i, f in enumerate(frames)]
    logger.info("replayed %d frames of %s offline", len(frames), bag)
    return ReplayRun(
        "offline", pipeline.backend.name, pipeline.categories, len(frames), tuple(frames)
    )


def _without_masks(frame: FrameResult) -> FrameResult:
    if not frame.has_masks:
        return frame
    empty = np.broadcast_to(np.False_, frame.image_size)  # one byte shared by all
    detections = tuple(replace(d, mask=empty) for d in frame.detections)
    return replace(frame, detections=detections, has_masks=False)


def prediction_records(run: ReplayRun, symmetry: Callable[[str], str]) -> list[AlignmentRecord]:
    """Scorer records of every detection of `run` (scene = stamp), before NMS.

    symmetry(cad_id) -> the CAD's symmetry label (e.g. `db.get(cad_id).symmetry`)."""
    records = []
    for frame in run.frames:
        for det in frame.detections:
            cad_id = det.cad_id or NO_CAD
            records.append(
                AlignmentRecord(
                    scene=str(frame.stamp_ns),
                    category=det.category,
                    cad_id=cad_id,
                    t=tuple(float(v) for v in det.t),
                    q=tuple(float(v) for v in det.q),
                    s=tuple(max(float(v), 1e-6) for v in det.s),
                    sym="none" if cad_id == NO_CAD else symmetry(cad_id),
                    score=float(det.score),
                )
            )
    return records


def summarize(
    run: ReplayRun,
    ground_truth: Sequence[AlignmentRecord] | None,
    symmetry: Callable[[str], str],
) -> dict[str, Any]:
    """The replay report (JSON-able): mode, backend, frames, latency_ms {median, p90},
    stages_ms (median per stage, offline), detections (count per category), and, when
    `ground_truth` is given, "ground_truth" {objects, scored_frames} plus the scorer JSON over
    the processed frames ("ground_truth": None and no accuracies otherwise)."""
    latencies = [f.latency_ms for f in run.frames]
    stages = sorted({stage for f in run.frames for stage in f.stages_ms})
    counted = "total" if run.mode == "offline" else "published"
    categories = Counter(d.category for f in run.frames for d in f.detections)
    report: dict[str, Any] = {
        "mode": run.mode,
        "backend": run.backend,
        "frames": {counted: run.published, "processed": len(run.frames), "dropped": run.dropped},
        "latency_ms": {"median": _percentile(latencies, 50), "p90": _percentile(latencies, 90)},
        "stages_ms": {s: _percentile([f.stages_ms[s] for f in run.frames], 50) for s in stages},
        "detections": dict(sorted(categories.items())),
        "ground_truth": None,
    }
    if ground_truth is None:
        return report
    processed = {str(f.stamp_ns) for f in run.frames}
    scored = [r for r in ground_truth if r.scene in processed]
    report["ground_truth"] = {"objects": len(scored), "scored_frames": len(processed)}
    if not scored:
        logger.warning("no ground-truth object lies on a processed frame: accuracy undefined")
        return report
    predictions = nms_3d(prediction_records(run, cache(symmetry)))
    return report | score_alignments(predictions, scored).to_json()


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def run_to_json(run: ReplayRun) -> dict[str, Any]:
    """`run` as the JSON dict of the module docstring (masks left out, non-finite -> null)."""
    return {
        "mode": run.mode,
        "backend": run.backend,
        "categories": list(run.categories),
        "published": run.published,
        "frames": [
            {
                "stamp_ns": f.stamp_ns,
                "image_size": list(f.image_size),
                "latency_ms": f.latency_ms,
                "stages_ms": dict(f.stages_ms),
                "detections": [_finite_or_null(d.to_json()) for d in f.detections],
            }
            for f in run.frames
        ],
    }


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def run_from_json(data: object) -> ReplayRun:
    """The ReplayRun of decoded JSON `data` (ReplayError naming the field when malformed)."""
    run = _object(data, "replay")
    mode = _get(run, "mode", "replay", str)
    if mode not in MODES:
        raise ReplayError(f"replay: mode must be one of {', '.join(MODES)}, got {mode!r}")
    frames = tuple(
        _frame_from_json(raw, f"frame {i}")
        for i, raw in enumerate(_get(run, "frames", "replay", list))
    )
    published = _get(run, "published", "replay", int)
    if published < len(frames):
        raise ReplayError(f"replay: published {published} < {len(frames)} processed frames")
    return ReplayRun(
        mode=mode,
        backend=_get(run, "backend", "replay", str),
        categories=tuple(_get(run, "categories", "replay", list)),
        published=published,
        frames=frames,
    )


def _frame_from_json(data: object, where: str) -> FrameResult:
    frame = _object(data, where)
    size = _get(frame, "image_size", where, list)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ReplayError(f"{where}: image_size must be [H, W] of positive integers, got {size}")
    image_size = (size[0], size[1])
    raw_detections = _get(frame, "detections", where, list)
    detections = tuple(
        _detection_from_json(raw, image_size, f"{where}, detection {i}")
        for i, raw in enumerate(raw_detections)
    )
    stages = _get(frame, "stages_ms", where, dict)
    return FrameResult(
        stamp_ns=_get(frame, "stamp_ns", where, int),
        image_size=image_size,
        detections=detections,
        latency_ms=float(_get(frame, "latency_ms", where, float)),
        stages_ms={str(k): float(v) for k, v in stages.items()},
        has_masks=False,
    )


def _detection_from_json(data: object, image_size: tuple[int, int], where: str) -> Detection:
    det = _object(data, where)

    def vector(name: str, n: int) -> np.ndarray:
        value = _get(det, name, where, list)
        if len(value) != n or not all(_is_number(v) for v in value):
            raise ReplayError(f"{where}: {name} must be a list of {n} numbers, got {value}")
        return np.asarray(value, dtype=np.float64)

    q = vector("q", 4)
    if not np.linalg.norm(q) > 1e-9:
        raise ReplayError(f"{where}: q must be a non-zero quaternion")
    q = q / np.linalg.norm(q)
    cads: tuple[CadMatch, ...] = ()
    if det.get("cad_id") is not None:
        best = {"cad_id": det["cad_id"], "distance": det.get("retrieval_distance")}
        alternatives = _get(det, "alternatives", where, list)
        cads = tuple(_cad_match(m, where) for m in [best, *alternatives])
    return Detection(
        category=_get(det, "category", where, str),
        score=float(_get(det, "score", where, float)),
        box=vector("box", 4).astype(np.float32),
        mask=np.broadcast_to(np.False_, image_size),
        R=quaternion_to_matrix(torch.from_numpy(q)).numpy(),
        q=q,
        t=vector("t", 3),
        s=vector("s", 3),
        extents=vector("extents", 3),
        alignment_valid=bool(det.get("alignment_valid", True)),
        cads=cads,
    )


def _cad_match(data: object, where: str) -> CadMatch:
    """{"cad_id": str, "distance": number | null (unknown: NaN)}."""
    match = _object(data, f"{where}, retrieved CAD")
    cad_id = _get(match, "cad_id", where, str)
    distance = match.get("distance")
    if distance is not None and not _is_number(distance):
        raise ReplayError(f"{where}: CAD {cad_id} distance must be a number, got {distance!r}")
    return CadMatch(cad_id, math.nan if distance is None else float(distance))


def _object(data: object, where: str) -> dict:
    if not isinstance(data, dict):
        raise ReplayError(f"{where}: must be a JSON object, got {type(data).__name__}")
    return data


def _get(data: dict, name: str, where: str, kind: type) -> Any:
    if name not in data:
        raise ReplayError(f"{where}: missing field {name!r}")
    value = data[name]
    valid = _is_number(value) if kind is float else isinstance(value, kind)
    if not valid or (kind is int and isinstance(value, bool)):
        raise ReplayError(f"{where}: field {name!r} must be a {kind.__name__}, got {value!r}")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
