"""Sample quality of a model in memory, in seconds: the zoo's targets and the time-to-quality probe.

`gm eval` measures a run folder with every metric; this measures a live model (a trainer's, between
steps) with the few that say whether its samples are digits yet, on the offline evaluator
(gm.metrics.offline) and the classifier's features:

- ``recognisable_share``: samples whose top real class has probability >= 0.9, next to the same figure
  for the real images (``recognisable_share_real``) and their ratio (``recognisable_ratio``);
- ``classes_recognised``: classes that receive at least a tenth of a uniform share of the
  *recognised* samples (a blob the classifier calls 2 does not count, as it does for
  ``classes_covered``);
- ``within_class_diversity``: mean pairwise distance within each recognised class, as a ratio to
  real digits';
- ``precision`` / ``recall`` (k = 3) on the classifier's features, as `gm eval` reports them.

The real images are a fixed seeded subset of the held-out split, read and embedded once per
:class:`QualityReference`. Targets are data (:data:`ZOO_TARGETS`), checked by :func:`shortfalls`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gm.metrics.offline import (
    RECOGNISED,
    classes_recognised,
    recognisable_share,
    recognised_class,
    within_class_diversity,
)
from gm.runs.callbacks import Callback


@dataclass(frozen=True)
class Targets:
    """What a shipped model must reach on 1,000 samples against held-out real images."""

    classes: int = 10                # classes_recognised
    recognisable_ratio: float = 0.9  # recognisable share / real images' recognisable share
    diversity: float = 0.8           # within_class_diversity
    recall: float = 0.5
    conditional_accuracy: float | None = None  # class-conditional models: requested class recognised


# Issue 17's targets. WGAN with weight clipping converges slowly: recognisable digits of 8 classes.
ZOO_TARGETS: dict[str, Targets] = {
    "gan": Targets(), "dcgan": Targets(), "wgan-gp": Targets(), "ssgan": Targets(),
    "acgan": Targets(conditional_accuracy=0.9),
    "wgan": Targets(classes=8, recognisable_ratio=0.0, diversity=0.0, recall=0.0),
}


def shortfalls(metrics: dict[str, Any], targets: Targets) -> list[str]:
    """The targets `metrics` misses, one short phrase each (empty: all met)."""
    out = []

    def need(key: str, want: float, got: Any) -> None:
        if got is None or (isinstance(got, float) and math.isnan(got)) or got < want:
            out.append(f"{key} {got if got is None else round(float(got), 3)} < {want}")

    need("classes_recognised", targets.classes, metrics.get("classes_recognised"))
    if targets.recognisable_ratio:
        need("recognisable_ratio", targets.recognisable_ratio, metrics.get("recognisable_ratio"))
    if targets.diversity:
        need("within_class_diversity", targets.diversity, metrics.get("within_class_diversity"))
    if targets.recall:
        need("recall", targets.recall, metrics.get("recall"))
    if targets.conditional_accuracy is not None:
        need("recognised_as_requested", targets.conditional_accuracy, metrics.get("recognised_as_requested"))
    return out


@dataclass
class QualityReference:
    """The held-out real images of a dataset, embedded once by the offline evaluator and the classifier."""

    dataset: str
    n: int = 1000
    seed: int = 0
    split: str = "test"
    data_dir: str | None = None
    device: str = "cpu"
    _real: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from gm.metrics.classifiers import ClassifierFeatures, load_classifier
        from gm.metrics.offline import OfflineFeatures, load_offline
        from gm.metrics.sources import real_images

        self.offline = OfflineFeatures(load_offline(self.dataset, self.device))
        self.classifier = ClassifierFeatures(load_classifier(self.dataset, self.device))
        real = real_images(self.dataset, self.n, self.seed, self.split, self.data_dir)
        x = real.images.batch(0, len(real.images))
        self._real["offline"], self._real["probs"] = self.offline.all(x)
        self._real["classifier"] = np.concatenate([self.classifier(x[s:s + 500]) for s in range(0, len(x), 500)])

    def measure_images(self, images: torch.Tensor, requested: torch.Tensor | None = None) -> dict[str, Any]:
        """The quality figures of images in [0, 1] (N x C x H x W); `requested` are the classes a
        conditional model was asked for (adds ``recognised_as_requested``)."""
        from gm.metrics.prd import precision_recall

        x = images.detach().float().cpu().clamp(0, 1)
        feats, probs = self.offline.all(x)
        share, share_real = recognisable_share(probs), recognisable_share(self._real["probs"])
        cls_feats = np.concatenate([self.classifier(x[s:s + 500]) for s in range(0, len(x), 500)])
        out: dict[str, Any] = {
            "n": int(x.shape[0]), "recognisable_share": share, "recognisable_share_real": share_real,
            "recognisable_ratio": share / share_real if share_real else float("nan"),
            "classes_recognised": classes_recognised(probs),
            "within_class_diversity": within_class_diversity(feats, probs, self._real["offline"],
                                                             self._real["probs"]),
            **precision_recall(self._real["classifier"], cls_feats, k=3),
        }
        if requested is not None:
            got = recognised_class(probs)
            out["recognised_as_requested"] = float((got == requested.cpu().numpy()).mean())
        return out

    @torch.no_grad()
    def measure(self, model: Any, n: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Sample `n` images (default: as many as real images) from a model in eval mode, and measure
        them; the model's train/eval mode is restored afterwards. Conditional models are asked for
        every class in turn, so ``recognised_as_requested`` is measured on the same samples."""
        from gm.metrics.sources import sample_batches
        from gm.models.base import ClassConditional

        n = n or self.n
        labels = None
        if isinstance(model, ClassConditional) and getattr(model, "num_classes", 0):
            labels = torch.arange(n) % int(model.num_classes)
        with model.evaluating():
            x = torch.cat(list(sample_batches(model, n, seed, labels=labels)))
        return self.measure_images(x, labels)


class QualityProbe(Callback):
    """A training-loop callback (gm.runs.callbacks) that measures the live model every `every` steps.

    Each measurement is appended to ``history`` with the step and the *training* seconds so far (the
    probe's own time is left out). With ``targets``, the loop is stopped at the first measurement
    that meets them: the time-to-quality benchmark's clock.
    """

    def __init__(self, reference: QualityReference, every: int, targets: Targets | None = None,
                 n: int | None = None, log=None) -> None:
        self.reference, self.every, self.targets, self.n, self.log = reference, every, targets, n, log
        self.history: list[dict[str, Any]] = []
        self.probe_seconds = 0.0
        self.reached: dict[str, Any] | None = None

    def on_step_end(self, loop: Any, step: int, metrics: dict[str, Any]) -> None:
        import time

        if step % self.every:
            return
        start = time.perf_counter()
        result = self.reference.measure(loop.trainer.model, self.n)
        self.probe_seconds += time.perf_counter() - start
        result.update(step=step, train_seconds=round(loop.clock() - self.probe_seconds, 2))
        self.history.append(result)
        if self.log is not None:
            self.log(result)
        if self.targets is not None and not shortfalls(result, self.targets):
            self.reached = result
            loop.stop()


__all__ = ["RECOGNISED", "QualityProbe", "QualityReference", "Targets", "ZOO_TARGETS", "classes_recognised", "shortfalls"]
