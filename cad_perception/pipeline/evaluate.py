"""`cad-perception eval`: run a model over a dataset in the ROCA layout and measure it.

The network runs eagerly (torch, the default) or through an inference backend (onnxruntime,
tensorrt: the engine a robot deploys, exported at the dataset's image size) on every image. The
engines return detections only, so their reports have no NOC and depth errors (None). The
detections retrieve
CADs from the database under the model's encoder, and the predictions go through ROCA's 3D NMS
to the Scan2CAD scorer (scene = image id). Besides the scorer's accuracies the report holds
detection AP50, the median translation / rotation / scale errors of detections matched to a GT
object (same class, box IoU >= 0.5), the mean NOC L1 error of matched detections (RoI cells on
the GT object), the mean absolute depth error (pixels with GT depth) and retrieval top-1 per
category (matched detections whose nearest CAD is the GT's).
"""

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from cad_perception.cad.database import CadDatabase
from cad_perception.engine.backend import Backend
from cad_perception.engine.factory import create_backend
from cad_perception.eval.detection import ImageDetections, match_boxes, mean_average_precision
from cad_perception.eval.nms import nms_3d
from cad_perception.eval.pose_errors import rotation_errors_deg, scale_errors
from cad_perception.eval.records import AlignmentRecord
from cad_perception.eval.scan2cad import score_alignments
from cad_perception.geometry.rotations import matrix_to_quaternion
from cad_perception.model.alignment_head import roi_pixel_coordinates
from cad_perception.model.checkpoint import cad_encoder_key, load_model
from cad_perception.model.outputs import RocaOutput
from cad_perception.pipeline.retrieval import categories_with_cads, retrieve
from cad_perception.synth.dataset import RocaDataset, annotation_records

logger = logging.getLogger(__name__)

DEFAULT_SCORE_THRESHOLD = 0.3
"""Detections below this confidence are not scored."""


def evaluate(
    model_dir: str | Path,
    db_dir: str | Path,
    data_dir: str | Path,
    *,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    limit: int | None = None,
    device: str = "cpu",
    backend: str = "torch",
    progress: bool = True,
) -> dict[str, Any]:
    """The evaluation report (JSON-able dict; module docstring) of the model in `model_dir`
    on the first `limit` (default all) images of the dataset in `data_dir`, run by `backend`
    ("torch": the eager network; "onnxruntime", "tensorrt", "auto": engine/factory.py)."""
    if backend != "torch":
        return _evaluate_engine(
            model_dir,
            db_dir,
            data_dir,
            backend=backend,
            score_threshold=score_threshold,
            limit=limit,
            device=device,
            progress=progress,
        )
    model = load_model(model_dir, device)

    @torch.no_grad()
    def predict(item: dict) -> RocaOutput:
        out = model(item["image"][None].to(device), item["K"][None].to(device))
        return RocaOutput(*(t.float().cpu() if t.is_floating_point() else t.cpu() for t in out))

    report = evaluate_predictions(
        predict,
        db_dir,
        data_dir,
        categories=model.config.categories,
        encoder=cad_encoder_key(model),
        score_threshold=score_threshold,
        limit=limit,
        progress=progress,
    )
    return report | {"model": str(model_dir), "backend": "torch"}


def _evaluate_engine(
    model_dir: str | Path,
    db_dir: str | Path,
    data_dir: str | Path,
    *,
    backend: str,
    score_threshold: float,
    limit: int | None,
    device: str,
    progress: bool,
) -> dict[str, Any]:
    """`evaluate` through an inference backend built for the dataset's image size."""
    dataset = RocaDataset(data_dir)
    size = dataset_image_size(dataset.annotations.images, data_dir)
    engine = create_backend(model_dir, backend, device=device, input_size=size)
    report = evaluate_predictions(
        lambda item: engine_prediction(engine, item),
        db_dir,
        dataset,
        categories=engine.categories,
        encoder=engine.encoder,
        score_threshold=score_threshold,
        limit=limit,
        progress=progress,
    )
    return report | {"model": str(model_dir), "backend": engine.name}


def dataset_image_size(images: Sequence[Any], where: str | Path) -> tuple[int, int]:
    """The (H, W) that every image entry (with .height, .width) of a dataset has; ValueError if
    they differ, since an engine runs one input size."""
    sizes = sorted({(image.height, image.width) for image in images})
    if len(sizes) != 1:
        raise ValueError(
            f"{where}: an engine runs one input size, the dataset has {sizes}; "
            "evaluate with --backend torch"
        )
    return sizes[0]


def engine_prediction(engine: Backend, item: dict) -> RocaOutput:
    """The detections of `engine` on a dataset item's image as a RocaOutput (no NOCs and no
    depth map: those fields are None)."""
    out = engine(item["image"].numpy(), item["K"].numpy())
    rows = slice(0, out.count)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array[rows]))

    return RocaOutput(
        boxes=tensor(out.boxes),
        scores=tensor(out.scores),
        classes=tensor(out.classes),
        batch_index=torch.zeros(out.count, dtype=torch.int64),
        masks=tensor(out.masks)[:, None],
        R=tensor(out.R),
        t=tensor(out.t),
        s=tensor(out.s),
        alignment_valid=tensor(out.valid),
        noc=None,
        embeddings=tensor(out.embeddings),
        depth=None,
    )


def evaluate_predictions(
    predict: Callable[[dict], RocaOutput],
    db_dir: str | Path,
    data: str | Path | RocaDataset,
    *,
    categories: tuple[str, ...],
    encoder: tuple[str, str],
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The evaluation report of `predict` (a RocaDataset item -> the network's RocaOutput for
    its image, on the CPU) on the first `limit` images of the dataset `data` (a folder or one
    already opened), retrieving from `db_dir` under `encoder`; class c of the outputs is
    categories[c - 1]."""
    dataset = data if isinstance(data, RocaDataset) else RocaDataset(data)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    loader = DataLoader(Subset(dataset, range(count)), batch_size=None, num_workers=0)
    started = time.perf_counter()
    predictions: list[AlignmentRecord] = []
    detections: list[ImageDetections] = []
    matched_errors: list[tuple[float, float, float]] = []
    noc_errors: list[float] = []
    depth_errors: list[float] = []
    retrieval_hits: dict[str, list[bool]] = {}
    with CadDatabase.open(db_dir, readonly=True) as db:
        if not db.embedded_ids(encoder):
            raise ValueError(
                f"the CAD database {db.root} has no embeddings of this model's encoder "
                f"{encoder[0]}@{encoder[1]}; run `cad-perception db embed {db.root} --model DIR`"
            )
        searchable = categories_with_cads(db)
        bar = tqdm(loader, total=count, desc="evaluating", unit="image", disable=not progress)
        for item in bar:
            out = predict(item)
            keep = out.scores >= score_threshold
            kept = torch.nonzero(keep).flatten()
            names = [categories[int(c) - 1] for c in out.classes[kept]]
            matches = retrieve(db, encoder, names, out.embeddings[kept].numpy(), 1, searchable)
            cad_ids = [found[0].cad_id if found else "" for found in matches]
            predictions.extend(_records(item, out, kept, cad_ids, categories))
            image = ImageDetections(
                boxes=out.boxes[kept].numpy(),
                scores=out.scores[kept].numpy(),
                labels=out.classes[kept].numpy(),
                gt_boxes=item["boxes"].numpy(),
                gt_labels=item["labels"].numpy(),
            )
            detections.append(image)
            matches = match_boxes(
                image.boxes, image.scores, image.labels, image.gt_boxes, image.gt_labels
            )
            for row, gt in enumerate(matches.tolist()):
                if gt < 0:
                    continue
                index = int(kept[row])
                matched_errors.append(_pose_errors(out, index, item, gt))
                noc_error = None if out.noc is None else _noc_error(out, index, item, gt)
                if noc_error is not None:
                    noc_errors.append(noc_error)
                category = categories[int(out.classes[index]) - 1]
                hits = retrieval_hits.setdefault(category, [])
                hits.append(cad_ids[row] == item["cad_ids"][gt])
            valid = item["depth"] > 0
            if out.depth is not None and valid.any():
                depth_errors.append(float((out.depth[0, 0] - item["depth"])[valid].abs().mean()))
    elapsed = time.perf_counter() - started
    image_ids = {str(image.id) for image in dataset.annotations.images[:count]}
    ground_truth = [r for r in annotation_records(dataset.annotations) if r.scene in image_ids]
    score = score_alignments(nms_3d(predictions), ground_truth)
    ap50, per_class_ap = mean_average_precision(detections)
    errors = np.asarray(matched_errors, dtype=np.float64).reshape(-1, 3)
    return score.to_json() | {
        "detection_ap50": ap50,
        "detection_ap50_per_class": {categories[k - 1]: v for k, v in per_class_ap.items()},
        "matched_objects": len(errors),
        "gt_objects": len(ground_truth),
        "median_translation_error_m": _median(errors[:, 0]),
        "median_rotation_error_deg": _median(errors[:, 1]),
        "median_scale_error": _median(errors[:, 2]),
        "noc_l1_error": float(np.mean(noc_errors)) if noc_errors else None,
        "depth_abs_error_m": float(np.mean(depth_errors)) if depth_errors else None,
        "retrieval_top1": {c: 100.0 * float(np.mean(h)) for c, h in sorted(retrieval_hits.items())},
        "images": count,
        "score_threshold": score_threshold,
        "seconds_per_image": elapsed / max(count, 1),
        "encoder": list(encoder),
        "data": str(dataset.annotations.path.parent),
    }


def _records(
    item: dict,
    out: RocaOutput,
    indices: torch.Tensor,
    cad_ids: list[str],
    categories: tuple[str, ...],
) -> list[AlignmentRecord]:
    """Scorer records of detections `indices` of one image (scene = image id)."""
    quaternions = matrix_to_quaternion(out.R[indices].double())
    records = []
    for row, index in enumerate(indices.tolist()):
        s = out.s[index].double().clamp_min(1e-6)
        records.append(
            AlignmentRecord(
                scene=str(item["image_id"]),
                category=categories[int(out.classes[index]) - 1],
                cad_id=cad_ids[row] or "none",
                t=tuple(out.t[index].double().tolist()),
                q=tuple(quaternions[row].tolist()),
                s=tuple(s.tolist()),
                sym="none",
                score=float(out.scores[index]),
            )
        )
    return records


def _pose_errors(out: RocaOutput, index: int, item: dict, gt: int) -> tuple[float, float, float]:
    """(translation m, rotation deg with the GT's symmetry, scale) of detection `index` vs GT."""
    translation = float((out.t[index].double() - item["t"][gt].double()).norm())
    rotation = float(
        rotation_errors_deg(
            out.R[index][None].double(), item["R"][gt][None].double(), [item["sym"][gt]]
        )[0, 0]
    )
    scale = float(scale_errors(out.s[index][None].double(), item["s"][gt][None].double())[0, 0])
    return translation, rotation, scale


def _noc_error(out: RocaOutput, index: int, item: dict, gt: int) -> float | None:
    """Mean L1 (per coordinate) between predicted and GT NOCs over the detection's RoI cells
    that fall on the GT object's visible pixels; None when no cell does."""
    roi_size = out.noc.shape[-1]
    uv = roi_pixel_coordinates(out.boxes[index][None], roi_size)[0].round().long()  # (S, S, 2)
    height, width = item["masks"].shape[-2:]
    u = uv[..., 0].clamp(0, width - 1)
    v = uv[..., 1].clamp(0, height - 1)
    on_object = item["masks"][gt][v, u] & item["noc_mask"][v, u]
    if not on_object.any():
        return None
    gt_noc = item["noc"][:, v, u]  # (3, S, S)
    difference = (out.noc[index] - gt_noc).abs().mean(dim=0)
    return float(difference[on_object].mean())


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None
