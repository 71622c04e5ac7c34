"""Checkpoints: identical outputs after a round trip, clear refusals of files that do not fit,
optimizer state, and torchvision Mask R-CNN weights as an initialisation."""

import dataclasses
import json

import pytest
import safetensors.torch
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from cad_perception.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_config,
    load_matching_weights,
    load_model,
    load_optimizer_state,
    load_torchvision_maskrcnn_weights,
    load_training_state,
    load_weights,
    save_checkpoint,
)
from cad_perception.model.config import BackboneConfig, DetectorConfig, RocaConfig
from cad_perception.model.errors import CheckpointError
from cad_perception.model.roca import Roca
from tests.model.mini_dataset import mini_config


def model(seed: int = 0, config: RocaConfig | None = None) -> Roca:
    torch.manual_seed(seed)
    return Roca(config=config or mini_config()).eval()


@pytest.fixture
def saved(tmp_path):
    network = model(0)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    path = save_checkpoint(
        tmp_path / "ckpt",
        network,
        training_state={"step": 7},
        optimizer_state={"optimizer": optimizer.state_dict()},
    )
    return network, path


def outputs(network: Roca) -> list[torch.Tensor]:
    torch.manual_seed(5)
    images = torch.rand(1, 3, 64, 96)
    K = torch.tensor([[[80.0, 0, 47.5], [0, 80, 31.5], [0, 0, 1]]])
    with torch.no_grad():
        return [*network(images, K)], network.embed_cads(torch.rand(2, 32, 32, 32) > 0.7)


def test_round_trip_gives_identical_outputs_and_state(saved) -> None:
    network, path = saved
    assert load_config(path) == network.config
    restored = load_model(path)
    (first, cads), (second, cads_again) = outputs(network), outputs(restored)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(cads, cads_again)
    for key, value in network.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    assert load_training_state(path) == {"step": 7}
    assert set(load_optimizer_state(path)) == {"optimizer"}
    assert not (path.parent / "ckpt.partial").exists()


def test_loading_into_another_network_replaces_its_weights(saved) -> None:
    network, path = saved
    other = model(1)
    assert not torch.equal(other.backbone.body.conv1.weight, network.backbone.body.conv1.weight)
    load_weights(other, path)
    assert torch.equal(other.backbone.body.conv1.weight, network.backbone.body.conv1.weight)


def test_refuses_config_mismatch(saved) -> None:
    _, path = saved
    other = Roca(config=dataclasses.replace(mini_config(), roi_size=8))
    with pytest.raises(CheckpointError, match=r"model.roi_size: checkpoint 16, network 8"):
        load_weights(other, path)


def test_matching_weights_transfer_what_fits_another_configuration(saved) -> None:
    source, path = saved
    narrower = dataclasses.replace(
        mini_config(), backbone=dataclasses.replace(mini_config().backbone, fpn_channels=8)
    )
    target = model(1, narrower)
    before = {key: value.clone() for key, value in target.state_dict().items()}
    report = load_matching_weights(target, path)
    after, stored = target.state_dict(), source.state_dict()
    # the ResNet body keeps its shapes and is copied; the narrower pyramid is not
    body = [key for key in after if key.startswith("backbone.body.") and "num_batches" not in key]
    assert body and all(key in report.loaded for key in body)
    assert all(torch.equal(after[key], stored[key]) for key in body)
    fpn = "backbone.fpn.inner_blocks.0.0.weight"
    assert fpn in report.skipped and "shape" in report.skipped[fpn]
    assert torch.equal(after[fpn], before[fpn])


def test_matching_weights_refuse_a_checkpoint_where_nothing_fits(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "other", model(0))
    weights = safetensors.torch.load_file(path / WEIGHTS_FILE)
    renamed = {f"renamed.{key}": value for key, value in weights.items()}
    safetensors.torch.save_file(renamed, path / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="no tensor of the checkpoint fits"):
        load_matching_weights(model(0), path)


def rewrite_weights(path, change) -> None:
    weights = safetensors.torch.load_file(path / WEIGHTS_FILE)
    change(weights)
    safetensors.torch.save_file(weights, path / WEIGHTS_FILE)


def test_refuses_wrong_shapes(saved) -> None:
    network, path = saved

    def widen(weights):
        weights["backbone.body.conv1.weight"] = torch.zeros(64, 3, 5, 5)

    rewrite_weights(path, widen)
    with pytest.raises(CheckpointError, match=r"conv1.weight has shape \(64, 3, 5, 5\)"):
        load_weights(network, path)


def test_refuses_unknown_and_missing_keys(saved) -> None:
    network, path = saved

    def rename(weights):
        weights["extra.weight"] = weights.pop("depth_head.fuse.0.weight")

    rewrite_weights(path, rename)
    with pytest.raises(CheckpointError) as info:
        load_weights(network, path)
    assert "missing depth_head.fuse.0.weight" in str(info.value)
    assert "unexpected extra.weight" in str(info.value)


def test_refuses_corrupt_files(saved) -> None:
    network, path = saved
    (path / WEIGHTS_FILE).write_bytes(b"\x10\x00 not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read the weights"):
        load_weights(network, path)
    (path / CONFIG_FILE).write_text("{ broken")
    with pytest.raises(CheckpointError, match="cannot read JSON"):
        load_config(path)
    (path / CONFIG_FILE).write_text(json.dumps({"format": 1, "model": {"roi_sise": 8}}))
    with pytest.raises(CheckpointError, match=r"unknown key.*model\.roi_sise"):
        load_config(path)
    (path / "training.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="optimizer state"):
        load_optimizer_state(path)
    with pytest.raises(CheckpointError, match="no such file"):
        load_config(path / "nowhere")


class Payload:
    """An arbitrary class: unpickling it would import and run code."""


def test_optimizer_state_file_refuses_pickled_code(tmp_path) -> None:
    network = model()
    path = save_checkpoint(tmp_path / "ckpt", network, optimizer_state={"thing": Payload()})
    with pytest.raises(CheckpointError, match="optimizer state"):
        load_optimizer_state(path)


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    torch.manual_seed(0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("tv") / "maskrcnn_resnet50_fpn_coco.pth"
    torch.save(reference.state_dict(), path)
    return reference.state_dict(), path


def test_torchvision_layout_fills_a_resnet50_backbone_and_rpn(torchvision_file) -> None:
    state, path = torchvision_file
    config = dataclasses.replace(
        mini_config(),
        backbone=BackboneConfig(name="resnet50", norm="frozen_batch", fpn_channels=256),
        detector=DetectorConfig(box_head_dim=1024),
    )
    network = Roca(config=config)
    report = load_torchvision_maskrcnn_weights(network, path)
    own = network.state_dict()
    # BatchNorm's step counters have no place in frozen batch norm: all else must load
    backbone = [
        k for k in state if k.startswith("backbone.") and not k.endswith("num_batches_tracked")
    ]
    assert set(backbone) <= set(report.loaded)
    assert "detector.rpn.head.conv.0.0.weight" in report.loaded
    assert "detector.roi_heads.box_head.fc6.weight" in report.loaded
    for key in report.loaded:
        source = key.replace("detector.", "", 1) if key.startswith("detector.") else key
        assert torch.equal(own[key], state[source]), key
    assert "shape" in report.skipped["roi_heads.box_predictor.cls_score.weight"]
    assert len(report.loaded) + len(report.skipped) == len(state)
    assert report.skipped["backbone.body.bn1.num_batches_tracked"].startswith("no backbone")


def test_torchvision_layout_loads_what_fits_a_small_network(torchvision_file) -> None:
    state, path = torchvision_file
    network = model()
    report = load_torchvision_maskrcnn_weights(network, path)
    assert "backbone.body.conv1.weight" in report.loaded
    assert torch.equal(network.backbone.body.conv1.weight, state["backbone.body.conv1.weight"])
    assert report.skipped["backbone.body.layer1.0.conv3.weight"].startswith("no backbone")
    assert len(report.skipped) > len(report.loaded)


def test_torchvision_init_refuses_files_that_do_not_fit(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"head.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="no tensor of the file fits"):
        load_torchvision_maskrcnn_weights(model(), path)
    path.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read a state dict"):
        load_torchvision_maskrcnn_weights(model(), path)
