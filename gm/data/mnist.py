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
    check_raw_files(root / "MNIST" / "raw", train)  # before torchvision, whose parser asserts
    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise GMError(_missing(root)) from None
        try:
            ds = MNIST(str(root), train=train, download=True)
        except Exception:
            raise GMError(_missing(root)) from None
        check_raw_files(root / "MNIST" / "raw", train)
    images = ds.data.to(torch.uint8).unsqueeze(1).contiguous()
    labels = ds.targets.to(torch.int64).clone()
    return ImageDataset(name="mnist", images=images, max_value=255, labels=labels, num_classes=10,
                        meta={"source": str(root), "split": "train" if train else "test"})


# idx format (http://yann.lecun.com/exdb/mnist/): a big-endian magic number (0x0803 images, 0x0801
# labels), the count, for images rows and columns, then one byte per pixel or label.
_IDX = {"images": (0x00000803, 16, 28 * 28), "labels": (0x00000801, 8, 1)}


def check_idx_file(path: Path, kind: str) -> int:
    """The number of items in one raw MNIST idx file; a GMError naming the damage if its header,
    size or labels are not those of MNIST."""
    magic_expected, header, per_item = _IDX[kind]

    def damaged(what: str) -> GMError:
        return GMError(f"MNIST file {path} is damaged: {what}; delete it so gm downloads it again, or put the "
                       f"original file there.")

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(header)
            labels = fh.read() if kind == "labels" else b""
    except OSError as exc:
        raise GMError(f"MNIST file {path} cannot be read ({exc.strerror}); check its permissions.") from None
    if len(head) < header:
        raise damaged(f"it is {size} bytes, shorter than the {header}-byte idx header")
    magic = int.from_bytes(head[:4], "big")
    if magic != magic_expected:
        raise damaged(f"it starts with 0x{magic:08x}, not 0x{magic_expected:08x} (MNIST {kind} in idx format)")
    count = int.from_bytes(head[4:8], "big")
    if kind == "images":
        rows, cols = int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big")
        if (rows, cols) != (28, 28):
            raise damaged(f"its header says {rows} x {cols} images, not 28 x 28")
    if count == 0:
        raise damaged("its header says it holds no " + kind)
    if size != header + count * per_item:
        raise damaged(f"its header says {count:,} {kind}, but its {size:,} bytes hold "
                      f"{max(0, size - header) / per_item:,.0f}")
    if labels and max(labels) > 9:
        raise damaged(f"it holds the label {max(labels)}; digits are 0 to 9")
    return count


def check_raw_files(raw: Path, train: bool) -> None:
    """Check the split's two idx files when they are there (missing ones are torchvision's to fetch)."""
    prefix = "train" if train else "t10k"
    counts = {}
    for kind in ("images", "labels"):
        path = raw / f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        if path.is_file():
            counts[kind] = check_idx_file(path, kind)
    if len(counts) == 2 and counts["images"] != counts["labels"]:
        raise GMError(f"The MNIST files in {raw} disagree: {counts['images']:,} {prefix} images but "
                      f"{counts['labels']:,} labels; delete both so gm downloads them again.")


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
