"""Trainer of the VAE family (VAE, β-VAE, ControlVAE): loss = recon + β * KL.

Subclasses choose β by overriding :meth:`VAETrainer.next_beta`; the networks and the step are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gm.config import TrainConfig, option
from gm.losses import bernoulli_recon, gaussian_kl_per_dim
from gm.models.vae import VAEModel
from gm.trainers.base import Trainer


@dataclass
class VAEConfig(TrainConfig):
    """The ControlVAE paper's dSprites VAE: Adam 1e-4, batch 64, latent 10, Bernoulli likelihood."""

    latent_dim: int = option(10, "Size of the latent code z.", min=1, max=256)
    lr: float = option(1e-4, "Adam learning rate.", min=1e-7, max=1.0)
    beta1: float = option(0.9, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.999, "Adam beta2.", min=0.0, max=0.99999)
    width: float = option(1.0, "Channel multiplier of encoder and decoder (1 = the paper's size).", min=0.125, max=8)
    kl_dims_every: int = option(200, "Log per-dimension KL (kl_dims) every this many steps.", min=1)


class VAETrainer(Trainer):
    model: VAEModel

    def __init__(self, model: VAEModel, config: VAEConfig | None = None) -> None:
        super().__init__(model, config)
        c = self.config
        self.vae = model.vae
        self.opt = torch.optim.Adam(self.vae.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
        self.beta = 1.0

    def optimizers(self):
        return {"vae": self.opt}

    def checkpoint_score(self, record: dict[str, Any]) -> tuple[str, float] | None:
        """The negative ELBO, recon + kl. It equals `loss` for the plain VAE and, unlike `loss`,
        stays comparable when β changes (β-VAE, ControlVAE)."""
        if isinstance(record.get("recon"), (int, float)) and isinstance(record.get("kl"), (int, float)):
            return "recon+kl", float(record["recon"]) + float(record["kl"])
        if isinstance(record.get("loss"), (int, float)):
            return "loss", float(record["loss"])
        return None

    def next_beta(self, kl: torch.Tensor) -> float:
        """β for this step given the batch KL (a detached 0-d tensor). Plain VAE: 1."""
        return 1.0

    def step_metrics(self) -> dict[str, torch.Tensor]:
        """Extra per-step metrics of subclasses (e.g. controller terms)."""
        return {}

    def optimize(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor | float]:
        eps = self.shared_rows(x.shape[0], lambda n: torch.randn((n, self.vae.latent_dim), device=self.device,
                                                                 generator=self.noise))
        logits, mu, logvar = self.fwd(self.vae, x, eps)
        recon = bernoulli_recon(logits, x)
        kl_dims = gaussian_kl_per_dim(mu, logvar)
        kl = kl_dims.sum()
        self.beta = self.next_beta(kl.detach())
        loss = recon + self.beta * kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        out = {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(),
               "beta": float(self.beta)}
        out.update(self.step_metrics())
        if self.step % self.config.kl_dims_every == 0:
            out["kl_dims"] = kl_dims.detach()
        return out
