"""MNIST through torchvision: downloads when online; offline, one sentence on where the files go."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gm.data.base import ImageDataset
from gm.data.registry import DatasetSpec, register_dataset
from gm.errors import GMError

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_mnist(data_dir: str | os.PathLike | None = None, *, train: bool = True,
               download: bool = True) -> ImageDataset:
    """MNIST digits as uint8 N x 1 x 28 x 28 with labels."""
    from torchvision.datasets import MNIST

    from gm.data import default_data_dir

    root = Path(data_dir) if data_dir else default_data_dir()
    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise GMError(_missing(root)) from None
        try:
            ds = MNIST(str(root), train=train, download=True)
        except Exception:
            raise GMError(_missing(root)) from None
    images = ds.data.to(torch.uint8).unsqueeze(1).contiguous()
    labels = ds.targets.to(torch.int64).clone()
    return ImageDataset(name="mnist", images=images, max_value=255, labels=labels, num_classes=10,
                        meta={"source": str(root), "split": "train" if train else "test"})


def _missing(root: Path) -> str:
    return (f"MNIST is not in {root / 'MNIST' / 'raw'} and could not be downloaded; put the four raw "
            f"files ({', '.join(RAW_FILES)}) there, or pass --data-dir / set GM_DATA_DIR to a folder that "
            f"holds MNIST/raw.")


register_dataset(DatasetSpec(
    name="mnist",
    description="handwritten digits (torchvision MNIST)",
    image_shape=(1, 28, 28), max_value=255, value_range="grey levels 0-255",
    classes=tuple(str(d) for d in range(10)), class_factor="digit",
    evaluator="mnist_classifier", coverage="class",
    loader="gm.data.mnist:load_mnist", splits=("train", "test"),
))
