"""The GAN family's shared trainer and the two BCE models: `gan` (the assignment's) and `dcgan`.

One train_step = one generator update, after the discriminator's update(s) on the same step's real
batch(es). Metrics come back as detached 0-d tensors, so the loop syncs once per log window.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from gm.config import TrainConfig, option
from gm.data.base import ImageDataset
from gm.errors import GMError
from gm.losses import ns_d_loss, ns_g_loss
from gm.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gm.models.gan import ConvDiscriminator, PixelShuffleGenerator
from gm.trainers.base import Trainer


@dataclass
class AdversarialConfig(TrainConfig):
    """Fields every GAN shares; each model redeclares the defaults of its reference."""

    latent_dim: int = option(64, "Size of the noise vector z ~ N(0, I).", min=1, max=1024)
    width: float = option(1.0, "Channel multiplier of G and D (1 = the paper's size).", min=0.0625, max=8)
    lr_g: float = option(2e-4, "Generator learning rate.", min=1e-7, max=1.0)
    lr_d: float = option(2e-4, "Discriminator learning rate.", min=1e-7, max=1.0)
    beta1: float = option(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.999, "Adam beta2.", min=0.0, max=0.99999)
    sample_every: int = option(250, "Save a sample grid every this many steps (and at each epoch's end).", min=1)

    def validate(self) -> None:
        if self.batch_size < 2:
            raise GMError("GANs need batch_size of at least 2 (batch norm needs two images per batch).")


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for `module` inside the block (G's step needs D's input gradient only)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class AdversarialTrainer(Trainer):
    """A generator, a discriminator, one optimizer each, and sampling from fixed seeds."""

    family = "gan"
    image_range = "signed"
    grid_shape = (10, 10)

    def __init__(self, config: AdversarialConfig, dataset: ImageDataset, device: torch.device) -> None:
        super().__init__(config, dataset, device)
        self.generator, self.discriminator = (m.to(device) for m in self.build_networks())
        self.opt_g, self.opt_d = self.build_optimizers()

    # ---- what subclasses choose ---------------------------------------------------------------
    @abstractmethod
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """(generator, discriminator) of this model, built from self.config."""

    def build_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return (torch.optim.Adam(self.generator.parameters(), lr=c.lr_g, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d, betas=betas))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z)

    # ---- shared -------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def latent(self, n: int) -> torch.Tensor:
        return torch.randn((n, self.config.latent_dim), device=self.device, generator=self.noise)

    def split(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The step's real batches (several for critic iterations), as the loop concatenated them."""
        k = max(1, images.shape[0] // self.config.batch_size)
        return images.chunk(k)

    @torch.no_grad()
    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn((n, self.config.latent_dim), generator=gen).to(self.device)
        return self.sample_from(z, labels)

    @torch.no_grad()
    def sample_from(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] of the dataset's size, with G in eval mode (batch norm's running stats)."""
        was = self.generator.training
        self.generator.eval()
        try:
            x = self.generate(z, labels)
        finally:
            self.generator.train(was)
        h, w = self.image_shape[-2:]
        if x.shape[-2:] != (h, w):   # SSGAN works at 32x32 on padded 28x28 digits: crop the border
            top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
            x = x[..., top:top + h, left:left + w]
        return ((x.float() + 1) / 2).clamp(0, 1)


def mean_prob(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits.detach()).mean()


def bce_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's accuracy as a classifier: reals above 0.5, fakes below (the tricks' effect shows here)."""
    return ((real_logits.detach() > 0).float().mean() + (fake_logits.detach() < 0).float().mean()) / 2


# ---- gan ------------------------------------------------------------------------------------------
@dataclass
class GANConfig(AdversarialConfig):
    """The assignment's GAN (Tables 2/3): latent 64, non-saturating loss; Adam 2e-4 (0.5, 0.999)."""


class GANTrainer(AdversarialTrainer):
    """Non-saturating GAN: one D update, then one G update on the same fake batch."""

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        return PixelShuffleGenerator(c.latent_dim, c.width), ConvDiscriminator(c.width)

    def real_target(self) -> float:
        return 1.0

    def noise_sigma(self) -> float:
        return 0.0

    def perturb(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, device=x.device, generator=self.noise)

    def optimize(self, real: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        fake = self.fwd(self.generate, self.latent(n))
        sigma = self.noise_sigma()

        # D and its inputs share one forward (no batch norm in D, so this equals two calls).
        logits = self.fwd(self.discriminator, self.perturb(torch.cat([real, fake.detach()]), sigma))
        real_logits, fake_logits = logits[:n], logits[n:]
        d_loss = ns_d_loss(real_logits, fake_logits, self.real_target())
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        with frozen(self.discriminator):
            g_loss = ns_g_loss(self.fwd(self.discriminator, self.perturb(fake, sigma)))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": mean_prob(real_logits), "d_fake": mean_prob(fake_logits),
                "d_acc": bce_accuracy(real_logits, fake_logits)}


# ---- dcgan ----------------------------------------------------------------------------------------
@dataclass
class DCGANConfig(AdversarialConfig):
    """The TensorFlow tutorial's MNIST DCGAN: noise 100, batch 256, Adam 1e-4 (Keras betas) for both."""

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


def annealed_sigma(step: int, sigma0: float, anneal_steps: int) -> float:
    """Linear decay from sigma0 at step 0 to 0 at anneal_steps (and 0 after)."""
    return sigma0 * max(0.0, 1.0 - step / anneal_steps)


SMOOTH_REAL_TARGET = 0.9  # Salimans et al. 2016


class DCGANTrainer(GANTrainer):
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        return DCGANGenerator(c.latent_dim, c.width), DCGANDiscriminator(c.width, c.dropout)

    def real_target(self) -> float:
        return SMOOTH_REAL_TARGET if self.config.label_smoothing else 1.0

    def noise_sigma(self) -> float:
        return annealed_sigma(self.step, self.config.instance_noise, self.config.noise_anneal_steps)

    def optimize(self, real: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        sigma = self.noise_sigma()
        out = super().optimize(real, labels)
        if self.config.instance_noise > 0:
            out["noise_sigma"] = sigma
        return out
