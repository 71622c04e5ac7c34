"""`cad-perception bench`: measure this machine (CAD database, synthetic data engine) as JSON."""

import argparse
import json
import platform
from pathlib import Path

from cad_perception.cad.bench import run_cad_benchmarks
from cad_perception.cli._output import EXIT_OK, write
from cad_perception.synth.bench import run_synth_benchmarks


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `bench` parser."""
    parser = subcommands.add_parser(
        "bench", help="run the benchmarks, print JSON", description=__doc__
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results to this file")
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


def run(args: argparse.Namespace) -> int:
    """Run every benchmark and print (and optionally write) one JSON document."""
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "device": "cpu",
        },
        "cad": run_cad_benchmarks(
            shapenet_root=args.shapenet, search_sizes=tuple(args.search_sizes)
        ),
        "synth": run_synth_benchmarks(frames=args.synth_frames),
    }
    text = json.dumps(results, indent=2)
    write(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return EXIT_OK
