"""compare(): each column is the matching component function's value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gradfolio import ConfigError, DataError
from gradfolio.stats import compare, deflated_sharpe_ratio, probabilistic_sharpe_ratio, sharpe_difference_test
from gradfolio.stats._inputs import child_seeds
from gradfolio.stats.bootstrap import bootstrap_ci
from gradfolio.stats.multiple import model_confidence_set, spa_test
from gradfolio.stats.psr import sharpe_statistics


def _returns() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    df = pd.DataFrame(rng.normal(0.0003, 0.01, (600, 4)), columns=["bench", "x", "y", "z"])
    df["x"] += 0.0012
    return df


def test_columns_equal_components() -> None:
    df = _returns()
    out = compare(df, "bench", level=0.9, n_trials=31, trial_sharpe_var=0.0009, n_resamples=400,
                  method="circular", interval="bca", test="bootstrap", kernel="qs", n_multiple_resamples=150,
                  periods_per_year=12, seed=4)
    s_boot, s_test, s_spa, s_mcs = child_seeds(4, 4)
    ci = bootstrap_ci(df, "sharpe", 0.9, "bca", 400, "circular", None, 12, s_boot)
    assert out["sharpe_lower"].to_numpy() == pytest.approx(ci["lower"].to_numpy(), rel=1e-12)
    assert out["sharpe"].to_numpy() == pytest.approx((df.mean() / df.std() * np.sqrt(12)).to_numpy())
    lw = sharpe_difference_test(df["y"], df["bench"], "bootstrap", 0.9, kernel="qs", n_resamples=400,
                                periods_per_year=12, seed=s_test)
    assert out.loc["y", ["diff", "diff_se", "diff_lower", "diff_upper", "diff_pvalue"]].tolist() == pytest.approx(
        [lw.difference, lw.std_error, lw.lower, lw.upper, lw.pvalue], rel=1e-12)
    assert np.isnan(out.loc["bench", "diff_pvalue"])
    st = sharpe_statistics(df)
    assert out.loc["z", "psr"] == pytest.approx(probabilistic_sharpe_ratio(
        st.loc["z", "sharpe"], 600, st.loc["z", "skew"], st.loc["z", "kurtosis"]))
    assert out.loc["x", "dsr"] == pytest.approx(deflated_sharpe_ratio(
        st.loc["x", "sharpe"], 600, 31, 0.0009, st.loc["x", "skew"], st.loc["x", "kurtosis"]))
    spa = spa_test(df, "bench", None, 0.1, 150, "circular", seed=s_spa)
    assert out.loc[["x", "y", "z"], "spa_better"].tolist() == spa.strategies["better"].tolist()
    assert out.attrs["spa_pvalues"] == spa.pvalues.to_dict()
    mcs = model_confidence_set(df, None, 0.1, 150, bootstrap="circular", seed=s_mcs)
    assert out["mcs_pvalue"].tolist() == mcs["pvalue"].tolist()
    assert out.loc["x", "diff"] > 0 and out.loc["x", "diff_pvalue"] < 0.05


def test_default_trials_are_the_columns() -> None:
    df = _returns()
    out = compare(df, "bench", n_resamples=100, n_multiple_resamples=50, seed=1)
    st = sharpe_statistics(df)
    var = float(st["sharpe"].var(ddof=1))
    assert out.attrs["n_trials"] == 4 and out.attrs["trial_sharpe_var"] == pytest.approx(var)
    assert out.loc["y", "dsr"] == pytest.approx(deflated_sharpe_ratio(
        st.loc["y", "sharpe"], 600, 4, var, st.loc["y", "skew"], st.loc["y", "kurtosis"]))


def test_bad_input() -> None:
    df = _returns()
    with pytest.raises(ConfigError, match="benchmark='equal_weight' is not a column.*'bench'"):
        compare(df)
    with pytest.raises(ConfigError, match="level=0.0"):
        compare(df, "bench", level=0.0)
    with pytest.raises(DataError, match="at least 20"):
        compare(df.iloc[:12], "bench")
    with pytest.raises(ConfigError, match="at least one other"):
        compare(df[["bench"]], "bench")
