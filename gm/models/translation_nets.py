"""The networks of the image-to-image translation papers, at any width (1 = the papers' channels).

- :class:`ResnetGenerator` — CycleGAN's generator (Zhu et al. 2017, after Johnson et al. 2016):
  c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-C, with reflection padding and instance
  norm, Tanh out. StarGAN's generator (Choi et al. 2018) is the same trunk with 4x4 stride-2
  down/up convolutions, zero padding, affine instance norm and the target domain tiled as extra
  input channels (``cond_channels``, ``variant="stargan"``).
- :class:`PatchDiscriminator` — CycleGAN's 70x70 PatchGAN: C64-C128-C256-C512 (4x4 convs, the
  last at stride 1), LeakyReLU 0.2, instance norm after the first; one real/fake score per patch.
- :class:`StarDiscriminator` — StarGAN's D: 4x4 stride-2 convs doubling from 64, LeakyReLU 0.01,
  no norm, then two heads on the last map: a 3x3 conv giving the real/fake patch map and a conv
  whose kernel covers the whole map giving the domain logits. The convs stop at a 2x2 map (the
  paper's 128 px: 6 of them), or earlier where the side stops halving evenly (28 px: 2, a 7x7 map).

Instance norm never keeps running statistics here (as the papers' code at test time in effect
does), so a translation is the same in train and eval mode and does not depend on the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gm.errors import GMError
from gm.models.init import channels


def _norm(ch: int, affine: bool) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=affine, track_running_stats=False)


class ResidualBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x) at constant width (reflection or zero padding)."""

    def __init__(self, ch: int, reflect: bool, affine: bool) -> None:
        super().__init__()

        def conv() -> list[nn.Module]:
            if reflect:   # CycleGAN's block: reflection padding, biased convs
                return [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3)]
            return [nn.Conv2d(ch, ch, 3, padding=1, bias=False)]

        self.body = nn.Sequential(*conv(), _norm(ch, affine), nn.ReLU(inplace=True),
                                  *conv(), _norm(ch, affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image (and optional condition maps) -> image of the same size in [-1, 1]."""

    def __init__(self, image_channels: int, width: float = 1.0, n_blocks: int = 6,
                 cond_channels: int = 0, variant: str = "cyclegan") -> None:
        super().__init__()
        if variant not in ("cyclegan", "stargan"):
            raise GMError(f"Unknown generator variant '{variant}'.")
        self.cond_channels = cond_channels
        c1, c2, c3 = channels(64, width), channels(128, width), channels(256, width)
        star = variant == "stargan"
        affine = star                      # StarGAN's instance norm has affine weights; CycleGAN's not
        cin = image_channels + cond_channels
        bias = not star                    # CycleGAN's convs keep biases (its norm has no affine shift)
        if star:
            layers: list[nn.Module] = [nn.Conv2d(cin, c1, 7, padding=3, bias=False)]
        else:
            layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, c1, 7, bias=bias)]
        layers += [_norm(c1, affine), nn.ReLU(inplace=True)]
        for a, b in ((c1, c2), (c2, c3)):
            if star:
                layers += [nn.Conv2d(a, b, 4, stride=2, padding=1, bias=False)]
            else:
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=bias)]
            layers += [_norm(b, affine), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(c3, reflect=not star, affine=affine) for _ in range(n_blocks)]
        for a, b in ((c3, c2), (c2, c1)):
            if star:
                layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1, bias=False)]
            else:
                layers += [nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            layers += [_norm(b, affine), nn.ReLU(inplace=True)]
        if star:
            layers += [nn.Conv2d(c1, image_channels, 7, padding=3, bias=False)]
        else:
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(c1, image_channels, 7)]
        layers += [nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_channels:
            if cond is None:
                raise GMError("This generator needs the target domain as a condition.")
            maps = cond.view(cond.shape[0], -1, 1, 1).expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, maps.to(x.dtype)], dim=1)
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """CycleGAN's PatchGAN with n_layers=3 (a 70x70 receptive field): a score map, no sigmoid."""

    def __init__(self, image_channels: int, width: float = 1.0, n_layers: int = 3) -> None:
        super().__init__()
        ch = [channels(64 * min(2 ** i, 8), width) for i in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(image_channels, ch[0], 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch[i - 1], ch[i], 4, stride=stride, padding=1),
                       _norm(ch[i], affine=False), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(ch[-1], 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class StarDiscriminator(nn.Module):
    """StarGAN's D: (real/fake patch map, domain logits)."""

    def __init__(self, image_channels: int, image_size: int, num_domains: int, width: float = 1.0,
                 repeat: int | None = None) -> None:
        super().__init__()
        # The official code uses 6 stride-2 convs at 128 px (a 2x2 final map); keep the final map
        # at 2x2 for other sizes, or, where halving that often does not divide the side, use the most
        # halvings that do (28 px: 2, a 7x7 final map and a 7x7 domain-head kernel).
        if not repeat:
            repeat = max(1, int(round(math.log2(image_size / 2))))
            while repeat > 1 and image_size % (2 ** repeat):
                repeat -= 1
        if image_size % (2 ** repeat):
            raise GMError(f"StarGAN's discriminator needs an image side divisible by {2 ** repeat}.")
        layers: list[nn.Module] = []
        cin = image_channels
        for i in range(repeat):
            cout = channels(64 * 2 ** i, width)
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.01, inplace=True)]
            cin = cout
        self.trunk = nn.Sequential(*layers)
        final = image_size // 2 ** repeat
        self.adversarial = nn.Conv2d(cin, 1, 3, padding=1, bias=False)
        self.domain = nn.Conv2d(cin, num_domains, final, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.adversarial(h), self.domain(h).flatten(1)
