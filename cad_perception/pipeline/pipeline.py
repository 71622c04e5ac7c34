"""The Pipeline: RGB image + intrinsics -> list[Detection], over any engine backend.

Stages (timed, see `Pipeline.last_timings`): pre-process (fit the image to the engine input,
adjust K), engine (the network: detection, NOCs, Procrustes, embeddings), post-process (score
filter, boxes and masks back to the caller's image, quaternions), retrieval (nearest CAD
embeddings of each detection's category in the CAD database, under the model's encoder).
"""

import logging
import time
from pathlib import Path

import numpy as np
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.engine.backend import Backend
from cad_perception.engine.factory import create_backend
from cad_perception.engine.fixed_shape import check_score_threshold
from cad_perception.geometry.rotations import matrix_to_quaternion
from cad_perception.pipeline.defaults import default_model_dir, ensure_default_db
from cad_perception.pipeline.detection import Detection
from cad_perception.pipeline.preprocess import fit_image, paste_masks
from cad_perception.pipeline.retrieval import categories_with_cads, retrieve

logger = logging.getLogger(__name__)

STAGES = ("preprocess", "engine", "postprocess", "retrieval")
DEFAULT_SCORE_THRESHOLD = 0.5
"""Detections scoring below this are dropped unless the caller says otherwise."""


class PipelineError(ValueError):
    """The pipeline cannot be assembled from the given model and database."""


class Pipeline:
    """Callable: `pipeline(image (H, W, 3) uint8 RGB, K (3, 3)) -> list[Detection]`, highest
    score first."""

    def __init__(
        self,
        backend: Backend,
        db: CadDatabase,
        *,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        max_detections: int | None = None,
        top_k: int = 3,
    ):
        check_score_threshold(score_threshold)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if max_detections is not None and max_detections < 1:
            raise ValueError(f"max_detections must be >= 1 or None, got {max_detections}")
        if backend.score_threshold > score_threshold:
            raise PipelineError(
                f"the {backend.name} engine was built to drop detections scoring below "
                f"{backend.score_threshold:g}, above this pipeline's score_threshold "
                f"{score_threshold:g}; export it again with `--score-threshold "
                f"{score_threshold:g}` or give the checkpoint folder"
            )
        name, version = backend.encoder
        if not db.embedded_ids(backend.encoder):
            raise PipelineError(
                f"the CAD database {db.root} has no embeddings of this model's encoder "
                f"{name}@{version}; run `cad-perception db embed {db.root} --model MODEL_DIR`"
            )
        self.backend = backend
        self.db = db
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.top_k = top_k
        self.last_timings: dict[str, float] = {}
        """Milliseconds of each of STAGES in the last call."""
        self._searchable = categories_with_cads(db)
        self._extents: dict[str, np.ndarray] = {}

    @classmethod
    def from_dirs(
        cls,
        model_dir: str | Path | None = None,
        db_dir: str | Path | None = None,
        *,
        backend: str = "auto",
        device: str | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        **options: object,
    ) -> "Pipeline":
        """A Pipeline of the model in `model_dir` (default: the shipped model) on `backend`,
        retrieving from the CAD database `db_dir` (default: the default database, built on
        first use). A checkpoint's engine is built with `score_threshold`, so that its heads
        skip the detections the pipeline would discard (engine/fixed_shape.py). `options` go
        to the constructor."""
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if db_dir is None:
            db_dir = ensure_default_db(model_dir)
        check_score_threshold(score_threshold)  # before a model is loaded or exported
        engine = create_backend(model_dir, backend, device=device, score_threshold=score_threshold)
        db = CadDatabase.open(db_dir, readonly=True)
        logger.info(
            "pipeline: %s backend at %dx%d, CAD database %s (version %d)",
            engine.name,
            *engine.input_size,
            db.root,
            db.version,
        )
        return cls(engine, db, score_threshold=score_threshold, **options)  # type: ignore[arg-type]

    @property
    def categories(self) -> tuple[str, ...]:
        return self.backend.categories

    def __call__(self, image: np.ndarray, K: np.ndarray) -> list[Detection]:
        timings = {}
        start = time.perf_counter()
        engine_image, engine_K, fit = fit_image(image, K, self.backend.input_size)
        timings["preprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        out = self.backend(engine_image, engine_K)
        timings["engine"] = time.perf_counter() - start

        start = time.perf_counter()
        keep = np.flatnonzero((out.classes > 0) & (out.scores >= self.score_threshold))
        keep = keep[np.argsort(-out.scores[keep], kind="stable")][: self.max_detections]
        boxes = fit.boxes_to_image(out.boxes[keep])
        masks = paste_masks(out.masks[keep], boxes, fit.image_size)
        R = out.R[keep].astype(np.float64)
        quaternions = matrix_to_quaternion(torch.from_numpy(R)).numpy() if len(keep) else R
        timings["postprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        categories = [self.categories[int(c) - 1] for c in out.classes[keep]]
        matches = retrieve(
            self.db,
            self.backend.encoder,
            categories,
            out.embeddings[keep],
            self.top_k,
            self._searchable,
        )
        detections = []
        for row, index in enumerate(keep):
            s = out.s[index].astype(np.float64)
            cads = matches[row]
            extents = s * self._canonical_extents(cads[0].cad_id) if cads else s.copy()
            detections.append(
                Detection(
                    category=categories[row],
                    score=float(out.scores[index]),
                    box=boxes[row],
                    mask=masks[row],
                    R=R[row],
                    q=quaternions[row],
                    t=out.t[index].astype(np.float64),
                    s=s,
                    extents=extents,
                    alignment_valid=bool(out.valid[index]),
                    cads=cads,
                )
            )
        timings["retrieval"] = time.perf_counter() - start
        self.last_timings = {key: value * 1000.0 for key, value in timings.items()}
        return detections

    def _canonical_extents(self, cad_id: str) -> np.ndarray:
        """(3,) bounding-box extents of a CAD's canonical mesh (diagonal 1)."""
        if cad_id not in self._extents:
            samples = self.db.get(cad_id).samples
            self._extents[cad_id] = (samples.max(axis=0) - samples.min(axis=0)).astype(np.float64)
        return self._extents[cad_id]
