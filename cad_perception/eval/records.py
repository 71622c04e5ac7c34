"""Alignment records: one object's scene, category, CAD model, symmetry and 9-DoF pose.

A record is the JSON object

    {"scene": str, "category": str, "cad_id": str, "t": [x, y, z], "q": [w, x, y, z],
     "s": [sx, sy, sz], "sym": "none" | "rot2" | "rot4" | "inf", "score": number}

with the pose convention of DESIGN.md: X = R(q) (s * X_cad) + t, metres, all records of a scene
in one frame. "score" is required (finite) for predictions and optional for ground truth; "sym"
is the symmetry of the record's CAD model about its y axis. Unknown keys are ignored. A record
file holds a JSON list of records; indices in error messages are 0-based positions in that list.

Loading validates every field and normalises q to unit norm with w >= 0 (a zero quaternion is
rejected); scales must be positive.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from cad_perception.eval.errors import InvalidRecordError, RecordFileError
from cad_perception.geometry.pose import Pose9D
from cad_perception.geometry.rotations import SYMMETRIES, quaternion_to_matrix


@dataclass(frozen=True)
class AlignmentRecord:
    """One predicted or ground-truth object (see the module docstring for the fields)."""

    scene: str
    category: str
    cad_id: str
    t: tuple[float, float, float]
    """Translation, metres."""
    q: tuple[float, float, float, float]
    """Unit quaternion (w, x, y, z), w >= 0."""
    s: tuple[float, float, float]
    """Per-axis scale, positive."""
    sym: str
    """Symmetry of the CAD model about its y axis, one of SYMMETRIES."""
    score: float | None = None
    """Confidence; None only for ground truth."""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the inverse of parsing; "score" left out if None)."""
        data: dict[str, Any] = {
            "scene": self.scene,
            "category": self.category,
            "cad_id": self.cad_id,
            "t": list(self.t),
            "q": list(self.q),
            "s": list(self.s),
            "sym": self.sym,
        }
        if self.score is not None:
            data["score"] = self.score
        return data


def stack_poses(records: list[AlignmentRecord]) -> Pose9D:
    """The poses of N records as a float64 Pose9D: R (N, 3, 3), t (N, 3), s (N, 3)."""
    t = torch.tensor([r.t for r in records], dtype=torch.float64).reshape(-1, 3)
    q = torch.tensor([r.q for r in records], dtype=torch.float64).reshape(-1, 4)
    s = torch.tensor([r.s for r in records], dtype=torch.float64).reshape(-1, 3)
    return Pose9D(R=quaternion_to_matrix(q), t=t, s=s)


class _Kind(NamedTuple):
    singular: str
    plural: str
    score_required: bool


_PREDICTION = _Kind("prediction", "predictions", score_required=True)
_GROUND_TRUTH = _Kind("ground truth", "ground truth", score_required=False)


def parse_predictions(data: object) -> list[AlignmentRecord]:
    """Validate decoded JSON `data` as a list of prediction records (score required)."""
    return _parse_records(data, _PREDICTION)


def parse_ground_truth(data: object) -> list[AlignmentRecord]:
    """Validate decoded JSON `data` as a list of ground-truth records (score optional)."""
    return _parse_records(data, _GROUND_TRUTH)


def load_predictions(path: str | Path) -> list[AlignmentRecord]:
    """Read and validate a JSON file of prediction records."""
    return parse_predictions(_read_json(Path(path), _PREDICTION))


def load_ground_truth(path: str | Path) -> list[AlignmentRecord]:
    """Read and validate a JSON file of ground-truth records."""
    return parse_ground_truth(_read_json(Path(path), _GROUND_TRUTH))


def _read_json(path: Path, kind: _Kind) -> object:
    try:
        with path.open(encoding="utf-8") as file:
            return json.load(file)
    except OSError as err:
        reason = err.strerror or str(err)
        raise RecordFileError(f"cannot read {kind.plural} file '{path}': {reason}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordFileError(f"{kind.plural} file '{path}' is not valid JSON: {err}") from err


def _parse_records(data: object, kind: _Kind) -> list[AlignmentRecord]:
    if not isinstance(data, list):
        raise InvalidRecordError(
            f"{kind.plural} must be a JSON list of records, got {_json_type(data)}"
        )
    return [_parse_record(raw, index, kind) for index, raw in enumerate(data)]


def _parse_record(raw: object, index: int, kind: _Kind) -> AlignmentRecord:
    where = f"{kind.singular} {index}"
    if not isinstance(raw, dict):
        raise InvalidRecordError(
            f"{where}: must be a JSON object, got {_json_type(raw)}", index=index
        )

    def field(name: str) -> object:
        if name not in raw:
            raise InvalidRecordError(f"{where}: missing field {name!r}", index=index, field=name)
        return raw[name]

    def invalid(name: str, requirement: str) -> InvalidRecordError:
        return InvalidRecordError(
            f"{where}: field {name!r} must be {requirement}, got {_show(raw[name])}",
            index=index,
            field=name,
        )

    def string(name: str) -> str:
        value = field(name)
        if not isinstance(value, str) or not value:
            raise invalid(name, "a non-empty string")
        return value

    def numbers(name: str, n: int) -> tuple[float, ...]:
        value = field(name)
        if not isinstance(value, list) or len(value) != n or not all(map(_is_finite, value)):
            raise invalid(name, f"a list of {n} finite numbers")
        return tuple(float(v) for v in value)

    scene, category, cad_id = string("scene"), string("category"), string("cad_id")
    t = numbers("t", 3)
    q = numbers("q", 4)
    norm = math.sqrt(sum(v * v for v in q))
    if not norm > 1e-12:
        raise invalid("q", "a quaternion of non-zero norm")
    sign = -1.0 if q[0] < 0 else 1.0
    q = tuple(sign * v / norm for v in q)
    s = numbers("s", 3)
    if not all(v > 0 for v in s):
        raise invalid("s", "a list of 3 positive numbers")
    sym = field("sym")
    if sym not in SYMMETRIES:
        raise invalid("sym", f"one of {', '.join(SYMMETRIES)}")
    score = None
    if kind.score_required or "score" in raw:
        value = field("score")
        if not _is_finite(value):
            raise invalid("score", "a finite number")
        score = float(value)
    return AlignmentRecord(scene, category, cad_id, t, q, s, sym, score)


def _is_finite(value: object) -> bool:
    """Whether `value` is a JSON number (int or float, not bool) with a finite float value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _json_type(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "unknown")


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
