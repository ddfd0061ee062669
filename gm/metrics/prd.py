"""Improved precision and recall (Kynkäänniemi et al., 2019), k = 3.

Each real feature vector gets a ball reaching its k-th nearest real neighbour; the union of the balls
approximates the real manifold. Precision = share of generated samples inside some real ball (are the
samples realistic?); recall = share of real samples inside some ball around the generated ones (is
the data's variety covered?). Mode collapse shows as high precision with low recall.
"""

from __future__ import annotations

import numpy as np
import torch

from gm.errors import GMError


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row."""
    n = features.shape[0]
    if n <= k:
        raise GMError(f"Precision/recall with k = {k} needs more than {k} samples per set; got {n}.")
    out = torch.empty(n, dtype=features.dtype)
    for s in range(0, n, chunk):
        d = torch.cdist(features[s:s + chunk], features)
        # The smallest distance is the point to itself (0): the k-th neighbour is at index k.
        out[s:s + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return out


def _inside_any_ball(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                     chunk: int = 1024) -> torch.Tensor:
    inside = torch.empty(points.shape[0], dtype=torch.bool)
    for s in range(0, points.shape[0], chunk):
        d = torch.cdist(points[s:s + chunk], centres)
        inside[s:s + chunk] = (d <= radii[None, :]).any(dim=1)
    return inside


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """{"precision", "recall"} of fake features against real features (N x D each)."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if r.dim() != 2 or f.dim() != 2 or r.shape[1] != f.shape[1]:
        raise GMError(f"Precision/recall needs two N x D feature sets of equal D; got {tuple(r.shape)} and "
                      f"{tuple(f.shape)}.")
    precision = _inside_any_ball(f, r, knn_radii(r, k)).double().mean().item()
    recall = _inside_any_ball(r, f, knn_radii(f, k)).double().mean().item()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """{"density", "coverage"} (Naeem et al., 2020) of fake features against real features.

    Density: how many real k-NN balls contain each fake sample on average, divided by k (about 1 when
    the samples are distributed like real data; above 1 when they crowd dense regions). Coverage:
    share of real samples whose ball contains at least one fake sample. Both use balls around real
    samples only, so a few outlying fakes cannot inflate them as they inflate recall.
    """
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if r.dim() != 2 or f.dim() != 2 or r.shape[1] != f.shape[1]:
        raise GMError(f"Density/coverage needs two N x D feature sets of equal D; got {tuple(r.shape)} and "
                      f"{tuple(f.shape)}.")
    radii = knn_radii(r, k)
    inside = 0.0
    nearest = torch.full((r.shape[0],), float("inf"), dtype=torch.float64)
    for s in range(0, f.shape[0], 1024):
        d = torch.cdist(f[s:s + 1024], r)                      # fakes x reals
        inside += float((d <= radii[None, :]).sum())
        nearest = torch.minimum(nearest, d.min(dim=0).values)
    density = inside / (k * f.shape[0])
    coverage = float((nearest <= radii).double().mean())
    return {"density": float(density), "coverage": coverage}
