"""Image disturbances of Heusel et al. 2017 (the FID paper), and the non-digit images the offline
evaluator learns to reject.

Every function takes images in [0, 1] (N x 1 x H x W) and returns new images in [0, 1]; a seed makes
each one repeatable. ``level`` 0 returns the images unchanged. The disturbances:

    noise         Gaussian noise of standard deviation `level`
    blur          Gaussian blur of standard deviation `level` pixels
    rectangles    `level` black rectangles implanted at random (each 1/4-1/2 of the side)
    swirl         a swirl of strength `level` around the centre (torch grid_sample; skimage's formula)
    salt_pepper   a share `level` of the pixels set to 0 or 1
    contaminate   a share `level` of the images replaced by images of another kind (given)

and generators of non-images: :func:`grey_blobs` (a collapsed generator's grey blobs),
:func:`random_rectangles`, :func:`smooth_noise`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def gaussian_noise(x: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    if level <= 0:
        return x.clone()
    return (x + level * torch.randn(x.shape, generator=_gen(seed))).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    """Separable Gaussian blur (sigma = level px, kernel radius 3 sigma, zero padding = black border)."""
    if level <= 0:
        return x.clone()
    r = max(1, int(math.ceil(3 * level)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * level ** 2))
    k = k / k.sum()
    c = x.shape[1]
    out = F.conv2d(x.float(), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, r), groups=c)
    out = F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(r, 0), groups=c)
    return out.clamp(0, 1)


def black_rectangles(x: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    """`level` (rounded) black rectangles per image, each side 1/4 to 1/2 of the image's, placed anywhere."""
    count = int(round(level))
    out = x.clone()
    if count <= 0:
        return out
    n, _, h, w = x.shape
    g = _gen(seed)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    for _ in range(count):
        rh = torch.randint(h // 4, h // 2 + 1, (n,), generator=g)
        rw = torch.randint(w // 4, w // 2 + 1, (n,), generator=g)
        y0 = (torch.rand(n, generator=g) * (h - rh + 1)).long()
        x0 = (torch.rand(n, generator=g) * (w - rw + 1)).long()
        inside = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + rh).view(-1, 1, 1))
                  & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + rw).view(-1, 1, 1)))
        out = out.masked_fill(inside.unsqueeze(1), 0.0)
    return out


def swirl(x: torch.Tensor, level: float, seed: int = 0, radius: float = 1.0) -> torch.Tensor:
    """skimage.transform.swirl around the centre with strength `level`: the pixel at distance rho (in
    half-sides) comes from angle + level * exp(-rho / radius). skimage's default radius (100 px, which
    it scales by ln2 / 5) is 13.9 px, about the half-side of a 28 x 28 digit: hence radius 1."""
    if level <= 0:
        return x.clone()
    n, _, h, w = x.shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    rho = torch.sqrt(xx ** 2 + yy ** 2)
    theta = torch.atan2(yy, xx) + level * torch.exp(-rho / radius)
    grid = torch.stack([rho * torch.cos(theta), rho * torch.sin(theta)], dim=-1)
    grid = grid.unsqueeze(0).expand(n, h, w, 2)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True).clamp(0, 1)


def salt_and_pepper(x: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    if level <= 0:
        return x.clone()
    g = _gen(seed)
    hit = torch.rand(x.shape, generator=g) < level
    salt = torch.rand(x.shape, generator=g) < 0.5
    return torch.where(hit, salt.float(), x)


def contaminate(x: torch.Tensor, level: float, others: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A share `level` of the images (chosen at random) replaced by images of `others`."""
    out = x.clone()
    k = int(round(level * x.shape[0]))
    if k <= 0:
        return out
    g = _gen(seed)
    where = torch.randperm(x.shape[0], generator=g)[:k]
    pick = torch.randint(0, others.shape[0], (k,), generator=g)
    out[where] = fit(others[pick], x.shape[-1])
    return out


def fit(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images resized (antialiased) to size x size."""
    x = images.float()
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


# ---- non-images --------------------------------------------------------------------------------
def grey_blobs(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """What a collapsed generator draws: 1-3 soft grey Gaussian blobs near the centre, peak 0.2-0.7."""
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = torch.zeros(n, 1, size, size)
    for _ in range(3):
        on = (torch.rand(n, generator=g) < 0.7).float().view(-1, 1, 1)
        cy, cx = [(torch.rand(n, generator=g) - 0.5) * 0.8 for _ in range(2)]
        sy, sx = [0.15 + 0.35 * torch.rand(n, generator=g) for _ in range(2)]
        peak = 0.2 + 0.5 * torch.rand(n, generator=g)
        blob = torch.exp(-((yy - cy.view(-1, 1, 1)) ** 2 / (2 * sy.view(-1, 1, 1) ** 2)
                           + (xx - cx.view(-1, 1, 1)) ** 2 / (2 * sx.view(-1, 1, 1) ** 2)))
        out[:, 0] = torch.maximum(out[:, 0], on * peak.view(-1, 1, 1) * blob)
    return out.clamp(0, 1)


def random_rectangles(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """1-3 filled rectangles of random grey on black."""
    g = _gen(seed)
    ys = torch.arange(size).view(1, size, 1)
    xs = torch.arange(size).view(1, 1, size)
    out = torch.zeros(n, 1, size, size)
    for i in range(3):
        on = (torch.rand(n, generator=g) < (1.0 if i == 0 else 0.5)).view(-1, 1, 1)
        y0, x0 = [(torch.rand(n, generator=g) * size * 0.7).long() for _ in range(2)]
        hh, ww = [(2 + torch.rand(n, generator=g) * size * 0.5).long() for _ in range(2)]
        val = 0.3 + 0.7 * torch.rand(n, generator=g)
        inside = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + hh).view(-1, 1, 1))
                  & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + ww).view(-1, 1, 1))) & on
        out[:, 0] = torch.where(inside, val.view(-1, 1, 1).expand(-1, size, size), out[:, 0])
    return out


def smooth_noise(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Uniform noise, sometimes smoothed to clouds, at random brightness."""
    g = _gen(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    k = int(torch.randint(1, 4, (1,), generator=g)) * 2 + 1
    smooth = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
    pick = (torch.rand(n, 1, 1, 1, generator=g) < 0.5).float()
    bright = torch.rand(n, 1, 1, 1, generator=g)
    return ((pick * (smooth - 0.5) * 3 + 0.5 + (1 - pick) * (x - 0.5)) * bright).clamp(0, 1)


DISTURBANCES = {
    "noise": gaussian_noise,
    "blur": gaussian_blur,
    "rectangles": black_rectangles,
    "swirl": swirl,
    "salt_pepper": salt_and_pepper,
}
