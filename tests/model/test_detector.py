"""Detector stages: proposals, sampling of positives, box losses, detections, class masks."""

import torch
from torchvision.ops import box_iou

from cad_perception.model.backbone import PYRAMID_LEVELS
from cad_perception.model.config import DetectorConfig
from cad_perception.model.detector import Detector

H, W = 120, 160
CHANNELS = 16
SIZE = 16


def make_detector(**overrides) -> Detector:
    torch.manual_seed(0)
    config = DetectorConfig(box_head_dim=32, mask_head_channels=(16,), **overrides)
    return Detector(config=config, in_channels=CHANNELS, num_classes=9, roi_size=SIZE)


def pyramid(batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    levels = {
        name: torch.randn(batch, CHANNELS, -(-H // 4 // 2**i), -(-W // 4 // 2**i), generator=g)
        for i, name in enumerate(PYRAMID_LEVELS)
    }
    levels["pool"] = torch.randn(batch, CHANNELS, 2, 3, generator=g)
    return levels


TARGETS = [
    {"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0], [80.0, 10.0, 150.0, 60.0]]),
     "labels": torch.tensor([3, 7]), "masks": torch.zeros(2, H, W, dtype=torch.bool)},
    {"boxes": torch.tensor([[30.0, 30.0, 100.0, 110.0]]),
     "labels": torch.tensor([9]), "masks": torch.zeros(1, H, W, dtype=torch.bool)},
]  # fmt: skip


def test_training_proposals_losses_and_positives():
    detector = make_detector(rpn_post_nms_top_n_train=50, box_batch_size_per_image=32)
    images = torch.zeros(2, 3, H, W)
    proposals, rpn_losses = detector.propose(images, pyramid(), TARGETS)
    assert set(rpn_losses) == {"loss_objectness", "loss_rpn_box_reg"}
    assert all(len(p) <= 50 for p in proposals)
    sampled = detector.sample(proposals, TARGETS)
    assert all(len(p) <= 32 for p in sampled.proposals)
    box_losses = detector.box_losses(pyramid(), sampled, (H, W))
    assert set(box_losses) == {"loss_classifier", "loss_box_reg"}
    assert all(torch.isfinite(loss) for loss in box_losses.values())

    rois = detector.positives(sampled)
    assert len(rois.boxes) == sum(len(b) for b in rois.boxes_per_image) >= 3  # GT boxes added
    for b, boxes in enumerate(rois.boxes_per_image):
        torch.testing.assert_close(rois.boxes[rois.batch_index == b], boxes)
    for box, b, label, matched in zip(
        rois.boxes, rois.batch_index, rois.labels, rois.matched_gt, strict=True
    ):
        gt_box = TARGETS[b]["boxes"][matched]
        assert box_iou(box[None], gt_box[None]).item() >= 0.5
        assert label == TARGETS[b]["labels"][matched]
    for b, target in enumerate(TARGETS):  # every GT box is itself a positive RoI
        own = rois.boxes_per_image[b]
        assert (box_iou(target["boxes"], own) > 0.999).any(dim=1).all()


def test_detections_are_flat_capped_and_inside_the_image():
    detector = make_detector(score_threshold=0.0, detections_per_image=7).eval()
    features = pyramid()
    with torch.no_grad():
        proposals, losses = detector.propose(torch.zeros(2, 3, H, W), features)
        rois = detector.detect(features, proposals, (H, W))
    assert losses == {}
    assert [len(b) for b in rois.boxes_per_image] == [7, 7]
    assert rois.batch_index.tolist() == [0] * 7 + [1] * 7
    assert ((rois.labels >= 1) & (rois.labels <= 9)).all()
    assert (rois.boxes[:, 0::2] >= 0).all() and (rois.boxes[:, 0::2] <= W).all()
    assert (rois.boxes[:, 1::2] >= 0).all() and (rois.boxes[:, 1::2] <= H).all()
    assert rois.scores.shape == (14,) and rois.matched_gt.shape == (14,)


def test_mask_logits_are_the_labelled_class_channel():
    detector = make_detector(score_threshold=0.0, detections_per_image=4).eval()
    features = pyramid()
    with torch.no_grad():
        proposals, _ = detector.propose(torch.zeros(2, 3, H, W), features)
        rois = detector.detect(features, proposals, (H, W))
        logits = detector.mask_logits(features, rois, (H, W))
        heads = detector.roi_heads
        pooled = heads.mask_roi_pool(features, rois.boxes_per_image, [(H, W)] * 2)
        every_class = heads.mask_predictor(heads.mask_head(pooled))  # (N, 10, S, S)
    assert logits.shape == (8, 1, SIZE, SIZE)
    torch.testing.assert_close(logits[:, 0], every_class[torch.arange(8), rois.labels])
