"""Import ROCA's own Scan2CAD dataset (its `scan2cad_instances_<split>.json` and renderings) as a
dataset in our layout, so training and evaluation read it with the same loader as `synth`'s.

ROCA's files (github.com/cangumeli/ROCA, renderer/rendering_to_coco.py):

    <image root>/tasks/scannet_frames_25k/<scene>/color/<frame>.jpg     the ScanNet frames
    <rendering root>/<scene>/depth/<frame>.png      uint16 mm of the rendered CADs (0 elsewhere)
    <rendering root>/<scene>/instance/<frame>.png   8-bit instance map (value = alignment_id)
    scan2cad_instances_<split>.json                 COCO style: images without intrinsics or
        file keys, annotations with 0-based category ids, per-annotation 3x3 intrinsics,
        alignment_id, t, q (w, x, y, z), s, sym ("__SYM_*"), model {catid_cad, id_cad}, and
        repeated images ("duplicate": true) for class balancing.

The import writes `OUT/annotations.json` whose file paths point at ROCA's files (relative to
OUT), with our category ids and names ("bookcase" is our "bookshelf"), CAD ids "<synset>/<id>"
as `cad-perception db add --shapenet` stores them, no duplicates, and no NOC files: the reader
derives NOCs from the rendered depth and the poses (synth/depth_nocs.py). Images without any
CAD annotation are skipped, since their intrinsics live on the annotations.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cad_perception.cad.categories import CATEGORIES
from cad_perception.synth.annotations import ANNOTATIONS_FILE, CATEGORY_IDS, coco_categories
from cad_perception.synth.errors import DatasetError

logger = logging.getLogger(__name__)

ROCA_NAMES = {"bookcase": "bookshelf"}
"""ROCA's category names that differ from ours."""


@dataclass
class ImportReport:
    """What `import_roca` wrote and left out."""

    path: Path
    images: int = 0
    annotations: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> count of images or annotations left out."""

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def import_roca(
    instances_json: str | Path,
    image_root: str | Path,
    rendering_root: str | Path,
    out_dir: str | Path,
    *,
    limit: int | None = None,
    progress: bool = True,
) -> ImportReport:
    """Write OUT/annotations.json for ROCA's dataset (module docstring); the first `limit`
    images only when given. DatasetError naming the file and record on malformed input or a
    missing frame file."""
    source = Path(instances_json)
    data = _load(source)
    categories = _category_names(data["categories"], source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ImportReport(out_dir / ANNOTATIONS_FILE)
    by_image: dict[Any, list[dict]] = {}
    for annotation in data["annotations"]:
        if isinstance(annotation, dict):
            by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    images, annotations = [], []
    selected = [i for i in data["images"] if isinstance(i, dict) and not i.get("duplicate")]
    for record in tqdm(
        selected[:limit], desc="importing ROCA frames", unit="image", disable=not progress
    ):
        where = f"{source}: image id {record.get('id')}"
        cads = []
        for annotation in by_image.get(record.get("id"), []):
            name = categories.get(annotation.get("category_id"))
            if name is None:
                report.skip("category outside the nine")
            elif "q" not in annotation or not annotation.get("model"):
                report.skip("not a CAD alignment")
            else:
                cads.append((annotation, name))
        if not cads:
            report.skip("image without CAD annotations")
            continue
        image_id = len(images)
        files = _frame_files(record, Path(image_root), Path(rendering_root), out_dir, where)
        images.append(
            {
                "id": image_id,
                "file_name": files["file_name"],
                "height": record.get("height"),
                "width": record.get("width"),
                "scene_id": str(record.get("scene_id")),
                "intrinsics": cads[0][0].get("intrinsics"),
                "depth_file": files["depth_file"],
                "instance_file": files["instance_file"],
            }
        )
        for annotation, name in cads:
            annotations.append(_annotation(annotation, name, image_id, len(annotations), where))
    report.images, report.annotations = len(images), len(annotations)
    index = {"images": images, "annotations": annotations, "categories": coco_categories()}
    partial = report.path.with_name(ANNOTATIONS_FILE + ".partial")
    partial.write_text(json.dumps(index), encoding="utf-8")
    os.replace(partial, report.path)
    logger.info("imported %d images, %d objects: %s", report.images, report.annotations, out_dir)
    return report


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: cannot read JSON: {err}") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must hold a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing list {key!r}; is it scan2cad_instances_*.json?")
    return data


def _category_names(records: list, path: Path) -> dict[int, str]:
    """ROCA category id -> our category name, for the ids of the nine categories."""
    names = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict) or "id" not in record or "name" not in record:
            raise DatasetError(f"{path}: category {index} must have 'id' and 'name'")
        name = ROCA_NAMES.get(record["name"], record["name"])
        if name in CATEGORIES:
            names[record["id"]] = name
    if not names:
        raise DatasetError(f"{path}: none of the categories is one of {', '.join(CATEGORIES)}")
    return names


def _frame_files(
    record: dict, image_root: Path, rendering_root: Path, out_dir: Path, where: str
) -> dict[str, str]:
    """The frame's colour, depth and instance files, relative to out_dir; DatasetError when
    one is missing."""
    file_name = record.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise DatasetError(f"{where}: field 'file_name' must be a non-empty string")
    scene, frame = str(record.get("scene_id")), Path(file_name).stem
    paths = {
        "file_name": image_root / file_name,
        "depth_file": rendering_root / scene / "depth" / f"{frame}.png",
        "instance_file": rendering_root / scene / "instance" / f"{frame}.png",
    }
    for key, path in paths.items():
        if not path.is_file():
            raise DatasetError(f"{where}: {key} '{path}' does not exist; check the roots")
    return {key: os.path.relpath(path.resolve(), out_dir.resolve()) for key, path in paths.items()}


def _annotation(raw: dict, category: str, image_id: int, new_id: int, where: str) -> dict:
    """Our annotation record for one of ROCA's."""
    model = raw["model"]
    if not isinstance(model, dict) or "catid_cad" not in model or "id_cad" not in model:
        raise DatasetError(
            f"{where}: annotation id {raw.get('id')}: 'model' lacks catid_cad/id_cad"
        )
    record = {
        "id": new_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS[category],
        "bbox": raw.get("bbox"),
        "area": raw.get("area", 0),
        "iscrowd": raw.get("iscrowd", 0),
        "instance": raw.get("alignment_id"),
        "t": raw.get("t"),
        "q": raw.get("q"),
        "s": raw.get("s"),
        "sym": raw.get("sym", "__SYM_NONE"),
        "model": {"cad_id": f"{model['catid_cad']}/{model['id_cad']}", "category": category},
    }
    if "segmentation" in raw:
        record["segmentation"] = raw["segmentation"]
    return record
