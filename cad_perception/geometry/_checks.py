"""Shape checks shared by the geometry functions (Kornia-style: fail early with a clear message)."""

import torch


def check_last_dims(name: str, tensor: torch.Tensor, dims: tuple[int, ...]) -> None:
    """Raise ValueError unless `tensor` has at least len(dims) dims ending in `dims`."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() < len(dims) or tuple(tensor.shape[-len(dims) :]) != dims:
        expected = ", ".join(["..."] + [str(d) for d in dims])
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(tensor.shape)}")
