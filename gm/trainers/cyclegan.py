"""CycleGAN's training step, with the official code's settings (junyanz/pytorch-CycleGAN-and-pix2pix).

    G's step (D_X, D_Y frozen):
        ŷ = G(x), x̂ = F(y)
        adversarial  MSE(D_Y(ŷ), 1) + MSE(D_X(x̂), 1)                      (least squares)
        cycle        λ_cyc (|F(ŷ) − x|₁ + |G(x̂) − y|₁)                       (forward + backward)
        identity     λ_cyc λ_idt (|G(y) − y|₁ + |F(x) − x|₁)
    D's step, on fakes drawn through an image pool of 50:
        D_Y: ½ (MSE(D_Y(y), 1) + MSE(D_Y(pool_y(ŷ)), 0)); D_X likewise

Adam 2e-4 (0.5, 0.999) for both generators together and for both discriminators together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gm.config import option
from gm.data.base import Batch
from gm.losses import ls_d_loss, ls_g_loss
from gm.models.cyclegan import CycleGANModel
from gm.trainers.adversarial import frozen
from gm.trainers.translation import ImagePool, TranslationConfig, TranslationTrainer


@dataclass
class CycleGANConfig(TranslationConfig):
    """Zhu et al. 2017 on two domains of a split; the official defaults at a CPU-sized width."""

    source: str = option("square", "Domain X (G translates X to Y, F back).")
    target: str = option("ellipse", "Domain Y.")
    batch_size: int = option(8, "Images of each domain per step (the paper: 1).", min=1, max=1024)
    lr: float = option(2e-4, "Adam learning rate of generators and discriminators.", min=1e-7, max=1.0)
    lambda_cyc: float = option(10.0, "Weight of each direction's cycle loss.", min=0.0, max=1000.0)
    lambda_idt: float = option(0.5, "Identity loss weight, as a fraction of lambda_cyc (0 = off).",
                               min=0.0, max=10.0)
    pool_size: int = option(50, "Past fakes kept for the discriminators (0 = the newest only).",
                            min=0, max=1000)


class CycleGANTrainer(TranslationTrainer):
    model: CycleGANModel

    def __init__(self, model: CycleGANModel, config: CycleGANConfig | None = None) -> None:
        super().__init__(model, config)
        c, m = self.config, self.model
        betas = (c.beta1, c.beta2)
        self.opt_g = torch.optim.Adam([*m.gen_xy.parameters(), *m.gen_yx.parameters()], lr=c.lr, betas=betas)
        self.opt_d = torch.optim.Adam([*m.disc_x.parameters(), *m.disc_y.parameters()], lr=c.lr, betas=betas)
        self.pool_x = ImagePool(c.pool_size, self.noise)
        self.pool_y = ImagePool(c.pool_size, self.noise)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def train_step(self, batch: Batch) -> dict[str, Any]:
        c, m = self.config, self.model
        images = self.domain_images(batch)
        x, y = images[c.source], images[c.target]
        lr = self.schedule_lr() * c.lr

        # Generators (the official code: G's step first, then D's on the same fakes).
        fake_y = self.fwd(m.gen_xy, x)
        fake_x = self.fwd(m.gen_yx, y)
        rec_x = self.fwd(m.gen_yx, fake_y)
        rec_y = self.fwd(m.gen_xy, fake_x)
        with frozen(m.disc_x), frozen(m.disc_y):
            # MSE(D(fake), 1) = 2 x LSGAN's ½ E(D - 1)²: the official generator term.
            g_adv = 2 * ls_g_loss(self.fwd(m.disc_y, fake_y)) + 2 * ls_g_loss(self.fwd(m.disc_x, fake_x))
        cycle = F.l1_loss(rec_x, x) + F.l1_loss(rec_y, y)
        g_loss = g_adv + c.lambda_cyc * cycle
        idt = torch.zeros((), device=self.device)
        if c.lambda_idt > 0:
            idt = F.l1_loss(self.fwd(m.gen_xy, y), y) + F.l1_loss(self.fwd(m.gen_yx, x), x)
            g_loss = g_loss + c.lambda_cyc * c.lambda_idt * idt
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()

        # Discriminators, on the pool's fakes.
        pooled_y = self.pool_y.query(fake_y.detach())
        pooled_x = self.pool_x.query(fake_x.detach())
        d_y = ls_d_loss(self.fwd(m.disc_y, y), self.fwd(m.disc_y, pooled_y))
        d_x = ls_d_loss(self.fwd(m.disc_x, x), self.fwd(m.disc_x, pooled_x))
        d_loss = d_x + d_y
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        self.step += 1
        return {"g_adv": g_adv.detach(), "cycle": cycle.detach(), "idt": idt.detach(),
                "g_loss": g_loss.detach(), "d_x": d_x.detach(), "d_y": d_y.detach(),
                "d_loss": d_loss.detach(), "lr": lr}

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "pool_x": self.pool_x.state(), "pool_y": self.pool_y.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.pool_x.load(state.get("pool_x") or {})
        self.pool_y.load(state.get("pool_y") or {})


@dataclass
class DigitCycleGANConfig(CycleGANConfig):
    """CycleGAN on the styled MNIST digits of gm.data.mnist_style (plain <-> bold by default)."""

    domains: str = option("style", "Which split of the dataset gives the domains (mnist-style: 'style' = "
                                   "plain / bold / slanted).", choices=("style",))
    source: str = option("plain", "Domain X (G translates X to Y, F back).")
    target: str = option("bold", "Domain Y.")
