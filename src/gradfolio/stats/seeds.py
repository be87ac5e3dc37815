"""Results over several training seeds: mean and Student t interval, paired differences.

A learned strategy's result depends on its training seed (initialisation, minibatches,
exploration); a claim about it is a claim about the distribution over seeds. For ``n`` seeds
with values ``x_1..x_n`` of a metric the reported number is the mean and the half-width of the
95% Student t interval ``t_{0.975, n-1} s / sqrt(n)`` (``s`` the sample standard deviation;
4.30 for n = 3, 2.78 for n = 5). Two strategies evaluated on the same data per seed are compared
by the t interval of their per-seed difference (paired), significant when it excludes 0.
Used by both pillars' ``--seeds`` runs (hedging agents, allocation networks and agents).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from scipy.stats import t as student_t

from gradfolio.errors import ConfigError

LEVEL = 0.95


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """Two or more distinct seeds ``>= 0`` as ints, else a ConfigError naming ``--seeds``."""
    out = [int(s) for s in seeds]
    if len(out) < 2 or len(set(out)) != len(out) or min(out) < 0:
        raise ConfigError(f"--seeds {' '.join(map(str, out))}: pass two or more distinct seeds >= 0, e.g. --seeds '0 1 2'.")
    return out


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """``(mean, half_width)`` of the Student t interval of the mean of ``values`` (``n >= 2``).

    ``half_width = t_{(1 + level) / 2, n - 1} * std(values, ddof=1) / sqrt(n)``.
    """
    n = len(values)
    if n < 2:
        raise ConfigError(f"t_interval: {n} value(s); a t interval needs >= 2 seeds (pass --seeds with two or more).")
    if all(v == values[0] for v in values):  # exactly 0, not the rounding of fsum(values) / n
        return float(values[0]), 0.0
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(student_t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def seed_summary(per_seed: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Mean and t half-width over seeds of every metric.

    Parameters
    ----------
    per_seed
        Long table with columns ``seed``, ``strategy`` and one column per metric (``seeds.csv``).

    Returns
    -------
    One row per strategy (in order of appearance), columns ``<metric>`` (mean) and
    ``<metric>_ci`` (half-width) for each metric, and ``n_seeds``.
    """
    metrics = [c for c in per_seed.columns if c not in ("seed", "strategy")]
    rows = {}
    for strategy, group in per_seed.groupby("strategy", sort=False):
        row: dict[str, float] = {}
        for m in metrics:
            row[m], row[f"{m}_ci"] = t_interval(group[m].tolist(), level)
        row["n_seeds"] = float(len(group))
        rows[strategy] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("strategy")


def paired_differences(
    per_seed: pd.DataFrame, agent: str, baselines: Sequence[str], metrics: Sequence[str] = ("mean_std", "cvar_95"),
    level: float = LEVEL,
) -> pd.DataFrame:
    """``agent`` minus each baseline, seed by seed (the same test data): mean, t half-width, significance.

    ``per_seed`` is the long table of :func:`seed_summary` (``seed``, ``strategy``, metrics);
    ``agent`` is any strategy in it (a hedging agent, an allocation network).

    Returns
    -------
    Rows ``(baseline, metric)`` with ``diff`` (mean of ``agent - baseline``), ``ci`` (half-width),
    ``significant`` (the interval excludes 0).
    """
    table = per_seed.pivot(index="seed", columns="strategy")
    rows = []
    for base in baselines:
        for m in metrics:
            diff = (table[(m, agent)] - table[(m, base)]).tolist()
            mean, ci = t_interval(diff, level)
            rows.append({"baseline": base, "metric": m, "diff": mean, "ci": ci, "significant": abs(mean) > ci})
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``mean ± half-width`` strings per metric (the markdown table of ``summary.md``)."""
    metrics = [c for c in summary.columns if not c.endswith("_ci") and c != "n_seeds"]
    return pd.DataFrame({m: [f"{v:.{digits}f} ± {h:.{digits}f}" for v, h in zip(summary[m], summary[f"{m}_ci"], strict=True)]
                         for m in metrics}, index=summary.index)




__all__ = ["LEVEL", "check_seeds", "t_interval", "seed_summary", "paired_differences", "format_summary"]
