"""The dataset shape every trainer consumes, and the batcher that feeds it.

An :class:`ImageDataset` holds uint8 images (N x 1 x H x W) plus labels or factor values. The
:class:`Batcher` keeps a small dataset as one tensor on the training device and draws shuffled
index batches from a per-epoch permutation derived from (seed, epoch): no per-sample Python work in
the training loop, and the data order after a resume is exactly the one an uninterrupted run sees.
A :class:`Batch` is what one training step gets: images (and labels, factors) per named domain; a
single-domain dataset has one domain, named after the dataset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from gm.errors import GMError


@dataclass
class ImageDataset:
    name: str
    images: torch.Tensor                   # uint8, N x C x H x W
    max_value: int                         # 1 for binary dSprites, 255 for MNIST
    labels: torch.Tensor | None = None     # int64 N (MNIST digits; dSprites shape)
    factors: torch.Tensor | None = None    # float N x K ground-truth factor values (dSprites)
    factor_classes: torch.Tensor | None = None  # int64 N x K factor indices (dSprites)
    factor_names: tuple[str, ...] = ()
    num_classes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 images for the given indices (lazy datasets override this)."""
        return self.images[index]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def is_lazy(self) -> bool:
        """True when images are made on demand by `take` (then `images` is only a placeholder)."""
        return type(self).take is not ImageDataset.take

    @property
    def domain(self) -> str:
        """The domain these images are: the dataset's name unless this is one domain of a split."""
        return str(self.meta.get("domain", self.name))

    def subset(self, index: torch.Tensor, **meta: Any) -> ImageDataset:
        """The rows `index` as a dataset of their own (lazy datasets stay lazy); `meta` adds notes."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        rows = {"labels": pick(self.labels), "factors": pick(self.factors),
                "factor_classes": pick(self.factor_classes), "meta": {**self.meta, **meta}}
        if not self.is_lazy:
            return dataclasses.replace(self, images=self.images[index], **rows)
        # Indexing a lazy dataset's placeholder would materialise it (1 GB for all of dSprites):
        # the subset keeps a placeholder of its own and asks the parent to make its rows.
        placeholder = torch.zeros((1, *self.image_shape), dtype=torch.uint8).expand(len(index), *self.image_shape)
        parent, parent_rows = (self.parent, self.rows[index]) if isinstance(self, _LazySubset) else (self, index)
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(ImageDataset)}
        return _LazySubset(**{**base, **rows, "images": placeholder}, parent=parent, rows=parent_rows)


@dataclass
class _LazySubset(ImageDataset):
    """Some rows of a lazy dataset: `take` maps its indices to the parent's rows."""

    parent: ImageDataset | None = None
    rows: torch.Tensor | None = None

    def take(self, index: torch.Tensor) -> torch.Tensor:
        assert self.parent is not None and self.rows is not None
        return self.parent.take(self.rows[index])


def to_unit(images: torch.Tensor, max_value: int) -> torch.Tensor:
    """uint8 images -> float in [0, 1]."""
    x = images.float()
    return x if max_value == 1 else x.div_(max_value)  # x / 1 == x exactly: binary dSprites skip a pass


def to_signed(images: torch.Tensor, max_value: int) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (what tanh generators produce)."""
    return images.float().mul_(2.0 / max_value).sub_(1.0)


@dataclass
class Batch:
    """One step's data: uint8 N x C x H x W images per domain, and labels / factor values / factor
    indices per domain when the batcher was asked for them (else those dicts are empty)."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    factors: dict[str, torch.Tensor] = field(default_factory=dict)
    factor_classes: dict[str, torch.Tensor] = field(default_factory=dict)   # int64 factor indices

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.images)

    @property
    def num_images(self) -> int:
        return sum(int(x.shape[0]) for x in self.images.values())

    def _single(self) -> str:
        if len(self.images) != 1:
            raise GMError(f"This batch has {len(self.images)} domains ({', '.join(self.images)}); a model that "
                          f"takes one image tensor needs a single-domain dataset.")
        return next(iter(self.images))

    def only(self) -> torch.Tensor:
        """The images of a single-domain batch."""
        return self.images[self._single()]

    def only_labels(self) -> torch.Tensor | None:
        """The labels of a single-domain batch, or None when labels were not asked for."""
        return self.labels.get(self._single())


class Batcher:
    """Shuffled, drop-last index batches over an ImageDataset, resumable from (epoch, position)."""

    def __init__(self, dataset: ImageDataset, batch_size: int, seed: int, device: torch.device,
                 *, with_labels: bool = False, with_factors: bool = False,
                 with_factor_classes: bool = False, shard: tuple[int, int] = (0, 1)) -> None:
        if batch_size > len(dataset):
            raise GMError(f"batch_size {batch_size} is larger than the dataset ({len(dataset)} images).")
        rank, world = shard
        if batch_size % world:
            raise GMError(f"batch_size {batch_size} does not split over {world} processes; use a multiple of "
                          f"{world} or --set per_rank_batch=true.")
        self.dataset = dataset
        self.batch_size = batch_size        # the global batch: what every rank's permutation walks
        self.shard = (rank, world)          # this process keeps rows [rank*b, (rank+1)*b) of each batch
        self.seed = seed
        self.device = device
        self.with_labels = with_labels
        self.epoch = 0
        self.position = 0
        self.ended_epoch = False  # set by draw(): did that draw finish an epoch?
        self._images = dataset.images.to(device) if not dataset.is_lazy else None
        self._labels = dataset.labels.to(device) if (with_labels and dataset.labels is not None) else None
        self._factors = dataset.factors.to(device) if (with_factors and dataset.factors is not None) else None
        self._factor_classes = (dataset.factor_classes.to(device)
                                if (with_factor_classes and dataset.factor_classes is not None) else None)
        self._perm: torch.Tensor | None = None
        self._perm_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    @property
    def epoch_float(self) -> float:
        return self.epoch + self.position / (self.batches_per_epoch * self.batch_size)

    def _permutation(self) -> torch.Tensor:
        if self._perm_epoch != self.epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(len(self.dataset), generator=gen).to(self.device)
            self._perm_epoch = self.epoch
        assert self._perm is not None
        return self._perm

    def _next_index(self) -> torch.Tensor:
        if self.position + self.batch_size > self.batches_per_epoch * self.batch_size:
            self.epoch += 1
            self.position = 0
        index = self._permutation()[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return index

    def _images_at(self, index: torch.Tensor) -> torch.Tensor:
        # index_select, not images[index]: the same rows, but on a CPU advanced indexing gathers
        # a batch of 64 dSprites 28x slower (0.7 ms against 25 us).
        if self._images is not None:
            return torch.index_select(self._images, 0, index)
        return self.dataset.take(index.cpu()).to(self.device, non_blocking=True)

    def _own_rows(self, index: torch.Tensor) -> torch.Tensor:
        """This process's slice of a global batch's indices (all of them on one process)."""
        rank, world = self.shard
        if world == 1:
            return index
        b = self.batch_size // world
        return index[rank * b:(rank + 1) * b]

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next (uint8 images, labels or None) batch on the device (this process's shard)."""
        index = self._own_rows(self._next_index())
        labels = torch.index_select(self._labels, 0, index) if self._labels is not None else None
        return self._images_at(index), labels

    def draw(self, k: int = 1) -> Batch:
        """The next k batches as one Batch (k x batch_size images, in next()'s order; under torchrun
        this process's shard of each); sets ended_epoch."""
        epoch_before = self.epoch
        parts = [self._own_rows(self._next_index()) for _ in range(k)]
        # One gather for all k: the same rows as k next() calls, in the same order.
        index = parts[0] if k == 1 else torch.cat(parts)
        self.ended_epoch = self._ended_epoch(epoch_before, k * self.batch_size)
        key = self.dataset.domain
        batch = Batch({key: self._images_at(index)})
        if self._labels is not None:
            batch.labels[key] = torch.index_select(self._labels, 0, index)
        if self._factors is not None:
            batch.factors[key] = torch.index_select(self._factors, 0, index)
        if self._factor_classes is not None:
            batch.factor_classes[key] = torch.index_select(self._factor_classes, 0, index)
        return batch

    def _ended_epoch(self, epoch_before: int, drawn: int) -> bool:
        """Did the draw that started in epoch_before and took `drawn` images finish an epoch?

        An epoch ends when its last full batch is drawn (position reaches the end). A draw of several
        batches (critic iterations) can also cross the boundary midway: then the epoch changed and
        fewer than `drawn` images were drawn in the new one. A draw whose very first batch starts
        the new epoch crossed nothing new: the previous draw already ended that epoch.
        """
        if self.position >= self.batches_per_epoch * self.batch_size:
            return True
        return self.epoch != epoch_before and self.position < drawn

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
