"""MIG on dSprites factors, precision/recall and coverage: pure functions on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gm.errors import GMError
from gm.metrics.coverage import class_histogram, conditional_accuracy, coverage, kl_to_uniform
from gm.metrics.mig import mig, mutual_information
from gm.metrics.prd import precision_recall


def _factors(n: int = 4000, seed: int = 0) -> np.ndarray:
    from gm.data.dsprites import factor_grid
    grid = factor_grid(0)[:, [0, 1, 3, 4]]         # shape, scale, posX, posY
    rng = np.random.default_rng(seed)
    return grid[rng.choice(len(grid), n, replace=False)]


def test_mig_is_near_zero_for_a_random_encoder():
    f = _factors()
    codes = np.random.default_rng(1).normal(size=(len(f), 10))
    assert mig(codes, f, ("shape", "scale", "posX", "posY"))["mig"] < 0.05


def test_mig_is_high_for_an_encoder_that_reads_the_factors():
    f = _factors()
    rng = np.random.default_rng(2)
    codes = np.concatenate([f + 0.05 * rng.normal(size=f.shape), rng.normal(size=(len(f), 6))], axis=1)
    out = mig(codes, f, ("shape", "scale", "posX", "posY"))
    assert out["mig"] > 0.8
    assert out["latent_for"] == {"shape": 0, "scale": 1, "posX": 2, "posY": 3}


def test_mig_of_an_untrained_vae_encoder_is_low():
    from gm.data.dsprites import render_classes
    from gm.models.vae import VAE
    classes = np.zeros((1000, 5), dtype=np.int64)
    f = _factors(1000, seed=3)
    classes[:, [0, 1, 3, 4]] = f
    x = torch.from_numpy(render_classes(classes)).float().unsqueeze(1)
    torch.manual_seed(0)
    with torch.no_grad():
        codes = VAE().encoder(x)[0].numpy()
    assert mig(codes, f)["mig"] < 0.1


def test_mig_skips_constant_factors_and_checks_shapes():
    f = _factors(500)
    with_const = np.concatenate([f, np.zeros((500, 1), dtype=np.int64)], axis=1)
    codes = np.random.default_rng(0).normal(size=(500, 4))
    assert set(mig(codes, with_const)["per_factor"]) == {"factor0", "factor1", "factor2", "factor3"}
    with pytest.raises(GMError):
        mig(codes[:10], f)
    assert mutual_information(np.arange(8) % 2, np.arange(8) % 2) == pytest.approx(np.log(2))


def test_precision_recall_sanity():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(1000, 8))
    same = precision_recall(real, rng.normal(size=(1000, 8)))
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    collapsed = precision_recall(real, 0.05 * rng.normal(size=(1000, 8)))   # all fakes in one mode
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.2
    far = precision_recall(real, rng.normal(size=(1000, 8)) + 20)
    assert far == {"precision": 0.0, "recall": 0.0}


def test_coverage_counts_and_kl():
    covered = coverage(np.arange(1000) % 10, 10)
    assert covered["classes_covered"] == 10 and covered["kl_to_uniform"] == pytest.approx(0.0)
    one = coverage(np.full(1000, 7), 10)
    assert one["classes_covered"] == 1 and one["kl_to_uniform"] == pytest.approx(np.log(10))
    # A handful of stray predictions does not make a class "covered".
    mostly = coverage(np.r_[np.full(995, 3), np.arange(5)], 10)
    assert mostly["classes_covered"] == 1
    assert class_histogram(np.array([0, 0, 2]), 3).tolist() == [2, 0, 1]
    assert kl_to_uniform(np.array([1, 1])) == pytest.approx(0.0)
    assert conditional_accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
