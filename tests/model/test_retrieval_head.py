"""Retrieval head: splatting known answers, grid convention, shapes, gradients."""

import numpy as np
import pytest
import torch
import trimesh

from cad_perception.cad.voxel import GRID_SIZE, voxelize
from cad_perception.model.config import RetrievalConfig
from cad_perception.model.losses import completion_loss, triplet_loss
from cad_perception.model.retrieval_head import RetrievalHead, splat_points

CENTRES = (torch.arange(GRID_SIZE, dtype=torch.float64) + 0.5) / GRID_SIZE - 0.5
"""Voxel centre coordinate along any axis (cad.voxel's convention)."""


def hat_reference(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Dense trilinear splatting (N, G, G, G): sum_p w_p hat(x_p - i) hat(y_p - j) hat(z_p - k)."""
    position = ((points + 0.5) * GRID_SIZE - 0.5).clamp(0, GRID_SIZE - 1)  # (N, P, 3)
    index = torch.arange(GRID_SIZE, dtype=points.dtype)
    hats = (1 - (position[..., None] - index).abs()).clamp_min(0)  # (N, P, 3, G)
    return torch.einsum(
        "np,npi,npj,npk->nijk", weights, hats[..., 0, :], hats[..., 1, :], hats[..., 2, :]
    )


def test_a_point_on_a_voxel_centre_puts_its_whole_weight_there():
    point = torch.stack([CENTRES[3], CENTRES[5], CENTRES[30]])[None, None]
    grid = splat_points(point, torch.tensor([[0.7]], dtype=torch.float64))
    expected = torch.zeros(1, GRID_SIZE, GRID_SIZE, GRID_SIZE, dtype=torch.float64)
    expected[0, 3, 5, 30] = 0.7  # indexed [x, y, z]
    torch.testing.assert_close(grid, expected)


def test_the_last_voxel_centre_and_points_beyond_it_land_in_the_border_voxel():
    points = torch.tensor(
        [[[0.5 - 0.5 / GRID_SIZE, 0.0, 0.0], [0.9, 0.0, 0.0]]], dtype=torch.float64
    )
    points[..., 1:] = CENTRES[10]
    grid = splat_points(points, torch.ones(1, 2, dtype=torch.float64))
    assert grid[0, GRID_SIZE - 1, 10, 10] == 2.0 and grid.sum() == 2.0


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_point_halfway_between_two_centres_splits_its_weight(axis):
    point = torch.full((1, 1, 3), CENTRES[12].item(), dtype=torch.float64)
    point[0, 0, axis] = (CENTRES[20] + CENTRES[21]) / 2
    grid = splat_points(point, torch.ones(1, 1, dtype=torch.float64))
    low, high = [12, 12, 12], [12, 12, 12]
    low[axis], high[axis] = 20, 21
    assert grid[(0, *low)].item() == pytest.approx(0.5)
    assert grid[(0, *high)].item() == pytest.approx(0.5)
    assert grid.sum().item() == pytest.approx(1.0)


def test_splatting_matches_the_dense_trilinear_reference_and_keeps_the_mass():
    g = torch.Generator().manual_seed(0)
    points = 1.2 * (torch.rand(2, 200, 3, generator=g, dtype=torch.float64) - 0.5)  # some outside
    weights = torch.rand(2, 200, generator=g, dtype=torch.float64)
    grid = splat_points(points, weights)
    torch.testing.assert_close(grid, hat_reference(points, weights))
    torch.testing.assert_close(grid.sum(dim=(1, 2, 3)), weights.sum(dim=1))


def test_occupied_voxel_centres_splat_back_to_cad_voxel_grids():
    box = trimesh.creation.box(extents=(0.6, 0.3, 0.2))
    box.apply_translation((0.1, -0.05, 0.2))
    occupancy = voxelize(box)
    index = torch.from_numpy(np.argwhere(occupancy))
    centres = CENTRES[index][None]  # (1, P, 3)
    grid = splat_points(centres, torch.ones(centres.shape[:2], dtype=torch.float64))
    assert torch.equal(grid[0] > 0.5, torch.from_numpy(occupancy))


def test_splatting_gradcheck():
    g = torch.Generator().manual_seed(1)
    points = (torch.rand(1, 5, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    weights = torch.rand(1, 5, generator=g, dtype=torch.float64).requires_grad_()
    probe = torch.rand(1, GRID_SIZE, GRID_SIZE, GRID_SIZE, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda p, w: (splat_points(p, w) * probe).sum(), (points, weights), eps=1e-7, atol=1e-5
    )


def test_splat_rejects_bad_shapes():
    with pytest.raises(ValueError, match="points must be"):
        splat_points(torch.zeros(4, 3), torch.zeros(4))


def make_head() -> RetrievalHead:
    torch.manual_seed(0)
    config = RetrievalConfig(embedding_dim=32, voxel_channels=(4, 8, 8, 16), code_hidden_dim=24)
    return RetrievalHead(config=config, shape_code_dim=16)


def detection_inputs(count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    noc = torch.rand(count, 3, 32, 32, generator=g) - 0.5
    mask = (torch.rand(count, 1, 32, 32, generator=g) > 0.3).float()
    return noc, mask, torch.randn(count, 16, generator=g)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("count", [3, 0])
def test_output_shapes_and_unit_embeddings(count, training):
    head = make_head().train(training)
    prediction = head(*detection_inputs(count))
    assert prediction.embedding.shape == (count, 32) and prediction.features.shape == (count, 32)
    cads = head.embed_cads(torch.rand(count + 2, 32, 32, 32) > 0.7)
    assert cads.shape == (count + 2, 32)
    torch.testing.assert_close(cads.norm(dim=1), torch.ones(count + 2))
    torch.testing.assert_close(prediction.embedding.norm(dim=1), torch.ones(count))
    assert head.complete(prediction.features).shape == (count, 32, 32, 32)


def test_empty_masks_embed_by_the_shape_code_alone():
    head = make_head()
    noc, _, code = detection_inputs(2)
    empty = head(noc, torch.zeros(2, 1, 32, 32), code)
    moved = head(noc.flip(0), torch.zeros(2, 1, 32, 32), code)
    torch.testing.assert_close(empty.embedding, moved.embedding)
    assert torch.isfinite(empty.embedding).all()


def test_retrieval_losses_reach_every_parameter():
    head = make_head()
    noc, mask, code = detection_inputs(3)
    noc.requires_grad_()
    prediction = head(noc, mask, code)
    grids = torch.rand(6, 32, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.7
    positives, negatives = head.embed_cads(grids).split(3)
    loss = triplet_loss(prediction.embedding, positives, negatives, margin=2.0)
    loss = loss + completion_loss(head.complete(prediction.features), grids[:3])
    loss.backward()
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert torch.isfinite(noc.grad).all() and noc.grad.abs().sum() > 0
