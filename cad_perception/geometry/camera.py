"""Pinhole camera model: intrinsics checks, projection, back-projection, image resize and crop.

Camera points are in the OpenCV / ROS optical frame (x right, y down, z forward), metres.
Intrinsics K (..., 3, 3) = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]] map a camera point X to the
pixel (u, v) = (K X)[:2] / z. Pixel (u, v) has its centre at integer coordinates, so an image of
width W spans u in [-0.5, W - 0.5]; u is the column and v the row. Depth is the z coordinate
(not the distance along the ray). Every function accepts arbitrary leading batch dimensions that
broadcast between its arguments.

The shape checks here are static; `validate_intrinsics` inspects values, so call it once where K
enters the system (camera info, datasets), not inside exported graphs.
"""

import torch

from cad_perception.geometry._checks import check_last_dims


def _check_broadcastable(**batch_shapes: tuple[int, ...]) -> None:
    """Raise ValueError unless the named batch shapes broadcast together."""
    try:
        torch.broadcast_shapes(*batch_shapes.values())
    except RuntimeError as err:
        described = ", ".join(f"{name} {tuple(shape)}" for name, shape in batch_shapes.items())
        raise ValueError(f"batch dimensions do not broadcast: {described}") from err


def validate_intrinsics(K: torch.Tensor, atol: float = 1e-6) -> None:
    """Raise ValueError unless K (..., 3, 3) is a finite pinhole intrinsics matrix.

    Requires fx > 0, fy > 0, K[1, 0] = 0 and last row (0, 0, 1), each within `atol`.
    """
    check_last_dims("K", K, (3, 3))
    if not torch.isfinite(K).all():
        raise ValueError("K must be finite, got NaN or inf entries")
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    if (fx <= 0).any() or (fy <= 0).any():
        raise ValueError(
            f"K must have fx > 0 and fy > 0, got min fx {fx.min().item()}, min fy {fy.min().item()}"
        )
    last_rows = K[..., 2, :]
    bad_rows = (last_rows - K.new_tensor([0.0, 0.0, 1.0])).abs().amax(dim=-1) > atol
    if bad_rows.any():
        raise ValueError(f"K must have last row (0, 0, 1), got {last_rows[bad_rows][0].tolist()}")
    if (K[..., 1, 0].abs() > atol).any():
        raise ValueError("K must be upper triangular: K[1, 0] must be 0")


def pixel_grid(
    height: int,
    width: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pixel centre coordinates (H, W, 2): grid[v, u] = (u, v)."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack((u, v), dim=-1)


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera points (..., N, 3) -> pixel coordinates (..., N, 2) with K (..., 3, 3).

    Points must lie in front of the camera (z > 0); z = 0 gives non-finite pixels. The depth
    of each point is simply points[..., 2].
    """
    check_last_dims("points", points, (3,))
    check_last_dims("K", K, (3, 3))
    _check_broadcastable(points=points.shape[:-1], K=(*K.shape[:-2], 1))
    homogeneous = points @ K.transpose(-1, -2)
    return homogeneous[..., :2] / homogeneous[..., 2:]


def backproject_pixels(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels (..., N, 2) with depths (..., N) -> camera points (..., N, 3) with z = depth.

    Zero depth gives the zero point (the camera centre), so invalid (0) depth stays
    recognisable.
    """
    check_last_dims("uv", uv, (2,))
    check_last_dims("K", K, (3, 3))
    _check_broadcastable(uv=uv.shape[:-1], depth=depth.shape, K=(*K.shape[:-2], 1))
    fx, skew, cx = K[..., 0, 0, None], K[..., 0, 1, None], K[..., 0, 2, None]
    fy, cy = K[..., 1, 1, None], K[..., 1, 2, None]
    # Invert the upper-triangular K: the normalised ray is (x, y, 1).
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    return torch.stack(torch.broadcast_tensors(x * depth, y * depth, depth), dim=-1)


def backproject_depth(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Depth maps (..., H, W) -> camera points (..., H, W, 3), one per pixel centre.

    K is (..., 3, 3). Pixels with zero depth give the zero point.
    """
    if depth.dim() < 2:
        raise ValueError(f"depth must have shape (..., H, W), got {tuple(depth.shape)}")
    height, width = depth.shape[-2:]
    uv = pixel_grid(height, width, dtype=depth.dtype, device=depth.device).reshape(-1, 2)
    points = backproject_pixels(uv, depth.flatten(-2), K)
    return points.unflatten(-2, (height, width))


def _map_pixels(K: torch.Tensor, a_u: float, b_u: float, a_v: float, b_v: float) -> torch.Tensor:
    """K (..., 3, 3) of the image whose pixels are u' = a_u u + b_u, v' = a_v v + b_v."""
    check_last_dims("K", K, (3, 3))
    A = K.new_tensor([[a_u, 0.0, b_u], [0.0, a_v, b_v], [0.0, 0.0, 1.0]])
    return A @ K


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """K (..., 3, 3) for the image resized by sx = W_new / W_old and sy = H_new / H_old.

    With pixel centres at integer coordinates the image edges -0.5 and W - 0.5 stay edges, so
    u' = sx (u + 0.5) - 0.5: fx' = sx fx, cx' = sx (cx + 0.5) - 0.5 (same for y). This matches
    torch.nn.functional.interpolate with align_corners=False and cv2.resize (INTER_LINEAR).
    """
    if sx <= 0 or sy <= 0:
        raise ValueError(f"scale factors must be > 0, got sx={sx}, sy={sy}")
    return _map_pixels(K, sx, 0.5 * sx - 0.5, sy, 0.5 * sy - 0.5)


def crop_intrinsics(K: torch.Tensor, x0: float, y0: float) -> torch.Tensor:
    """K (..., 3, 3) for the crop image[y0:, x0:] whose top-left pixel is (x0, y0): cx -= x0."""
    return _map_pixels(K, 1.0, -x0, 1.0, -y0)
