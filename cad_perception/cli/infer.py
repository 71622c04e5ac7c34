"""`cad-perception infer`: detect objects in one image, estimate their 9-DoF poses and retrieve
their CAD models; print them, and optionally write JSON and an overlay image."""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cad_perception.cli._defaults import add_db_argument, add_model_argument, db_dir, model_dir
from cad_perception.cli._output import EXIT_OK, non_negative_float, positive_int, table, write
from cad_perception.engine.factory import BACKENDS
from cad_perception.pipeline.overlay import draw_detections
from cad_perception.pipeline.pipeline import Pipeline


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "infer", help="detect, align and retrieve CADs in one image", description=__doc__
    )
    parser.add_argument("image", help="RGB image file (PNG, JPEG, ...)")
    for name in ("fx", "fy", "cx", "cy"):
        parser.add_argument(f"--{name}", type=float, required=True, help="intrinsics, pixels")
    add_model_argument(parser)
    add_db_argument(parser)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--device", help="cpu or cuda (default: the backend's choice)")
    parser.add_argument(
        "--score-threshold", type=non_negative_float, default=0.5, help="(default: %(default)s)"
    )
    parser.add_argument("--top-k", type=positive_int, default=3, help="CADs per object (3)")
    parser.add_argument("--json", metavar="OUT", help="write {'detections': [...]} here")
    parser.add_argument("--overlay", metavar="PNG", help="write the image with the detections")
    parser.set_defaults(handler=_infer)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; ValueError naming the file when it does not
    decode."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def _infer(args: argparse.Namespace) -> int:
    image = read_rgb(args.image)
    K = np.array([[args.fx, 0.0, args.cx], [0.0, args.fy, args.cy], [0.0, 0.0, 1.0]])
    model = model_dir(args)
    pipeline = Pipeline.from_dirs(
        model,
        db_dir(args),
        backend=args.backend,
        device=args.device,
        score_threshold=args.score_threshold,
        top_k=args.top_k,
    )
    detections = pipeline(image, K)
    rows = [
        [
            d.category,
            f"{d.score:.2f}",
            " ".join(f"{v:+.2f}" for v in d.t),
            " ".join(f"{v:.2f}" for v in d.extents),
            d.cad_id or "-",
        ]
        for d in detections
    ]
    for line in table(["category", "score", "t (m)", "size (m)", "CAD"], rows):
        write(line)
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in pipeline.last_timings.items())
    write(f"{len(detections)} objects ({pipeline.backend.name}: {timings})")
    if args.json:
        payload = {"detections": [d.to_json() for d in detections]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.overlay:
        picture = draw_detections(
            image, K, detections, pipeline.categories, lambda c: pipeline.db.get(c).samples
        )
        Image.fromarray(picture).save(args.overlay)
        write(f"overlay: {args.overlay}")
    return EXIT_OK
