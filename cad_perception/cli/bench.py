"""`cad-perception bench`: measure this machine as JSON: the pipeline on each backend (per-stage
latency, frames/s, peak memory, FLOPs and share of the GEMM peak), the CAD database and the
synthetic data engine."""

import argparse
import json
import os
import platform
from pathlib import Path

from cad_perception.cad.bench import run_cad_benchmarks
from cad_perception.cli._defaults import add_db_argument, add_model_argument, db_dir, model_dir
from cad_perception.cli._output import (
    EXIT_OK,
    image_size,
    non_negative_float,
    positive_int,
    write,
)
from cad_perception.engine.factory import BACKENDS
from cad_perception.pipeline.bench import run_onnx_profile, run_pipeline_benchmarks
from cad_perception.pipeline.bench_chart import bench_svg
from cad_perception.pipeline.pipeline import DEFAULT_SCORE_THRESHOLD
from cad_perception.synth.bench import run_synth_benchmarks


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `bench` parser."""
    parser = subcommands.add_parser(
        "bench", help="run the benchmarks, print JSON", description=__doc__
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results to this file")
    parser.add_argument(
        "--only",
        choices=("all", *PARTS),
        default="all",
        help="run one part only (default: %(default)s)",
    )
    add_model_argument(parser)
    add_db_argument(parser)
    parser.add_argument(
        "--backend",
        dest="backends",
        nargs="+",
        choices=BACKENDS[1:],
        default=["torch", "onnxruntime", "onnxruntime-int8"],
        help="pipeline backends, measured in this order (default: %(default)s)",
    )
    parser.add_argument("--device", help="cpu or cuda (default: the backend's choice)")
    parser.add_argument(
        "--size", type=image_size, default=(240, 320), metavar="HxW", help="(240x320)"
    )
    parser.add_argument(
        "--iters", type=positive_int, default=20, help="pipeline calls per backend (20)"
    )
    parser.add_argument(
        "--score-threshold",
        type=non_negative_float,
        default=DEFAULT_SCORE_THRESHOLD,
        help="the pipeline's (and the engine's) detection score threshold (%(default)s, as "
        "infer and the node)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the onnxruntime engine on the same frames: time per operator type, "
        "slowest nodes, the convolutions' GFLOP/s",
    )
    parser.add_argument(
        "--svg",
        type=Path,
        metavar="OUT",
        help="also draw the pipeline figures as a picture: each backend's median time per "
        "stage and, with --profile, ONNX Runtime's time per operator type",
    )
    parser.add_argument(
        "--shapenet",
        type=Path,
        help="a folder in ShapeNet layout to time real-mesh ingest on (skipped when absent)",
    )
    parser.add_argument(
        "--search-sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="CADs in one category for the search benchmark (default: %(default)s)",
    )
    parser.add_argument(
        "--synth-frames",
        type=int,
        default=60,
        help="frames per synthetic-data benchmark (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


PARTS = ("pipeline", "cad", "synth")


def run(args: argparse.Namespace) -> int:
    """Run every benchmark and print (and optionally write) one JSON document."""
    if args.svg and args.only not in ("all", "pipeline"):
        raise ValueError("--svg draws the pipeline figures: use it with --only pipeline or all")
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "device": args.device or "cpu",
        },
    }
    if args.only in ("all", "pipeline"):
        results["pipeline"] = run_pipeline_benchmarks(
            model_dir(args),
            db_dir(args),
            backends=tuple(args.backends),
            size=args.size,
            iters=args.iters,
            device=args.device,
            score_threshold=args.score_threshold,
        )
        if args.profile:
            results["pipeline"]["onnxruntime_profile"] = run_onnx_profile(
                model_dir(args),
                db_dir(args),
                size=args.size,
                iters=args.iters,
                score_threshold=args.score_threshold,
            )
    if args.only in ("all", "cad"):
        results["cad"] = run_cad_benchmarks(
            shapenet_root=args.shapenet, search_sizes=tuple(args.search_sizes)
        )
    if args.only in ("all", "synth"):
        results["synth"] = run_synth_benchmarks(frames=args.synth_frames)
    text = json.dumps(results, indent=2)
    write(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.svg:  # after the JSON, so that an unwritable picture loses no figures
        args.svg.write_text(bench_svg(results["pipeline"]), encoding="utf-8")
    return EXIT_OK
