"""StarGAN (Choi et al. 2018) as a model object: one generator for every domain of a split.

G takes an image and the target domain (a one-hot vector tiled as extra input channels); D gives a
real/fake patch map and the domain logits. (The paper's mask vector, for training on two datasets
whose label sets only partly overlap, is not built yet: gm's StarGAN trains on one split.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gm.models.base import GenerativeModel, Translates, domain_index
from gm.models.translation_nets import ResnetGenerator, StarDiscriminator


class StarGANModel(GenerativeModel, Translates):
    """generator = G(x, c), discriminator = D(x) -> (patch map, domain logits)."""

    image_range = "signed"

    def build(self) -> None:
        c, d = self.config, self.data
        k = len(self.domains)
        ch, size = d.image_shape[0], d.image_shape[1]
        self.generator = ResnetGenerator(ch, c.width, c.n_blocks, cond_channels=self.condition_size,
                                         variant="stargan")
        self.discriminator = StarDiscriminator(ch, size, k, c.width)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.data.domains)

    @property
    def grid_shape(self) -> tuple[int, int]:   # type: ignore[override]
        k = len(self.domains)
        return (k * (k + 1), 8)

    @property
    def condition_size(self) -> int:
        """Length of G's condition vector: one entry per domain."""
        return len(self.domains)

    def condition(self, domain_ids: torch.Tensor) -> torch.Tensor:
        """One-hot target-domain vectors (N x condition_size) for domain indices."""
        return F.one_hot(domain_ids.long(), len(self.domains)).float()

    def training_only(self) -> tuple[str, ...]:
        return ("discriminator.",)

    @torch.no_grad()
    def translate(self, images: torch.Tensor, to: str, source: str | None = None) -> torch.Tensor:
        target = domain_index(self.domains, to)
        if source is not None:
            domain_index(self.domains, source)   # a one-sentence error for an unknown name
        x = images.to(self.device).float()
        ids = torch.full((x.shape[0],), target, device=self.device)
        with self.evaluating():
            out = self.generator(x * 2 - 1, self.condition(ids))
        return ((out + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def translation_grid(self, sources: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """For each source domain: its images, then one row per target domain (the translation)."""
        rows = []
        for a, src in sources.items():
            src = src.to(self.device).float()
            rows.append(src)
            rows += [self.translate(src, to=b, source=a) for b in self.domains]
        return torch.cat(rows), int(next(iter(sources.values())).shape[0])
