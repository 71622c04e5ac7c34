"""Training batches: RocaDataset items + CAD occupancy grids -> the network's inputs.

`make_batch(items, cads, generator)` stacks B dataset items (synth.dataset.RocaDataset, all of
one image size) into a `TrainingBatch`: images (B, 3, H, W), K (B, 3, 3) and one target dict
per image as documented in model/targets.py. `CadGrids` holds the occupancy grids of the CAD
database and draws each object's negative CAD: another CAD of the same category, uniformly
with the given generator; when the category has a single CAD, a CAD of another category
(the triplet loss then still separates the object from a wrong shape; retrieval only ever
compares within the detected category, so this costs nothing there); when the database holds
a single CAD, that CAD itself (the triplet loss is then a constant without gradient).
"""

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.voxel import GRID_SIZE
from cad_perception.model.errors import TrainingDataError
from cad_perception.synth.annotations import Annotations

_ITEM_KEYS = ("image", "K", "boxes", "labels", "masks", "R", "t", "s", "sym", "cad_ids")
_IMAGE_KEYS = ("depth", "noc", "noc_mask")


class TrainingBatch(NamedTuple):
    """B images of H x W pixels and their targets (model/targets.py)."""

    images: torch.Tensor
    """(B, 3, H, W) float32 RGB in [0, 1]."""
    K: torch.Tensor
    """(B, 3, 3) float32."""
    targets: list[dict[str, Any]]
    """One dict per image with the keys of model/targets.py."""

    def to(self, device: torch.device | str) -> "TrainingBatch":
        """The batch with every tensor moved to `device`."""
        return TrainingBatch(
            images=self.images.to(device),
            K=self.K.to(device),
            targets=[
                {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
                for t in self.targets
            ],
        )


class CadGrids:
    """The (32, 32, 32) bool occupancy grids of CADs, by id, and their categories."""

    def __init__(self, grids: dict[str, np.ndarray], categories: dict[str, str]):
        if set(grids) != set(categories):
            raise ValueError("grids and categories must name the same CAD ids")
        self._grids = {
            cad_id: torch.from_numpy(np.asarray(g, dtype=bool)) for cad_id, g in grids.items()
        }
        self._categories = dict(categories)
        self._by_category: dict[str, list[str]] = {}
        for cad_id in sorted(categories):
            self._by_category.setdefault(categories[cad_id], []).append(cad_id)
        self._all = sorted(categories)

    @classmethod
    def from_database(cls, db: CadDatabase, categories: Iterable[str]) -> "CadGrids":
        """The grids of every CAD of `categories` in `db` (the candidates for negatives)."""
        grids, names = {}, {}
        for category in categories:
            for cad_id in db.ids(category):
                record = db.get(cad_id)
                grids[cad_id], names[cad_id] = record.voxels, record.category
        return cls(grids, names)

    def __len__(self) -> int:
        return len(self._grids)

    def check_covers(self, annotations: Annotations) -> None:
        """TrainingDataError unless every CAD the annotations name is here."""
        missing = sorted({a.cad_id for a in annotations.annotations} - set(self._grids))
        if missing:
            raise TrainingDataError(
                f"{annotations.path}: {len(missing)} CAD id(s) are not in the CAD database, "
                f"e.g. {', '.join(missing[:3])}"
            )

    def grids(self, cad_ids: Sequence[str]) -> torch.Tensor:
        """(N, 32, 32, 32) bool grids of `cad_ids`."""
        try:
            stacked = [self._grids[cad_id] for cad_id in cad_ids]
        except KeyError as err:
            raise TrainingDataError(f"CAD {err.args[0]!r} is not in the CAD database") from err
        if not stacked:
            return torch.zeros((0,) + (GRID_SIZE,) * 3, dtype=torch.bool)
        return torch.stack(stacked)

    def negatives(self, cad_ids: Sequence[str], generator: torch.Generator) -> list[str]:
        """For each CAD id, another CAD id drawn with `generator` (see the module docstring)."""
        result = []
        for cad_id in cad_ids:
            same = [
                c for c in self._by_category.get(self._categories.get(cad_id), []) if c != cad_id
            ]
            pool = same or [c for c in self._all if c != cad_id] or [cad_id]
            pick = int(torch.randint(len(pool), (1,), generator=generator).item())
            result.append(pool[pick])
        return result


def check_category_ids(annotations: Annotations, categories: Sequence[str]) -> None:
    """TrainingDataError unless the dataset's category ids mean the network's classes: id c
    must name categories[c - 1] (model/config.py) for every category the dataset declares."""
    for category_id, name in sorted(annotations.categories.items()):
        if not 1 <= category_id <= len(categories) or categories[category_id - 1] != name:
            expected = categories[category_id - 1] if 1 <= category_id <= len(categories) else None
            raise TrainingDataError(
                f"{annotations.path}: category id {category_id} is {name!r} in the dataset but "
                f"{expected!r} in the network (classes 1..{len(categories)} = {list(categories)})"
            )


def make_batch(
    items: Sequence[dict[str, Any]], cads: CadGrids, generator: torch.Generator
) -> TrainingBatch:
    """Stack RocaDataset items (loaded with every modality) into a TrainingBatch, adding each
    object's CAD grid and a negative CAD's grid drawn with `generator`."""
    if not items:
        raise ValueError("make_batch needs at least one item")
    for item in items:
        missing = [key for key in (*_ITEM_KEYS, *_IMAGE_KEYS) if key not in item]
        if missing:
            raise ValueError(f"dataset item {item.get('image_id')} lacks {', '.join(missing)}")
    sizes = {tuple(item["image"].shape[-2:]) for item in items}
    if len(sizes) != 1:
        raise ValueError(f"a batch needs images of one size, got {sorted(sizes)}")
    targets = []
    for item in items:
        negatives = cads.negatives(item["cad_ids"], generator)
        targets.append(
            {
                "boxes": item["boxes"].float(),
                "labels": item["labels"].long(),
                "masks": item["masks"].bool(),
                "R": item["R"].float(),
                "t": item["t"].float(),
                "s": item["s"].float(),
                "sym": list(item["sym"]),
                "cad_ids": list(item["cad_ids"]),
                "cad_voxels": cads.grids(item["cad_ids"]),
                "negative_voxels": cads.grids(negatives),
                "depth": item["depth"].float(),
                "noc": torch.nan_to_num(item["noc"].float()) * item["noc_mask"],
                "noc_mask": item["noc_mask"].bool(),
            }
        )
    return TrainingBatch(
        images=torch.stack([item["image"].float() for item in items]),
        K=torch.stack([item["K"].float() for item in items]),
        targets=targets,
    )
