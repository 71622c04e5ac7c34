"""`cad-perception export`: a checkpoint as an ONNX graph with its JSON sidecar (float32, or
INT8 for CPUs with --int8)."""

import argparse
import functools
import tempfile

from cad_perception.cli._output import (
    EXIT_OK,
    image_size,
    non_negative_float,
    positive_int,
    write,
)
from cad_perception.engine.export import DEFAULT_INPUT_SIZE, OPSET, export_onnx
from cad_perception.engine.quantize import (
    dataset_calibration,
    quantize_int8,
    synthetic_calibration,
)
from cad_perception.engine.sidecar import SIDECAR_FILE, read_sidecar

MIN_SIDE = 32
"""Smallest image side of an exported graph (the backbone's coarsest stride)."""


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `export` parser."""
    height, width = DEFAULT_INPUT_SIZE
    parser = subcommands.add_parser(
        "export",
        help="export a checkpoint to ONNX (model.onnx + model.json)",
        description="Export the checkpoint in --model to OUT/model.onnx, one fixed-shape graph "
        "from (image, K) to padded detections, poses and retrieval embeddings, with its JSON "
        "sidecar OUT/model.json.",
    )
    parser.add_argument("--model", metavar="DIR", required=True, help="checkpoint folder")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    parser.add_argument(
        "--size",
        type=functools.partial(image_size, minimum=MIN_SIDE),
        default=DEFAULT_INPUT_SIZE,
        metavar="HxW",
        help=f"input image size of the graph (default: {height}x{width})",
    )
    parser.add_argument(
        "--opset", type=positive_int, default=OPSET, help="ONNX opset (default: %(default)s)"
    )
    parser.add_argument(
        "--score-threshold",
        type=non_negative_float,
        metavar="T",
        help="lowest detection score the graph keeps (default: the model's own, 0.05); set it "
        "to your deployment's threshold to skip the heads of detections it would discard",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="quantise the heavy convolutions to INT8 for onnxruntime on CPUs (faster, slightly "
        "less accurate: measure with `eval --backend onnxruntime-int8`)",
    )
    parser.add_argument(
        "--calibration",
        metavar="DIR",
        help="with --int8: a dataset folder (`synth` layout) whose images calibrate the "
        "quantisation (default: synthetic scenes)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    if args.calibration and not args.int8:
        raise ValueError("--calibration only applies with --int8")
    options = {
        "input_size": args.size,
        "opset": args.opset,
        "score_threshold": args.score_threshold,
    }
    if args.int8:
        with tempfile.TemporaryDirectory(prefix="export-") as scratch:
            export_onnx(args.model, scratch, **options)
            calibration = (
                dataset_calibration(args.calibration)
                if args.calibration
                else synthetic_calibration(args.size)
            )
            path = quantize_int8(scratch, args.out, calibration)
    else:
        path = export_onnx(args.model, args.out, **options)
    info = read_sidecar(path.parent)
    height, width = info.input_size
    write(
        f"exported {args.model} -> {path} ({height}x{width}, opset {info.opset}, "
        f"{info.max_detections} detections scoring over {info.score_threshold:g}, "
        f"{info.precision}, "
        f"{path.stat().st_size / 2**20:.1f} MiB)"
    )
    write(f"sidecar: {path.parent / SIDECAR_FILE}")
    return EXIT_OK
