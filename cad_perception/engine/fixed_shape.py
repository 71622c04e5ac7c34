"""The network with fixed-shape inputs and outputs: what the torch backend runs and what is
exported to ONNX, so that both compute the same thing by construction.

`FixedShapeRoca(model)(image (1, 3, H, W), K (1, 3, 3))` returns the fields of EngineOutput
(engine/output.py) as tensors in OUTPUT_NAMES order, each padded from the N <= D detections to
D = config.detector.detections_per_image rows. Padding appends D rows of fill values (zeros,
identity rotations) and keeps the first D, a concatenation and a constant slice that the ONNX
exporter writes with fixed output shapes whatever N turns out to be.

The detector keeps detections scoring above its score threshold (the model config's 0.05
unless `score_threshold` is given). The mask, alignment and retrieval heads then run on those
N rows only, so a deployment that discards low scores anyway runs faster with its own
threshold built in (several milliseconds per skipped detection on a 2-core CPU). The
detections above the threshold are the same either way, because the score filter precedes
the per-class NMS and the top-D cut, both of which only ever compare a detection with
higher-scoring ones.
"""

import torch
from torch import nn

from cad_perception.model.outputs import RocaOutput
from cad_perception.model.roca import Roca


def pad_rows(rows: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """rows (N, ...) with N <= D and fill (D, ...) -> (D, ...): rows, then fill's last rows.

    The final reshape to fill's (constant) shape gives the exported output a static shape.
    """
    return torch.cat((rows, fill.to(rows.dtype)))[: fill.shape[0]].reshape(fill.shape)


def check_score_threshold(score_threshold: float) -> float:
    """score_threshold as a float; ValueError unless it lies in [0, 1] (NaN does not)."""
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must lie in [0, 1], got {score_threshold}")
    return float(score_threshold)


class FixedShapeRoca(nn.Module):
    """A Roca in eval mode behind fixed shapes (see the module docstring)."""

    def __init__(self, model: Roca, *, score_threshold: float | None = None):
        """model: owned from now on (put in eval mode; score_threshold, when given, replaces
        the detector's own, see the module docstring)."""
        super().__init__()
        if score_threshold is not None:
            model.detector.roi_heads.score_thresh = check_score_threshold(score_threshold)
        self.model = model
        self.score_threshold = float(model.detector.roi_heads.score_thresh)
        self.eval()  # also the wrapper: exporting restores the wrapper's mode on the whole tree
        config = model.config
        self.max_detections = config.detector.detections_per_image
        self.roi_size = config.roi_size
        self.embedding_dim = config.retrieval.embedding_dim

    def forward(self, image: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image (1, 3, H, W) float32 in [0, 1], K (1, 3, 3) -> boxes (D, 4), scores (D,),
        classes (D,) int64, masks (D, S, S), R (D, 3, 3), t (D, 3), s (D, 3), valid (D,) bool,
        embeddings (D, E)."""
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"image must have shape (1, 3, H, W), got {tuple(image.shape)}")
        if K.shape != (1, 3, 3):
            raise ValueError(f"K must have shape (1, 3, 3), got {tuple(K.shape)}")
        output: RocaOutput = self.model(image, K)
        D, S, E = self.max_detections, self.roi_size, self.embedding_dim
        zeros = image.new_zeros
        identities = torch.eye(3, dtype=image.dtype, device=image.device).expand(D, 3, 3)
        return (
            pad_rows(output.boxes, zeros(D, 4)),
            pad_rows(output.scores, zeros(D)),
            pad_rows(output.classes, zeros(D)),
            pad_rows(output.masks[:, 0], zeros(D, S, S)),
            pad_rows(output.R, identities),
            pad_rows(output.t, zeros(D, 3)),
            pad_rows(output.s, zeros(D, 3)),
            pad_rows(output.alignment_valid, zeros(D)),
            pad_rows(output.embeddings, zeros(D, E)),
        )
