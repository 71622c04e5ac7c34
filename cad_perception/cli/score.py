"""`cad-perception score`: Scan2CAD alignment accuracy of predictions against ground truth."""

import argparse
import json

from cad_perception.cli._output import EXIT_OK, non_negative_float, table, write
from cad_perception.eval.records import load_ground_truth, load_predictions
from cad_perception.eval.scan2cad import AlignmentScore, CategoryScore, Thresholds, score_alignments


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `score` parser."""
    defaults = Thresholds()
    parser = subcommands.add_parser(
        "score",
        help="Scan2CAD alignment accuracy of predictions against ground truth",
        description="Scan2CAD alignment accuracy (DESIGN.md): a per-category table on stdout.",
    )
    parser.add_argument("--pred", required=True, help="JSON list of prediction records")
    parser.add_argument("--gt", required=True, help="JSON list of ground-truth records")
    parser.add_argument("--json", metavar="OUT", help="also write the scores to this JSON file")
    parser.add_argument(
        "--t-thresh",
        type=non_negative_float,
        default=defaults.translation_m,
        help="translation threshold in metres (default: %(default)s)",
    )
    parser.add_argument(
        "--r-thresh",
        type=non_negative_float,
        default=defaults.rotation_deg,
        help="rotation threshold in degrees (default: %(default)s)",
    )
    parser.add_argument(
        "--s-thresh",
        type=non_negative_float,
        default=defaults.scale,
        help="scale threshold on |mean(s / s_gt) - 1| (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Score, print the table and optionally write the JSON."""
    thresholds = Thresholds(
        translation_m=args.t_thresh, rotation_deg=args.r_thresh, scale=args.s_thresh
    )
    predictions = load_predictions(args.pred)
    ground_truth = load_ground_truth(args.gt)
    score = score_alignments(predictions, ground_truth, thresholds)
    write(score_table(score))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(score.to_json(), file, indent=2, allow_nan=False)
            file.write("\n")
    return EXIT_OK


def score_table(score: AlignmentScore) -> str:
    """A title line, then one row per category and the class and instance averages."""
    t = score.thresholds
    title = (
        f"Scan2CAD alignment accuracy (%): translation <= {t.translation_m:g} m, "
        f"rotation <= {t.rotation_deg:g} deg, |mean(s / s_gt) - 1| <= {t.scale:g}"
    )
    header = ("category", "correct", "total", "accuracy", "ret. correct", "ret. accuracy")
    rows = [_row(name, c) for name, c in score.per_class.items()]
    rows.append(("class average", "", "", f"{score.class_avg:.1f}", "",
                 f"{score.retrieval_class_avg:.1f}"))  # fmt: skip
    rows.append(_row("instance average", score.overall))
    return "\n".join([title, *table(header, rows)])


def _row(name: str, c: CategoryScore) -> tuple[str, ...]:
    return (name, str(c.correct), str(c.total), f"{c.accuracy:.1f}", str(c.retrieval_correct),
            f"{c.retrieval_accuracy:.1f}")  # fmt: skip
