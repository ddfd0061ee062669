"""One trainer for every GAN: a loss from the table, a critic schedule, and small hooks.

A GAN here is a config (networks in ``arch``, loss in ``loss``, critic updates in ``n_critic``) plus
the hooks its config class declares in ``HOOKS`` — gradient penalty, weight clipping, a rotation or
class head, instance noise, label smoothing — and the optimizer it names in ``OPTIMIZER``. One
training step:

    for each of the step's real batches (the critic schedule: n_critic, WGAN's boost):
        fake = G(z)                                       (no graph unless G's step reuses it)
        D's loss = table[loss].d(D(real), D(fake)) + each hook's critic term; update D; hooks after
    G's loss = table[loss].g(D(fake)) + each hook's generator term; update G

With a single critic batch, G's step reuses that batch's fakes (one G forward per step, as the
assignment's GAN and the PyTorch DCGAN example do); with several, G draws fresh noise, as the WGAN
references do. Metrics come back as detached 0-d tensors, averaged over the step's critic updates,
so the loop syncs once per log window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from gm.config import TrainConfig, option
from gm.errors import GMError
from gm.losses import (
    ADVERSARIAL_LOSSES,
    AdversarialLoss,
    class_loss,
    gradient_penalty,
    rotation_loss,
)
from gm.models.gan_model import ARCHITECTURES, GANModel
from gm.models.ssgan import rotate_quarters
from gm.trainers.base import Trainer

OPTIMIZERS = ("adam", "rmsprop")


@dataclass
class AdversarialConfig(TrainConfig):
    """Fields every GAN shares; each model redeclares the defaults of its reference."""

    # Declared, not fields (so not in the form or config.json): the model's training recipe.
    HOOKS: ClassVar[tuple[type[Hook], ...]] = ()
    OPTIMIZER: ClassVar[str] = "adam"   # "rmsprop" for WGAN with clipping
    ARCHS: ClassVar[tuple[str, ...]] = ("gan", "dcgan")

    arch: str = option("gan", "Networks: 'gan' = the assignment's Tables 2/3 (PixelShuffle G), "
                              "'dcgan' = the TensorFlow tutorial's DCGAN (use latent_dim 100).",
                       choices=("gan", "dcgan"))
    loss: str = option("ns", "Adversarial loss: 'ns' (non-saturating BCE), 'hinge', 'wasserstein' "
                             "(a critic; needs clipping or a penalty to be stable) or 'ls' "
                             "(least squares, LSGAN).", choices=tuple(ADVERSARIAL_LOSSES))
    latent_dim: int = option(64, "Size of the noise vector z ~ N(0, I).", min=1, max=1024)
    width: float = option(1.0, "Channel multiplier of G and D (1 = the paper's size).", min=0.0625, max=8)
    lr_g: float = option(2e-4, "Generator learning rate.", min=1e-7, max=1.0)
    lr_d: float = option(2e-4, "Discriminator learning rate.", min=1e-7, max=1.0)
    beta1: float = option(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = option(0.999, "Adam beta2.", min=0.0, max=0.99999)
    n_critic: int = option(1, "Discriminator (critic) updates per generator update.", min=1, max=100)
    dropout: float = option(0.0, "Dropout after each discriminator convolution (DCGAN networks only; "
                                 "the tutorial uses 0.3).", min=0.0, max=0.9)
    sample_every: int = option(250, "Save a sample grid every this many steps (and at each epoch's end).", min=1)
    ema: float = option(0.0, "Samples come from an exponential moving average of G's weights with this "
                             "decay (0 = off, 0.999 typical: ProGAN, BigGAN, StyleGAN); training is "
                             "unchanged.", min=0.0, max=0.99999)

    def validate(self) -> None:
        if self.batch_size < 2:
            raise GMError("GANs need batch_size of at least 2 (batch norm needs two images per batch).")
        if self.arch not in type(self).ARCHS:
            raise GMError(f"'arch' must be one of {', '.join(type(self).ARCHS)}; got {self.arch!r}.")
        if self.dropout > 0 and not ARCHITECTURES[self.arch].dropout:
            raise GMError(f"dropout applies to the DCGAN networks only; arch={self.arch} has none.")

    def batches_at(self, step: int) -> int:
        return self.n_critic


# ---- hooks ----------------------------------------------------------------------------------------
@dataclass
class CriticStep:
    """What a hook sees of one critic update: the batch, D's outputs and the labels."""

    real: torch.Tensor
    fake: torch.Tensor
    scores: torch.Tensor               # D's adversarial output for [real, fake, extra...]
    aux: torch.Tensor | None           # D's second head on the same inputs (rotation, classes)
    n: int
    labels: torch.Tensor | None
    fake_labels: torch.Tensor | None
    z: torch.Tensor | None = None      # the fakes' noise


class Hook:
    """A piece of a GAN's recipe. Every method is optional; the trainer calls them in order."""

    def attach(self, trainer: AdversarialTrainer) -> None:
        """Once, after the optimizers exist (e.g. clip a freshly initialised critic)."""

    def fake_labels(self, trainer: AdversarialTrainer, n: int) -> torch.Tensor | None:
        """Class labels for n fakes (class-conditional GANs), drawn before their noise."""
        return None

    def extra_inputs(self, images: torch.Tensor) -> torch.Tensor | None:
        """Images appended to D's batch after [real, fake] (critic) or [fake] (generator)."""
        return None

    def perturb(self, trainer: AdversarialTrainer, x: torch.Tensor) -> torch.Tensor:
        """D's input as D sees it (instance noise)."""
        return x

    def real_target(self, trainer: AdversarialTrainer) -> float | None:
        """D's target for real images (label smoothing); None = the loss's own."""
        return None

    def critic_term(self, trainer: AdversarialTrainer, step: CriticStep) -> tuple[torch.Tensor | None, dict]:
        """(a term added to D's loss, metrics)."""
        return None, {}

    def after_critic(self, trainer: AdversarialTrainer) -> None:
        """After each critic update (weight clipping)."""

    def generator_term(self, trainer: AdversarialTrainer, step: CriticStep) -> tuple[torch.Tensor | None, dict]:
        """(a term added to G's loss, metrics); ``step.real`` is empty here."""
        return None, {}

    def step_metrics(self, trainer: AdversarialTrainer) -> dict[str, Any]:
        return {}


class GradientPenalty(Hook):
    """WGAN-GP (Gulrajani et al. 2017): gp_weight x (||grad D(x_hat)|| - 1)^2 on random mixes."""

    def critic_term(self, trainer, step):
        eps = trainer.shared_rows(step.n, lambda n: torch.rand((n,), device=trainer.device, generator=trainer.noise))
        d = trainer.model.discriminator
        penalty = gradient_penalty(lambda x: trainer.fwd(d, x), step.real, step.fake, eps)
        return trainer.config.gp_weight * penalty, {"gp": penalty.detach()}


class WeightClipping(Hook):
    """WGAN (Arjovsky et al. 2017): critic weights clipped to [-clip, clip] after every update."""

    def attach(self, trainer):
        self.after_critic(trainer)  # N(0, 0.02) init exceeds 0.01: the first update sees a clipped critic

    @torch.no_grad()
    def after_critic(self, trainer):
        c = trainer.config.clip
        for p in trainer.model.discriminator.parameters():
            p.clamp_(-c, c)


class RotationTask(Hook):
    """SSGAN (Chen et al. 2019): D also predicts each image's rotation (0/90/180/270 degrees);
    D's loss adds rot_weight_d x the task on rotated reals, G's rot_weight_g x on rotated fakes."""

    def extra_inputs(self, images):
        rotated, _ = rotate_quarters(images)
        return rotated

    def _task(self, aux: torch.Tensor, images: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, rot_labels = rotate_quarters(images)
        logits = aux[offset:]
        return rotation_loss(logits, rot_labels), (logits.detach().argmax(1) == rot_labels).float().mean()

    def critic_term(self, trainer, step):
        loss, acc = self._task(step.aux, step.real, 2 * step.n)
        return trainer.config.rot_weight_d * loss, {"d_rot": loss.detach(), "rot_acc": acc}

    def generator_term(self, trainer, step):
        loss, _ = self._task(step.aux, step.fake, step.n)
        return trainer.config.rot_weight_g * loss, {"g_rot": loss.detach()}


class ClassTask(Hook):
    """ACGAN (Odena et al. 2017): fakes get uniform random classes; D's class head is trained on
    reals and (``fake_class_loss``, the paper's L_C) on fakes, and G is rewarded, with weight
    ``class_weight``, when D recognises the class it was asked for."""

    def fake_labels(self, trainer, n):
        k = trainer.model.num_classes
        if getattr(trainer.config, "mode_seeking", 0.0):
            # Pairs for ModeSeeking: image i + n//2 has the class of image i (an odd one out at the end).
            h = n // 2
            half = trainer.shared_rows(h, lambda m: torch.randint(0, k, (m,), device=trainer.device,
                                                                  generator=trainer.noise))
            odd = trainer.shared_rows(n - 2 * h, lambda m: torch.randint(0, k, (m,), device=trainer.device,
                                                                         generator=trainer.noise))
            return torch.cat([half, half, odd])
        return trainer.shared_rows(n, lambda m: torch.randint(0, k, (m,), device=trainer.device,
                                                              generator=trainer.noise))

    def critic_term(self, trainer, step):
        if step.labels is None:
            raise GMError("ACGAN trains on labelled batches; the data loader gave none.")
        n, cls = step.n, step.aux
        term = class_loss(cls[:n], step.labels)
        if trainer.config.fake_class_loss:
            term = term + class_loss(cls[n:2 * n], step.fake_labels)
        cls = cls.detach()
        return term, {"d_cls": term.detach(), "cls_acc": (cls[:n].argmax(1) == step.labels).float().mean(),
                      "fake_cls_acc": (cls[n:2 * n].argmax(1) == step.fake_labels).float().mean()}

    def generator_term(self, trainer, step):
        term = class_loss(step.aux[:step.n], step.fake_labels)
        return trainer.config.class_weight * term, {"g_cls": term.detach()}


MODE_SEEKING_EPS = 1e-5


class ModeSeeking(Hook):
    """Mode seeking (Mao et al. 2019, MSGAN): G is penalised by 1 / (ratio + eps), where ratio is
    mean |G(z1, c) - G(z2, c)| / mean |z1 - z2| over pairs of fakes of the same class (the batch's two
    halves: ClassTask pairs the classes). A conditional G that ignores its noise draws the same image
    for every z of a class; this term makes that costly. Weight: the config's ``mode_seeking``
    (0 = off)."""

    def generator_term(self, trainer, step):
        weight = trainer.config.mode_seeking
        h = step.n // 2
        if not weight or h == 0 or step.z is None:
            return None, {}
        images = (step.fake[:h] - step.fake[h:2 * h]).abs().mean()
        noise = (step.z[:h] - step.z[h:2 * h]).abs().mean()
        ratio = images / noise
        return weight / (ratio + MODE_SEEKING_EPS), {"ms_ratio": ratio.detach()}


def annealed_sigma(step: int, sigma0: float, anneal_steps: int) -> float:
    """Linear decay from sigma0 at step 0 to 0 at anneal_steps (and 0 after)."""
    return sigma0 * max(0.0, 1.0 - step / anneal_steps)


class InstanceNoise(Hook):
    """Gaussian noise on D's real and fake inputs, annealed linearly to 0 (Sønderby et al. 2017)."""

    def sigma(self, trainer) -> float:
        c = trainer.config
        return annealed_sigma(trainer.step, c.instance_noise, c.noise_anneal_steps)

    def perturb(self, trainer, x):
        sigma = self.sigma(trainer)
        if sigma <= 0:
            return x
        noise = trainer.shared_rows(x.shape[0], lambda m: torch.randn((m, *x.shape[1:]), device=x.device,
                                                                      generator=trainer.noise))
        return x + sigma * noise

    def step_metrics(self, trainer):
        return {"noise_sigma": self.sigma(trainer)} if trainer.config.instance_noise > 0 else {}


SMOOTH_REAL_TARGET = 0.9  # Salimans et al. 2016


class LabelSmoothing(Hook):
    """One-sided label smoothing: D's target for reals is 0.9 when the config's switch is on."""

    def real_target(self, trainer):
        return SMOOTH_REAL_TARGET if trainer.config.label_smoothing else None


# ---- the trainer ----------------------------------------------------------------------------------
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


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _split_outputs(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def ema_decay(decay: float, step: int) -> float:
    """The average's decay at a step: ramped up from 0.1 (TensorFlow's ExponentialMovingAverage with
    num_updates), so the first steps do not keep G's random initial weights for thousands of steps."""
    return min(decay, (1 + step) / (10 + step))


class AdversarialTrainer(Trainer):
    """Trains any :class:`GANModel` with the loss, schedule, optimizer and hooks of its config."""

    model: GANModel

    def __init__(self, model: GANModel, config: AdversarialConfig | None = None) -> None:
        super().__init__(model, config)
        c = self.config
        self.hooks: list[Hook] = [hook() for hook in type(c).HOOKS]
        self.opt_g, self.opt_d = self._optimizers(type(c).OPTIMIZER)
        for hook in self.hooks:
            hook.attach(self)

    @property
    def adversarial_loss(self) -> AdversarialLoss:
        return ADVERSARIAL_LOSSES[self.config.loss]

    def _optimizers(self, kind: str) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        c, g, d = self.config, self.model.generator, self.model.discriminator
        if kind == "rmsprop":  # momentum destabilised the clipped critic in the WGAN paper
            return torch.optim.RMSprop(g.parameters(), lr=c.lr_g), torch.optim.RMSprop(d.parameters(), lr=c.lr_d)
        betas = (c.beta1, c.beta2)
        return (torch.optim.Adam(g.parameters(), lr=c.lr_g, betas=betas),
                torch.optim.Adam(d.parameters(), lr=c.lr_d, betas=betas))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.to_network(super().prepare(images))

    def latent(self, n: int) -> torch.Tensor:
        return self.shared_rows(n, lambda m: torch.randn((m, self.config.latent_dim), device=self.device,
                                                         generator=self.noise))

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        for hook in self.hooks:
            labels = hook.fake_labels(self, n)
            if labels is not None:
                return labels
        return None

    def _inputs(self, parts: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(parts)
        for hook in self.hooks:
            x = hook.perturb(self, x)
        return x

    def _real_target(self) -> float:
        for hook in self.hooks:
            target = hook.real_target(self)
            if target is not None:
                return target
        return 1.0

    def _report(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """d_real / d_fake (probabilities or raw outputs, per the loss) and D's accuracy."""
        loss = self.adversarial_loss
        real, fake = real.detach(), fake.detach()
        if loss.report == "prob":
            out = {"d_real": torch.sigmoid(real).mean(), "d_fake": torch.sigmoid(fake).mean()}
        else:
            out = {"d_real": real.mean(), "d_fake": fake.mean()}
        if loss.threshold is not None:
            t = loss.threshold
            out["d_acc"] = ((real > t).float().mean() + (fake < t).float().mean()) / 2
        return out

    def _add_hook_terms(self, loss: torch.Tensor, terms: list, step: CriticStep,
                        metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        """`loss` plus each hook's term (in hook order), collecting the hooks' metrics."""
        for term_of in terms:
            term, extra = term_of(self, step)
            if term is not None:
                loss = loss + term
            metrics.update(extra)
        return loss

    def _critic_update(self, real: torch.Tensor, labels: torch.Tensor | None,
                       reuse: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        n, d, loss = real.shape[0], self.model.discriminator, self.adversarial_loss
        fake_labels = self._fake_labels(n)
        z = self.latent(n)
        if reuse:   # G's step reuses these fakes: keep their graph
            fake = self.fwd(self.model.generate, z, fake_labels)
        else:
            with torch.no_grad():
                fake = self.fwd(self.model.generate, z, fake_labels)
        parts = [real, fake.detach()]
        parts += [e for e in (h.extra_inputs(real) for h in self.hooks) if e is not None]
        scores, aux = _split_outputs(self.fwd(d, self._inputs(parts)))
        real_scores, fake_scores = scores[:n], scores[n:2 * n]
        d_loss = loss.d(real_scores, fake_scores, self._real_target())
        terms: dict[str, torch.Tensor] = {}
        if loss.estimates_distance:
            terms["w_dist"] = -d_loss.detach()
        step = CriticStep(real, fake, scores, aux, n, labels, fake_labels, z)
        d_loss = self._add_hook_terms(d_loss, [h.critic_term for h in self.hooks], step, terms)
        _update(self.opt_d, d_loss)
        for hook in self.hooks:
            hook.after_critic(self)
        terms.update(self._report(real_scores, fake_scores))
        terms["d_loss"] = d_loss.detach()
        return terms, fake, fake_labels, z

    def _generator_update(self, fake: torch.Tensor, fake_labels: torch.Tensor | None,
                          z: torch.Tensor) -> dict[str, torch.Tensor]:
        n, d = fake.shape[0], self.model.discriminator
        parts = [fake] + [e for e in (h.extra_inputs(fake) for h in self.hooks) if e is not None]
        with frozen(d):
            scores, aux = _split_outputs(self.fwd(d, self._inputs(parts)))
        g_loss = self.adversarial_loss.g(scores[:n])
        out: dict[str, torch.Tensor] = {}
        step = CriticStep(fake[:0], fake, scores, aux, n, None, fake_labels, z)
        g_loss = self._add_hook_terms(g_loss, [h.generator_term for h in self.hooks], step, out)
        _update(self.opt_g, g_loss)
        out["g_loss"] = g_loss.detach()
        return out

    def optimize(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        hook_metrics: dict[str, Any] = {}
        for hook in self.hooks:   # before the step: what this step's schedule uses
            hook_metrics.update(hook.step_metrics(self))
        k = max(1, x.shape[0] // self.batch_size)
        reals = x.chunk(k)
        label_parts = labels.chunk(k) if labels is not None else [None] * len(reals)
        reuse = len(reals) == 1
        sums: dict[str, torch.Tensor] = {}
        fake, fake_labels, z = None, None, None
        for real, real_labels in zip(reals, label_parts):
            terms, fake, fake_labels, z = self._critic_update(real, real_labels, reuse)
            for key, value in terms.items():
                sums[key] = sums[key] + value if key in sums else value
        out: dict[str, Any] = {key: value / len(reals) for key, value in sums.items()}
        if not reuse:
            n = self.batch_size
            fake_labels = self._fake_labels(n)
            z = self.latent(n)
            fake = self.fwd(self.model.generate, z, fake_labels)
        out.update(self._generator_update(fake, fake_labels, z))
        if self.config.ema:
            self.model.update_average(ema_decay(self.config.ema, self.step))
        out.update(hook_metrics)
        self.step += 1
        return out
