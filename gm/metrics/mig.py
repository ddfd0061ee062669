"""Mutual Information Gap (Chen et al., 2018) of a VAE's encoder on dSprites.

For each ground-truth factor v_k (shape, scale, posX, posY; a factor that never varies is skipped)
MIG takes the two latent dimensions sharing the most information with it and reports the gap
between them, normalised by the factor's entropy, averaged over factors:

    MIG = 1/K Σ_k (I(z_j1; v_k) - I(z_j2; v_k)) / H(v_k)

0 means no latent singles out any factor (a random encoder); 1 means each factor lives in exactly one
latent. As in disentanglement_lib, the encoder's means are discretised into 20 equal-width bins per
dimension and the mutual information is computed from counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gm.errors import GMError


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each column into `bins` equal-width bins between its min and max (integer labels)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        col = codes[:, j]
        edges = np.histogram_bin_edges(col, bins=bins)
        out[:, j] = np.digitize(col, edges[1:-1])
    return out


def entropy(labels: np.ndarray) -> float:
    counts = np.unique(np.asarray(labels), return_counts=True)[1].astype(np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two integer label vectors, from their joint histogram."""
    _, a = np.unique(np.asarray(a), return_inverse=True)
    _, b = np.unique(np.asarray(b), return_inverse=True)
    na, nb = a.max() + 1, b.max() + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(np.float64)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mig(codes: np.ndarray, factors: np.ndarray, factor_names: tuple[str, ...] | None = None,
        bins: int = 20) -> dict:
    """{"mig", "per_factor": {name: gap / H}, "latent_for": {name: best latent index}}."""
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise GMError(f"MIG needs N x L codes and N x K factors; got {codes.shape} and {factors.shape}.")
    if codes.shape[1] < 2:
        raise GMError("MIG needs a latent code with at least 2 dimensions.")
    names = factor_names or tuple(f"factor{k}" for k in range(factors.shape[1]))
    z = discretize(codes, bins)
    per_factor, latent_for = {}, {}
    for k, name in enumerate(names):
        h = entropy(factors[:, k])
        if h <= 0:
            continue  # a constant factor (orientation in the orientation-0 subset) carries nothing
        mi = np.array([mutual_information(z[:, j], factors[:, k]) for j in range(z.shape[1])])
        top = np.sort(mi)[::-1]
        per_factor[name] = float((top[0] - top[1]) / h)
        latent_for[name] = int(np.argmax(mi))
    if not per_factor:
        raise GMError("Every factor is constant in these samples; MIG is undefined.")
    return {"mig": float(np.mean(list(per_factor.values()))), "per_factor": per_factor, "latent_for": latent_for}


@torch.no_grad()
def encode(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device: torch.device,
           batch_size: int = 500, tracker=None) -> np.ndarray:
    """Latent means of uint8-derived float images, batch by batch."""
    out = []
    for s in range(0, images.shape[0], batch_size):
        if tracker is not None:
            tracker.check()
        out.append(encoder(images[s:s + batch_size].to(device)).double().cpu().numpy())
        if tracker is not None:
            tracker.advance(min(batch_size, images.shape[0] - s))
    return np.concatenate(out)


def model_encoder(model: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The latent-mean function of a model that encodes (gm.models.base.Encodes), else None."""
    from gm.models.base import Encodes
    if not isinstance(model, Encodes):
        return None

    def encode_mean(x: torch.Tensor) -> torch.Tensor:
        return model.encode(x)[0]
    return encode_mean
