"""Datasets by name, through the registry in :mod:`gm.data.registry`: dSprites (rendered or the
official .npz), MNIST (torchvision) and mnist-style (MNIST digits drawn plain, bold or slanted) ship
with gm; `python -m gm datasets` lists them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import overload

from gm.data.base import Batch, Batcher, ImageDataset, to_signed, to_unit
from gm.data.domains import DomainBatcher, make_batcher, split_domains
from gm.data.registry import (
    DATASETS,
    DatasetSpec,
    dataset,
    dataset_names,
    get_dataset_spec,
    register_dataset,
    unregister_dataset,
)


def default_data_dir() -> Path:
    """`GM_DATA_DIR` when set, else ~/.cache/gm/data."""
    env = os.environ.get("GM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gm" / "data"


@overload
def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, train: bool = True,
                 domains: None = None, **kwargs) -> ImageDataset: ...


@overload
def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, train: bool = True,
                 domains: str, **kwargs) -> dict[str, ImageDataset]: ...


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, train: bool = True,
                 domains: str | None = None, **kwargs) -> ImageDataset | dict[str, ImageDataset]:
    """A registered dataset (its test split when train=False); with `domains`, one dataset per
    domain of that split, e.g. ``load_dataset("dsprites", domains="shape")``."""
    ds = get_dataset_spec(name).load(data_dir, train=train, **kwargs)
    return ds if domains is None else split_domains(ds, domains)


__all__ = ["Batch", "Batcher", "DATASETS", "DatasetSpec", "DomainBatcher", "ImageDataset", "dataset",
           "dataset_names", "default_data_dir", "get_dataset_spec", "load_dataset", "make_batcher",
           "register_dataset", "split_domains", "to_signed", "to_unit", "unregister_dataset"]
