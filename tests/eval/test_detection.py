"""Box IoU, greedy matching and AP50 on hand-computed cases."""

import numpy as np
import pytest

from cad_perception.eval.detection import (
    ImageDetections,
    average_precision,
    box_iou,
    match_boxes,
    mean_average_precision,
)


def test_box_iou_known_values() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])


def test_match_prefers_high_scores_and_respects_labels() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]])
    matched = match_boxes(
        boxes, np.array([0.5, 0.9, 0.8]), np.array([1, 1, 2]), gt, np.array([1, 1])
    )
    # the 0.9 box takes GT 0 first; the 0.5 duplicate gets nothing; label 2 never matches label 1
    assert matched.tolist() == [-1, 0, -1]


def _image(boxes, scores, labels, gt_boxes, gt_labels) -> ImageDetections:
    return ImageDetections(
        np.array(boxes, dtype=float).reshape(-1, 4),
        np.array(scores, dtype=float),
        np.array(labels),
        np.array(gt_boxes, dtype=float).reshape(-1, 4),
        np.array(gt_labels),
    )


def test_ap_perfect_false_positive_first_and_half_recall() -> None:
    box = [0, 0, 10, 10]
    perfect = _image([box], [0.9], [1], [box], [1])
    assert average_precision([perfect], 1) == pytest.approx(1.0)
    fp_first = _image([[50, 50, 60, 60], box], [0.9, 0.8], [1, 1], [box], [1])
    assert average_precision([fp_first], 1) == pytest.approx(0.5)
    half = _image([box], [0.9], [1], [box, [40, 40, 50, 50]], [1, 1])
    assert average_precision([half], 1) == pytest.approx(51 / 101)
    assert average_precision([half], 3) is None


def test_map_averages_classes_with_ground_truth() -> None:
    box = [0, 0, 10, 10]
    images = [_image([box], [0.9], [1], [box, [20, 20, 30, 30]], [1, 2])]
    mean, per_class = mean_average_precision(images)
    assert per_class == {1: pytest.approx(100.0), 2: 0.0}
    assert mean == pytest.approx(50.0)
