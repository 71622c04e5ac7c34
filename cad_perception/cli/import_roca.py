"""`cad-perception import-roca`: ROCA's own Scan2CAD dataset (instances JSON, ScanNet frames and
renderings) as a dataset folder that `train` and `eval` read."""

import argparse

from cad_perception.cli._output import EXIT_OK, positive_int, write
from cad_perception.synth.roca_import import import_roca


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `import-roca` parser."""
    parser = subcommands.add_parser(
        "import-roca", help="import ROCA's Scan2CAD dataset", description=__doc__
    )
    parser.add_argument("instances", help="ROCA's scan2cad_instances_<split>.json")
    parser.add_argument(
        "--images",
        required=True,
        metavar="DIR",
        help="ROCA's image root (holding tasks/scannet_frames_25k/...)",
    )
    parser.add_argument(
        "--renderings",
        required=True,
        metavar="DIR",
        help="ROCA's rendering root (<scene>/depth/*.png, <scene>/instance/*.png)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument("--limit", type=positive_int, help="only the first N frames")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    report = import_roca(
        args.instances,
        args.images,
        args.renderings,
        args.out,
        limit=args.limit,
        progress=not args.quiet,
    )
    write(f"imported {report.images} images with {report.annotations} objects: {report.path}")
    for reason, count in sorted(report.skipped.items()):
        write(f"  left out {count}: {reason}")
    return EXIT_OK
