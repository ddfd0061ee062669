"""Weight initialisations the GAN references use."""

from __future__ import annotations

import torch
from torch import nn


def channels(base: int, width: float, multiple: int = 1) -> int:
    """`base * width` rounded to a positive multiple of `multiple` (PixelShuffle needs 4)."""
    return max(1, round(base * width / multiple)) * multiple


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for conv/linear weights, N(1, std) for batch-norm scales, zero biases.

    The DCGAN paper's recipe, also used by the official WGAN code and the PyTorch DCGAN example.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class SeededDropout(nn.Dropout):
    """nn.Dropout whose masks come from a trainer's own ``torch.Generator`` (``self.generator``).

    Plain dropout draws from torch's global RNG, which every thread of the process shares: two
    training jobs in one app would disturb each other's masks and no resume could be exact. The
    trainer hands its noise generator to every SeededDropout of its model (``bind_generator``);
    unbound (a model someone built by hand) it behaves exactly like nn.Dropout. No weights, so
    checkpoints are unchanged.
    """

    generator: torch.Generator | None = None
    shard: tuple[int, int] = (0, 1)   # (rank, world size) under torchrun

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(x)
        rank, world = self.shard
        n = x.shape[0]
        # Under torchrun every rank draws the masks of the global batch and keeps its own rows: the
        # masks one process would have drawn for these images (gm.runs.distributed).
        shape = (n * world, *x.shape[1:])
        keep = torch.rand(shape, device=x.device, generator=self.generator)[rank * n:(rank + 1) * n] >= self.p
        return x * keep / (1.0 - self.p)


def bind_generator(module: nn.Module, generator: torch.Generator | None,
                   shard: tuple[int, int] = (0, 1)) -> None:
    """Give every SeededDropout inside `module` the generator its masks come from (and, under
    torchrun, this process's (rank, world size))."""
    for m in module.modules():
        if isinstance(m, SeededDropout):
            m.generator = generator
            m.shard = shard
