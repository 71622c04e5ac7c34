"""Checkpoints: safetensors weights + a JSON config sidecar (+ training state), and loading
torchvision COCO Mask R-CNN weights as an initialisation.

A checkpoint is a folder

    model.safetensors    the network's state dict
    config.json          {"format": 1, "model": RocaConfig as a dict (model/config_io.py)}
    training.json        optional: the JSON-able training state (step, train config, ...)
    training.pt          optional: optimizer (and AMP scaler) state dicts, loadable with
                         torch.load(weights_only=True) (tensors, numbers, lists and dicts only)

written into a temporary sibling folder that is renamed into place, so an interrupted save
never leaves a half-written checkpoint. Loading never executes code from a file (safetensors,
JSON, and torch.load(weights_only=True) only) and checks every key, shape and the config,
raising CheckpointError with the file and the reason.
"""

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from cad_perception.model.config import RocaConfig
from cad_perception.model.config_io import config_from_dict, config_to_dict
from cad_perception.model.errors import CheckpointError, ConfigError
from cad_perception.model.roca import Roca

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINING_STATE_FILE = "training.json"
OPTIMIZER_FILE = "training.pt"
CAD_ENCODER_NAME = "roca-voxel"
"""Encoder name of the CAD embeddings in a CAD database (cad_encoder_key)."""

TORCHVISION_PREFIXES = {
    "backbone.": "backbone.",
    "rpn.": "detector.rpn.",
    "roi_heads.": "detector.roi_heads.",
}
"""Key prefix of torchvision's MaskRCNN state dict -> the prefix of the same module in Roca."""


def save_checkpoint(
    directory: str | Path,
    model: Roca,
    *,
    training_state: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write model (and the optional training state) as a checkpoint folder; returns it.

    training_state is JSON-able; optimizer_state is a dict of state dicts (e.g.
    {"optimizer": opt.state_dict(), "scaler": scaler.state_dict()}). half=True stores the
    floating-point tensors as float16 (half the file; loading casts them back to the network's
    dtype), for shipping a model. An existing folder at `directory` is replaced.
    """
    directory = Path(directory)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    if half:
        weights = {
            key: value.half() if value.is_floating_point() else value
            for key, value in weights.items()
        }
    safetensors.torch.save_file(weights, partial / WEIGHTS_FILE)
    config = {"format": FORMAT_VERSION, "model": config_to_dict(model.config)}
    _write_json(partial / CONFIG_FILE, config)
    if training_state is not None:
        _write_json(partial / TRAINING_STATE_FILE, training_state)
    if optimizer_state is not None:
        torch.save(optimizer_state, partial / OPTIMIZER_FILE)
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(partial, directory)
    logger.info("saved checkpoint %s", directory)
    return directory


def load_config(directory: str | Path) -> RocaConfig:
    """The RocaConfig stored in a checkpoint folder."""
    path = Path(directory) / CONFIG_FILE
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or "model" not in data:
        raise CheckpointError(
            f"{path}: not a checkpoint config (expected format {FORMAT_VERSION} and 'model')"
        )
    try:
        return config_from_dict(RocaConfig, data["model"], "model")
    except ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from err


def load_model(directory: str | Path, device: torch.device | str = "cpu") -> Roca:
    """A Roca built from a checkpoint's config with its weights, in eval mode on `device`."""
    model = Roca(config=load_config(directory))
    load_weights(model, directory)
    return model.to(device).eval()


def load_weights(model: Roca, directory: str | Path) -> None:
    """Load a checkpoint's weights into `model`; CheckpointError if its config differs from
    model.config or a key is missing, unexpected or of another shape."""
    directory = Path(directory)
    stored = load_config(directory)
    if stored != model.config:
        differences = _differences(config_to_dict(stored), config_to_dict(model.config))
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: the checkpoint's config differs from the network's "
            f"({'; '.join(differences[:5])})"
        )
    path = directory / WEIGHTS_FILE
    try:
        weights = safetensors.torch.load_file(path)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{path}: cannot read the weights: {err}") from err
    expected = model.state_dict()
    problems = [
        *(f"missing {key}" for key in expected if key not in weights),
        *(f"unexpected {key}" for key in weights if key not in expected),
        *(
            f"{key} has shape {tuple(weights[key].shape)}, the network {tuple(expected[key].shape)}"
            for key in expected
            if key in weights and weights[key].shape != expected[key].shape
        ),
    ]
    if problems:
        raise CheckpointError(
            f"{path}: {len(problems)} tensor(s) do not fit the network: {'; '.join(problems[:5])}"
        )
    model.load_state_dict(weights)  # copies cast float16 files to the network's dtype


def cad_encoder_key(model: Roca) -> tuple[str, str]:
    """(name, version) under which the CAD embeddings of `model`'s CAD encoder are stored in a
    CAD database: version = the first 16 hex digits of the SHA-256 of the encoder's weights (as
    float32, in state-dict order), so retraining (or rounding to float16) gives a new version and
    reloading the same checkpoint does not."""
    digest = hashlib.sha256()
    for key, value in model.retrieval_head.cad_encoder.state_dict().items():
        digest.update(key.encode("utf-8"))
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return CAD_ENCODER_NAME, digest.hexdigest()[:16]


def load_training_state(directory: str | Path) -> dict[str, Any]:
    """The JSON training state of a checkpoint folder."""
    path = Path(directory) / TRAINING_STATE_FILE
    data = _read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the training state must be a JSON object")
    return data


def load_optimizer_state(
    directory: str | Path, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The optimizer state dicts of a checkpoint folder (torch.load with weights_only=True)."""
    path = Path(directory) / OPTIMIZER_FILE
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: no optimizer state in this checkpoint") from err
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot read the optimizer state: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the optimizer state must be a dict")
    return state


@dataclass
class InitReport:
    """What a partial initialisation (`load_torchvision_maskrcnn_weights`,
    `load_matching_weights`) did."""

    loaded: list[str] = field(default_factory=list)
    """Keys of the network that were set from the file."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Keys of the file that were not used -> why."""


def load_matching_weights(model: Roca, directory: str | Path) -> InitReport:
    """Initialise `model` from a checkpoint folder of another configuration (transfer).

    Every tensor of the checkpoint whose key exists in the network with the same shape is
    copied; the rest are skipped with the reason (e.g. a class predictor for another number of
    categories, or a narrower pyramid). CheckpointError if nothing fits. Use `load_weights`
    when the configurations are equal.
    """
    path = Path(directory) / WEIGHTS_FILE
    try:
        weights = safetensors.torch.load_file(path)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{path}: cannot read the weights: {err}") from err
    own = model.state_dict()
    report = InitReport()
    update = {}
    for key, tensor in weights.items():
        if key not in own:
            report.skipped[key] = "no such tensor in the network"
        elif own[key].shape != tensor.shape:
            report.skipped[key] = (
                f"shape {tuple(tensor.shape)} vs the network's {tuple(own[key].shape)}"
            )
        else:
            update[key] = tensor.to(own[key].dtype)
            report.loaded.append(key)
    if not update:
        raise CheckpointError(f"{path}: no tensor of the checkpoint fits the network")
    model.load_state_dict(update, strict=False)
    logger.info(
        "initialised %d of %d tensors from %s (another configuration), skipped %d",
        len(report.loaded),
        len(own),
        directory,
        len(report.skipped),
    )
    return report


def load_torchvision_maskrcnn_weights(model: nn.Module, path: str | Path) -> InitReport:
    """Initialise `model` from a torchvision Mask R-CNN (ResNet-FPN) state dict file.

    The file's backbone.*, rpn.* and roi_heads.* keys map onto Roca's backbone.*,
    detector.rpn.* and detector.roi_heads.*; a tensor is copied where the mapped key exists
    with the same shape, everything else is skipped with the reason. A ResNet-50 backbone with
    frozen_batch norm and 256 FPN channels takes the whole torchvision backbone and RPN; smaller
    networks take what fits (e.g. the ResNet stem). The file may also be a dict holding the
    state dict under "model" or "state_dict".
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read a state dict: {err}") from err
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    own = model.state_dict()
    report = InitReport()
    update = {}
    for key, tensor in state.items():
        prefix = next((p for p in TORCHVISION_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            report.skipped[key] = "no matching module"
            continue
        target = TORCHVISION_PREFIXES[prefix] + key.removeprefix(prefix)
        if target not in own:
            report.skipped[key] = f"no {target} in the network"
        elif own[target].shape != tensor.shape:
            report.skipped[key] = (
                f"shape {tuple(tensor.shape)} vs the network's {tuple(own[target].shape)}"
            )
        else:
            update[target] = tensor
            report.loaded.append(target)
    if not update:
        raise CheckpointError(f"{path}: no tensor of the file fits the network")
    model.load_state_dict(update, strict=False)
    logger.info(
        "initialised %d tensors from %s, skipped %d", len(report.loaded), path, len(report.skipped)
    )
    return report


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: no such file (not a checkpoint folder?)") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read JSON: {err}") from err


def _differences(stored: Any, current: Any, where: str = "model") -> list[str]:
    """Human-readable paths where two config dicts differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        return [
            difference
            for key in sorted(set(stored) | set(current))
            for difference in _differences(stored.get(key), current.get(key), f"{where}.{key}")
        ]
    return [] if stored == current else [f"{where}: checkpoint {stored!r}, network {current!r}"]
