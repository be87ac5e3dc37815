"""One call: every strategy against a benchmark (Sharpe CI, Ledoit-Wolf test, PSR, DSR, SPA, MCS)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from gradfolio.errors import ConfigError
from gradfolio.stats._inputs import check_benchmark, check_level, child_seeds, returns_frame
from gradfolio.stats.bootstrap import BlockMethod, Interval, bootstrap_ci
from gradfolio.stats.multiple import Loss, model_confidence_set, spa_test
from gradfolio.stats.psr import deflated_sharpe_ratio, probabilistic_sharpe_ratio, sharpe_statistics
from gradfolio.stats.sharpe_test import Kernel, sharpe_difference_test


def compare(
    returns: pd.DataFrame,
    benchmark: str = "equal_weight",
    level: float = 0.95,
    n_trials: int | None = None,
    trial_sharpe_var: float | None = None,
    n_resamples: int = 10_000,
    method: BlockMethod = "stationary",
    interval: Interval = "percentile",
    test: Literal["hac", "bootstrap"] = "hac",
    kernel: Kernel = "parzen",
    loss: Loss | None = None,
    n_multiple_resamples: int = 1_000,
    periods_per_year: float = 252,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Per-strategy inference table against ``benchmark``.

    Parameters
    ----------
    returns
        Simple returns ``(T, S)``, one column per strategy, the benchmark among them.
    benchmark
        Benchmark column (default ``"equal_weight"``, the 1/N portfolio).
    level
        Confidence level of the intervals; the SPA and MCS use size ``1 - level``.
    n_trials
        Configurations tried before choosing these strategies, for the DSR (``None``: ``S``).
    trial_sharpe_var
        Variance of the per-period Sharpe ratios across all trials (``None``: across the columns).
    n_resamples, method, interval
        Sharpe bootstrap (:func:`~gradfolio.stats.bootstrap.bootstrap_ci`).
    test, kernel
        Ledoit-Wolf test version and HAC kernel (:func:`~gradfolio.stats.sharpe_test.sharpe_difference_test`);
        the bootstrap version draws ``min(n_resamples, 5000)`` resamples.
    loss, n_multiple_resamples
        Loss and resamples of the SPA test and the MCS.
    periods_per_year
        Annualization of the Sharpe ratios and their differences (PSR/DSR are scale free).
    seed
        One seed; each procedure gets its own stream derived from it.

    Returns
    -------
    DataFrame ``(S, 14)`` indexed by strategy: ``sharpe``, ``sharpe_lower``, ``sharpe_upper``
    (bootstrap), ``diff``, ``diff_se``, ``diff_lower``, ``diff_upper``, ``diff_pvalue`` (Sharpe minus
    the benchmark's, Ledoit-Wolf; NaN on the benchmark row), ``psr`` (vs a zero Sharpe), ``dsr``,
    ``spa_better`` (significantly lower loss than the benchmark), ``mcs_pvalue``, ``mcs_included``,
    ``block_length``.
    """
    where = "compare"
    frame = returns_frame(returns, where)
    check_benchmark(frame, benchmark, where)
    check_level(level, where=where)
    if frame.shape[1] < 2:
        raise ConfigError(f"{where}: returns need the benchmark and at least one other strategy column.")
    s_boot, s_test, s_spa, s_mcs = child_seeds(seed, 4)
    ci = bootstrap_ci(frame, "sharpe", level, interval, n_resamples, method, None, periods_per_year, s_boot)
    out = pd.DataFrame({"sharpe": ci["estimate"], "sharpe_lower": ci["lower"], "sharpe_upper": ci["upper"]})
    cols = ["diff", "diff_se", "diff_lower", "diff_upper", "diff_pvalue"]
    out[cols] = np.nan
    for name in frame.columns:  # one test per pair (S - 1 of them), each batched inside
        if name == benchmark:
            continue
        res = sharpe_difference_test(frame[name], frame[benchmark], test, level, kernel=kernel,
                                     n_resamples=min(n_resamples, 5_000), periods_per_year=periods_per_year,
                                     seed=s_test)
        out.loc[name, cols] = [res.difference, res.std_error, res.lower, res.upper, res.pvalue]
    st = sharpe_statistics(frame)
    n_trials = frame.shape[1] if n_trials is None else n_trials
    var = float(st["sharpe"].var(ddof=1)) if trial_sharpe_var is None else trial_sharpe_var
    out["psr"] = probabilistic_sharpe_ratio(st["sharpe"].to_numpy(), st["n_obs"].to_numpy(),
                                            st["skew"].to_numpy(), st["kurtosis"].to_numpy())
    out["dsr"] = deflated_sharpe_ratio(st["sharpe"].to_numpy(), st["n_obs"].to_numpy(), n_trials, var,
                                       st["skew"].to_numpy(), st["kurtosis"].to_numpy())
    size = 1 - level
    spa = spa_test(frame, benchmark, loss, size, n_multiple_resamples, method, seed=s_spa)
    out["spa_better"] = pd.Series(spa.strategies["better"], dtype=object).reindex(out.index)
    mcs = model_confidence_set(frame, loss, size, n_multiple_resamples, bootstrap=method, seed=s_mcs)
    out["mcs_pvalue"] = mcs["pvalue"]
    out["mcs_included"] = mcs["included"]
    out["block_length"] = ci["block_length"]
    out.attrs.update(benchmark=benchmark, level=level, n_trials=n_trials, trial_sharpe_var=var,
                     spa_pvalues=spa.pvalues.to_dict(), periods_per_year=periods_per_year,
                     annualization=math.sqrt(periods_per_year))
    return out


__all__ = ["compare"]
