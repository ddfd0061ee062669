"""Evaluation on several processes (``gm fid | eval | stats --nproc N``, or any of them under torchrun):
which images each rank measures, and how the ranks' outputs are put back together so that every
number equals the one-process number (to round-off: 1e-6 relative is the promise, 1e-12 the usual).

- **Which images.** The work of one pass is the stream of batches one process would make (batch b
  holds images ``[b * size, (b + 1) * size)``); rank r takes a contiguous run of whole batches
  (:func:`shard`). So every batch, and every sampling chunk with its own seed
  (:func:`gm.metrics.sources.sample_batches`), is exactly one process's: each image is measured once,
  from the same noise, in a batch of the same composition (a network's output for an image could
  otherwise move in the last float32 bits with the batch it sits in). Contiguous runs rather than
  every N-th batch: a rank then samples only the chunks under its run (at most one chunk on each
  border is drawn by two ranks).
- **Statistics** (FID): each rank accumulates count, sum and sum of outer products in float64;
  :func:`reduce_moments` re-centres them on one process's shift (the mean of the first batch, held by
  the first rank with any images) and sums them over the ranks; mean and covariance follow as in one
  process.
- **Per-image outputs** a metric needs whole (k-NN precision/recall, class histograms, MIG,
  translation scores): gathered in rank order (:func:`gather_arrays`), which is the one-process order,
  so the metric runs on the very arrays one process would have.

Every function takes ``group=None`` for one process and then does nothing collective, so the
one-process path stays what it was. ``group`` is a :class:`gm.runs.distributed.Group`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from gm.metrics.frechet import Moments

if TYPE_CHECKING:
    from gm.runs.distributed import Group

T = TypeVar("T")


def world_size(group: Group | None) -> int:
    return 1 if group is None else int(group.world_size)


def shard(total: int, size: int, group: Group | None) -> tuple[int, int]:
    """This rank's images ``[lo, hi)`` of a pass over `total` images in batches of `size`: a contiguous
    run of whole batches, in rank order. When the batches do not divide evenly the last ranks take one
    more (the last batch may be a short one, so the shares even out); with fewer batches than ranks
    the first ranks get an empty range. One process: ``(0, total)``."""
    total, size = max(0, int(total)), max(1, int(size))
    if group is None or group.world_size <= 1:
        return 0, total
    batches = -(-total // size)
    world, r = group.world_size, group.rank
    per, extra = divmod(batches, world)
    more = world - extra                 # ranks from here on take per + 1 batches
    first = r * per + max(0, r - more)
    count = per + (1 if r >= more else 0)
    return min(first * size, total), min((first + count) * size, total)


def local_count(total: int, size: int, group: Group | None) -> int:
    """How many of `total` images this rank measures (progress totals count a rank's own work)."""
    lo, hi = shard(total, size, group)
    return hi - lo


def gather_arrays(parts: dict[str, list[np.ndarray]], group: Group | None) -> dict[str, np.ndarray]:
    """``{key: the arrays of every rank concatenated along axis 0, in rank order}``.

    Each rank passes its own pieces, in its own order; ranks are contiguous runs of the one-process
    stream, so the result is the array one process builds with ``np.concatenate``. A key a rank has no
    pieces of (an empty range) simply has nothing from it. One process: each list concatenated."""
    local = {k: np.concatenate(v) for k, v in parts.items() if v}
    if group is None or group.world_size <= 1:
        return local
    everyone = group.gather_objects(local)
    keys: list[str] = []
    for d in everyone:
        keys += [k for k in d if k not in keys]
    return {k: np.concatenate([d[k] for d in everyone if k in d]) for k in keys}


def main_then_share(group: Group | None, fn: Callable[[], T]) -> T:
    """fn() on rank 0 only (what writes files or costs more than it is worth to split: the final
    figures, k-NN metrics, recording), its value handed to every rank. A failure there stops every
    rank (rank 0 raises its own error, the others RankFailed). One process: fn()."""
    if group is None:
        return fn()
    return group.broadcast_object(group.on_main(fn))


def reduce_moments(moments: Moments, group: Group | None) -> Moments:
    """The Moments of every rank's feature vectors together, on every rank (a collective: all ranks
    call it). Sums are float64 and re-centred on one shift before they are added, so nothing is lost to
    cancellation; the rows for :meth:`Moments.factor` are gathered when the total stays within
    ``keep_rows``, as one process keeps them."""
    if group is None or group.world_size <= 1:
        return moments
    n, shift, total, outer = moments.sums()
    # Ranks hold the stream in order, so the first rank with images holds the first batch, whose mean
    # is the shift one process uses.
    common = next((s for s in group.gather_objects(shift) if s is not None), None)
    if common is None:            # no images anywhere
        return Moments(keep_rows=moments.keep_rows, block=moments.block)
    d = common.shape[0]
    if n:
        assert shift is not None and total is not None and outer is not None
        # x - common = (x - shift) + delta: sums around `shift` re-centred on `common`
        delta = shift - common
        outer = outer + np.outer(total, delta) + np.outer(delta, total) + n * np.outer(delta, delta)
        total = total + n * delta
    else:
        total, outer = np.zeros(d), np.zeros((d, d))
    packed = torch.from_numpy(np.concatenate([[float(n)], total, outer.reshape(-1)]))
    summed = group.all_sum(packed).numpy()
    count = int(round(float(summed[0])))
    rows = None
    if count <= moments.keep_rows:   # then every rank kept its rows (none had more than the total)
        kept = moments.kept_rows()
        pieces = group.gather_objects(kept if n else None)
        rows = [p for p in pieces if p is not None]
    return Moments.from_sums(count, common, summed[1:1 + d], summed[1 + d:].reshape(d, d), rows=rows,
                             keep_rows=moments.keep_rows, block=moments.block)
