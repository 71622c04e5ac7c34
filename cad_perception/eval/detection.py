"""2D detection metrics: box IoU, greedy box matching and COCO-style AP at IoU 0.5.

Boxes are (x0, y0, x1, y1) in pixel-edge coordinates (area = (x1 - x0) * (y1 - y0)).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ImageDetections:
    """One image's predictions and ground truth for one evaluation."""

    boxes: np.ndarray
    """(N, 4) predicted boxes."""
    scores: np.ndarray
    """(N,) confidences."""
    labels: np.ndarray
    """(N,) class ids."""
    gt_boxes: np.ndarray
    """(M, 4) ground-truth boxes."""
    gt_labels: np.ndarray
    """(M,) class ids."""


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (A, B) of boxes a (A, 4) and b (B, 4); 0 where the union is empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0.0, None).prod(axis=-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
) -> np.ndarray:
    """(N,) int64: the GT index each prediction matches (-1 for none), greedily in descending
    score order, each GT at most once, same label and IoU >= iou_threshold, best IoU first."""
    matched = np.full(len(boxes), -1, dtype=np.int64)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return matched
    iou = box_iou(boxes, gt_boxes)
    iou[np.asarray(labels)[:, None] != np.asarray(gt_labels)[None, :]] = -1.0
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for index in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(taken, -1.0, iou[index])
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            matched[index] = best
            taken[best] = True
    return matched


def average_precision(images: Sequence[ImageDetections], label: int) -> float | None:
    """AP50 of one class over images: area under the precision envelope sampled at 101 recall
    points (COCO). None when the class has no ground truth."""
    scores, hits, total = [], [], 0
    for image in images:
        keep = np.asarray(image.labels) == label
        gt_keep = np.asarray(image.gt_labels) == label
        total += int(gt_keep.sum())
        matched = match_boxes(
            image.boxes[keep],
            image.scores[keep],
            image.labels[keep],
            image.gt_boxes[gt_keep],
            image.gt_labels[gt_keep],
        )
        scores.extend(np.asarray(image.scores)[keep].tolist())
        hits.extend((matched >= 0).tolist())
    if total == 0:
        return None
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    true_positives = np.cumsum(np.asarray(hits, dtype=np.float64)[order])
    precision = true_positives / np.arange(1, len(order) + 1)
    recall = true_positives / total
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    samples = []
    for level in np.linspace(0.0, 1.0, 101):
        reached = np.searchsorted(recall, level, side="left")
        samples.append(envelope[reached] if reached < len(envelope) else 0.0)
    return float(np.mean(samples))


def mean_average_precision(images: Sequence[ImageDetections]) -> tuple[float, dict[int, float]]:
    """AP50 averaged over the classes with ground truth (percent), and per class (percent)."""
    labels = sorted({int(label) for image in images for label in image.gt_labels})
    per_class = {}
    for label in labels:
        ap = average_precision(images, label)
        if ap is not None:
            per_class[label] = 100.0 * ap
    mean = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return mean, per_class
