"""WGAN (weight clipping) and WGAN-GP (gradient penalty): a critic without sigmoid, n_critic updates
of the critic per generator update.

Both default to the assignment's networks (Tables 2/3, `arch=gan`), so the comparison with `gan`
isolates the loss, which is what the assignment asks ("retrain with the Wasserstein loss"); the
critic is Table 3's discriminator, which has no batch norm (WGAN-GP's requirement) and whose logit
becomes an unbounded score. `arch=dcgan` swaps in the tutorial DCGAN networks (critic without
dropout, which would make the critic and its gradient penalty random).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gm.config import option
from gm.errors import GMError
from gm.losses import gradient_penalty, wasserstein_d_loss, wasserstein_g_loss
from gm.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gm.models.gan import ConvDiscriminator, PixelShuffleGenerator
from gm.trainers.gan import AdversarialConfig, AdversarialTrainer, frozen

ARCHS = ("gan", "dcgan")


@dataclass
class WGANConfig(AdversarialConfig):
    """Arjovsky et al.'s WGAN: RMSProp 5e-5, clip 0.01, 5 critic steps, batch 64."""

    arch: str = option("gan", "Networks: 'gan' = the assignment's Tables 2/3 (PixelShuffle G), "
                              "'dcgan' = the tutorial DCGAN (use latent_dim 100).", choices=ARCHS)
    lr_g: float = option(5e-5, "Generator learning rate (RMSProp).", min=1e-7, max=1.0)
    lr_d: float = option(5e-5, "Critic learning rate (RMSProp).", min=1e-7, max=1.0)
    beta1: float = option(0.5, "Unused by RMSProp (kept so every GAN shares its fields).", ui=False)
    beta2: float = option(0.999, "Unused by RMSProp (kept so every GAN shares its fields).", ui=False)
    n_critic: int = option(5, "Critic updates per generator update.", min=1, max=100)
    clip: float = option(0.01, "Critic weights are clipped to [-clip, clip] after every critic update.",
                         min=1e-6, max=10.0)
    critic_boost: bool = option(False, "The original schedule: 100 critic updates for the first 25 "
                                       "generator steps and every 500th (costly on a CPU).")

    def validate(self) -> None:
        super().validate()
        if self.arch not in ARCHS:
            raise GMError(f"'arch' must be one of {', '.join(ARCHS)}; got {self.arch!r}.")


@dataclass
class WGANGPConfig(AdversarialConfig):
    """Gulrajani et al.'s official MNIST settings: lambda 10, 5 critic steps, Adam 1e-4 (0.5, 0.9)."""

    arch: str = option("gan", "Networks: 'gan' = the assignment's Tables 2/3 (PixelShuffle G), "
                              "'dcgan' = the tutorial DCGAN (use latent_dim 100).", choices=ARCHS)
    lr_g: float = option(1e-4, "Generator learning rate.", min=1e-7, max=1.0)
    lr_d: float = option(1e-4, "Critic learning rate.", min=1e-7, max=1.0)
    beta1: float = option(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.9, "Adam beta2.", min=0.0, max=0.99999)
    n_critic: int = option(5, "Critic updates per generator update.", min=1, max=100)
    gp_weight: float = option(10.0, "Gradient penalty weight lambda.", min=0.0, max=1000.0)


class WassersteinTrainer(AdversarialTrainer):
    """Shared by WGAN and WGAN-GP: the critic loop, the generator step and the metrics."""

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        if c.arch == "dcgan":
            return DCGANGenerator(c.latent_dim, c.width), DCGANDiscriminator(c.width, dropout=0.0)
        return PixelShuffleGenerator(c.latent_dim, c.width), ConvDiscriminator(c.width)

    def batches_per_step(self) -> int:
        return self.config.n_critic

    def critic_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return None

    def after_critic_update(self) -> None:
        pass

    def optimize(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        sums: dict[str, torch.Tensor] = {}
        reals = self.split(x)
        for real in reals:
            n = real.shape[0]
            with torch.no_grad():
                fake = self.fwd(self.generate, self.latent(n))
            scores = self.fwd(self.discriminator, torch.cat([real, fake]))
            real_scores, fake_scores = scores[:n], scores[n:]
            d_loss = wasserstein_d_loss(real_scores, fake_scores)
            terms = {"w_dist": -d_loss.detach(), "d_real": real_scores.detach().mean(),
                     "d_fake": fake_scores.detach().mean()}
            penalty = self.critic_penalty(real, fake)
            if penalty is not None:
                d_loss = d_loss + self.config.gp_weight * penalty
                terms["gp"] = penalty.detach()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            self.after_critic_update()
            terms["d_loss"] = d_loss.detach()
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v

        fake = self.fwd(self.generate, self.latent(self.config.batch_size))
        with frozen(self.discriminator):
            g_loss = wasserstein_g_loss(self.fwd(self.discriminator, fake))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        out = {k: v / len(reals) for k, v in sums.items()}   # means over this step's critic updates
        out["g_loss"] = g_loss.detach()
        return out


class WGANTrainer(WassersteinTrainer):
    def __init__(self, config: WGANConfig, dataset, device: torch.device) -> None:
        super().__init__(config, dataset, device)
        self.clip_critic()  # N(0, 0.02) init exceeds 0.01: the first critic update must see a clipped critic

    def build_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        # Momentum-based optimisers destabilised the clipped critic in the WGAN paper: RMSProp.
        return (torch.optim.RMSprop(self.generator.parameters(), lr=self.config.lr_g),
                torch.optim.RMSprop(self.discriminator.parameters(), lr=self.config.lr_d))

    def batches_per_step(self) -> int:
        if self.config.critic_boost and (self.step < 25 or self.step % 500 == 0):
            return 100
        return self.config.n_critic

    @torch.no_grad()
    def clip_critic(self) -> None:
        c = self.config.clip
        for p in self.discriminator.parameters():
            p.clamp_(-c, c)

    def after_critic_update(self) -> None:
        self.clip_critic()


class WGANGPTrainer(WassersteinTrainer):
    def critic_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        eps = torch.rand((real.shape[0],), device=self.device, generator=self.noise)
        return gradient_penalty(lambda x: self.fwd(self.discriminator, x), real, fake, eps)
