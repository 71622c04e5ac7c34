"""ROCA's 3D non-maximum suppression: drop duplicate predictions of one object.

Per-frame predictions of a scene, brought into one frame, see the same object many times. As in
ROCA's evaluation (`Vid2CADEvaluator._nms_results`), predictions are visited in descending score
order (equal scores keep their input order) and one is dropped when it duplicates a prediction
already kept in the same scene and category, i.e. against that kept prediction k all hold:
- ||t - t_k|| <= translation_m (0.4 m);
- the rotation angle between them, minimised over the symmetry of k's CAD model (ROCA looks
  up the symmetry of the higher-scoring prediction's retrieved CAD), <= rotation_deg (60 deg);
- |mean(s_k / s) - 1| <= scale (0.6), ROCA's `scale_ratio(kept, other)`: note the kept
  prediction's scale is the numerator, so the test is not symmetric in the two predictions.
Dropped predictions suppress nothing (standard greedy NMS), and kept records are returned
unchanged: ROCA keeps the higher-scoring prediction and does not average poses.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from cad_perception.eval.errors import InvalidRecordError
from cad_perception.eval.pose_errors import (
    PoseErrors,
    PoseThresholds,
    rotation_errors_deg,
    scale_errors,
    translation_errors,
)
from cad_perception.eval.records import AlignmentRecord, stack_poses


@dataclass(frozen=True, kw_only=True)
class NmsThresholds(PoseThresholds):
    """ROCA's duplicate thresholds (inclusive)."""

    translation_m: float = 0.4
    rotation_deg: float = 60.0
    scale: float = 0.6


def nms_3d(
    predictions: Sequence[AlignmentRecord], thresholds: NmsThresholds | None = None
) -> list[AlignmentRecord]:
    """The predictions that survive 3D NMS, in descending score order.

    Every prediction must have a score (InvalidRecordError naming its index otherwise).
    """
    thresholds = NmsThresholds() if thresholds is None else thresholds
    for index, p in enumerate(predictions):
        if p.score is None:
            raise InvalidRecordError(
                f"prediction {index}: NMS needs a score", index=index, field="score"
            )
    order = sorted(range(len(predictions)), key=lambda i: predictions[i].score, reverse=True)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in order:
        groups[predictions[i].scene, predictions[i].category].append(i)

    kept: set[int] = set()
    for indices in groups.values():
        group = [predictions[i] for i in indices]
        kept.update(indices[k] for k in _kept_in_group(group, thresholds))
    return [predictions[i] for i in order if i in kept]


def _kept_in_group(group: list[AlignmentRecord], thresholds: NmsThresholds) -> list[int]:
    """Indices into `group` (one scene and category, descending score) that NMS keeps."""
    poses = stack_poses(group)
    syms = [p.sym for p in group]
    # duplicate[k, j]: prediction j duplicates prediction k if k is kept. Rotation errors put the
    # symmetry on the second argument, so they are computed as [j, k] and transposed.
    errors = PoseErrors(
        translation=translation_errors(poses.t, poses.t),
        rotation_deg=rotation_errors_deg(poses.R, poses.R, syms).T,
        scale=scale_errors(poses.s, poses.s),
    )
    duplicate = thresholds.accept(errors)
    kept: list[int] = []
    for j in range(len(group)):
        if not any(duplicate[k, j] for k in kept):
            kept.append(j)
    return kept
