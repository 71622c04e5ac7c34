"""Photometric augmentation for sim-to-real training: colour jitter, blur and noise.

Only pixel values change (no warps or crops), so every geometric target of an image (boxes,
masks, depth, NOCs, poses, K) stays valid. Images are RGB (B, 3, H, W) float in [0, 1]; every
random draw comes from the `torch.Generator` passed in, so a seeded generator reproduces the
result exactly.
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

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"augment {name} must be >= 0, got {value}")
        if self.blur_probability > 1:
            raise ValueError(f"blur_probability must be <= 1, got {self.blur_probability}")


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
