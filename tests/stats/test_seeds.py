"""Mean and Student t interval over seeds, paired differences: against SciPy's t interval and paired t-test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradfolio.errors import ConfigError
from gradfolio.stats import format_summary, paired_differences, seed_summary, t_interval
from gradfolio.experiments.outputs import markdown_table


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_t_interval_equals_scipy(level: float) -> None:
    values = [0.41, -0.13, 0.97, 0.22, 0.05]
    mean, half = t_interval(values, level)
    lo, hi = sps.t.interval(level, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert mean == pytest.approx(np.mean(values), abs=1e-15)
    assert (mean - half, mean + half) == pytest.approx((lo, hi), abs=1e-12)


def test_equal_values_have_zero_width() -> None:
    v = 0.49543508709194095  # fsum([v] * 3) / 3 != v in floating point
    assert t_interval([v, v, v]) == (v, 0.0)


def test_t_interval_needs_two_values() -> None:
    with pytest.raises(ConfigError, match="needs >= 2 seeds"):
        t_interval([1.0])


def test_summary_and_paired_differences() -> None:
    per_seed = pd.DataFrame({
        "seed": [0, 0, 1, 1, 2, 2],
        "strategy": ["net", "ew", "net", "ew", "net", "ew"],
        "sharpe": [0.9, 0.5, 0.7, 0.5, 1.3, 0.5],
        "ret": [0.10, 0.07, 0.04, 0.07, 0.15, 0.07],
    })
    summary = seed_summary(per_seed)
    assert list(summary.index) == ["net", "ew"]
    assert summary.loc["net", "sharpe"] == pytest.approx(29 / 30)
    assert summary.loc["ew", "sharpe_ci"] == 0.0 and summary.loc["net", "n_seeds"] == 3.0
    diffs = paired_differences(per_seed, "net", ["ew"], ("sharpe", "ret")).set_index("metric")
    d = np.array([0.4, 0.2, 0.8])
    test = sps.ttest_rel([0.9, 0.7, 1.3], [0.5, 0.5, 0.5])
    assert diffs.loc["sharpe", "diff"] == pytest.approx(d.mean())
    assert bool(diffs.loc["sharpe", "significant"]) == (test.pvalue < 0.05)
    assert bool(diffs.loc["ret", "significant"]) is False  # (0.03, -0.03, 0.08): the interval holds 0
    text = markdown_table(format_summary(summary))
    assert "| net | 0.967 ± " in text and "| ew | 0.500 ± 0.000 |" in text
