"""Shared engine fixtures: seeded untrained checkpoints that detect (score threshold 0), their
exports, and synthetic images."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception.engine.export import export_onnx
from cad_perception.model.checkpoint import save_checkpoint
from cad_perception.model.config import RocaConfig
from cad_perception.model.roca import Roca
from tests.model.mini_dataset import mini_config

SIZE = (240, 320)
"""The default engine input size (H, W)."""


def detecting(config: RocaConfig, score_threshold: float = 0.0) -> RocaConfig:
    """config with the detector's score threshold replaced (0: an untrained model detects)."""
    detector = dataclasses.replace(config.detector, score_threshold=score_threshold)
    return dataclasses.replace(config, detector=detector)


def make_checkpoint(directory: Path, config: RocaConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(directory, Roca(config=config))


def intrinsics(size: tuple[int, int]) -> np.ndarray:
    """(3, 3) float32 pinhole K of a ~60 degree camera for images of size (H, W)."""
    height, width = size
    f = 0.87 * width
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float32)


def synthetic_image(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]: a smooth background with a few coloured boxes and noise."""
    rng = np.random.default_rng(seed)
    height, width = size
    y, x = np.mgrid[0:height, 0:width] / max(size)
    image = np.stack([0.3 + 0.4 * x, 0.4 + 0.3 * y, 0.5 + 0.2 * x * y])
    for _ in range(4):
        x0, y0 = rng.integers(0, width * 3 // 4), rng.integers(0, height * 3 // 4)
        w, h = rng.integers(width // 10, width // 3), rng.integers(height // 10, height // 2)
        image[:, y0 : y0 + h, x0 : x0 + w] = rng.random(3)[:, None, None]
    image += rng.normal(0.0, 0.02, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """The default network, seeded, untrained, detecting everything above score 0."""
    return make_checkpoint(tmp_path_factory.mktemp("engine") / "model", detecting(RocaConfig()))


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory) -> Path:
    """The checkpoint exported at SIZE."""
    out = tmp_path_factory.mktemp("engine") / "exported"
    export_onnx(checkpoint, out, input_size=SIZE)
    return out


@pytest.fixture(scope="session")
def mini_checkpoint(tmp_path_factory) -> Path:
    """A tiny network (tests.model.mini_dataset) for tests that export several times."""
    return make_checkpoint(tmp_path_factory.mktemp("engine") / "mini", detecting(mini_config()))
