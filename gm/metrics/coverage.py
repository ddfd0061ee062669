"""Mode coverage from a classifier's predictions: the mode-collapse signal FID alone hides.

As in the mode-counting evaluations of Unrolled GAN, VEEGAN and PacGAN: classify generated samples
with a pretrained classifier, then look at the class histogram, how many classes are covered and the
KL divergence from the uniform distribution (the data's own class balance, near-uniform for MNIST
digits and exactly uniform for dSprites shapes).
"""

from __future__ import annotations

import math

import numpy as np

from gm.errors import GMError


def class_histogram(predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of each predicted class (length num_classes)."""
    p = np.asarray(predicted).reshape(-1).astype(np.int64)
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise GMError(f"Predicted classes must lie in [0, {num_classes}); got {p.min()}..{p.max()}.")
    return np.bincount(p, minlength=num_classes)


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p̂ || uniform) in nats: 0 for a perfectly balanced histogram, log K for a single class."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise GMError("No predictions to build a class histogram from.")
    p = counts / total
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] * counts.size)))


def coverage(predicted: np.ndarray, num_classes: int, min_share: float = 0.1) -> dict:
    """Class histogram, classes covered and KL to uniform of predicted classes.

    A class counts as covered when it receives at least `min_share` of the samples it would get
    under a uniform distribution (10% by default: 50 of 5,000 samples for 10 classes), so a
    collapsed generator is not credited with a class for a handful of misclassified samples.
    """
    counts = class_histogram(predicted, num_classes)
    n = int(counts.sum())
    threshold = max(1, math.ceil(min_share * n / num_classes))
    return {"class_histogram": counts.tolist(), "classes_covered": int((counts >= threshold).sum()),
            "num_classes": int(num_classes), "kl_to_uniform": kl_to_uniform(counts),
            "covered_threshold": threshold}


def conditional_accuracy(predicted: np.ndarray, requested: np.ndarray) -> float:
    """ACGAN accuracy: how often the classifier agrees with the class the generator was asked for."""
    p, r = np.asarray(predicted).reshape(-1), np.asarray(requested).reshape(-1)
    if p.shape != r.shape or p.size == 0:
        raise GMError(f"Predicted and requested classes differ in length ({p.size} vs {r.size}).")
    return float((p == r).mean())
