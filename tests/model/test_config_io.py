"""Configs <-> JSON dicts: exact round trips, partial overrides, refusals with the key path."""

import json

import pytest

from cad_perception.model.config import RocaConfig
from cad_perception.model.config_io import config_from_dict, config_to_dict, read_config_file
from cad_perception.model.errors import ConfigError
from cad_perception.model.train import TrainConfig


def test_json_round_trip_restores_tuples_and_nested_sections() -> None:
    config = RocaConfig(roi_size=16)
    data = json.loads(json.dumps(config_to_dict(config)))
    assert isinstance(data["alignment"]["category_scales"][0], list)
    restored = config_from_dict(RocaConfig, data)
    assert restored == config
    assert isinstance(restored.alignment.category_scales[0], tuple)
    assert config_from_dict(TrainConfig, config_to_dict(TrainConfig(seed=4))) == TrainConfig(seed=4)


def test_partial_dicts_override_defaults() -> None:
    config = config_from_dict(RocaConfig, {"detector": {"anchor_sizes": [8, 16, 32, 64, 128]}})
    assert config.detector.anchor_sizes == (8, 16, 32, 64, 128)
    assert config.detector.box_head_dim == RocaConfig().detector.box_head_dim
    assert config.backbone == RocaConfig().backbone
    assert config_from_dict(TrainConfig, {"lr": 1}).lr == 1.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backbone": {"depth": 3}}, r"unknown key\(s\) config\.backbone\.depth"),
        ({"roi_size": "16"}, r"config\.roi_size must be int"),
        ({"roi_size": True}, r"config\.roi_size must be int"),
        ({"backbone": []}, r"config\.backbone must be a mapping"),
        ({"alignment": {"category_scales": [[1, 2]]}}, r"category_scales\[0\] must have 3"),
        ({"roi_size": 5}, r"config: roi_size must be an even number"),
    ],
)
def test_refusals_name_the_key(data, message) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(RocaConfig, data)


def test_read_config_file_json_and_yaml(tmp_path) -> None:
    (tmp_path / "a.json").write_text('{"model": {"roi_size": 8}}')
    (tmp_path / "a.yml").write_text("model:\n  roi_size: 8\n")
    assert read_config_file(tmp_path / "a.json") == read_config_file(tmp_path / "a.yml")
    (tmp_path / "b.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_config_file(tmp_path / "b.yaml")
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot parse"):
        read_config_file(tmp_path / "c.json")
