"""The `cad-perception` command line (also `python -m cad_perception.cli`).

Each subcommand is one `_add_<name>_command(subcommands)` function that registers its parser and
sets `handler`, a function from the parsed arguments to an exit code; adding a subcommand means
writing one such function (and its handler) and listing it in `COMMANDS`. Errors of the package
on bad input end the command with one line on stderr and exit code 2; output goes through
`_write` (library modules log, they never print).
"""

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from cad_perception.eval.errors import EvalError
from cad_perception.eval.records import load_ground_truth, load_predictions
from cad_perception.eval.scan2cad import (
    AlignmentScore,
    CategoryScore,
    Thresholds,
    score_alignments,
)

PROG = "cad-perception"
EXIT_OK = 0
EXIT_BAD_INPUT = 2
"""Exit code for unusable input or arguments (argparse uses 2 for bad arguments too)."""

USER_ERRORS: tuple[type[Exception], ...] = (EvalError, OSError)
"""Exceptions reported as one line on stderr instead of a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]) and return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        message = " ".join(str(err).split())
        _write(f"{PROG} {args.command}: error: {message}", sys.stderr)
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of COMMANDS registered."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="ROCA single-image CAD retrieval and 9-DoF alignment."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subcommands)
    return parser


# --- score ---------------------------------------------------------------------------------


def _add_score_command(subcommands: argparse._SubParsersAction) -> None:
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
        type=_non_negative_float,
        default=defaults.translation_m,
        help="translation threshold in metres (default: %(default)s)",
    )
    parser.add_argument(
        "--r-thresh",
        type=_non_negative_float,
        default=defaults.rotation_deg,
        help="rotation threshold in degrees (default: %(default)s)",
    )
    parser.add_argument(
        "--s-thresh",
        type=_non_negative_float,
        default=defaults.scale,
        help="scale threshold on |mean(s / s_gt) - 1| (default: %(default)s)",
    )
    parser.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> int:
    thresholds = Thresholds(
        translation_m=args.t_thresh, rotation_deg=args.r_thresh, scale=args.s_thresh
    )
    predictions = load_predictions(args.pred)
    ground_truth = load_ground_truth(args.gt)
    score = score_alignments(predictions, ground_truth, thresholds)
    _write(_score_table(score), sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(score.to_json(), file, indent=2, allow_nan=False)
            file.write("\n")
    return EXIT_OK


def _score_table(score: AlignmentScore) -> str:
    """A fixed-width table: one row per category, then the class and instance averages."""
    t = score.thresholds
    title = (
        f"Scan2CAD alignment accuracy (%): translation <= {t.translation_m:g} m, "
        f"rotation <= {t.rotation_deg:g} deg, |mean(s / s_gt) - 1| <= {t.scale:g}"
    )
    header = ("category", "correct", "total", "accuracy", "ret. correct", "ret. accuracy")
    rows = [_score_row(name, c) for name, c in score.per_class.items()]
    rows.append(("class average", "", "", f"{score.class_avg:.1f}", "",
                 f"{score.retrieval_class_avg:.1f}"))  # fmt: skip
    rows.append(_score_row("instance average", score.overall))
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
    lines = [_table_line(row, widths) for row in (header, *rows)]
    return "\n".join([title, *lines])


def _score_row(name: str, c: CategoryScore) -> tuple[str, ...]:
    return (name, str(c.correct), str(c.total), f"{c.accuracy:.1f}", str(c.retrieval_correct),
            f"{c.retrieval_accuracy:.1f}")  # fmt: skip


def _table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """The first cell left-aligned, the others right-aligned, in columns of `widths`."""
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(cell.rjust(w) for cell, w in rest)])


# --- shared --------------------------------------------------------------------------------

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_score_command,)
"""Functions registering one subcommand each, in the order `--help` lists them."""


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _write(text: str, stream: TextIO) -> None:
    """The one place the command line prints."""
    print(text, file=stream)


if __name__ == "__main__":
    sys.exit(main())
