"""The offline realism evaluator: `gm fid --features offline`, `fid_offline`, recognisable share and
within-class diversity.

Classifier FID on the digit classifier's 96 penultimate features mostly measures class balance: grey
blobs that the classifier happens to call 2, 4 and 8 score better than real digits that are all 1s.
This evaluator fixes that with two changes, and its Fréchet distance is validated, not assumed
(``bench/offline_metric.py``, ``tests/test_offline_metric.py``: the disturbance tests of Heusel et al.
2017 rise monotonically, and blobs rank worse than any real subset of digits):

1. **A reject class.** :class:`OfflineNet` classifies K real classes (10 digits; 3 dSprites shapes)
   plus "not a digit / not a sprite", trained on real images against generated negatives (noise,
   grey blobs, rectangles, heavily blurred / swirled / speckled images, the other dataset's images;
   see :mod:`gm.metrics.train_offline`). Its features must separate real images from everything else.
2. **Features from several depths.** The features are the global average of each stage's maps (low
   level: strokes, edges, noise) and the penultimate layer (high level: what it is), each block
   L2-normalised and scaled by 10, then concatenated. Low levels react smoothly to small
   disturbances; the penultimate block reacts to content. A last one-number block is the probability
   of "not real" x 20, the largest distance two normalised blocks can have: a set of non-images is
   far from real data however its other features fall, while real subsets of any class mix stay near
   0 on it. No block can dominate the others.

Weights: ``checkpoints/evaluators/<dataset>_offline.safetensors`` (+ ``.json``), re-trained by
``python -m gm.metrics.train_offline``.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gm.errors import GMError
from gm.metrics.classifiers import evaluators_dir, prepare
from gm.metrics.features import file_sha256

BLOCK_SCALE = 10.0        # each L2-normalised block has norm 10: distances in readable units
RECOGNISED = 0.9          # recognisable: the top real class has probability >= 0.9

# dataset -> (checkpoint name, input size, real class names); the reject class comes last.
OFFLINE = {
    "mnist": ("mnist_offline", 28, tuple(str(d) for d in range(10))),
    "dsprites": ("dsprites_offline", 64, ("square", "ellipse", "heart")),
}


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class OfflineNet(nn.Module):
    """size x size grey images -> K + 1 logits (the last: not a real image), and multi-depth features.

    A stride-2 stem for 64 x 64 inputs, then three stages (two convs each; max-pool between stages),
    then the last maps average-pooled to 3 x 3, a linear layer to `hidden` (the penultimate block)
    and the classifier.
    """

    def __init__(self, classes: int, size: int = 28, width: int = 16, hidden: int = 64) -> None:
        super().__init__()
        w = width
        stem = _conv(1, w, stride=2) if size > 32 else _conv(1, w)
        self.stage1 = nn.Sequential(*stem, *_conv(w, w))
        self.stage2 = nn.Sequential(nn.MaxPool2d(2), *_conv(w, 2 * w), *_conv(2 * w, 2 * w))
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(4 * w * 9, hidden),
                                  nn.ReLU(inplace=True))
        self.fc = nn.Linear(hidden, classes + 1)
        self.classes, self.size, self.width, self.hidden = classes, size, width, hidden
        self.input_size = size

    @property
    def feature_dim(self) -> int:
        return self.width * 7 + self.hidden + 1

    def blocks(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """([pooled stage 1, 2, 3, penultimate], logits)."""
        h1 = self.stage1(x)
        h2 = self.stage2(h1)
        h3 = self.stage3(h2)
        pen = self.head(h3)
        return [h1.mean(dim=(2, 3)), h2.mean(dim=(2, 3)), h3.mean(dim=(2, 3)), pen], self.fc(pen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)[1]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N x feature_dim features, N x K+1 probabilities). Features: each block L2-normalised x
        BLOCK_SCALE, then the probability of "not real" x 2 BLOCK_SCALE (as far as two blocks can be)."""
        blocks, logits = self.blocks(x)
        probs = logits.softmax(dim=1)
        feats = torch.cat([F.normalize(b, dim=1, eps=1e-8) * BLOCK_SCALE for b in blocks]
                          + [probs[:, -1:] * (2 * BLOCK_SCALE)], dim=1)
        return feats, probs

    def arch(self) -> dict[str, Any]:
        return {"class": "OfflineNet", "classes": self.classes, "size": self.size, "width": self.width,
                "hidden": self.hidden}


@dataclass
class LoadedOffline:
    dataset: str
    name: str
    model: OfflineNet
    info: dict[str, Any]
    sha256: str
    device: torch.device
    class_names: tuple[str, ...]


_cache: dict[tuple[str, str, str], LoadedOffline] = {}
_lock = threading.Lock()


def load_offline(dataset: str, device: torch.device | str = "cpu", folder: Path | None = None) -> LoadedOffline:
    """The shipped offline evaluator of a dataset, in eval mode (memoised per file and device)."""
    from safetensors.torch import load_file

    if dataset not in OFFLINE:
        raise GMError(f"No offline evaluator for dataset '{dataset}'; it exists for {', '.join(OFFLINE)}.")
    name, _, names = OFFLINE[dataset]
    folder = Path(folder) if folder else evaluators_dir()
    path, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    device = torch.device(device)
    key = (str(path), str(device), str(path.stat().st_mtime_ns) if path.exists() else "")
    with _lock:
        if key in _cache:
            return _cache[key]
        if not path.is_file() or not meta_path.is_file():
            raise GMError(f"The {dataset} offline evaluator is missing ({path}); re-create it with "
                          f"`python -m gm.metrics.train_offline {dataset}`.")
        try:
            info = json.loads(meta_path.read_text(encoding="utf-8"))
            arch = dict(info["arch"])
            arch.pop("class")
            model = OfflineNet(**arch)
            model.load_state_dict(load_file(str(path)))
        except Exception as exc:
            raise GMError(f"The {dataset} offline evaluator in {folder} cannot be loaded ({type(exc).__name__}); "
                          f"re-create it with `python -m gm.metrics.train_offline {dataset}`.") from None
        model.eval().to(device)
        loaded = LoadedOffline(dataset, name, model, info, file_sha256(path), device, names)
        _cache[key] = loaded
        return loaded


class OfflineFeatures:
    """Feature extractor (gm.metrics.features.Extractor) over an offline evaluator."""

    kind = "offline"

    def __init__(self, loaded: LoadedOffline, batch_size: int = 500) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        self.dims = loaded.model.feature_dim
        self.name = f"offline:{loaded.name}"
        self.weights_hash = loaded.sha256
        self.device = loaded.device

    @torch.no_grad()
    def features_and_probs(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        model = self.loaded.model
        x = prepare(images, model.input_size).to(self.device)
        f, p = model.features(x)
        return f.double().cpu().numpy(), p.double().cpu().numpy()

    def all(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Features and probabilities of a whole tensor of images, batch by batch."""
        fs, ps = [], []
        for s in range(0, images.shape[0], self.batch_size):
            f, p = self.features_and_probs(images[s:s + self.batch_size])
            fs.append(f)
            ps.append(p)
        return np.concatenate(fs), np.concatenate(ps)

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.features_and_probs(images)[0]


def offline_extractor(dataset: str, device: torch.device | str = "cpu") -> OfflineFeatures:
    return OfflineFeatures(load_offline(dataset, device))


# ---- metrics on its outputs --------------------------------------------------------------------
def recognisable_share(probs: np.ndarray, threshold: float = RECOGNISED) -> float:
    """Share of images whose most likely *real* class has probability >= threshold (the reject class,
    last, never counts)."""
    p = np.asarray(probs)
    if p.shape[0] == 0:
        return 0.0
    return float((p[:, :-1].max(axis=1) >= threshold).mean())


def recognised_class(probs: np.ndarray, threshold: float = RECOGNISED) -> np.ndarray:
    """The real class of each image recognised with probability >= threshold, else -1."""
    p = np.asarray(probs)[:, :-1]
    return np.where(p.max(axis=1) >= threshold, p.argmax(axis=1), -1)


def classes_recognised(probs: np.ndarray, min_share: float = 0.1) -> int:
    """Classes given at least `min_share` of a uniform share of the samples, counting only the samples
    recognised with probability >= 0.9 (so broken samples credit no class)."""
    classes = recognised_class(probs)
    k = probs.shape[1] - 1  # the last column is the evaluator's "not real" class
    counts = np.bincount(classes[classes >= 0], minlength=k)
    return int((counts >= max(1, math.ceil(min_share * len(classes) / k))).sum())


def mean_within_class_distance(feats: np.ndarray, classes: np.ndarray, max_per_class: int = 500) -> float | None:
    """Mean pairwise L2 distance between images of the same predicted class, averaged over the classes
    (weighted by their number of images); rejected images (-1) and classes of one image are left out.
    None when no class has two images."""
    total, weight = 0.0, 0
    for c in np.unique(classes):
        if c < 0:
            continue
        f = torch.from_numpy(np.asarray(feats[classes == c][:max_per_class], dtype=np.float64))
        m = f.shape[0]
        if m < 2:
            continue
        d = torch.cdist(f, f)
        total += float(d.sum()) / (m * (m - 1)) * m
        weight += m
    return total / weight if weight else None


def within_class_diversity(gen_feats: np.ndarray, gen_probs: np.ndarray, real_feats: np.ndarray,
                           real_probs: np.ndarray) -> float | None:
    """Mean pairwise feature distance within each predicted class of the samples, as a ratio to the same
    figure of real images: 1 is as varied as real data; far below 1 is nearly one image per class.

    Only recognisable images count (class probability >= 0.9, as in :func:`recognisable_share`), on
    both sides: broken samples are far from everything and would pass for variety. None when fewer
    than two samples of any class are recognisable."""
    g = mean_within_class_distance(gen_feats, recognised_class(gen_probs))
    r = mean_within_class_distance(real_feats, recognised_class(real_probs))
    if g is None or not r:
        return None
    return g / r
