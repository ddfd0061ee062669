"""The disturbance table that validates a feature extractor's Fréchet distance (Heusel et al. 2017).

For each disturbance and each of six increasing levels (level 0 = clean), the Fréchet distance of n
held-out real images, disturbed, to the statistics of n *other* held-out real images; a metric that
behaves like FID rises monotonically along every row. The ranking part compares a collapsed
non-image generator (synthetic grey blobs; optionally a model's samples) with every real subset of
1, 3 or all classes: the blobs must be worse than all of them.

Used by ``bench/offline_metric.py`` (prints it) and ``tests/test_offline_metric.py`` (asserts it).

Held-out images: MNIST references are the test split, disturbed images the training digits the
offline evaluator never saw (train[6000:]); dSprites uses the evaluator's held-out 20%.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gm.metrics import disturb
from gm.metrics.frechet import _sym_sqrt, frechet_distance, mean_and_cov

LEVELS: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist": {
        "noise": (0, 0.05, 0.1, 0.2, 0.3, 0.5),
        "blur": (0, 0.5, 1.0, 1.5, 2.0, 3.0),
        "rectangles": (0, 1, 2, 3, 4, 5),
        "swirl": (0, 1, 2, 3, 6, 10),
        "salt_pepper": (0, 0.02, 0.05, 0.1, 0.2, 0.3),
        "contaminate": (0, 0.1, 0.2, 0.3, 0.4, 0.5),
    },
    "dsprites": {
        "noise": (0, 0.05, 0.1, 0.2, 0.3, 0.5),
        "blur": (0, 1.0, 2.0, 3.0, 4.0, 6.0),
        "rectangles": (0, 1, 2, 3, 4, 5),
        "swirl": (0, 1, 2, 3, 6, 10),
        "salt_pepper": (0, 0.02, 0.05, 0.1, 0.2, 0.3),
        "contaminate": (0, 0.1, 0.2, 0.3, 0.4, 0.5),
    },
}
CONTAMINANT = {"mnist": "dSprites shapes", "dsprites": "MNIST digits"}
SUBSET_SIZES = {"mnist": (1, 3, 10), "dsprites": (1, 2, 3)}


@dataclass
class Table:
    dataset: str
    n: int
    levels: dict[str, tuple[float, ...]]
    rows: dict[str, list[float]]                      # disturbance -> distance per level
    subsets: dict[str, float] = field(default_factory=dict)   # "1,3,7" -> distance
    others: dict[str, float] = field(default_factory=dict)    # "grey blobs", "wgan (shipped)" -> distance

    def monotone(self, name: str) -> bool:
        r = self.rows[name]
        return all(b > a for a, b in zip(r, r[1:]))

    def worst_subset(self, size: int | None = None) -> tuple[str, float]:
        items = [(k, v) for k, v in self.subsets.items() if size is None or len(k.split(",")) == size]
        return max(items, key=lambda kv: kv[1])

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "n": self.n, "levels": self.levels, "rows": self.rows,
                "subsets": self.subsets, "others": self.others}


class _Reference:
    """Fréchet distances of many sets to one reference: the reference's symmetric square root R is
    computed once, then each set costs one eigvalsh of R S R (the same formula as
    :func:`gm.metrics.frechet.frechet_distance`, which checks the first one). The features' dead ReLU
    channels make both covariances singular, so frechet_distance would take two eigendecompositions
    per call: 170 of them took a minute on a busy 2-core machine."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        self.mu, self.sigma = mu, sigma
        self.root = _sym_sqrt(sigma)
        self.trace = float(np.trace(sigma))
        self.checked = False

    def distance(self, feats: np.ndarray) -> float:
        mu, sigma = mean_and_cov(feats)
        a = self.root @ sigma @ self.root
        tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0.0, None)).sum())
        diff = mu - self.mu
        value = max(float(diff @ diff + np.trace(sigma) + self.trace - 2.0 * tr_sqrt), 0.0)
        if not self.checked:
            exact = frechet_distance(mu, sigma, self.mu, self.sigma)
            assert abs(value - exact) <= 1e-6 * max(1.0, exact), (value, exact)
            self.checked = True
        return value


def held_out(dataset: str, data_dir: str | None, n: int, seed: int = 0):
    """(reference images, base images to disturb, base labels, contaminants), floats in [0, 1]."""
    from gm.metrics.train_offline import dsprites_split, mnist_split

    g = torch.Generator().manual_seed(seed)
    if dataset == "mnist":
        _, (xh, yh), (xt, _) = mnist_split(data_dir)
        ref = xt[torch.randperm(xt.shape[0], generator=g)[:n]]
        (_, _), (dx, _) = dsprites_split(0)
        others = disturb.fit(dx[torch.randperm(dx.shape[0], generator=g)[:n]], 28)
        return ref, xh, yh, others
    (_, _), (xh, yh) = dsprites_split(0)
    perm = torch.randperm(xh.shape[0], generator=g)
    ref, rest = xh[perm[:n]], perm[n:]
    _, _, (mt, _) = mnist_split(data_dir)
    others = disturb.fit(mt[torch.randperm(mt.shape[0], generator=g)[:n]], 64)
    return ref, xh[rest], yh[rest], others


def disturbance_table(dataset: str, extractor: Callable[[torch.Tensor], np.ndarray], *, data_dir: str | None = None,
                      n: int = 1000, seed: int = 0, extra: dict[str, torch.Tensor] | None = None,
                      levels: dict[str, tuple[float, ...]] | None = None) -> Table:
    """The table for one dataset and one extractor (images in [0, 1] -> N x D features)."""
    levels = levels or LEVELS[dataset]
    ref, base_all, labels_all, others = held_out(dataset, data_dir, n, seed)
    to_ref = _Reference(*mean_and_cov(extractor(ref)))

    def dist(images: torch.Tensor) -> float:
        return to_ref.distance(extractor(images))

    base = base_all[:n]
    rows: dict[str, list[float]] = {}
    for name, lv in levels.items():
        row = []
        for i, level in enumerate(lv):
            if name == "contaminate":
                x = disturb.contaminate(base, level, others, seed=seed + 17 * i)
            else:
                x = disturb.DISTURBANCES[name](base, level, seed=seed + 17 * i)
            row.append(dist(x))
        rows[name] = row

    # Real subsets: features once, then the distance of each subset of classes (all real images of them).
    feats = extractor(base_all)
    classes = sorted(int(c) for c in labels_all.unique())
    subsets: dict[str, float] = {}
    for size in SUBSET_SIZES[dataset]:
        for combo in itertools.combinations(classes, size):
            mask = np.isin(labels_all.numpy(), combo)
            subsets[",".join(map(str, combo))] = to_ref.distance(feats[mask][: n if size == len(classes) else None])
    others_d = {"grey blobs": dist(disturb.grey_blobs(n, ref.shape[-1], seed=seed + 1))}
    for name, images in (extra or {}).items():
        others_d[name] = dist(disturb.fit(images, ref.shape[-1]))
    return Table(dataset, n, dict(levels), rows, subsets, others_d)


def format_table(t: Table, digits: int = 1) -> str:
    """A Markdown table: one row per disturbance, one column per level; then the ranking."""
    lines = [f"**{t.dataset}** (n = {t.n} per set; Fréchet distance to held-out real statistics)", "",
             "| disturbance | levels | distances | monotone |", "|---|---|---|---|"]
    for name, row in t.rows.items():
        label = f"contamination with {CONTAMINANT[t.dataset]}" if name == "contaminate" else name.replace("_", " & ")
        lv = ", ".join(f"{v:g}" for v in t.levels[name])
        lines.append(f"| {label} | {lv} | {', '.join(f'{v:.{digits}f}' for v in row)} | "
                     f"{'yes' if t.monotone(name) else 'NO'} |")
    lines += ["", "| set | distance |", "|---|---|"]
    for size in SUBSET_SIZES[t.dataset]:
        k, v = t.worst_subset(size)
        best = min(val for key, val in t.subsets.items() if len(key.split(",")) == size)
        count = sum(1 for key in t.subsets if len(key.split(",")) == size)
        lines.append(f"| real, {size} class{'es' if size > 1 else ''} ({count} subset{'s' if count > 1 else ''}) | "
                     f"{best:.{digits}f} to {v:.{digits}f} (worst: {k}) |")
    for k, v in t.others.items():
        lines.append(f"| {k} | {v:.{digits}f} |")
    return "\n".join(lines)
