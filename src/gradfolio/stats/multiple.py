"""Many strategies at once: Hansen's SPA test and the model confidence set, through ``arch``.

- :func:`spa_test`: "A test for superior predictive ability" (Hansen, Journal of Business &
  Economic Statistics, 2005), :class:`arch.bootstrap.SPA`. Null: no strategy has a lower expected
  loss than the benchmark. Lower, consistent and upper p-values; the strategies whose loss is
  significantly below the benchmark's (``better_models``).
- :func:`model_confidence_set`: "The model confidence set" (Hansen, Lunde & Nason,
  Econometrica, 2011), :class:`arch.bootstrap.MCS`: the set of strategies that contains the best
  one (lowest expected loss) with probability ``1 - size``, with each strategy's MCS p-value.

Losses are ``-returns`` (lower is better, so the loss ranks mean returns) unless ``loss`` maps
the returns ``(T, S)`` to a loss table of the same shape (e.g. ``lambda r: r**2`` or a rolling
drawdown). The block length is the Politis-White one of the losses (``"auto"``) or an integer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from arch.bootstrap import MCS, SPA
from arch.bootstrap import optimal_block_length as _arch_block_length

from gradfolio.errors import ConfigError, DataError
from gradfolio.stats._inputs import check_benchmark, check_choice, check_int, check_level, returns_frame

Loss = Callable[[pd.DataFrame], pd.DataFrame]
ArchBootstrap = Literal["stationary", "circular"]


def losses_from_returns(returns: pd.DataFrame, loss: Loss | None, where: str) -> pd.DataFrame:
    """``-returns`` or ``loss(returns)``, checked to be a finite ``(T, S)`` table with the same columns."""
    frame = returns_frame(returns, where)
    if loss is None:
        return -frame
    out = loss(frame)
    if not isinstance(out, pd.DataFrame) or out.shape != frame.shape or list(out.columns) != list(frame.columns):
        raise ConfigError(
            f"{where}: loss must map the returns DataFrame {frame.shape} to a DataFrame of the same shape and "
            f"columns, got {type(out).__name__} {getattr(out, 'shape', '')}."
        )
    if not np.isfinite(out.to_numpy(dtype=np.float64)).all():
        raise DataError(f"{where}: loss(returns) has NaN or infinite values; make the loss finite on every row.")
    return out.astype(np.float64)


def _block_size(losses: pd.DataFrame, block_length: int | str, method: str, where: str) -> int:
    if block_length == "auto":
        return max(1, int(math.ceil(_arch_block_length(losses.to_numpy())[method].mean())))
    return check_int(block_length, "block_length", 1, where)


@dataclass(frozen=True)
class SPAResult:
    """Result of :func:`spa_test`.

    Attributes
    ----------
    pvalues
        ``lower``, ``consistent`` and ``upper`` p-values of the null "no strategy beats the benchmark".
    strategies
        One row per non-benchmark strategy: ``mean_loss_diff`` (benchmark loss minus strategy
        loss, averaged; positive = better than the benchmark) and ``better`` (rejected as
        equal-or-worse at ``size`` with the consistent p-value).
    benchmark, size, block_length
        As used.
    """

    pvalues: pd.Series
    strategies: pd.DataFrame
    benchmark: str
    size: float
    block_length: int


def spa_test(
    returns: pd.DataFrame,
    benchmark: str = "equal_weight",
    loss: Loss | None = None,
    size: float = 0.05,
    n_resamples: int = 1_000,
    bootstrap: ArchBootstrap = "stationary",
    block_length: int | str = "auto",
    studentize: bool = True,
    nested: bool = False,
    seed: int | None = 0,
) -> SPAResult:
    """Hansen's SPA test of every strategy against ``benchmark`` (``arch.bootstrap.SPA``).

    Parameters
    ----------
    returns
        Returns ``(T, S)`` with the benchmark among the columns.
    benchmark
        Benchmark column.
    loss
        ``None`` (``-returns``) or a map from the returns ``(T, S)`` to losses ``(T, S)``.
    size
        Test size for ``better``, in ``(0, 1)``.
    n_resamples, bootstrap, block_length, studentize, nested, seed
        Passed to ``arch`` (``block_length="auto"``: Politis-White of the losses, rounded up).
    """
    where = "spa_test"
    frame = returns_frame(returns, where)
    check_benchmark(frame, benchmark, where)
    check_level(size, "size", where)
    check_choice(bootstrap, "bootstrap", ("stationary", "circular"), where)
    n_resamples = check_int(n_resamples, "n_resamples", 1, where)
    if frame.shape[1] < 2:
        raise ConfigError(f"{where}: returns need the benchmark and at least one other strategy column.")
    losses = losses_from_returns(frame, loss, where)
    block = _block_size(losses, block_length, bootstrap, where)
    others = [c for c in losses.columns if c != benchmark]
    spa = SPA(losses[benchmark], losses[others], block_size=block, reps=n_resamples, bootstrap=bootstrap,
              studentize=studentize, nested=nested, seed=seed)
    spa.compute()
    better = {others[int(i)] for i in np.atleast_1d(spa.better_models(size, "consistent"))}
    diff = (losses[benchmark].to_numpy()[:, None] - losses[others].to_numpy()).mean(axis=0)
    table = pd.DataFrame({"mean_loss_diff": diff, "better": [c in better for c in others]},
                         index=pd.Index(others, name="strategy"))
    pvalues = pd.Series(spa.pvalues, dtype=np.float64)
    return SPAResult(pvalues, table, benchmark, float(size), block)


def model_confidence_set(
    returns: pd.DataFrame,
    loss: Loss | None = None,
    size: float = 0.1,
    n_resamples: int = 1_000,
    method: Literal["R", "max"] = "R",
    bootstrap: ArchBootstrap = "stationary",
    block_length: int | str = "auto",
    seed: int | None = 0,
) -> pd.DataFrame:
    """Model confidence set of the strategies (``arch.bootstrap.MCS``).

    ``returns (T, S)`` -> DataFrame indexed by strategy (in the column order) with ``pvalue`` (the
    MCS p-value) and ``included`` (``pvalue > size``). ``method`` is ``arch``'s statistic:
    ``"R"`` (range) or ``"max"``; other parameters as :func:`spa_test`.
    """
    where = "model_confidence_set"
    frame = returns_frame(returns, where)
    check_level(size, "size", where)
    check_choice(bootstrap, "bootstrap", ("stationary", "circular"), where)
    check_choice(method, "method", ("R", "max"), where)
    n_resamples = check_int(n_resamples, "n_resamples", 1, where)
    if frame.shape[1] < 2:
        raise ConfigError(f"{where}: returns need at least two strategy columns.")
    losses = losses_from_returns(frame, loss, where)
    block = _block_size(losses, block_length, bootstrap, where)
    mcs = MCS(losses, size, reps=n_resamples, block_size=block, method=method, bootstrap=bootstrap, seed=seed)
    mcs.compute()
    pv = mcs.pvalues["Pvalue"].reindex(losses.columns).astype(np.float64)
    return pd.DataFrame({"pvalue": pv.to_numpy(), "included": (pv > size).to_numpy()},
                        index=pd.Index(losses.columns, name="strategy"))


__all__ = ["SPAResult", "spa_test", "model_confidence_set", "losses_from_returns"]
