"""`--model` and `--db` arguments that default to the shipped model and the default CAD
database (pipeline/defaults.py)."""

import argparse
from pathlib import Path

from cad_perception.pipeline.defaults import default_model_dir, ensure_default_db


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="DIR", help="model folder (default: the shipped models/default)"
    )


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="DB",
        help="CAD database folder (default: the procedural library, built on first use)",
    )


def model_dir(args: argparse.Namespace) -> Path:
    """--model, or the shipped model."""
    return Path(args.model) if args.model else default_model_dir()


def db_dir(args: argparse.Namespace, *, embed: bool = True) -> Path:
    """--db, or the default database (with embed: embedded with the model of `args`)."""
    if args.db:
        return Path(args.db)
    model = model_dir(args) if embed else None
    return ensure_default_db(model, embed=embed, progress=not getattr(args, "quiet", False))
