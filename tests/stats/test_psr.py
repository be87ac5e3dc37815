"""PSR, DSR and MinTRL against their closed forms (scipy.stats.norm) and a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradfolio import ConfigError, DataError
from gradfolio.stats import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    sharpe_statistics,
    trial_sharpe_variance,
)


def test_psr_closed_form_with_skew_and_kurtosis() -> None:
    sr, T, g3, g4, sr0 = 0.1, 250, -0.7, 5.3, 0.02
    expected = sps.norm.cdf((sr - sr0) * math.sqrt(T - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert probabilistic_sharpe_ratio(sr, T, g3, g4, sr0) == pytest.approx(expected, rel=1e-14)
    # normal returns, zero benchmark: Phi(SR sqrt(T - 1) / sqrt(1 + SR^2 / 2))
    assert probabilistic_sharpe_ratio(0.05, 400) == pytest.approx(
        sps.norm.cdf(0.05 * math.sqrt(399) / math.sqrt(1 + 0.05**2 / 2)), rel=1e-14)
    # negative skew and fat tails lower the PSR of a positive Sharpe
    assert probabilistic_sharpe_ratio(sr, T, g3, g4) < probabilistic_sharpe_ratio(sr, T, 0.0, 3.0)
    vec = probabilistic_sharpe_ratio(np.array([0.1, -0.03]), np.array([250, 600]), np.array([-0.7, 0.4]),
                                     np.array([5.3, 3.6]))
    assert vec[1] == pytest.approx(sps.norm.cdf(-0.03 * math.sqrt(599) / math.sqrt(1 + 0.4 * 0.03 + 2.6 / 4 * 0.0009)))


def test_expected_max_and_dsr_by_hand() -> None:
    n, var = 37, 0.0023
    gamma = 0.5772156649015329
    e_max = math.sqrt(var) * ((1 - gamma) * sps.norm.ppf(1 - 1 / n) + gamma * sps.norm.ppf(1 - 1 / (n * math.e)))
    assert expected_max_sharpe(n, var) == pytest.approx(e_max, rel=1e-14)
    assert expected_max_sharpe(n, var, mean_trials=0.01) == pytest.approx(0.01 + e_max, rel=1e-14)
    assert expected_max_sharpe(1, var) == 0.0
    sr, T, g3, g4 = 0.12, 1260, -0.4, 4.1
    dsr = sps.norm.cdf((sr - e_max) * math.sqrt(T - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert deflated_sharpe_ratio(sr, T, n, var, g3, g4) == pytest.approx(dsr, rel=1e-13)
    # more trials deflate more
    assert deflated_sharpe_ratio(sr, T, 500, var, g3, g4) < deflated_sharpe_ratio(sr, T, n, var, g3, g4)


def test_min_track_record_length_reaches_the_level() -> None:
    sr, g3, g4, sr0, level = 0.08, 0.3, 6.2, 0.01, 0.9
    trl = min_track_record_length(sr, g3, g4, sr0, level)
    expected = 1 + (1 - g3 * sr + (g4 - 1) / 4 * sr**2) * (sps.norm.ppf(level) / (sr - sr0)) ** 2
    assert trl == pytest.approx(expected, rel=1e-14)
    assert probabilistic_sharpe_ratio(sr, trl, g3, g4, sr0) == pytest.approx(level, rel=1e-12)
    assert min_track_record_length(0.01, sr_benchmark=0.02) == math.inf


def test_sharpe_statistics_and_trial_variance() -> None:
    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.standard_t(5, (800, 4)) * 0.01 + 0.0004, columns=list("abcd"))
    st = sharpe_statistics(x)
    assert st.loc["c", "sharpe"] == pytest.approx(x["c"].mean() / x["c"].std(ddof=1))
    assert st.loc["c", "skew"] == pytest.approx(sps.skew(x["c"]))
    assert st.loc["c", "kurtosis"] == pytest.approx(sps.kurtosis(x["c"], fisher=False))
    assert st.loc["c", "n_obs"] == 800
    assert trial_sharpe_variance(x) == pytest.approx(np.var(x.mean() / x.std(ddof=1), ddof=1))


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="Pearson kurtosis"):
        probabilistic_sharpe_ratio(0.5, 100, 0.0, -1.0)
    with pytest.raises(ConfigError, match="n_obs"):
        probabilistic_sharpe_ratio(0.1, 1)
    with pytest.raises(ConfigError, match="n_trials"):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(ConfigError, match="var_trials"):
        expected_max_sharpe(5, -0.1)
    with pytest.raises(ConfigError, match="level"):
        min_track_record_length(0.1, level=0.0)
    with pytest.raises(ConfigError, match="2 trials"):
        trial_sharpe_variance(np.random.default_rng(0).normal(size=(50, 1)))
    with pytest.raises(DataError, match="NaN"):
        sharpe_statistics(pd.DataFrame({"a": [0.1] * 10 + [np.nan] + [0.2] * 20}))
