"""ACGAN as a config: class-conditional generation with an auxiliary classifier in the
discriminator (the ClassTask hook), trained by gm/trainers/adversarial.py.

D maximises L_S + L_C and G maximises L_C - L_S (SPEC Part 3), with G's source term in the
non-saturating form used for every BCE model here. Fake labels are drawn uniformly; the saved grid
has one row per class with the same noise down each column, so a column shows one "style" across
the ten digits (gm.models.gan_model.ConditionalGANModel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gm.config import option
from gm.trainers.adversarial import AdversarialConfig, ClassTask, Hook, ModeSeeking


@dataclass
class ACGANConfig(AdversarialConfig):
    """ACGAN on the DCGAN networks: noise 100, Adam 2e-4 (0.5, 0.999), batch 64."""

    HOOKS: ClassVar[tuple[type[Hook], ...]] = (ClassTask, ModeSeeking)
    ARCHS: ClassVar[tuple[str, ...]] = ("acgan",)

    arch: str = option("acgan", "Networks: a class-conditional DCGAN generator and a DCGAN "
                                "discriminator with a class head.", choices=("acgan",), ui=False)
    latent_dim: int = option(100, "Size of the noise vector z ~ N(0, I).", min=1, max=1024)
    width: float = option(0.5, "Channel multiplier of the DCGAN networks (1 = 256/128/64 channels in G, "
                               "64/128 in D; 0.5 is the CPU default).", min=0.0625, max=8)
    conditioning: str = option("batchnorm", "How G takes the class: 'batchnorm' = class-conditional batch "
                                            "norm in every layer, 'input' = a class embedding concatenated "
                                            "to the noise (the first shipped ACGAN's).",
                               choices=("batchnorm", "input"), before="input")
    embed_dim: int = option(10, "Size of the class embedding concatenated to the noise "
                                "(conditioning 'input' only).", min=1, max=512)
    dropout: float = option(0.3, "Dropout after each discriminator convolution.", min=0.0, max=0.9)
    fake_class_loss: bool = option(True, "Also train D's class head on fakes with their requested class "
                                         "(Odena et al.'s L_C); off, it learns from real digits only.")
    mode_seeking: float = option(0.0, "Weight of the mode-seeking term (MSGAN): G pays when two noises of one "
                                      "class give near-identical images (0 = off).", min=0.0, max=100.0)
    class_weight: float = option(1.0, "Weight of G's class term (how hard G is pushed to make its "
                                      "requested class recognisable).", min=0.0, max=100.0)
