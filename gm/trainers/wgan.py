"""WGAN (weight clipping) and WGAN-GP (gradient penalty) as configs: a critic without sigmoid,
n_critic updates of the critic per generator update, trained by gm/trainers/adversarial.py.

Both default to the assignment's networks (Tables 2/3, `arch=gan`), so the comparison with `gan`
isolates the loss, which is what the assignment asks ("retrain with the Wasserstein loss"); the
critic is Table 3's discriminator, which has no batch norm (WGAN-GP's requirement) and whose logit
becomes an unbounded score. `arch=dcgan` swaps in the tutorial DCGAN networks (critic without
dropout, which would make the critic and its gradient penalty random).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gm.config import option
from gm.losses import ADVERSARIAL_LOSSES
from gm.trainers.adversarial import AdversarialConfig, GradientPenalty, Hook, WeightClipping

ARCHS = ("gan", "dcgan")
BOOST_CRITIC = 100   # the WGAN paper's critic updates in the first 25 and every 500th generator step


@dataclass
class WGANConfig(AdversarialConfig):
    """Arjovsky et al.'s WGAN: RMSProp 5e-5, clip 0.01, 5 critic steps, batch 64."""

    HOOKS: ClassVar[tuple[type[Hook], ...]] = (WeightClipping,)
    OPTIMIZER: ClassVar[str] = "rmsprop"

    arch: str = option("gan", "Networks: 'gan' = the assignment's Tables 2/3 (PixelShuffle G), "
                              "'dcgan' = the tutorial DCGAN (use latent_dim 100).", choices=ARCHS)
    loss: str = option("wasserstein", "Adversarial loss (the WGAN paper's: 'wasserstein').",
                       choices=tuple(ADVERSARIAL_LOSSES))
    lr_g: float = option(5e-5, "Generator learning rate (RMSProp).", min=1e-7, max=1.0)
    lr_d: float = option(5e-5, "Critic learning rate (RMSProp).", min=1e-7, max=1.0)
    beta1: float = option(0.5, "Unused by RMSProp (kept so every GAN shares its fields).", ui=False)
    beta2: float = option(0.999, "Unused by RMSProp (kept so every GAN shares its fields).", ui=False)
    n_critic: int = option(5, "Critic updates per generator update.", min=1, max=100)
    clip: float = option(0.01, "Critic weights are clipped to [-clip, clip] after every critic update.",
                         min=1e-6, max=10.0)
    critic_boost: bool = option(False, "The original schedule: 100 critic updates for the first 25 "
                                       "generator steps and every 500th (costly on a CPU).")

    def batches_at(self, step: int) -> int:
        if self.critic_boost and (step < 25 or step % 500 == 0):
            return BOOST_CRITIC
        return self.n_critic


@dataclass
class WGANGPConfig(AdversarialConfig):
    """Gulrajani et al.'s official MNIST settings: lambda 10, 5 critic steps, Adam 1e-4 (0.5, 0.9)."""

    HOOKS: ClassVar[tuple[type[Hook], ...]] = (GradientPenalty,)

    arch: str = option("gan", "Networks: 'gan' = the assignment's Tables 2/3 (PixelShuffle G), "
                              "'dcgan' = the tutorial DCGAN (use latent_dim 100).", choices=ARCHS)
    loss: str = option("wasserstein", "Adversarial loss (the WGAN-GP paper's: 'wasserstein').",
                       choices=tuple(ADVERSARIAL_LOSSES))
    lr_g: float = option(1e-4, "Generator learning rate.", min=1e-7, max=1.0)
    lr_d: float = option(1e-4, "Critic learning rate.", min=1e-7, max=1.0)
    beta1: float = option(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.9, "Adam beta2.", min=0.0, max=0.99999)
    n_critic: int = option(5, "Critic updates per generator update.", min=1, max=100)
    gp_weight: float = option(10.0, "Gradient penalty weight lambda.", min=0.0, max=1000.0)
