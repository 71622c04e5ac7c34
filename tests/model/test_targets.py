"""Training targets: symmetry codes, validation, per-RoI resampling known answers."""

import pytest
import torch

from cad_perception.model.targets import check_targets, roi_targets, symmetry_codes

H, W = 48, 64
SIZE = 8


def image_targets(count: int, seed: int) -> dict:
    """Targets of one H x W image with `count` objects; object i has the 8 x 8 mask at
    rows 8i..8i+7, columns 8..15 and NOC (i, row, column) / 100 there."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(count, H, W, dtype=torch.bool)
    noc = torch.zeros(3, H, W)
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    for i in range(count):
        masks[i, 8 * i : 8 * i + 8, 8:16] = True
        noc[:, masks[i]] = torch.stack([torch.full_like(v, i), v, u])[:, masks[i]].float() / 100
    return {
        "boxes": torch.tensor([[8.0, 8.0 * i, 16.0, 8.0 * i + 8] for i in range(count)]).reshape(
            -1, 4
        ),
        "labels": torch.arange(1, count + 1),
        "masks": masks,
        "R": torch.eye(3).repeat(count, 1, 1),
        "t": torch.randn(count, 3, generator=g),
        "s": torch.rand(count, 3, generator=g) + 0.5,
        "sym": ["none", "rot2", "rot4", "inf"][:count],
        "cad_voxels": torch.rand(count, 32, 32, 32, generator=g) > 0.5,
        "negative_voxels": torch.rand(count, 32, 32, 32, generator=g) > 0.5,
        "depth": torch.rand(H, W, generator=g),
        "noc": noc,
        "noc_mask": masks.any(dim=0),
    }


def test_symmetry_codes_from_names_and_tensors():
    assert symmetry_codes(["rot4", "none", "inf"]).tolist() == [2, 0, 3]
    assert symmetry_codes(torch.tensor([1, 3], dtype=torch.int32)).dtype == torch.int64
    assert symmetry_codes([]).shape == (0,)
    with pytest.raises(ValueError, match="unknown symmetry"):
        symmetry_codes(["rot3"])
    with pytest.raises(ValueError, match="codes"):
        symmetry_codes(torch.tensor([4]))


def test_roi_targets_gather_the_matched_objects_across_images():
    targets = [image_targets(2, seed=0), image_targets(3, seed=1)]
    boxes = torch.tensor([[8.0, 16.0, 16.0, 24.0], [8.0, 0.0, 16.0, 8.0], [8.0, 8.0, 16.0, 16.0]])
    batch_index = torch.tensor([1, 0, 1])
    matched = torch.tensor([2, 0, 1])
    gt = roi_targets(targets, boxes, batch_index, matched, SIZE)
    torch.testing.assert_close(
        gt.t, torch.stack([targets[1]["t"][2], targets[0]["t"][0], targets[1]["t"][1]])
    )
    assert gt.symmetry.tolist() == [2, 0, 1]  # rot4, none, rot2
    assert torch.equal(gt.cad_voxels[0], targets[1]["cad_voxels"][2])
    assert torch.equal(gt.negative_voxels[1], targets[0]["negative_voxels"][0])
    # Each box covers its object's 8 x 8 mask exactly, one pixel per cell.
    torch.testing.assert_close(gt.mask, torch.ones(3, 1, SIZE, SIZE))
    assert gt.noc_valid.all()
    expected = targets[1]["noc"][:, 16:24, 8:16]
    torch.testing.assert_close(gt.noc[0], expected)
    assert gt.noc[0, 0].eq(0.02).all()  # object index 2 / 100


def test_noc_targets_are_invalid_off_the_matched_object_and_off_noc_mask():
    target = image_targets(2, seed=2)
    target["noc_mask"][10, 12] = False  # a hole in object 1's NOCs
    box = torch.tensor([[8.0, 4.0, 16.0, 12.0]])  # rows 4..11: object 0 then object 1
    gt = roi_targets([target], box, torch.tensor([0]), torch.tensor([1]), SIZE)
    valid = gt.noc_valid[0, 0]
    assert not valid[:4].any()  # rows 4..7 belong to object 0
    assert valid[4:].sum() == 4 * 8 - 1 and not valid[6, 4]  # row 10, column 12
    torch.testing.assert_close(gt.mask[0, 0, :4], torch.zeros(4, SIZE))


def test_roi_targets_with_no_rois():
    gt = roi_targets(
        [image_targets(1, 3)],
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0, dtype=torch.int64),
        SIZE,
    )
    assert gt.noc.shape == (0, 3, SIZE, SIZE) and gt.cad_voxels.shape == (0, 32, 32, 32)


def test_check_targets_accepts_the_interface_and_names_what_is_wrong():
    check_targets([image_targets(2, 4), image_targets(0, 5)], 2, (H, W))
    with pytest.raises(ValueError, match="list of 2"):
        check_targets([image_targets(2, 4)], 2, (H, W))
    broken = image_targets(2, 4)
    del broken["noc_mask"]
    with pytest.raises(ValueError, match="lacks noc_mask"):
        check_targets([broken], 1, (H, W))
    broken = image_targets(2, 4)
    broken["s"] = broken["s"][:1]
    with pytest.raises(ValueError, match=r"\['s'\] must have shape \(2, 3\)"):
        check_targets([broken], 1, (H, W))
    broken = image_targets(2, 4)
    broken["noc"][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        check_targets([broken], 1, (H, W))
    broken = image_targets(2, 4)
    broken["s"][1, 2] = 0.0
    with pytest.raises(ValueError, match=r"\['s'\] must be > 0"):
        check_targets([broken], 1, (H, W))
    with pytest.raises(ValueError, match="masks"):
        check_targets([image_targets(2, 4)], 1, (H, W + 1))
