"""A toy model of a kind gm has no view for: a two-domain translator (tests only).

It exists to prove the core carries models it was not written for: it trains through the real loop
on unpaired batches of two dSprites domains, is saved and loaded like any run, and every page of the
app shows it or says "not available". Registered by the tests that use it (``registered()``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gm.config import TrainConfig, option
from gm.data.base import Batch
from gm.models.base import GenerativeModel, Translates, domain_index
from gm.registry import ModelSpec, register, unregister
from gm.trainers.base import Trainer

NAME = "toy-translator"


@dataclass
class ToyTranslatorConfig(TrainConfig):
    """Two 3x3 convolutions (one per direction), trained with cycle and identity L1 losses."""

    domains: str = option("shape", "Which dSprites split gives the two domains (its first two).",
                          choices=("shape", "scale"))
    lr: float = option(1e-3, "Adam learning rate.", min=1e-7, max=1.0)

    def domain_split(self) -> str | None:
        return self.domains


class ToyTranslator(GenerativeModel, Translates):
    image_range = "unit"
    grid_shape = (2, 8)

    def build(self) -> None:
        self.forward_net = nn.Conv2d(1, 1, 3, padding=1)    # first domain -> second
        self.backward_net = nn.Conv2d(1, 1, 3, padding=1)   # second -> first

    @property
    def domains(self) -> tuple[str, ...]:
        return self.data.domains[:2]

    def translate(self, images: torch.Tensor, to: str, source: str | None = None) -> torch.Tensor:
        net = self.forward_net if domain_index(self.domains, to) == 1 else self.backward_net
        return torch.sigmoid(net(images.to(self.device).float()))


class ToyTranslatorTrainer(Trainer):
    model: ToyTranslator

    def __init__(self, model: ToyTranslator, config: Any = None) -> None:
        super().__init__(model, config)
        self.opt = torch.optim.Adam(model.parameters(), lr=self.config.lr)
        self._shown: torch.Tensor | None = None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"translator": self.opt}

    def optimize(self, x, labels):   # one-tensor entry point: not how this trainer is fed
        raise NotImplementedError

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        a_name, b_name = self.model.domains
        a = self.prepare(batch.images[a_name])
        b = self.prepare(batch.images[b_name])
        if self._shown is None:
            self._shown = a[:8].detach().clone()
        m = self.model
        cycle = F.l1_loss(m.translate(m.translate(a, b_name), a_name), a) + \
            F.l1_loss(m.translate(m.translate(b, a_name), b_name), b)
        self.opt.zero_grad(set_to_none=True)
        cycle.backward()
        self.opt.step()
        self.step += 1
        return {"cycle_l1": cycle.detach(), "domain_gap": (a.mean() - b.mean()).abs()}

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """Row 1: images of the first domain; row 2: their translations."""
        shown = self._shown if self._shown is not None else torch.zeros(8, *self.model.image_shape)
        shown = shown.to(self.device)
        return torch.cat([shown, self.model.translate(shown, self.model.domains[1])]), 8


SPEC = ModelSpec(name=NAME, dataset="dsprites", group="translation", model=ToyTranslator,
                 config=ToyTranslatorConfig, trainer=ToyTranslatorTrainer)


@contextlib.contextmanager
def registered() -> Iterator[ModelSpec]:
    register(SPEC)
    try:
        yield SPEC
    finally:
        unregister(NAME)
