"""The playground's networks: small fully connected generator and discriminator for 2-D points.

The 2-D experiments of Unrolled GAN (Metz et al. 2017), VEEGAN and WGAN-GP (Gulrajani et al. 2017)
all use plain ReLU MLPs of a few hundred units; nothing here is image-specific. Weights are drawn
from the playground's own ``torch.Generator``, never torch's global RNG, so a seed gives the same
networks in any thread and whatever else the process draws.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _seeded_init(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear init (uniform +-1/sqrt(fan_in) for weights and biases), drawn from
    ``generator``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)


def mlp(in_dim: int, out_dim: int, hidden: int, depth: int, generator: torch.Generator) -> nn.Sequential:
    """``depth`` hidden ReLU layers of ``hidden`` units, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    net = nn.Sequential(*layers)
    _seeded_init(net, generator)
    return net


class Generator(nn.Module):
    """z [n, noise_dim] ~ N(0, I) -> a point [n, 2]; the output layer is linear (no tanh), so the
    generator can reach any point of the plane."""

    def __init__(self, noise_dim: int, hidden: int, depth: int, generator: torch.Generator):
        super().__init__()
        self.noise_dim = noise_dim
        self.net = mlp(noise_dim, 2, hidden, depth, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """A point [n, 2] -> a raw score [n]: a logit for the BCE loss, a critic value for Wasserstein
    and hinge, the regression output for least squares (the loss table decides what it means)."""

    def __init__(self, hidden: int, depth: int, generator: torch.Generator):
        super().__init__()
        self.net = mlp(2, 1, hidden, depth, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
