"""The training loop: class-balanced batches, photometric augmentation, AdamW, checkpoints,
exact resume, and CSV (+ TensorBoard when installed) logs.

`train(...)` trains a Roca on a dataset in the ROCA / Scan2CAD layout (synth.dataset) with the
CAD occupancy grids of a CAD database, writing into out_dir:

    checkpoint-<step>/   periodic checkpoints (model/checkpoint.py), the newest `keep_checkpoints`
                         kept; the last step is always saved, so the newest one is the result
    log.csv              step, total, each loss of LOSS_KEYS, lr, seconds (means over the steps
                         since the previous row; seconds per step)
    tensorboard/         the same scalars, only where `torch.utils.tensorboard` imports

Optimiser: AdamW (decoupled weight decay) with a linear warm-up and a cosine decay to 10 % of
lr: from-scratch training of a GroupNorm network with batches of a few images is far less
sensitive to the learning rate with Adam than with SGD. Gradients are clipped to grad_clip.

Class balancing: each step draws its batch_size images with replacement, weighted by the inverse
frequency of their rarest category (weight of an image = max over its categories c of
1 / images containing c); images without objects are never drawn.

Determinism: every random draw of step k (the images, the negative CADs, the augmentation and
the network's own sampling through torch's global generator) is seeded from (seed, k), so a
resumed run repeats exactly the steps an uninterrupted one would take (on the CPU; CUDA kernels
may differ in the last bits). `resume` continues from the newest checkpoint: weights, optimizer
state and step.
"""

import csv
import logging
import math
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from cad_perception.cad.database import CadDatabase
from cad_perception.model.augment import AugmentConfig, augment_images, replace_backgrounds
from cad_perception.model.checkpoint import (
    load_config,
    load_matching_weights,
    load_optimizer_state,
    load_torchvision_maskrcnn_weights,
    load_training_state,
    load_weights,
    save_checkpoint,
)
from cad_perception.model.collate import CadGrids, check_category_ids, make_batch
from cad_perception.model.config import RocaConfig
from cad_perception.model.config_io import config_to_dict
from cad_perception.model.errors import ModelError, TrainingDataError
from cad_perception.model.roca import LOSS_KEYS, Roca
from cad_perception.synth.annotations import Annotations
from cad_perception.synth.dataset import RocaDataset

logger = logging.getLogger(__name__)

LOG_FILE = "log.csv"
LOG_COLUMNS = ("step", "total", *LOSS_KEYS, "lr", "seconds")
CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")
FINAL_LR_FRACTION = 0.1
"""The cosine schedule ends at this fraction of lr."""

_STREAM_SAMPLER, _STREAM_NEGATIVES, _STREAM_AUGMENT, _STREAM_GLOBAL = range(4)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train (the network itself is configured by RocaConfig)."""

    steps: int = 20000
    """Total optimiser steps (a resumed run continues up to this count)."""
    batch_size: int = 2
    lr: float = 2e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 1e-4
    warmup: int = 500
    """Steps of linear warm-up from 0 to lr."""
    grad_clip: float = 10.0
    """Largest gradient norm (0 turns clipping off)."""
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    """Newest periodic checkpoints kept (older ones are deleted)."""
    log_every: int = 20
    seed: int = 0
    device: str = "cpu"
    """A torch device: 'cpu', 'cuda', 'cuda:1', ..."""
    amp: bool = False
    """bfloat16 autocast; CUDA only."""
    num_workers: int = 0
    """DataLoader worker processes decoding the PNGs."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "warmup", "grad_clip", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.amp and not self.device.startswith("cuda"):
            raise ValueError(f"amp needs a CUDA device, got device {self.device!r}")


@dataclass(frozen=True)
class TrainResult:
    """What a call of `train` did."""

    first_step: int
    """Steps already done when this call started (0 unless resumed)."""
    last_step: int
    losses: list[float]
    """Total loss of every step this call took."""
    checkpoint: Path
    """The newest checkpoint (of last_step)."""
    log: Path


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of step `step` (0-based): linear warm-up, then cosine decay."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(config.steps - config.warmup, 1)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return config.lr * (FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cosine)


def image_weights(annotations: Annotations) -> torch.Tensor:
    """(I,) float64 sampling weight of each image: 1 / (images containing its rarest
    category), 0 for images without objects."""
    categories = [
        {a.category_id for a in annotations.of_image(image.id)} for image in annotations.images
    ]
    counts: dict[int, int] = {}
    for present in categories:
        for category in present:
            counts[category] = counts.get(category, 0) + 1
    return torch.tensor(
        [max((1.0 / counts[c] for c in present), default=0.0) for present in categories],
        dtype=torch.float64,
    )


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A CPU generator seeded from (seed, step, stream)."""
    state = np.random.SeedSequence([seed, step, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


class BalancedBatches(Sampler[list[int]]):
    """Index lists of steps start..stop-1: batch k drawn with replacement from `weights` by a
    generator seeded from (seed, k), so any range of steps is reproducible on its own."""

    def __init__(self, weights: torch.Tensor, batch_size: int, seed: int, start: int, stop: int):
        if not (weights > 0).any():
            raise TrainingDataError("no image has an annotated object to train on")
        self.weights, self.batch_size, self.seed = weights, batch_size, seed
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            generator = step_generator(self.seed, step, _STREAM_SAMPLER)
            draw = torch.multinomial(self.weights, self.batch_size, True, generator=generator)
            yield draw.tolist()


def checkpoints(out_dir: Path) -> dict[int, Path]:
    """Step -> folder of the checkpoints in out_dir."""
    found = {}
    for path in out_dir.glob("checkpoint-*"):
        match = CHECKPOINT_PATTERN.fullmatch(path.name)
        if match and path.is_dir():
            found[int(match[1])] = path
    return dict(sorted(found.items()))


def train(
    model_config: RocaConfig,
    train_config: TrainConfig,
    data_dir: str | Path,
    db_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    init_weights: str | Path | None = None,
    init_checkpoint: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a Roca (see the module docstring); ModelError on unusable data or checkpoints.

    A new run starts from random weights, from a torchvision Mask R-CNN state dict
    (init_weights) or from the weights of a checkpoint folder, e.g. the shipped models/default
    (init_checkpoint: fine-tuning, or continuing a run whose optimizer state is gone, with a
    fresh optimizer and schedule). A checkpoint of another configuration (other categories,
    pyramid width, ...) gives every tensor whose name and shape fit; the rest start random."""
    if init_weights is not None and init_checkpoint is not None:
        raise ModelError("give init_weights or init_checkpoint, not both")
    out_dir = Path(out_dir)
    device = torch.device(train_config.device)
    dataset = RocaDataset(data_dir)
    annotations = dataset.annotations
    check_category_ids(annotations, model_config.categories)
    with CadDatabase.open(db_path, readonly=True) as db:
        used = sorted({a.category for a in annotations.annotations})
        cads = CadGrids.from_database(db, used)
    cads.check_covers(annotations)
    weights = image_weights(annotations)

    torch.manual_seed(train_config.seed)
    model = Roca(config=model_config)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=train_config.lr,
        weight_decay=train_config.weight_decay,
        fused=True,
    )
    start = _restore_or_start(model, optimizer, out_dir, resume, init_weights, device)
    if init_checkpoint is not None and start == 0:
        if load_config(init_checkpoint) == model_config:
            load_weights(model, init_checkpoint)
            logger.info("initialised from checkpoint %s", init_checkpoint)
        else:
            load_matching_weights(model, init_checkpoint)
    model.to(device).train()
    if start >= train_config.steps:
        raise ModelError(f"{out_dir}: already trained {start} steps of {train_config.steps}")

    loader = DataLoader(
        dataset,
        batch_sampler=BalancedBatches(
            weights, train_config.batch_size, train_config.seed, start, train_config.steps
        ),
        collate_fn=list,
        num_workers=train_config.num_workers,
    )
    log = _Log(out_dir, start)
    losses: list[float] = []
    last_checkpoint = None
    bar = tqdm(
        loader, total=len(loader), initial=0, desc="training", unit="step", disable=not progress
    )
    try:
        for step, items in enumerate(bar, start=start):
            began = time.perf_counter()
            parts = _train_step(model, optimizer, train_config, cads, items, step, device)
            total = sum(parts.values())
            losses.append(total)
            log.add(step + 1, total, parts, learning_rate(train_config, step), began)
            bar.set_postfix(loss=f"{total:.3f}")
            done = step + 1
            if done % train_config.checkpoint_every == 0 or done == train_config.steps:
                last_checkpoint = _save(model, optimizer, train_config, out_dir, done)
                log.flush()
            elif done % train_config.log_every == 0:
                log.flush()
    finally:
        bar.close()
        log.close()
    return TrainResult(
        first_step=start,
        last_step=train_config.steps,
        losses=losses,
        checkpoint=last_checkpoint,
        log=out_dir / LOG_FILE,
    )


def _restore_or_start(
    model: Roca,
    optimizer: torch.optim.Optimizer,
    out_dir: Path,
    resume: bool,
    init_weights: str | Path | None,
    device: torch.device,
) -> int:
    """The step to start from, after loading the newest checkpoint (resume) or init weights."""
    found = checkpoints(out_dir) if out_dir.exists() else {}
    if not resume:
        if found:
            raise ModelError(
                f"{out_dir} already holds checkpoints (newest: {found[max(found)].name}); "
                "resume it or choose another output folder"
            )
        if init_weights is not None:
            report = load_torchvision_maskrcnn_weights(model, init_weights)
            logger.info(
                "init weights: %d tensors loaded, %d skipped",
                len(report.loaded),
                len(report.skipped),
            )
        return 0
    if not found:
        raise ModelError(f"nothing to resume: no checkpoint-<step> folder in {out_dir}")
    if init_weights is not None:
        logger.warning("resuming from a checkpoint: --init-weights %s is ignored", init_weights)
    directory = found[max(found)]
    load_weights(model, directory)
    model.to(device)
    optimizer.load_state_dict(load_optimizer_state(directory, device)["optimizer"])
    step = int(load_training_state(directory)["step"])
    logger.info("resuming from %s at step %d", directory, step)
    return step


def _train_step(
    model: Roca,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    cads: CadGrids,
    items: list[dict],
    step: int,
    device: torch.device,
) -> dict[str, float]:
    """One optimiser step on one batch; returns the network's (weighted) losses as floats."""
    batch = make_batch(items, cads, step_generator(config.seed, step, _STREAM_NEGATIVES))
    generator = step_generator(config.seed, step, _STREAM_AUGMENT)
    images = augment_images(batch.images, config.augment, generator)
    if config.augment.background_probability > 0:
        images, depths = replace_backgrounds(
            images,
            [target["masks"] for target in batch.targets],
            [target["depth"] for target in batch.targets],
            config.augment.background_probability,
            generator,
        )
        targets = [t | {"depth": d} for t, d in zip(batch.targets, depths, strict=True)]
        batch = batch._replace(targets=targets)
    batch = batch._replace(images=images).to(device)
    torch.manual_seed(int(step_generator(config.seed, step, _STREAM_GLOBAL).initial_seed()))
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16) if config.amp else nullcontext()
    )
    with autocast:
        loss_dict = model(batch.images, batch.K, batch.targets)
    total = sum(loss.float() for loss in loss_dict.values())
    if not torch.isfinite(total):
        raise ModelError(f"step {step + 1}: the loss is not finite ({total.item()})")
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return {key: float(value.detach()) for key, value in loss_dict.items()}


def _save(
    model: Roca, optimizer: torch.optim.Optimizer, config: TrainConfig, out_dir: Path, step: int
) -> Path:
    path = save_checkpoint(
        out_dir / f"checkpoint-{step:07d}",
        model,
        training_state={"step": step, "train_config": config_to_dict(config)},
        optimizer_state={"optimizer": optimizer.state_dict()},
    )
    found = checkpoints(out_dir)
    for old in list(found)[: max(len(found) - config.keep_checkpoints, 0)]:
        shutil.rmtree(found[old])
    return path


class _Log:
    """log.csv (and TensorBoard when it imports): rows of means over the steps since the last
    row. On resume, rows after the starting step (from an interrupted run) are dropped."""

    def __init__(self, out_dir: Path, start: int):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / LOG_FILE
        rows = []
        if start > 0 and self.path.exists():
            with self.path.open(newline="", encoding="utf-8") as file:
                rows = [row for row in csv.DictReader(file) if int(row["step"]) <= start]
        self._file = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=LOG_COLUMNS)
        self._writer.writeheader()
        self._writer.writerows(rows)
        self._pending: list[dict[str, float]] = []
        self._tensorboard = _tensorboard_writer(out_dir)

    def add(
        self, step: int, total: float, parts: dict[str, float], lr: float, began: float
    ) -> None:
        seconds = time.perf_counter() - began
        self._pending.append({"step": step, "total": total, **parts, "lr": lr, "seconds": seconds})

    def flush(self) -> None:
        if not self._pending:
            return
        row = {key: float(np.mean([entry[key] for entry in self._pending])) for key in LOG_COLUMNS}
        row["step"] = int(self._pending[-1]["step"])
        self._pending.clear()
        self._writer.writerow(row)
        self._file.flush()
        if self._tensorboard is not None:
            for key in LOG_COLUMNS[1:]:
                self._tensorboard.add_scalar(key, row[key], row["step"])

    def close(self) -> None:
        self.flush()
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def _tensorboard_writer(out_dir: Path) -> Any:
    """A SummaryWriter into out_dir/tensorboard, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("tensorboard is not installed: logging to CSV only")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))
