"""ACGAN (Odena et al. 2017) on the DCGAN networks: a class-conditional G and a two-headed D.

Two ways for G to take the class (the config's ``conditioning``):

- ``batchnorm`` (the default): the DCGAN generator's layers with class-conditional batch norm
  (de Vries et al. 2017; the conditioning of SNGAN's and BigGAN's generators): every batch norm's
  scale and shift are looked up per class, so the class shapes every layer while the noise is the
  only input. :class:`ConditionalBatchNormGenerator`.
- ``input``: the noise concatenated with a 10-d learned class embedding, then the plain DCGAN
  generator (the first shipped ACGAN). On MNIST it drew one image per class whatever the noise.

D's trunk is the DCGAN discriminator's, followed by a real/fake logit and 10 class logits. The class
head returns logits for cross-entropy (a common reimplementation applies softmax first: a double
softmax, avoided here).
"""

from __future__ import annotations

import torch
from torch import nn

from gm.models.dcgan import KERAS_LEAK, DCGANDiscriminator, DCGANGenerator
from gm.models.init import channels, normal_init


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


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine part; scale and shift come from the class (scale starts at 1,
    shift at 0: at initialisation it is plain batch norm)."""

    def __init__(self, features: int, num_classes: int, dims: int = 2) -> None:
        super().__init__()
        self.norm = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(features, affine=False)
        self.scale = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)

    def reset(self, std: float = 0.02) -> None:
        nn.init.normal_(self.scale.weight, 1.0, std)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shape = (-1, x.shape[1]) + (1,) * (x.dim() - 2)
        return self.norm(x) * self.scale(labels).view(shape) + self.shift(labels).view(shape)


class ConditionalBatchNormGenerator(nn.Module):
    """The DCGAN generator's layers (gm.models.dcgan.DCGANGenerator) with class-conditional batch norm."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        c256, c128, c64 = channels(256, width), channels(128, width), channels(64, width)
        self.base = c256
        self.fc = nn.Linear(latent_dim, c256 * 7 * 7, bias=False)
        self.bn0 = ConditionalBatchNorm(c256 * 7 * 7, num_classes, dims=1)
        self.up1 = nn.ConvTranspose2d(c256, c128, 5, 1, 2, bias=False)                     # 7 -> 7
        self.bn1 = ConditionalBatchNorm(c128, num_classes)
        self.up2 = nn.ConvTranspose2d(c128, c64, 5, 2, 2, output_padding=1, bias=False)    # 7 -> 14
        self.bn2 = ConditionalBatchNorm(c64, num_classes)
        self.out = nn.ConvTranspose2d(c64, 1, 5, 2, 2, output_padding=1, bias=False)       # 14 -> 28
        normal_init(self)
        for bn in (self.bn0, self.bn1, self.bn2):
            bn.reset()

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        act = nn.functional.leaky_relu
        h = act(self.bn0(self.fc(z), labels), KERAS_LEAK).view(-1, self.base, 7, 7)
        h = act(self.bn1(self.up1(h), labels), KERAS_LEAK)
        h = act(self.bn2(self.up2(h), labels), KERAS_LEAK)
        return torch.tanh(self.out(h))


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
