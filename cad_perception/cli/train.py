"""`cad-perception train`: train the ROCA network on a dataset with a CAD database."""

import argparse
from pathlib import Path

from cad_perception.cli._output import EXIT_OK, positive_int, write
from cad_perception.model.checkpoint import load_config
from cad_perception.model.config import RocaConfig
from cad_perception.model.config_io import config_from_dict, read_config_file
from cad_perception.model.errors import ConfigError
from cad_perception.model.train import TrainConfig, train

CONFIG_SECTIONS = ("model", "train")
"""Top-level keys of a --config file: RocaConfig and TrainConfig fields overriding defaults."""


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `train` parser."""
    parser = subcommands.add_parser(
        "train",
        help="train the network on a dataset (ROCA / Scan2CAD layout) and a CAD database",
        description="Train ROCA on DIR with the CAD grids of DB, writing checkpoints "
        "(RUN/checkpoint-<step>/) and RUN/log.csv. FILE (JSON or YAML) may hold a 'model' and "
        "a 'train' section overriding the defaults of RocaConfig and TrainConfig.",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML configuration")
    parser.add_argument("--data", metavar="DIR", required=True, help="dataset folder")
    parser.add_argument("--db", required=True, help="CAD database folder (`db build`)")
    parser.add_argument("--out", metavar="RUN", required=True, help="run folder")
    parser.add_argument(
        "--resume", action="store_true", help="continue from RUN's newest checkpoint"
    )
    parser.add_argument(
        "--init-weights",
        metavar="PTH",
        help="initialise from a torchvision COCO Mask R-CNN state dict file",
    )
    parser.add_argument(
        "--init-checkpoint",
        metavar="DIR",
        help="start from a checkpoint folder's weights, e.g. models/default (its config is "
        "the model's unless --config has a model section)",
    )
    parser.add_argument("--steps", type=positive_int, help="total steps (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train)


def load_configs(
    path: str | None, steps: int | None = None, init_checkpoint: str | None = None
) -> tuple[RocaConfig, TrainConfig]:
    """The network and training configurations of a --config file (defaults if None; the
    network's of init_checkpoint when the file has no model section)."""
    data = {} if path is None else read_config_file(path)
    unknown = sorted(set(data) - set(CONFIG_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(unknown)}; "
            f"expected {', '.join(CONFIG_SECTIONS)}"
        )
    train_section = dict(data.get("train") or {})
    if steps is not None:
        train_section["steps"] = steps
    where = Path(path).name if path else "config"
    if init_checkpoint is not None and not data.get("model"):
        model = load_config(init_checkpoint)
    else:
        model = config_from_dict(RocaConfig, data.get("model") or {}, f"{where}: model")
    return model, config_from_dict(TrainConfig, train_section, f"{where}: train")


def _train(args: argparse.Namespace) -> int:
    model_config, train_config = load_configs(args.config, args.steps, args.init_checkpoint)
    result = train(
        model_config,
        train_config,
        args.data,
        args.db,
        args.out,
        resume=args.resume,
        init_weights=args.init_weights,
        init_checkpoint=args.init_checkpoint,
        progress=not args.quiet,
    )
    final = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    write(
        f"trained steps {result.first_step + 1}-{result.last_step}, last loss {final}: "
        f"{result.checkpoint}"
    )
    write(f"log: {result.log}")
    return EXIT_OK
