"""Mask R-CNN's detection stages from torchvision, driven one step at a time.

torchvision's RegionProposalNetwork, its RoIHeads (box sampling, box head, box losses, box
post-processing) and its mask head are used as they are; only their orchestration is ours, so
that the ROCA heads can run on the same RoIs: in training the positive sampled proposals with
their matched ground truth, at inference the final detections. Boxes are (x0, y0, x1, y1) in
input pixels (pixel-edge coordinates); class labels are 1..num_classes, 0 the background.

The mask head predicts on S x S RoI grids (the mask RoI pooler yields S/2 x S/2 features that
its transposed convolution doubles); the mask loss (losses.mask_loss) resamples the GT masks on
the alignment head's RoI grid (alignment_head.roi_resample), so both heads share one grid.
torchvision's multi-scale RoIAlign (as model/roi_pool.py, which exports without 4-D scatters)
feeds the box and mask heads with roi_align(aligned=False), whose fixed half-cell offset the
heads learn; the mask targets define where the mask lies.
"""

from typing import NamedTuple

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead

from cad_perception.model.alignment_head import select_category
from cad_perception.model.backbone import PYRAMID_LEVELS
from cad_perception.model.config import DetectorConfig
from cad_perception.model.roi_pool import GatherMultiScaleRoIAlign

BOX_POOL_SIZE = 7
"""Side of the pooled features of the box head (torchvision's value)."""

# torchvision's (and detectron2's) defaults for proposal NMS and IoU matching.
RPN_NMS_THRESHOLD = 0.7
RPN_FG_IOU = 0.7
RPN_BG_IOU = 0.3
BOX_FG_IOU = 0.5
BOX_BG_IOU = 0.5


class SampledRois(NamedTuple):
    """Training RoIs per image: the proposals sampled for the box head and their targets."""

    proposals: list[torch.Tensor]
    """(R_b, 4) boxes of image b."""
    matched_gt: list[torch.Tensor]
    """(R_b,) int64 index of the matched GT object within image b (0 for background)."""
    labels: list[torch.Tensor]
    """(R_b,) int64 class of the matched GT object, 0 for background."""
    regression_targets: list[torch.Tensor]
    """(R_b, 4) encoded box offsets."""


class Rois(NamedTuple):
    """N RoIs of a batch: grouped per image (for torchvision's poolers) and flat."""

    boxes_per_image: list[torch.Tensor]
    """(N_b, 4) boxes of image b; concatenated in image order they give `boxes`."""
    boxes: torch.Tensor
    """(N, 4)."""
    batch_index: torch.Tensor
    """(N,) int64 image of each RoI."""
    labels: torch.Tensor
    """(N,) int64 class, 1..num_classes."""
    scores: torch.Tensor
    """(N,) detection score (1 for training RoIs)."""
    matched_gt: torch.Tensor
    """(N,) int64 index of the matched GT object within its image (0 at inference)."""


def _flatten(per_image: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image tensors (N_b, C, ...) -> their concatenation (N, C, ...) and image index (N,)."""
    # zeros_like keeps N symbolic when traced for ONNX (torch.full would freeze it)
    indices = [torch.zeros_like(t[:, 0], dtype=torch.int64) + b for b, t in enumerate(per_image)]
    return torch.cat(per_image), torch.cat(indices)


class Detector(nn.Module):
    """RPN + RoI box and mask branches over the pyramid levels (see the module docstring)."""

    def __init__(
        self, *, config: DetectorConfig, in_channels: int, num_classes: int, roi_size: int
    ):
        super().__init__()
        anchors = AnchorGenerator(
            sizes=tuple((size,) for size in config.anchor_sizes),
            aspect_ratios=(config.aspect_ratios,) * len(config.anchor_sizes),
        )
        self.rpn = RegionProposalNetwork(
            anchors,
            RPNHead(in_channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=RPN_FG_IOU,
            bg_iou_thresh=RPN_BG_IOU,
            batch_size_per_image=config.rpn_batch_size_per_image,
            positive_fraction=0.5,
            pre_nms_top_n={
                "training": config.rpn_pre_nms_top_n_train,
                "testing": config.rpn_pre_nms_top_n_test,
            },
            post_nms_top_n={
                "training": config.rpn_post_nms_top_n_train,
                "testing": config.rpn_post_nms_top_n_test,
            },
            nms_thresh=RPN_NMS_THRESHOLD,
        )
        mask_channels = config.mask_head_channels
        self.roi_heads = RoIHeads(
            box_roi_pool=GatherMultiScaleRoIAlign(list(PYRAMID_LEVELS), BOX_POOL_SIZE, 2),
            box_head=TwoMLPHead(in_channels * BOX_POOL_SIZE**2, config.box_head_dim),
            box_predictor=FastRCNNPredictor(config.box_head_dim, num_classes + 1),
            fg_iou_thresh=BOX_FG_IOU,
            bg_iou_thresh=BOX_BG_IOU,
            batch_size_per_image=config.box_batch_size_per_image,
            positive_fraction=config.box_positive_fraction,
            bbox_reg_weights=None,
            score_thresh=config.score_threshold,
            nms_thresh=config.nms_threshold,
            detections_per_img=config.detections_per_image,
            mask_roi_pool=GatherMultiScaleRoIAlign(list(PYRAMID_LEVELS), roi_size // 2, 2),
            mask_head=MaskRCNNHeads(in_channels, list(mask_channels), dilation=1),
            mask_predictor=MaskRCNNPredictor(mask_channels[-1], mask_channels[-1], num_classes + 1),
        )

    def propose(
        self,
        images: torch.Tensor,
        features: dict[str, torch.Tensor],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals (P_b, 4) per image and, with targets (training), the RPN losses
        loss_objectness and loss_rpn_box_reg. images (B, 3, H, W) only give the size."""
        image_list = ImageList(images, [tuple(images.shape[-2:])] * images.shape[0])
        return self.rpn(image_list, features, targets)

    def sample(
        self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> SampledRois:
        """torchvision's proposal sampling (GT boxes added, matched, subsampled per image)."""
        return SampledRois(*self.roi_heads.select_training_samples(proposals, targets))

    def box_losses(
        self, features: dict[str, torch.Tensor], sampled: SampledRois, image_size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """loss_classifier and loss_box_reg of the sampled RoIs."""
        class_logits, box_regression = self._box_outputs(features, sampled.proposals, image_size)
        classifier, box_reg = fastrcnn_loss(
            class_logits, box_regression, sampled.labels, sampled.regression_targets
        )
        return {"loss_classifier": classifier, "loss_box_reg": box_reg}

    def positives(self, sampled: SampledRois) -> Rois:
        """The sampled RoIs matched to an object (label > 0), with their GT indices."""
        keep = [labels > 0 for labels in sampled.labels]
        boxes_per_image = [p[k] for p, k in zip(sampled.proposals, keep, strict=True)]
        boxes, batch_index = _flatten(boxes_per_image)
        labels = torch.cat([lab[k] for lab, k in zip(sampled.labels, keep, strict=True)])
        matched = torch.cat([m[k] for m, k in zip(sampled.matched_gt, keep, strict=True)])
        scores = torch.ones_like(labels, dtype=boxes.dtype)
        return Rois(boxes_per_image, boxes, batch_index, labels, scores, matched)

    def detect(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_size: tuple[int, int],
    ) -> Rois:
        """Final detections: box regression, score threshold, per-class NMS, top-k per image."""
        class_logits, box_regression = self._box_outputs(features, proposals, image_size)
        boxes, scores, labels = self.roi_heads.postprocess_detections(
            class_logits, box_regression, proposals, [image_size] * len(proposals)
        )
        flat_boxes, batch_index = _flatten(boxes)
        flat_labels = torch.cat(labels)
        no_gt = torch.zeros_like(flat_labels)
        return Rois(boxes, flat_boxes, batch_index, flat_labels, torch.cat(scores), no_gt)

    def mask_logits(
        self, features: dict[str, torch.Tensor], rois: Rois, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """Mask logits (N, 1, S, S) of each RoI's class on its S x S RoI grid."""
        pooled = self.roi_heads.mask_roi_pool(
            features, rois.boxes_per_image, [image_size] * len(rois.boxes_per_image)
        )
        logits = self.roi_heads.mask_predictor(self.roi_heads.mask_head(pooled))
        return select_category(logits[:, 1:], rois.labels)[:, None]

    def _box_outputs(
        self,
        features: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_size: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (R, C + 1) and box regression (R, 4 (C + 1)) of boxes per image."""
        pooled = self.roi_heads.box_roi_pool(features, boxes, [image_size] * len(boxes))
        return self.roi_heads.box_predictor(self.roi_heads.box_head(pooled))
