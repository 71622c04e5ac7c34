"""The network's configuration: frozen, keyword-only dataclasses passed into constructors.

Every module takes its own section (`config=...`) plus the few sizes it shares with its
neighbours as keyword arguments from `Roca`; no constructor reads a global. Fields hold plain
JSON types (str, int, float, tuples), so a configuration serialises with `dataclasses.asdict`.
The defaults are a CPU-sized ROCA (ResNet-18 + a 128-channel FPN at 240 x 320); ROCA's own
values are noted where they differ.
"""

from dataclasses import dataclass, field

import numpy as np

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.procedural import CATEGORY_SIZES

BACKBONES = ("resnet18", "resnet34", "resnet50")
"""The selectable torchvision ResNets."""

NORMS = ("group", "batch", "frozen_batch")
"""Normalisation layers of the ResNet: GroupNorm(32) trains from scratch with small batches;
frozen_batch matches torchvision's pretrained detection checkpoints."""


def _category_mean_scales(categories: tuple[str, ...]) -> tuple[tuple[float, float, float], ...]:
    """Per-axis scale (3,) of the average model of each category, for CATEGORY_SIZES' ranges.

    A canonical model has a bounding-box diagonal of 1, so a uniformly scaled model of metric
    extents e has s = |e| on every axis; categories without a range get 1 m.
    """
    scales = []
    for category in categories:
        diagonal = 1.0
        if category in CATEGORY_SIZES:
            low, high = CATEGORY_SIZES[category]
            diagonal = float(np.linalg.norm((np.asarray(low) + np.asarray(high)) / 2))
        scales.append((diagonal, diagonal, diagonal))
    return tuple(scales)


@dataclass(frozen=True, kw_only=True)
class BackboneConfig:
    """ResNet + feature pyramid (P2-P5 and a max-pooled P6), randomly initialised."""

    name: str = "resnet18"
    """One of BACKBONES (ROCA: resnet50)."""
    fpn_channels: int = 128
    """Channels of every pyramid level (ROCA / torchvision: 256)."""
    norm: str = "group"
    """One of NORMS."""

    def __post_init__(self) -> None:
        if self.name not in BACKBONES:
            raise ValueError(f"backbone name must be one of {BACKBONES}, got {self.name!r}")
        if self.norm not in NORMS:
            raise ValueError(f"backbone norm must be one of {NORMS}, got {self.norm!r}")
        _check_positive(fpn_channels=self.fpn_channels)


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """torchvision's RPN and RoI box / mask branches."""

    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)
    """Anchor side in pixels on P2, P3, P4, P5, P6 (for 240 x 320 images)."""
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_train: int = 500
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_test: int = 250
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 128
    """Sampled RoIs per training image (ROCA: 128)."""
    box_positive_fraction: float = 0.25
    box_head_dim: int = 512
    """Width of the two fully connected layers of the box head (torchvision: 1024)."""
    mask_head_channels: tuple[int, ...] = (128, 128)
    """Output channels of the 3 x 3 convolutions of the mask head (torchvision: 4 x 256)."""
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    """Per-class box NMS at inference (ROCA: 0.5)."""
    detections_per_image: int = 20

    def __post_init__(self) -> None:
        if len(self.anchor_sizes) != 5:
            raise ValueError(
                f"anchor_sizes needs one size per level P2-P6, got {self.anchor_sizes}"
            )
        if not self.mask_head_channels:
            raise ValueError("mask_head_channels must name at least one layer")
        _check_positive(
            box_head_dim=self.box_head_dim,
            detections_per_image=self.detections_per_image,
            box_batch_size_per_image=self.box_batch_size_per_image,
            rpn_batch_size_per_image=self.rpn_batch_size_per_image,
        )


@dataclass(frozen=True, kw_only=True)
class DepthConfig:
    """Depth head: fused pyramid levels at P2 (stride 4), pixel-shuffled to the input size."""

    level_channels: int = 32
    """Channels each pyramid level is reduced to before fusion (ROCA: 32)."""
    feature_channels: int = 64
    """Channels of the depth features handed to the alignment head."""
    initial_depth: float = 2.5
    """Depth in metres that the untrained head predicts everywhere."""
    canonical_focal: float | None = None
    """When set, the head predicts depth as seen by a camera of this focal length (pixels of
    the network input) and rescales it to the image's own: depth * f / canonical_focal, with
    f the mean of K's fx and fy. An object's image size says its depth only together with the
    focal length, so this lets one network serve cameras of different fields of view. None:
    depth as predicted (what checkpoints from before this field was added do)."""

    def __post_init__(self) -> None:
        _check_positive(
            level_channels=self.level_channels,
            feature_channels=self.feature_channels,
            initial_depth=self.initial_depth,
        )
        if self.canonical_focal is not None:
            _check_positive(canonical_focal=self.canonical_focal)


@dataclass(frozen=True, kw_only=True)
class AlignmentConfig:
    """Per-detection shape code, scale, translation, NOCs and Procrustes weights."""

    hidden_channels: int = 128
    """Width of the per-pixel (1 x 1 convolution) and per-detection MLPs."""
    shape_code_dim: int = 256
    """Length of the shape code (ROCA: 512)."""
    mask_threshold: float = 0.5
    """Mask probability above which a RoI pixel belongs to the object (ROCA: 0.5 in training,
    0.7 at test)."""
    min_mask_pixels: int = 16
    """Fewest object pixels of a RoI for a Procrustes solve (ROCA: 16)."""
    category_scales: tuple[tuple[float, float, float], ...] = field(
        default_factory=lambda: _category_mean_scales(CATEGORIES)
    )
    """Mean per-axis scale (3,) of each category, in RocaConfig.categories order; the scale
    head predicts the log ratio to it."""

    def __post_init__(self) -> None:
        _check_positive(
            hidden_channels=self.hidden_channels,
            shape_code_dim=self.shape_code_dim,
            min_mask_pixels=self.min_mask_pixels,
        )
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must lie in (0, 1), got {self.mask_threshold}")
        for scale in self.category_scales:
            if len(scale) != 3 or min(scale) <= 0:
                raise ValueError(f"category_scales must hold positive triples, got {scale}")


@dataclass(frozen=True, kw_only=True)
class RetrievalConfig:
    """NOC voxel embedding, CAD voxel encoder and proxy completion decoder."""

    embedding_dim: int = 256
    voxel_channels: tuple[int, ...] = (16, 32, 64, 128)
    """Channels after each stride-2 3D convolution of the encoders, 32^3 -> 2^3 (decoder mirrored).
    ROCA: a residual 3D CNN with (8, 16, 32, 64) and a 7^3 stem."""
    code_hidden_dim: int = 512
    """Hidden width of the shape-code MLP (ROCA: 1024)."""
    margin: float = 0.5
    """Triplet margin between unit embeddings (ROCA: 0.5)."""
    train_samples: int = 32
    """Most detections per training batch that the retrieval losses see (ROCA: 32)."""

    def __post_init__(self) -> None:
        if len(self.voxel_channels) != 4:
            raise ValueError(
                f"voxel_channels needs 4 stages (32^3 -> 2^3), got {self.voxel_channels}"
            )
        _check_positive(
            embedding_dim=self.embedding_dim,
            code_hidden_dim=self.code_hidden_dim,
            margin=self.margin,
            train_samples=self.train_samples,
        )


@dataclass(frozen=True, kw_only=True)
class LossWeights:
    """Factor of each training loss; the field names are the loss keys without 'loss_'.

    ROCA's values: NOC 3, rotation 2, all others 1 (its translation losses are Euclidean
    distances like ours; its scale loss is L1 in metres where ours is L1 in log scale).
    """

    objectness: float = 1.0
    rpn_box_reg: float = 1.0
    classifier: float = 1.0
    box_reg: float = 1.0
    mask: float = 1.0
    depth: float = 1.0
    noc: float = 3.0
    scale: float = 1.0
    translation_init: float = 1.0
    translation: float = 1.0
    rotation: float = 2.0
    triplet: float = 1.0
    completion: float = 1.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {value}")

    def of(self, loss_key: str) -> float:
        """The weight of loss `loss_key` ('loss_<field>')."""
        return getattr(self, loss_key.removeprefix("loss_"))


@dataclass(frozen=True, kw_only=True)
class RocaConfig:
    """The whole network."""

    categories: tuple[str, ...] = CATEGORIES
    """Detected categories; class id c in 1..len(categories) is categories[c - 1], 0 is the
    background (the datasets' COCO category ids)."""
    roi_size: int = 32
    """Side of the per-detection grid shared by the masks, NOCs and alignment (ROCA: 28)."""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if not self.categories:
            raise ValueError("categories must not be empty")
        if len(self.alignment.category_scales) != len(self.categories):
            raise ValueError(
                f"alignment.category_scales has {len(self.alignment.category_scales)} entries "
                f"for {len(self.categories)} categories"
            )
        if self.roi_size < 4 or self.roi_size % 2:
            raise ValueError(f"roi_size must be an even number >= 4, got {self.roi_size}")

    @property
    def num_classes(self) -> int:
        """Object classes, without the background."""
        return len(self.categories)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
