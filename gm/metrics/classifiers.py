"""The project's own evaluator networks: an MNIST digit classifier, a dSprites factor classifier and
a style + digit classifier for the styled MNIST of gm.data.mnist_style.

Their penultimate features give a *classifier FID* (like TF-GAN's MNIST Fréchet distance) that works
offline and fast; their predictions give mode coverage, conditional accuracy and CAM heatmaps.

- :class:`MNISTClassifier` ends in global average pooling + one linear layer, so its class scores are
  a weighted sum of the last convolution's maps: exactly what class activation mapping needs.
- :class:`DSpritesClassifier` predicts shape, scale, posX and posY from one shared trunk. Position is
  what it must read, so its trunk keeps the spatial layout (flatten + linear) instead of pooling.
- :class:`MNISTStyleClassifier` reads a styled digit's style (plain, bold, slanted: what a
  translation must change) and its digit (what it must keep).

Weights live in ``checkpoints/evaluators/<name>.safetensors`` beside ``<name>.json`` (architecture,
accuracy, training command); ``python -m gm.metrics.train_evaluators`` re-trains them from scratch.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gm.data.registry import SpecView
from gm.errors import GMError
from gm.metrics.features import file_sha256

# dataset -> evaluator name, read live from each dataset's spec (DatasetSpec.evaluator).
CLASSIFIER_FOR = SpecView(lambda spec: spec.evaluator)
DSPRITES_HEADS = (("shape", 3), ("scale", 6), ("posX", 32), ("posY", 32))
MNIST_STYLE_HEADS = (("style", 3), ("digit", 10))


def evaluators_dir() -> Path:
    """`GM_EVALUATORS_DIR` when set, else checkpoints/evaluators of this checkout."""
    env = os.environ.get("GM_EVALUATORS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "checkpoints" / "evaluators"


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class MNISTClassifier(nn.Module):
    """28x28 digits -> 10 logits through conv maps, global average pooling and one linear layer."""

    input_size = 28

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            *_conv(1, w), *_conv(w, w), nn.MaxPool2d(2),            # 14 x 14
            *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2),  # 7 x 7
            *_conv(2 * w, 4 * w),                                  # CAM maps: 4w x 7 x 7
        )
        self.fc = nn.Linear(4 * w, 10)
        self.width = width

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the global average of the last maps): what classifier FID uses."""
        return self.conv(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))

    def arch(self) -> dict[str, Any]:
        return {"class": "MNISTClassifier", "width": self.width}


class DSpritesClassifier(nn.Module):
    """64x64 sprites -> logits for shape (3), scale (6), posX (32) and posY (32)."""

    input_size = 64

    def __init__(self, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        w = width
        self.trunk = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.ReLU(inplace=True),          # 32
            nn.Conv2d(w, w, 4, 2, 1), nn.ReLU(inplace=True),          # 16
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(inplace=True),      # 8
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.ReLU(inplace=True),  # 4
            nn.Flatten(),
            nn.Linear(2 * w * 16, feature_dim), nn.ReLU(inplace=True),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, k) for name, k in DSPRITES_HEADS})
        self.width, self._feature_dim = width, feature_dim

    @property
    def feature_dim(self) -> int:
        return self._feature_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}

    def arch(self) -> dict[str, Any]:
        return {"class": "DSpritesClassifier", "width": self.width, "feature_dim": self._feature_dim}


class MNISTStyleClassifier(nn.Module):
    """28x28 styled digits (gm.data.mnist_style) -> logits for style (3) and digit (10).

    MNISTClassifier's trunk (convolutions, then global average pooling: stroke width and slant are
    local features wherever the stroke is) with one linear head per factor.
    """

    input_size = 28

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.trunk = nn.Sequential(
            *_conv(1, w), *_conv(w, w), nn.MaxPool2d(2),            # 14 x 14
            *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2),  # 7 x 7
            *_conv(2 * w, 4 * w),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(4 * w, k) for name, k in MNIST_STYLE_HEADS})
        self.width = width

    @property
    def feature_dim(self) -> int:
        return 4 * self.width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed(x)
        return {name: head(h) for name, head in self.heads.items()}

    def arch(self) -> dict[str, Any]:
        return {"class": "MNISTStyleClassifier", "width": self.width}


_ARCHS = {"MNISTClassifier": MNISTClassifier, "DSpritesClassifier": DSpritesClassifier,
          "MNISTStyleClassifier": MNISTStyleClassifier}


def prepare(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images in [0, 1] (N x C x H x W, any C and size) -> N x 1 x size x size for a classifier.

    Colour is averaged to grey (grayscale saved as RGB has equal channels, so nothing changes) and
    other sizes are resized with antialiasing: SSGAN's 32x32 MNIST samples meet a 28x28 classifier.
    """
    x = images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.shape[1] != 1:
        x = x.mean(dim=1, keepdim=True)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


def save_classifier(model: nn.Module, name: str, info: dict[str, Any], folder: Path | None = None) -> Path:
    """Write <name>.safetensors and <name>.json (architecture + whatever `info` says)."""
    from safetensors.torch import save_file

    from gm.runs.atomic import write_json_atomic

    folder = Path(folder) if folder else evaluators_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    tmp = folder / f".{name}.safetensors.tmp"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp))
    os.replace(tmp, path)
    write_json_atomic(folder / f"{name}.json", {**info, "arch": model.arch(), "sha256": file_sha256(path)})
    return path


@dataclass
class LoadedClassifier:
    name: str
    model: nn.Module
    info: dict[str, Any]
    sha256: str
    device: torch.device

    @property
    def feature_dim(self) -> int:
        return int(self.model.feature_dim)


_cache: dict[tuple[str, str, str], LoadedClassifier] = {}
_cache_lock = threading.Lock()


def load_classifier(dataset: str, device: torch.device | str = "cpu", folder: Path | None = None) -> LoadedClassifier:
    """The shipped evaluator of a dataset, in eval mode (memoised per file and device)."""
    from safetensors.torch import load_file

    if dataset not in CLASSIFIER_FOR:
        raise GMError(f"No evaluator classifier for dataset '{dataset}'; classifier metrics exist for "
                      f"{', '.join(CLASSIFIER_FOR)}.")
    name = CLASSIFIER_FOR[dataset]
    folder = Path(folder) if folder else evaluators_dir()
    path, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    device = torch.device(device)
    key = (str(path), str(device), str(path.stat().st_mtime_ns) if path.exists() else "")
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        if not path.is_file() or not meta_path.is_file():
            raise GMError(f"The {dataset} evaluator weights are missing ({path}); re-create them with "
                          f"`python -m gm.metrics.train_evaluators {dataset}`.")
        try:
            info = json.loads(meta_path.read_text(encoding="utf-8"))
            arch = dict(info["arch"])
            model = _ARCHS[arch.pop("class")](**arch)
            model.load_state_dict(load_file(str(path)))
        except Exception as exc:
            raise GMError(f"The {dataset} evaluator in {folder} cannot be loaded ({type(exc).__name__}); "
                          f"re-create it with `python -m gm.metrics.train_evaluators {dataset}`.") from None
        model.eval().to(device)
        loaded = LoadedClassifier(name, model, info, file_sha256(path), device)
        _cache[key] = loaded
        return loaded


class ClassifierFeatures:
    """Feature extractor over a shipped classifier: penultimate features + predicted classes."""

    kind = "classifier"

    def __init__(self, loaded: LoadedClassifier, batch_size: int = 500) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        self.dims = loaded.feature_dim
        self.name = f"classifier:{loaded.name}"
        self.weights_hash = loaded.sha256
        self.device = loaded.device

    @torch.no_grad()
    def features_and_predictions(self, images: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        model = self.loaded.model
        x = prepare(images, model.input_size).to(self.device)
        h = model.embed(x)
        if isinstance(model, MNISTClassifier):
            preds = {"class": model.fc(h).argmax(1).cpu().numpy()}
        else:
            preds = {name: head(h).argmax(1).cpu().numpy() for name, head in model.heads.items()}
        return h.double().cpu().numpy(), preds

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.features_and_predictions(images)[0]


@torch.no_grad()
def predict(loaded: LoadedClassifier, images: torch.Tensor, batch_size: int = 500) -> dict[str, np.ndarray]:
    """Predicted classes of images in [0, 1]: {"class": ...} for MNIST, one key per factor for dSprites
    and mnist-style."""
    out: dict[str, list[np.ndarray]] = {}
    extractor = ClassifierFeatures(loaded)
    for start in range(0, images.shape[0], batch_size):
        _, preds = extractor.features_and_predictions(images[start:start + batch_size])
        for k, v in preds.items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}
