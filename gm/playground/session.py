"""A live 2-D GAN: config, networks, optimizers and one training step, plus the plain-data view a
page draws (samples, decision surface, gradient field, history).

The losses are the image GANs' own: rows of ``gm.losses.ADVERSARIAL_LOSSES`` and its
``gradient_penalty``; the playground adds only the 2-D data, the small MLPs and the drawing. One
training iteration (``Playground.step``) is

    d_steps times: real ~ data, fake = G(z);  D's loss = table.d(D(real), D(fake)) [+ penalty];
                   update D [then clip its weights]
    once:          fake = G(z');  G's loss = table.g(D(fake));  update G

A lock guards the networks, so a background thread (``gm.playground.runner.Runner``) can step while
the page reads snapshots.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from gm.config import from_dict, option, to_dict
from gm.errors import GMError
from gm.losses import ADVERSARIAL_LOSSES, AdversarialLoss, gradient_penalty
from gm.playground.distributions import DISTRIBUTIONS, ToyDistribution, get_distribution
from gm.playground.history import History
from gm.playground.metrics import EVAL_SAMPLES, Coverage, evaluate
from gm.playground.models import Discriminator, Generator


@dataclass(frozen=True)
class PlaygroundLoss:
    """A playground loss: a row of the adversarial loss table plus how the critic is kept in check."""

    name: str
    table: str                 # key of gm.losses.ADVERSARIAL_LOSSES
    regulariser: str | None    # "clip" (weight clipping), "gp" (gradient penalty) or None
    about: str
    recipe: dict[str, Any]     # the reference's optimizer settings, applied by PlaygroundConfig.for_loss
    logit: bool = False        # D's output is a logit: its surface is drawn as P(real) = sigmoid(D)


# Every loss trains the same networks with the same optimizer by default (Adam 1e-3, betas 0.5 and
# 0.9 as WGAN-GP's toy experiments, 5 critic updates), so switching the loss is the only change
# between two runs: the comparison the playground is for. WGAN with clipping keeps its paper's
# RMSprop (momentum destabilised the clipped critic in Arjovsky et al. 2017).
PLAYGROUND_LOSSES: dict[str, PlaygroundLoss] = {loss.name: loss for loss in (
    PlaygroundLoss("ns", "ns", None,
                   "Non-saturating GAN (Goodfellow et al. 2014): D is a classifier, G maximises "
                   "log D(G(z)). On the ring it collapses onto one mode and hops between modes.",
                   {}, logit=True),
    PlaygroundLoss("wgan_clip", "wasserstein", "clip",
                   "WGAN with weight clipping (Arjovsky et al. 2017): the critic's weights are clipped "
                   "to [-clip, clip] after every update; RMSprop as the paper (at 5e-4, not its "
                   "5e-5, so the small networks move within a demo).",
                   {"optimizer": "rmsprop", "lr_g": 5e-4, "lr_d": 5e-4}),
    PlaygroundLoss("wgan_gp", "wasserstein", "gp",
                   "WGAN-GP (Gulrajani et al. 2017): a gradient penalty keeps the critic close to "
                   "1-Lipschitz; penalty weight 0.1 as in the authors' toy experiments (gan_toy.py: "
                   "a smaller weight trains faster on toy data; images use 10).",
                   {}),
    PlaygroundLoss("hinge", "hinge", None,
                   "Hinge loss (SN-GAN, SSGAN): relu(1 - D(x)) + relu(1 + D(G(z))) for D, -D(G(z)) "
                   "for G.",
                   {}),
    PlaygroundLoss("ls", "ls", None,
                   "Least squares (LSGAN, Mao et al. 2017): D regresses reals to 1 and fakes to 0; "
                   "G pulls its samples' scores towards 1.",
                   {}),
)}


@dataclass
class PlaygroundConfig:
    """Everything that decides a playground run; its fields are the page's form (``gm.config.option``)."""

    distribution: str = option("ring8", "The data: ring8, grid25, two_moons or spiral.",
                               choices=tuple(DISTRIBUTIONS))
    loss: str = option("ns", "Adversarial loss: ns, wgan_clip, wgan_gp, hinge or ls.",
                       choices=tuple(PLAYGROUND_LOSSES))
    lr_g: float = option(1e-3, "Generator learning rate.", min=1e-6, max=1.0)
    lr_d: float = option(1e-3, "Discriminator learning rate.", min=1e-6, max=1.0)
    optimizer: str = option("adam", "Optimizer of both networks: adam or rmsprop (WGAN with clipping).",
                            choices=("adam", "rmsprop"))
    beta1: float = option(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.9, "Adam beta2 (0.9 as WGAN-GP's experiments).", min=0.0, max=0.99999)
    d_steps: int = option(5, "Discriminator (critic) updates per generator update.", min=1, max=50)
    batch: int = option(128, "Real and fake points per update.", min=2, max=8192)
    noise_dim: int = option(32, "Size of the generator's noise z ~ N(0, I).", min=1, max=256)
    g_hidden: int = option(64, "Units per hidden layer of the generator.", min=4, max=1024)
    g_depth: int = option(3, "Hidden ReLU layers of the generator.", min=1, max=8)
    d_hidden: int = option(64, "Units per hidden layer of the discriminator.", min=4, max=1024)
    d_depth: int = option(3, "Hidden ReLU layers of the discriminator.", min=1, max=8)
    clip: float = option(0.01, "WGAN: critic weights are clipped to [-clip, clip].", min=1e-4, max=10.0)
    gp_weight: float = option(0.1, "WGAN-GP: weight lambda of the gradient penalty (0.1 as the "
                                   "authors' toy experiments; their images use 10).",
                              min=0.0, max=1000.0)
    seed: int = option(0, "Seed of the weights, the data and the noise.", min=0, max=2 ** 32 - 1)
    points: int = option(512, "Generator and real points drawn, and arrows of the gradient field.",
                         min=16, max=8192)
    grid: int = option(64, "Decision surface resolution (grid x grid points).", min=8, max=256)
    eval_every: int = option(100, "Count modes covered and high-quality share every this many steps "
                                  "(on 2,500 samples).", min=1, max=1_000_000)

    @classmethod
    def for_loss(cls, loss: str, **overrides: Any) -> PlaygroundConfig:
        """The config with ``loss``'s reference optimizer settings, then ``overrides``; validated."""
        if loss not in PLAYGROUND_LOSSES:
            raise GMError(f"Unknown playground loss {loss!r}; choose one of {', '.join(PLAYGROUND_LOSSES)}.")
        return from_dict(cls, {**to_dict(cls()), **PLAYGROUND_LOSSES[loss].recipe, "loss": loss, **overrides})

    def validated(self) -> PlaygroundConfig:
        """A checked copy (bounds and choices of every field), or a GMError naming the bad field."""
        return from_dict(type(self), to_dict(self))


# Fields a running playground takes without rebuilding its networks.
LIVE_FIELDS = ("lr_g", "lr_d", "d_steps", "batch", "clip", "gp_weight", "eval_every")


def _adam(net: torch.nn.Module, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for CPU tensors (2.4 and later): it steps these
    small networks about 3x faster than the loop over parameters, and the optimizer was a third
    of a step's time."""
    try:
        return torch.optim.Adam(net.parameters(), lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(net.parameters(), lr=lr, betas=betas)


@dataclass(frozen=True)
class Snapshot:
    """A plain-data picture of the playground for drawing (numpy arrays and Python numbers).

    ``fake``: G on the fixed noise [points, 2]; ``real``: a fixed real sample [points, 2];
    ``gradients``: -dL_G/dx at each fake point [points, 2], the direction G's loss pushes that point
    (per point, not divided by the batch size); ``grid_x``, ``grid_y`` [grid]: the surface's axes;
    ``surface`` [grid, grid]: D at (grid_x[j], grid_y[i]) in row i, column j (rows are y, as an image
    with origin at the bottom); ``surface_kind``: "probability" (sigmoid of D's logit, NS loss) or
    "score" (D's raw output); ``history``: per-step "step", "d_loss", "g_loss", "penalty" columns;
    ``evals``: "step", "modes_covered", "high_quality", "support_covered" columns (NaN where a
    distribution has no such number: modes for curves, support for mixtures);
    ``coverage``: the latest evaluation.
    """

    step: int
    distribution: str
    loss: str
    extent: tuple[float, float, float, float]
    fake: np.ndarray
    real: np.ndarray
    gradients: np.ndarray
    grid_x: np.ndarray
    grid_y: np.ndarray
    surface: np.ndarray
    surface_kind: str
    history: dict[str, list[float]]
    evals: dict[str, list[float]]
    coverage: Coverage | None
    n_modes: int | None


class Playground:
    """A GAN on 2-D toy data that a page steps and draws. Thread-safe: ``step``, ``snapshot``,
    ``update`` and ``reset`` hold one lock.

    >>> pg = Playground(PlaygroundConfig.for_loss("wgan_gp", seed=1))
    >>> pg.step(100)
    >>> view = pg.snapshot()   # view.fake, view.surface, view.gradients, view.coverage ...
    """

    def __init__(self, config: PlaygroundConfig | None = None):
        self._lock = threading.RLock()
        self._build((config or PlaygroundConfig()).validated())

    # ---- building -------------------------------------------------------------------------
    def _build(self, config: PlaygroundConfig) -> None:
        self.config = config
        self.distribution: ToyDistribution = get_distribution(config.distribution)
        self.loss_spec = PLAYGROUND_LOSSES[config.loss]
        self.table: AdversarialLoss = ADVERSARIAL_LOSSES[self.loss_spec.table]
        # Separate streams, so changing how often one is drawn (d_steps, batch) leaves the others.
        seeds = np.random.SeedSequence(config.seed).generate_state(5)
        weights, data, noise, fixed, eval_ = (torch.Generator().manual_seed(int(s)) for s in seeds)
        self.data_rng, self.noise_rng = data, noise
        self.generator = Generator(config.noise_dim, config.g_hidden, config.g_depth, weights)
        self.discriminator = Discriminator(config.d_hidden, config.d_depth, weights)
        self.opt_g, self.opt_d = self._optimizers()
        self.fixed_noise = torch.randn(config.points, config.noise_dim, generator=fixed)
        self.fixed_real = self.distribution.sample(config.points, fixed)
        self.eval_noise = torch.randn(EVAL_SAMPLES, config.noise_dim, generator=eval_)
        self.grid_x, self.grid_y, self._grid_points = self._surface_grid()
        self.steps = 0
        self.history = History("d_loss", "g_loss", "penalty")
        self.evals = History("modes_covered", "high_quality", "support_covered")
        self.coverage: Coverage | None = None
        if self.loss_spec.regulariser == "clip":
            self._clip()   # the first critic update already sees a clipped critic
        self._evaluate()

    def _optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        c = self.config
        if c.optimizer == "rmsprop":   # momentum destabilised the clipped critic in the WGAN paper
            return (torch.optim.RMSprop(self.generator.parameters(), lr=c.lr_g),
                    torch.optim.RMSprop(self.discriminator.parameters(), lr=c.lr_d))
        betas = (c.beta1, c.beta2)
        return (_adam(self.generator, c.lr_g, betas), _adam(self.discriminator, c.lr_d, betas))

    def _surface_grid(self) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        xmin, xmax, ymin, ymax = self.distribution.extent
        xs = torch.linspace(xmin, xmax, self.config.grid)
        ys = torch.linspace(ymin, ymax, self.config.grid)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        return xs.numpy(), ys.numpy(), torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)

    def reset(self, config: PlaygroundConfig | None = None) -> None:
        """Start again from step 0 with ``config`` (default: the current one, so the same seed
        replays the same run)."""
        config = (config or self.config).validated()
        with self._lock:
            self._build(config)

    def update(self, **changes: Any) -> None:
        """Change settings of the running playground without restarting it (learning rates, critic
        steps, batch, clip, penalty weight, evaluation interval); others need ``reset``."""
        rebuild = sorted(set(changes) - set(LIVE_FIELDS))
        if rebuild:
            raise GMError(f"{', '.join(rebuild)} cannot change while the playground runs; reset it "
                          f"with the new config instead (live: {', '.join(LIVE_FIELDS)}).")
        with self._lock:
            self.config = replace(self.config, **changes).validated()
            for group in self.opt_g.param_groups:
                group["lr"] = self.config.lr_g
            for group in self.opt_d.param_groups:
                group["lr"] = self.config.lr_d

    # ---- training ---------------------------------------------------------------------------
    def _clip(self) -> None:
        with torch.no_grad():
            for p in self.discriminator.parameters():
                p.clamp_(-self.config.clip, self.config.clip)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=self.noise_rng)

    def _train_once(self) -> dict[str, float]:
        c, g, d = self.config, self.generator, self.discriminator
        d_total = penalty_total = 0.0
        for _ in range(c.d_steps):
            real = self.distribution.sample(c.batch, self.data_rng)
            with torch.no_grad():
                fake = g(self._noise(c.batch))
            scores = d(torch.cat([real, fake]))   # one forward for both halves: fewer small kernels
            d_loss = self.table.d(scores[:c.batch], scores[c.batch:], 1.0)
            loss = d_loss
            if self.loss_spec.regulariser == "gp":
                eps = torch.rand(c.batch, generator=self.noise_rng)
                penalty = gradient_penalty(d, real, fake, eps)
                loss = d_loss + c.gp_weight * penalty
                penalty_total += penalty.item()
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            if self.loss_spec.regulariser == "clip":
                self._clip()
            d_total += d_loss.item()
        g_loss = self.table.g(d(g(self._noise(c.batch))))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward(inputs=list(g.parameters()))   # D's weights need no gradient here
        self.opt_g.step()
        out = {"d_loss": d_total / c.d_steps, "g_loss": g_loss.item()}
        if self.loss_spec.regulariser == "gp":
            out["penalty"] = penalty_total / c.d_steps
        return out

    def step(self, n: int = 1) -> None:
        """Run ``n`` training iterations (each: ``d_steps`` critic updates, one generator update),
        recording losses every step and coverage every ``eval_every`` steps."""
        with self._lock:
            for _ in range(n):
                values = self._train_once()
                self.steps += 1
                self.history.append(self.steps, **values)
                if self.steps % self.config.eval_every == 0:
                    self._evaluate()

    # ---- measuring and drawing --------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int = EVAL_SAMPLES, generator: torch.Generator | None = None) -> torch.Tensor:
        """n fresh generator samples [n, 2] (noise from ``generator``, else torch's global RNG)."""
        with self._lock:
            return self.generator(torch.randn(n, self.config.noise_dim, generator=generator))

    @torch.no_grad()
    def _evaluate(self) -> Coverage:
        self.coverage = evaluate(self.generator(self.eval_noise), self.distribution)
        cov = self.coverage
        nan = float("nan")
        self.evals.append(self.steps, high_quality=cov.high_quality,
                          modes_covered=nan if cov.modes_covered is None else cov.modes_covered,
                          support_covered=nan if cov.support_covered is None else cov.support_covered)
        return self.coverage

    def evaluate(self) -> Coverage:
        """Modes covered and high-quality share now, on the fixed 2,500 evaluation samples
        (``gm.playground.metrics`` says how they are counted)."""
        with self._lock:
            return evaluate(self.generator(self.eval_noise).detach(), self.distribution)

    def _gradient_field(self) -> tuple[torch.Tensor, torch.Tensor]:
        """G's samples on the fixed noise and -dL_G/dx at each of them, per point."""
        with torch.no_grad():
            fake = self.generator(self.fixed_noise)
        x = fake.clone().requires_grad_(True)
        g_loss = self.table.g(self.discriminator(x))
        (grad,) = torch.autograd.grad(g_loss, x)
        return fake, -grad * len(x)   # the loss averages over the batch: undo it for one point

    def snapshot(self) -> Snapshot:
        """The current picture; everything in it is a copy, safe to keep and draw from any thread."""
        with self._lock:
            fake, push = self._gradient_field()
            with torch.no_grad():
                scores = self.discriminator(self._grid_points)
            prob = self.loss_spec.logit
            surface = (torch.sigmoid(scores) if prob else scores).reshape(self.config.grid, self.config.grid)
            return Snapshot(
                step=self.steps, distribution=self.distribution.name, loss=self.config.loss,
                extent=self.distribution.extent, fake=fake.numpy().copy(),
                real=self.fixed_real.numpy().copy(), gradients=push.numpy().copy(),
                grid_x=self.grid_x.copy(), grid_y=self.grid_y.copy(), surface=surface.numpy().copy(),
                surface_kind="probability" if prob else "score", history=self.history.as_dict(),
                evals=self.evals.as_dict(), coverage=self.coverage,
                n_modes=None if self.distribution.modes is None else len(self.distribution.modes))
