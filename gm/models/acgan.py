"""ACGAN (Odena et al. 2017) on the DCGAN networks: a class-conditional G and a two-headed D.

G's input is the noise concatenated with a learned embedding of the class; D's trunk is the DCGAN
discriminator's, followed by a real/fake logit and 10 class logits. The class head returns logits
for cross-entropy (a common reimplementation applies softmax first: a double softmax, avoided here).
"""

from __future__ import annotations

import torch
from torch import nn

from gm.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gm.models.init import normal_init


class ConditionalGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, num_classes: int = 10, embed_dim: int = 10,
                 width: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.net = DCGANGenerator(latent_dim, width, in_features=latent_dim + embed_dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)  # unit scale, like the noise it sits beside

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


class AuxClassifierDiscriminator(nn.Module):
    """(source logit per image, class logits per image)."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, dropout: float = 0.3) -> None:
        super().__init__()
        body = DCGANDiscriminator(width, dropout)
        self.trunk = body.trunk
        self.source = nn.Linear(body.feature_dim, 1)
        self.classes = nn.Linear(body.feature_dim, num_classes)
        normal_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.source(h).view(-1), self.classes(h)
