"""Small test assets: a mini training set (a 1-CAD-per-category procedural database and a few
96 x 128 scenes rendered by the project's own generator and dataset writer), a mini network
config, and a seeded checkpoint with a database embedded by it."""

from pathlib import Path

import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.model.checkpoint import save_checkpoint
from cad_perception.model.config import (
    AlignmentConfig,
    BackboneConfig,
    DepthConfig,
    DetectorConfig,
    RetrievalConfig,
    RocaConfig,
)
from cad_perception.model.embed import embed_database
from cad_perception.model.roca import Roca
from cad_perception.synth.dataset import write_dataset
from cad_perception.synth.generate import SceneFrames
from cad_perception.synth.scene import SceneConfig

IMAGE_SIZE = (96, 128)


def build_mini_dataset(root: Path, scenes: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """(dataset folder, database folder) under root."""
    db_path, data_dir = root / "db", root / "data"
    with CadDatabase.create(db_path) as db:
        build_procedural(db, 1, 0, progress=False)
    with CadDatabase.open(db_path, readonly=True) as db:
        frames = SceneFrames(
            db=db, scenes=scenes, seed=seed, config=SceneConfig(image_size=IMAGE_SIZE)
        )
        write_dataset(frames, data_dir, progress=False)
    return data_dir, db_path


def mini_config() -> RocaConfig:
    """A network small enough to train a few steps on 2 CPU cores in seconds."""
    return RocaConfig(
        roi_size=16,
        backbone=BackboneConfig(fpn_channels=16),
        detector=DetectorConfig(
            box_head_dim=32,
            mask_head_channels=(16,),
            box_batch_size_per_image=32,
            rpn_pre_nms_top_n_train=200,
            rpn_post_nms_top_n_train=100,
            rpn_batch_size_per_image=64,
        ),
        depth=DepthConfig(level_channels=8, feature_channels=16),
        alignment=AlignmentConfig(hidden_channels=32, shape_code_dim=32),
        retrieval=RetrievalConfig(
            embedding_dim=32, voxel_channels=(4, 8, 8, 16), code_hidden_dim=32, train_samples=8
        ),
    )


def save_model_and_db(root: Path, config: RocaConfig, seed: int = 0) -> tuple[Path, Path]:
    """(model folder, database folder) under root: an untrained Roca(config) seeded with
    `seed`, and a 1-CAD-per-category procedural database embedded with it."""
    torch.manual_seed(seed)
    model = Roca(config=config).eval()
    save_checkpoint(root / "model", model)
    with CadDatabase.create(root / "db") as db:
        build_procedural(db, 1, 0, progress=False)
        embed_database(db, model, progress=False)
    return root / "model", root / "db"
