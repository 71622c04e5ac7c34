"""Importing ROCA's Scan2CAD layout: a dataset written in ROCA's files and JSON conventions (from
one of ours) reads back through our loader with the same masks, poses and CADs, and NOCs
derived from the rendered depth that match the renderer's."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cad_perception.cad.categories import SHAPENET_SYNSETS
from cad_perception.cli import main
from cad_perception.synth import encoding
from cad_perception.synth.dataset import RocaDataset
from cad_perception.synth.errors import DatasetError
from cad_perception.synth.roca_import import import_roca
from tests.model.mini_dataset import build_mini_dataset

ROCA_CATEGORIES = ["bathtub", "bed", "bin", "bookcase", "cabinet", "chair", "display", "sofa",
                   "table"]  # fmt: skip
ROCA_SYMMETRIES = {"none": "__SYM_NONE", "rot2": "__SYM_ROTATE_UP_2",
                   "rot4": "__SYM_ROTATE_UP_4", "inf": "__SYM_ROTATE_UP_INF"}  # fmt: skip
SYNSETS = {category: synset for synset, category in SHAPENET_SYNSETS.items()}


def write_roca_layout(ours: Path, root: Path) -> Path:
    """Our dataset `ours` rewritten as ROCA's files under root; returns the instances JSON."""
    index = json.loads((ours / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in index["categories"]}
    roca_ids = {name: i for i, name in enumerate(ROCA_CATEGORIES)}
    images, annotations = [], []
    for number, image in enumerate(index["images"]):
        scene, frame = f"scene{number:04d}_00", f"{number * 100:06d}"
        file_name = f"tasks/scannet_frames_25k/{scene}/color/{frame}.jpg"
        color = root / "Images" / file_name
        color.parent.mkdir(parents=True)
        rgb = encoding.read_rgb(ours / image["file_name"])
        cv2.imwrite(str(color), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        instance = encoding.read_instance(ours / image["instance_file"])
        depth = encoding.read_depth(ours / image["depth_file"]) * (instance > 0)
        renders = root / "Rendering" / scene
        (renders / "depth").mkdir(parents=True)
        (renders / "instance").mkdir(parents=True)
        encoding.write_depth(renders / "depth" / f"{frame}.png", depth)
        cv2.imwrite(str(renders / "instance" / f"{frame}.png"), instance.astype(np.uint8))
        record = {"id": 50 + number, "height": image["height"], "width": image["width"],
                  "scene_id": scene, "file_name": file_name, "duplicate": False}  # fmt: skip
        images += [record, {**record, "id": 90 + number, "duplicate": True}]
        for a in (a for a in index["annotations"] if a["image_id"] == image["id"]):
            name = names[a["category_id"]]
            roca = {
                "id": len(annotations), "image_id": 50 + number, "bbox": a["bbox"],
                "area": a["area"], "iscrowd": 0, "is_cad": True, "alignment_id": a["instance"],
                "category_id": roca_ids["bookcase" if name == "bookshelf" else name],
                "intrinsics": image["intrinsics"], "t": a["t"], "q": a["q"], "s": a["s"],
                "sym": ROCA_SYMMETRIES[a["sym"]],
                "model": {"catid_cad": SYNSETS[name], "id_cad": f"cad{a['id']}", "idx": 1},
            }  # fmt: skip
            if len(annotations) % 2:
                roca["segmentation"] = a["segmentation"]  # ROCA drops it on train frames
            annotations.append(roca)
            if len(annotations) == 1:  # after the first: kinds the import leaves out
                annotations.append({**roca, "id": len(annotations), "category_id": 9})
                annotations.append({k: v for k, v in roca.items() if k not in ("q", "model")}
                                   | {"id": len(annotations) + 1, "is_cad": False})  # fmt: skip
    categories = [{"id": i, "name": n} for i, n in enumerate([*ROCA_CATEGORIES, "lamp"])]
    instances = root / "Dataset" / "scan2cad_instances_train.json"
    instances.parent.mkdir(parents=True)
    instances.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return instances


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("roca")
    ours, _ = build_mini_dataset(root / "ours", scenes=3, seed=8)
    instances = write_roca_layout(ours, root / "roca")
    return ours, root / "roca", instances


def test_imported_frames_read_back_like_the_originals(layouts, tmp_path) -> None:
    ours, roca, instances = layouts
    report = import_roca(instances, roca / "Images", roca / "Rendering", tmp_path / "imported",
                         progress=False)  # fmt: skip
    originals, imported = RocaDataset(ours), RocaDataset(tmp_path / "imported")
    assert report.images == len(originals) == len(imported) == 3
    assert report.annotations == len(originals.annotations.annotations)
    assert report.skipped == {"category outside the nine": 1, "not a CAD alignment": 1}
    for original, item in zip(originals, imported, strict=True):
        assert np.array_equal(original["masks"].numpy(), item["masks"].numpy())
        np.testing.assert_allclose(item["boxes"], original["boxes"], atol=1e-4)
        for key in ("R", "t", "s", "K"):
            np.testing.assert_allclose(item[key], original[key], atol=1e-5)
        assert item["labels"].tolist() == original["labels"].tolist()
        assert item["sym"] == original["sym"]
        assert all(cad.count("/") == 1 and cad.split("/")[0] in SHAPENET_SYNSETS
                   for cad in item["cad_ids"])  # fmt: skip
        # NOCs come from the depth of the objects: they match the rendered NOC map
        on = item["noc_mask"].numpy()
        assert on.sum() > 100 and not (on & ~original["noc_mask"].numpy()).any()
        error = np.abs(item["noc"].numpy() - original["noc"].numpy()).max(axis=0)[on]
        assert np.median(error) < 1e-3 and np.percentile(error, 99) < 5e-3
        assert (item["image"] - original["image"]).abs().mean() < 0.05  # JPEG


def test_a_missing_rendering_names_the_file(layouts, tmp_path) -> None:
    _, roca, instances = layouts
    broken = tmp_path / "Rendering"
    shutil.copytree(roca / "Rendering", broken)
    (broken / "scene0001_00" / "depth" / "000100.png").unlink()
    with pytest.raises(DatasetError, match=r"depth_file '.*scene0001_00/depth/000100.png' does"):
        import_roca(instances, roca / "Images", broken, tmp_path / "out", progress=False)
    (tmp_path / "not.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="missing list 'annotations'"):
        import_roca(tmp_path / "not.json", roca, roca, tmp_path / "out", progress=False)


def test_cli_imports_and_limits(layouts, tmp_path, capsys) -> None:
    _, roca, instances = layouts
    argv = [
        "import-roca",
        str(instances),
        "--images",
        str(roca / "Images"),
        "--renderings",
        str(roca / "Rendering"),
        "--out",
        str(tmp_path / "out"),
        "--limit",
        "2",
        "--quiet",
    ]
    assert main(argv) == 0  # fmt: skip
    assert "imported 2 images" in capsys.readouterr().out
    assert len(RocaDataset(tmp_path / "out")) == 2
