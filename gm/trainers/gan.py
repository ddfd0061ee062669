"""The BCE GANs and LSGAN as configs: `gan` (the assignment's), `dcgan` (the TensorFlow tutorial's)
and `lsgan` (Mao et al. 2017). Each is a config plus the hooks it declares; gm/trainers/adversarial.py
trains them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gm.config import option
from gm.losses import ADVERSARIAL_LOSSES
from gm.trainers.adversarial import (
    SMOOTH_REAL_TARGET,
    AdversarialConfig,
    AdversarialTrainer,
    Hook,
    InstanceNoise,
    LabelSmoothing,
    annealed_sigma,
)

__all__ = ["DCGANConfig", "GANConfig", "LSGANConfig", "SMOOTH_REAL_TARGET", "annealed_sigma",
           "AdversarialTrainer"]


@dataclass
class GANConfig(AdversarialConfig):
    """The assignment's GAN (Tables 2/3): latent 64, non-saturating loss; Adam 2e-4 (0.5, 0.999)."""


@dataclass
class DCGANConfig(AdversarialConfig):
    """The TensorFlow tutorial's MNIST DCGAN: noise 100, batch 256, Adam 1e-4 (Keras betas) for both."""

    HOOKS: ClassVar[tuple[type[Hook], ...]] = (LabelSmoothing, InstanceNoise)

    arch: str = option("dcgan", "Networks: 'dcgan' = the TensorFlow tutorial's DCGAN, 'gan' = the "
                                "assignment's Tables 2/3.", choices=("gan", "dcgan"))
    batch_size: int = option(256, "Images per training step.", min=2, max=4096)
    latent_dim: int = option(100, "Size of the noise vector z ~ N(0, I).", min=1, max=1024)
    width: float = option(0.5, "Channel multiplier of G and D (1 = the tutorial's 256/128/64 channels; "
                               "0.5 is the CPU default).", min=0.0625, max=8)
    lr_g: float = option(1e-4, "Generator learning rate (the DCGAN paper uses 2e-4).", min=1e-7, max=1.0)
    lr_d: float = option(1e-4, "Discriminator learning rate (the DCGAN paper uses 2e-4).", min=1e-7, max=1.0)
    beta1: float = option(0.9, "Adam beta1 (Keras default; the DCGAN paper uses 0.5).", min=0.0, max=0.9999)
    dropout: float = option(0.3, "Dropout after each discriminator convolution.", min=0.0, max=0.9)
    label_smoothing: bool = option(False, "One-sided label smoothing: D's target for real images is 0.9 "
                                          "instead of 1 (fakes stay 0).")
    instance_noise: float = option(0.0, "Instance noise: std of Gaussian noise added to D's real and fake "
                                        "inputs ([-1, 1] scale) at step 0, annealed linearly to 0; "
                                        "0 = off, 0.1-0.3 typical.", min=0.0, max=2.0)
    noise_anneal_steps: int = option(2000, "Steps over which the instance noise decays to 0.", min=1)


@dataclass
class LSGANConfig(AdversarialConfig):
    """LSGAN (Mao et al. 2017) on the assignment's networks: least-squares loss with a = 0, b = c = 1;
    Adam (0.5, 0.999) as in the paper, G at the paper's 2e-4 and D at a quarter of it.

    Why D is slower: on Table 3's discriminator (ReLU, no batch norm) the least-squares D separated
    real from fake within 100 steps at 2e-4 (D(x) 0.97, D(G(z)) 0.03) and G's samples stayed noise
    after 1,500 steps; at 5e-5 D(x) and D(G(z)) stay near 0.5 and the grid shows clean digit strokes
    by step 800 (CPU runs, seed 0, README "GANs on MNIST").
    """

    loss: str = option("ls", "Adversarial loss: 'ls' (least squares, the LSGAN paper's), 'ns', 'hinge' "
                             "or 'wasserstein'.", choices=tuple(ADVERSARIAL_LOSSES))
    lr_d: float = option(5e-5, "Discriminator learning rate (a quarter of G's: at 2e-4 the "
                               "least-squares D wins within 100 steps on these networks).",
                         min=1e-7, max=1.0)
