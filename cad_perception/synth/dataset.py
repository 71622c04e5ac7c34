"""Datasets in the ROCA / Scan2CAD layout: the writer, a torch Dataset reader, scorer records.

A dataset is a folder

    annotations.json          the COCO-style index (schema in synth/annotations.py)
    images/000001.png         RGB
    depth/000001.png          uint16 millimetres, 0 = no hit
    noc/000001.png            uint16 round((noc + 1) * 10000), R, G, B = x, y, z; 0 = off-object
    instance/000001.png       uint16, 0 = background

(encodings in synth/encoding.py). Camera frame: OpenCV / ROS optical (x right, y down, z
forward), metres; an object's pose maps its NOCs to camera points, X_cam = R(q) (s * X_noc) + t.
`annotations.json` is written last, through a temporary file and a rename, so a folder whose
writing was interrupted has none and cannot be mistaken for a dataset.
"""

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from cad_perception.eval.records import AlignmentRecord
from cad_perception.geometry.rotations import SYMMETRIES, matrix_to_quaternion, quaternion_to_matrix
from cad_perception.synth import encoding, rle
from cad_perception.synth.annotations import (
    ANNOTATIONS_FILE,
    CATEGORY_IDS,
    AnnotationInfo,
    Annotations,
    ImageInfo,
    coco_categories,
    load_annotations,
)
from cad_perception.synth.depth_nocs import nocs_from_depth
from cad_perception.synth.errors import DatasetError
from cad_perception.synth.frame import Frame, FrameObject

logger = logging.getLogger(__name__)

FOLDERS = {
    "file_name": "images",
    "depth_file": "depth",
    "noc_file": "noc",
    "instance_file": "instance",
}
"""Image entry key -> the folder its files are written to."""


def write_dataset(
    frames: Iterable[Frame],
    out_dir: str | Path,
    *,
    scene_ids: Iterable[str] | None = None,
    progress: bool = True,
) -> Path:
    """Write frames as a dataset in out_dir (created if needed); returns its annotations.json.

    Images get ids 1, 2, ... in order; annotations are numbered from 1 across the dataset. The
    scene_ids, one per frame, are stored as the images' "scene_id" (default: the image's file
    stem). A previous annotations.json in out_dir is removed first. Raises ValueError on an
    inconsistent frame (bad array shapes, an unknown category or symmetry, an object whose
    pixels in the instance map disagree with its bbox or visible_pixels) or when the number of
    scene_ids differs from the number of frames.
    """
    out_dir = Path(out_dir)
    target = out_dir / ANNOTATIONS_FILE
    for folder in FOLDERS.values():
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)

    scene_id_iter = iter(scene_ids) if scene_ids is not None else None
    total = len(frames) if hasattr(frames, "__len__") else None
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, frame in enumerate(
        tqdm(frames, total=total, desc="writing dataset", unit="image", disable=not progress),
        start=1,
    ):
        stem = f"{image_id:06d}"
        scene_id = stem if scene_id_iter is None else next(scene_id_iter, None)
        if scene_id is None:
            raise ValueError(f"scene_ids has fewer entries than frames ({image_id - 1})")
        files = {key: f"{folder}/{stem}.png" for key, folder in FOLDERS.items()}
        _check_frame(frame, image_id)
        encoding.write_rgb(out_dir / files["file_name"], frame.rgb)
        encoding.write_depth(out_dir / files["depth_file"], frame.depth)
        encoding.write_noc(out_dir / files["noc_file"], frame.noc)
        encoding.write_instance(out_dir / files["instance_file"], frame.instance)
        height, width = frame.size
        images.append(
            {
                "id": image_id,
                "file_name": files["file_name"],
                "height": height,
                "width": width,
                "scene_id": str(scene_id),
                "intrinsics": np.asarray(frame.K, dtype=np.float64).tolist(),
                **{key: files[key] for key in ("depth_file", "noc_file", "instance_file")},
            }
        )
        quaternions = _quaternions(frame.objects)
        for obj, q in zip(frame.objects, quaternions, strict=True):
            annotations.append(_annotation(obj, q, frame, image_id, len(annotations) + 1))
    if scene_id_iter is not None and next(scene_id_iter, None) is not None:
        raise ValueError(f"scene_ids has more entries than frames ({len(images)})")

    data = {"images": images, "annotations": annotations, "categories": coco_categories()}
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, target)
    logger.info("wrote %d images, %d annotations to %s", len(images), len(annotations), out_dir)
    return target


def _check_frame(frame: Frame, image_id: int) -> None:
    """ValueError unless the frame's arrays agree in size and its objects are well formed."""
    height, width = frame.size
    shapes = {
        "rgb": (np.shape(frame.rgb), (height, width, 3)),
        "instance": (np.shape(frame.instance), (height, width)),
        "noc": (np.shape(frame.noc), (height, width, 3)),
        "K": (np.shape(frame.K), (3, 3)),
    }
    for name, (found, expected) in shapes.items():
        if found != expected:
            raise ValueError(f"frame {image_id}: {name} has shape {found}, expected {expected}")
    instances = [obj.instance for obj in frame.objects]
    if len(set(instances)) != len(instances):
        raise ValueError(f"frame {image_id}: objects share instance values {instances}")
    for obj in frame.objects:
        if obj.category not in CATEGORY_IDS:
            raise ValueError(f"frame {image_id}: unknown category {obj.category!r}")
        if obj.symmetry not in SYMMETRIES:
            raise ValueError(f"frame {image_id}: unknown symmetry {obj.symmetry!r}")


def _quaternions(objects: Sequence[FrameObject]) -> list[list[float]]:
    """The rotations of objects as quaternions (w, x, y, z), w >= 0 (one batched call)."""
    if not objects:
        return []
    R = torch.as_tensor(np.stack([np.asarray(obj.R, dtype=np.float64) for obj in objects]))
    return matrix_to_quaternion(R).tolist()


def _annotation(
    obj: FrameObject, q: list[float], frame: Frame, image_id: int, annotation_id: int
) -> dict[str, Any]:
    """The annotation entry of one object, its mask taken from the frame's instance map."""
    runs = rle.mask_to_runs(frame.instance == obj.instance)
    height, width = frame.size
    segmentation = {"size": [height, width], "counts": rle.runs_to_string(runs)}
    bbox, area = rle.runs_bbox(runs, height), int(runs[1::2].sum())
    where = f"frame {image_id}, object with instance {obj.instance}"
    if area == 0:
        raise ValueError(f"{where}: has no pixels in the instance map")
    if list(map(float, obj.bbox)) != bbox or obj.visible_pixels != area:
        raise ValueError(
            f"{where}: bbox {tuple(obj.bbox)} / visible_pixels {obj.visible_pixels} disagree "
            f"with the instance map's {tuple(bbox)} / {area}"
        )
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS[obj.category],
        "bbox": bbox,
        "segmentation": segmentation,
        "area": float(area),
        "iscrowd": 0,
        "instance": int(obj.instance),
        "t": np.asarray(obj.t, dtype=np.float64).tolist(),
        "q": q,
        "s": np.asarray(obj.s, dtype=np.float64).tolist(),
        "sym": obj.symmetry,
        "model": {"cad_id": obj.cad_id, "category": obj.category},
        "visible_pixels": int(area),
        "occlusion_ratio": float(obj.occlusion_ratio),
    }


class RocaDataset(Dataset):
    """The images of a dataset in the ROCA / Scan2CAD layout (ours or ROCA's renderings).

    The constructor reads and validates annotations.json (see synth/annotations.py) and checks
    that every image names the files the requested modalities need; each item checks that its
    files exist, decode and have the image's size, and that each annotation's mask, the
    instance map and its bbox agree. Every problem raises DatasetError naming the file or
    record and the field.

    An item is a dict (tensors are float32 unless stated; N annotations, image H x W):
        image_id (int), scene_id (str), file_name (str, the image's path);
        image (3, H, W) RGB in [0, 1] (if load_rgb);
        depth (H, W) z-depth in metres, 0 = no hit (if load_depth);
        noc (3, H, W) canonical x, y, z, 0 off-object, and noc_mask (H, W) bool, True where
          the NOC is valid (and, with load_instance, on an object) (if load_noc; an image
          without a noc_file gets them from its depth, instance map and poses, as ROCA's
          renderings need: synth/depth_nocs.py);
        instance (H, W) int64 instance map, 0 = background (if load_instance);
        K (3, 3) intrinsics;
        annotation_ids (N,) int64, labels (N,) int64 category ids, instances (N,) int64 values
          in the instance map, boxes (N, 4) (x0, y0, x1, y1) pixel edges (x1 = x + w),
          masks (N, H, W) bool, R (N, 3, 3), t (N, 3), s (N, 3), q (N, 4) (w, x, y, z) with
          X_cam = R (s * X_noc) + t, sym (list of N str), cad_ids (list of N str).
    Items hold different N, so batch them with `DataLoader(..., collate_fn=list)`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        load_rgb: bool = True,
        load_depth: bool = True,
        load_noc: bool = True,
        load_instance: bool = True,
    ):
        self.annotations: Annotations = load_annotations(root)
        self._loads = {
            "file_name": load_rgb,
            "depth_file": load_depth,
            "noc_file": load_noc,
            "instance_file": load_instance,
        }
        source = self.annotations.path
        for index, image in enumerate(self.annotations.images):
            for key, wanted in self._loads.items():
                if not wanted or getattr(image, key) is not None:
                    continue
                if key == "noc_file" and image.depth_file and image.instance_file:
                    continue  # NOCs follow from depth, instance map and poses (depth_nocs.py)
                raise DatasetError(f"{source}: image {index} (id {image.id}): missing {key!r}")
        if not load_instance:
            for annotation in self.annotations.annotations:
                if annotation.segmentation is None:
                    raise DatasetError(
                        f"{source}: annotation id {annotation.id}: no 'segmentation', so its "
                        "mask needs the instance map (load_instance=True)"
                    )

    def __len__(self) -> int:
        return len(self.annotations.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.annotations.images[index]
        annotations = self.annotations.of_image(image.id)
        item: dict[str, Any] = {
            "image_id": image.id,
            "scene_id": image.scene_id,
            "file_name": image.file_name,
            "K": torch.as_tensor(image.K, dtype=torch.float32),
        }
        instance = None
        if self._loads["instance_file"]:
            instance = self._read(image, "instance_file", encoding.read_instance)
            item["instance"] = torch.from_numpy(instance.astype(np.int64))
        if self._loads["file_name"]:
            rgb = self._read(image, "file_name", encoding.read_rgb)
            item["image"] = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
        depth = None
        if self._loads["depth_file"]:
            depth = self._read(image, "depth_file", encoding.read_depth)
            item["depth"] = torch.from_numpy(depth)
        if self._loads["noc_file"]:
            if image.noc_file is not None:
                noc = self._read(image, "noc_file", encoding.read_noc)
            else:
                noc = self._derived_nocs(image, annotations, depth, instance)
            mask = np.isfinite(noc).all(axis=-1)
            if instance is not None:
                mask &= instance > 0
            item["noc"] = torch.from_numpy(np.where(mask[..., None], noc, 0.0)).permute(2, 0, 1)
            item["noc_mask"] = torch.from_numpy(mask)
        item.update(self._targets(image, annotations, instance))
        return item

    def _derived_nocs(
        self,
        image: ImageInfo,
        annotations: list[AnnotationInfo],
        depth: np.ndarray | None,
        instance: np.ndarray | None,
    ) -> np.ndarray:
        """(H, W, 3) NOCs of an image without a NOC file, from its depth, instance map and
        annotated poses (NaN off the annotated objects)."""
        if depth is None:
            depth = self._read(image, "depth_file", encoding.read_depth)
        if instance is None:
            instance = self._read(image, "instance_file", encoding.read_instance)
        q = torch.tensor([a.q for a in annotations], dtype=torch.float64).reshape(-1, 4)
        return nocs_from_depth(
            depth,
            instance,
            image.K,
            np.array([a.instance for a in annotations]),
            quaternion_to_matrix(q).numpy(),
            np.array([a.t for a in annotations], dtype=np.float64).reshape(-1, 3),
            np.array([a.s for a in annotations], dtype=np.float64).reshape(-1, 3),
        )

    def _read(self, image: ImageInfo, key: str, reader: Callable[[Path], np.ndarray]) -> np.ndarray:
        """The decoded file `key` of an image, checked to have the image's size."""
        path = self.annotations.root / getattr(image, key)
        try:
            array = reader(path)
        except DatasetError as err:
            raise DatasetError(f"image id {image.id}, field {key!r}: {err}") from err
        if array.shape[:2] != (image.height, image.width):
            raise DatasetError(
                f"image id {image.id}, field {key!r}: '{path}' is {array.shape[0]}x"
                f"{array.shape[1]} pixels, the image record says {image.height}x{image.width}"
            )
        return array

    def _targets(
        self, image: ImageInfo, annotations: list[AnnotationInfo], instance: np.ndarray | None
    ) -> dict[str, Any]:
        """The per-annotation tensors of one image."""
        masks = np.zeros((len(annotations), image.height, image.width), dtype=bool)
        for row, annotation in enumerate(annotations):
            masks[row] = _checked_mask(self.annotations.path, annotation, instance)
        boxes = np.array([a.bbox for a in annotations], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        q = torch.tensor([a.q for a in annotations], dtype=torch.float32).reshape(-1, 4)
        return {
            "annotation_ids": torch.tensor([a.id for a in annotations], dtype=torch.int64),
            "labels": torch.tensor([a.category_id for a in annotations], dtype=torch.int64),
            "instances": torch.tensor([a.instance for a in annotations], dtype=torch.int64),
            "boxes": torch.from_numpy(boxes),
            "masks": torch.from_numpy(masks),
            "R": quaternion_to_matrix(q),
            "t": torch.tensor([a.t for a in annotations], dtype=torch.float32).reshape(-1, 3),
            "s": torch.tensor([a.s for a in annotations], dtype=torch.float32).reshape(-1, 3),
            "q": q,
            "sym": [a.sym for a in annotations],
            "cad_ids": [a.cad_id for a in annotations],
        }


def _checked_mask(
    source: Path, annotation: AnnotationInfo, instance: np.ndarray | None
) -> np.ndarray:
    """(H, W) bool mask of an annotation, from its RLE or else the instance map, checked
    against the instance map (if loaded) and its bbox."""
    where = f"{source}: annotation id {annotation.id}"
    from_instance = None if instance is None else instance == annotation.instance
    if annotation.segmentation is None:
        mask = from_instance
    else:
        try:
            mask = rle.decode(annotation.segmentation)
        except ValueError as err:
            raise DatasetError(f"{where}: field 'segmentation': {err}") from err
        if from_instance is not None and not np.array_equal(mask, from_instance):
            raise DatasetError(
                f"{where}: field 'segmentation' disagrees with the instance map's pixels of "
                f"instance {annotation.instance} ({int(mask.sum())} vs "
                f"{int(from_instance.sum())} pixels)"
            )
    box = _mask_bbox(mask)
    if np.abs(np.subtract(box, annotation.bbox)).max() > 1e-3:
        raise DatasetError(
            f"{where}: field 'bbox' {list(annotation.bbox)} disagrees with its mask's {box}"
        )
    return mask


def _mask_bbox(mask: np.ndarray) -> list[float]:
    """[x, y, w, h] of the foreground of an (H, W) bool mask, zeros if empty."""
    columns, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if columns.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    x, y = columns[0], rows[0]
    return [float(x), float(y), float(columns[-1] - x + 1), float(rows[-1] - y + 1)]


def dataset_to_records(annotations_path: str | Path) -> list[AlignmentRecord]:
    """The ground truth of a dataset (its folder or annotations.json) as scorer records.

    One record per annotation, in file order, with scene = str(image id).
    """
    return annotation_records(load_annotations(annotations_path))


def annotation_records(annotations: Annotations) -> list[AlignmentRecord]:
    """Loaded annotations as scorer records (dataset_to_records)."""
    return [
        AlignmentRecord(
            scene=str(a.image_id),
            category=a.category,
            cad_id=a.cad_id,
            t=a.t,
            q=a.q,
            s=a.s,
            sym=a.sym,
        )
        for a in annotations.annotations
    ]
