"""Datasets by name: dSprites (rendered or the official .npz) and MNIST (torchvision)."""

from __future__ import annotations

import os
from pathlib import Path

from gm.data.base import Batcher, ImageDataset, to_signed, to_unit
from gm.errors import GMError

DATASETS = ("dsprites", "mnist")


def default_data_dir() -> Path:
    """`GM_DATA_DIR` when set, else ~/.cache/gm/data."""
    env = os.environ.get("GM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gm" / "data"


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, train: bool = True,
                 **kwargs) -> ImageDataset:
    if name == "dsprites":
        from gm.data.dsprites import load_dsprites
        return load_dsprites(data_dir, **kwargs)
    if name == "mnist":
        from gm.data.mnist import load_mnist
        return load_mnist(data_dir, train=train, **kwargs)
    raise GMError(f"Unknown dataset '{name}'; use one of {', '.join(DATASETS)}.")


__all__ = ["Batcher", "ImageDataset", "DATASETS", "default_data_dir", "load_dataset", "to_signed", "to_unit"]
