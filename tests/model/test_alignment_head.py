"""Alignment head: RoI geometry known answers, Procrustes pose, shapes, gradients through it."""

import pytest
import torch

from cad_perception.geometry.camera import backproject_pixels
from cad_perception.geometry.rotations import geodesic_angle, random_rotations
from cad_perception.model.alignment_head import (
    AlignmentHead,
    masked_mean,
    procrustes_pose,
    roi_pixel_coordinates,
    roi_points,
    roi_resample,
    select_category,
)
from cad_perception.model.config import AlignmentConfig
from cad_perception.model.losses import rotation_loss

SIZE = 32
FEATURES = 8
K = torch.tensor([[200.0, 0.0, 80.0], [0.0, 210.0, 60.0], [0.0, 0.0, 1.0]])


def make_head(**overrides) -> AlignmentHead:
    torch.manual_seed(0)
    config = AlignmentConfig(hidden_channels=32, shape_code_dim=16, **overrides)
    return AlignmentHead(config=config, feature_channels=FEATURES, num_classes=9, roi_size=SIZE)


def head_inputs(count: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two 120 x 160 images, `count` detections with masks covering their centre."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[10.0, 20.0, 70.0, 90.0], [40.0, 5.0, 150.0, 110.0], [0, 0, 160, 120]])
    mask_probs = torch.zeros(3, 1, SIZE, SIZE)
    mask_probs[:, :, 8:24, 6:26] = 0.9
    return {
        "depth_features": torch.randn(2, FEATURES, 30, 40, generator=g),
        "depth": 2.0 + torch.rand(2, 1, 120, 160, generator=g),
        "K": K.expand(2, 3, 3),
        "boxes": boxes[:count],
        "batch_index": torch.tensor([0, 1, 1])[:count],
        "labels": torch.tensor([6, 1, 9])[:count],
        "mask_probs": mask_probs[:count],
    }


def test_roi_pixel_coordinates_of_a_box_one_pixel_per_cell_are_its_pixel_centres():
    uv = roi_pixel_coordinates(torch.tensor([[10.0, 20.0, 42.0, 52.0]]), SIZE)[0]
    v, u = torch.meshgrid(torch.arange(20.0, 52.0), torch.arange(10.0, 42.0), indexing="ij")
    torch.testing.assert_close(uv, torch.stack((u, v), dim=-1))


def test_roi_resample_samples_pixels_exactly_and_picks_the_batch_image():
    maps = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[10.0, 20.0, 42.0, 52.0], [0.0, 4.0, 32.0, 36.0]])
    rois = roi_resample(maps, boxes, torch.tensor([1, 0]), SIZE)
    torch.testing.assert_close(rois[0], maps[1, :, 20:52, 10:42])
    torch.testing.assert_close(rois[1], maps[0, :, 4:36, 0:32])


def test_roi_points_back_project_the_mapped_pixel_coordinates():
    # A depth plane linear in (u, v) is sampled exactly by bilinear interpolation, so the RoI
    # points must equal backproject_pixels at the RoI pixel coordinates, for any box.
    v, u = torch.meshgrid(torch.arange(120.0), torch.arange(160.0), indexing="ij")
    depth = torch.stack([2.0 + 0.01 * u - 0.005 * v, 3.0 - 0.002 * u + 0.004 * v])[:, None]
    Ks = torch.stack([K, K * torch.tensor([[1.1], [0.9], [1.0]])])
    g = torch.Generator().manual_seed(2)
    corner = torch.rand(6, 2, generator=g) * torch.tensor([100.0, 60.0]) + 5
    boxes = torch.cat([corner, corner + 5 + torch.rand(6, 2, generator=g) * 50], dim=1)
    batch_index = torch.tensor([0, 1, 0, 1, 1, 0])
    points = roi_points(depth, Ks, boxes, batch_index, SIZE)  # (N, 3, S, S)

    uv = roi_pixel_coordinates(boxes, SIZE)
    plane_depth = torch.where(
        batch_index[:, None, None] == 0,
        2.0 + 0.01 * uv[..., 0] - 0.005 * uv[..., 1],
        3.0 - 0.002 * uv[..., 0] + 0.004 * uv[..., 1],
    )
    expected = backproject_pixels(uv, plane_depth, Ks[batch_index][:, None])  # (N, S, S, 3)
    torch.testing.assert_close(points.permute(0, 2, 3, 1), expected, atol=1e-5, rtol=1e-5)


def test_masked_mean_known_answer_and_empty_mask_fallback():
    values = torch.arange(8.0).reshape(2, 1, 2, 2)  # [[0, 1], [2, 3]], [[4, 5], [6, 7]]
    weights = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    torch.testing.assert_close(masked_mean(values, weights), torch.tensor([[2.25], [5.5]]))


def test_select_category_picks_label_minus_one():
    values = torch.arange(2 * 9 * 3.0).reshape(2, 9, 3)
    torch.testing.assert_close(
        select_category(values, torch.tensor([1, 9])), values[[0, 1], [0, 8]]
    )


def similarity_problem(count: int, seed: int, dtype=torch.float32):
    """NOCs, scales, rotations, translations and the exact camera points of RoI grids."""
    g = torch.Generator().manual_seed(seed)
    noc = torch.rand(count, 3, SIZE, SIZE, generator=g, dtype=dtype) - 0.5
    s = 0.5 + torch.rand(count, 3, generator=g, dtype=dtype)
    R = random_rotations(count, g, dtype)
    t = torch.randn(count, 3, generator=g, dtype=dtype) + torch.tensor([0.0, 0.0, 3.0], dtype=dtype)
    src = noc.flatten(2).transpose(1, 2) * s[:, None]
    points = (src @ R.transpose(1, 2) + t[:, None]).transpose(1, 2).reshape(count, 3, SIZE, SIZE)
    return noc, s, R, t, points


def test_procrustes_pose_recovers_the_pose_from_exact_correspondences():
    noc, s, R, t, points = similarity_problem(4, seed=3)
    t_init = t + torch.tensor([0.3, -0.2, 0.5])
    weights = torch.rand(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    pose = procrustes_pose(noc, s, points, t_init, weights, min_points=16)
    assert pose.valid.all()
    assert geodesic_angle(pose.R, R).max() < 1e-3
    torch.testing.assert_close(pose.t, t, atol=1e-4, rtol=0)


def test_procrustes_pose_falls_back_to_identity_and_t_init():
    noc, s, _, t, points = similarity_problem(3, seed=5)
    t_init = t + 0.25
    weights = torch.zeros(3, 1, SIZE, SIZE)
    weights[0, :, :4, :3] = 1.0  # 12 pixels: below min_points
    weights[1, :, 0, 0] = 1.0  # a single pixel: degenerate
    pose = procrustes_pose(noc, s, points, t_init, weights, min_points=16)  # entry 2: no weights
    assert not pose.valid.any()
    torch.testing.assert_close(pose.R, torch.eye(3).expand(3, 3, 3))
    torch.testing.assert_close(pose.t, t_init)


def test_procrustes_pose_gradcheck_in_float64():
    torch.manual_seed(6)
    size = 3
    noc = (torch.rand(2, 3, size, size, dtype=torch.float64) - 0.5).requires_grad_()
    weights = (0.2 + torch.rand(2, 1, size, size, dtype=torch.float64)).requires_grad_()
    s = torch.tensor([[1.0, 0.8, 1.2], [0.5, 0.6, 0.7]], dtype=torch.float64)
    points = torch.randn(2, 3, size, size, dtype=torch.float64) + 3.0
    t_init = torch.tensor([[0.0, 0.0, 3.0], [0.1, 0.2, 2.9]], dtype=torch.float64)

    def solve(noc, weights):
        pose = procrustes_pose(noc, s, points, t_init, weights, min_points=3)
        return pose.R, pose.t

    assert torch.autograd.gradcheck(solve, (noc, weights), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_head_output_shapes_in_both_modes(training):
    head = make_head().train(training)
    alignment = head(**head_inputs())
    shapes = {name: tuple(value.shape) for name, value in alignment._asdict().items()}
    assert shapes == {
        "R": (3, 3, 3),
        "t": (3, 3),
        "t_init": (3, 3),
        "s": (3, 3),
        "noc": (3, 3, SIZE, SIZE),
        "weights": (3, 1, SIZE, SIZE),
        "mask": (3, 1, SIZE, SIZE),
        "points": (3, 3, SIZE, SIZE),
        "shape_code": (3, 16),
        "valid": (3,),
    }
    assert alignment.valid.dtype == torch.bool and alignment.valid.all()
    assert alignment.noc.abs().max() <= 0.5
    assert (alignment.weights[alignment.mask == 0] == 0).all()
    assert (alignment.weights[alignment.mask == 1] > 0).all()
    eye = torch.eye(3).expand(3, 3, 3)
    torch.testing.assert_close(alignment.R @ alignment.R.transpose(1, 2), eye, atol=1e-5, rtol=0)


def test_head_handles_zero_detections():
    alignment = make_head().eval()(**head_inputs(count=0))
    assert all(value.shape[0] == 0 for value in alignment)
    assert alignment.noc.shape == (0, 3, SIZE, SIZE)


def test_untrained_head_predicts_category_mean_scale_and_visible_centre():
    head = make_head()
    inputs = head_inputs()
    alignment = head(**inputs)
    means = torch.tensor(AlignmentConfig().category_scales)[inputs["labels"] - 1]
    torch.testing.assert_close(alignment.s, means)
    points = roi_points(inputs["depth"], inputs["K"], inputs["boxes"], inputs["batch_index"], SIZE)
    mask = inputs["mask_probs"] > 0.5
    centres = torch.stack(
        [p.flatten(1)[:, m.flatten()].mean(1) for p, m in zip(points, mask, strict=True)]
    )
    torch.testing.assert_close(alignment.t_init, centres)


def test_rotation_loss_gradient_flows_through_procrustes_into_the_noc_head():
    head = make_head()
    alignment = head(**head_inputs())
    alignment.noc.retain_grad()
    alignment.weights.retain_grad()
    gt_R = random_rotations(3, torch.Generator().manual_seed(7))
    loss = rotation_loss(alignment.R, gt_R, torch.zeros(3, dtype=torch.int64), alignment.valid)
    loss.backward()
    for grad in (alignment.noc.grad, alignment.weights.grad):
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0
    last_layer = head.noc_mlp[-1].weight.grad
    assert torch.isfinite(last_layer).all() and last_layer.abs().sum() > 0
