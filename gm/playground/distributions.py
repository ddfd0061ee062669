"""The toy 2-D distributions of the playground: seeded samplers, their modes and noise-free support.

Mixtures of Gaussians are the standard test bed for mode collapse because every mode is known: a
generator that lands all its samples on one of eight Gaussians is visibly, and countably, wrong.
Two moons and a spiral have no modes but a curved support, so they show whether a generator can
bend its noise onto a thin manifold. Every distribution also gives its noise-free support (the
mode centres, or dense points on the curves): the quality metrics measure distances to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gm.errors import GMError

Sampler = Callable[[int, "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class ToyDistribution:
    """One 2-D data distribution the playground trains on.

    ``modes``: the mixture's component means (None for a distribution without modes); ``std``: the
    per-coordinate standard deviation of the noise around the modes or the curve, which sets the
    "high quality" tolerance (3 std); ``extent``: (xmin, xmax, ymin, ymax) of the plot, wide
    enough to show samples that miss the data.
    """

    name: str
    title: str
    about: str
    std: float
    extent: tuple[float, float, float, float]
    modes: tuple[tuple[float, float], ...] | None
    sampler: Sampler
    support_sampler: Callable[[int], torch.Tensor] | None   # points on the curve; None for a mixture (its modes)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples, float32 [n, 2]; the same generator state gives the same samples."""
        return self.sampler(n, generator)

    def mode_centres(self) -> torch.Tensor | None:
        """The modes as a float32 [k, 2] tensor, or None."""
        return None if self.modes is None else torch.tensor(self.modes, dtype=torch.float32)

    def support(self, n: int = 4096) -> torch.Tensor:
        """The noise-free support: the mode centres, or n evenly spread points on the curves."""
        centres = self.mode_centres()
        return centres if centres is not None else self.support_sampler(n)


def _mixture_sampler(modes: tuple[tuple[float, float], ...], std: float) -> Sampler:
    """Equal-weight isotropic Gaussian mixture: pick a component uniformly, add N(0, std^2 I)."""
    centres = torch.tensor(modes, dtype=torch.float32)

    def sample(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        which = torch.randint(0, len(centres), (n,), generator=generator)
        return centres[which] + std * torch.randn(n, 2, generator=generator)

    return sample


# ---- mixtures of Gaussians ------------------------------------------------------------------
RING8_MODES = tuple((2.0 * math.cos(2 * math.pi * i / 8), 2.0 * math.sin(2 * math.pi * i / 8))
                    for i in range(8))
GRID25_MODES = tuple((float(x), float(y)) for x in range(-4, 5, 2) for y in range(-4, 5, 2))

ring8 = ToyDistribution(
    name="ring8", title="Ring of 8 Gaussians",
    about="Eight Gaussians (std 0.02) evenly spaced on a circle of radius 2: the test bed of "
          "Unrolled GAN (Metz et al. 2017) and VEEGAN (Srivastava et al. 2017), where a plain GAN "
          "collapses onto one mode or hops from mode to mode.",
    std=0.02, extent=(-3.0, 3.0, -3.0, 3.0), modes=RING8_MODES,
    sampler=_mixture_sampler(RING8_MODES, 0.02), support_sampler=None)

grid25 = ToyDistribution(
    name="grid25", title="Grid of 25 Gaussians",
    about="25 Gaussians (std 0.05) on a 5 x 5 grid at -4, -2, 0, 2, 4: VEEGAN's (Srivastava et al. "
          "2017) harder mode-collapse test, where even the interior modes must each be found.",
    std=0.05, extent=(-6.0, 6.0, -6.0, 6.0), modes=GRID25_MODES,
    sampler=_mixture_sampler(GRID25_MODES, 0.05), support_sampler=None)


# ---- curves -----------------------------------------------------------------------------------
MOONS_STD = 0.1
SPIRAL_STD = 0.1
SPIRAL_TURNS = 1.5
SPIRAL_RADIUS = 3.5


def _moons_curve(t: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Points on the two half circles of scikit-learn's make_moons, centred and scaled by 2."""
    angle = math.pi * t
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return 2 * torch.stack([x - 0.5, y - 0.25], dim=1)


def _moons_sample(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    t = torch.rand(n, generator=generator)
    upper = torch.rand(n, generator=generator) < 0.5
    return _moons_curve(t, upper) + MOONS_STD * torch.randn(n, 2, generator=generator)


def _moons_support(n: int) -> torch.Tensor:
    t = torch.linspace(0, 1, (n + 1) // 2)
    half = torch.ones_like(t, dtype=torch.bool)
    return torch.cat([_moons_curve(t, half), _moons_curve(t, ~half)])


def _spiral_curve(s: torch.Tensor) -> torch.Tensor:
    """An Archimedean spiral; s in [0, 1] maps to angle 2 pi turns sqrt(s), so points spread
    roughly evenly along the arc (its length grows as the angle squared)."""
    angle = 2 * math.pi * SPIRAL_TURNS * s.sqrt()
    radius = SPIRAL_RADIUS * angle / (2 * math.pi * SPIRAL_TURNS)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)


def _spiral_sample(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    s = torch.rand(n, generator=generator)
    return _spiral_curve(s) + SPIRAL_STD * torch.randn(n, 2, generator=generator)


def _spiral_support(n: int) -> torch.Tensor:
    return _spiral_curve(torch.linspace(0, 1, n))


two_moons = ToyDistribution(
    name="two_moons", title="Two moons",
    about="Two interleaved half circles with Gaussian noise (std 0.1), as scikit-learn's make_moons "
          "draws them (scaled by 2): no modes to count, but a generator must split its noise into "
          "two curved pieces.",
    std=MOONS_STD, extent=(-3.5, 3.5, -3.5, 3.5), modes=None,
    sampler=_moons_sample, support_sampler=_moons_support)

spiral = ToyDistribution(
    name="spiral", title="Spiral",
    about=f"A {SPIRAL_TURNS:g}-turn Archimedean spiral out to radius {SPIRAL_RADIUS:g} with Gaussian "
          f"noise (std {SPIRAL_STD:g}): one long thin curve that the generator must wind its noise "
          "along.",
    std=SPIRAL_STD, extent=(-4.5, 4.5, -4.5, 4.5), modes=None,
    sampler=_spiral_sample, support_sampler=_spiral_support)


DISTRIBUTIONS: dict[str, ToyDistribution] = {d.name: d for d in (ring8, grid25, two_moons, spiral)}


def get_distribution(name: str) -> ToyDistribution:
    """The registered distribution called ``name``, or a GMError that lists the valid names."""
    try:
        return DISTRIBUTIONS[name]
    except KeyError:
        raise GMError(f"Unknown toy distribution {name!r}; choose one of "
                      f"{', '.join(DISTRIBUTIONS)}.") from None
