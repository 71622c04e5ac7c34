"""Augmentation: seeded, range-preserving, geometry-free, and each part active; random
backgrounds replace exactly the pixels outside the object masks and forget their depth."""

import pytest
import torch

from cad_perception.model.augment import (
    AugmentConfig,
    augment_images,
    gaussian_blur,
    grey_image,
    random_texture,
    replace_backgrounds,
)

OFF = AugmentConfig(
    brightness=0, contrast=0, saturation=0, blur_probability=0, max_blur_sigma=0, noise_std=0
)


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(seed))


def test_same_seed_same_result_other_seed_differs() -> None:
    config = AugmentConfig(blur_probability=0.5)
    first = augment_images(images(), config, torch.Generator().manual_seed(7))
    again = augment_images(images(), config, torch.Generator().manual_seed(7))
    other = augment_images(images(), config, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert first.shape == images().shape
    assert first.min() >= 0 and first.max() <= 1


def test_all_off_is_identity() -> None:
    out = augment_images(images(), OFF, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images())


def test_brightness_scales_pixels_by_one_factor_per_image() -> None:
    config = AugmentConfig(**{**vars(OFF), "brightness": 0.5})
    dim = 0.1 + images() * 0.5  # no clipping at 1, no tiny pixels
    out = augment_images(dim, config, torch.Generator().manual_seed(1))
    ratio = out / dim
    per_image = ratio.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image))
    assert ((per_image[:, 0] >= 0.5) & (per_image[:, 0] <= 1.5)).all()
    assert not torch.allclose(per_image[:, 0], torch.ones(3))


def test_saturation_zero_factor_range_keeps_grey_images_grey() -> None:
    grey = images()[:, :1].expand(-1, 3, -1, -1) * 0.8
    config = AugmentConfig(**{**vars(OFF), "saturation": 0.9, "contrast": 0.5})
    out = augment_images(grey, config, torch.Generator().manual_seed(2))
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])


def test_noise_changes_pixels_with_small_std() -> None:
    config = AugmentConfig(**{**vars(OFF), "noise_std": 0.05})
    flat = torch.full((2, 3, 40, 40), 0.5)
    out = augment_images(flat, config, torch.Generator().manual_seed(3))
    assert 0.0 < (out - flat).std() < 0.05


def test_gaussian_blur_keeps_constant_images_and_mean_and_smooths() -> None:
    constant = torch.full((1, 3, 10, 12), 0.25)
    torch.testing.assert_close(gaussian_blur(constant, 1.0), constant)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1.0
    blurred = gaussian_blur(impulse, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[0, 0, 10, 10] < 0.2
    torch.testing.assert_close(blurred, blurred.flip(-1).flip(-2))


def test_grey_image_known_answer() -> None:
    pixel = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    assert grey_image(pixel).item() == pytest.approx(0.299 + 0.5 * 0.587)


def test_rejects_bad_shapes_and_config() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        augment_images(torch.rand(3, 8, 8), OFF, torch.Generator())
    with pytest.raises(ValueError, match="brightness"):
        AugmentConfig(brightness=-1)
    with pytest.raises(ValueError, match="background_probability"):
        AugmentConfig(background_probability=1.5)


def object_masks() -> list[torch.Tensor]:
    """Image 0: two boxes; image 1: one box; image 2: no object."""
    masks = [torch.zeros(2, 24, 32, dtype=torch.bool), torch.zeros(1, 24, 32, dtype=torch.bool)]
    masks[0][0, 2:10, 3:12] = True
    masks[0][1, 12:20, 15:30] = True
    masks[1][0, 5:22, 8:25] = True
    return [*masks, torch.zeros(0, 24, 32, dtype=torch.bool)]


def test_backgrounds_change_only_outside_the_masks_and_lose_their_depth() -> None:
    depths = [torch.full((24, 32), 2.0 + b) for b in range(3)]
    out, new_depths = replace_backgrounds(
        images(), object_masks(), depths, 1.0, torch.Generator().manual_seed(3)
    )
    for b, masks in enumerate(object_masks()):
        inside = masks.any(dim=0)
        assert torch.equal(out[b][:, inside], images()[b][:, inside])
        changed = (out[b] != images()[b]).any(dim=0)
        assert changed[~inside].float().mean() > 0.95  # a new texture nearly everywhere else
        assert torch.all(new_depths[b][~inside] == 0)
        assert torch.all(new_depths[b][inside] == 2.0 + b)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.all(depths[0] == 2.0)  # the inputs are not modified


def test_backgrounds_follow_the_probability_and_the_seed() -> None:
    depths = [torch.ones(24, 32)] * 3
    same, same_depths = replace_backgrounds(
        images(), object_masks(), depths, 0.0, torch.Generator().manual_seed(0)
    )
    assert torch.equal(same, images())
    assert all(torch.equal(d, torch.ones(24, 32)) for d in same_depths)
    first, again = (
        replace_backgrounds(images(), object_masks(), depths, 0.5, torch.Generator().manual_seed(5))
        for _ in range(2)
    )
    assert torch.equal(first[0], again[0])
    replaced = [
        not torch.equal(
            replace_backgrounds(
                images(), object_masks(), depths, 0.5, torch.Generator().manual_seed(seed)
            )[0][2],
            images()[2],
        )
        for seed in range(40)
    ]
    assert 8 <= sum(replaced) <= 32  # about half the time


def test_random_textures_vary_in_scale_and_stay_in_range() -> None:
    generator = torch.Generator().manual_seed(0)
    textures = [random_texture(48, 64, generator) for _ in range(20)]
    assert all(t.shape == (3, 48, 64) and t.min() >= 0 and t.max() <= 1 for t in textures)
    roughness = [float((t[:, :, 1:] - t[:, :, :-1]).abs().mean()) for t in textures]
    assert max(roughness) > 1.5 * min(roughness)  # smooth fields and busy patterns
    assert not torch.equal(textures[0], textures[1])
