"""Image grids and PNG encoding (crisp: nearest-neighbour upscaling)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 0.5) -> np.ndarray:
    """float images in [0, 1] (N x C x H x W) -> uint8 grid (H' x W' or H' x W' x 3), `nrow` per row."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    ncol = max(1, nrow)
    nrows = math.ceil(n / ncol)
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y:y + h, x:x + w] = images[i]
    arr = (grid.numpy() * 255 + 0.5).astype(np.uint8)
    return arr[0] if c == 1 else np.transpose(arr, (1, 2, 0))


def upscale(arr: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return arr
    return np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1)


def to_png_bytes(arr: np.ndarray, scale: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(upscale(arr, scale)).save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def save_png(path: str | Path, arr: np.ndarray, scale: int = 1) -> None:
    from gm.runs.atomic import write_bytes_atomic
    write_bytes_atomic(Path(path), to_png_bytes(arr, scale))
