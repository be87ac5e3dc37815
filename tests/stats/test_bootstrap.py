"""Block-bootstrap CIs: equal to arch's on the same seed, and coverage within Monte Carlo error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap
from arch.bootstrap import optimal_block_length as arch_block_length

from gradfolio import ConfigError, DataError, risk
from gradfolio.stats import bootstrap, bootstrap_ci, bootstrap_indices, confidence_interval, optimal_block_length

PPY = 52  # a non-default annualization everywhere


def _sharpe(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=0) / x.std(axis=0, ddof=1) * math.sqrt(PPY)


def _ar1(T: int, R: int, phi: float, mu: float, sig: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, sig, (T + 200, R))
    e = np.zeros_like(u)
    for t in range(1, T + 200):
        e[t] = phi * e[t - 1] + u[t]
    return mu + e[200:]


@pytest.mark.parametrize("method,cls,blen", [("stationary", StationaryBootstrap, 7.3), ("circular", CircularBlockBootstrap, 6)])
def test_resamples_and_intervals_equal_arch(method: str, cls: type, blen: float) -> None:
    x = _ar1(300, 3, 0.2, 0.0005, 0.01, seed=3)
    res = bootstrap(x, "sharpe", 400, method, blen, PPY, jackknife=True, seed=11)
    assert np.allclose(res.resamples, cls(blen, x, seed=11).apply(_sharpe, 400), rtol=1e-12, atol=1e-12)
    assert np.allclose(res.estimate, _sharpe(x), rtol=1e-12)
    for interval in ("percentile", "bca"):
        ours = confidence_interval(res, 0.9, interval)  # type: ignore[arg-type]
        for i in range(3):  # arch's BCa acceleration is per statistic for one column at a time
            ref = cls(blen, x[:, i], seed=11).conf_int(_sharpe, 400, method=interval, size=0.9)
            assert ours[i] == pytest.approx(ref.ravel(), rel=1e-10)


def test_indices_equal_arch_sequence() -> None:
    idx = bootstrap_indices(50, 4, 3.5, "stationary", seed=21)
    bs = StationaryBootstrap(3.5, np.arange(50), seed=21)
    for row, (pos, _) in zip(idx, bs.bootstrap(4)):
        assert np.array_equal(row, pos[0])


def test_callable_statistic_equals_arch() -> None:
    x = _ar1(250, 2, 0.1, 0.0003, 0.012, seed=5)
    res = bootstrap(pd.DataFrame(x, columns=["a", "b"]), lambda r: risk.cvar(r, level=0.9), 200, "circular", 5,
                    jackknife=True, seed=2)
    ref = CircularBlockBootstrap(5, x, seed=2).apply(lambda d: risk.cvar(pd.DataFrame(d), level=0.9), 200)
    assert np.allclose(res.resamples, ref, rtol=1e-12)
    jk0 = risk.cvar(np.delete(x, 17, axis=0).T, level=0.9)
    assert np.allclose(res.jackknife[17], jk0, rtol=1e-12)
    sharpe_jk = bootstrap(x, "sharpe", 5, "circular", 5, PPY, jackknife=True).jackknife
    generic_jk = bootstrap(x, lambda r: risk.sharpe_ratio(r, periods_per_year=PPY), 5, "circular", 5,
                           jackknife=True).jackknife
    assert np.allclose(sharpe_jk, generic_jk, rtol=1e-11)
    assert res.columns == ("a", "b")


def test_block_length_is_arch_politis_white_mean() -> None:
    x = _ar1(600, 3, 0.5, 0.0, 0.01, seed=1)
    for method in ("stationary", "circular"):
        assert optimal_block_length(x, method) == pytest.approx(arch_block_length(x)[method].mean())
    ci = bootstrap_ci(x, n_resamples=50, method="circular", seed=1)
    assert ci["block_length"].tolist() == pytest.approx([arch_block_length(x)["circular"].mean()] * 3)


# Coverage: R = 200 independent series (columns, resampled with shared indices) of T = 1000 periods,
# a 90% interval each. Binomial standard error sqrt(0.9 * 0.1 / 200) = 0.0212; the tolerance is 3 of them.
COVER_TOL = 3 * math.sqrt(0.9 * 0.1 / 200)


@pytest.mark.parametrize(
    "phi,method,interval,block",
    [(0.0, "circular", "bca", None), (0.4, "stationary", "percentile", None), (0.4, "circular", "bca", None)],
)
def test_coverage_known_sharpe(phi: float, method: str, interval: str, block: float | None) -> None:
    mu, sig = 0.0006, 0.012
    x = _ar1(1000, 200, phi, mu, sig, seed=17)
    true = mu / (sig / math.sqrt(1 - phi**2)) * math.sqrt(PPY)
    ci = bootstrap_ci(pd.DataFrame(x), level=0.9, interval=interval, n_resamples=1000, method=method,  # type: ignore[arg-type]
                      block_length=block, periods_per_year=PPY, seed=23)
    cover = float(((ci["lower"] <= true) & (true <= ci["upper"])).mean())
    assert abs(cover - 0.9) <= COVER_TOL, cover


def test_iid_resampling_undercovers_ar1() -> None:
    """Block length 1 ignores the autocorrelation: the interval is too short by sqrt((1 - phi) / (1 + phi))."""
    x = _ar1(1000, 200, 0.4, 0.0006, 0.012, seed=17)
    true = 0.0006 / (0.012 / math.sqrt(1 - 0.16)) * math.sqrt(PPY)
    ci = bootstrap_ci(pd.DataFrame(x), level=0.9, n_resamples=1000, method="circular", block_length=1,
                      periods_per_year=PPY, seed=23)
    cover = float(((ci["lower"] <= true) & (true <= ci["upper"])).mean())
    assert cover < 0.9 - COVER_TOL  # expected about 2 Phi(1.645 * sqrt(0.6 / 1.4)) - 1 = 0.72


def test_torch_device_and_frame_output() -> None:
    x = pd.DataFrame(_ar1(120, 2, 0.0, 0.001, 0.01, seed=4), columns=["x", "y"])
    ci = bootstrap_ci(x, level=0.8, n_resamples=300, seed=9, device=torch.device("cpu"), periods_per_year=PPY)
    assert list(ci.index) == ["x", "y"]
    assert (ci["lower"] < ci["estimate"]).all() and (ci["estimate"] < ci["upper"]).all()


def test_bad_input() -> None:
    x = _ar1(100, 2, 0.0, 0.001, 0.01, seed=4)
    with pytest.raises(DataError, match="at least 20"):
        bootstrap_ci(x[:15])
    y = x.copy()
    y[40, 1] = np.nan
    with pytest.raises(DataError, match="column '1'.*row 40"):
        bootstrap_ci(y)
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci(x, level=1.5)
    with pytest.raises(ConfigError, match="interval"):
        bootstrap_ci(x, interval="studentized")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="method"):
        bootstrap_ci(x, method="moving")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="block_length"):
        bootstrap_ci(x, block_length=0.5)
    with pytest.raises(ConfigError, match="reduce the last"):
        bootstrap(x, lambda r: r, 10)
    with pytest.raises(ConfigError, match="jackknife"):
        confidence_interval(bootstrap(x, n_resamples=10), interval="bca")
    with pytest.raises(DataError, match="constant"):
        bootstrap_ci(np.ones((30, 1)))


def test_sharpe_counts_need_full_length_resamples() -> None:
    from gradfolio.stats import resample_statistic

    with pytest.raises(ConfigError, match="T = 30"):
        resample_statistic(np.random.default_rng(0).normal(size=(30, 2)), np.zeros((3, 29), dtype=np.int64))
