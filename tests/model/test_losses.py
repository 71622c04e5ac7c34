"""Loss functions: known answers, masking, symmetry awareness, empty inputs, gradients."""

import math

import pytest
import torch

from cad_perception.geometry.rotations import (
    SYMMETRIES,
    random_rotations,
    rotation_about_y,
    symmetry_rotations,
)
from cad_perception.model.losses import (
    completion_loss,
    depth_loss,
    noc_loss,
    rotation_loss,
    scale_loss,
    symmetry_rotation_table,
    translation_loss,
    triplet_loss,
)

CODES = {name: code for code, name in enumerate(SYMMETRIES)}


def test_depth_loss_averages_over_valid_pixels_only():
    gt = torch.tensor([[[2.0, 0.0], [4.0, 1.0]]])
    depth = torch.tensor([[[[2.5, 9.0], [3.0, 1.0]]]])
    assert depth_loss(depth, gt).item() == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_noc_loss_sums_xyz_and_averages_valid_pixels():
    gt = torch.zeros(1, 3, 2, 2)
    noc = torch.zeros(1, 3, 2, 2)
    noc[0, :, 0, 0] = torch.tensor([0.1, -0.2, 0.3])
    noc[0, :, 1, 1] = 5.0  # invalid pixel: ignored
    valid = torch.tensor([[[[True, True], [False, False]]]])
    assert noc_loss(noc, gt, valid).item() == pytest.approx(0.6 / 2)


def test_scale_loss_is_relative():
    gt = torch.tensor([[1.0, 2.0, 4.0]])
    assert scale_loss(gt * 2, gt).item() == pytest.approx(3 * math.log(2))
    assert scale_loss(gt * 2, gt).item() == pytest.approx(scale_loss(gt * 4, gt * 2).item())


def test_translation_loss_is_the_mean_euclidean_distance_with_finite_gradient_at_zero():
    gt = torch.tensor([[0.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
    t = torch.tensor([[3.0, 4.0, 2.0], [1.0, 1.0, 1.0]], requires_grad=True)
    loss = translation_loss(t, gt)
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    assert torch.isfinite(t.grad).all()
    torch.testing.assert_close(t.grad[1], torch.zeros(3))


def test_symmetry_table_rows_match_symmetry_rotations():
    table, used = symmetry_rotation_table(torch.float64)
    for code, name in enumerate(SYMMETRIES):
        group = symmetry_rotations(name)
        assert used[code].sum() == len(group)
        torch.testing.assert_close(table[code, : len(group)], group)


@pytest.mark.parametrize(
    ("sym", "degrees", "zero"),
    [
        ("none", 180.0, False),
        ("rot2", 180.0, True),
        ("rot2", 90.0, False),
        ("rot4", 90.0, True),
        ("rot4", 270.0, True),
        ("inf", 20.0, True),
        ("inf", 5.0, False),
    ],
)
def test_rotation_loss_is_zero_exactly_for_symmetric_equivalents(sym, degrees, zero):
    gt_R = random_rotations(1, torch.Generator().manual_seed(0), torch.float64)
    R = gt_R @ rotation_about_y(torch.tensor([math.radians(degrees)], dtype=torch.float64))
    loss = rotation_loss(R, gt_R, torch.tensor([CODES[sym]]), torch.tensor([True]))
    assert (loss.item() < 1e-9) == zero


def test_rotation_loss_is_the_mean_absolute_matrix_difference_over_valid_entries():
    gt_R = torch.eye(3).expand(2, 3, 3)
    R = torch.stack([rotation_about_y(torch.tensor(0.3)), rotation_about_y(torch.tensor(2.0))])
    codes = torch.zeros(2, dtype=torch.int64)
    expected = (R[0] - torch.eye(3)).abs().mean()
    loss = rotation_loss(R, gt_R, codes, torch.tensor([True, False]))
    torch.testing.assert_close(loss, expected)


def test_triplet_loss_known_answer():
    anchor = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[0.0, 1.0]])  # distance sqrt(2)
    negative = torch.tensor([[-1.0, 0.0]])  # distance 2
    loss = triplet_loss(anchor, positive, negative, margin=1.0)
    assert loss.item() == pytest.approx(math.sqrt(2) - 2 + 1.0, abs=1e-5)
    assert triplet_loss(anchor, positive, negative, margin=0.5).item() == 0.0


def test_completion_loss_is_binary_cross_entropy():
    grids = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    grids[0, 0] = True
    logits = torch.zeros(1, 2, 2, 2)
    assert completion_loss(logits, grids).item() == pytest.approx(math.log(2))
    confident = torch.where(grids, 20.0, -20.0)
    assert completion_loss(confident, grids).item() < 1e-6


def test_every_loss_is_a_finite_connected_zero_without_entries():
    empty = torch.zeros(0, 3, requires_grad=True)
    empty_R = torch.zeros(0, 3, 3, requires_grad=True)
    empty_noc = torch.zeros(0, 3, 4, 4, requires_grad=True)
    empty_grid = torch.zeros(0, 4, 4, 4, requires_grad=True)
    losses = [
        depth_loss(torch.ones(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 2, 2)),
        noc_loss(empty_noc, empty_noc.detach(), torch.zeros(0, 1, 4, 4, dtype=torch.bool)),
        scale_loss(empty.exp(), torch.ones(0, 3)),
        translation_loss(empty, torch.zeros(0, 3)),
        rotation_loss(
            empty_R,
            torch.zeros(0, 3, 3),
            torch.zeros(0, dtype=torch.int64),
            torch.zeros(0, dtype=torch.bool),
        ),
        triplet_loss(empty, empty.detach(), empty.detach(), margin=0.5),
        completion_loss(empty_grid, torch.zeros(0, 4, 4, 4, dtype=torch.bool)),
    ]
    for loss in losses:
        assert loss.shape == () and loss.item() == 0.0
        assert loss.requires_grad
        loss.backward()
