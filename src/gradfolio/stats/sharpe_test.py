"""Ledoit & Wolf (2008) test of the difference of two Sharpe ratios.

"Robust performance hypothesis testing with the Sharpe ratio" (Journal of Empirical Finance,
2008). For returns ``r1, r2`` (same periods) let ``u = (mu1, mu2, g1, g2)`` with ``g_i = E[r_i^2]``;
the Sharpe difference is ``Delta = f(u) = mu1 / sqrt(g1 - mu1^2) - mu2 / sqrt(g2 - mu2^2)``
(population moments, ``ddof = 0``, as in the paper). By the delta method
``se(Delta_hat) = sqrt(grad f' Psi grad f / T)`` with ``Psi`` the long-run covariance of
``y_t = (r1 - mu1, r2 - mu2, r1^2 - g1, r2^2 - g2)``.

- ``method="hac"``: ``Psi`` by a kernel HAC estimator ``T / (T - 4) (Gamma_0 + sum_j k(j / S)
  (Gamma_j + Gamma_j'))`` with the Parzen or quadratic-spectral kernel, the automatic bandwidth of
  Andrews (1991) (AR(1) approximations, equal weights), optionally prewhitened by a VAR(1)
  (Andrews & Monahan 1992; singular values of the VAR matrix capped at 0.97), as in the
  authors' code. Normal interval and two-sided p-value.
- ``method="bootstrap"``: studentized circular block bootstrap (their Section 3.2): resampled
  ``Delta*`` is studentized by the block-bootstrap standard error ``sqrt(mean_j (grad f*' zeta_j)^2
  / T)`` with ``zeta_j = b^-1/2 sum_{t in block j} y*_t``; p-value
  ``(#{|Delta* - Delta_hat| / se* >= |Delta_hat - delta0| / se} + 1) / (M + 1)`` and interval
  ``Delta_hat +- q se``, ``q`` the ``level``-quantile of ``|Delta* - Delta_hat| / se*``.

Values are per period; with ``periods_per_year`` they are reported annualized (times
``sqrt(periods_per_year)``); the p-value does not change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from arch.bootstrap import optimal_block_length as _arch_block_length
from scipy import stats as sps

from gradfolio.errors import ConfigError, DataError
from gradfolio.stats._inputs import check_choice, check_int, check_level, returns_frame
from gradfolio.stats.bootstrap import bootstrap_indices

Kernel = Literal["parzen", "qs"]
KERNELS: tuple[str, ...] = ("parzen", "qs")
_BANDWIDTH = {"parzen": 2.6614, "qs": 1.3221}  # Andrews (1991), q = 2 for both kernels
_PREWHITEN_CAP = 0.97


def parzen(x: np.ndarray) -> np.ndarray:
    """Parzen kernel ``1 - 6x^2 + 6|x|^3`` (``|x| <= 1/2``), ``2 (1 - |x|)^3`` (``<= 1``), else 0."""
    a = np.abs(x)
    return np.where(a <= 0.5, 1 - 6 * a**2 + 6 * a**3, np.where(a <= 1, 2 * (1 - a) ** 3, 0.0))


def quadratic_spectral(x: np.ndarray) -> np.ndarray:
    """Quadratic-spectral kernel ``25 / (12 pi^2 x^2) (sin(z) / z - cos(z))``, ``z = 6 pi x / 5`` (1 at 0)."""
    x = np.asarray(x, dtype=np.float64)
    z = 6 * np.pi * x / 5
    safe = np.where(x == 0, 1.0, x)
    zs = np.where(x == 0, 1.0, z)
    val = 25 / (12 * np.pi**2 * safe**2) * (np.sin(zs) / zs - np.cos(zs))
    return np.where(x == 0, 1.0, val)


def sharpe_moments(r1: np.ndarray, r2: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Sharpe difference ``Delta``, its gradient ``(4,)`` in ``(mu1, mu2, g1, g2)`` and ``y_t (T, 4)``."""
    mu1, mu2, g1, g2 = r1.mean(), r2.mean(), (r1**2).mean(), (r2**2).mean()
    v1, v2 = g1 - mu1**2, g2 - mu2**2
    delta = mu1 / math.sqrt(v1) - mu2 / math.sqrt(v2)
    grad = np.array([g1 / v1**1.5, -g2 / v2**1.5, -0.5 * mu1 / v1**1.5, 0.5 * mu2 / v2**1.5])
    y = np.column_stack([r1 - mu1, r2 - mu2, r1**2 - g1, r2**2 - g2])
    return float(delta), grad, y


def andrews_alpha(v: np.ndarray) -> float:
    """Andrews (1991) ``alpha(2)`` from AR(1) fits of the columns of ``v (T, p)`` (equal weights).

    Each column is fitted by OLS with an intercept, ``v_t = c + rho v_{t-1} + e_t`` (R's
    ``ar(..., method="ols")``, used by Ledoit and Wolf), ``sigma^2 = mean(e^2)``.
    """
    lag, cur = v[:-1] - v[:-1].mean(axis=0), v[1:] - v[1:].mean(axis=0)
    rho = (cur * lag).sum(axis=0) / (lag * lag).sum(axis=0)
    sig2 = ((cur - rho * lag) ** 2).mean(axis=0)
    num = (4 * rho**2 * sig2**2 / (1 - rho) ** 8).sum()
    den = (sig2**2 / (1 - rho) ** 4).sum()
    return float(num / den)


def _autocovariances(v: np.ndarray) -> np.ndarray:
    """``Gamma_j = 1/T sum_{t > j} v_t v_{t-j}'`` for ``j = 0..T-1``: shape ``(T, p, p)`` (by FFT)."""
    n = v.shape[0]
    f = np.fft.rfft(v, n=2 * n, axis=0)
    cross = np.fft.irfft(f[:, :, None] * np.conj(f[:, None, :]), n=2 * n, axis=0)
    return cross[:n] / n


def hac_covariance(v: np.ndarray, kernel: Kernel = "parzen", bandwidth: float | None = None) -> np.ndarray:
    """Kernel HAC long-run covariance ``(p, p)`` of ``v (T, p)`` with the ``T / (T - 4)`` correction.

    ``bandwidth`` ``None``: Andrews' automatic ``c (alpha(2) T)^(1/5)``, ``c`` 2.6614 (Parzen) or 1.3221 (QS).
    """
    check_choice(kernel, "kernel", KERNELS, "hac_covariance")
    n = v.shape[0]
    s = _BANDWIDTH[kernel] * (andrews_alpha(v) * n) ** 0.2 if bandwidth is None else float(bandwidth)
    gam = _autocovariances(v)
    lags = np.arange(1, n)
    w = parzen(lags / s) if kernel == "parzen" else quadratic_spectral(lags / s)
    side = np.einsum("j,jab->ab", w, gam[1:])
    return n / (n - 4) * (gam[0] + side + side.T)


def prewhitened_hac(v: np.ndarray, kernel: Kernel = "parzen") -> np.ndarray:
    """HAC of the VAR(1) residuals of ``v (T, p)``, recoloured: ``D Psi* D'``, ``D = (I - A)^-1``."""
    lag, cur = v[:-1], v[1:]
    coef, *_ = np.linalg.lstsq(lag, cur, rcond=None)  # cur ~ lag @ coef, so A = coef'
    u, d, vt = np.linalg.svd(coef.T)
    a = u @ np.diag(np.minimum(d, _PREWHITEN_CAP)) @ vt
    resid = cur - lag @ a.T
    dmat = np.linalg.inv(np.eye(v.shape[1]) - a)
    return dmat @ hac_covariance(resid, kernel) @ dmat.T


def hac_standard_error(r1: np.ndarray, r2: np.ndarray, kernel: Kernel = "parzen", prewhiten: bool = True) -> float:
    """Ledoit-Wolf HAC standard error of the per-period Sharpe difference of ``r1 (T,)`` and ``r2 (T,)``."""
    _, grad, y = sharpe_moments(r1, r2)
    psi = prewhitened_hac(y, kernel) if prewhiten else hac_covariance(y, kernel)
    return float(math.sqrt(grad @ psi @ grad / len(r1)))


@dataclass(frozen=True)
class SharpeDifference:
    """Result of :func:`sharpe_difference_test` (annualized when ``periods_per_year != 1``).

    Attributes: ``difference`` (Sharpe of a minus Sharpe of b), ``std_error``, ``lower``,
    ``upper`` (the ``level`` interval), ``pvalue`` (two-sided, of ``difference == null``),
    ``method``, ``level``, ``block_length`` (bootstrap only, else ``nan``).
    """

    difference: float
    std_error: float
    lower: float
    upper: float
    pvalue: float
    method: str
    level: float
    block_length: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dictionary."""
        return asdict(self)


def _bootstrap_stats(r: np.ndarray, idx: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Resampled per-period ``Delta*`` and studentizing ``se*`` for ``r (T, 2)``, ``idx (B, T)``: ``(B,), (B,)``."""
    n = r.shape[0]
    n_blocks = n // block
    deltas, ses = [], []
    step = max(1, (32 * 2**20) // (8 * 6 * n))
    for start in range(0, idx.shape[0], step):  # chunks of many resamples, to bound memory
        rs = r[idx[start:start + step]]  # (b, T, 2)
        mu = rs.mean(axis=1)
        g = (rs**2).mean(axis=1)
        var = g - mu**2
        delta = mu[:, 0] / np.sqrt(var[:, 0]) - mu[:, 1] / np.sqrt(var[:, 1])
        grad = np.stack([g[:, 0] / var[:, 0] ** 1.5, -g[:, 1] / var[:, 1] ** 1.5,
                         -0.5 * mu[:, 0] / var[:, 0] ** 1.5, 0.5 * mu[:, 1] / var[:, 1] ** 1.5], axis=1)
        y = np.concatenate([rs - mu[:, None, :], rs**2 - g[:, None, :]], axis=2)  # (b, T, 4)
        w = np.einsum("btp,bp->bt", y[:, : n_blocks * block], grad)
        z = w.reshape(w.shape[0], n_blocks, block).sum(axis=2) / math.sqrt(block)
        deltas.append(delta)
        ses.append(np.sqrt((z**2).mean(axis=1) / n))
    return np.concatenate(deltas), np.concatenate(ses)


def sharpe_difference_test(
    a: pd.Series | np.ndarray,
    b: pd.Series | np.ndarray,
    method: Literal["hac", "bootstrap"] = "hac",
    level: float = 0.95,
    null: float = 0.0,
    kernel: Kernel = "parzen",
    prewhiten: bool = True,
    n_resamples: int = 5_000,
    block_length: int | None = None,
    periods_per_year: float = 252,
    seed: int | np.random.Generator | None = 0,
) -> SharpeDifference:
    """Test ``Sharpe(a) - Sharpe(b) == null`` (Ledoit & Wolf 2008).

    Parameters
    ----------
    a, b
        Returns of the two strategies over the same periods, shape ``(T,)``, ``T >= 20``.
    method
        ``"hac"`` (kernel HAC, normal interval) or ``"bootstrap"`` (studentized circular block bootstrap).
    level
        Confidence level of the interval, in ``(0, 1)``.
    null
        Sharpe difference under the null hypothesis, in the reported (annualized) units.
    kernel, prewhiten
        HAC kernel (``"parzen"`` or ``"qs"``) and VAR(1) prewhitening of the standard error
        (the bootstrap version uses it to studentize the data's statistic).
    n_resamples, block_length, seed
        Bootstrap resamples ``M``, block length ``b`` (``None``: the Politis-White circular
        length of ``y_t``, averaged over its 4 columns and rounded up) and seed of the index draws.
    periods_per_year
        Reporting scale: values are multiplied by ``sqrt(periods_per_year)`` (1 for per-period).
    """
    where = "sharpe_difference_test"
    check_choice(method, "method", ("hac", "bootstrap"), where)
    check_choice(kernel, "kernel", KERNELS, where)
    check_level(level, where=where)
    if not (isinstance(periods_per_year, (int, float)) and 0 < periods_per_year < math.inf):
        raise ConfigError(f"{where}: periods_per_year={periods_per_year!r} must be > 0 (252 for daily returns).")
    ra = returns_frame(a, where).iloc[:, 0].to_numpy()
    rb = returns_frame(b, where).iloc[:, 0].to_numpy()
    if ra.shape != rb.shape:
        raise DataError(f"{where}: a has {len(ra)} periods and b has {len(rb)}; align them on the same dates first.")
    scale = math.sqrt(periods_per_year)
    delta, _, y = sharpe_moments(ra, rb)
    se = hac_standard_error(ra, rb, kernel, prewhiten)
    stat = abs(delta - null / scale) / se
    if method == "hac":
        z = sps.norm.ppf(0.5 + level / 2)
        return SharpeDifference(delta * scale, se * scale, float((delta - z * se) * scale),
                                float((delta + z * se) * scale), float(2 * sps.norm.sf(stat)), method, level,
                                float("nan"))
    n_resamples = check_int(n_resamples, "n_resamples", 1, where)
    if block_length is None:
        block = int(math.ceil(_arch_block_length(y)["circular"].mean()))
    else:
        block = check_int(block_length, "block_length", 1, where)
    if block > len(ra) // 2:
        raise ConfigError(f"{where}: block_length={block} must be at most T / 2 = {len(ra) // 2}.")
    idx = bootstrap_indices(len(ra), n_resamples, block, "circular", seed)
    d_star, se_star = _bootstrap_stats(np.column_stack([ra, rb]), idx, block)
    t_star = np.abs(d_star - delta) / se_star
    pvalue = (np.count_nonzero(t_star >= stat) + 1) / (n_resamples + 1)
    q = float(np.quantile(t_star, level))
    return SharpeDifference(delta * scale, se * scale, (delta - q * se) * scale, (delta + q * se) * scale,
                            float(pvalue), method, level, float(block))


__all__ = [
    "SharpeDifference",
    "sharpe_difference_test",
    "hac_standard_error",
    "hac_covariance",
    "prewhitened_hac",
    "andrews_alpha",
    "sharpe_moments",
    "parzen",
    "quadratic_spectral",
]
