"""The `cad-perception` command line (also `python -m cad_perception.cli`).

Each subcommand is a module here with `register(subcommands)`, which adds its parser and sets
`handler`, a function from the parsed arguments to an exit code; adding a subcommand means
writing one such module and listing it in `COMMANDS`. Errors of the package on bad input end the
command with one line on stderr and exit code 2; output goes through `_output.write` (library
modules log, they never print).
"""

import argparse
import logging
import sys
from collections.abc import Sequence

from cad_perception.cad.errors import CadError
from cad_perception.cli import (
    bench,
    db,
    evaluate,
    export,
    import_roca,
    infer,
    replay,
    score,
    synth,
    train,
)
from cad_perception.cli._output import EXIT_BAD_INPUT, PROG, write
from cad_perception.eval.errors import EvalError
from cad_perception.model.errors import ModelError
from cad_perception.synth.errors import SynthError

COMMANDS = (db, synth, import_roca, train, evaluate, infer, replay, export, score, bench)
"""Subcommand modules, in the order `--help` lists them."""

USER_ERRORS: tuple[type[Exception], ...] = (
    CadError,
    EvalError,
    ModelError,
    SynthError,
    OSError,
    ValueError,
)
"""Exceptions reported as one line on stderr instead of a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]) and return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level={0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        logging.getLogger(__name__).debug("%s failed", args.command, exc_info=True)
        message = " ".join(str(err).split())
        write(f"{PROG} {args.command}: error: {message}", sys.stderr)
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of COMMANDS registered."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="ROCA single-image CAD retrieval and 9-DoF alignment."
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v logs progress, -vv also tracebacks"
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subcommands)
    return parser
