"""Mode coverage and sample quality of a 2-D generator, counted the way the mode-collapse papers do.

The rule is VEEGAN's (Srivastava et al. 2017) for the 2-D mixtures that Unrolled GAN (Metz et al.
2017) introduced; later papers on mode collapse (PacGAN, Lin et al. 2018) report the same two
numbers:

* draw 2,500 samples from the generator (``EVAL_SAMPLES``);
* a sample is **high quality** when it lies within 3 standard deviations of the nearest mode
  centre (ring: 3 x 0.02 = 0.06; grid: 3 x 0.05 = 0.15);
* each high-quality sample is assigned to that nearest mode; a mode is **covered** (captured) when
  at least ``min_count`` high-quality samples are assigned to it. VEEGAN's count is
  ``min_count = 1``: a mode counts once any high-quality sample lands on it, and the playground
  records that count. It is generous to a generator whose samples are spread thinly (a blurry ring
  touches every mode with a few samples), which is why the high-quality share is read beside it;
  ``min_count`` can be raised (e.g. to 1 % of the samples, 25 of 2,500) so a mode must hold a
  fair share to count;
* the **high-quality share** is the fraction of all samples that are high quality.

Distributions without modes (two moons, spiral) get the same test against their noise-free curve:
a sample is high quality when its distance to the nearest of many points on the curve is within
3 noise standard deviations; modes covered is None there. Quality alone would praise a generator
that puts every sample on one spot of the curve, so the curve's counterpart of modes covered is
reported beside it: the share of the curve that has a generator sample within the same distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gm.playground.distributions import ToyDistribution

EVAL_SAMPLES = 2500     # VEEGAN's evaluation draws 2,500 generator samples
N_STD = 3.0             # "within three standard deviations of the nearest mode"


@dataclass(frozen=True)
class Coverage:
    """What one evaluation found.

    ``modes_covered`` / ``n_modes``: covered modes out of all (None without modes);
    ``high_quality``: share of samples within ``N_STD`` std of the support, in [0, 1];
    ``per_mode``: high-quality samples assigned to each mode (None without modes);
    ``support_covered``: for a curve, the share of its points with a sample within the quality
    distance (None for mixtures, whose counterpart is ``modes_covered``);
    ``mode_share``: the share of *all* samples whose nearest mode is each mode, high quality or not
    (None without modes). Not one of VEEGAN's numbers: it shows where the generator's mass goes
    before its samples are sharp (a collapsed generator puts nearly all of it on one mode, an
    even one about 1/k on each).
    """

    modes_covered: int | None
    n_modes: int | None
    high_quality: float
    per_mode: tuple[int, ...] | None = None
    mode_share: tuple[float, ...] | None = None
    support_covered: float | None = None   # curves: share of the curve within reach of a sample


def _nearest(samples: torch.Tensor, points: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of the nearest of ``points`` for every sample, in chunks to bound memory."""
    dists, idx = [], []
    points = points.to(torch.float32)
    for part in samples.to(torch.float32).split(chunk):
        d, i = torch.cdist(part, points).min(dim=1)
        dists.append(d)
        idx.append(i)
    return torch.cat(dists), torch.cat(idx)


def mode_coverage(samples: torch.Tensor, modes: torch.Tensor, std: float, *, n_std: float = N_STD,
                  min_count: int = 1) -> Coverage:
    """Modes covered and high-quality share of ``samples`` [n, 2] for a mixture with ``modes`` [k, 2].

    A sample is high quality within ``n_std * std`` (Euclidean) of its nearest mode; a mode is
    covered when at least ``min_count`` high-quality samples are nearest to it (VEEGAN: 1).
    """
    if min_count < 1:
        raise ValueError("min_count must be at least 1")
    samples = samples.detach().reshape(-1, 2)
    k = len(modes)
    if len(samples) == 0:
        return Coverage(0, k, 0.0, (0,) * k, (0.0,) * k)
    dist, nearest = _nearest(samples, modes)
    good = dist <= n_std * std
    counts = torch.bincount(nearest[good], minlength=k)
    share = torch.bincount(nearest, minlength=k).double() / len(samples)
    return Coverage(modes_covered=int((counts >= min_count).sum()), n_modes=k,
                    high_quality=float(good.float().mean()), per_mode=tuple(int(c) for c in counts),
                    mode_share=tuple(float(v) for v in share))


def manifold_quality(samples: torch.Tensor, reference: torch.Tensor, tolerance: float) -> float:
    """Share of ``samples`` within ``tolerance`` of the nearest ``reference`` point.

    With a dense noise-free reference (points on the curve) the nearest-neighbour distance is the
    distance to the data's manifold, up to the reference's spacing.
    """
    samples = samples.detach().reshape(-1, 2)
    if len(samples) == 0:
        return 0.0
    dist, _ = _nearest(samples, reference)
    return float((dist <= tolerance).float().mean())


def support_coverage(samples: torch.Tensor, reference: torch.Tensor, tolerance: float) -> float:
    """Share of ``reference`` points with a sample within ``tolerance``: how much of the data's
    curve the samples reach (``manifold_quality`` with the roles swapped)."""
    samples = samples.detach().reshape(-1, 2)
    if len(samples) == 0:
        return 0.0
    dist, _ = _nearest(reference, samples)
    return float((dist <= tolerance).float().mean())


def evaluate(samples: torch.Tensor, distribution: ToyDistribution, *, min_count: int = 1,
             n_std: float = N_STD, support_points: int = 2048) -> Coverage:
    """Coverage of ``samples`` against ``distribution``: modes and quality for a mixture; quality
    and the share of the curve covered, against ``support_points`` points on the noise-free curve,
    otherwise (modes None)."""
    modes = distribution.mode_centres()
    if modes is not None:
        return mode_coverage(samples, modes, distribution.std, n_std=n_std, min_count=min_count)
    curve = distribution.support(support_points)
    tolerance = n_std * distribution.std
    return Coverage(modes_covered=None, n_modes=None,
                    high_quality=manifold_quality(samples, curve, tolerance),
                    support_covered=support_coverage(samples, curve, tolerance))
