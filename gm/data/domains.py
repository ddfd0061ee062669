"""Datasets split into named domains, and unpaired sampling from several domains at once.

A split (declared by the dataset's spec, e.g. dSprites by "shape" or by "scale") gives one
ImageDataset per domain. :class:`DomainBatcher` draws from each with its own shuffled stream, so a
step sees `batch_size` images of every domain with no pairing between them: what unpaired
image-to-image translation trains on. :func:`counterparts` gives, where the dataset's spec knows
how, the true image of the same content in another domain: the ground truth translation is scored by.
"""

from __future__ import annotations

import numpy as np
import torch

from gm.data.base import Batch, Batcher, ImageDataset
from gm.errors import GMError


def split_domains(dataset: ImageDataset, by: str) -> dict[str, ImageDataset]:
    """One dataset per domain of the split `by` declared in the dataset's spec, in the spec's order.

    Each part keeps its images' labels and factors, notes its domain in meta["domain"] (which
    batches key it by), and stays lazy when the dataset is.
    """
    from gm.data.registry import get_dataset_spec

    spec = get_dataset_spec(dataset.name)
    names = spec.domains(by)
    which = spec.domain_index(dataset, by)
    return {name: dataset.subset(torch.nonzero(which == i).reshape(-1), domain=name, domain_split=by)
            for i, name in enumerate(names)}


def bin_start(domain: int, size: int, n_domains: int) -> int:
    """First value index of domain `domain` when `size` values are binned into `n_domains` equal
    consecutive ranges the way :meth:`DatasetSpec.domain_index` bins them (v * n_domains // size)."""
    return -(-domain * size // n_domains)


def move_to_domain(values: np.ndarray, size: int, n_domains: int, to: int) -> np.ndarray:
    """Value indices moved into bin `to` at the same offset from their own bin's start.

    The ground truth of a binned split: dSprites' scale index 1 ("small": 0-2) becomes 4 in "large"
    (3-5), the same step up from the bin's smallest size. With unequal bins the offset is clipped to
    the target bin, so every value lands inside it.
    """
    values = np.asarray(values, dtype=np.int64)
    if not 0 <= to < n_domains:
        raise GMError(f"Domain index {to} is out of range for {n_domains} domains.")
    own = values * n_domains // size
    starts = np.array([bin_start(b, size, n_domains) for b in range(n_domains + 1)])
    offset = values - starts[own]
    return np.minimum(starts[to] + offset, starts[to + 1] - 1)


def counterparts(dataset: ImageDataset, index: torch.Tensor | np.ndarray | list[int], by: str,
                 to: str) -> torch.Tensor:
    """uint8 N x C x H x W: the true counterparts, in domain `to` of split `by`, of images `index`
    of `dataset` (same everything else: for dSprites by shape, the same scale, orientation and
    position drawn as the target shape).

    This is the ground truth that real translation datasets never have, so translations can be
    scored pixel by pixel. It comes from the dataset spec's ``counterpart`` hook; a dataset without
    one gets a one-sentence GMError.
    """
    from gm.data.registry import get_dataset_spec

    spec = get_dataset_spec(dataset.name)
    fn = spec.counterpart_fn()
    if fn is None:
        raise GMError(f"The {dataset.name} dataset has no ground truth counterparts, so translations "
                      f"into its domains cannot be compared with true images.")
    names = spec.domains(by)
    if to not in names:
        raise GMError(f"Unknown domain '{to}' of the {dataset.name} split '{by}'; its domains: "
                      f"{', '.join(names)}.")
    index = torch.as_tensor(np.asarray(index), dtype=torch.long).reshape(-1)
    out = fn(dataset, index, by, to)
    return torch.as_tensor(out, dtype=torch.uint8)


def _domain_seed(seed: int, i: int) -> int:
    # Distinct per domain and per seed, and small enough that Batcher's seed * 1_000_003 + epoch
    # stays inside torch's 64-bit generator seed.
    return (seed * 1_000_033 + 7_919 * (i + 1)) % (2 ** 31)


class DomainBatcher:
    """Unpaired batches from several domains: one independent, resumable permutation stream each.

    Epochs (epoch, epoch_float, ended_epoch, batches_per_epoch) follow the largest domain; smaller
    domains simply start their next pass sooner.
    """

    def __init__(self, datasets: dict[str, ImageDataset], batch_size: int, seed: int, device: torch.device,
                 *, with_labels: bool = False, with_factors: bool = False,
                 with_factor_classes: bool = False, shard: tuple[int, int] = (0, 1)) -> None:
        if not datasets:
            raise GMError("A DomainBatcher needs at least one domain.")
        for name, ds in datasets.items():
            if batch_size > len(ds):
                raise GMError(f"batch_size {batch_size} is larger than domain '{name}' ({len(ds)} images).")
        self.datasets = dict(datasets)
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.batchers = {name: Batcher(ds, batch_size, _domain_seed(seed, i), device,
                                       with_labels=with_labels, with_factors=with_factors,
                                       with_factor_classes=with_factor_classes, shard=shard)
                         for i, (name, ds) in enumerate(self.datasets.items())}
        self._lead = max(self.batchers.values(), key=lambda b: b.batches_per_epoch)  # first on ties

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.batchers)

    @property
    def batches_per_epoch(self) -> int:
        return self._lead.batches_per_epoch

    @property
    def epoch(self) -> int:
        return self._lead.epoch

    @property
    def position(self) -> int:
        return self._lead.position

    @property
    def epoch_float(self) -> float:
        return self._lead.epoch_float

    @property
    def ended_epoch(self) -> bool:
        """Did the last draw finish an epoch of the largest domain?"""
        return self._lead.ended_epoch

    def draw(self, k: int = 1) -> Batch:
        """k x batch_size images of every domain (and labels / factors when asked for)."""
        batch = Batch({})
        for name, batcher in self.batchers.items():
            part = batcher.draw(k)
            key = batcher.dataset.domain
            batch.images[name] = part.images[key]
            if key in part.labels:
                batch.labels[name] = part.labels[key]
            if key in part.factors:
                batch.factors[name] = part.factors[key]
            if key in part.factor_classes:
                batch.factor_classes[name] = part.factor_classes[key]
        return batch

    def state_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        return {"domains": {name: b.state_dict() for name, b in self.batchers.items()}}

    def load_state_dict(self, state: dict[str, dict[str, dict[str, int]]]) -> None:
        saved = state.get("domains")
        if not isinstance(saved, dict) or set(saved) != set(self.batchers):
            have = ", ".join(saved) if isinstance(saved, dict) else "none"
            raise GMError(f"The saved data position is for domains ({have}), not this run's "
                          f"({', '.join(self.batchers)}); resume with the same domain split.")
        for name, b in self.batchers.items():
            b.load_state_dict(saved[name])


def make_batcher(dataset: ImageDataset, batch_size: int, seed: int, device: torch.device, *,
                 with_labels: bool = False, with_factors: bool = False, with_factor_classes: bool = False,
                 domains: str | None = None, shard: tuple[int, int] = (0, 1)) -> Batcher | DomainBatcher:
    """A Batcher over the dataset, or, when `domains` names one of its splits, a DomainBatcher over it.
    `shard` = (rank, world size) under torchrun: each process keeps its slice of every global batch."""
    if domains is None:
        return Batcher(dataset, batch_size, seed, device, with_labels=with_labels, with_factors=with_factors,
                       with_factor_classes=with_factor_classes, shard=shard)
    return DomainBatcher(split_domains(dataset, domains), batch_size, seed, device,
                         with_labels=with_labels, with_factors=with_factors,
                         with_factor_classes=with_factor_classes, shard=shard)
