import pytest
import torch
from torch.nn.functional import interpolate

from cad_perception.geometry.camera import (
    backproject_depth,
    backproject_pixels,
    crop_intrinsics,
    pixel_grid,
    project,
    scale_intrinsics,
    validate_intrinsics,
)

F64 = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def intrinsics(fx=500.0, fy=400.0, cx=320.0, cy=240.0, skew=0.0) -> torch.Tensor:
    return torch.tensor([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=F64)


def random_points(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Camera points in front of the camera, z in [0.5, 5]."""
    g = seeded(seed)
    xy = torch.rand((*shape, 2), generator=g, dtype=F64) * 2 - 1
    z = torch.rand((*shape, 1), generator=g, dtype=F64) * 4.5 + 0.5
    return torch.cat((xy * z, z), dim=-1)


# --- validate_intrinsics ---


def test_validate_accepts_good_batches():
    validate_intrinsics(intrinsics())
    validate_intrinsics(torch.stack([intrinsics(), intrinsics(skew=1.5)]).float())


def with_entry(i: int, j: int, value: float) -> torch.Tensor:
    K = intrinsics()
    K[i, j] = value
    return K


@pytest.mark.parametrize(
    ("K", "message"),
    [
        (torch.zeros(3, 4), "must have shape"),
        (torch.zeros(3), "must have shape"),
        (with_entry(0, 2, float("nan")), "finite"),
        (with_entry(1, 1, float("inf")), "finite"),
        (with_entry(0, 0, 0.0), "fx > 0"),
        (with_entry(1, 1, -400.0), "fy > 0"),
        (with_entry(2, 2, 2.0), "last row"),
        (with_entry(2, 0, 0.1), "last row"),
        (with_entry(1, 0, 3.0), "upper triangular"),
        (torch.stack([intrinsics(), with_entry(0, 0, -1.0)]), "fx > 0"),
    ],
)
def test_validate_rejects_bad_intrinsics(K, message):
    with pytest.raises(ValueError, match=message):
        validate_intrinsics(K)


# --- project / backproject ---


def test_project_known_answer():
    points = torch.tensor([[0.1, -0.2, 2.0], [0.0, 0.0, 7.0]], dtype=F64)
    expected = torch.tensor([[345.0, 200.0], [320.0, 240.0]], dtype=F64)
    torch.testing.assert_close(project(points, intrinsics()), expected)
    # skew shifts u by skew * y / z
    skewed = project(points, intrinsics(skew=10.0))
    torch.testing.assert_close(skewed[:, 0], expected[:, 0] + torch.tensor([-1.0, 0.0], dtype=F64))


def test_project_backproject_round_trip_batched():
    K = torch.stack([intrinsics(), intrinsics(600, 610, 100.5, 80.25, skew=2.0)])  # (2, 3, 3)
    points = random_points((2, 50), seed=0)
    uv = project(points, K)
    assert uv.shape == (2, 50, 2)
    torch.testing.assert_close(backproject_pixels(uv, points[..., 2], K), points)
    # a single K broadcasts over a batch of point sets
    torch.testing.assert_close(
        project(points, intrinsics()), torch.stack([project(p, intrinsics()) for p in points])
    )


def test_backproject_pixels_zero_depth_is_zero_point():
    uv = torch.tensor([[10.0, 20.0], [300.0, 5.0]], dtype=F64)
    points = backproject_pixels(uv, torch.zeros(2, dtype=F64), intrinsics())
    torch.testing.assert_close(points, torch.zeros(2, 3, dtype=F64), atol=0, rtol=0)


def test_pixel_grid_layout():
    grid = pixel_grid(3, 4, dtype=F64)
    assert grid.shape == (3, 4, 2) and grid.dtype == F64
    assert grid[2, 1].tolist() == [1.0, 2.0]  # grid[v, u] = (u, v)
    assert grid[0, 3].tolist() == [3.0, 0.0]


def test_backproject_depth_projects_back_to_pixel_centres():
    H, W = 6, 8
    depth = torch.rand(2, H, W, generator=seeded(1), dtype=F64) + 0.5
    depth[1, 2, 3] = 0.0
    K = torch.stack([intrinsics(50, 40, 3.5, 2.5), intrinsics(60, 60, 4.0, 3.0, skew=0.5)])
    points = backproject_depth(depth, K)
    assert points.shape == (2, H, W, 3)
    torch.testing.assert_close(points[..., 2], depth)
    torch.testing.assert_close(points[1, 2, 3], torch.zeros(3, dtype=F64), atol=0, rtol=0)
    valid = depth > 0
    uv = project(points.flatten(1, 2), K).unflatten(1, (H, W))
    torch.testing.assert_close(uv[valid], pixel_grid(H, W, dtype=F64).expand(2, H, W, 2)[valid])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.zeros(5, 3), torch.ones(5), intrinsics()), "uv must have shape"),
        ((torch.zeros(5, 2), torch.ones(4), intrinsics()), "do not broadcast"),
        ((torch.zeros(5, 2), torch.ones(5), torch.eye(4)), "K must have shape"),
        (
            (torch.zeros(2, 5, 2), torch.ones(2, 5), torch.eye(3).expand(3, 3, 3)),
            "do not broadcast",
        ),
    ],
)
def test_backproject_pixels_bad_shapes(args, message):
    with pytest.raises(ValueError, match=message):
        backproject_pixels(*args)


def test_project_and_backproject_depth_bad_shapes():
    with pytest.raises(ValueError, match="points must have shape"):
        project(torch.zeros(4, 2), intrinsics())
    with pytest.raises(ValueError, match="do not broadcast"):
        project(torch.ones(2, 4, 3), torch.eye(3).expand(3, 3, 3))
    with pytest.raises(ValueError, match="depth must have shape"):
        backproject_depth(torch.ones(5), intrinsics())


# --- intrinsics for resized and cropped images ---


def coordinate_ramps(H: int, W: int) -> torch.Tensor:
    """An image (1, 2, H, W) whose channels hold each pixel's own u and v coordinates."""
    return pixel_grid(H, W, dtype=F64).permute(2, 0, 1)[None]


@pytest.mark.parametrize(("new_h", "new_w"), [(18, 30), (6, 10), (7, 13)])
def test_scale_intrinsics_matches_resized_image(new_h, new_w):
    """A point landing on a resized pixel lands, with the old K, where that pixel samples."""
    H, W = 12, 20
    K = intrinsics(25.0, 22.0, 9.3, 5.6, skew=0.7)
    # Bilinear resizing (align_corners=False) reproduces the linear coordinate ramps exactly
    # inside the image: each new pixel holds the old coordinates it was sampled from.
    ramps = interpolate(
        coordinate_ramps(H, W), size=(new_h, new_w), mode="bilinear", align_corners=False
    )[0]
    K_new = scale_intrinsics(K, new_w / W, new_h / H)
    uv_new = pixel_grid(new_h, new_w, dtype=F64)[1:-1, 1:-1].reshape(-1, 2)  # skip clamped border
    points = backproject_pixels(uv_new, torch.full((len(uv_new),), 2.0, dtype=F64), K_new)
    sampled = ramps[:, 1:-1, 1:-1].reshape(2, -1).T
    torch.testing.assert_close(project(points, K), sampled)


def test_scale_intrinsics_keeps_image_edges():
    H, W, sx, sy = 12, 20, 0.35, 2.5
    K = intrinsics(25.0, 22.0, 9.3, 5.6)
    corners = torch.tensor([[-0.5, -0.5], [W - 0.5, H - 0.5]], dtype=F64)
    points = backproject_pixels(corners, torch.ones(2, dtype=F64), K)
    new_corners = torch.tensor([[-0.5, -0.5], [W * sx - 0.5, H * sy - 0.5]], dtype=F64)
    torch.testing.assert_close(project(points, scale_intrinsics(K, sx, sy)), new_corners)
    expected = K.clone()
    expected[0, 0], expected[1, 1] = sx * 25.0, sy * 22.0
    expected[0, 2], expected[1, 2] = sx * (9.3 + 0.5) - 0.5, sy * (5.6 + 0.5) - 0.5
    torch.testing.assert_close(scale_intrinsics(K, sx, sy), expected)


def test_scale_intrinsics_rejects_nonpositive_factors():
    with pytest.raises(ValueError, match="> 0"):
        scale_intrinsics(intrinsics(), 0.0, 1.0)


def test_crop_intrinsics_matches_cropped_image():
    H, W, x0, y0 = 12, 20, 7, 3
    K = torch.stack([intrinsics(25.0, 22.0, 9.3, 5.6, skew=0.7), intrinsics(30, 30, 10, 6)])
    cropped = coordinate_ramps(H, W)[0, :, y0:, x0:]
    uv_new = pixel_grid(H - y0, W - x0, dtype=F64).reshape(-1, 2)
    K_new = crop_intrinsics(K, x0, y0)
    points = backproject_pixels(uv_new, torch.full((len(uv_new),), 3.0, dtype=F64), K_new)
    sampled = cropped.reshape(2, -1).T
    torch.testing.assert_close(project(points, K), sampled.expand(2, -1, 2))
    torch.testing.assert_close(K_new[:, :2, 2], K[:, :2, 2] - torch.tensor([x0, y0], dtype=F64))
