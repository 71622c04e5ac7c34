"""`cad-perception train`: trains and resumes from a JSON or YAML config, and reports bad
configurations, data and init weights in one line."""

import json

import pytest
import safetensors.torch
import torch
import yaml

from cad_perception.cli import main
from cad_perception.cli.train import load_configs
from cad_perception.model.checkpoint import load_config, load_training_state
from cad_perception.model.config_io import config_to_dict
from cad_perception.model.errors import ConfigError
from tests.model.mini_dataset import build_mini_dataset, mini_config

TRAIN = {"batch_size": 1, "steps": 2, "warmup": 1, "checkpoint_every": 2, "log_every": 1}


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return build_mini_dataset(tmp_path_factory.mktemp("mini"), scenes=2)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": config_to_dict(mini_config()), "train": TRAIN}))
    return path


def test_train_then_resume_with_more_steps(mini, config_file, tmp_path, capsys) -> None:
    data_dir, db_path = mini
    run = tmp_path / "run"
    argv = ["train", "--config", str(config_file), "--data", str(data_dir), "--db", str(db_path),
            "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "trained steps 1-2" in capsys.readouterr().out
    assert load_config(run / "checkpoint-0000002") == mini_config()
    assert main([*argv, "--resume", "--steps", "3"]) == 0
    assert "trained steps 3-3" in capsys.readouterr().out
    assert load_training_state(run / "checkpoint-0000003")["step"] == 3


def test_a_new_run_starts_from_a_checkpoints_weights(mini, config_file, tmp_path, capsys) -> None:
    data_dir, db_path = mini
    first = tmp_path / "first"
    common = ["--data", str(data_dir), "--db", str(db_path), "--quiet"]
    assert main(["train", "--config", str(config_file), "--out", str(first), *common]) == 0
    source = first / "checkpoint-0000002"
    train_only = tmp_path / "train_only.yaml"
    train_only.write_text(yaml.safe_dump({"train": {**TRAIN, "steps": 1, "lr": 0.0}}))
    second = tmp_path / "second"
    argv = ["train", "--config", str(train_only), "--init-checkpoint", str(source),
            "--out", str(second), *common]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    # the network's config came from the checkpoint, and with lr 0 its weights are unchanged
    assert load_config(second / "checkpoint-0000001") == mini_config()
    before = safetensors.torch.load_file(source / "model.safetensors")
    after = safetensors.torch.load_file(second / "checkpoint-0000001" / "model.safetensors")
    assert all(torch.equal(before[key], after[key]) for key in before)
    # a checkpoint of another configuration gives the tensors that fit (transfer)
    narrower = config_to_dict(mini_config())
    narrower["backbone"]["fpn_channels"] = 8
    transfer = tmp_path / "transfer.yaml"
    transfer.write_text(yaml.safe_dump({"model": narrower, "train": {**TRAIN, "steps": 1}}))
    third = tmp_path / "third"
    argv = ["train", "--config", str(transfer), "--init-checkpoint", str(source),
            "--out", str(third), *common]  # fmt: skip
    assert main(argv) == 0
    assert load_config(third / "checkpoint-0000001").backbone.fpn_channels == 8
    moved = safetensors.torch.load_file(third / "checkpoint-0000001" / "model.safetensors")
    stem = "backbone.body.conv1.weight"  # the stem of the ResNet fits: copied, then one step
    assert (moved[stem] - before[stem]).abs().max() < 0.01 < before[stem].abs().max()


def test_bad_input_is_one_line_with_exit_code_2(mini, config_file, tmp_path, capsys) -> None:
    data_dir, db_path = mini
    base = ["train", "--data", str(data_dir), "--db", str(db_path), "--quiet"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"stepz": 3}}))
    assert main([*base, "--config", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert "unknown key(s) bad.json: train.stepz" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    argv = [*base, "--config", str(config_file), "--out", str(tmp_path / "c")]
    assert main([*argv, "--init-weights", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "cannot read a state dict" in err and len(err.strip().splitlines()) == 1


def test_load_configs_overrides_defaults_and_validates(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"backbone": {"fpn_channels": 64}}, "train": {"lr": 1}}))
    model, training = load_configs(str(path), steps=9)
    assert model.backbone.fpn_channels == 64 and model.roi_size == 32
    assert training.lr == 1.0 and training.steps == 9
    path.write_text(json.dumps({"modle": {}}))
    with pytest.raises(ConfigError, match="unknown section"):
        load_configs(str(path))
    path.write_text(json.dumps({"train": {"steps": "many"}}))
    with pytest.raises(ConfigError, match=r"train\.steps must be int"):
        load_configs(str(path))
    path.write_text(json.dumps({"train": {"augment": {"noise_std": -1}}}))
    with pytest.raises(ConfigError, match="noise_std must be >= 0"):
        load_configs(str(path))
    assert load_configs(None) == (type(model)(), type(training)())
