"""Probabilistic and deflated Sharpe ratios, and the minimum track record length.

Bailey & Lopez de Prado, "The Sharpe ratio efficient frontier" (Journal of Risk, 2012) and
"The deflated Sharpe ratio: correcting for selection bias, backtest overfitting and
non-normality" (Journal of Portfolio Management, 2014). All Sharpe ratios here are **per
period** (not annualized); ``kurtosis`` is the Pearson kurtosis (3 for a normal law).

- ``PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2))``.
- ``E[max_N SR] = mean + sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``,
  ``gamma`` the Euler-Mascheroni constant, ``V`` the variance of the ``N`` trials' Sharpe ratios.
- ``DSR = PSR(E[max_N SR])`` with ``mean = 0``: the probability that the true Sharpe ratio beats
  the best of ``N`` skill-less trials.
- ``MinTRL = 1 + (1 - skew SR + (kurt - 1) / 4 SR^2) (Phi^-1(level) / (SR - SR*))^2`` periods.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from gradfolio.errors import ConfigError
from gradfolio.stats._inputs import check_level, returns_frame

EULER_GAMMA = 0.5772156649015329


def sharpe_statistics(returns: pd.DataFrame | pd.Series | np.ndarray) -> pd.DataFrame:
    """Per-period Sharpe (``ddof=1``), skewness, Pearson kurtosis (population moments) and ``T`` per column.

    ``returns (T, S)`` -> DataFrame ``(S, 4)`` with columns ``sharpe``, ``skew``, ``kurtosis``, ``n_obs``.
    """
    frame = returns_frame(returns, "sharpe_statistics")
    x = frame.to_numpy()
    return pd.DataFrame(
        {
            "sharpe": x.mean(axis=0) / x.std(axis=0, ddof=1),
            "skew": sps.skew(x, axis=0),
            "kurtosis": sps.kurtosis(x, axis=0, fisher=False),
            "n_obs": float(len(x)),
        },
        index=pd.Index(frame.columns, name="strategy"),
    )


def _sr_std(sharpe: Any, skew: Any, kurtosis: Any) -> np.ndarray:
    if np.any(np.asarray(kurtosis) < 1 + np.asarray(skew) ** 2):
        raise ConfigError(
            f"psr: kurtosis={kurtosis!r} is below 1 + skew^2, impossible for a Pearson kurtosis; pass the Pearson "
            "kurtosis (3 for a normal law), not the excess kurtosis."
        )
    var = 1 - np.asarray(skew) * sharpe + (np.asarray(kurtosis) - 1) / 4 * np.asarray(sharpe) ** 2
    if np.any(var <= 0):
        raise ConfigError(
            f"psr: 1 - skew * SR + (kurtosis - 1) / 4 * SR^2 = {var} is not positive; check that kurtosis is the "
            "Pearson kurtosis (3 for a normal law, not the excess kurtosis) and that SR is per period."
        )
    return np.sqrt(var)


def probabilistic_sharpe_ratio(
    sharpe: Any, n_obs: Any, skew: Any = 0.0, kurtosis: Any = 3.0, sr_benchmark: Any = 0.0
) -> Any:
    """Probability that the true per-period Sharpe ratio exceeds ``sr_benchmark`` (broadcasts).

    Parameters
    ----------
    sharpe
        Observed per-period Sharpe ratio(s).
    n_obs
        Periods ``T`` behind each estimate (``> 1``).
    skew, kurtosis
        Skewness and Pearson kurtosis of the returns.
    sr_benchmark
        Per-period Sharpe ratio to beat.
    """
    if np.any(np.asarray(n_obs) <= 1):
        raise ConfigError(f"probabilistic_sharpe_ratio: n_obs={n_obs!r} must be > 1 (periods behind the Sharpe).")
    z = (np.asarray(sharpe) - sr_benchmark) * np.sqrt(np.asarray(n_obs) - 1.0) / _sr_std(sharpe, skew, kurtosis)
    out = sps.norm.cdf(z)
    return float(out) if np.ndim(out) == 0 else out


def expected_max_sharpe(n_trials: int, var_trials: float, mean_trials: float = 0.0) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios with variance ``var_trials`` (False Strategy Theorem)."""
    if not (isinstance(n_trials, (int, np.integer)) and n_trials >= 1):
        raise ConfigError(f"expected_max_sharpe: n_trials={n_trials!r} must be an integer >= 1 (configurations tried).")
    if not var_trials >= 0:
        raise ConfigError(f"expected_max_sharpe: var_trials={var_trials!r} must be >= 0 (variance of trial Sharpes).")
    if n_trials == 1:
        return float(mean_trials)
    q = (1 - EULER_GAMMA) * sps.norm.ppf(1 - 1 / n_trials) + EULER_GAMMA * sps.norm.ppf(1 - 1 / (n_trials * math.e))
    return float(mean_trials + math.sqrt(var_trials) * q)


def trial_sharpe_variance(trial_returns: pd.DataFrame | np.ndarray) -> float:
    """Variance (``ddof=1``) across trials of the per-period Sharpe ratios of ``trial_returns (T, N)``."""
    sr = sharpe_statistics(trial_returns)["sharpe"].to_numpy()
    if len(sr) < 2:
        raise ConfigError("trial_sharpe_variance: need at least 2 trials (columns) to estimate a variance.")
    return float(sr.var(ddof=1))


def deflated_sharpe_ratio(
    sharpe: Any, n_obs: Any, n_trials: int, var_trials: float, skew: Any = 0.0, kurtosis: Any = 3.0
) -> Any:
    """PSR against the expected maximum Sharpe of ``n_trials`` skill-less trials (per-period values)."""
    sr0 = expected_max_sharpe(n_trials, var_trials)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, sr0)


def min_track_record_length(
    sharpe: Any, skew: Any = 0.0, kurtosis: Any = 3.0, sr_benchmark: Any = 0.0, level: float = 0.95
) -> Any:
    """Periods needed for PSR(``sr_benchmark``) to reach ``level`` (``inf`` where ``sharpe <= sr_benchmark``)."""
    check_level(level, where="min_track_record_length")
    gap = np.asarray(sharpe, dtype=np.float64) - sr_benchmark
    with np.errstate(divide="ignore"):
        out = 1 + _sr_std(sharpe, skew, kurtosis) ** 2 * (sps.norm.ppf(level) / gap) ** 2
    out = np.where(gap > 0, out, np.inf)
    return float(out) if np.ndim(out) == 0 else out


__all__ = [
    "EULER_GAMMA",
    "sharpe_statistics",
    "probabilistic_sharpe_ratio",
    "expected_max_sharpe",
    "trial_sharpe_variance",
    "deflated_sharpe_ratio",
    "min_track_record_length",
]
