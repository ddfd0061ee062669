"""The assignment's GAN (SPEC Part 2, Tables 2 and 3) for 28x28 MNIST.

PixelShuffle (sub-pixel convolution, Shi et al. 2016, from super-resolution) upsamples by
rearranging channels into space: a C*r*r x H x W tensor becomes C x rH x rW, each output pixel taking
its value from one of the r*r channels at the matching low-resolution position. Learning happens in
the convolution before it, at low resolution, which is cheaper than a transposed convolution and
free of its checkerboard artefacts.

The tables' blanks, worked out for 28x28 output: PixelShuffle(2) divides channels by 4, so the
16-channel convolution of row 4 needs 64 channels at 7x7 after row 2: 64 * 7 * 7 = 3136; the last
convolution outputs 1 channel. The discriminator's two stride-2 convolutions leave 64 x 7 x 7, so
its Linear takes 3136. (8192 = 8 * 8 * 128, seen in a student report, does not give 28x28.)
The tables end without an output activation; the generator adds Tanh so samples live in [-1, 1]
like the data (`to_signed`); the discriminator returns a logit (the sigmoid is folded into the loss).
"""

from __future__ import annotations

import torch
from torch import nn

from gm.models.init import channels, normal_init


class PixelShuffleGenerator(nn.Module):
    """Table 2: Linear 64->512, Linear 512->3136, PixelShuffle, Conv 16->32, PixelShuffle, Conv 8->1."""

    def __init__(self, latent_dim: int = 64, width: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        hidden = channels(512, width)
        c16 = channels(16, width)            # channels after the first PixelShuffle
        c8 = channels(8, width)              # channels after the second PixelShuffle
        self.base = 4 * c16                  # 64 at width 1: 64 * 7 * 7 = 3136 features
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True),
            nn.Linear(hidden, self.base * 7 * 7), nn.BatchNorm1d(self.base * 7 * 7), nn.ReLU(True),
        )
        self.conv = nn.Sequential(
            nn.PixelShuffle(2),                                                  # 64x7x7 -> 16x14x14
            nn.Conv2d(c16, 4 * c8, 3, padding=1), nn.BatchNorm2d(4 * c8), nn.ReLU(True),
            nn.PixelShuffle(2),                                                  # 32x14x14 -> 8x28x28
            nn.Conv2d(c8, 1, 3, padding=1),
            nn.Tanh(),
        )
        normal_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv(self.fc(z).view(-1, self.base, 7, 7))


class ConvDiscriminator(nn.Module):
    """Table 3: Conv 4x4 s2 1->32, Conv 4x4 s2 32->64, Linear 3136->512, Linear 512->1 (a logit)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c32, c64, hidden = channels(32, width), channels(64, width), channels(512, width)
        self.net = nn.Sequential(
            nn.Conv2d(1, c32, 4, 2, 1), nn.ReLU(True),        # 28 -> 14
            nn.Conv2d(c32, c64, 4, 2, 1), nn.ReLU(True),      # 14 -> 7
            nn.Flatten(),
            nn.Linear(c64 * 7 * 7, hidden), nn.ReLU(True),
            nn.Linear(hidden, 1),
        )
        normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)
