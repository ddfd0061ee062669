"""What every feature extractor shares: image sets, batching, progress (done, total, ETA), cancelling
and an up-front time estimate.

An extractor is any callable ``images in [0, 1] (N x C x H x W) -> float64 N x D`` with attributes
``kind`` ("inception" | "classifier" | "offline"), ``name``, ``dims``, ``weights_hash``, ``batch_size`` and
``device`` (see :class:`gm.metrics.inception.InceptionFeatures`,
:class:`gm.metrics.classifiers.ClassifierFeatures`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from gm.errors import GMError
from gm.metrics.frechet import Moments

if TYPE_CHECKING:
    from gm.runs.distributed import Group

# progress(done_images, total_images, eta_seconds or None)
ProgressFn = Callable[[int, int, "float | None"], None]


class Extractor(Protocol):
    kind: str
    name: str
    dims: int
    weights_hash: str
    batch_size: int
    device: torch.device

    def __call__(self, images: torch.Tensor) -> np.ndarray: ...


class Cancelled(GMError):
    """The user cancelled an evaluation (its cancel event was set)."""


@dataclass
class ImageSet:
    """N images kept compactly (uint8 or float) and handed out as float batches in [0, 1]."""

    data: torch.Tensor        # N x C x H x W
    max_value: float          # what 1.0 is in `data`: 255 for 8-bit, 1 for binary or float data
    description: str = ""

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    def batch(self, start: int, stop: int) -> torch.Tensor:
        return self.data[start:stop].float().div_(self.max_value).clamp_(0, 1)

    def batches(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        """Images [start, stop) (default: all) in batches of `size`, counted from `start`."""
        stop = len(self) if stop is None else min(stop, len(self))
        for s in range(start, stop, size):
            yield self.batch(s, min(s + size, stop))


class Tracker:
    """Counts images through every phase of one evaluation; reports progress and honours cancel."""

    def __init__(self, total: int, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.total = max(0, int(total))
        self.done = 0
        self.progress = progress
        self.cancel = cancel
        self.start = time.perf_counter()

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("Evaluation cancelled; nothing was recorded.")

    def add_work(self, images: int) -> None:
        self.total += images
        self.report()

    def advance(self, images: int) -> None:
        self.done += images
        self.report()
        self.check()

    def eta(self) -> float | None:
        elapsed = time.perf_counter() - self.start
        if self.done <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.total - self.done) * elapsed / self.done)

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, self.eta())


def extract(extractor: Extractor, batches: Iterator[torch.Tensor], tracker: Tracker | None = None,
            on_batch: Callable[[torch.Tensor, np.ndarray], Any] | None = None) -> np.ndarray:
    """Features of every batch (float64, N x D); `on_batch(images, features)` sees each batch too."""
    out: list[np.ndarray] = []
    for images in batches:
        if tracker is not None:
            tracker.check()
        feats = extractor(images)
        if on_batch is not None:
            on_batch(images, feats)
        out.append(feats)
        if tracker is not None:
            tracker.advance(images.shape[0])
    if not out:
        raise GMError("No images to compute features of.")
    return np.concatenate(out, axis=0)


def extract_moments(extractor: Extractor, batches: Iterator[torch.Tensor],
                    tracker: Tracker | None = None, group: Group | None = None) -> Moments:
    """Mean and covariance of the features of every batch, accumulated as they come.

    Only one batch of images and its features exist at a time (images are resized to 299x299 inside
    the extractor, batch by batch), so memory does not grow with the number of images. With a
    process `group`, `batches` are this rank's share and the result is every rank's together
    (gm.metrics.sharding.reduce_moments; a rank with no batches takes part all the same).
    """
    moments = Moments()
    for images in batches:
        if tracker is not None:
            tracker.check()
        moments.add(extractor(images))
        if tracker is not None:
            tracker.advance(images.shape[0])
    if group is not None:
        from gm.metrics.sharding import reduce_moments
        moments = reduce_moments(moments, group)
    if moments.n == 0:
        raise GMError("No images to compute features of.")
    return moments


def measure_rate(extractor: Extractor, image_shape: tuple[int, int, int], min_seconds: float = 0.5) -> float:
    """Images per second of `extractor` on this machine, timed on random batches after a warm-up.

    Inception on a CPU runs at a few images per second (28x28 inputs are resized to 299x299), so a
    batch of 4 gives an honest rate within a second or two; small classifiers are dominated by
    per-call overhead at that size, so the batch grows until one call takes `min_seconds` (or
    reaches the extractor's own batch size).
    """
    batch = 4
    while True:
        x = torch.rand((batch, *image_shape))
        extractor(x)  # warm-up: the first call at a batch size allocates and picks kernels
        t = time.perf_counter()
        extractor(x)
        elapsed = max(time.perf_counter() - t, 1e-6)
        if elapsed >= min_seconds or batch >= extractor.batch_size:
            return batch / elapsed
        batch = min(batch * 4, extractor.batch_size)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


_hash_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime): the 95 MB Inception file is hashed once."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _hash_memo[key] = h.hexdigest()
    return _hash_memo[key]
