"""Risk and performance measures used everywhere in gradfolio.

One implementation serves both worlds: every measure accepts a torch tensor (differentiable,
batched, any device and dtype) or a NumPy array / pandas object (computed in float64 and
returned as NumPy, or as a Python ``float`` for a single series). Measures reduce the **last
axis**, which is time: ``returns`` of shape ``(..., T)`` give a result of shape ``(...)``.

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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from gradfolio.errors import ConfigError

ArrayLike = Any  # torch.Tensor | np.ndarray | pandas.Series | pandas.DataFrame | Sequence[float]
F = TypeVar("F", bound=Callable[..., Any])

TRADING_DAYS = 252


def _to_tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    values = getattr(x, "to_numpy", None)
    arr = np.asarray(values() if callable(values) else x, dtype=np.float64)
    if arr.ndim == 2 and hasattr(x, "columns"):
        arr = arr.T  # a DataFrame is (time, assets): put time on the last axis
    return torch.tensor(arr)


def _from_tensor(result: torch.Tensor) -> np.ndarray | float:
    out = result.detach().cpu().numpy()
    return float(out) if out.ndim == 0 else out


def array_api(func: F) -> F:
    """Let a torch measure also take NumPy / pandas input (returned as NumPy or ``float``)."""

    @functools.wraps(func)
    def wrapper(returns: ArrayLike, *args: Any, **kwargs: Any) -> Any:
        if isinstance(returns, torch.Tensor):
            return func(returns, *args, **kwargs)
        return _from_tensor(func(_to_tensor(returns), *args, **kwargs))

    return wrapper  # type: ignore[return-value]


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95 for a 95% VaR/CVaR).")


@array_api
def mean_return(returns: torch.Tensor) -> torch.Tensor:
    """Arithmetic mean return per period. ``(..., T) -> (...)``."""
    return returns.mean(dim=-1)


@array_api
def annualized_mean(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Arithmetic mean return times ``periods_per_year``. ``(..., T) -> (...)``."""
    return returns.mean(dim=-1) * periods_per_year


@array_api
def annualized_return(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Compound annual growth rate ``prod(1 + R)^(ppy / T) - 1`` (empyrical's ``annual_return``).

    Parameters
    ----------
    returns
        Simple returns, shape ``(..., T)``.
    periods_per_year
        Periods in a year (252 for daily data).

    Returns
    -------
    Tensor of shape ``(...)``.
    """
    growth = torch.log1p(returns).sum(dim=-1)
    return torch.expm1(growth * (periods_per_year / returns.shape[-1]))


@array_api
def annualized_volatility(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Sample standard deviation (``ddof=1``) times ``sqrt(periods_per_year)``. ``(..., T) -> (...)``."""
    return returns.std(dim=-1, correction=1) * math.sqrt(periods_per_year)


@array_api
def sharpe_ratio(
    returns: torch.Tensor, risk_free: float = 0.0, periods_per_year: float = TRADING_DAYS
) -> torch.Tensor:
    """Annualized Sharpe ratio ``mean(R - rf) / std(R - rf) * sqrt(ppy)``.

    ``risk_free`` is a per-period rate. ``(..., T) -> (...)``.
    """
    excess = returns - risk_free
    return excess.mean(dim=-1) / excess.std(dim=-1, correction=1) * math.sqrt(periods_per_year)


@array_api
def downside_deviation(returns: torch.Tensor, target: float = 0.0) -> torch.Tensor:
    """Per-period downside deviation ``sqrt(mean(min(R - target, 0)^2))``. ``(..., T) -> (...)``."""
    shortfall = torch.clamp(returns - target, max=0.0)
    return torch.sqrt((shortfall**2).mean(dim=-1))


@array_api
def sortino_ratio(
    returns: torch.Tensor, target: float = 0.0, periods_per_year: float = TRADING_DAYS
) -> torch.Tensor:
    """Annualized Sortino ratio ``mean(R - target) / downside_deviation(R, target) * sqrt(ppy)``.

    This is empyrical's definition (downside deviation around the target, averaged over all
    periods). ``(..., T) -> (...)``.
    """
    return (returns - target).mean(dim=-1) / downside_deviation(returns, target) * math.sqrt(periods_per_year)


@array_api
def drawdowns(returns: torch.Tensor, compounded: bool = True) -> torch.Tensor:
    """Drawdown after each period as a positive fraction of the running peak. ``(..., T) -> (..., T)``.

    With ``compounded=True`` wealth is ``prod(1 + R)`` and the drawdown is ``1 - W_t / max_{s<=t} W_s``
    (the peak includes the starting wealth 1). With ``compounded=False`` wealth is ``1 + cumsum(R)``
    and the drawdown is the arithmetic ``max_{s<=t} W_s - W_t`` (skfolio's default).
    """
    if compounded:
        wealth = torch.cumprod(1.0 + returns, dim=-1)
    else:
        wealth = 1.0 + torch.cumsum(returns, dim=-1)
    peak = torch.cummax(torch.clamp(wealth, min=1.0), dim=-1).values
    return 1.0 - wealth / peak if compounded else peak - wealth


@array_api
def max_drawdown(returns: torch.Tensor, compounded: bool = True) -> torch.Tensor:
    """Largest drawdown over the period (see :func:`drawdowns`), a positive number. ``(..., T) -> (...)``."""
    return drawdowns(returns, compounded=compounded).amax(dim=-1)


@array_api
def calmar_ratio(returns: torch.Tensor, periods_per_year: float = TRADING_DAYS) -> torch.Tensor:
    """Calmar ratio: compound annual growth rate over the (compounded) maximum drawdown. ``(..., T) -> (...)``."""
    return annualized_return(returns, periods_per_year) / max_drawdown(returns)


_ROUNDING = 1e-9  # (1 - level) * T within this of an integer counts as that integer


def _sorted(returns: torch.Tensor, level: float) -> torch.Tensor:
    _check_level(level)
    return torch.sort(returns, dim=-1).values


@array_api
def value_at_risk(returns: torch.Tensor, level: float = 0.95) -> torch.Tensor:
    """Historical value at risk at ``level`` as a positive loss. ``(..., T) -> (...)``.

    The lower ``level``-quantile of the empirical loss distribution,
    ``VaR = inf{l : P(L <= l) >= level}`` with ``L = -R``: with 100 returns and ``level=0.95``
    it is the sixth largest loss (skfolio's definition).
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
    ``(..., T) -> (...)``.
    """
    ordered = _sorted(returns, level)
    k = (1.0 - level) * returns.shape[-1]
    ik = max(0, math.ceil(k - _ROUNDING) - 1)
    return -(ordered[..., :ik].sum(dim=-1) + (k - ik) * ordered[..., ik]) / k


@array_api
def mean_std(returns: torch.Tensor, risk_aversion: float = 1.0) -> torch.Tensor:
    """Mean-standard deviation objective ``mean(R) - risk_aversion * std(R)`` (``ddof=1``). ``(..., T) -> (...)``.

    With ``risk_aversion=1.645`` on P&L this is the hedging literature's ``mean - 1.645 std``.
    """
    return returns.mean(dim=-1) - risk_aversion * returns.std(dim=-1, correction=1)


@array_api
def turnover(w_prev: torch.Tensor, w_next: ArrayLike) -> torch.Tensor:
    """Two-way turnover ``sum_i |w_next_i - w_prev_i|`` over the last axis (assets). ``(..., N) -> (...)``."""
    w_next = w_next if isinstance(w_next, torch.Tensor) else _to_tensor(w_next).to(w_prev)
    return (w_next - w_prev).abs().sum(dim=-1)


def portfolio_returns(weights: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Returns of fixed-weight portfolios ``r_t = sum_i w_i R_{t,i}`` (rebalanced every period).

    Parameters
    ----------
    weights
        Portfolio weights, shape ``(B, N)``.
    returns
        Simple asset returns, shape ``(B, T, N)``.

    Returns
    -------
    Tensor of shape ``(B, T)``.
    """
    return torch.einsum("bn,btn->bt", weights, returns)


def summary(returns: ArrayLike, periods_per_year: float = TRADING_DAYS, level: float = 0.95) -> dict[str, float]:
    """All headline measures of one return series ``(T,)`` as a dictionary of floats."""
    r = _to_tensor(returns).to(torch.float64).reshape(-1)
    measures: dict[str, Callable[[], torch.Tensor]] = {
        "annualized_return": lambda: annualized_return(r, periods_per_year),
        "annualized_volatility": lambda: annualized_volatility(r, periods_per_year),
        "sharpe_ratio": lambda: sharpe_ratio(r, periods_per_year=periods_per_year),
        "sortino_ratio": lambda: sortino_ratio(r, periods_per_year=periods_per_year),
        "max_drawdown": lambda: max_drawdown(r),
        "calmar_ratio": lambda: calmar_ratio(r, periods_per_year),
        f"var_{round(level * 100)}": lambda: value_at_risk(r, level),
        f"cvar_{round(level * 100)}": lambda: cvar(r, level),
    }
    return {name: float(f()) for name, f in measures.items()}


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
    "mean_std",
    "turnover",
    "portfolio_returns",
    "summary",
]
