"""What a user can measure, as pytorch-fid accepts it and a bit more.

A source is a run folder (n images are sampled from its latest checkpoint), a folder of images,
an ``.npz`` of images (N x H x W, N x C x H x W or N x H x W x C; uint8, bool or float in [0, 1]) or
a statistics ``.npz`` (``mu`` and ``sigma``, as pytorch-fid's ``--save-stats`` writes and as the
stats cache stores). Real images of a dataset are a seeded random subset of one split.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gm.errors import GMError
from gm.metrics.features import ImageSet

IMAGE_EXTENSIONS = {"bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp"}  # pytorch-fid's
SAMPLE_CHUNK = 250   # images per sampling call; fixed so a seed names the same images on every machine


@dataclass
class Source:
    kind: str                              # "run" | "images" | "stats"
    path: Path
    dataset: str | None = None             # a run's dataset
    images: ImageSet | None = None         # kind == "images"
    mu: np.ndarray | None = None           # kind == "stats"
    sigma: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # stats: the cache's key JSON when beside it

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


def open_source(spec: str | Path) -> Source:
    """Classify what `spec` points at (no sampling or feature extraction yet)."""
    path = Path(spec).expanduser()
    if not path.exists():
        path = _named_run(str(spec)) or path
    if not path.exists():
        raise GMError(f"{path} does not exist; give a run folder (or a run's or pretrained entry's name), a "
                      f"folder of images, an images .npz or a stats .npz.")
    if path.is_dir():
        if (path / "config.json").is_file():
            from gm.runs.folder import RunFolder
            cfg = RunFolder.open(path).read_config()
            return Source("run", path, dataset=cfg.get("dataset"))
        return Source("images", path, images=load_image_folder(path))
    if path.suffix.lower() == ".npz":
        return _open_npz(path)
    raise GMError(f"{path} is neither a folder nor an .npz file; give a run folder, a folder of images, an "
                  f"images .npz or a stats .npz.")


def _named_run(name: str) -> Path | None:
    """The folder of a pretrained entry ("stargan") or of a run in the runs folder, as `gm.load_model`
    and `gm translate` take them; None when `name` is neither (or looks like a path)."""
    if not name or "/" in name or "\\" in name or name.endswith(".npz"):
        return None
    from gm.models.loading import resolve_run
    try:
        return resolve_run(name).path
    except GMError:
        return None


def _open_npz(path: Path) -> Source:
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = set(archive.files)
            if {"mu", "sigma"} <= files:
                mu, sigma = np.asarray(archive["mu"], np.float64), np.asarray(archive["sigma"], np.float64)
                meta_path = path.with_suffix(".json")
                meta = {}
                if meta_path.is_file():
                    from gm.metrics.stats import read_sidecar
                    meta = read_sidecar(meta_path)  # a damaged key: one sentence, never a wrong FID label
                if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
                    raise GMError(f"{path} has mu {mu.shape} and sigma {sigma.shape}; expected D and D x D.")
                if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
                    raise GMError(f"{path} holds NaN or infinite statistics; recompute them with "
                                  f"`python -m gm stats`.")
                return Source("stats", path, mu=mu, sigma=sigma, meta=meta)
            key = next((k for k in ("images", "imgs", "x", "samples", "arr_0") if k in files), None)
            if key is None and len(files) == 1:
                key = next(iter(files))
            if key is None:
                raise GMError(f"{path} holds {', '.join(sorted(files))}; expected an 'images' array or 'mu' "
                              f"and 'sigma' statistics.")
            array = archive[key]
    except GMError:
        raise
    except Exception as exc:
        raise GMError(f"{path} cannot be read as .npz ({type(exc).__name__}: {exc}).") from None
    return Source("images", path, images=images_from_array(array, f"{path} [{key}]"))


def images_from_array(array: np.ndarray, description: str = "array") -> ImageSet:
    """N x H x W / N x C x H x W / N x H x W x C arrays (uint8, bool, float in [0, 1]) -> ImageSet."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in (1, 3) and a.shape[-1] in (1, 3):
        a = np.transpose(a, (0, 3, 1, 2))
    if a.ndim != 4 or a.shape[1] not in (1, 3) or a.shape[0] == 0:
        raise GMError(f"{description} has shape {a.shape}; expected N x H x W or N x C x H x W with C = 1 or 3.")
    if a.dtype == np.bool_:
        return ImageSet(torch.from_numpy(a.astype(np.uint8)), 1.0, description)
    if a.dtype == np.uint8:
        # dSprites archives store binary pixels as uint8 0/1: read those as black and white, not as 0-1/255.
        max_value = 1.0 if int(a.max()) <= 1 else 255.0
        return ImageSet(torch.from_numpy(np.ascontiguousarray(a)), max_value, description)
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if not np.isfinite(a).all() or lo < -1e-3 or hi > 1 + 1e-3:
            raise GMError(f"{description} holds floats in [{lo:.3g}, {hi:.3g}]; float images must be in [0, 1] "
                          f"(map [-1, 1] images with (x + 1) / 2).")
        return ImageSet(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)), 1.0, description)
    raise GMError(f"{description} has dtype {a.dtype}; use uint8, bool or float images.")


def load_image_folder(path: Path) -> ImageSet:
    """Every image file in `path` (not recursive), as pytorch-fid lists them; all must share one size.

    Headers are read first (cheap): an unreadable file or a second size is one sentence before any
    pixels are decoded, and the whole folder must fit in memory (gm.limits.check_images)."""
    from PIL import Image

    from gm.limits import check_images

    files = sorted(f for ext in IMAGE_EXTENSIONS for f in path.glob(f"*.{ext}"))
    if not files:
        raise GMError(f"{path} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) and no config.json; "
                      f"give a run folder or a folder of images.")
    sizes: dict[tuple[int, int], Path] = {}
    colour = False
    for f in files:
        try:
            with Image.open(f) as img:
                sizes.setdefault(img.size, f)
                colour = colour or img.mode not in _GREY_MODES
        except Exception as exc:
            raise GMError(f"{f} cannot be read as an image ({type(exc).__name__}); delete it or replace it.") from None
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise GMError(f"The images in {path} have different sizes ({fa.name} is {a[0]} x {a[1]}, {fb.name} is "
                          f"{b[0]} x {b[1]}); resize them to one size first.")
    (width, height), = sizes
    check_images(len(files), width * height * (3 if colour else 1), f"the images in {path}")
    arrays = []
    for f in files:
        try:
            with Image.open(f) as img:
                grey = img.mode in _GREY_MODES
                arr = np.asarray(img.convert("L" if grey else "RGB"))
        except Exception as exc:
            raise GMError(f"{f} cannot be read as an image ({type(exc).__name__}); delete it or replace it.") from None
        arrays.append(arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1)))
    channels = max(a.shape[0] for a in arrays)
    # Mixed grey and colour files: repeat grey to RGB, as pytorch-fid's RGB conversion does.
    stacked = np.stack([np.repeat(a, channels, axis=0) if a.shape[0] != channels else a for a in arrays])
    return ImageSet(torch.from_numpy(stacked), 255.0, str(path))


_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


# ---- real images ------------------------------------------------------------------------------
_datasets: dict[tuple[str, str, str], Any] = {}
_datasets_lock = threading.Lock()


def _load_memo(dataset: str, split: str, data_dir: str | None, load_dataset) -> Any:
    """Datasets stay in memory once loaded: rendering dSprites takes seconds, and an app or a test
    session evaluates many times against the same real images."""
    from gm.data import default_data_dir

    key = (dataset, split, str(Path(data_dir).resolve() if data_dir else default_data_dir()))
    with _datasets_lock:
        if key not in _datasets:
            _datasets[key] = load_dataset(dataset, data_dir, train=split == "train")
        return _datasets[key]


@dataclass
class RealImages:
    images: ImageSet
    indices: torch.Tensor
    fingerprint: str          # sha256 of the selected uint8 images: the stats cache's data key
    size: int                 # images in the split
    dataset: Any              # the ImageDataset (labels and factors for MIG and tests)


def real_images(dataset: str, n: int, seed: int = 0, split: str = "train",
                data_dir: str | None = None) -> RealImages:
    """A seeded random subset of n images of a dataset split: the same for every model compared."""
    from gm.data import get_dataset_spec, load_dataset

    if split not in ("train", "test"):
        raise GMError(f"Unknown split '{split}'; use train or test.")
    splits = get_dataset_spec(dataset).splits
    if split not in splits:
        raise GMError(f"The {dataset} dataset has no {split} split; use --split {' or '.join(splits)}.")
    ds = _load_memo(dataset, split, data_dir, load_dataset)
    if n < 2:
        raise GMError(f"--n must be at least 2; got {n}.")
    if n > len(ds):
        raise GMError(f"The {dataset} {split} split has only {len(ds):,} images, fewer than n = {n:,}; pass "
                      f"--n {len(ds)} or less (or provide the full dataset in the data folder).")
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    data = ds.take(idx).contiguous()
    digest = hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]
    return RealImages(ImageSet(data, float(ds.max_value), f"{dataset} {split} n={n} seed={seed}"), idx,
                      digest, len(ds), ds)


# ---- generated images -------------------------------------------------------------------------
def sample_batches(trainer: Any, n: int, seed: int, labels: torch.Tensor | None = None,
                   chunk: int = SAMPLE_CHUNK, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
    """n samples of a trainer in fixed chunks, quantised to 8 bits as PNG files would be.

    Quantising makes our FID of a run equal pytorch-fid's on the same samples saved as PNGs; chunk i
    uses seed ``seed * 1_000_003 + i`` so two evaluation seeds never share images. `start` / `stop`
    keep only samples [start, stop) of those n (a process's share, gm.metrics.sharding): the chunks
    under that range are drawn whole with their own seeds, so every image is the one n samples hold.
    """
    stop = n if stop is None else min(stop, n)
    for i, first in enumerate(range(0, n, chunk)):
        k = min(chunk, n - first)
        if first + k <= start or first >= stop:
            continue
        part = labels[first:first + k] if labels is not None else None
        x = trainer.sample(k, seed=seed * 1_000_003 + i, labels=part) if part is not None else \
            trainer.sample(k, seed=seed * 1_000_003 + i)
        x = torch.round(x.detach().float().cpu().clamp(0, 1) * 255) / 255
        yield x if start <= first and first + k <= stop else x[max(0, start - first):stop - first]
