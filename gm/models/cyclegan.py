"""CycleGAN (Zhu et al. 2017) as a model object: G: X -> Y and F: Y -> X, one PatchGAN per domain.

The two domains are the config's ``source`` (X) and ``target`` (Y) among the domains of the
dataset's split (``config.domains``); one model per pair, as in the paper. Translation runs the
generators in [-1, 1] on images given in [0, 1].
"""

from __future__ import annotations

import torch

from gm.errors import GMError
from gm.models.base import GenerativeModel, Translates, domain_index
from gm.models.init import normal_init
from gm.models.translation_nets import PatchDiscriminator, ResnetGenerator


class CycleGANModel(GenerativeModel, Translates):
    """gen_xy = G (X -> Y), gen_yx = F (Y -> X), disc_x = D_X, disc_y = D_Y."""

    image_range = "signed"
    grid_shape = (6, 8)   # x, G(x), F(G(x)), y, F(y), G(F(y))

    def build(self) -> None:
        c, d = self.config, self.data
        if d.domains:
            for name in (c.source, c.target):
                if name not in d.domains:
                    raise GMError(f"'{name}' is not a domain of the {d.dataset} split '{c.domains}'; "
                                  f"choose source and target among {', '.join(d.domains)}.")
        if c.source == c.target:
            raise GMError("CycleGAN translates between two different domains; source and target are both "
                          f"'{c.source}'.")
        ch = d.image_shape[0]
        self.gen_xy = ResnetGenerator(ch, c.width, c.n_blocks)
        self.gen_yx = ResnetGenerator(ch, c.width, c.n_blocks)
        self.disc_x = PatchDiscriminator(ch, c.width)
        self.disc_y = PatchDiscriminator(ch, c.width)
        normal_init(self)   # the official code's init_type="normal", gain 0.02

    @property
    def domains(self) -> tuple[str, ...]:
        return (self.config.source, self.config.target)

    def training_only(self) -> tuple[str, ...]:
        return ("disc_x.", "disc_y.")

    def generator_to(self, to: str) -> torch.nn.Module:
        """G for the target domain, F for the source domain."""
        return self.gen_xy if domain_index(self.domains, to) == 1 else self.gen_yx

    @torch.no_grad()
    def translate(self, images: torch.Tensor, to: str, source: str | None = None) -> torch.Tensor:
        net = self.generator_to(to)
        if source is not None and domain_index(self.domains, source) == domain_index(self.domains, to):
            return images.to(self.device).float().clone()
        with self.evaluating():
            out = net(images.to(self.device).float() * 2 - 1)
        return ((out + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def translation_grid(self, sources: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Rows: x, G(x), F(G(x)), then y, F(y), G(F(y)) ([0, 1] images; one column per source)."""
        x_name, y_name = self.domains
        rows = []
        for a, b in ((x_name, y_name), (y_name, x_name)):
            src = sources[a]
            there = self.translate(src, to=b, source=a)
            rows += [src.to(self.device).float(), there, self.translate(there, to=a, source=b)]
        return torch.cat(rows), int(sources[x_name].shape[0])
