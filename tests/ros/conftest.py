"""Shared fixtures of the ROS adapter tests: a tiny model + CAD database, synthetic frames, and
rclpy contexts with spinning executors (real DDS on the run's random ROS_DOMAIN_ID)."""

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# tests/conftest.py sets one for the whole run; this keeps `pytest tests/ros/...` isolated too.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (run `make setup`)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run `make setup`)")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (run `make setup`)")

TEST_CONFIG = {"score_threshold": 0.0, "detections_per_image": 4, "rpn_post_nms_top_n_test": 50}
"""Detector settings of the test model: an untrained model with score threshold 0 detects (at
most 4 objects, few proposals: fast on a busy CPU)."""


@dataclass(frozen=True)
class ModelFiles:
    model_dir: Path
    db_dir: Path


@dataclass(frozen=True)
class SyntheticFrame:
    rgb: np.ndarray
    """(H, W, 3) uint8."""
    K: np.ndarray
    """(3, 3) float64."""


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """A seeded untrained checkpoint and a 9-CAD procedural database embedded with it."""
    from cad_perception.model.config import DetectorConfig, RocaConfig
    from tests.model.mini_dataset import save_model_and_db

    root = tmp_path_factory.mktemp("ros_model")
    config = RocaConfig(detector=DetectorConfig(**TEST_CONFIG))
    return ModelFiles(*save_model_and_db(root, config))


@pytest.fixture(scope="session")
def frames(model_files: ModelFiles) -> list[SyntheticFrame]:
    """Two rendered views of one synthetic scene of the test database (240 x 320)."""
    from cad_perception.cad.database import CadDatabase
    from cad_perception.synth.scene import generate_scene, render_view, sample_camera

    with CadDatabase.open(model_files.db_dir, readonly=True) as db:
        scene = generate_scene(db, 3)
        rng = np.random.default_rng(0)
        rendered = [render_view(scene, sample_camera(scene, rng), rng) for _ in range(2)]
    return [SyntheticFrame(frame.rgb, frame.K) for frame in rendered]


@pytest.fixture
def ros_context() -> Iterator["rclpy.Context"]:
    """An initialised rclpy context on the run's domain, shut down afterwards."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)
