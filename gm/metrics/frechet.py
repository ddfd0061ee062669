"""The Fréchet distance between two Gaussians, and the statistics it is computed from.

    d² = ||mu1 - mu2||² + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2)

Tr sqrt(S1 S2) is computed from eigenvalues, in float64, without scipy's sqrtm: S1 S2 is similar to
the symmetric positive semi-definite A = R^T S2 R (R R^T = S1), so Tr sqrt(S1 S2) = Σ sqrt(λ_i(A)),
with tiny negative eigenvalues (round-off on singular covariances) clipped to 0. This avoids sqrtm's spurious imaginary parts (SciPy
1.11.2-1.12) and its removed `disp` argument (SciPy 1.18), is several times faster at d = 2048, and
agrees with pytorch-fid's `calculate_frechet_distance` to about 1e-7 relative.

Cost: one eigvalsh of a D x D matrix (seconds at D = 2048) when a covariance has full rank. With fewer
images than dimensions the covariance has rank N - 1 < D and a factor F (D x (N - 1), F F^T = S1,
the centred features / sqrt(N - 1)) shrinks the problem to the (N - 1) x (N - 1) matrix F^T S2 F: the
same non-zero eigenvalues, a fraction of a second instead of seconds (scipy's sqrtm takes about a
minute there). :class:`Moments` accumulates mean and covariance batch by batch in O(D²) memory and
keeps that factor while N is small.
"""

from __future__ import annotations

import numpy as np

from gm.errors import GMError


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, factor1: np.ndarray | None = None,
                       factor2: np.ndarray | None = None) -> float:
    """Tr sqrt(sigma1 @ sigma2) for symmetric PSD matrices, via eigenvalues in float64.

    sigma1 sigma2 is similar to the symmetric PSD matrix R^T sigma2 R for any R with R R^T = sigma1,
    so its eigenvalues are real and non-negative (and Tr sqrt(S1 S2) = Tr sqrt(S2 S1): either side can
    be factored). R is, in order of preference: a given factor with fewer columns than D (the
    small problem above), the Cholesky factor of whichever covariance is positive definite (one
    eigvalsh, no eigenvectors), else the symmetric square root from eigh (both singular, no factor).
    """
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    d = s1.shape[0]
    factors = [(f, other) for f, other in ((factor1, s2), (factor2, s1)) if f is not None and f.shape[1] < d]
    if factors:
        root, other = min(factors, key=lambda fo: fo[0].shape[1])
        root = np.asarray(root, dtype=np.float64)
    else:
        root = other = None
        for s, o in ((s1, s2), (s2, s1)):
            try:
                root, other = np.linalg.cholesky(s), o
                break
            except np.linalg.LinAlgError:
                continue
        if root is None:
            root, other = _sym_sqrt(s1), s2
    a = root.T @ other @ root
    eig = np.linalg.eigvalsh((a + a.T) / 2)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *,
                     factor1: np.ndarray | None = None, factor2: np.ndarray | None = None) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID when fed Inception stats).

    factor1 / factor2 (optional, D x k with factor @ factor.T == sigma, see :class:`Moments`) only make
    it faster when k < D; the value is the same.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise GMError(f"The two statistics do not match (means {mu1.shape} vs {mu2.shape}, covariances "
                      f"{sigma1.shape} vs {sigma2.shape}); compare features of the same extractor.")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(sigma1).all()
            and np.isfinite(sigma2).all()):
        raise GMError("The statistics contain NaN or infinite values; the images or features are broken.")
    diff = mu1 - mu2
    tr_sqrt = trace_sqrt_product(sigma1, sigma2, factor1, factor2)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt
    # Round-off can make a distance of a set to itself a hair below zero.
    return float(max(value, 0.0))


def mean_and_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and unbiased covariance (np.cov, N-1) of N x D features, as pytorch-fid computes them."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise GMError(f"Statistics need at least 2 feature vectors; got shape {x.shape}.")
    return x.mean(axis=0), np.cov(x, rowvar=False)


class Moments:
    """Mean and covariance (np.cov's, N - 1) of feature vectors added batch by batch, in O(D²) memory.

    Sums are taken around a shift (the first batch's mean), so the covariance does not lose digits to
    cancellation when the mean is large against the spread; the result equals np.cov of all the rows to
    about 1e-12 relative. Rows are gathered into blocks of `block` before each update: one D x D
    product per 50-image batch costs about five times what np.cov takes for the same rows. While
    N <= keep_rows the rows are kept too, so :meth:`factor` can hand the low-rank factor to
    :func:`frechet_distance`.
    """

    def __init__(self, keep_rows: int = 2048, block: int = 512) -> None:
        self.n = 0
        self.keep_rows, self.block = keep_rows, block
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._rows: list[np.ndarray] | None = []

    def add(self, batch: np.ndarray) -> None:
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise GMError(f"Feature batches must be N x D with N >= 1; got shape {x.shape}.")
        if self._shift is None:
            self._shift = x.mean(axis=0)
            d = x.shape[1]
            self._sum, self._outer = np.zeros(d), np.zeros((d, d))
        elif x.shape[1] != self._shift.shape[0]:
            raise GMError(f"Feature batches changed width ({self._shift.shape[0]} then {x.shape[1]}).")
        self.n += x.shape[0]
        self._pending.append(x)
        self._pending_rows += x.shape[0]
        if self._rows is not None:
            self._rows.append(x)
            if self.n > self.keep_rows:
                self._rows = None
        if self._pending_rows >= self.block:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        assert self._sum is not None and self._outer is not None
        c = np.concatenate(self._pending) - self._shift
        self._sum += c.sum(axis=0)
        self._outer += c.T @ c
        self._pending, self._pending_rows = [], 0

    def sums(self) -> tuple[int, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(n, shift, sum of (x - shift), sum of (x - shift)(x - shift)^T) over every row added so far,
        float64 (None before the first batch): what ranks add up (gm.metrics.sharding)."""
        self._flush()
        return self.n, self._shift, self._sum, self._outer

    def kept_rows(self) -> np.ndarray | None:
        """Every row added, N x D, while N <= keep_rows; else None."""
        if self._rows is None or not self._rows:
            return None
        return np.concatenate(self._rows)

    @classmethod
    def from_sums(cls, n: int, shift: np.ndarray, total: np.ndarray, outer: np.ndarray,
                  rows: list[np.ndarray] | None = None, keep_rows: int = 2048, block: int = 512) -> Moments:
        """Moments made of sums (see :meth:`sums`) rather than rows, e.g. summed over processes; `rows`
        (all n of them, in order, or None) serve :meth:`factor`."""
        m = cls(keep_rows=keep_rows, block=block)
        m.n = int(n)
        m._shift = np.asarray(shift, np.float64)
        m._sum, m._outer = np.array(total, np.float64), np.array(outer, np.float64)
        m._rows = list(rows) if rows is not None and n <= keep_rows else None
        return m

    def mean_and_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2 or self._shift is None:
            raise GMError(f"Statistics need at least 2 feature vectors; got {self.n}.")
        self._flush()
        assert self._sum is not None and self._outer is not None
        m = self._sum / self.n
        cov = (self._outer - self.n * np.outer(m, m)) / (self.n - 1)
        return self._shift + m, (cov + cov.T) / 2

    def factor(self) -> np.ndarray | None:
        """D x N, F F^T = the covariance (centred rows / sqrt(N - 1)), when the rows were kept; else None."""
        if self._rows is None or self.n < 2:
            return None
        x = np.concatenate(self._rows)
        return ((x - x.mean(axis=0)) / np.sqrt(self.n - 1)).T
