"""COCO run-length encoding (RLE) of binary masks, compatible with pycocotools.

A mask (H, W) is read in column-major (Fortran) order, i.e. down the first column, then down the
second, ...; its runs alternate background and foreground and start with background (a mask whose
first pixel is foreground starts with a run of length 0). An RLE is the dict
{"size": [H, W], "counts": ...} with counts either the list of run lengths (COCO's uncompressed
form) or pycocotools' compressed string: each run, from the fourth on replaced by its difference
from the run two before it, is written as a little-endian sequence of 5-bit groups, one character
per group (chr(48 + group), plus 32 when more groups follow), the last group's top bit carrying
the sign.

Every function accepts both counts forms; `encode` writes the string form. Malformed RLEs (wrong
size, negative runs, runs that do not cover H * W pixels, bad characters) raise ValueError.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

RLE = dict[str, Any]
"""{"size": [H, W], "counts": str | list[int]}."""

_FIRST_CHAR = 48  # "0"
_GROUP_BITS = 5
_GROUP_MASK = 0x1F
_SIGN_BIT = 0x10
_MORE_BIT = 0x20


def encode(mask: np.ndarray) -> RLE:
    """Binary mask (H, W) (any dtype, non-zero = foreground) -> RLE with a counts string."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {mask.shape}")
    height, width = mask.shape
    return {"size": [height, width], "counts": runs_to_string(mask_to_runs(mask))}


def decode(rle: RLE) -> np.ndarray:
    """RLE -> bool mask (H, W)."""
    height, width = _size(rle)
    runs = rle_runs(rle)
    foreground = np.arange(len(runs)) % 2 == 1
    flat = np.repeat(foreground, runs)
    return flat.reshape(width, height).T.copy()


def area(rle: RLE) -> int:
    """Number of foreground pixels."""
    return int(rle_runs(rle)[1::2].sum())


def bbox(rle: RLE) -> list[float]:
    """Bounding box [x, y, w, h] (pixels, integral values) of the foreground; zeros if empty.

    The box is the smallest one holding every foreground pixel: x, y of its top-left pixel and
    w, h its size in pixels (pycocotools' `toBbox`).
    """
    return runs_bbox(rle_runs(rle), _size(rle)[0])


def runs_bbox(runs: np.ndarray, height: int) -> list[float]:
    """`bbox` of the mask of height `height` with column-major run lengths (R,)."""
    runs = np.asarray(runs, dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    foreground = (np.arange(len(runs)) % 2 == 1) & (runs > 0)
    if not foreground.any():
        return [0.0, 0.0, 0.0, 0.0]
    first, last = starts[foreground], ends[foreground] - 1  # flat indices, inclusive
    x0, x1 = first // height, last // height
    if (x1 > x0).any():  # a run that wraps into the next column covers its last and first rows
        y0, y1 = 0, height - 1
    else:
        y0, y1 = int((first % height).min()), int((last % height).max())
    x_min, x_max = int(x0.min()), int(x1.max())
    return [float(x_min), float(y0), float(x_max - x_min + 1), float(y1 - y0 + 1)]


def mask_to_runs(mask: np.ndarray) -> np.ndarray:
    """Binary mask (H, W) -> run lengths (R,) int64 in column-major order, background first."""
    flat = np.asarray(mask).ravel(order="F") != 0
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    boundaries = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(boundaries)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.int64)


def runs_to_string(runs: Sequence[int] | np.ndarray) -> str:
    """Run lengths (R,) -> pycocotools' compressed counts string."""
    runs = [int(run) for run in runs]
    chars = []
    for index, run in enumerate(runs):
        value = run - runs[index - 2] if index > 2 else run
        more = True
        while more:
            group = value & _GROUP_MASK
            value >>= _GROUP_BITS  # arithmetic shift: negative values tend to -1
            more = value != (-1 if group & _SIGN_BIT else 0)
            chars.append(chr(_FIRST_CHAR + (group | _MORE_BIT if more else group)))
    return "".join(chars)


def string_to_runs(counts: str) -> np.ndarray:
    """pycocotools' compressed counts string -> run lengths (R,) int64 (not validated)."""
    runs: list[int] = []
    value, shift = 0, 0
    for char in counts:
        code = ord(char) - _FIRST_CHAR
        if not 0 <= code < 2 * _MORE_BIT:
            raise ValueError(f"invalid character {char!r} in RLE counts string")
        value |= (code & _GROUP_MASK) << shift
        shift += _GROUP_BITS
        if code & _MORE_BIT:
            continue
        if code & _SIGN_BIT:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
        value, shift = 0, 0
    if shift:
        raise ValueError("RLE counts string ends in the middle of a number")
    return np.asarray(runs, dtype=np.int64)


def rle_runs(rle: RLE) -> np.ndarray:
    """The validated run lengths (R,) int64 of an RLE in either counts form."""
    height, width = _size(rle)
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        runs = string_to_runs(counts)
    elif isinstance(counts, list | tuple) and all(
        isinstance(run, int | np.integer) and not isinstance(run, bool) for run in counts
    ):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        raise ValueError("RLE counts must be a string or a list of integers")
    if (runs < 0).any():
        raise ValueError("RLE has a negative run length")
    if runs.sum() != height * width:
        raise ValueError(
            f"RLE runs cover {int(runs.sum())} pixels, size {[height, width]} has {height * width}"
        )
    return runs


def _size(rle: RLE) -> tuple[int, int]:
    """(H, W) of an RLE; ValueError unless it is a dict with two non-negative integers."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("an RLE must be a dict with 'size' and 'counts'")
    size = rle["size"]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in size)
        or min(size) < 0
    ):
        raise ValueError(f"RLE size must be [H, W] with non-negative integers, got {size!r}")
    return int(size[0]), int(size[1])
