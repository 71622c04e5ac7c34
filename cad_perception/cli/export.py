"""`cad-perception export`: a checkpoint as an ONNX graph with its JSON sidecar."""

import argparse
import functools

from cad_perception.cli._output import EXIT_OK, image_size, positive_int, write
from cad_perception.engine.export import DEFAULT_INPUT_SIZE, OPSET, export_onnx
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    path = export_onnx(args.model, args.out, input_size=args.size, opset=args.opset)
    info = read_sidecar(path.parent)
    height, width = info.input_size
    write(
        f"exported {args.model} -> {path} ({height}x{width}, opset {info.opset}, "
        f"{info.max_detections} detections, {path.stat().st_size / 2**20:.1f} MiB)"
    )
    write(f"sidecar: {path.parent / SIDECAR_FILE}")
    return EXIT_OK
