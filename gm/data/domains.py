"""Datasets split into named domains, and unpaired sampling from several domains at once.

A split (declared by the dataset's spec, e.g. dSprites by "shape" or by "scale") gives one
ImageDataset per domain. :class:`DomainBatcher` draws from each with its own shuffled stream, so a
step sees `batch_size` images of every domain with no pairing between them: what unpaired
image-to-image translation trains on.
"""

from __future__ import annotations

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
                 *, with_labels: bool = False, with_factors: bool = False) -> None:
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
                                       with_labels=with_labels, with_factors=with_factors)
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
                 with_labels: bool = False, with_factors: bool = False,
                 domains: str | None = None) -> Batcher | DomainBatcher:
    """A Batcher over the dataset, or, when `domains` names one of its splits, a DomainBatcher over it."""
    if domains is None:
        return Batcher(dataset, batch_size, seed, device, with_labels=with_labels, with_factors=with_factors)
    return DomainBatcher(split_domains(dataset, domains), batch_size, seed, device,
                         with_labels=with_labels, with_factors=with_factors)
