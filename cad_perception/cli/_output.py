"""What every subcommand shares: exit codes, argument types and the one place that prints."""

import argparse
import math
import re
import sys
from collections.abc import Sequence
from typing import TextIO

PROG = "cad-perception"
EXIT_OK = 0
EXIT_BAD_INPUT = 2
"""Exit code for unusable input or arguments (argparse uses 2 for bad arguments too)."""


def write(text: str, stream: TextIO | None = None) -> None:
    """The one place the command line prints (to stdout unless `stream` is given)."""
    print(text, file=sys.stdout if stream is None else stream)


def non_negative_float(text: str) -> float:
    """argparse type: a finite-or-infinite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def image_size(text: str, minimum: int = 16) -> tuple[int, int]:
    """argparse type: 'HxW' (both >= minimum) -> (H, W)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None or min(int(match[1]), int(match[2])) < minimum:
        raise argparse.ArgumentTypeError(
            f"expected HxW with both >= {minimum}, e.g. 240x320, got {text!r}"
        )
    return int(match[1]), int(match[2])


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Fixed-width lines: the first column left-aligned, the others right-aligned."""
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
    lines = []
    for cells in (header, *rows):
        first, *rest = zip(cells, widths, strict=True)
        lines.append("  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)]))
    return lines
