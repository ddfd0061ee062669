"""SSGAN as a config: a spectrally normalised ResNet GAN whose discriminator also predicts image
rotations (the RotationTask hook), trained by gm/trainers/adversarial.py.

D's loss adds 1.0 x the rotation cross-entropy on rotated real images; G's adds 0.2 x the rotation
cross-entropy on its rotated fakes (Chen et al. 2019; Mimicry, compare_gan). MNIST is padded from
28x28 to 32x32 with background (-1), the size the architecture is built for; samples are cropped
back to 28x28 so they compare with the data like every other model's.

Default adversarial loss: hinge. It is what the reference implementation followed here (Mimicry's
SSGAN, whose CIFAR-10 FID 14.65 beats its SNGAN) uses, and the SN-GAN line of work pairs spectral
norm with hinge loss; `loss=ns` gives the non-saturating loss of the assignment's GAN for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gm.config import option
from gm.losses import ADVERSARIAL_LOSSES
from gm.trainers.adversarial import AdversarialConfig, Hook, RotationTask

SSGAN_SIZE = 32


@dataclass
class SSGANConfig(AdversarialConfig):
    """Mimicry's SSGAN: latent 128, Adam 2e-4 (0, 0.9), hinge loss, rotation weights 1.0 / 0.2."""

    HOOKS: ClassVar[tuple[type[Hook], ...]] = (RotationTask,)
    ARCHS: ClassVar[tuple[str, ...]] = ("ssgan",)

    arch: str = option("ssgan", "Networks: SSGAN's spectrally normalised ResNets (32x32).",
                       choices=("ssgan",), ui=False)
    loss: str = option("hinge", "Adversarial loss: 'hinge' (Mimicry's default), 'ns' (non-saturating), "
                                "'ls' or 'wasserstein'.", choices=tuple(ADVERSARIAL_LOSSES))
    latent_dim: int = option(128, "Size of the noise vector z ~ N(0, I).", min=1, max=1024)
    width: float = option(0.125, "Channel multiplier (1 = the paper's 256-channel G and 128-channel D; "
                                 "the CPU default 0.125 gives 32 and 16).", min=0.0625, max=8)
    beta1: float = option(0.0, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.9, "Adam beta2.", min=0.0, max=0.99999)
    n_critic: int = option(2, "Discriminator updates per generator update (Mimicry's SSGAN "
                              "tutorial: 2; its baselines: 5).", min=1, max=100)
    rot_weight_d: float = option(1.0, "Weight of the rotation loss on real images in D's loss.",
                                 min=0.0, max=100.0)
    rot_weight_g: float = option(0.2, "Weight of the rotation loss on fake images in G's loss.",
                                 min=0.0, max=100.0)
