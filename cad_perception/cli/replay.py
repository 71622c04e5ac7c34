"""`cad-perception replay`: replay a rosbag through the detector, score it against the bag's
ground truth, and report accuracy and latency (JSON, a table, an HTML report).

Offline (default) every synchronised frame goes through the Pipeline in this process. With
--live the frames go over DDS to the real node: the CLI sits below the ROS layer (it must not
import rclpy), so it runs `python -m cad_perception.ros.replay_live`, which starts the node,
publishes the bag and writes the collected detections as a replay JSON (pipeline/replay.py) to a
temporary file; both modes are then scored and reported by the same code here.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from cad_perception.cad.database import CadDatabase
from cad_perception.cli._defaults import add_db_argument, add_model_argument, db_dir, model_dir
from cad_perception.cli._output import EXIT_OK, non_negative_float, table, write
from cad_perception.engine.factory import BACKENDS
from cad_perception.pipeline.pipeline import Pipeline
from cad_perception.pipeline.replay import (
    ReplayRun,
    replay_bag,
    run_from_json,
    run_to_json,
    summarize,
)
from cad_perception.pipeline.report import write_report
from cad_perception.synth.bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, load_ground_truth
from cad_perception.synth.errors import BagError

DEFAULT_SCORE_THRESHOLD = 0.5
LIVE_MODULE = "cad_perception.ros.replay_live"


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "replay",
        help="replay a rosbag, score it and report accuracy and latency",
        description=__doc__,
    )
    parser.add_argument("bag", help="rosbag2 folder (or one .mcap / .db3 file)")
    add_model_argument(parser)
    add_db_argument(parser)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument(
        "--live", action="store_true", help="publish over DDS to the node instead of in-process"
    )
    parser.add_argument(
        "--rate", type=_positive_float, default=1.0, help="--live playback speed (default 1.0)"
    )
    parser.add_argument(
        "--score-threshold",
        type=non_negative_float,
        default=DEFAULT_SCORE_THRESHOLD,
        help="lowest detection score kept (default: %(default)s)",
    )
    parser.add_argument("--image-topic", default=IMAGE_TOPIC, help="(default: %(default)s)")
    parser.add_argument(
        "--camera-info-topic", default=CAMERA_INFO_TOPIC, help="(default: %(default)s)"
    )
    parser.add_argument("--json", metavar="OUT", help="write the report (and detections) here")
    parser.add_argument("--report", metavar="DIR", help="write an HTML report with overlays here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_replay)


def _positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _replay(args: argparse.Namespace) -> int:
    bag = Path(args.bag)
    if not bag.exists():
        raise BagError(f"no bag at '{bag}'")
    ground_truth = load_ground_truth(bag) if bag.is_dir() else None  # fails early if malformed
    model, database = model_dir(args), db_dir(args)
    topics = {"image_topic": args.image_topic, "camera_info_topic": args.camera_info_topic}
    if args.live:
        run = _live_run(args, model, database)
    else:
        pipeline = Pipeline.from_dirs(
            model, database, backend=args.backend, score_threshold=args.score_threshold
        )
        with pipeline.db:
            run = replay_bag(pipeline, bag, progress=not args.quiet, **topics)
    with CadDatabase.open(database, readonly=True) as db:
        symmetry = cache(lambda cad_id: db.get(cad_id).symmetry)
        summary = summarize(run, ground_truth, symmetry)
        if args.report:
            samples = cache(lambda cad_id: db.get(cad_id).samples)
            index = write_report(args.report, bag, run, summary, samples, **topics)
    for line in summary_lines(summary):
        write(line)
    if args.json:
        payload = summary | {"bag": str(bag), "per_frame": run_to_json(run)["frames"]}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        write(f"json: {args.json}")
    if args.report:
        write(f"report: {index}")
    return EXIT_OK


def _live_run(args: argparse.Namespace, model: Path, database: Path) -> ReplayRun:
    """Run the live replay process and read the run it writes."""
    with tempfile.TemporaryDirectory(prefix="cad_perception_replay_") as tmp:
        out = Path(tmp) / "run.json"
        command = [
            sys.executable, "-m", LIVE_MODULE, str(args.bag), "--out", str(out),
            "--model", str(model), "--db", str(database), "--backend", args.backend,
            "--rate", str(args.rate), "--score-threshold", str(args.score_threshold),
            "--image-topic", args.image_topic, "--camera-info-topic", args.camera_info_topic,
        ]  # fmt: skip
        if args.verbose:
            command.append("--verbose")
        process = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
        if args.verbose:
            sys.stderr.write(process.stderr)
        if process.returncode != 0:
            lines = [line for line in process.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {process.returncode}"
            raise ChildProcessError(f"live replay failed: {reason}")  # an OSError: one line
        return run_from_json(json.loads(out.read_text(encoding="utf-8")))


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The replay summary as a per-category table and a frames / latency line."""
    detections = summary["detections"]
    if summary.get("per_class"):
        rows = [
            [name, str(c["total"]), str(detections.get(name, 0)), *_accuracies(c, "accuracy")]
            for name, c in summary["per_class"].items()
        ]
        objects = str(summary["ground_truth"]["objects"])
        rows.append(["class avg", objects, "", *_accuracies(summary, "class_avg")])
        rows.append(["instance avg", "", "", *_accuracies(summary, "instance_avg")])
        lines = table(["category", "GT", "detections", "align %", "align+CAD %"], rows)
    else:
        rows = [[name, str(count)] for name, count in detections.items()]
        lines = table(["category", "detections"], rows) if rows else []
        if summary["ground_truth"] is None:
            reason = "the bag has no ground truth"
        else:
            reason = "no ground-truth object lies on a processed frame"
        lines.append(f"no accuracy: {reason}; detections and latency only")
    frames, latency = summary["frames"], summary["latency_ms"]
    counted = "total" if "total" in frames else "published"
    median = "-" if latency["median"] is None else f"{latency['median']:.1f}"
    p90 = "-" if latency["p90"] is None else f"{latency['p90']:.1f}"
    lines.append(
        f"{summary['mode']} on {summary['backend']}: {frames[counted]} frames {counted}, "
        f"{frames['processed']} processed, {frames['dropped']} dropped; "
        f"latency median {median} ms, p90 {p90} ms"
    )
    return lines


def _accuracies(scores: dict[str, Any], key: str) -> list[str]:
    """[key, retrieval_key] formatted as percentages."""
    return [f"{scores[key]:.1f}", f"{scores['retrieval_' + key]:.1f}"]
