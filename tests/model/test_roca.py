"""The assembled network: inference outputs, zero detections, training losses and gradients,
input validation, and a tiny overfit on one rendered example."""

import dataclasses

import numpy as np
import pytest
import torch

from cad_perception.cad.mesh import normalize_mesh
from cad_perception.cad.procedural import generate
from cad_perception.cad.voxel import voxelize
from cad_perception.geometry.rotations import rotation_about_y
from cad_perception.model.config import (
    AlignmentConfig,
    BackboneConfig,
    DepthConfig,
    DetectorConfig,
    RetrievalConfig,
    RocaConfig,
)
from cad_perception.model.outputs import OUTPUT_NAMES, RocaOutput
from cad_perception.model.roca import LOSS_KEYS, Roca
from cad_perception.synth.annotations import CATEGORY_IDS
from cad_perception.synth.renderer import RenderObject, render

HEIGHT, WIDTH = 120, 160
K_SMALL = np.array([[150.0, 0.0, 79.5], [0.0, 150.0, 59.5], [0.0, 0.0, 1.0]])

HEAD_OF_LOSS = {
    "loss_objectness": "detector.rpn.head",
    "loss_rpn_box_reg": "detector.rpn.head",
    "loss_classifier": "detector.roi_heads.box_predictor",
    "loss_box_reg": "detector.roi_heads.box_predictor",
    "loss_mask": "detector.roi_heads.mask_predictor",
    "loss_depth": "depth_head",
    "loss_noc": "alignment_head.noc_mlp",
    "loss_scale": "alignment_head.scale_head",
    "loss_translation_init": "alignment_head.offset_head",
    "loss_translation": "alignment_head.noc_mlp",
    "loss_rotation": "alignment_head.noc_mlp",
    "loss_triplet": "retrieval_head.cad_encoder",
    "loss_completion": "retrieval_head.decoder",
}
"""A module each loss must send gradient to."""


def tiny_config(**detector) -> RocaConfig:
    """A CPU-test-sized network."""
    return RocaConfig(
        backbone=BackboneConfig(fpn_channels=16),
        detector=DetectorConfig(
            box_head_dim=32,
            mask_head_channels=(16,),
            box_batch_size_per_image=32,
            rpn_pre_nms_top_n_train=200,
            rpn_post_nms_top_n_train=100,
            rpn_batch_size_per_image=64,
            **detector,
        ),
        depth=DepthConfig(level_channels=8, feature_channels=16),
        alignment=AlignmentConfig(hidden_channels=32, shape_code_dim=32),
        retrieval=RetrievalConfig(
            embedding_dim=32, voxel_channels=(4, 8, 8, 16), code_hidden_dim=32
        ),
    )


def rendered_chair() -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One 120 x 160 image of a procedural chair: image (1, 3, H, W), K (1, 3, 3), targets."""
    chair = normalize_mesh(generate("chair", 0).mesh)
    negative = normalize_mesh(generate("chair", 1).mesh)
    R = rotation_about_y(torch.tensor(0.6, dtype=torch.float64)).numpy()
    t, s = np.array([0.1, 0.2, 2.2]), np.full(3, 1 / chair.factor)
    buffers = render([RenderObject(mesh=chair.mesh, R=R, t=t, s=s)], K_SMALL, (HEIGHT, WIDTH))
    mask = buffers.instance == 1
    rows, columns = np.nonzero(mask)
    box = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
    image = np.where(mask[..., None], 0.5 + 0.5 * buffers.normals, 0.3).astype(np.float32)
    noc_mask = np.isfinite(buffers.noc).all(axis=-1)
    target = {
        "boxes": torch.tensor([box], dtype=torch.float32),
        "labels": torch.tensor([CATEGORY_IDS["chair"]]),
        "masks": torch.from_numpy(mask)[None],
        "R": torch.from_numpy(R).float()[None],
        "t": torch.from_numpy(t).float()[None],
        "s": torch.from_numpy(s).float()[None],
        "sym": ["none"],
        "cad_voxels": torch.from_numpy(voxelize(chair.mesh))[None],
        "negative_voxels": torch.from_numpy(voxelize(negative.mesh))[None],
        "depth": torch.from_numpy(buffers.depth),
        "noc": torch.from_numpy(np.where(noc_mask[..., None], buffers.noc, 0.0)).permute(2, 0, 1),
        "noc_mask": torch.from_numpy(noc_mask),
    }
    images = torch.from_numpy(image).permute(2, 0, 1)[None]
    return images, torch.from_numpy(K_SMALL).float()[None], target


def empty_target() -> dict:
    """Targets of an image without objects."""
    grid = torch.zeros(0, 32, 32, 32, dtype=torch.bool)
    return {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, HEIGHT, WIDTH, dtype=torch.bool),
        "R": torch.zeros(0, 3, 3),
        "t": torch.zeros(0, 3),
        "s": torch.zeros(0, 3),
        "sym": [],
        "cad_voxels": grid,
        "negative_voxels": grid,
        "depth": torch.full((HEIGHT, WIDTH), 3.0),
        "noc": torch.zeros(3, HEIGHT, WIDTH),
        "noc_mask": torch.zeros(HEIGHT, WIDTH, dtype=torch.bool),
    }


@pytest.fixture(scope="module")
def chair_example():
    return rendered_chair()


def check_output(output: RocaOutput, batch: int, height: int, width: int, config: RocaConfig):
    count, size = len(output.boxes), config.roi_size
    shapes = {name: tuple(value.shape) for name, value in output._asdict().items()}
    assert shapes == {
        "boxes": (count, 4),
        "scores": (count,),
        "classes": (count,),
        "batch_index": (count,),
        "masks": (count, 1, size, size),
        "R": (count, 3, 3),
        "t": (count, 3),
        "s": (count, 3),
        "alignment_valid": (count,),
        "noc": (count, 3, size, size),
        "embeddings": (count, config.retrieval.embedding_dim),
        "depth": (batch, 1, height, width),
    }
    integers = {"classes", "batch_index"}
    for name, value in output._asdict().items():
        expected = torch.int64 if name in integers else torch.float32
        assert value.dtype == (torch.bool if name == "alignment_valid" else expected), name
    assert ((output.classes >= 1) & (output.classes <= config.num_classes)).all()
    assert (output.batch_index.diff() >= 0).all() and (output.batch_index < batch).all()
    assert (output.depth > 0).all() and (output.s > 0).all()
    assert ((output.masks >= 0) & (output.masks <= 1)).all()
    if count:
        torch.testing.assert_close(output.embeddings.norm(dim=1), torch.ones(count))
        rotations = output.R @ output.R.transpose(1, 2)
        torch.testing.assert_close(rotations, torch.eye(3).expand(count, 3, 3), atol=1e-4, rtol=0)


def test_default_network_inference_outputs_on_a_random_240x320_image():
    torch.manual_seed(0)
    config = RocaConfig()
    network = Roca(config=config).eval()
    K = torch.tensor([[[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        output = network(torch.rand(1, 3, 240, 320), K)
    assert isinstance(output, RocaOutput) and output._fields == OUTPUT_NAMES
    assert len(output.boxes) > 0  # random weights still score above 0.05
    check_output(output, 1, 240, 320, config)


def test_a_batch_gives_the_detections_of_its_images_in_order():
    torch.manual_seed(0)
    config = tiny_config(score_threshold=0.0, detections_per_image=5)
    network = Roca(config=config).eval()
    images = torch.rand(2, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
    K = torch.from_numpy(K_SMALL).float().expand(2, 3, 3).clone()
    K[1, 0, 0] = 180.0  # the second image has its own intrinsics
    with torch.no_grad():
        batched = network(images, K)
        singles = [network(images[b : b + 1], K[b : b + 1]) for b in range(2)]
    check_output(batched, 2, HEIGHT, WIDTH, config)
    assert batched.batch_index.tolist() == [0] * 5 + [1] * 5
    for b, single in enumerate(singles):
        rows = batched.batch_index == b
        for name in ("boxes", "classes", "R", "t", "s", "noc", "embeddings"):
            torch.testing.assert_close(
                getattr(batched, name)[rows], getattr(single, name), atol=1e-4, rtol=1e-4
            )
        torch.testing.assert_close(batched.depth[b : b + 1], single.depth)


def test_canonical_focal_depth_follows_each_image_focal_length():
    """The same image through fx = fy = 2f is predicted twice as deep as through f; the
    network is otherwise the same, so its detections are the same boxes."""
    torch.manual_seed(0)
    base = tiny_config(score_threshold=0.0, detections_per_image=3)
    config = dataclasses.replace(
        base, depth=dataclasses.replace(base.depth, canonical_focal=float(K_SMALL[0, 0]))
    )
    network = Roca(config=config).eval()
    image = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
    K = torch.from_numpy(K_SMALL).float().expand(2, 3, 3).clone()
    K[1, 0, 0] *= 2
    K[1, 1, 1] *= 2
    with torch.no_grad():
        output = network(image.expand(2, -1, -1, -1), K)
    torch.testing.assert_close(output.depth[1], 2 * output.depth[0])
    rows = output.batch_index == 0
    torch.testing.assert_close(output.boxes[~rows], output.boxes[rows])


def test_zero_detections_give_empty_outputs_of_the_right_rank():
    torch.manual_seed(0)
    config = tiny_config(score_threshold=1.0)  # nothing scores above 1
    network = Roca(config=config).eval()
    K = torch.from_numpy(K_SMALL).float()[None]
    with torch.no_grad():
        output = network(torch.rand(1, 3, HEIGHT, WIDTH), K)
    assert len(output.boxes) == 0
    check_output(output, 1, HEIGHT, WIDTH, config)


def test_embed_cads_gives_unit_vectors():
    network = Roca(config=tiny_config()).eval()
    embeddings = network.embed_cads(torch.rand(3, 32, 32, 32) > 0.8)
    assert embeddings.shape == (3, 32)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_training_losses_are_finite_and_reach_their_heads(chair_example):
    images, K, target = chair_example
    torch.manual_seed(0)
    network = Roca(config=tiny_config()).train()
    batch = torch.cat([images, torch.rand_like(images)])  # the second image has no objects
    losses = network(batch, K.expand(2, 3, 3), [target, empty_target()])
    assert tuple(losses) == LOSS_KEYS
    for key, loss in losses.items():
        assert loss.shape == () and torch.isfinite(loss), key
        head = network.get_submodule(HEAD_OF_LOSS[key])
        grads = torch.autograd.grad(
            loss, list(head.parameters()), retain_graph=True, allow_unused=True
        )
        grads = [g for g in grads if g is not None]
        assert all(torch.isfinite(g).all() for g in grads), key
        assert any(g.abs().sum() > 0 for g in grads), f"{key} does not reach {HEAD_OF_LOSS[key]}"


def test_a_batch_without_objects_trains_with_zero_detection_losses():
    torch.manual_seed(0)
    network = Roca(config=tiny_config()).train()
    K = torch.from_numpy(K_SMALL).float()[None]
    losses = network(torch.rand(1, 3, HEIGHT, WIDTH), K, [empty_target()])
    assert all(torch.isfinite(loss) for loss in losses.values())
    for key in ("loss_mask", "loss_noc", "loss_rotation", "loss_triplet", "loss_completion"):
        assert losses[key] == 0.0, key
    assert losses["loss_classifier"] > 0 and losses["loss_depth"] > 0
    sum(losses.values()).backward()


def test_losses_are_multiplied_by_their_weights(chair_example):
    images, K, target = chair_example
    base = tiny_config()
    halved = dataclasses.replace(
        base, loss_weights=dataclasses.replace(base.loss_weights, noc=1.5, rotation=0.0)
    )
    torch.manual_seed(0)
    network = Roca(config=base).train()
    reweighted = Roca(config=halved).train()
    reweighted.load_state_dict(network.state_dict())
    torch.manual_seed(1)
    losses = network(images, K, [target])
    torch.manual_seed(1)
    other = reweighted(images, K, [target])
    torch.testing.assert_close(other["loss_noc"], losses["loss_noc"] / 2)
    assert other["loss_rotation"] == 0.0 and losses["loss_rotation"] > 0.0
    torch.testing.assert_close(other["loss_depth"], losses["loss_depth"])


def test_invalid_inputs_raise_value_error(chair_example):
    images, K, target = chair_example
    network = Roca(config=tiny_config()).train()
    with pytest.raises(ValueError, match="targets"):
        network(images, K)
    with pytest.raises(ValueError, match="lacks"):
        network(images, K, [{key: v for key, v in target.items() if key != "depth"}])
    with pytest.raises(ValueError, match="images"):
        network(images[0], K)
    with pytest.raises(ValueError, match="K"):
        network(images, K.expand(2, 3, 3))


def test_a_few_steps_on_one_example_decrease_the_total_loss(chair_example):
    images, K, target = chair_example
    torch.manual_seed(0)
    network = Roca(config=tiny_config()).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    totals = []
    for _ in range(6):
        total = sum(network(images, K, [target]).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert np.mean(totals[-2:]) < 0.75 * totals[0], totals
