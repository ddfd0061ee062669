"""Weight initialisations the GAN references use."""

from __future__ import annotations

from torch import nn


def channels(base: int, width: float, multiple: int = 1) -> int:
    """`base * width` rounded to a positive multiple of `multiple` (PixelShuffle needs 4)."""
    return max(1, round(base * width / multiple)) * multiple


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for conv/linear weights, N(1, std) for batch-norm scales, zero biases.

    The DCGAN paper's recipe, also used by the official WGAN code and the PyTorch DCGAN example.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
