"""Risk and performance measures used everywhere in gradfolio.

One implementation serves both worlds: every measure accepts a torch tensor (differentiable,
batched, any device and dtype) or a NumPy array / pandas object (computed in float64 and
returned as NumPy, or as a Python ``float`` for a single series). Measures reduce the **last
axis**, which is time: ``returns`` of shape ``(..., T)`` give a result of shape ``(...)``. A
DataFrame is read as ``(time, assets)``: a measure gives one value per column, and
:func:`drawdowns` gives a ``(time, assets)`` array. Weights (:func:`turnover`,
:func:`portfolio_returns`) have assets on the last axis, so a DataFrame of weights is
``(dates, assets)`` as it stands.

Conventions
-----------
- Returns are simple (arithmetic) period returns, e.g. daily ``R_t = P_t / P_{t-1} - 1``.
- Volatility uses the sample standard deviation (``ddof=1``), as empyrical and skfolio do.
- Annualization multiplies means by ``periods_per_year`` and deviations by its square root;
  pass ``periods_per_year=1`` for per-period values (what the training losses use).
- Loss measures (drawdown, VaR, CVaR) are reported as **positive** fractions of wealth.
- VaR and CVaR are the exact historical (discrete) definitions also used by skfolio: VaR is
  the lower ``level``-quantile of the losses; with ``k = (1 - level) * T`` tail observations,
  CVaR averages the worst ``floor(k)`` returns plus the fractional weight of the next one
  (Rockafellar & Uryasev, 2002).

Errors
------
:class:`~gradfolio.errors.DataError` for input that is not numeric or has too few periods (one,
or two for the measures with a standard deviation); :class:`~gradfolio.errors.ConfigError` for
``periods_per_year <= 0``, ``level`` outside ``(0, 1)``, and weights and returns whose shapes or
asset labels do not match.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from gradfolio.errors import ConfigError, DataError

ArrayLike = Any  # torch.Tensor | np.ndarray | pandas.Series | pandas.DataFrame | Sequence[float]
F = TypeVar("F", bound=Callable[..., Any])

TRADING_DAYS = 252


def _to_tensor(x: ArrayLike, name: str, time_last: bool = True) -> torch.Tensor:
    """``x`` as a tensor: NumPy / pandas as float64, a DataFrame ``(time, assets)`` transposed if ``time_last``."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        arr = np.asarray(x.to_numpy() if isinstance(x, (pd.Series, pd.DataFrame)) else x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name}: cannot read the values as numbers ({exc}); pass a numeric array, Series or DataFrame."
        ) from None
    return torch.tensor(arr.T if time_last and isinstance(x, pd.DataFrame) else arr)


def _from_tensor(result: torch.Tensor) -> np.ndarray | float:
    out = result.detach().cpu().numpy()
    return float(out) if out.ndim == 0 else out


def _check_periods(returns: torch.Tensor, least: int, measure: str) -> None:
    periods = returns.shape[-1] if returns.ndim else 0
    if periods < least:
        raise DataError(
            f"returns: {measure} needs at least {least} period(s) on the last axis (time), got shape "
            f"{tuple(returns.shape)}; pass a longer series (a DataFrame is read as (time, assets))."
        )


def array_api(func: F | None = None, *, min_periods: int = 1) -> Any:
    """Let a torch measure of ``returns (..., T)`` also take NumPy / pandas input, and check ``T >= min_periods``.

    NumPy / pandas input is computed in float64 and the result returned as NumPy (a ``float`` for
    one series); a DataFrame is read as ``(time, assets)`` and a result that keeps the time axis
    is returned as ``(time, assets)``. Use as ``@array_api`` or ``@array_api(min_periods=2)``.
    """

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(returns: ArrayLike, *args: Any, **kwargs: Any) -> Any:
            tensor = _to_tensor(returns, "returns")
            _check_periods(tensor, min_periods, f.__name__)
            if isinstance(returns, torch.Tensor):
                return f(returns, *args, **kwargs)
            out = f(tensor, *args, **kwargs)
            return _from_tensor(out.T if isinstance(returns, pd.DataFrame) and out.ndim == 2 else out)

        return wrapper  # type: ignore[return-value]

    return decorate if func is None else decorate(func)


def check_level(level: float, owner: str = "") -> None:
    """Raise :class:`ConfigError` unless ``0 < level < 1``; ``owner`` prefixes the message (e.g. a loss's name).

    The check of :func:`value_at_risk` and :func:`cvar`, public so that objects built on them (such as
    :class:`gradfolio.allocation.losses.CVaRLoss`) refuse a bad level when they are constructed.
    """
    if not 0.0 < level < 1.0:
        prefix = f"{owner}: " if owner else ""
        raise ConfigError(f"{prefix}level={level!r} must lie strictly between 0 and 1 (e.g. 0.95 for a 95% VaR/CVaR).")


def _check_ppy(periods_per_year: float) -> None:
    ok = isinstance(periods_per_year, numbers.Real) and not isinstance(periods_per_year, bool)
    if not (ok and 0 < periods_per_year < math.inf):
        raise ConfigError(
            f"periods_per_year={periods_per_year!r} must be a number > 0 (252 for daily returns, 12 for monthly, "
            "1 for per-period values)."
        )


@array_api
def mean_return(returns: torch.Tensor) -> torch.Tensor:
    """Arithmetic mean return per period.

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.

    Returns
    -------
    Shape ``(...)``.
    """
    return returns.mean(dim=-1)


@array_api
def annualized_mean(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Arithmetic mean return times ``periods_per_year``.

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.

    Returns
    -------
    Shape ``(...)``.
    """
    _check_ppy(periods_per_year)
    return returns.mean(dim=-1) * periods_per_year


@array_api
def annualized_return(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Compound annual growth rate ``prod(1 + R)^(ppy / T) - 1`` (empyrical's ``annual_return``).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.

    Returns
    -------
    Shape ``(...)``.
    """
    _check_ppy(periods_per_year)
    growth = torch.log1p(returns).sum(dim=-1)
    return torch.expm1(growth * (periods_per_year / returns.shape[-1]))


@array_api(min_periods=2)
def annualized_volatility(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Sample standard deviation (``ddof=1``) times ``sqrt(periods_per_year)``.

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 2``.
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.

    Returns
    -------
    Shape ``(...)``.
    """
    _check_ppy(periods_per_year)
    return returns.std(dim=-1, correction=1) * math.sqrt(periods_per_year)


@array_api(min_periods=2)
def sharpe_ratio(
    returns: torch.Tensor, risk_free: float = 0.0, periods_per_year: float = TRADING_DAYS
) -> torch.Tensor:
    """Annualized Sharpe ratio ``mean(R - rf) / std(R - rf) * sqrt(ppy)`` (``ddof=1``).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 2``.
    risk_free
        Risk-free rate per period (not annualized).
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.

    Returns
    -------
    Shape ``(...)``.
    """
    _check_ppy(periods_per_year)
    excess = returns - risk_free
    return excess.mean(dim=-1) / excess.std(dim=-1, correction=1) * math.sqrt(periods_per_year)


@array_api
def downside_deviation(returns: torch.Tensor, target: float = 0.0) -> torch.Tensor:
    """Per-period downside deviation ``sqrt(mean(min(R - target, 0)^2))`` over all ``T`` periods.

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    target
        Minimum acceptable return per period.

    Returns
    -------
    Shape ``(...)``.
    """
    shortfall = torch.clamp(returns - target, max=0.0)
    square = (shortfall**2).mean(dim=-1)
    # sqrt has an infinite derivative at 0: with no shortfall (e.g. all-zero returns) the chain
    # rule would give inf * 0 = NaN; the deviation is flat there, so its gradient is taken as 0
    positive = square > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, square, torch.ones_like(square))), square)


@array_api
def sortino_ratio(
    returns: torch.Tensor, target: float = 0.0, periods_per_year: float = TRADING_DAYS
) -> torch.Tensor:
    """Annualized Sortino ratio ``mean(R - target) / downside_deviation(R, target) * sqrt(ppy)``.

    This is empyrical's definition (downside deviation around the target, averaged over all
    periods).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    target
        Minimum acceptable return per period.
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.

    Returns
    -------
    Shape ``(...)``.
    """
    _check_ppy(periods_per_year)
    return (returns - target).mean(dim=-1) / downside_deviation(returns, target) * math.sqrt(periods_per_year)


@array_api
def drawdowns(returns: torch.Tensor, compounded: bool = True) -> torch.Tensor:
    """Drawdown after each period as a positive fraction of the running peak.

    With ``compounded=True`` wealth is ``prod(1 + R)`` and the drawdown is ``1 - W_t / max_{s<=t} W_s``
    (the peak includes the starting wealth 1). With ``compounded=False`` wealth is ``1 + cumsum(R)``
    and the drawdown is the arithmetic ``max_{s<=t} W_s - W_t`` (skfolio's default).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    compounded
        Compounded (geometric) or arithmetic wealth.

    Returns
    -------
    Shape ``(..., T)`` (``(T, assets)`` for a DataFrame).
    """
    if compounded:
        wealth = torch.cumprod(1.0 + returns, dim=-1)
    else:
        wealth = 1.0 + torch.cumsum(returns, dim=-1)
    peak = torch.cummax(torch.clamp(wealth, min=1.0), dim=-1).values
    return 1.0 - wealth / peak if compounded else peak - wealth


@array_api
def max_drawdown(returns: torch.Tensor, compounded: bool = True) -> torch.Tensor:
    """Largest drawdown over the period (see :func:`drawdowns`), a positive number.

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    compounded
        Compounded (geometric) or arithmetic wealth.

    Returns
    -------
    Shape ``(...)``.
    """
    return drawdowns(returns, compounded=compounded).amax(dim=-1)


@array_api
def calmar_ratio(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Calmar ratio: compound annual growth rate over the compounded maximum drawdown (empyrical's).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.

    Returns
    -------
    Shape ``(...)``; ``inf`` when there is no drawdown.
    """
    return annualized_return(returns, periods_per_year) / max_drawdown(returns)


_ROUNDING = 1e-9  # (1 - level) * T within this of an integer counts as that integer


def _sorted(returns: torch.Tensor, level: float) -> torch.Tensor:
    check_level(level)
    return torch.sort(returns, dim=-1).values


@array_api
def value_at_risk(returns: torch.Tensor, level: float = 0.95) -> torch.Tensor:
    """Historical value at risk at ``level`` as a positive loss.

    The lower ``level``-quantile of the empirical loss distribution,
    ``VaR = inf{l : P(L <= l) >= level}`` with ``L = -R``: with 100 returns and ``level=0.95``
    it is the sixth largest loss (skfolio's definition).

    Parameters
    ----------
    returns
        Simple returns (or P&L), shape ``(..., T)``, ``T >= 1``.
    level
        Confidence level in ``(0, 1)``.

    Returns
    -------
    Shape ``(...)``.
    """
    ordered = _sorted(returns, level)
    T = returns.shape[-1]
    index = min(max(T - math.ceil(level * T - _ROUNDING), 0), T - 1)
    return -ordered[..., index]


@array_api
def cvar(returns: torch.Tensor, level: float = 0.95) -> torch.Tensor:
    """Historical conditional value at risk (expected shortfall) at ``level``, a positive loss.

    With ``k = (1 - level) T`` and ``i = ceil(k) - 1`` (0-based), the exact discrete definition is
    ``CVaR = -(sum_{j<i} R_(j) + (k - i) R_(i)) / k``: the mean of the worst ``k`` returns,
    counting the next one with the fractional weight. Differentiable almost everywhere.

    Parameters
    ----------
    returns
        Simple returns (or P&L), shape ``(..., T)``, ``T >= 1``.
    level
        Confidence level in ``(0, 1)``.

    Returns
    -------
    Shape ``(...)``.
    """
    ordered = _sorted(returns, level)
    k = (1.0 - level) * returns.shape[-1]
    ik = max(0, math.ceil(k - _ROUNDING) - 1)
    return -(ordered[..., :ik].sum(dim=-1) + (k - ik) * ordered[..., ik]) / k


@array_api
def cdar(returns: torch.Tensor, level: float = 0.95, compounded: bool = False) -> torch.Tensor:
    """Conditional drawdown at risk: the :func:`cvar` of the drawdowns, a positive number.

    ``CDaR = CVaR_level(-D)`` with ``D`` the drawdown path of :func:`drawdowns` (arithmetic by
    default, as skfolio's ``cdar(get_drawdowns(r))``): the mean of the worst ``(1 - level) T``
    drawdowns, the next one with its fractional weight (Chekhlov, Uryasev and Zabarankin).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    level
        Confidence level in ``(0, 1)``.
    compounded
        Compounded (geometric) or arithmetic (default) wealth for the drawdowns.

    Returns
    -------
    Shape ``(...)``.
    """
    return cvar(-drawdowns(returns, compounded=compounded), level=level)


@array_api
def omega_ratio(returns: torch.Tensor, target: float = 0.0) -> torch.Tensor:
    """Omega ratio ``E[(R - target)+] / E[(target - R)+]`` (Keating and Shadwick).

    Equal to ``1 + (mean(R) - target) / LPM1(target)`` with ``LPM1`` the first lower partial
    moment. Per period (no annualization).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    target
        Threshold return per period.

    Returns
    -------
    Shape ``(...)``; ``inf`` when no return is below ``target``.
    """
    d = returns - target
    return d.clamp(min=0).mean(dim=-1) / (-d).clamp(min=0).mean(dim=-1)


@array_api
def worst_realization(returns: torch.Tensor) -> torch.Tensor:
    """Worst realization ``-min_t R_t`` as a positive loss (skfolio's ``worst_realization``).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.

    Returns
    -------
    Shape ``(...)``.
    """
    return -returns.amin(dim=-1)


@array_api(min_periods=2)
def semi_variance(returns: torch.Tensor, target: float | None = None, biased: bool = False) -> torch.Tensor:
    """Semi-variance ``sum_t max(tau - R_t, 0)^2 / (T - 1)`` (``/ T`` if ``biased``) below ``tau``.

    ``tau`` is ``target`` or, by default, the mean of each series: skfolio's ``semi_variance``.

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 2``.
    target
        Minimum acceptable return per period; ``None`` for the mean.
    biased
        Divide by ``T`` instead of ``T - 1``.

    Returns
    -------
    Shape ``(...)``.
    """
    T = returns.shape[-1]
    tau = returns.mean(dim=-1, keepdim=True) if target is None else target
    return (tau - returns).clamp(min=0).square().sum(dim=-1) / (T if biased else T - 1)


@array_api
def mean_absolute_deviation(returns: torch.Tensor, target: float | None = None) -> torch.Tensor:
    """Mean absolute deviation ``mean_t |R_t - tau|``, ``tau`` the mean by default (skfolio's).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``, ``T >= 1``.
    target
        Centre of the deviations; ``None`` for the mean.

    Returns
    -------
    Shape ``(...)``.
    """
    tau = returns.mean(dim=-1, keepdim=True) if target is None else target
    return (returns - tau).abs().mean(dim=-1)


def _evar_objective(log_z: torch.Tensor, losses: torch.Tensor, level: float) -> torch.Tensor:
    """``z (log mean exp(L / z) - log(1 - level))`` for ``log_z (..., G)`` and ``losses (..., T)``."""
    z = log_z.exp()
    T = losses.shape[-1]
    lse = torch.logsumexp(losses[..., None, :] / z[..., None], dim=-1) - math.log(T)
    return z * (lse - math.log(1.0 - level))


@array_api
def evar(returns: torch.Tensor, level: float = 0.95) -> torch.Tensor:
    """Entropic value at risk ``inf_{z>0} z log(E[exp(L / z)] / (1 - level))``, ``L = -R`` (Ahmadi-Javid).

    The objective is convex in ``z``: losses are scaled to ``[-1, 0]`` (EVaR is translation
    equivariant and positively homogeneous, as in skfolio), then ``log z`` is found by a grid
    on ``[-25, 10]`` and golden-section refinement, batched. ``z*`` is held fixed when
    differentiating (envelope theorem: the gradient is exact). Equals the worst loss when
    ``1 - level <= 1 / T`` and the mean loss as ``level -> 0``; skfolio's ``evar``.

    Parameters
    ----------
    returns
        Simple returns (or P&L), shape ``(..., T)``, ``T >= 1``.
    level
        Confidence level in ``(0, 1)``.

    Returns
    -------
    Shape ``(...)``, between :func:`cvar` and :func:`worst_realization`.
    """
    check_level(level)
    losses = -returns
    top = losses.amax(dim=-1, keepdim=True)
    spread = (top - losses.amin(dim=-1, keepdim=True)).clamp(min=torch.finfo(returns.dtype).tiny)
    scaled = ((losses - top) / spread).detach()
    grid = torch.linspace(-25.0, 10.0, 141, dtype=returns.dtype, device=returns.device)
    grid = grid.expand(*scaled.shape[:-1], -1)
    k = _evar_objective(grid, scaled, level).argmin(dim=-1, keepdim=True)
    a = (grid.gather(-1, k) - 0.25)[..., 0]
    b = (grid.gather(-1, k) + 0.25)[..., 0]
    phi = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):
        c, d = b - phi * (b - a), a + phi * (b - a)
        fc = _evar_objective(c[..., None], scaled, level)[..., 0]
        fd = _evar_objective(d[..., None], scaled, level)[..., 0]
        left = fc < fd
        b = torch.where(left, d, b)
        a = torch.where(left, a, c)
    log_z = (a + b) / 2 + torch.log(spread[..., 0]).detach()  # z of the unscaled losses
    value = _evar_objective(log_z[..., None], losses, level)[..., 0]
    # z -> 0 limit (1 - level <= 1/T): the objective tends to the worst loss from above
    return torch.minimum(value, top[..., 0])


@array_api(min_periods=2)
def mean_std(returns: torch.Tensor, risk_aversion: float = 1.0) -> torch.Tensor:
    """Mean-standard deviation objective ``mean(R) - risk_aversion * std(R)`` (``ddof=1``).

    With ``risk_aversion=1.645`` on P&L this is the hedging literature's ``mean - 1.645 std``.

    Parameters
    ----------
    returns
        Simple returns (or P&L), shape ``(..., T)``, ``T >= 2``.
    risk_aversion
        Weight of the standard deviation.

    Returns
    -------
    Shape ``(...)``.
    """
    return returns.mean(dim=-1) - risk_aversion * returns.std(dim=-1, correction=1)


def _on_assets(**arrays: ArrayLike) -> tuple[list[torch.Tensor], bool]:
    """Tensors of arrays with assets on the last axis (never transposed), and whether any was a tensor.

    NumPy / pandas arrays take the dtype and device of the first tensor (float64 if none). Two
    pandas inputs must label the same assets in the same order.
    """
    labelled = [
        (name, list(a.columns if isinstance(a, pd.DataFrame) else a.index))
        for name, a in arrays.items()
        if isinstance(a, (pd.Series, pd.DataFrame))
    ]
    if len(labelled) == 2 and labelled[0][1] != labelled[1][1]:
        (a, assets_a), (b, assets_b) = labelled
        raise ConfigError(
            f"{a} has assets {assets_a} but {b} has {assets_b}; give both the same assets in the same order."
        )
    ref = next((a for a in arrays.values() if isinstance(a, torch.Tensor)), None)
    dtype, device = (torch.float64, None) if ref is None else (ref.dtype, ref.device)
    tensors = [
        a if isinstance(a, torch.Tensor) else _to_tensor(a, name, time_last=False).to(dtype=dtype, device=device)
        for name, a in arrays.items()
    ]
    return tensors, ref is not None


def _broadcastable(*shapes: torch.Size) -> bool:
    try:
        torch.broadcast_shapes(*shapes)
    except RuntimeError:
        return False
    return True


def turnover(w_prev: ArrayLike, w_next: ArrayLike) -> torch.Tensor | np.ndarray | float:
    """Two-way turnover ``sum_i |w_next_i - w_prev_i|`` over the last axis (assets).

    Parameters
    ----------
    w_prev, w_next
        Weights before and after, shapes ``(..., N)`` that broadcast (e.g. ``(N,)`` and ``(B, N)``);
        a DataFrame is ``(dates, assets)``.

    Returns
    -------
    Shape ``(...)``: a tensor if either input is one, else NumPy (a ``float`` for one pair).

    Raises
    ------
    ConfigError
        Different numbers (or labels) of assets, or batch shapes that do not broadcast.
    """
    (a, b), is_torch = _on_assets(w_prev=w_prev, w_next=w_next)
    if min(a.ndim, b.ndim) < 1 or a.shape[-1] != b.shape[-1] or not _broadcastable(a.shape, b.shape):
        raise ConfigError(
            f"w_prev has shape {tuple(a.shape)} and w_next {tuple(b.shape)}; pass weights (..., N) with the same "
            "number of assets N and batch shapes that broadcast."
        )
    out = (b - a).abs().sum(dim=-1)
    return out if is_torch else _from_tensor(out)


def portfolio_returns(weights: ArrayLike, returns: ArrayLike) -> torch.Tensor | np.ndarray:
    """Returns of fixed-weight portfolios ``r_t = sum_i w_i R_{t,i}`` (rebalanced every period).

    Parameters
    ----------
    weights
        Portfolio weights, shape ``(..., N)``, e.g. ``(B, N)``.
    returns
        Simple asset returns, shape ``(..., T, N)``, e.g. ``(B, T, N)``; a DataFrame is ``(T, N)``.

    Returns
    -------
    Shape ``(..., T)``, e.g. ``(B, T)``: a tensor if either input is one, else NumPy.

    Raises
    ------
    ConfigError
        Different numbers (or labels) of assets, or batch shapes that do not broadcast.
    """
    (w, R), is_torch = _on_assets(weights=weights, returns=returns)
    if w.ndim < 1 or R.ndim < 2 or w.shape[-1] != R.shape[-1] or not _broadcastable(w.shape[:-1], R.shape[:-2]):
        raise ConfigError(
            f"weights have shape {tuple(w.shape)} and returns {tuple(R.shape)}; pass weights (..., N) and returns "
            "(..., T, N) with the same number of assets N and batch shapes that broadcast."
        )
    out = torch.einsum("...n,...tn->...t", w, R)
    return out if is_torch else _from_tensor(out)


def summary(
    returns: ArrayLike, periods_per_year: float = TRADING_DAYS, level: float = 0.95
) -> dict[str, float] | pd.DataFrame:
    """The headline measures of one return series, or of each column of a DataFrame.

    Parameters
    ----------
    returns
        Simple returns: one series of shape ``(T,)`` (``T >= 2``), or a DataFrame ``(T, assets)``.
    periods_per_year
        Periods in a year (252 for daily data), ``> 0``.
    level
        Confidence level of VaR and CVaR, in ``(0, 1)``.

    Returns
    -------
    For one series, a dict of floats: ``annualized_return``, ``annualized_volatility``,
    ``sharpe_ratio``, ``sortino_ratio``, ``max_drawdown``, ``calmar_ratio``, ``var_<pct>`` and
    ``cvar_<pct>`` (``pct = round(100 * level)``). For a DataFrame, a DataFrame with one row per
    measure and the DataFrame's columns (as ``DataFrame.describe`` does).

    Raises
    ------
    ConfigError
        An array or tensor with more than one axis (wrap it in a DataFrame ``(T, assets)``).
    """
    r = _to_tensor(returns, "returns").to(torch.float64)
    is_frame = isinstance(returns, pd.DataFrame)
    if r.ndim != 1 and not is_frame:
        raise ConfigError(
            f"returns: summary takes one series (T,) or a DataFrame (T, assets), got shape {tuple(r.shape)}; "
            "wrap a table in a DataFrame with time as rows."
        )
    pct = round(level * 100)
    measures = {
        "annualized_return": annualized_return(r, periods_per_year),
        "annualized_volatility": annualized_volatility(r, periods_per_year),
        "sharpe_ratio": sharpe_ratio(r, periods_per_year=periods_per_year),
        "sortino_ratio": sortino_ratio(r, periods_per_year=periods_per_year),
        "max_drawdown": max_drawdown(r),
        "calmar_ratio": calmar_ratio(r, periods_per_year),
        f"var_{pct}": value_at_risk(r, level),
        f"cvar_{pct}": cvar(r, level),
    }
    if is_frame:
        table = np.stack([v.detach().cpu().numpy() for v in measures.values()])
        return pd.DataFrame(table, index=list(measures), columns=returns.columns)
    return {name: float(v) for name, v in measures.items()}


__all__ = [
    "TRADING_DAYS",
    "array_api",
    "mean_return",
    "annualized_mean",
    "annualized_return",
    "annualized_volatility",
    "sharpe_ratio",
    "downside_deviation",
    "sortino_ratio",
    "drawdowns",
    "max_drawdown",
    "calmar_ratio",
    "value_at_risk",
    "cvar",
    "cdar",
    "omega_ratio",
    "worst_realization",
    "semi_variance",
    "mean_absolute_deviation",
    "evar",
    "mean_std",
    "turnover",
    "portfolio_returns",
    "summary",
    "check_level",
]
