"""Ledoit-Wolf Sharpe-difference test: a loop-by-loop NumPy transcription of the authors' formulas,
and decisions on constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradfolio import ConfigError, DataError
from gradfolio.stats import hac_standard_error, sharpe_difference_test
from gradfolio.stats.sharpe_test import _bootstrap_stats, bootstrap_indices, quadratic_spectral


def _pair(T: int, mu_a: float, mu_b: float, rho: float, seed: int, garch: bool = False) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((T, 2))
    vol = np.ones(T)
    if garch:  # volatility clustering, so the HAC matters
        for t in range(1, T):
            vol[t] = math.sqrt(0.05 + 0.15 * (vol[t - 1] * z[t - 1, 0]) ** 2 + 0.8 * vol[t - 1] ** 2)
    a = mu_a + 0.011 * vol * z[:, 0]
    b = mu_b + 0.017 * vol * (rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1])
    return a, b


def _reference_se(r1: np.ndarray, r2: np.ndarray, kernel: str, prewhiten: bool) -> float:
    """Ledoit & Wolf (2008) HAC standard error, transcribed term by term (loops, no FFT)."""
    T = len(r1)
    mu1, mu2, g1, g2 = r1.mean(), r2.mean(), np.mean(r1**2), np.mean(r2**2)
    grad = np.array([g1 / (g1 - mu1**2) ** 1.5, -g2 / (g2 - mu2**2) ** 1.5,
                     -0.5 * mu1 / (g1 - mu1**2) ** 1.5, 0.5 * mu2 / (g2 - mu2**2) ** 1.5])
    V = np.column_stack([r1 - mu1, r2 - mu2, r1**2 - g1, r2**2 - g2])

    def psi(W: np.ndarray) -> np.ndarray:
        n = len(W)
        num = den = 0.0
        for i in range(W.shape[1]):
            slope, intercept = np.polyfit(W[:-1, i], W[1:, i], 1)
            s2 = np.mean((W[1:, i] - intercept - slope * W[:-1, i]) ** 2)
            num += 4 * slope**2 * s2**2 / (1 - slope) ** 8
            den += s2**2 / (1 - slope) ** 4
        alpha = num / den
        S = (2.6614 if kernel == "parzen" else 1.3221) * (alpha * n) ** 0.2

        def gamma(j: int) -> np.ndarray:
            G = np.zeros((4, 4))
            for t in range(j, n):
                G += np.outer(W[t], W[t - j])
            return G / n

        out = gamma(0)
        j = 1
        while j < (S if kernel == "parzen" else n):
            x = j / S
            if kernel == "parzen":
                k = 1 - 6 * x**2 + 6 * x**3 if x <= 0.5 else 2 * (1 - x) ** 3
            else:
                z = 6 * math.pi * x / 5
                k = 25 / (12 * math.pi**2 * x**2) * (math.sin(z) / z - math.cos(z))
            G = gamma(j)
            out = out + k * (G + G.T)
            j += 1
        return n / (n - 4) * out

    if not prewhiten:
        P = psi(V)
    else:
        A = np.zeros((4, 4))
        for j in range(4):
            A[j] = np.linalg.lstsq(V[:-1], V[1:, j], rcond=None)[0]
        U, d, Vt = np.linalg.svd(A)
        A = U @ np.diag(np.minimum(d, 0.97)) @ Vt
        Vstar = np.array([V[t] - A @ V[t - 1] for t in range(1, T)])
        D = np.linalg.inv(np.eye(4) - A)
        P = D @ psi(Vstar) @ D.T
    return math.sqrt(grad @ P @ grad / T)


@pytest.mark.parametrize("kernel,prewhiten", [("parzen", True), ("parzen", False), ("qs", True), ("qs", False)])
def test_hac_se_equals_direct_formula(kernel: str, prewhiten: bool) -> None:
    a, b = _pair(300, 0.0007, 0.0002, 0.55, seed=3, garch=True)
    assert hac_standard_error(a, b, kernel, prewhiten) == pytest.approx(_reference_se(a, b, kernel, prewhiten),
                                                                         rel=1e-10)


def test_hac_result_fields_and_annualization() -> None:
    a, b = _pair(700, 0.0009, 0.0001, 0.7, seed=8)
    res = sharpe_difference_test(a, b, level=0.9, kernel="qs", prewhiten=False, periods_per_year=52)
    sr = lambda r: r.mean() / r.std()  # noqa: E731  population moments, as in the paper
    se = _reference_se(a, b, "qs", False)
    assert res.difference == pytest.approx((sr(a) - sr(b)) * math.sqrt(52), rel=1e-12)
    assert res.std_error == pytest.approx(se * math.sqrt(52), rel=1e-10)
    z = sps.norm.ppf(0.95)
    assert res.lower == pytest.approx(res.difference - z * res.std_error, rel=1e-12)
    assert res.upper == pytest.approx(res.difference + z * res.std_error, rel=1e-12)
    assert res.pvalue == pytest.approx(2 * sps.norm.sf(abs(sr(a) - sr(b)) / se), rel=1e-9)
    shifted = sharpe_difference_test(a, b, level=0.9, null=res.difference, kernel="qs", prewhiten=False,
                                     periods_per_year=52)
    assert shifted.pvalue == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["hac", "bootstrap"])
def test_rejects_a_large_difference_and_not_equal_sharpes(method: str) -> None:
    a, b = _pair(2000, 0.0015, -0.0005, 0.8, seed=1, garch=True)
    res = sharpe_difference_test(a, b, method=method, n_resamples=999, seed=5)
    assert res.pvalue < 0.01 and res.lower > 0
    # same Sharpe by construction: b is a scaled copy of a (Sharpe is scale invariant) plus tiny noise
    rng = np.random.default_rng(4)
    c = 1.7 * a + 1e-5 * rng.standard_normal(len(a))
    res0 = sharpe_difference_test(a, c, method=method, n_resamples=999, seed=5)
    assert res0.pvalue > 0.3 and res0.lower < 0 < res0.upper


def test_bootstrap_studentization_equals_a_loop() -> None:
    a, b = _pair(230, 0.0006, 0.0002, 0.4, seed=9)
    r = np.column_stack([a, b])
    block = 7
    idx = bootstrap_indices(len(a), 5, block, "circular", seed=3)
    deltas, ses = _bootstrap_stats(r, idx, block)
    for m in range(5):
        rs = r[idx[m]]
        mu, g = rs.mean(0), (rs**2).mean(0)
        grad = np.array([g[0] / (g[0] - mu[0] ** 2) ** 1.5, -g[1] / (g[1] - mu[1] ** 2) ** 1.5,
                         -0.5 * mu[0] / (g[0] - mu[0] ** 2) ** 1.5, 0.5 * mu[1] / (g[1] - mu[1] ** 2) ** 1.5])
        y = np.column_stack([rs - mu, rs**2 - g])
        psi = np.zeros((4, 4))
        n_blocks = len(a) // block
        for j in range(n_blocks):
            zeta = math.sqrt(block) * y[j * block:(j + 1) * block].mean(0)
            psi += np.outer(zeta, zeta)
        psi /= n_blocks
        assert ses[m] == pytest.approx(math.sqrt(grad @ psi @ grad / len(a)), rel=1e-10)
        assert deltas[m] == pytest.approx(mu[0] / math.sqrt(g[0] - mu[0] ** 2) - mu[1] / math.sqrt(g[1] - mu[1] ** 2))


def test_bootstrap_pvalue_and_interval_definition() -> None:
    a, b = _pair(400, 0.001, 0.0, 0.5, seed=2)
    res = sharpe_difference_test(a, b, method="bootstrap", level=0.8, n_resamples=299, block_length=6,
                                 kernel="qs", prewhiten=False, periods_per_year=1, seed=13)
    assert res.block_length == 6
    idx = bootstrap_indices(len(a), 299, 6, "circular", seed=13)
    d_star, se_star = _bootstrap_stats(np.column_stack([a, b]), idx, 6)
    se = hac_standard_error(a, b, "qs", False)
    t_star = np.abs(d_star - res.difference) / se_star
    assert res.pvalue == pytest.approx((np.sum(t_star >= abs(res.difference) / se) + 1) / 300)
    q = np.quantile(t_star, 0.8)
    assert res.lower == pytest.approx(res.difference - q * se) and res.upper == pytest.approx(res.difference + q * se)


def test_quadratic_spectral_kernel_values() -> None:
    assert quadratic_spectral(np.array([0.0]))[0] == 1.0
    x = 0.37
    z = 6 * math.pi * x / 5
    assert quadratic_spectral(np.array([x]))[0] == pytest.approx(25 / (12 * math.pi**2 * x**2) * (math.sin(z) / z
                                                                                                   - math.cos(z)))


def test_bad_input() -> None:
    a, b = _pair(100, 0.001, 0.0, 0.5, seed=2)
    with pytest.raises(DataError, match="periods"):
        sharpe_difference_test(a, b[:-1])
    with pytest.raises(DataError, match="at least 20"):
        sharpe_difference_test(a[:10], b[:10])
    bad = a.copy()
    bad[17] = np.nan
    with pytest.raises(DataError, match="row 17"):
        sharpe_difference_test(pd.Series(bad, name="x"), b)
    with pytest.raises(ConfigError, match="level"):
        sharpe_difference_test(a, b, level=1.0)
    with pytest.raises(ConfigError, match="kernel"):
        sharpe_difference_test(a, b, kernel="bartlett")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="block_length"):
        sharpe_difference_test(a, b, method="bootstrap", block_length=60)
