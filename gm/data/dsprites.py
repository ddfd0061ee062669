"""dSprites, rendered from its generative factors (or loaded from the official .npz when present).

Factors, as in DeepMind's dataset: shape {square, ellipse, heart}, scale linspace(0.5, 1, 6),
orientation linspace(0, 2*pi, 40), posX and posY linspace(0, 1, 32); 64x64 binary images.

Rendering recipe (documented because it defines the data):
- A sprite at scale 1 has a "radius" of R = 10 px: the square's half-side, the ellipse's
  semi-major axis (semi-minor = R/2) and the heart's half-height are all ``scale * R``.
- Every shape is drawn in its own coordinates (u, v), rotated by the orientation about the
  sprite's centre; a pixel is on (1) when its centre lies inside the shape, else off (0), so
  images are exactly binary with no anti-aliasing.
- The heart is the implicit curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (tip pointing down in the image),
  scaled so its height 2.25 maps to 2 * scale * R and centred on its bounding box.
- Positions map linspace(0, 1, 32) to sprite centres in [M, 63 - M] pixels with M = 15.5; at scale
  1 the farthest point of any shape in any rotation is R * sqrt(2) = 14.1 px from the centre, so
  every sprite stays inside the canvas. Adjacent positions are 1.03 px apart and adjacent scales 1 px
  apart in radius, which makes every (shape, scale, posX, posY) of an orientation distinct. As in the
  official data, a square turned by 90 degrees (or an ellipse by 180) is the same image.

The default subset is the assignment's orientation-0 set: 3 x 6 x 32 x 32 = 18,432 images, in the
official factor order (shape, scale, posX, posY, fastest last).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from gm.data.base import ImageDataset
from gm.data.registry import DatasetSpec, register_dataset
from gm.errors import GMError

SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * math.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
CANVAS = 64
RADIUS = 10.0
MARGIN = 15.5
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
OFFICIAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
ASSIGNMENT_FILE = "sh3_sc6_y32_x32_imgs.npz"

_HEART_HEIGHT = 2.25   # y spans [-1, 1.25] on the implicit heart curve
_HEART_CENTRE_Y = 0.125


_WINDOW = 32  # every sprite fits in a 32 x 32 window around its centre (max radius 14.2 px)


def _inside(kind: int, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pixel centres (u, v in the sprite's frame) inside a shape of radius r."""
    if kind == 0:
        return (np.abs(u) <= r) & (np.abs(v) <= r)
    if kind == 1:
        return (u / r) ** 2 + (v / (0.5 * r)) ** 2 <= 1.0
    hx = u / (2 * r / _HEART_HEIGHT)
    hy = -v / (2 * r / _HEART_HEIGHT) + _HEART_CENTRE_Y
    return (hx ** 2 + hy ** 2 - 1) ** 3 - hx ** 2 * hy ** 3 <= 0


def render(shape: np.ndarray, scale: np.ndarray, orientation: np.ndarray,
           pos_x: np.ndarray, pos_y: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Render sprites from factor values (arrays of equal length) -> uint8 N x 64 x 64 of 0/1."""
    shape, scale, orientation, pos_x, pos_y = (np.asarray(a).reshape(-1) for a in
                                               (shape, scale, orientation, pos_x, pos_y))
    n = shape.shape[0]
    out = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    offsets = np.arange(_WINDOW)
    for kind in range(len(SHAPES)):
        members = np.flatnonzero(shape == kind)
        for start in range(0, len(members), chunk):
            idx = members[start:start + chunk]
            cx = (MARGIN + pos_x[idx] * (CANVAS - 1 - 2 * MARGIN)).astype(np.float32)
            cy = (MARGIN + pos_y[idx] * (CANVAS - 1 - 2 * MARGIN)).astype(np.float32)
            x0 = np.clip(np.floor(cx).astype(np.int64) - _WINDOW // 2 + 1, 0, CANVAS - _WINDOW)
            y0 = np.clip(np.floor(cy).astype(np.int64) - _WINDOW // 2 + 1, 0, CANVAS - _WINDOW)
            cols = x0[:, None] + offsets[None, :]                  # n x W absolute columns
            rows = y0[:, None] + offsets[None, :]                  # n x W absolute rows
            dx = (cols - cx[:, None]).astype(np.float32)[:, None, :]
            dy = (rows - cy[:, None]).astype(np.float32)[:, :, None]   # down is positive
            theta = orientation[idx].astype(np.float32)[:, None, None]
            cos, sin = np.cos(theta), np.sin(theta)
            # Rotate the pixel offsets into the sprite's frame (counter-clockwise on screen).
            u = cos * dx - sin * dy
            v = sin * dx + cos * dy
            r = (scale[idx] * RADIUS).astype(np.float32)[:, None, None]
            mask = _inside(kind, u, v, r).astype(np.uint8)
            out[idx[:, None, None], rows[:, :, None], cols[:, None, :]] = mask
    return out


def factor_grid(orientation_index: int | None = 0) -> np.ndarray:
    """Factor indices (N x 5: shape, scale, orientation, posX, posY) in official order."""
    orients = range(40) if orientation_index is None else [orientation_index]
    idx = np.stack(np.meshgrid(np.arange(3), np.arange(6), np.array(list(orients)),
                               np.arange(32), np.arange(32), indexing="ij"), axis=-1)
    return idx.reshape(-1, 5)


def values_from_classes(classes: np.ndarray) -> np.ndarray:
    """Factor indices -> factor values (shape stays an index; scale/orientation/pos are real)."""
    classes = np.asarray(classes)
    return np.stack([classes[:, 0].astype(np.float64), SCALES[classes[:, 1]],
                     ORIENTATIONS[classes[:, 2]], POSITIONS[classes[:, 3]], POSITIONS[classes[:, 4]]],
                    axis=1)


def render_classes(classes: np.ndarray) -> np.ndarray:
    values = values_from_classes(classes)
    return render(classes[:, 0], values[:, 1], values[:, 2], values[:, 3], values[:, 4])


class LazyDSprites(ImageDataset):
    """The full 737,280-image dSprites, rendered batch by batch on demand (never all in RAM)."""

    def take(self, index: torch.Tensor) -> torch.Tensor:
        classes = self.factor_classes[index].numpy()
        return torch.from_numpy(render_classes(classes)).unsqueeze(1)


def _find_file(data_dir: str | os.PathLike | None) -> Path | None:
    for name in (OFFICIAL_FILE, ASSIGNMENT_FILE):
        for folder in _candidate_dirs(data_dir):
            for path in (folder / name, folder / "dsprites" / name):
                if path.is_file():
                    return path
    return None


def _candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    from gm.data import default_data_dir
    dirs = [Path(data_dir)] if data_dir else []
    dirs.append(default_data_dir())
    return dirs


def _from_npz(path: Path, full: bool) -> ImageDataset:
    try:
        archive = np.load(path, allow_pickle=False, encoding="latin1")
        imgs = archive["imgs"]
        classes = archive["latents_classes"] if "latents_classes" in archive.files else None
    except Exception as exc:  # corrupt or not a dSprites archive
        raise GMError(f"Could not read dSprites from {path} ({exc}); delete or replace the file.") from None
    if classes is not None:
        classes = classes[:, 1:].astype(np.int64)  # drop the constant colour factor
    else:
        # The assignment's subset has no latents: its order is the official one at orientation 0.
        if imgs.shape[0] != 18432:
            raise GMError(f"{path} has {imgs.shape[0]} images and no latents; expected the 18,432-image subset.")
        classes = factor_grid(0)
    if not full and imgs.shape[0] == 737280:
        keep = classes[:, 2] == 0
        imgs, classes = imgs[keep], classes[keep]
    return _make(torch.from_numpy(np.ascontiguousarray(imgs, dtype=np.uint8)).unsqueeze(1), classes,
                 source=str(path))


def _make(images: torch.Tensor, classes: np.ndarray, source: str, cls: type = ImageDataset) -> ImageDataset:
    values = values_from_classes(classes)
    return cls(name="dsprites", images=images, max_value=1,
               labels=torch.from_numpy(classes[:, 0].copy()),
               factors=torch.from_numpy(values).float(),
               factor_classes=torch.from_numpy(classes.copy()),
               factor_names=FACTOR_NAMES, num_classes=3, meta={"source": source})


def load_dsprites(data_dir: str | os.PathLike | None = None, *, full: bool = False,
                  render_only: bool = False) -> ImageDataset:
    """dSprites: the official/assignment .npz when found, else rendered (18,432 by default)."""
    if not render_only:
        found = _find_file(data_dir)
        if found is not None:
            return _from_npz(found, full)
    if full:
        classes = factor_grid(None)
        # A zero-stride view: shape says 737,280 images, memory holds one.
        placeholder = torch.zeros((1, 1, CANVAS, CANVAS), dtype=torch.uint8).expand(
            len(classes), 1, CANVAS, CANVAS)
        return _make(placeholder, classes, source="rendered (lazy)", cls=LazyDSprites)
    classes = factor_grid(0)
    images = torch.from_numpy(render_classes(classes)).unsqueeze(1)
    return _make(images, classes, source="rendered")


def counterpart_classes(classes: np.ndarray, by: str, to: str) -> np.ndarray:
    """Factor indices (N x 5) of the true counterparts in domain `to` of split `by`: the split's
    factor moved to the target domain, every other factor kept. By shape the shape index is
    replaced; by scale ("small" 0-2, "large" 3-5) index i of one bin becomes the same offset in the other."""
    from gm.data.domains import move_to_domain

    domains = DSPRITES_SPLITS.get(by)
    if domains is None:
        raise GMError(f"dSprites has no domain split '{by}'; its splits: {', '.join(DSPRITES_SPLITS)}.")
    if to not in domains:
        raise GMError(f"Unknown domain '{to}' of the dSprites split '{by}'; its domains: {', '.join(domains)}.")
    out = np.array(classes, dtype=np.int64, copy=True).reshape(-1, len(FACTOR_NAMES))
    col = FACTOR_NAMES.index(by)
    out[:, col] = move_to_domain(out[:, col], FACTOR_SIZES[col], len(domains), domains.index(to))
    return out


def _codes(classes: np.ndarray) -> np.ndarray:
    """One integer per factor combination (mixed radix over FACTOR_SIZES)."""
    code = np.zeros(len(classes), dtype=np.int64)
    for col, size in enumerate(FACTOR_SIZES):
        code = code * size + classes[:, col]
    return code


def counterparts(dataset: ImageDataset, index: torch.Tensor, by: str, to: str) -> torch.Tensor:
    """The dSprites counterpart hook (see gm.data.domains.counterparts): uint8 N x 1 x 64 x 64.

    A counterpart the dataset holds is taken from it, so a dataset loaded from DeepMind's file is
    compared with DeepMind's drawing of the target shape; the others (a subset) are rendered here."""
    if dataset.factor_classes is None:
        raise GMError("This dSprites dataset has no factor values, so its true counterparts are unknown.")
    index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
    wanted = counterpart_classes(dataset.factor_classes[index].numpy(), by, to)
    have = _codes(dataset.factor_classes.numpy())
    order = np.argsort(have, kind="stable")
    codes = _codes(wanted)
    at = np.minimum(np.searchsorted(have[order], codes), len(order) - 1)
    found = have[order][at] == codes
    out = torch.zeros((len(index), 1, CANVAS, CANVAS), dtype=torch.uint8)
    if found.any():
        out[torch.from_numpy(found)] = dataset.take(torch.from_numpy(order[at[found]]))
    if not found.all():
        out[torch.from_numpy(~found)] = torch.from_numpy(render_classes(wanted[~found])).unsqueeze(1)
    return out


DSPRITES_SPLITS = {"shape": SHAPES, "scale": ("small", "large")}

register_dataset(DatasetSpec(
    name="dsprites",
    description="sprites rendered from shape, scale, orientation and position; 18,432 (orientation 0) by default",
    image_shape=(1, CANVAS, CANVAS), max_value=1, value_range="binary: 0 or 1",
    classes=SHAPES, class_factor="shape", factors=FACTOR_NAMES, factor_sizes=FACTOR_SIZES,
    domain_splits=DSPRITES_SPLITS,
    evaluator="dsprites_classifier", coverage="shape",
    loader="gm.data.dsprites:load_dsprites", splits=("train",),
    counterpart="gm.data.dsprites:counterparts",
))
