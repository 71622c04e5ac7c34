"""Network configuration: defaults, validation, immutability, keyword-only construction."""

import dataclasses

import numpy as np
import pytest

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.procedural import CATEGORY_SIZES
from cad_perception.model.config import (
    AlignmentConfig,
    BackboneConfig,
    DepthConfig,
    DetectorConfig,
    LossWeights,
    RetrievalConfig,
    RocaConfig,
)


def test_defaults_cover_the_nine_categories():
    config = RocaConfig()
    assert config.categories == CATEGORIES
    assert config.num_classes == 9
    assert len(config.alignment.category_scales) == 9


def test_category_scales_are_the_diagonals_of_the_mean_procedural_sizes():
    scales = dict(zip(CATEGORIES, AlignmentConfig().category_scales, strict=True))
    low, high = CATEGORY_SIZES["chair"]
    diagonal = np.linalg.norm((np.array(low) + np.array(high)) / 2)
    np.testing.assert_allclose(scales["chair"], [diagonal] * 3)
    assert 0.5 < scales["bin"][0] < scales["chair"][0] < scales["bed"][0] < 3.5


def test_sections_are_frozen_and_keyword_only():
    config = RocaConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.roi_size = 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.backbone.name = "resnet50"
    with pytest.raises(TypeError):
        BackboneConfig("resnet34")


def test_asdict_round_trip_rebuilds_an_equal_config():
    config = RocaConfig(backbone=BackboneConfig(name="resnet34", fpn_channels=64))
    data = dataclasses.asdict(config)
    sections = {
        "backbone": BackboneConfig,
        "detector": DetectorConfig,
        "depth": DepthConfig,
        "alignment": AlignmentConfig,
        "retrieval": RetrievalConfig,
        "loss_weights": LossWeights,
    }
    for key, section in sections.items():
        data[key] = section(**data[key])
    assert RocaConfig(**data) == config


@pytest.mark.parametrize(
    "build",
    [
        lambda: BackboneConfig(name="vgg16"),
        lambda: BackboneConfig(norm="instance"),
        lambda: BackboneConfig(fpn_channels=0),
        lambda: DetectorConfig(anchor_sizes=(32, 64)),
        lambda: AlignmentConfig(mask_threshold=1.0),
        lambda: AlignmentConfig(category_scales=((1.0, 1.0, -1.0),)),
        lambda: RetrievalConfig(voxel_channels=(8, 16)),
        lambda: LossWeights(noc=-1.0),
        lambda: RocaConfig(roi_size=31),
        lambda: RocaConfig(categories=("chair", "table")),  # 9 default category scales
    ],
)
def test_invalid_values_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


def test_loss_weights_look_up_by_loss_key():
    weights = LossWeights()
    assert weights.of("loss_noc") == 3.0
    assert weights.of("loss_rotation") == 2.0
    assert weights.of("loss_classifier") == 1.0
