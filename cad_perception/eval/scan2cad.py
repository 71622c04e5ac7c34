"""Scan2CAD alignment accuracy, the protocol of DESIGN.md ("Alignment accuracy") as ROCA uses it.

Per scene and category:
1. keep the top-scoring predictions, at most as many as there are ground-truth (GT) objects
   (equal scores keep their input order);
2. in descending score order, match each prediction to the first still unmatched GT object (in
   input order) it aligns with: translation, rotation (minimised over the GT CAD's symmetry) and
   scale errors of `pose_errors` all within `Thresholds`; each GT is matched at most once;
3. the category's accuracy is matched GT / all GT.
Retrieval-aware accuracy repeats step 2 as its own greedy pass in which a match also needs the
prediction's cad_id to equal the GT's. This is what ROCA's evaluation does with exact retrieval
(the CAD-id test sits inside its matching loop), so a well-aligned prediction with the wrong CAD
does not use up a GT that a later prediction with the right CAD could take.

The class average is the mean accuracy over the categories that have GT; predictions of
categories without GT are ignored. The instance average is all matched / all GT. Accuracies are
percentages.

Symmetry: as DESIGN.md specifies, the rotation error is minimised over the GT CAD's symmetry
(the prediction's "sym" is not used). The reference scripts differ where the retrieved CAD's
symmetry differs from the GT's: Scan2CAD's EvaluateBenchmark.py uses the predicted CAD's symmetry,
ROCA's evaluation uses the symmetry only when both labels agree. When the labels agree, all three
give the same answer.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from cad_perception.eval.errors import EmptyGroundTruthError
from cad_perception.eval.pose_errors import PoseThresholds, pairwise_pose_errors
from cad_perception.eval.records import AlignmentRecord, stack_poses

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Thresholds(PoseThresholds):
    """The Scan2CAD alignment thresholds (inclusive)."""

    translation_m: float = 0.20
    rotation_deg: float = 20.0
    scale: float = 0.20


@dataclass(frozen=True)
class CategoryScore:
    """Matched and total GT counts of one category."""

    correct: int
    retrieval_correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """Aligned GT objects, percent of total."""
        return 100.0 * self.correct / self.total

    @property
    def retrieval_accuracy(self) -> float:
        """Aligned GT objects with the right CAD model, percent of total."""
        return 100.0 * self.retrieval_correct / self.total


@dataclass(frozen=True)
class AlignmentScore:
    """The result of `score_alignments`."""

    per_class: Mapping[str, CategoryScore]
    """Scores of every category with GT, sorted by name."""
    thresholds: Thresholds

    @property
    def overall(self) -> CategoryScore:
        """All categories pooled; its accuracies are the instance averages."""
        classes = self.per_class.values()
        return CategoryScore(
            correct=sum(c.correct for c in classes),
            retrieval_correct=sum(c.retrieval_correct for c in classes),
            total=sum(c.total for c in classes),
        )

    @property
    def class_avg(self) -> float:
        """Mean accuracy over categories, percent."""
        return _mean(c.accuracy for c in self.per_class.values())

    @property
    def instance_avg(self) -> float:
        """Accuracy over all GT objects, percent."""
        return self.overall.accuracy

    @property
    def retrieval_class_avg(self) -> float:
        """Mean retrieval-aware accuracy over categories, percent."""
        return _mean(c.retrieval_accuracy for c in self.per_class.values())

    @property
    def retrieval_instance_avg(self) -> float:
        """Retrieval-aware accuracy over all GT objects, percent."""
        return self.overall.retrieval_accuracy

    def to_json(self) -> dict[str, Any]:
        """The score as a JSON-ready dict (accuracies in percent)."""
        return {
            "class_avg": self.class_avg,
            "instance_avg": self.instance_avg,
            "retrieval_class_avg": self.retrieval_class_avg,
            "retrieval_instance_avg": self.retrieval_instance_avg,
            "per_class": {
                name: {
                    "correct": c.correct,
                    "retrieval_correct": c.retrieval_correct,
                    "total": c.total,
                    "accuracy": c.accuracy,
                    "retrieval_accuracy": c.retrieval_accuracy,
                }
                for name, c in self.per_class.items()
            },
            "thresholds": asdict(self.thresholds),
        }


def greedy_matches(accepted: torch.Tensor) -> list[int | None]:
    """Greedy one-to-one matching of predictions to GT objects.

    accepted: (P, G) bool, rows in descending score order, accepted[i, j] when prediction i may
    match GT j. Returns, per row, the first column not taken by an earlier row, or None.
    """
    if accepted.dim() != 2:
        raise ValueError(f"accepted must have shape (P, G), got {tuple(accepted.shape)}")
    taken = torch.zeros(accepted.shape[1], dtype=torch.bool)
    matches: list[int | None] = []
    for row in accepted:
        free = torch.nonzero(row & ~taken).flatten()
        match = int(free[0]) if len(free) else None
        if match is not None:
            taken[match] = True
        matches.append(match)
    return matches


def score_alignments(
    predictions: Iterable[AlignmentRecord],
    ground_truth: Iterable[AlignmentRecord],
    thresholds: Thresholds | None = None,
) -> AlignmentScore:
    """Scan2CAD alignment and retrieval-aware accuracy of `predictions` against `ground_truth`.

    Predictions must have scores. Raises EmptyGroundTruthError when there is no GT.
    """
    thresholds = Thresholds() if thresholds is None else thresholds
    gt_groups = _group(ground_truth)
    if not gt_groups:
        raise EmptyGroundTruthError("the ground truth holds no records: accuracy is undefined")
    pred_groups = _group(predictions)
    ignored = sorted({category for _, category in pred_groups.keys() - gt_groups.keys()})
    if ignored:
        logger.info("ignoring predictions without GT in their scene and category: %s", ignored)

    correct: Counter[str] = Counter()
    retrieval_correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for (scene, category), gts in gt_groups.items():
        preds = _top_scoring(pred_groups.get((scene, category), []), len(gts))
        total[category] += len(gts)
        if not preds:
            continue
        errors = pairwise_pose_errors(stack_poses(preds), stack_poses(gts), [g.sym for g in gts])
        aligned = thresholds.accept(errors)
        same_cad = torch.tensor([[p.cad_id == g.cad_id for g in gts] for p in preds])
        correct[category] += _count(greedy_matches(aligned))
        retrieval_correct[category] += _count(greedy_matches(aligned & same_cad))

    per_class = {
        name: CategoryScore(correct[name], retrieval_correct[name], total[name])
        for name in sorted(total)
    }
    return AlignmentScore(per_class=per_class, thresholds=thresholds)


def _group(records: Iterable[AlignmentRecord]) -> dict[tuple[str, str], list[AlignmentRecord]]:
    groups: dict[tuple[str, str], list[AlignmentRecord]] = defaultdict(list)
    for record in records:
        groups[record.scene, record.category].append(record)
    return dict(groups)


def _top_scoring(predictions: list[AlignmentRecord], n: int) -> list[AlignmentRecord]:
    """The n highest-scoring predictions in descending score order (a stable sort)."""
    return sorted(predictions, key=_score_of, reverse=True)[:n]


def _score_of(prediction: AlignmentRecord) -> float:
    if prediction.score is None:
        raise ValueError(f"predictions must have scores, got {prediction}")
    return prediction.score


def _count(matches: list[int | None]) -> int:
    return sum(m is not None for m in matches)


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)
