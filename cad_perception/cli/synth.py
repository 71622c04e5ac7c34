"""`cad-perception synth` and `synth-bag`: labelled datasets and rosbags from a CAD database."""

import argparse
import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

from cad_perception.cad.database import CadDatabase
from cad_perception.cli._defaults import add_db_argument, db_dir
from cad_perception.cli._output import EXIT_OK, image_size, positive_int, write
from cad_perception.synth.bag import write_bag
from cad_perception.synth.dataset import dataset_to_records, write_dataset
from cad_perception.synth.encoding import write_rgb
from cad_perception.synth.generate import PathFrames, SceneFrames
from cad_perception.synth.parallel import available_cpus
from cad_perception.synth.preview import contact_sheet
from cad_perception.synth.scene import SPLITS, SceneConfig

PREVIEW_FRAMES = 4
"""Frames shown by --preview."""


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `synth` and `synth-bag` parsers."""
    synth = subcommands.add_parser(
        "synth",
        help="render a labelled dataset (ROCA / Scan2CAD layout) of random scenes",
        description="Render one view of each of N random indoor scenes of CADs from DB and "
        "write DIR/annotations.json with RGB, depth, NOC and instance PNGs.",
    )
    _add_common(synth)
    synth.add_argument("--out", required=True, help="dataset folder")
    synth.add_argument("--scenes", type=positive_int, required=True, help="number of scenes")
    synth.add_argument(
        "--to-scorer",
        metavar="JSON",
        help="also write the ground truth as scorer records (scene = image id)",
    )
    synth.set_defaults(handler=_synth)

    bag = subcommands.add_parser(
        "synth-bag",
        help="render a camera path through one random scene into a rosbag2 with ground truth",
        description="Render N frames along a smooth camera path through one random scene and "
        "write a rosbag2 (/camera/color/image_raw, /camera/color/camera_info at 15 Hz) with "
        "BAG/ground_truth.json (scorer records, scene = header stamp in ns).",
    )
    _add_common(bag)
    bag.add_argument("--out", required=True, help="bag directory to create")
    bag.add_argument("--frames", type=positive_int, required=True, help="number of frames")
    bag.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    bag.set_defaults(handler=_synth_bag)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--size", type=image_size, default=(240, 320), metavar="HxW", help="image size (240x320)"
    )
    parser.add_argument("--split", choices=SPLITS, help="draw only CADs of this split")
    parser.add_argument(
        "--unseen-cads", action="store_true", help="draw only the held-out ('test') CADs"
    )
    parser.add_argument(
        "--preview",
        metavar="PNG",
        help=f"also write the first {PREVIEW_FRAMES} frames as RGB | depth | NOC | instance rows",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=available_cpus(),
        metavar="N",
        help="processes rendering frames; 1 renders in this process "
        "(default: the CPUs this process may use, here %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _stream_options(args: argparse.Namespace) -> dict[str, Any]:
    """The frame-stream keywords of the options `_add_common` registers."""
    return {
        "seed": args.seed,
        "config": SceneConfig(image_size=args.size),
        "split": args.split,
        "unseen_cads": args.unseen_cads,
        "workers": args.workers,
    }


def _synth(args: argparse.Namespace) -> int:
    with CadDatabase.open(db_dir(args, embed=False), readonly=True) as db:
        frames = SceneFrames(db=db, scenes=args.scenes, **_stream_options(args))
        annotations = write_dataset(frames, args.out, progress=not args.quiet)
        summary = json.loads(annotations.read_text(encoding="utf-8"))
        write(
            f"wrote {len(summary['images'])} images with {len(summary['annotations'])} objects: "
            f"{annotations}"
        )
        _write_preview(frames, args.preview)
    if args.to_scorer:
        records = [record.to_json() for record in dataset_to_records(annotations)]
        Path(args.to_scorer).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        write(f"wrote {len(records)} scorer records: {args.to_scorer}")
    return EXIT_OK


def _synth_bag(args: argparse.Namespace) -> int:
    with CadDatabase.open(db_dir(args, embed=False), readonly=True) as db:
        frames = PathFrames(db=db, frames=args.frames, **_stream_options(args))
        summary = write_bag(frames, args.out, storage=args.storage, progress=not args.quiet)
        write(
            f"wrote {summary.frames} frames and {summary.records} ground-truth records: "
            f"{summary.path}"
        )
        _write_preview(frames, args.preview)
    return EXIT_OK


def _write_preview(frames: SceneFrames | PathFrames, path: str | None) -> None:
    """Re-render the first frames (the streams are seeded, so they are the written ones); the
    stream is closed after them, which stops its worker processes."""
    if path:
        with contextlib.closing(iter(frames)) as stream:
            write_rgb(path, contact_sheet(itertools.islice(stream, PREVIEW_FRAMES)))
        write(f"preview: {path}")
