"""What the image-to-image translation trainers share: the config fields both papers have, the image
pool, the learning-rate schedule and the fixed images the sample grids translate.

Batches come from :class:`gm.data.domains.DomainBatcher`: ``batch_size`` unpaired images of every
domain of the config's split per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gm.config import TrainConfig, option
from gm.data.base import Batch
from gm.errors import GMError
from gm.trainers.base import Trainer

GRID_COLUMNS = 8


@dataclass
class TranslationConfig(TrainConfig):
    """Fields shared by CycleGAN and StarGAN."""

    domains: str = option("shape", "Which split of the dataset gives the domains (dSprites: 'shape' = "
                                   "square / ellipse / heart, 'scale' = small / large).",
                          choices=("shape", "scale"))
    width: float = option(0.125, "Channel multiplier of every network (1 = the paper's 64 base channels).",
                          min=0.0625, max=4)
    n_blocks: int = option(6, "Residual blocks in the generator (both papers: 6 at 128 px).", min=1, max=12)
    beta1: float = option(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.999, "Adam beta2.", min=0.0, max=0.99999)
    decay_start: int = option(0, "Step from which the learning rates fall linearly to 0 at decay_end "
                                 "(0 = constant learning rates).", min=0)
    decay_end: int = option(0, "Step at which the decayed learning rates reach 0.", min=0)
    sample_every: int = option(250, "Save a grid of translations every this many steps.", min=1)

    def domain_split(self) -> str | None:
        return self.domains

    def validate(self) -> None:
        if self.decay_start and self.decay_end <= self.decay_start:
            raise GMError(f"decay_end ({self.decay_end}) must come after decay_start ({self.decay_start}).")


def lr_factor(step: int, start: int, end: int) -> float:
    """Constant 1 before `start`, then linear to 0 at `end` (both papers' schedule); 1 when off."""
    if not start or step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(1, end - start))


class ImagePool:
    """Shrivastava et al.'s history of generated images (CycleGAN's pool of 50): D sees, half of the
    time, an earlier fake instead of the newest one, which damps oscillation between G and D.

    Draws come from the trainer's generator, and the images are part of the checkpoint, so a resumed
    run sees the same history.
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.generator = generator
        self.images: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.images is None else int(self.images.shape[0])

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for img in fakes.detach():
            img = img.unsqueeze(0)
            if len(self) < self.size:
                self.images = img.clone() if self.images is None else torch.cat([self.images, img])
                out.append(img)
                continue
            swap = torch.rand((), device=img.device, generator=self.generator).item() > 0.5
            if swap:
                i = int(torch.randint(0, self.size, (), device=img.device, generator=self.generator))
                assert self.images is not None
                out.append(self.images[i:i + 1].clone())
                self.images[i] = img[0]
            else:
                out.append(img)
        return torch.cat(out)

    def state(self) -> dict[str, Any]:
        return {} if self.images is None else {"images": self.images.clone()}

    def load(self, state: dict[str, Any]) -> None:
        images = state.get("images")
        self.images = None if images is None else images.to(self.generator.device)


class TranslationTrainer(Trainer):
    """Per-domain batches in, the fixed grid sources kept, learning rates scheduled by step."""

    def optimize(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        raise GMError("Translation models train on batches of several domains; use train_step.")

    def __init__(self, model: Any, config: Any = None) -> None:
        super().__init__(model, config)
        self.grid_sources: dict[str, torch.Tensor] = {}

    def batch_domains(self) -> tuple[str, ...]:
        """The domains whose images a step takes from the batch (the model's, by default)."""
        return tuple(self.model.domains)

    def domain_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The batch's images of each domain the step takes, as the networks take them ([-1, 1])."""
        wanted = self.batch_domains()
        missing = [d for d in wanted if d not in batch.images]
        if missing:
            raise GMError(f"The batch has no images of domain(s) {', '.join(missing)}; train on the "
                          f"'{self.config.domains}' split.")
        out = {d: self.prepare(batch.images[d]) for d in wanted}
        if not self.grid_sources:   # the first batch's images are the grid's, for the whole run
            self.grid_sources = {d: ((v[:GRID_COLUMNS] + 1) / 2).detach().clone() for d, v in out.items()}
        return out

    def schedule_lr(self) -> float:
        """Set every optimizer's learning rate for the coming step; returns the factor applied."""
        c = self.config
        factor = lr_factor(self.step, c.decay_start, c.decay_end)
        for opt in self.optimizers().values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor
        return factor

    def extra_state(self) -> dict[str, Any]:
        return {"grid_sources": {d: v.clone() for d, v in self.grid_sources.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        sources = state.get("grid_sources") or {}
        self.grid_sources = {d: v.to(self.device) for d, v in sources.items()}

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        if not self.grid_sources:
            raise GMError("No translation grid before the first training step.")
        return self.model.translation_grid(self.grid_sources)
