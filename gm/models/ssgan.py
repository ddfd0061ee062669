"""SSGAN (Chen et al. 2019) for 32x32 images: SPEC Part 2, Tables 4-7, as in Mimicry's SSGAN32.

Generator (Table 4): Linear 128 -> 256*4*4; three residual up-blocks 256 -> 256 (4 -> 8 -> 16 -> 32);
BN, ReLU; Conv 3x3 256 -> 1; Tanh. The table's "(BN)" is the batch norm that opens the first block
(pre-activation blocks) plus the one before the last ReLU, as in the reference code.
Up-block (Table 5): BN, ReLU, Upsample x2 nearest, Conv 3x3, BN, ReLU, Conv 3x3; plus the upsampled
input (a 1x1 convolution is added only when channel counts differ, which never happens at one width).

Discriminator (Table 6): residual blocks 1 -> 128 down, 128 -> 128 down, 128 -> 128, 128 -> 128;
ReLU; global *sum* pooling; two heads: Linear 128 -> 1 (real/fake) and Linear 128 -> 4 (rotation).
Every convolution and linear layer carries spectral norm. Down-block (Table 7): path 1 = ReLU (not
in the first block), Conv 3x3, ReLU, Conv 3x3, AvgPool 2x2 (when down-sampling); path 2 =
AvgPool 2x2 then Conv 1x1 (both linear, so their order does not matter); identity when the block
neither changes channels nor down-samples. Init: Xavier-uniform, gain sqrt(2) on the residual
convolutions and 1 elsewhere (Mimicry).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gm.models.init import channels

ROTATIONS = 4  # 0, 90, 180, 270 degrees


def _xavier(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def _sn(layer: nn.Module, gain: float) -> nn.Module:
    return spectral_norm(_xavier(layer, gain))


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.b1, self.b2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.c1 = _xavier(nn.Conv2d(cin, cout, 3, 1, 1), math.sqrt(2))
        self.c2 = _xavier(nn.Conv2d(cout, cout, 3, 1, 1), math.sqrt(2))
        self.shortcut = _xavier(nn.Conv2d(cin, cout, 1), 1.0) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.b1(x)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(self.b2(self.c1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.first, self.downsample = first, downsample
        self.c1 = _sn(nn.Conv2d(cin, cout, 3, 1, 1), math.sqrt(2))
        self.c2 = _sn(nn.Conv2d(cout, cout, 3, 1, 1), math.sqrt(2))
        self.shortcut = (_sn(nn.Conv2d(cin, cout, 1), 1.0) if (cin != cout or downsample)
                         else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        skip = x
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + self.shortcut(skip)


class SSGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 128, width: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.ch = channels(256, width)
        self.fc = _xavier(nn.Linear(latent_dim, self.ch * 4 * 4), 1.0)
        self.blocks = nn.Sequential(*(UpBlock(self.ch, self.ch) for _ in range(3)))  # 4 -> 32
        self.bn = nn.BatchNorm2d(self.ch)
        self.out = _xavier(nn.Conv2d(self.ch, 1, 3, 1, 1), 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.fc(z).view(-1, self.ch, 4, 4))
        return torch.tanh(self.out(F.relu(self.bn(h))))


class SSGANDiscriminator(nn.Module):
    """(real/fake logit per image, rotation logits per image)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        ch = channels(128, width)
        self.blocks = nn.Sequential(
            DownBlock(1, ch, downsample=True, first=True),   # 32 -> 16
            DownBlock(ch, ch, downsample=True),              # 16 -> 8
            DownBlock(ch, ch, downsample=False),
            DownBlock(ch, ch, downsample=False),
        )
        self.adv = _sn(nn.Linear(ch, 1), 1.0)
        self.rot = _sn(nn.Linear(ch, ROTATIONS), 1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.adv(h).view(-1), self.rot(h)


def rotate(images: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate N x C x H x W images by k * 90 degrees counter-clockwise (as displayed)."""
    return torch.rot90(images, k, dims=(2, 3))


def rotate_quarters(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the i-th quarter of the batch by i * 90 degrees; returns (images, rotation labels).

    One rotation per image (as in Mimicry) keeps the discriminator's batch size unchanged; over
    the batch every rotation appears equally often (exactly when the batch size divides by 4).
    """
    n = images.shape[0]
    bounds = [-(-k * n // ROTATIONS) for k in range(ROTATIONS + 1)]  # ceil(k * n / 4)
    parts = [rotate(images[bounds[k]:bounds[k + 1]], k) for k in range(ROTATIONS)]
    labels = torch.arange(n, device=images.device) * ROTATIONS // n   # slices, not masks: no sync
    return torch.cat(parts), labels
