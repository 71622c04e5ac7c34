"""The JSON sidecar of an exported engine folder: what the ONNX graph was made from and takes.

An exported folder holds

    model.onnx    the graph (engine/export.py)
    model.json    {"format": 1, "input_size": [H, W], "categories": [...], "encoder": [name,
                  version], "opset": 17, "max_detections": D, "roi_size": S,
                  "embedding_dim": E, "checkpoint_sha256": "...", "precision": "fp32",
                  "score_threshold": 0.05}

"precision" is "fp32" (engine/export.py) or "int8" (engine/quantize.py); sidecars written
before it existed are fp32. "score_threshold" is the lowest detection score the graph keeps
(detections below it never reach the mask, alignment and retrieval heads); sidecars written
before it existed were exported at the model's own 0.05.

Reading validates every field and raises EngineError naming the file and what is wrong.
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cad_perception.engine.errors import EngineError

ONNX_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
SIDECAR_FORMAT = 1
PRECISIONS = ("fp32", "int8")
LEGACY_SCORE_THRESHOLD = 0.05
"""The score threshold of exports whose sidecar does not record one (the model default)."""


@dataclass(frozen=True, kw_only=True)
class EngineInfo:
    """The sidecar's contents (see the module docstring)."""

    input_size: tuple[int, int]
    """(H, W) of the graph's image input."""
    categories: tuple[str, ...]
    encoder: tuple[str, str]
    """model.checkpoint.cad_encoder_key of the source checkpoint."""
    opset: int
    max_detections: int
    """D, the rows of every output."""
    roi_size: int
    """S, the side of the masks."""
    embedding_dim: int
    """E, the length of the embeddings."""
    checkpoint_sha256: str
    """sha256 of the source checkpoint's model.safetensors + config.json (checkpoint_sha256)."""
    precision: str = "fp32"
    """One of PRECISIONS: the arithmetic of the graph's heavy layers."""
    score_threshold: float = LEGACY_SCORE_THRESHOLD
    """Lowest score of the detections the graph outputs (in [0, 1])."""


def write_sidecar(directory: Path, info: EngineInfo) -> Path:
    """Write directory/model.json (atomically: a complete sidecar marks a complete export)."""
    data = {"format": SIDECAR_FORMAT, **asdict(info)}
    path = directory / SIDECAR_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def read_sidecar(directory: Path) -> EngineInfo:
    """The EngineInfo of an exported folder; EngineError if model.json is missing or invalid."""
    path = directory / SIDECAR_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise EngineError(
            f"{path}: no such file; export the model first (cad-perception export)"
        ) from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EngineError(f"{path}: cannot read JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise EngineError(
            f"{path}: not an engine sidecar of format {SIDECAR_FORMAT} (found {found!r}); "
            "re-export the model with this version"
        )
    try:
        return EngineInfo(
            input_size=_positive_ints(data, "input_size", 2),
            categories=_strings(data, "categories"),
            encoder=_strings(data, "encoder", 2),
            opset=_positive_ints(data, "opset")[0],
            max_detections=_positive_ints(data, "max_detections")[0],
            roi_size=_positive_ints(data, "roi_size")[0],
            embedding_dim=_positive_ints(data, "embedding_dim")[0],
            checkpoint_sha256=_string(data, "checkpoint_sha256"),
            precision=_precision(data),
            score_threshold=_score_threshold(data),
        )
    except ValueError as err:
        raise EngineError(f"{path}: {err}; re-export the model") from err


def read_engine_folder(directory: str | Path, input_size: tuple[int, int] | None) -> EngineInfo:
    """The sidecar of an exported folder holding model.onnx, checked against the wanted input
    size (H, W) when given; EngineError naming the file and the fix otherwise."""
    directory = Path(directory)
    if not (directory / ONNX_FILE).is_file():
        raise EngineError(
            f"{directory / ONNX_FILE}: no such file; export the model first (cad-perception export)"
        )
    info = read_sidecar(directory)
    if input_size is not None and tuple(input_size) != info.input_size:
        exported, wanted = info.input_size, tuple(input_size)
        raise EngineError(
            f"{directory}: exported for {exported[0]}x{exported[1]} images, asked for "
            f"{wanted[0]}x{wanted[1]}; re-export with --size {wanted[0]}x{wanted[1]}"
        )
    return info


def _positive_ints(data: dict[str, Any], name: str, count: int | None = None) -> tuple[int, ...]:
    """data[name] as a tuple: one positive int (count None) or a list of `count` of them."""
    value = data.get(name)
    values = [value] if count is None else value
    if (
        not isinstance(values, list)
        or len(values) != (count or 1)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    ):
        expected = "a positive integer" if count is None else f"{count} positive integers"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return tuple(values)


def _strings(data: dict[str, Any], name: str, count: int | None = None) -> tuple[str, ...]:
    """data[name], a list of non-empty strings (`count` of them when given), as a tuple."""
    value = data.get(name)
    if (
        not isinstance(value, list)
        or not value
        or (count is not None and len(value) != count)
        or not all(isinstance(v, str) and v for v in value)
    ):
        expected = f"{count} non-empty strings" if count else "a list of non-empty strings"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return tuple(value)


def _precision(data: dict[str, Any]) -> str:
    """data["precision"], one of PRECISIONS ("fp32" when absent)."""
    value = data.get("precision", "fp32")
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {value!r}")
    return value


def _score_threshold(data: dict[str, Any]) -> float:
    """data["score_threshold"], a number in [0, 1] (LEGACY_SCORE_THRESHOLD when absent)."""
    value = data.get("score_threshold", LEGACY_SCORE_THRESHOLD)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"score_threshold must be a number in [0, 1], got {value!r}")
    return float(value)


def _string(data: dict[str, Any], name: str) -> str:
    """data[name], a non-empty string."""
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value
