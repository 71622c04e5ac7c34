"""`cad-perception eval`: accuracy of a model on a dataset in the ROCA layout (scorer JSON plus
detection AP50, median pose errors, NOC and depth errors, retrieval top-1)."""

import argparse
import json

from cad_perception.cli._defaults import add_db_argument, add_model_argument, db_dir, model_dir
from cad_perception.cli._output import EXIT_OK, non_negative_float, positive_int, table, write
from cad_perception.engine.factory import BACKENDS
from cad_perception.pipeline.evaluate import DEFAULT_SCORE_THRESHOLD, evaluate


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "eval", help="measure a model on a dataset", description=__doc__
    )
    add_model_argument(parser)
    add_db_argument(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder (`synth`)")
    parser.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    parser.add_argument(
        "--score-threshold",
        type=non_negative_float,
        default=DEFAULT_SCORE_THRESHOLD,
        help="lowest detection score scored (default: %(default)s)",
    )
    parser.add_argument("--limit", type=positive_int, help="only the first N images")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="run the eager network (torch, default: every metric) or the engine a robot "
        "deploys (no NOC / depth errors)",
    )
    parser.add_argument("--device", default="cpu", help="device (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    model = model_dir(args)
    report = evaluate(
        model,
        db_dir(args),
        args.data,
        score_threshold=args.score_threshold,
        limit=args.limit,
        device=args.device,
        backend=args.backend,
        progress=not args.quiet,
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
    for line in summary(report):
        write(line)
    return EXIT_OK


def summary(report: dict) -> list[str]:
    """The report as a per-category table and the headline figures."""
    rows = []
    for name, c in report["per_class"].items():
        rows.append(
            [
                name,
                str(c["total"]),
                f"{c['accuracy']:.1f}",
                f"{c['retrieval_accuracy']:.1f}",
                _maybe(report["detection_ap50_per_class"].get(name)),
                _maybe(report["retrieval_top1"].get(name)),
            ]
        )
    rows.append(
        [
            "class avg",
            str(report["gt_objects"]),
            f"{report['class_avg']:.1f}",
            f"{report['retrieval_class_avg']:.1f}",
            f"{report['detection_ap50']:.1f}",
            "",
        ]
    )
    rows.append(
        [
            "instance avg",
            "",
            f"{report['instance_avg']:.1f}",
            f"{report['retrieval_instance_avg']:.1f}",
            "",
            "",
        ]
    )
    header = ["category", "GT", "align %", "align+CAD %", "AP50", "top-1 %"]
    lines = table(header, rows)
    lines.append(
        f"matched {report['matched_objects']} of {report['gt_objects']} objects; median errors: "
        f"t {_maybe(report['median_translation_error_m'], 3)} m, "
        f"R {_maybe(report['median_rotation_error_deg'])} deg, "
        f"s {_maybe(report['median_scale_error'], 3)}; NOC L1 {_maybe(report['noc_l1_error'], 3)}; "
        f"depth {_maybe(report['depth_abs_error_m'], 3)} m; "
        f"{report['images']} images, {report['seconds_per_image']:.2f} s/image"
    )
    return lines


def _maybe(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
