"""What users play with in a trained GAN: seeds, meaningful latent directions, slerp interpolation.

Directions are the principal axes of the generator's first layer on z (the right singular vectors
of its weight restricted to the noise inputs): moving z along them changes the first hidden layer
the most, so they are the directions the generator is most sensitive to — a cheap, data-free cousin
of GANSpace. Every function takes a model that samples from noise (gm.models.base.SamplesFromNoise: ``gm.load_model``
of a GAN run, or a VAE: its decoder is a generator of z too). No Streamlit here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from gm.errors import GMError
from gm.images import make_grid
from gm.models.base import ClassConditional, SamplesFromNoise


def _noise_model(model: Any) -> SamplesFromNoise:
    if not isinstance(model, SamplesFromNoise):
        raise GMError(f"{type(model).__name__} does not sample from noise; seeds, directions and sweeps "
                      f"are not available for this model.")
    return model


def latent_dim(model: Any) -> int:
    return int(_noise_model(model).latent_dim)


def seed_latent(model, seed: int) -> torch.Tensor:
    """The z (1 x latent_dim) that `model.sample(1, seed)` uses."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn((1, latent_dim(model)), generator=gen)


def principal_directions(model, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(directions k x latent_dim, singular values k) of G's first layer acting on z."""
    d = latent_dim(model)
    for m in _noise_model(model).latent_layer().modules():
        weight = None
        if isinstance(m, nn.Linear) and m.in_features >= d:
            weight = m.weight.detach().float().cpu()[:, :d]            # out x d
        elif isinstance(m, nn.ConvTranspose2d) and m.in_channels >= d:
            weight = m.weight.detach().float().cpu()[:d].reshape(d, -1).T
        if weight is not None:
            _, s, vh = torch.linalg.svd(weight, full_matrices=False)
            k = max(1, min(k, vh.shape[0]))
            return vh[:k], s[:k]
    raise GMError("This generator has no first layer on z to take directions from.")


def generate(model, z: torch.Tensor, label: int | None = None) -> torch.Tensor:
    """Images in [0, 1] for latent codes z (N x latent_dim); `label` for class-conditional models."""
    model = _noise_model(model)
    z = torch.as_tensor(z, dtype=torch.float32).reshape(-1, latent_dim(model)).to(model.device)
    labels = None
    if isinstance(model, ClassConditional):
        labels = torch.full((z.shape[0],), int(label or 0), dtype=torch.long, device=model.device)
    return model.sample_from(z, labels).float().cpu()


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: stays on the shell where Gaussian latents live (lerp cuts inside)."""
    a, b = z0.reshape(-1).double(), z1.reshape(-1).double()
    cos = torch.clamp(torch.dot(a, b) / (a.norm() * b.norm() + 1e-12), -1.0, 1.0)
    omega = torch.arccos(cos)
    if float(omega) < 1e-6:
        out = (1 - t) * a + t * b
    else:
        out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return out.float().reshape(1, -1)


def interpolation_grid(model, seed0: int, seed1: int, steps: int = 10, label: int | None = None) -> np.ndarray:
    z0, z1 = seed_latent(model, seed0), seed_latent(model, seed1)
    codes = torch.cat([slerp(z0, z1, t) for t in np.linspace(0, 1, steps)])
    return make_grid(generate(model, codes, label), steps)


def direction_grid(model, seed: int, k: int = 5, span: float = 3.0, steps: int = 7,
                   label: int | None = None) -> np.ndarray:
    """One row per principal direction, sweeping [-span, span] around the seed's z."""
    dirs, _ = principal_directions(model, k)
    z = seed_latent(model, seed)
    codes = torch.cat([z + a * d for d in dirs for a in np.linspace(-span, span, steps)])
    return make_grid(generate(model, codes, label), steps)
