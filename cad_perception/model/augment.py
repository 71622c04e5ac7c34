"""Augmentation for sim-to-real training: colour jitter, blur, noise and random backgrounds.

Only pixel values change (no warps or crops), so the geometric targets of an image (boxes,
masks, NOCs, poses, K) stay valid. `replace_backgrounds` paints a random texture over the
pixels outside every object mask and marks their depth unknown (0), since the texture says
nothing about the room's geometry. Images are RGB (B, 3, H, W) float in [0, 1]; every random
draw comes from the `torch.Generator` passed in, so a seeded generator reproduces the result
exactly.
"""

from dataclasses import dataclass

import torch
from torch.nn import functional


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Strength of each augmentation; 0 turns one off."""

    brightness: float = 0.3
    """Largest relative change of brightness: a factor drawn from [1 - b, 1 + b]."""
    contrast: float = 0.3
    """Largest relative change of contrast about the image's mean grey."""
    saturation: float = 0.3
    """Largest relative change of saturation (blend with the grey image)."""
    blur_probability: float = 0.3
    """Chance that an image is blurred."""
    max_blur_sigma: float = 1.2
    """Gaussian blur sigma drawn from [0.3, max] pixels when an image is blurred."""
    noise_std: float = 0.02
    """Largest standard deviation of added Gaussian noise (drawn per image from [0, max])."""
    background_probability: float = 0.0
    """Chance that an image's background (outside every object mask) becomes a random texture
    (`replace_backgrounds`)."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"augment {name} must be >= 0, got {value}")
        for name in ("blur_probability", "background_probability"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be <= 1, got {getattr(self, name)}")


GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights of R, G, B."""


def augment_images(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Augmented copies (B, 3, H, W) in [0, 1] of images (B, 3, H, W) in [0, 1]."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    batch = images.shape[0]

    def factors(strength: float) -> torch.Tensor:  # (B, 1, 1, 1) in [1 - s, 1 + s]
        draw = torch.rand(batch, 1, 1, 1, generator=generator, device=generator.device)
        return (1.0 + strength * (2.0 * draw - 1.0)).to(images)

    out = images * factors(config.brightness)
    grey = grey_image(out)
    out = grey.mean(dim=(2, 3), keepdim=True) + factors(config.contrast) * (
        out - grey.mean(dim=(2, 3), keepdim=True)
    )
    out = grey_image(out) + factors(config.saturation) * (out - grey_image(out))
    out = _random_blur(out.clamp(0.0, 1.0), config, generator)
    std = config.noise_std * torch.rand(
        batch, 1, 1, 1, generator=generator, device=generator.device
    )
    noise = torch.randn(out.shape, generator=generator, device=generator.device)
    return (out + std.to(out) * noise.to(out)).clamp(0.0, 1.0)


def grey_image(images: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of RGB images (B, 3, H, W)."""
    weights = images.new_tensor(GREY_WEIGHTS)[None, :, None, None]
    return (images * weights).sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images (B, C, H, W) blurred by a separable Gaussian of `sigma` pixels (edges replicated)."""
    radius = max(1, int(3.0 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = functional.pad(images, (radius, radius, radius, radius), mode="replicate")
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    blurred = functional.conv2d(padded, horizontal, groups=channels)
    return functional.conv2d(blurred, vertical, groups=channels)


def _random_blur(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Blur each image with probability config.blur_probability."""
    draws = torch.rand(images.shape[0], 2, generator=generator, device=generator.device).tolist()
    blurred = []
    for image, (chance, level) in zip(images, draws, strict=True):
        if chance < config.blur_probability and config.max_blur_sigma > 0:
            sigma = 0.3 + level * max(config.max_blur_sigma - 0.3, 0.0)
            image = gaussian_blur(image[None], sigma)[0]
        blurred.append(image)
    return torch.stack(blurred)


BACKGROUND_GRID = (2, 24)
"""Range of the coarse colour grid's cells per side that a background texture is upsampled
from (few: smooth colour fields; many: busy patterns)."""


def replace_backgrounds(
    images: torch.Tensor,
    masks: list[torch.Tensor],
    depths: list[torch.Tensor],
    probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Paint random textures over the backgrounds of some images.

    images (B, 3, H, W) in [0, 1]; masks[b] (G_b, H, W) bool / uint8 object masks of image b;
    depths[b] (H, W) metres. Each image is picked with `probability`; a picked image's pixels
    outside every mask take a random texture (`random_texture`) and its depth there becomes 0
    (unknown). Returns the images (B, 3, H, W) and the depths (new tensors where changed).
    """
    batch, _, height, width = images.shape
    if len(masks) != batch or len(depths) != batch:
        raise ValueError(f"need {batch} mask stacks and depths, got {len(masks)}, {len(depths)}")
    picks = torch.rand(batch, generator=generator, device=generator.device).tolist()
    out, new_depths = images.clone(), list(depths)
    for index, pick in enumerate(picks):
        if pick >= probability:
            continue
        object_mask = masks[index].bool().any(dim=0) if len(masks[index]) else None
        background = (
            torch.ones(height, width, dtype=torch.bool, device=images.device)
            if object_mask is None
            else ~object_mask.to(images.device)
        )
        texture = random_texture(height, width, generator).to(images)
        out[index] = torch.where(background, texture, out[index])
        new_depths[index] = torch.where(background.to(depths[index].device), 0.0, depths[index]).to(
            depths[index].dtype
        )
    return out, new_depths


def random_texture(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A random RGB texture (3, height, width) in [0, 1]: a coarse random colour grid upsampled
    bicubically, with per-pixel grain on top."""
    low, high = BACKGROUND_GRID
    draws = torch.randint(low, high + 1, (2,), generator=generator, device=generator.device)
    rows, cols = (int(d) for d in draws)
    grid = torch.rand(1, 3, rows, cols, generator=generator, device=generator.device)
    field = functional.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
    grain = 0.05 * torch.randn(1, 3, height, width, generator=generator, device=generator.device)
    return (field + grain)[0].clamp(0.0, 1.0)
