"""MNIST in three handwriting styles the project renders: an unpaired digit task with ground truth.

Every MNIST digit (loaded by :func:`gm.data.mnist.load_mnist` from the same data folder) is drawn in
exactly one style, chosen by a seeded, balanced assignment, so the three style domains hold
different digits and are unpaired, as real translation data is. Because the styles are rendered
here, every image's true counterpart in another style is known exactly: the same MNIST digit
drawn in that style (:func:`counterparts`), which is what lets digit translation be scored
against ground truth.

Rendering recipe (it defines the data):
- ``plain``: the MNIST image as it is.
- ``bold``: a grey-level dilation with a 3 x 3 square (every pixel becomes the maximum of its
  3 x 3 neighbourhood), which widens every stroke by one pixel on each side.
- ``slanted``: a horizontal shear by SHEAR = 0.35 about the image centre (x' = x + 0.35 (cy - y),
  y down, so the top of a digit leans right, as italic writing does), sampled bilinearly with zeros
  outside; the centre does not move.

Both are deterministic integer-in, integer-out functions of the image (values rounded to uint8).
Factors: ``style`` (0 plain, 1 bold, 2 slanted) and ``digit`` (the MNIST label, also the class).
The style assignment of the train split is seeded with (ASSIGNMENT_SEED, 0), of the test split with
(ASSIGNMENT_SEED, 1); each style gets a third of each split (the first n mod 3 styles one more).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gm.data.base import ImageDataset
from gm.data.registry import DatasetSpec, register_dataset
from gm.errors import GMError

STYLES = ("plain", "bold", "slanted")
DIGITS = tuple(str(d) for d in range(10))
FACTOR_NAMES = ("style", "digit")
FACTOR_SIZES = (len(STYLES), len(DIGITS))
SHEAR = 0.35
ASSIGNMENT_SEED = 18
SIDE = 28


# ---- the styles: pure, vectorised, uint8 N x C x H x W in and out -------------------------------
def _as_float(images: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        raise GMError(f"Style rendering takes uint8 images; got {x.dtype}.")
    if x.dim() != 4:
        raise GMError(f"Style rendering takes N x C x H x W images; got shape {tuple(x.shape)}.")
    return x.float()


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def bold(images: torch.Tensor) -> torch.Tensor:
    """Thicker strokes: a grey-level dilation by a 3 x 3 square (a 3 x 3 max filter, edges padded
    with nothing brighter than the image), so a stroke w pixels wide becomes w + 2 wide."""
    x = _as_float(images)
    return _to_uint8(F.max_pool2d(x, 3, stride=1, padding=1))


def slant(images: torch.Tensor, shear: float = SHEAR) -> torch.Tensor:
    """Italic-like slant: a horizontal shear about the image centre (the top moves right by
    `shear` pixels per row above the centre, the bottom left), bilinear, zeros outside."""
    x = _as_float(images)
    n, _, h, w = x.shape
    # affine_grid works in [-1, 1] coordinates: the output pixel (u, v) reads the input at
    # (u + shear * v * h / w, v); v is -1 at the top, so the top row reads from its left: moved right.
    theta = torch.tensor([[1.0, shear * h / w, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    return _to_uint8(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False))


_RENDER = {"plain": lambda x: torch.as_tensor(x).clone(), "bold": bold, "slanted": slant}


def render(images: torch.Tensor, style: str) -> torch.Tensor:
    """uint8 N x C x H x W plain digits drawn in `style` (one of STYLES)."""
    if style not in _RENDER:
        raise GMError(f"Unknown style '{style}'; the styles are {', '.join(STYLES)}.")
    return _RENDER[style](images)


def render_styles(images: torch.Tensor, styles: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images, each drawn in its own style (an index into STYLES per image)."""
    images = torch.as_tensor(images)
    styles = torch.as_tensor(np.asarray(styles), dtype=torch.long).reshape(-1)
    if styles.shape[0] != images.shape[0]:
        raise GMError(f"Give one style per image: {images.shape[0]} images, {styles.shape[0]} styles.")
    out = images.clone()
    for i, name in enumerate(STYLES):
        rows = torch.nonzero(styles == i).reshape(-1)
        if len(rows):
            out[rows] = render(images[rows], name)
    return out


def assign_styles(n: int, train: bool = True, seed: int = ASSIGNMENT_SEED) -> np.ndarray:
    """int64 n: each digit's style index, a seeded, balanced assignment (a shuffled 0, 1, 2, 0, ...)."""
    rng = np.random.default_rng([seed, 0 if train else 1])
    return (rng.permutation(n) % len(STYLES)).astype(np.int64)


# ---- the dataset ------------------------------------------------------------------------------
@dataclass
class StyledDigits(ImageDataset):
    """MNIST digits in their assigned styles, knowing which MNIST digit each image is.

    ``base_index`` (int64 N) is each image's row in the MNIST split and ``plain`` the whole split as
    MNIST has it (shared by every subset, never indexed by them): together they render any image's
    counterpart in any style exactly.
    """

    base_index: torch.Tensor | None = None
    plain: torch.Tensor | None = None

    def subset(self, index: torch.Tensor, **meta: Any) -> ImageDataset:
        out = super().subset(index, **meta)
        if self.base_index is not None:
            rows = torch.as_tensor(index, dtype=torch.long).reshape(-1)
            out = dataclasses.replace(out, base_index=self.base_index[rows])
        return out


def load_mnist_style(data_dir: str | os.PathLike | None = None, *, train: bool = True,
                     download: bool = True) -> StyledDigits:
    """MNIST digits (from `data_dir` as :func:`gm.data.mnist.load_mnist` finds them), each drawn in
    its one assigned style."""
    from gm.data.mnist import load_mnist

    base = load_mnist(data_dir, train=train, download=download)
    styles = assign_styles(len(base), train)
    images = render_styles(base.images, styles)
    assert base.labels is not None
    classes = torch.stack([torch.from_numpy(styles), base.labels.long()], dim=1)
    return StyledDigits(name="mnist-style", images=images, max_value=255, labels=base.labels.clone(),
                        factors=classes.float(), factor_classes=classes, factor_names=FACTOR_NAMES,
                        num_classes=len(DIGITS),
                        meta={"source": base.meta.get("source"), "split": "train" if train else "test"},
                        base_index=torch.arange(len(base)), plain=base.images)


def counterparts(dataset: ImageDataset, index: torch.Tensor, by: str, to: str) -> torch.Tensor:
    """The mnist-style counterpart hook (see gm.data.domains.counterparts): the same MNIST digits
    drawn in style `to`, uint8 N x 1 x 28 x 28."""
    if by != "style":
        raise GMError(f"mnist-style has no domain split '{by}'; its splits: style.")
    if to not in STYLES:
        raise GMError(f"Unknown domain '{to}' of the mnist-style split 'style'; its domains: {', '.join(STYLES)}.")
    base_index = getattr(dataset, "base_index", None)
    plain = getattr(dataset, "plain", None)
    if base_index is None or plain is None:
        raise GMError("This mnist-style dataset does not say which MNIST digit each image is, so its true "
                      "counterparts are unknown; load it with gm.data.load_dataset('mnist-style').")
    index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
    return render(plain[base_index[index]], to)


register_dataset(DatasetSpec(
    name="mnist-style",
    description="MNIST digits, each drawn in one of three styles (plain, bold, slanted): unpaired, with true counterparts",
    image_shape=(1, SIDE, SIDE), max_value=255, value_range="grey levels 0-255",
    classes=DIGITS, class_factor="digit", factors=FACTOR_NAMES, factor_sizes=FACTOR_SIZES,
    domain_splits={"style": STYLES},
    evaluator="mnist_style_classifier",
    loader="gm.data.mnist_style:load_mnist_style", splits=("train", "test"),
    counterpart="gm.data.mnist_style:counterparts",
))
