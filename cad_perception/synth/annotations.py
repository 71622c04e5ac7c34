"""The annotation file of a dataset in the ROCA / Scan2CAD layout: categories and validation.

`annotations.json` is COCO-style, as ROCA's `scan2cad_instances_*.json`:

    {"images": [{"id": int, "file_name": str, "height": int, "width": int, "scene_id": str,
                 "intrinsics": 3x3 (or 4x4) list, "depth_file": str, "noc_file": str,
                 "instance_file": str}, ...],
     "annotations": [{"id": int, "image_id": int, "category_id": int, "bbox": [x, y, w, h],
                      "segmentation": {"size": [H, W], "counts": str | list[int]},
                      "area": number, "iscrowd": 0, "instance": int, "t": [3], "q": [w, x, y, z],
                      "s": [3], "sym": "none" | "rot2" | "rot4" | "inf",
                      "model": {"cad_id": str, "category": str}}, ...],
     "categories": [{"id": int, "name": str}, ...]}

with file paths relative to the JSON's folder and the pose X_cam = R(q) (s * X_noc) + t (camera
optical frame, metres). Extra keys are ignored. Accepted ROCA variants: "alignment_id" for
"instance", "id_cad" for "model.cad_id", ROCA's "__SYM_*" symmetry names, a 4x4 intrinsics
matrix (its top-left 3x3 block is K), missing file keys and segmentation (the reader then needs
the instance map). Every problem raises DatasetError naming the file, the record and the field.
"""

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cad_perception.cad.categories import CATEGORIES
from cad_perception.geometry.rotations import SYMMETRIES
from cad_perception.synth.errors import DatasetError

ANNOTATIONS_FILE = "annotations.json"

CATEGORY_IDS: dict[str, int] = {name: index + 1 for index, name in enumerate(CATEGORIES)}
"""Category name -> COCO category id, 1..9 in sorted name order."""

IMAGE_FILE_KEYS = ("file_name", "depth_file", "noc_file", "instance_file")

_ROCA_SYMMETRIES = {
    "__SYM_NONE": "none",
    "__SYM_ROTATE_UP_2": "rot2",
    "__SYM_ROTATE_UP_4": "rot4",
    "__SYM_ROTATE_UP_INF": "inf",
}


def coco_categories() -> list[dict[str, Any]]:
    """The "categories" list of a written dataset: [{"id": 1, "name": "bathtub"}, ...]."""
    return [{"id": index, "name": name} for name, index in CATEGORY_IDS.items()]


@dataclass(frozen=True, eq=False)
class ImageInfo:
    """One entry of "images"; file paths are relative to the dataset root, None if absent."""

    id: int
    file_name: str
    height: int
    width: int
    scene_id: str
    K: np.ndarray
    """(3, 3) float64 intrinsics."""
    depth_file: str | None
    noc_file: str | None
    instance_file: str | None


@dataclass(frozen=True, eq=False)
class AnnotationInfo:
    """One entry of "annotations", validated; the pose is X_cam = R(q) (s * X_noc) + t."""

    id: int
    image_id: int
    category_id: int
    category: str
    bbox: tuple[float, float, float, float]
    """(x, y, w, h) pixels."""
    segmentation: dict[str, Any] | None
    """COCO RLE of the visible pixels, None if absent."""
    area: float | None
    instance: int
    """Its value in the image's instance map, >= 1."""
    t: tuple[float, float, float]
    q: tuple[float, float, float, float]
    """Unit quaternion (w, x, y, z), w >= 0."""
    s: tuple[float, float, float]
    sym: str
    cad_id: str


@dataclass(frozen=True, eq=False)
class Annotations:
    """A validated annotation file."""

    path: Path
    images: tuple[ImageInfo, ...]
    annotations: tuple[AnnotationInfo, ...]
    categories: dict[int, str]
    """Category id -> name."""

    @property
    def root(self) -> Path:
        """The folder the file paths are relative to."""
        return self.path.parent

    def of_image(self, image_id: int) -> list[AnnotationInfo]:
        """The annotations of one image, in file order."""
        return self._by_image.get(image_id, [])

    @functools.cached_property
    def _by_image(self) -> dict[int, list[AnnotationInfo]]:
        index: dict[int, list[AnnotationInfo]] = {}
        for annotation in self.annotations:
            index.setdefault(annotation.image_id, []).append(annotation)
        return index


def annotations_path(path: str | Path) -> Path:
    """The annotation file of a dataset given its folder or the file itself."""
    path = Path(path)
    return path / ANNOTATIONS_FILE if path.is_dir() else path


def load_annotations(path: str | Path) -> Annotations:
    """Read and validate an annotation file (or a dataset folder holding `annotations.json`)."""
    path = annotations_path(path)
    try:
        with path.open(encoding="utf-8") as file:
            data = json.load(file)
    except OSError as err:
        raise DatasetError(f"cannot read annotation file '{path}': {err.strerror or err}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"annotation file '{path}' is not valid JSON: {err}") from err
    return parse_annotations(data, path)


def parse_annotations(data: object, path: Path) -> Annotations:
    """Validate decoded JSON `data` of the annotation file at `path` (named in errors)."""
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must hold a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing list {key!r}")

    categories: dict[int, str] = {}
    for index, raw in enumerate(data["categories"]):
        record = _Record(raw, f"{path}: category {index}")
        category_id = record.integer("id")
        if category_id in categories:
            raise record.invalid("id", "unique")
        categories[category_id] = record.string("name")

    images: dict[int, ImageInfo] = {}
    for index, raw in enumerate(data["images"]):
        image = _parse_image(_Record(raw, f"{path}: image {index}"))
        if image.id in images:
            raise DatasetError(f"{path}: image {index}: duplicate id {image.id}")
        images[image.id] = image

    annotations: list[AnnotationInfo] = []
    seen: set[int] = set()
    for index, raw in enumerate(data["annotations"]):
        annotation = _parse_annotation(
            _Record(raw, f"{path}: annotation {index}"), images, categories
        )
        if annotation.id in seen:
            raise DatasetError(f"{path}: annotation {index}: duplicate id {annotation.id}")
        seen.add(annotation.id)
        annotations.append(annotation)
    return Annotations(path, tuple(images.values()), tuple(annotations), categories)


def _parse_image(record: "_Record") -> ImageInfo:
    height, width = record.integer("height", minimum=1), record.integer("width", minimum=1)
    K = np.asarray(record.matrix("intrinsics"), dtype=np.float64)[:3, :3]
    if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] == 1 and (K[1:, 0] == 0).all()):
        raise record.invalid("intrinsics", "a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]]")
    return ImageInfo(
        id=record.integer("id"),
        file_name=record.string("file_name"),
        height=height,
        width=width,
        scene_id=str(record.field("scene_id")),
        K=K,
        depth_file=record.optional_string("depth_file"),
        noc_file=record.optional_string("noc_file"),
        instance_file=record.optional_string("instance_file"),
    )


def _parse_annotation(
    record: "_Record", images: dict[int, ImageInfo], categories: dict[int, str]
) -> AnnotationInfo:
    image_id = record.integer("image_id")
    if image_id not in images:
        raise record.invalid("image_id", "the id of an image in 'images'")
    category_id = record.integer("category_id")
    if category_id not in categories:
        raise record.invalid("category_id", "the id of a category in 'categories'")
    category = categories[category_id]

    bbox = record.numbers("bbox", 4)
    if bbox[2] < 0 or bbox[3] < 0:
        raise record.invalid("bbox", "[x, y, w, h] with w, h >= 0")
    segmentation = record.raw.get("segmentation")
    image = images[image_id]
    if segmentation is not None:
        size = segmentation.get("size") if isinstance(segmentation, dict) else None
        if size != [image.height, image.width] or "counts" not in segmentation:
            raise record.invalid(
                "segmentation", f"an RLE {{size: [{image.height}, {image.width}], counts}}"
            )
    area = record.raw.get("area")
    if area is not None and not (_is_number(area) and area >= 0):
        raise record.invalid("area", "a non-negative number")

    instance_key = "instance" if "instance" in record.raw else "alignment_id"
    instance = record.integer(instance_key, minimum=1)
    q = record.numbers("q", 4)
    norm = math.sqrt(sum(v * v for v in q))
    if not norm > 1e-12:
        raise record.invalid("q", "a quaternion of non-zero norm")
    sign = -1.0 if q[0] < 0 else 1.0
    s = record.numbers("s", 3)
    if not all(v > 0 for v in s):
        raise record.invalid("s", "3 positive numbers")
    sym = _ROCA_SYMMETRIES.get(record.raw.get("sym"), record.raw.get("sym"))
    if sym not in SYMMETRIES:
        raise record.invalid("sym", f"one of {', '.join(SYMMETRIES)}")

    model = _Record(record.field("model"), f"{record.where}: model")
    cad_id = model.string("cad_id" if "cad_id" in model.raw else "id_cad")
    if model.raw.get("category", category) != category:
        raise model.invalid("category", f"{category!r}, the name of category {category_id}")
    return AnnotationInfo(
        id=record.integer("id"),
        image_id=image_id,
        category_id=category_id,
        category=category,
        bbox=bbox,
        segmentation=segmentation,
        area=None if area is None else float(area),
        instance=instance,
        t=record.numbers("t", 3),
        q=tuple(sign * v / norm for v in q),
        s=s,
        sym=sym,
        cad_id=cad_id,
    )


class _Record:
    """Typed field access to one JSON object, raising DatasetError that names it and the field."""

    def __init__(self, raw: object, where: str):
        if not isinstance(raw, dict):
            raise DatasetError(f"{where}: must be a JSON object")
        self.raw: dict[str, Any] = raw
        self.where = where

    def invalid(self, name: str, requirement: str) -> DatasetError:
        shown = repr(self.raw.get(name))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return DatasetError(f"{self.where}: field {name!r} must be {requirement}, got {shown}")

    def field(self, name: str) -> Any:
        if name not in self.raw:
            raise DatasetError(f"{self.where}: missing field {name!r}")
        return self.raw[name]

    def integer(self, name: str, minimum: int | None = None) -> int:
        value = self.field(name)
        if not _is_integer(value) or (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" >= {minimum}"
            raise self.invalid(name, f"an integer{bound}")
        return int(value)

    def string(self, name: str) -> str:
        value = self.field(name)
        if not isinstance(value, str) or not value:
            raise self.invalid(name, "a non-empty string")
        return value

    def optional_string(self, name: str) -> str | None:
        return self.string(name) if self.raw.get(name) is not None else None

    def numbers(self, name: str, n: int) -> tuple[float, ...]:
        value = self.field(name)
        if not isinstance(value, list) or len(value) != n or not all(map(_is_number, value)):
            raise self.invalid(name, f"a list of {n} finite numbers")
        return tuple(float(v) for v in value)

    def matrix(self, name: str) -> list[list[float]]:
        value = self.field(name)
        if not (
            isinstance(value, list)
            and len(value) in (3, 4)
            and all(isinstance(row, list) and len(row) == len(value) for row in value)
            and all(_is_number(v) for row in value for v in row)
        ):
            raise self.invalid(name, "a 3x3 or 4x4 list of finite numbers")
        return value


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
