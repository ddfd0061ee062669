"""The GAN family's model objects: a generator and a discriminator, built by architecture name.

Every GAN config names its networks in ``arch`` (the assignment's Tables 2/3, the tutorial DCGAN,
SSGAN's ResNets, ACGAN's conditional DCGAN); which loss trains them is the trainer's business
(gm/trainers/adversarial.py). Generators end in Tanh, so samples come out in [-1, 1] and are mapped
to [0, 1] here; SSGAN's networks work at 32x32 on padded digits and are cropped back to the data's
size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gm.errors import GMError
from gm.models.acgan import (
    AuxClassifierDiscriminator,
    ConditionalBatchNormGenerator,
    ConditionalGenerator,
)
from gm.models.base import ClassConditional, DataInfo, GenerativeModel, SamplesFromNoise
from gm.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gm.models.gan import ConvDiscriminator, PixelShuffleGenerator
from gm.models.ssgan import SSGANDiscriminator, SSGANGenerator


def _conditional_generator(c: Any, d: DataInfo) -> nn.Module:
    """ACGAN's G by the config's ``conditioning`` (gm.models.acgan explains both)."""
    if getattr(c, "conditioning", "input") == "batchnorm":
        return ConditionalBatchNormGenerator(c.latent_dim, d.num_classes, c.width)
    return ConditionalGenerator(c.latent_dim, d.num_classes, c.embed_dim, c.width)


@dataclass(frozen=True)
class Architecture:
    """How to build (generator, discriminator) from a config, and the image size they work at."""

    build: Callable[[Any, DataInfo], tuple[nn.Module, nn.Module]]
    size: int | None = None        # side the networks take (None: the data's own size)
    conditional: bool = False      # G takes class labels and D has a class head
    dropout: bool = False          # D has dropout layers (the config's `dropout` applies)


ARCHITECTURES: dict[str, Architecture] = {
    "gan": Architecture(lambda c, d: (PixelShuffleGenerator(c.latent_dim, c.width), ConvDiscriminator(c.width))),
    "dcgan": Architecture(lambda c, d: (DCGANGenerator(c.latent_dim, c.width),
                                        DCGANDiscriminator(c.width, c.dropout)), dropout=True),
    "ssgan": Architecture(lambda c, d: (SSGANGenerator(c.latent_dim, c.width), SSGANDiscriminator(c.width)),
                          size=32),
    "acgan": Architecture(lambda c, d: (_conditional_generator(c, d),
                                        AuxClassifierDiscriminator(d.num_classes, c.width, c.dropout)),
                          conditional=True, dropout=True),
}


class GANModel(GenerativeModel, SamplesFromNoise):
    """An unconditional GAN: ``sample(n, seed)`` draws z ~ N(0, I) from a CPU generator seeded with
    `seed` (the same images on every device), then runs G in eval mode (batch norm's running stats)."""

    image_range = "signed"
    grid_shape = (10, 10)

    def build(self) -> None:
        arch = self.architecture
        if arch.conditional and self.data.num_classes < 2:
            raise GMError(f"A class-conditional GAN needs a labelled dataset; '{self.data.dataset}' has "
                          f"no classes.")
        self.generator, self.discriminator = arch.build(self.config, self.data)
        if getattr(self.config, "ema", 0.0):
            # A copy of G whose weights trail the trained ones (gm.trainers.adversarial.ema_decay):
            # the networks samples come from. Part of the state dict, so checkpoints and resumes hold it.
            self.generator_average = copy.deepcopy(self.generator).requires_grad_(False)

    def training_only(self) -> tuple[str, ...]:
        """D, and G itself when samples come from its weight average."""
        if getattr(self, "generator_average", None) is not None:
            return ("discriminator.", "generator.")
        return ("discriminator.",)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator samples come from: the weight average when the config keeps one, else G."""
        average = getattr(self, "generator_average", None)
        return self.generator if average is None else average

    def load_weights(self, weights: dict[str, torch.Tensor], strict: bool = True,
                     sampling_only: bool = False) -> None:
        """As GenerativeModel.load_weights; weights saved without a weight average (a run resumed
        with ``--set ema=...``) start the average from their G."""
        has_average = any(k.startswith("generator_average.") for k in weights)
        if getattr(self, "generator_average", None) is not None and not has_average:
            weights = {**weights, **{"generator_average." + k[len("generator."):]: v
                                     for k, v in weights.items() if k.startswith("generator.")}}
        super().load_weights(weights, strict=strict, sampling_only=sampling_only)

    @torch.no_grad()
    def update_average(self, decay: float) -> None:
        """generator_average <- decay * generator_average + (1 - decay) * generator (parameters and
        batch-norm statistics; integer counters are copied)."""
        avg = self.generator_average
        for a, g in zip(avg.parameters(), self.generator.parameters()):
            a.lerp_(g, 1.0 - decay)
        for a, g in zip(avg.buffers(), self.generator.buffers()):
            if a.is_floating_point():
                a.lerp_(g, 1.0 - decay)
            else:
                a.copy_(g)

    @property
    def architecture(self) -> Architecture:
        try:
            return ARCHITECTURES[self.config.arch]
        except KeyError:
            raise GMError(f"Unknown GAN architecture {self.config.arch!r}; use one of "
                          f"{', '.join(ARCHITECTURES)}.") from None

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def latent_layer(self) -> nn.Module:
        return self.sampling_generator

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                 generator: nn.Module | None = None) -> torch.Tensor:
        """G's raw output in [-1, 1] at the networks' size (training uses this, with gradients);
        `generator` runs another copy of G (the weight average) instead."""
        return (self.generator if generator is None else generator)(z)

    def to_network(self, x: torch.Tensor) -> torch.Tensor:
        """Real images in [-1, 1] at the data's size -> the networks' size (pad with background)."""
        size = self.architecture.size
        if size is None:
            return x
        pad_h, pad_w = size - x.shape[-2], size - x.shape[-1]
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=-1.0)
        return x

    def latents(self, n: int, seed: int) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn((n, self.latent_dim), generator=gen)

    @torch.no_grad()
    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.sample_from(self.latents(n, seed).to(self.device), labels)

    @torch.no_grad()
    def sample_from(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] of the dataset's size, with G in eval mode (batch norm's running stats)."""
        g = self.sampling_generator
        was = g.training
        g.eval()
        try:
            x = self.generate(z.to(self.device), labels, g)
        finally:
            g.train(was)
        h, w = self.image_shape[-2:]
        if x.shape[-2:] != (h, w):   # SSGAN works at 32x32 on padded 28x28 digits: crop the border
            top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
            x = x[..., top:top + h, left:left + w]
        return ((x.float() + 1) / 2).clamp(0, 1)


class ConditionalGANModel(GANModel, ClassConditional):
    """ACGAN: G takes (z, class); the saved grid has one row per class with the same noise down
    each column, so a column shows one "style" across the classes."""

    @property
    def num_classes(self) -> int:
        return int(self.data.num_classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names or tuple(str(i) for i in range(self.num_classes))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                 generator: nn.Module | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.arange(z.shape[0], device=z.device) % self.num_classes
        return (self.generator if generator is None else generator)(z, labels.to(z.device))

    def check_labels(self, n: int, labels: Any) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (n,):
            raise GMError(f"Give one label per image: {n} images but labels of shape {tuple(labels.shape)}.")
        if bool(((labels < 0) | (labels >= self.num_classes)).any()):
            raise GMError(f"Labels must be class numbers from 0 to {self.num_classes - 1}.")
        return labels

    @torch.no_grad()
    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images; labels default to 0, 1, ..., 9, 0, 1, ... (one per image)."""
        labels = self.check_labels(n, torch.arange(n) % self.num_classes if labels is None else labels)
        return self.sample_from(self.latents(n, seed).to(self.device), labels.to(self.device))

    def grid_classes(self) -> torch.Tensor:
        """Class of each grid image: row r is class r (rows beyond the classes wrap around)."""
        rows, cols = self.grid_shape
        return (torch.arange(rows) % self.num_classes).repeat_interleave(cols)

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """One row per class; column j uses the same noise in every row."""
        rows, cols = self.grid_shape
        z = self.latents(cols, int(self.config.seed) + self.grid_seed_offset).repeat(rows, 1)
        with self.evaluating():
            return self.sample_from(z.to(self.device), self.grid_classes().to(self.device)), cols
