"""The ROCA network: Mask R-CNN + depth + alignment + retrieval heads, export-shaped.

`Roca(config=...)(images, K)` takes RGB images (B, 3, H, W) float32 in [0, 1] and their
intrinsics K (B, 3, 3), and in eval mode returns a flat `RocaOutput` of tensors; there is no
separate tracing path. In training mode, `Roca(...)(images, K, targets)` returns the weighted
loss dict (keys LOSS_KEYS, each already multiplied by config.loss_weights; the total loss is
their sum), with targets as documented in model/targets.py.

Stages: backbone + FPN -> depth head (depth, depth features); RPN -> RoI box branch; then on
the training RoIs (positive sampled proposals, labelled with their matched GT class) or the
final detections (predicted class): the mask head, the alignment head (fed the mask
probabilities, detached) and the retrieval head. In training, the retrieval losses see at most
RetrievalConfig.train_samples random RoIs per batch (as ROCA).
"""

import torch
from torch import nn

from cad_perception.geometry._checks import check_last_dims
from cad_perception.model import losses
from cad_perception.model.alignment_head import Alignment, AlignmentHead
from cad_perception.model.backbone import build_backbone, normalize_images
from cad_perception.model.config import RocaConfig
from cad_perception.model.depth_head import DepthHead, DepthPrediction
from cad_perception.model.detector import Detector, Rois
from cad_perception.model.outputs import RocaOutput
from cad_perception.model.retrieval_head import RetrievalHead
from cad_perception.model.targets import check_targets, roi_targets

LOSS_KEYS = (
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
    "loss_depth",
    "loss_noc",
    "loss_scale",
    "loss_translation_init",
    "loss_translation",
    "loss_rotation",
    "loss_triplet",
    "loss_completion",
)
"""Keys of the training loss dict."""


class Roca(nn.Module):
    """The whole network (see the module docstring)."""

    def __init__(self, *, config: RocaConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config=config.backbone)
        channels = self.backbone.out_channels
        self.depth_head = DepthHead(config=config.depth, in_channels=channels)
        self.detector = Detector(
            config=config.detector,
            in_channels=channels,
            num_classes=config.num_classes,
            roi_size=config.roi_size,
        )
        self.alignment_head = AlignmentHead(
            config=config.alignment,
            feature_channels=self.depth_head.out_channels,
            num_classes=config.num_classes,
            roi_size=config.roi_size,
        )
        self.retrieval_head = RetrievalHead(
            config=config.retrieval, shape_code_dim=config.alignment.shape_code_dim
        )

    def forward(
        self,
        images: torch.Tensor,
        K: torch.Tensor,
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> RocaOutput | dict[str, torch.Tensor]:
        """Eval mode: RocaOutput. Training mode: the weighted loss dict (targets required)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        check_last_dims("K", K, (3, 3))
        if K.shape[0] != images.shape[0] or K.dim() != 3:
            raise ValueError(f"K must have shape ({images.shape[0]}, 3, 3), got {tuple(K.shape)}")
        image_size = (images.shape[-2], images.shape[-1])
        features = self.backbone(normalize_images(images))
        focal = (K[:, 0, 0] + K[:, 1, 1]) / 2
        depth = self.depth_head(features, image_size, focal)
        if self.training:
            if targets is None:
                raise ValueError("training mode needs targets")
            check_targets(targets, images.shape[0], image_size)
            return self._losses(images, K, features, depth, targets)
        return self._predict(images, K, features, depth)

    def embed_cads(self, grids: torch.Tensor) -> torch.Tensor:
        """CAD occupancy grids (M, 32, 32, 32) bool -> unit embeddings (M, D)."""
        return self.retrieval_head.embed_cads(grids)

    def _align(
        self,
        K: torch.Tensor,
        features: dict[str, torch.Tensor],
        depth: DepthPrediction,
        rois: Rois,
        image_size: tuple[int, int],
    ) -> tuple[torch.Tensor, Alignment]:
        """Mask logits (N, 1, S, S) and the alignment of RoIs."""
        mask_logits = self.detector.mask_logits(features, rois, image_size)
        alignment = self.alignment_head(
            depth.features,
            depth.depth,
            K,
            rois.boxes,
            rois.batch_index,
            rois.labels,
            torch.sigmoid(mask_logits).detach(),
        )
        return mask_logits, alignment

    def _predict(
        self,
        images: torch.Tensor,
        K: torch.Tensor,
        features: dict[str, torch.Tensor],
        depth: DepthPrediction,
    ) -> RocaOutput:
        image_size = (images.shape[-2], images.shape[-1])
        proposals, _ = self.detector.propose(images, features)
        detections = self.detector.detect(features, proposals, image_size)
        mask_logits, alignment = self._align(K, features, depth, detections, image_size)
        retrieval = self.retrieval_head(alignment.noc, alignment.mask, alignment.shape_code)
        return RocaOutput(
            boxes=detections.boxes,
            scores=detections.scores,
            classes=detections.labels,
            batch_index=detections.batch_index,
            masks=torch.sigmoid(mask_logits),
            R=alignment.R,
            t=alignment.t,
            s=alignment.s,
            alignment_valid=alignment.valid,
            noc=alignment.noc,
            embeddings=retrieval.embedding,
            depth=depth.depth,
        )

    def _losses(
        self,
        images: torch.Tensor,
        K: torch.Tensor,
        features: dict[str, torch.Tensor],
        depth: DepthPrediction,
        targets: list[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        image_size = (images.shape[-2], images.shape[-1])
        proposals, result = self.detector.propose(images, features, targets)
        sampled = self.detector.sample(proposals, targets)
        result |= self.detector.box_losses(features, sampled, image_size)
        rois = self.detector.positives(sampled)
        gt = roi_targets(
            targets, rois.boxes, rois.batch_index, rois.matched_gt, self.config.roi_size
        )
        mask_logits, alignment = self._align(K, features, depth, rois, image_size)
        gt_depth = torch.stack([t["depth"] for t in targets]).to(depth.depth.dtype)
        result |= {
            "loss_mask": losses.mask_loss(mask_logits, gt.mask),
            "loss_depth": losses.depth_loss(depth.depth, gt_depth),
            "loss_noc": losses.noc_loss(alignment.noc, gt.noc, gt.noc_valid),
            "loss_scale": losses.scale_loss(alignment.s, gt.s),
            "loss_translation_init": losses.translation_loss(alignment.t_init, gt.t),
            "loss_translation": losses.translation_loss(
                alignment.t[alignment.valid], gt.t[alignment.valid]
            ),
            "loss_rotation": losses.rotation_loss(alignment.R, gt.R, gt.symmetry, alignment.valid),
        }

        sample = torch.randperm(len(rois.boxes), device=images.device)
        sample = sample[: self.config.retrieval.train_samples]
        retrieval = self.retrieval_head(
            alignment.noc[sample], alignment.mask[sample], alignment.shape_code[sample]
        )
        cads = self.retrieval_head.embed_cads(
            torch.cat((gt.cad_voxels[sample], gt.negative_voxels[sample]))
        )
        positive, negative = cads[: len(sample)], cads[len(sample) :]
        result["loss_triplet"] = losses.triplet_loss(
            retrieval.embedding, positive, negative, self.config.retrieval.margin
        )
        result["loss_completion"] = losses.completion_loss(
            self.retrieval_head.complete(retrieval.features), gt.cad_voxels[sample]
        )
        weights = self.config.loss_weights
        return {key: result[key] * weights.of(key) for key in LOSS_KEYS}
