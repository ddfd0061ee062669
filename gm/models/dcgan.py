"""The MNIST DCGAN of the TensorFlow tutorial (SPEC Part 3), in PyTorch.

Generator: Dense 100 -> 7*7*256 (no bias), BN, LeakyReLU; ConvT 5x5 s1 -> 128, BN, LeakyReLU;
ConvT 5x5 s2 -> 64, BN, LeakyReLU; ConvT 5x5 s2 -> 1, Tanh (7 -> 7 -> 14 -> 28).
Discriminator: Conv 5x5 s2 -> 64, LeakyReLU, Dropout 0.3; Conv 5x5 s2 -> 128, LeakyReLU,
Dropout 0.3; Dense -> 1 logit. Keras's LeakyReLU slope (0.3) and "same" padding are kept
(padding 2, output_padding 1 give the same sizes in PyTorch); weights follow the DCGAN paper's
N(0, 0.02) instead of Keras's Glorot default.
"""

from __future__ import annotations

import torch
from torch import nn

from gm.models.init import SeededDropout, channels, normal_init

KERAS_LEAK = 0.3  # tf.keras.layers.LeakyReLU() default slope, which the tutorial uses


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, width: float = 1.0, in_features: int | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        c256, c128, c64 = channels(256, width), channels(128, width), channels(64, width)
        self.base = c256
        self.fc = nn.Sequential(
            nn.Linear(in_features or latent_dim, c256 * 7 * 7, bias=False),
            nn.BatchNorm1d(c256 * 7 * 7), nn.LeakyReLU(KERAS_LEAK, True),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c256, c128, 5, 1, 2, bias=False),                    # 7 -> 7
            nn.BatchNorm2d(c128), nn.LeakyReLU(KERAS_LEAK, True),
            nn.ConvTranspose2d(c128, c64, 5, 2, 2, output_padding=1, bias=False),   # 7 -> 14
            nn.BatchNorm2d(c64), nn.LeakyReLU(KERAS_LEAK, True),
            nn.ConvTranspose2d(c64, 1, 5, 2, 2, output_padding=1, bias=False),      # 14 -> 28
            nn.Tanh(),
        )
        normal_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, self.base, 7, 7))


class DCGANDiscriminator(nn.Module):
    """Returns one logit (or critic score) per image; `features` is the trunk before the Dense."""

    def __init__(self, width: float = 1.0, dropout: float = 0.3) -> None:
        super().__init__()
        c64, c128 = channels(64, width), channels(128, width)
        self.trunk = nn.Sequential(
            nn.Conv2d(1, c64, 5, 2, 2), nn.LeakyReLU(KERAS_LEAK, True), SeededDropout(dropout),     # 28 -> 14
            nn.Conv2d(c64, c128, 5, 2, 2), nn.LeakyReLU(KERAS_LEAK, True), SeededDropout(dropout),  # 14 -> 7
            nn.Flatten(),
        )
        self.feature_dim = c128 * 7 * 7
        self.head = nn.Linear(self.feature_dim, 1)
        normal_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).view(-1)
