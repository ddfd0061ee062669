"""Fréchet distance: agreement with pytorch-fid, zero on itself, exact growth with a mean shift."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

from gm.errors import GMError
from gm.metrics.frechet import frechet_distance, mean_and_cov, trace_sqrt_product


def _pytorch_fid_distance(monkeypatch, *stats) -> float:
    import scipy.linalg
    from pytorch_fid import fid_score

    if "disp" not in inspect.signature(scipy.linalg.sqrtm).parameters:
        # pytorch-fid 0.3.0 calls sqrtm(..., disp=False) and unpacks (result, error estimate); SciPy 1.18
        # removed `disp`. Shim the old API so the reference stays runnable: same square root, error 0.
        original = scipy.linalg.sqrtm

        def sqrtm_old_api(a, disp=True, **kwargs):
            result = original(a, **kwargs)
            return (result, 0.0) if not disp else result

        monkeypatch.setattr(fid_score.linalg, "sqrtm", sqrtm_old_api)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # SciPy 1.17 deprecates `disp`
        return float(fid_score.calculate_frechet_distance(*stats))


def _correlated(rng, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mix = np.eye(d) + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix * rng.uniform(0.5, 2.0, size=d) + shift


@pytest.mark.parametrize("d,n", [(16, 200), (64, 500), (200, 800), (64, 40)])  # last: singular covariances
def test_agrees_with_pytorch_fid(monkeypatch, d, n):
    rng = np.random.default_rng(d)
    m1, s1 = mean_and_cov(_correlated(rng, n, d))
    m2, s2 = mean_and_cov(_correlated(rng, n, d, shift=0.2))
    ours = frechet_distance(m1, s1, m2, s2)
    ref = _pytorch_fid_distance(monkeypatch, m1, s1, m2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)
    assert ours > 0


def test_same_set_is_zero_and_mean_shift_adds_its_squared_norm():
    rng = np.random.default_rng(1)
    x = _correlated(rng, 1000, 32)
    m, s = mean_and_cov(x)
    assert frechet_distance(m, s, m, s) == pytest.approx(0.0, abs=1e-8)
    values = []
    for size in (0.1, 0.5, 1.0, 2.0):
        delta = np.full(32, size)
        m2, s2 = mean_and_cov(x + delta)           # same covariance, mean moved by delta
        value = frechet_distance(m, s, m2, s2)
        assert value == pytest.approx(delta @ delta, rel=1e-7)
        values.append(value)
    assert values == sorted(values)


def test_trace_sqrt_of_diagonal_matrices_by_hand():
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 0.0])
    # sqrt(a b) = diag(2, 2, 0)
    assert trace_sqrt_product(a, b) == pytest.approx(4.0)
    # FID of N(0, a) and N(1, b) in 3-d: 3 + 14 + 5 - 2 * 4
    assert frechet_distance(np.zeros(3), a, np.ones(3), b) == pytest.approx(14.0)


def test_mismatched_or_broken_statistics_are_user_errors():
    with pytest.raises(GMError, match="do not match"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(GMError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))
    with pytest.raises(GMError, match="at least 2"):
        mean_and_cov(np.zeros((1, 4)))
