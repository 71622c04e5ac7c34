"""Training batches from a generated dataset: shapes, dtypes, consistency with the dataset and
the CAD database, negatives, category-id checks."""

import dataclasses

import pytest
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.model.collate import CadGrids, check_category_ids, make_batch
from cad_perception.model.errors import TrainingDataError
from cad_perception.model.targets import check_targets
from cad_perception.synth.dataset import RocaDataset
from tests.model.mini_dataset import IMAGE_SIZE, build_mini_dataset


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    data_dir, db_path = build_mini_dataset(tmp_path_factory.mktemp("mini"))
    dataset = RocaDataset(data_dir)
    with CadDatabase.open(db_path, readonly=True) as db:
        cads = CadGrids.from_database(db, sorted(set(dataset.annotations.categories.values())))
        voxels = {cad_id: db.get(cad_id).voxels for cad_id in db.ids()}
    return dataset, cads, voxels


def test_batch_shapes_dtypes_and_target_interface(mini) -> None:
    dataset, cads, _ = mini
    items = [dataset[0], dataset[1]]
    batch = make_batch(items, cads, torch.Generator().manual_seed(0))
    height, width = IMAGE_SIZE
    assert batch.images.shape == (2, 3, height, width) and batch.images.dtype == torch.float32
    assert batch.K.shape == (2, 3, 3)
    check_targets(batch.targets, 2, IMAGE_SIZE)
    for item, target in zip(items, batch.targets, strict=True):
        count = len(item["boxes"])
        assert count > 0
        assert target["cad_voxels"].dtype == torch.bool
        assert target["cad_voxels"].shape == (count, 32, 32, 32)
        assert target["labels"].dtype == torch.int64
        assert target["masks"].dtype == torch.bool
        assert torch.isfinite(target["noc"]).all()
        assert torch.equal(target["labels"], item["labels"])


def test_masks_boxes_equal_boxes(mini) -> None:
    dataset, cads, _ = mini
    batch = make_batch(list(dataset), cads, torch.Generator().manual_seed(0))
    for target in batch.targets:
        for mask, box in zip(target["masks"], target["boxes"], strict=True):
            rows, columns = torch.nonzero(mask, as_tuple=True)
            from_mask = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
            assert box.tolist() == [float(v) for v in from_mask]


def test_voxels_come_from_the_annotated_cad_and_negatives_differ(mini) -> None:
    dataset, cads, voxels = mini
    batch = make_batch(list(dataset), cads, torch.Generator().manual_seed(1))
    for item, target in zip(dataset, batch.targets, strict=True):
        for cad_id, grid, negative in zip(
            item["cad_ids"], target["cad_voxels"], target["negative_voxels"], strict=True
        ):
            assert torch.equal(grid, torch.from_numpy(voxels[cad_id]))
            # one CAD per category: the negative is a CAD of another category
            assert not torch.equal(negative, grid)


def test_negatives_same_category_when_possible_and_seeded() -> None:
    grid = lambda v: torch.full((32, 32, 32), v).numpy()  # noqa: E731
    cads = CadGrids(
        {"a1": grid(False), "a2": grid(True), "a3": grid(True), "b1": grid(False)},
        {"a1": "chair", "a2": "chair", "a3": "chair", "b1": "table"},
    )
    first = cads.negatives(["a1"] * 50, torch.Generator().manual_seed(3))
    assert set(first) == {"a2", "a3"}
    assert first == cads.negatives(["a1"] * 50, torch.Generator().manual_seed(3))
    assert set(cads.negatives(["b1"] * 20, torch.Generator().manual_seed(0))) <= {"a1", "a2", "a3"}
    lonely = CadGrids({"x": grid(True)}, {"x": "bed"})
    assert lonely.negatives(["x"], torch.Generator()) == ["x"]


def test_unknown_cad_and_mismatched_categories_fail_loudly(mini) -> None:
    dataset, _, _ = mini
    empty = CadGrids({}, {})
    with pytest.raises(TrainingDataError, match="not in the CAD database"):
        empty.check_covers(dataset.annotations)
    categories = tuple(
        dataset.annotations.categories[i] for i in sorted(dataset.annotations.categories)
    )
    check_category_ids(dataset.annotations, categories)
    swapped = (categories[1], categories[0], *categories[2:])
    with pytest.raises(TrainingDataError, match="category id 1"):
        check_category_ids(dataset.annotations, swapped)
    renamed = dataclasses.replace(dataset.annotations, categories={1: "bathtub", 12: "lamp"})
    with pytest.raises(TrainingDataError, match="category id 12"):
        check_category_ids(renamed, categories)


def test_rejects_mixed_sizes_and_missing_keys(mini) -> None:
    dataset, cads, _ = mini
    item = dataset[0]
    small = {**item, "image": item["image"][:, :50]}
    with pytest.raises(ValueError, match="one size"):
        make_batch([item, small], cads, torch.Generator())
    with pytest.raises(ValueError, match="lacks noc"):
        make_batch([{k: v for k, v in item.items() if k != "noc"}], cads, torch.Generator())
