"""StarGAN's training step, with the official code's settings (yunjey/stargan, RaFD-style domains).

Each step trains D once; G trains every ``n_critic``-th step (the official loop):

    c' = the batch's domains in a random order (the target domains)
    D:  −mean D_src(x) + mean D_src(G(x, c')) + λ_cls CE(D_cls(x), c) + λ_gp GP
    G:  −mean D_src(G(x, c')) + λ_cls CE(D_cls(G(x, c')), c') + λ_rec |G(G(x, c'), c) − x|₁

Adam 1e-4 (0.5, 0.999) for both, n_critic 5, λ_cls 1, λ_rec 10, λ_gp 10.

With ``mask_split`` (the mask vector), even steps know only the first label set's labels and odd
steps only the second's: the classification losses use that set's logits, and c, c' carry the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gm.config import option
from gm.data.base import Batch
from gm.errors import GMError
from gm.losses import class_loss, gradient_penalty
from gm.models.stargan import StarGANModel
from gm.trainers.adversarial import frozen
from gm.trainers.translation import TranslationConfig, TranslationTrainer


@dataclass
class StarGANConfig(TranslationConfig):
    """Choi et al. 2018, one generator for every domain of the split; the official defaults at a
    CPU-sized width."""

    batch_size: int = option(6, "Images of each domain per step (the paper: 16 in all).", min=1, max=1024)
    lr_g: float = option(1e-4, "Generator learning rate.", min=1e-7, max=1.0)
    lr_d: float = option(1e-4, "Discriminator learning rate.", min=1e-7, max=1.0)
    n_critic: int = option(5, "Discriminator updates per generator update.", min=1, max=100)
    lambda_cls: float = option(1.0, "Weight of the domain classification losses.", min=0.0, max=1000.0)
    lambda_rec: float = option(10.0, "Weight of the reconstruction (cycle) loss.", min=0.0, max=1000.0)
    lambda_gp: float = option(10.0, "Weight of the gradient penalty.", min=0.0, max=1000.0)
    mask_split: str = option("", "The paper's mask vector: also learn this second label set (e.g. "
                                 "'scale': small / large), alternating steps that know only the first "
                                 "set's labels with steps that know only the second's, as StarGAN "
                                 "alternates CelebA and RaFD ('' = one label set).",
                             choices=("", "shape", "scale"))

    def validate(self) -> None:
        super().validate()
        if self.mask_split and self.mask_split == self.domains:
            raise GMError(f"mask_split must name another split than domains ('{self.domains}').")


class StarGANTrainer(TranslationTrainer):
    model: StarGANModel

    def __init__(self, model: StarGANModel, config: StarGANConfig | None = None) -> None:
        super().__init__(model, config)
        c, m = self.config, self.model
        betas = (c.beta1, c.beta2)
        self.opt_g = torch.optim.Adam(m.generator.parameters(), lr=c.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(m.discriminator.parameters(), lr=c.lr_d, betas=betas)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    @property
    def wants_factor_classes(self) -> bool:
        return self.model.uses_mask   # the second label set is read from each image's factors

    def batch_domains(self) -> tuple[str, ...]:
        return self.model.label_sets[0][1]   # the batcher splits by the first label set

    def _labels(self, batch: Batch, images: dict[str, torch.Tensor], label_set: int) -> torch.Tensor:
        """Each image's domain index within the label set this step knows."""
        names = self.batch_domains()
        if label_set == 0:
            return torch.cat([torch.full((images[d].shape[0],), i, device=self.device, dtype=torch.long)
                              for i, d in enumerate(names)])
        from gm.data.registry import get_dataset_spec
        split = self.model.label_sets[label_set][0]
        spec = get_dataset_spec(self.model.data.dataset)
        if any(d not in batch.factor_classes for d in names):
            raise GMError("The mask vector's second label set is read from the images' factors; this "
                          "batch has none.")
        column = spec.factors.index(split)
        return torch.cat([spec.bin_domains(batch.factor_classes[d][:, column], split) for d in names])

    def train_step(self, batch: Batch) -> dict[str, Any]:
        c, m = self.config, self.model
        images = self.domain_images(batch)
        x = torch.cat([images[d] for d in self.batch_domains()])
        # With the mask vector, steps alternate between the label sets: each knows only its own.
        label_set = self.step % len(m.label_sets)
        source = self._labels(batch, images, label_set)
        target = source[torch.randperm(source.shape[0], device=self.device, generator=self.noise)]
        c_src, c_trg = m.condition(source, label_set), m.condition(target, label_set)
        known = m.logit_slice(label_set)
        self.schedule_lr()
        g, d = m.generator, m.discriminator

        # Discriminator.
        real_src, real_cls = self.fwd(d, x)
        real_cls = real_cls[:, known]
        with torch.no_grad():
            fake = self.fwd(g, x, c_trg)
        fake_src, _ = self.fwd(d, fake)
        d_adv = fake_src.mean() - real_src.mean()
        d_cls = class_loss(real_cls, source)
        eps = self.shared_rows(x.shape[0], lambda n: torch.rand((n,), device=self.device, generator=self.noise))
        gp = gradient_penalty(lambda v: self.fwd(d, v)[0], x, fake, eps)
        d_loss = d_adv + c.lambda_cls * d_cls + c.lambda_gp * gp
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        out: dict[str, Any] = {"d_adv": d_adv.detach(), "d_cls": d_cls.detach(), "gp": gp.detach(),
                               "d_loss": d_loss.detach(),
                               "cls_acc": (real_cls.detach().argmax(1) == source).float().mean()}
        if m.uses_mask:   # D's accuracy on each label set, logged on that set's steps
            out[f"cls_acc_{m.label_sets[label_set][0]}"] = out["cls_acc"]

        # Generator, every n_critic steps.
        if (self.step + 1) % c.n_critic == 0:
            fake = self.fwd(g, x, c_trg)
            with frozen(d):
                fake_src, fake_cls = self.fwd(d, fake)
            fake_cls = fake_cls[:, known]
            g_adv = -fake_src.mean()
            g_cls = class_loss(fake_cls, target)
            rec = F.l1_loss(self.fwd(g, fake, c_src), x)
            g_loss = g_adv + c.lambda_cls * g_cls + c.lambda_rec * rec
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            out.update({"g_adv": g_adv.detach(), "g_cls": g_cls.detach(), "rec": rec.detach(),
                        "g_loss": g_loss.detach()})
        self.step += 1
        return out


@dataclass
class DigitStarGANConfig(StarGANConfig):
    """StarGAN on the styled MNIST digits of gm.data.mnist_style: one generator for plain, bold and
    slanted."""

    domains: str = option("style", "Which split of the dataset gives the domains (mnist-style: 'style' = "
                                   "plain / bold / slanted).", choices=("style",))
