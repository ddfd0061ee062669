"""Pure loss functions. Each takes tensors and returns a scalar tensor (or a per-item tensor)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


# ---- VAE family ---------------------------------------------------------------------------
def bernoulli_recon(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood, summed over pixels, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over the batch (shape: latent_dim)."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form Gaussian KL summed over latent dimensions, averaged over the batch."""
    return gaussian_kl_per_dim(mu, logvar).sum()
