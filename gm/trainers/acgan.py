"""ACGAN: class-conditional generation with an auxiliary classifier in the discriminator.

D maximises L_S + L_C and G maximises L_C - L_S (SPEC Part 3), with G's source term in the
non-saturating form used for every BCE model here. Fake labels are drawn uniformly; the saved grid
has one row per class with the same noise down each column, so a column shows one "style" across
the ten digits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from gm.config import option
from gm.data.base import ImageDataset
from gm.errors import GMError
from gm.losses import acgan_d_loss, acgan_g_loss
from gm.models.acgan import AuxClassifierDiscriminator, ConditionalGenerator
from gm.trainers.gan import AdversarialConfig, AdversarialTrainer, bce_accuracy, frozen, mean_prob


@dataclass
class ACGANConfig(AdversarialConfig):
    """ACGAN on the DCGAN networks: noise 100, Adam 2e-4 (0.5, 0.999), batch 64."""

    latent_dim: int = option(100, "Size of the noise vector z ~ N(0, I).", min=1, max=1024)
    width: float = option(0.5, "Channel multiplier of the DCGAN networks (1 = 256/128/64 channels in G, "
                               "64/128 in D; 0.5 is the CPU default).", min=0.0625, max=8)
    embed_dim: int = option(10, "Size of the learned class embedding concatenated to the noise.",
                            min=1, max=512)
    dropout: float = option(0.3, "Dropout after each discriminator convolution.", min=0.0, max=0.9)


class ACGANTrainer(AdversarialTrainer):
    uses_labels = True

    def __init__(self, config: ACGANConfig, dataset: ImageDataset, device: torch.device) -> None:
        if dataset.num_classes < 2:
            raise GMError(f"ACGAN needs a labelled dataset; '{dataset.name}' has no classes.")
        super().__init__(config, dataset, device)

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        return (ConditionalGenerator(c.latent_dim, self.num_classes, c.embed_dim, c.width),
                AuxClassifierDiscriminator(self.num_classes, c.width, c.dropout))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.arange(z.shape[0], device=z.device) % self.num_classes
        return self.generator(z, labels.to(z.device))

    def optimize(self, real: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if labels is None:
            raise GMError("ACGAN trains on labelled batches; the data loader gave none.")
        n = real.shape[0]
        fake_labels = torch.randint(0, self.num_classes, (n,), device=self.device, generator=self.noise)
        fake = self.fwd(self.generate, self.latent(n), fake_labels)

        src, cls = self.fwd(self.discriminator, torch.cat([real, fake.detach()]))
        d_loss, _, d_cls = acgan_d_loss(src[:n], src[n:], cls[:n], cls[n:], labels, fake_labels)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        with frozen(self.discriminator):
            g_src, g_cls_logits = self.fwd(self.discriminator, fake)
        g_loss, _, g_cls = acgan_g_loss(g_src, g_cls_logits, fake_labels)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        cls = cls.detach()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": mean_prob(src[:n]), "d_fake": mean_prob(src[n:]),
                "d_acc": bce_accuracy(src[:n], src[n:]),
                "d_cls": d_cls.detach(), "g_cls": g_cls.detach(),
                "cls_acc": (cls[:n].argmax(1) == labels).float().mean(),
                "fake_cls_acc": (cls[n:].argmax(1) == fake_labels).float().mean()}

    @torch.no_grad()
    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images; labels default to 0, 1, ..., 9, 0, 1, ... (one per image)."""
        if labels is None:
            labels = torch.arange(n) % self.num_classes
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (n,):
            raise GMError(f"Give one label per image: {n} images but labels of shape {tuple(labels.shape)}.")
        if bool(((labels < 0) | (labels >= self.num_classes)).any()):
            raise GMError(f"Labels must be class numbers from 0 to {self.num_classes - 1}.")
        return super().sample(n, seed, labels.to(self.device))

    def grid_classes(self) -> torch.Tensor:
        """Class of each grid image: row r is class r (rows beyond the classes wrap around)."""
        rows, cols = self.grid_shape
        return (torch.arange(rows) % self.num_classes).repeat_interleave(cols)

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """One row per class; column j uses the same noise in every row."""
        rows, cols = self.grid_shape
        gen = torch.Generator(device="cpu").manual_seed(self.config.seed + 12345)
        z = torch.randn((cols, self.config.latent_dim), generator=gen).repeat(rows, 1).to(self.device)
        with self._compile_guard() if self._compiled else contextlib.nullcontext():
            return self.sample_from(z, self.grid_classes().to(self.device)), cols
