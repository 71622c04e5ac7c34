"""Training targets: the per-image interface the network trains on, and their per-RoI resampling.

`Roca` in training mode takes one dict per image (B images of H x W pixels, G_b objects):

    boxes            (G_b, 4) float    (x0, y0, x1, y1) pixel-edge coordinates
    labels           (G_b,) int64      class ids 1..num_classes (the datasets' category ids)
    masks            (G_b, H, W) bool or uint8 instance masks
    R                (G_b, 3, 3)       rotation of the pose X_cam = R (s * X_noc) + t
    t                (G_b, 3)          translation in metres
    s                (G_b, 3)          per-axis scale in metres
    sym              list of G_b str (geometry.rotations.SYMMETRIES) or (G_b,) int64 codes
    cad_voxels       (G_b, 32, 32, 32) bool occupancy grid of the object's CAD model
    negative_voxels  (G_b, 32, 32, 32) bool grid of another CAD model of the same category
    depth            (H, W) z-depth in metres, 0 where unknown
    noc              (3, H, W) NOC of the object seen at each pixel (any finite value elsewhere)
    noc_mask         (H, W) bool, True where noc is valid

which is synth.dataset.RocaDataset's item (minus the voxel grids, which come from the CAD
database) with NaN-free NOCs. Per-RoI targets are sampled on the alignment head's RoI grid
(alignment_head.roi_resample, one bilinear sample per cell), exactly where the predictions are.
"""

from typing import Any, NamedTuple

import torch

from cad_perception.cad.voxel import GRID_SIZE
from cad_perception.geometry.rotations import SYMMETRIES
from cad_perception.model.alignment_head import roi_resample

FULL_COVERAGE = 1.0 - 1e-4
"""A RoI cell whose bilinear sample of a 0/1 map reaches this drew only on pixels with 1."""

_OBJECT_KEYS = {
    "boxes": (4,),
    "labels": (),
    "masks": None,  # (H, W), checked against the image size
    "R": (3, 3),
    "t": (3,),
    "s": (3,),
    "cad_voxels": (GRID_SIZE,) * 3,
    "negative_voxels": (GRID_SIZE,) * 3,
}


class RoiTargets(NamedTuple):
    """Ground truth of N RoIs, each matched to one GT object, on S x S RoI grids."""

    mask: torch.Tensor
    """(N, 1, S, S) float in [0, 1], the GT object's mask sampled on the grid."""
    noc: torch.Tensor
    """(N, 3, S, S) GT NOC, meaningful where noc_valid."""
    noc_valid: torch.Tensor
    """(N, 1, S, S) bool: the cell's sample drew only on valid NOC pixels of the GT object."""
    R: torch.Tensor
    """(N, 3, 3)."""
    t: torch.Tensor
    """(N, 3)."""
    s: torch.Tensor
    """(N, 3)."""
    symmetry: torch.Tensor
    """(N,) int64 index into SYMMETRIES."""
    cad_voxels: torch.Tensor
    """(N, 32, 32, 32) bool."""
    negative_voxels: torch.Tensor
    """(N, 32, 32, 32) bool."""


def symmetry_codes(sym: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Symmetry labels (list of str) or codes (int tensor) -> (G,) int64 codes into SYMMETRIES."""
    if isinstance(sym, torch.Tensor):
        codes = sym.to(device=device, dtype=torch.int64)
        if ((codes < 0) | (codes >= len(SYMMETRIES))).any():
            raise ValueError(f"symmetry codes must lie in 0..{len(SYMMETRIES) - 1}")
        return codes
    unknown = [name for name in sym if name not in SYMMETRIES]
    if unknown:
        raise ValueError(f"unknown symmetry {unknown[0]!r}: expected one of {SYMMETRIES}")
    return torch.tensor([SYMMETRIES.index(name) for name in sym], dtype=torch.int64, device=device)


def check_targets(targets: list[dict[str, Any]], batch: int, image_size: tuple[int, int]) -> None:
    """Raise ValueError unless `targets` follow the interface in the module docstring."""
    if not isinstance(targets, list | tuple) or len(targets) != batch:
        raise ValueError(f"targets must be a list of {batch} dicts, one per image")
    height, width = image_size
    image_shapes = {
        "depth": (height, width),
        "noc": (3, height, width),
        "noc_mask": (height, width),
    }
    for index, target in enumerate(targets):
        missing = [key for key in (*_OBJECT_KEYS, "sym", *image_shapes) if key not in target]
        if missing:
            raise ValueError(f"targets[{index}] lacks {', '.join(missing)}")
        count = len(target["boxes"])
        for key, tail in _OBJECT_KEYS.items():
            expected = (count, height, width) if tail is None else (count, *tail)
            if tuple(target[key].shape) != expected:
                raise ValueError(
                    f"targets[{index}][{key!r}] must have shape {expected}, "
                    f"got {tuple(target[key].shape)}"
                )
        if len(target["sym"]) != count:
            raise ValueError(f"targets[{index}]['sym'] must have {count} entries")
        for key, expected in image_shapes.items():
            if tuple(target[key].shape) != expected:
                raise ValueError(
                    f"targets[{index}][{key!r}] must have shape {expected}, "
                    f"got {tuple(target[key].shape)}"
                )
        if not torch.isfinite(target["noc"]).all():
            raise ValueError(f"targets[{index}]['noc'] must be finite (zero it off noc_mask)")
        if not (target["s"] > 0).all():
            raise ValueError(f"targets[{index}]['s'] must be > 0")


def roi_targets(
    targets: list[dict[str, Any]],
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    matched_gt: torch.Tensor,
    size: int,
) -> RoiTargets:
    """Targets of N RoIs: boxes (N, 4), batch_index (N,), matched_gt (N,) object index within
    its image; S = size."""
    counts = torch.tensor([len(t["boxes"]) for t in targets], device=boxes.device)
    first_object = torch.cumsum(counts, dim=0) - counts  # (B,)
    objects = first_object[batch_index] + matched_gt  # (N,) index into the concatenation

    def gather(key: str) -> torch.Tensor:
        return torch.cat([t[key] for t in targets])[objects]

    dtype = boxes.dtype
    masks = torch.cat([t["masks"] for t in targets]).to(dtype)[:, None]  # (G, 1, H, W)
    mask = roi_resample(masks, boxes, objects, size)
    noc_mask = torch.stack([t["noc_mask"] for t in targets]).to(dtype)[:, None]  # (B, 1, H, W)
    noc = torch.stack([t["noc"] for t in targets]).to(dtype) * noc_mask
    sampled = roi_resample(torch.cat((noc, noc_mask), dim=1), boxes, batch_index, size)
    noc_valid = (sampled[:, 3:] >= FULL_COVERAGE) & (mask >= FULL_COVERAGE)
    symmetry = torch.cat([symmetry_codes(t["sym"], boxes.device) for t in targets])[objects]
    return RoiTargets(
        mask=mask,
        noc=sampled[:, :3],
        noc_valid=noc_valid,
        R=gather("R").to(dtype),
        t=gather("t").to(dtype),
        s=gather("s").to(dtype),
        symmetry=symmetry,
        cad_voxels=gather("cad_voxels").bool(),
        negative_voxels=gather("negative_voxels").bool(),
    )
