"""Block-bootstrap confidence intervals for the Sharpe ratio and any risk measure of a returns batch.

The resampling indices are drawn by the ``arch`` package (:class:`arch.bootstrap.StationaryBootstrap`
of Politis & Romano, or :class:`arch.bootstrap.CircularBlockBootstrap`), so a seed gives exactly
the resamples ``arch`` itself would draw; the block length is chosen from the data by the
automatic rule of Politis & White (2004) with the correction of Patton, Politis & White (2009)
(:func:`arch.bootstrap.optimal_block_length`). The statistic is then evaluated on all resamples
at once, in torch, a chunk of resamples at a time (no Python loop over resamples):

- the Sharpe ratio through the resample counts: a resample's sum and sum of squares are
  ``counts (B, T) @ returns (T, S)``, one matrix product;
- any other statistic ``f(batch (..., T)) -> (...)`` (every :mod:`gradfolio.risk` measure is one)
  on the gathered resamples ``(S, B, T)``.

Intervals: ``"percentile"`` (Efron's percentile interval) and ``"bca"`` (bias-corrected and
accelerated, Efron 1987, acceleration from the leave-one-out jackknife), both as ``arch``'s
``conf_int`` defines them; the values equal ``arch``'s on the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap
from arch.bootstrap import optimal_block_length as _arch_block_length
from scipy import stats as sps

from gradfolio.errors import ConfigError, DataError
from gradfolio.seeding import resolve_device
from gradfolio.stats._inputs import check_choice, check_int, check_level, returns_frame

BlockMethod = Literal["stationary", "circular"]
Interval = Literal["percentile", "bca"]
Statistic = Callable[[torch.Tensor], torch.Tensor]
METHODS: tuple[str, ...] = ("stationary", "circular")
INTERVALS: tuple[str, ...] = ("percentile", "bca")
_CHUNK_BYTES = 64 * 2**20  # memory of one chunk of gathered resamples


def optimal_block_length(returns: pd.DataFrame | pd.Series | np.ndarray, method: BlockMethod = "stationary") -> float:
    """Politis-White automatic block length, averaged over the columns.

    Parameters
    ----------
    returns
        Returns ``(T, S)`` (or ``(T,)``); every column is resampled with the same indices, so
        one block length serves them all: the mean of the columns' estimates.
    method
        ``"stationary"`` (mean block length of the stationary bootstrap) or ``"circular"``.

    Returns
    -------
    float
        At least 1; the circular bootstrap rounds it up to an integer when it draws.
    """
    check_choice(method, "method", METHODS, "optimal_block_length")
    frame = returns_frame(returns, "optimal_block_length")
    table = _arch_block_length(frame.to_numpy())
    return max(1.0, float(table[method].mean()))


def bootstrap_indices(
    n_obs: int,
    n_resamples: int,
    block_length: float,
    method: BlockMethod = "stationary",
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Resampling indices drawn by ``arch``: shape ``(n_resamples, n_obs)``, int64.

    Row ``b`` is the ``b``-th index set ``arch``'s bootstrap of the same class, block length and
    seed yields (``bs.bootstrap(n_resamples)``). Only integers are drawn here, one compiled
    ``arch`` call per resample (about 0.1 ms for 2,500 periods).

    Parameters
    ----------
    n_obs
        Periods ``T``.
    n_resamples
        Resamples ``B``.
    block_length
        Mean block length (stationary) or block length (circular, rounded up to an integer).
    method
        ``"stationary"`` or ``"circular"``.
    seed
        Seed or NumPy generator passed to ``arch``.
    """
    check_choice(method, "method", METHODS, "bootstrap_indices")
    n_obs = check_int(n_obs, "n_obs", 2, "bootstrap_indices")
    n_resamples = check_int(n_resamples, "n_resamples", 1, "bootstrap_indices")
    if not (isinstance(block_length, (int, float)) and 1.0 <= block_length <= n_obs):
        raise ConfigError(f"bootstrap_indices: block_length={block_length!r} must be a number in [1, {n_obs}] (T).")
    dummy = np.empty(n_obs)
    if method == "stationary":
        bs: Any = StationaryBootstrap(float(block_length), dummy, seed=seed)
    else:
        bs = CircularBlockBootstrap(int(math.ceil(block_length)), dummy, seed=seed)
    out = np.empty((n_resamples, n_obs), dtype=np.int64)
    for b in range(n_resamples):  # index draws only; the statistic is batched below
        out[b] = bs.update_indices()
    return out


def _sharpe_from_counts(x: torch.Tensor, counts: torch.Tensor, periods_per_year: float) -> torch.Tensor:
    """Sharpe ``(B, S)`` of the resamples with multiplicities ``counts (B, T)`` of the rows of ``x (T, S)``."""
    n = x.shape[0]
    centre = x.mean(dim=0)
    xc = x - centre
    s1 = counts @ xc
    s2 = counts @ (xc * xc)
    mean = s1 / n
    var = (s2 - n * mean * mean) / (n - 1)
    return (mean + centre) / var.clamp_min(0).sqrt() * math.sqrt(periods_per_year)


def _chunk(n_series: int, n_obs: int) -> int:
    return max(1, _CHUNK_BYTES // (8 * max(1, n_series) * n_obs))


def resample_statistic(
    returns: np.ndarray,
    indices: np.ndarray,
    statistic: Statistic | str = "sharpe",
    periods_per_year: float = 252,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Evaluate ``statistic`` on every resample: ``returns (T, S)``, ``indices (B, T')`` -> ``(B, S)``.

    Parameters
    ----------
    returns
        Returns, float64 ``(T, S)``.
    indices
        Row indices of each resample ``(B, T')`` (``T' = T`` for a bootstrap, ``T - 1`` for a jackknife).
    statistic
        ``"sharpe"`` (annualized, ``ddof=1``, computed from resample counts; needs ``T' = T``) or a
        function of a returns batch ``(S, b, T') -> (S, b)`` in torch.
    periods_per_year
        Annualization of ``"sharpe"``.
    device
        Where the arithmetic runs (CPU by default).
    """
    dev = resolve_device(device)
    x = torch.tensor(np.asarray(returns, dtype=np.float64), device=dev)
    n_obs, n_series = x.shape
    n_res, width = indices.shape
    if statistic == "sharpe" and width != n_obs:
        raise ConfigError(
            f"resample_statistic: statistic='sharpe' needs resamples of T = {n_obs} rows, got {width}; pass a "
            "function (S, B, T') -> (S, B) for other lengths."
        )
    out = torch.empty(n_res, n_series, dtype=torch.float64, device=dev)
    step = _chunk(n_series if callable(statistic) else 1, width)
    for start in range(0, n_res, step):  # chunks of many resamples, to bound memory
        idx = torch.as_tensor(indices[start:start + step], device=dev)
        if statistic == "sharpe":
            counts = torch.zeros(idx.shape[0], n_obs, dtype=torch.float64, device=dev)
            counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
            out[start:start + step] = _sharpe_from_counts(x, counts, periods_per_year)
        else:
            batch = x.T[:, idx]  # (S, b, T')
            value = torch.as_tensor(statistic(batch), dtype=torch.float64, device=dev)  # type: ignore[operator]
            if value.shape != batch.shape[:2]:
                raise ConfigError(
                    f"resample_statistic: statistic returned shape {tuple(value.shape)} for a batch of shape "
                    f"{tuple(batch.shape)}; it must reduce the last (time) axis, (S, B, T) -> (S, B)."
                )
            out[start:start + step] = value.T
    return out.cpu().numpy()


def _jackknife(returns: np.ndarray, statistic: Statistic | str, periods_per_year: float, device: Any) -> np.ndarray:
    """Leave-one-out values ``(T, S)``: row ``i`` leaves period ``i`` out."""
    n = returns.shape[0]
    if statistic == "sharpe":  # closed form, no (T, T - 1) gather
        x = returns - returns.mean(axis=0)
        s1, s2 = x.sum(axis=0), (x * x).sum(axis=0)
        m = (s1 - x) / (n - 1)
        var = (s2 - x * x - (n - 1) * m * m) / (n - 2)
        return (m + returns.mean(axis=0)) / np.sqrt(var) * math.sqrt(periods_per_year)
    loo = np.arange(n - 1)[None, :] + (np.arange(n - 1)[None, :] >= np.arange(n)[:, None])  # (T, T - 1)
    return resample_statistic(returns, loo, statistic, periods_per_year, device)


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap distribution of a statistic for ``S`` strategies.

    Attributes
    ----------
    estimate
        The statistic on the data, ``(S,)``.
    resamples
        The statistic on every resample, ``(B, S)``.
    jackknife
        Leave-one-out values ``(T, S)`` (for BCa), or ``None`` when not computed.
    block_length
        Block length used (mean block length for the stationary bootstrap).
    method
        ``"stationary"`` or ``"circular"``.
    columns
        Strategy names, length ``S``.
    """

    estimate: np.ndarray
    resamples: np.ndarray
    jackknife: np.ndarray | None
    block_length: float
    method: str
    columns: tuple[str, ...]


def bootstrap(
    returns: pd.DataFrame | pd.Series | np.ndarray,
    statistic: Statistic | str = "sharpe",
    n_resamples: int = 10_000,
    method: BlockMethod = "stationary",
    block_length: float | None = None,
    periods_per_year: float = 252,
    jackknife: bool = False,
    seed: int | np.random.Generator | None = 0,
    device: str | torch.device | None = None,
) -> BootstrapResult:
    """Block-bootstrap distribution of ``statistic`` for every column of ``returns (T, S)``.

    All columns are resampled with the same indices (the dependence between strategies is kept).

    Parameters
    ----------
    returns
        Returns ``(T, S)``, no NaN, ``T >= 20``.
    statistic
        ``"sharpe"`` or a torch function ``(S, B, T) -> (S, B)`` (e.g. ``lambda r: risk.cvar(r, 0.9)``).
    n_resamples
        Resamples ``B``.
    method
        ``"stationary"`` or ``"circular"``.
    block_length
        ``None``: :func:`optimal_block_length` of ``returns``.
    periods_per_year
        Annualization of ``"sharpe"``.
    jackknife
        Also compute the leave-one-out values (needed by BCa intervals).
    seed
        Seed of the index draws.
    device
        Where the statistic is evaluated.
    """
    where = "bootstrap"
    check_choice(method, "method", METHODS, where)
    if not (callable(statistic) or statistic == "sharpe"):
        raise ConfigError(f"{where}: statistic={statistic!r} must be 'sharpe' or a function (S, B, T) -> (S, B).")
    if not (isinstance(periods_per_year, (int, float)) and 0 < periods_per_year < math.inf):
        raise ConfigError(f"{where}: periods_per_year={periods_per_year!r} must be > 0 (252 for daily returns).")
    frame = returns_frame(returns, where)
    values = frame.to_numpy()
    blen = optimal_block_length(frame, method) if block_length is None else block_length
    idx = bootstrap_indices(len(frame), n_resamples, blen, method, seed)
    whole = np.arange(len(frame))[None, :]
    estimate = resample_statistic(values, whole, statistic, periods_per_year, device)[0]
    resamples = resample_statistic(values, idx, statistic, periods_per_year, device)
    jk = _jackknife(values, statistic, periods_per_year, device) if jackknife else None
    return BootstrapResult(estimate, resamples, jk, float(blen), method, tuple(frame.columns))


def _bca_percentiles(result: BootstrapResult, alpha: float) -> np.ndarray:
    """BCa percentiles ``(S, 2)`` in ``[0, 100]``, as ``arch``'s ``conf_int(method="bca")``."""
    if result.jackknife is None:
        raise ConfigError("confidence_interval: interval='bca' needs bootstrap(..., jackknife=True).")
    p = (result.resamples < result.estimate).mean(axis=0)
    if p.min() <= 0.0 or p.max() >= 1.0:
        col = result.columns[int(np.argmin(np.minimum(p, 1 - p)))]
        raise DataError(
            f"confidence_interval: column {col!r}: every resample lies on one side of the estimate, so the BCa "
            "bias correction is undefined; use interval='percentile'."
        )
    z0 = sps.norm.ppf(p)[:, None]
    u = result.jackknife.mean(axis=0) - result.jackknife
    accel = ((u**3).sum(axis=0) / (6 * (u**2).sum(axis=0) ** 1.5))[:, None]
    z = sps.norm.ppf([alpha, 1 - alpha])[None, :]
    return 100 * sps.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))


def confidence_interval(result: BootstrapResult, level: float = 0.95, interval: Interval = "percentile") -> np.ndarray:
    """Two-sided interval ``(S, 2)`` (lower, upper) from a :class:`BootstrapResult`.

    ``"percentile"``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resamples
    (linear interpolation, ``numpy.percentile``). ``"bca"``: Efron's bias-corrected and
    accelerated percentiles ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` with
    ``z0 = Phi^-1(P*(theta* < theta_hat))`` and the jackknife acceleration
    ``a = sum u^3 / (6 (sum u^2)^1.5)``, ``u = mean(theta_(i)) - theta_(i)``.
    """
    check_level(level, where="confidence_interval")
    check_choice(interval, "interval", INTERVALS, "confidence_interval")
    alpha = (1 - level) / 2
    n_series = result.resamples.shape[1]
    if interval == "percentile":
        pct = np.tile([100 * alpha, 100 * (1 - alpha)], (n_series, 1))
    else:
        pct = _bca_percentiles(result, alpha)
    return np.stack([np.percentile(result.resamples[:, i], pct[i]) for i in range(n_series)])


def bootstrap_ci(
    returns: pd.DataFrame | pd.Series | np.ndarray,
    statistic: Statistic | str = "sharpe",
    level: float = 0.95,
    interval: Interval = "percentile",
    n_resamples: int = 10_000,
    method: BlockMethod = "stationary",
    block_length: float | None = None,
    periods_per_year: float = 252,
    seed: int | np.random.Generator | None = 0,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Estimate and block-bootstrap confidence interval of ``statistic`` per strategy.

    ``returns (T, S)`` -> DataFrame indexed by strategy with columns ``estimate``, ``lower``,
    ``upper``, ``block_length``. Parameters as :func:`bootstrap` and :func:`confidence_interval`.
    """
    check_level(level, where="bootstrap_ci")
    check_choice(interval, "interval", INTERVALS, "bootstrap_ci")
    res = bootstrap(returns, statistic, n_resamples, method, block_length, periods_per_year,
                    jackknife=interval == "bca", seed=seed, device=device)
    ci = confidence_interval(res, level, interval)
    return pd.DataFrame(
        {"estimate": res.estimate, "lower": ci[:, 0], "upper": ci[:, 1], "block_length": res.block_length},
        index=pd.Index(res.columns, name="strategy"),
    )


__all__ = [
    "BootstrapResult",
    "optimal_block_length",
    "bootstrap_indices",
    "resample_statistic",
    "bootstrap",
    "confidence_interval",
    "bootstrap_ci",
]
