"""Losses of portfolio weights judged on the future: ``loss(w (B, N), y (B, C, H, N)) -> (B,)``.

Each loss forms the portfolio's simple returns over the horizon,
``r = gradfolio.risk.portfolio_returns(w, y[:, 0])`` of shape ``(B, H)``, and applies a
:mod:`gradfolio.risk` measure to them (``periods_per_year=1``: no annualization unless asked).
Smaller is better: ratios are negated (``SharpeLoss = -Sharpe``), risks are positive.

Losses compose: ``SharpeLoss() + 0.1 * TurnoverLoss()``, ``a - b``, ``-a``, ``2 * a``, ``a / 2``,
and pickle. Turnover and transaction-cost losses need the previous weights: pass ``w_prev``
(``(B, N)``). ``reduction`` is ``"none"`` (per sample, the default), ``"mean"`` or ``"sum"``.

Robust ratios. A ratio's denominator can vanish on a short horizon: no return below the target
(Sortino), wealth that never falls (Calmar), constant returns (Sharpe). The ratio losses floor
it at ``eps`` (default :data:`EPS` ``= 1e-4``, DeepDow's epsilon; a per-period deviation for
Sharpe and Sortino, a fraction of wealth for Calmar): ``-num / max(den, eps)``. The value equals
the :mod:`gradfolio.risk` ratio exactly whenever ``den >= eps`` and stays finite otherwise
(its gradient then flows through the numerator only). Losses built on the sample standard
deviation (Sharpe, Std) need a horizon >= 2 and raise :class:`ConfigError` on a shorter one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from gradfolio import risk
from gradfolio.costs import ProportionalCost
from gradfolio.errors import ConfigError, DataError
from gradfolio.registry import Registry

EPS = 1e-4
"""Default floor of the ratio losses' denominators (see the module docstring)."""


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor, eps: float) -> torch.Tensor:
    """``numerator / max(denominator, eps)``, ``(B,)``: the plain ratio whenever ``denominator >= eps``."""
    return numerator / denominator.clamp_min(eps)


def _check_positive(owner: object, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and 0 < value < math.inf):
            raise ConfigError(
                f"{type(owner).__name__}: {name}={value!r} must be a finite number > 0 "
                "(periods_per_year: 1 per period, 252 for daily returns; eps: e.g. 1e-4)."
            )


class Loss:
    """Base class; subclasses implement :meth:`per_sample` from portfolio returns.

    ``min_horizon`` is the shortest horizon ``H`` the loss is defined on.
    """

    needs_w_prev = False
    min_horizon = 1

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        """Per-sample loss from portfolio returns ``r (B, H)``, weights ``w (B, N)`` -> ``(B,)``."""
        raise NotImplementedError

    def __call__(
        self, w: torch.Tensor, y: torch.Tensor, w_prev: torch.Tensor | None = None, reduction: str = "none"
    ) -> torch.Tensor:
        """Loss of weights ``w (B, N)`` on targets ``y (B, C, H, N)`` (channel 0 = simple returns).

        Returns ``(B,)`` for ``reduction="none"``, a scalar for ``"mean"`` / ``"sum"``.
        """
        if y.ndim != 4 or w.ndim != 2 or y.shape[0] != w.shape[0] or y.shape[-1] != w.shape[-1]:
            raise DataError(
                f"{self!r}: w has shape {tuple(w.shape)} and y {tuple(y.shape)}; expected w (B, N) and "
                "y (B, C, horizon, N) with the same B and N."
            )
        if y.shape[2] < self.min_horizon:
            raise ConfigError(
                f"{self!r}: y has horizon {y.shape[2]} but this loss needs horizon >= {self.min_horizon} "
                "(a sample standard deviation); build the windows with a longer horizon."
            )
        if self.needs_w_prev and w_prev is None:
            raise ConfigError(f"{self!r} needs the previous weights: pass w_prev (B, N).")
        values = self.per_sample(risk.portfolio_returns(w, y[:, 0]), w, w_prev)
        if reduction == "none":
            return values
        if reduction == "mean":
            return values.mean()
        if reduction == "sum":
            return values.sum()
        raise ConfigError(f"reduction={reduction!r} is unknown; use 'none', 'mean' or 'sum'.")

    def model_loss(
        self, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, w_prev: torch.Tensor | None = None,
        reduction: str = "none",
    ) -> torch.Tensor:
        """Loss of ``model`` on windows ``X (B, C, L, N)`` and targets ``y (B, C, H, N)``: what the Trainer minimizes.

        A portfolio loss judges the weights ``model(X)`` (``self(model(X), y, w_prev, reduction)``);
        a loss of something else the model makes (:class:`ForecastMSELoss`: its forecast) overrides this.
        """
        return self(model(X), y, w_prev=w_prev, reduction=reduction)

    def __add__(self, other: Loss | float) -> Loss:
        return Combined([(1.0, self), (1.0, _as_loss(other))])

    __radd__ = __add__

    def __sub__(self, other: Loss | float) -> Loss:
        return Combined([(1.0, self), (-1.0, _as_loss(other))])

    def __rsub__(self, other: float) -> Loss:
        return Combined([(1.0, _as_loss(other)), (-1.0, self)])

    def __neg__(self) -> Loss:
        return Combined([(-1.0, self)])

    def __mul__(self, c: float) -> Loss:
        if not isinstance(c, (int, float)):
            return NotImplemented
        return Combined([(float(c), self)])

    __rmul__ = __mul__

    def __truediv__(self, c: float) -> Loss:
        return self * (1.0 / c)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _as_loss(x: Loss | float) -> Loss:
    if isinstance(x, Loss):
        return x
    if isinstance(x, (int, float)):
        return Constant(float(x))
    raise ConfigError(f"cannot combine a loss with {x!r}; use a Loss or a number.")


class Constant(Loss):
    """A constant ``c`` for every sample."""

    def __init__(self, value: float):
        self.value = value

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return torch.full_like(r[:, 0], self.value)


class Combined(Loss):
    """A linear combination ``sum_k c_k L_k`` of losses (built by ``+``, ``-``, ``*``)."""

    def __init__(self, terms: list[tuple[float, Loss]]):
        flat: list[tuple[float, Loss]] = []
        for c, loss in terms:
            if isinstance(loss, Combined):
                flat += [(c * c2, l2) for c2, l2 in loss.terms]
            else:
                flat.append((c, loss))
        self.terms = flat
        self.needs_w_prev = any(loss.needs_w_prev for _, loss in flat)
        self.min_horizon = max(loss.min_horizon for _, loss in flat)

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return sum((c * loss.per_sample(r, w, w_prev) for c, loss in self.terms), torch.zeros_like(r[:, 0]))

    def __repr__(self) -> str:
        return " + ".join(f"{c:g} * {loss!r}" for c, loss in self.terms)


class SharpeLoss(Loss):
    """``-sharpe_ratio(r, risk_free, periods_per_year)`` with a floor ``eps`` on the deviation.

    ``-mean(r - rf) / max(std(r - rf), eps) * sqrt(periods_per_year)`` (``ddof=1``): exactly
    :func:`gradfolio.risk.sharpe_ratio` whenever the per-period standard deviation is at least
    ``eps``, finite (gradient through the mean only) when the horizon's returns are (nearly)
    constant. Needs a horizon >= 2.
    """

    min_horizon = 2

    def __init__(self, risk_free: float = 0.0, periods_per_year: float = 1.0, eps: float = EPS):
        _check_positive(self, periods_per_year=periods_per_year, eps=eps)
        self.risk_free, self.periods_per_year, self.eps = risk_free, periods_per_year, eps

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        excess = r - self.risk_free
        deviation = risk.annualized_volatility(excess, periods_per_year=1)
        return -_ratio(risk.mean_return(excess), deviation, self.eps) * math.sqrt(self.periods_per_year)


class SortinoLoss(Loss):
    """``-sortino_ratio(r, target, periods_per_year)`` with a floor ``eps`` on the downside deviation.

    ``-mean(r - target) / max(downside_deviation(r, target), eps) * sqrt(periods_per_year)``:
    exactly :func:`gradfolio.risk.sortino_ratio` whenever the downside deviation is at least
    ``eps``, finite when no return of the horizon falls below ``target`` (frequent at short
    horizons: then the loss is ``-mean / eps``, a strong pull towards the mean return).
    """

    def __init__(self, target: float = 0.0, periods_per_year: float = 1.0, eps: float = EPS):
        _check_positive(self, periods_per_year=periods_per_year, eps=eps)
        self.target, self.periods_per_year, self.eps = target, periods_per_year, eps

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        deviation = risk.downside_deviation(r, self.target)
        return -_ratio(risk.mean_return(r - self.target), deviation, self.eps) * math.sqrt(self.periods_per_year)


class CalmarLoss(Loss):
    """``-calmar_ratio(r, periods_per_year)`` with a floor ``eps`` on the maximum drawdown.

    ``-annualized_return(r) / max(max_drawdown(r), eps)`` (CAGR over the compounded maximum
    drawdown): exactly :func:`gradfolio.risk.calmar_ratio` whenever the drawdown is at least
    ``eps`` (a fraction of wealth), finite when wealth never falls over the horizon.
    """

    def __init__(self, periods_per_year: float = 1.0, eps: float = EPS):
        _check_positive(self, periods_per_year=periods_per_year, eps=eps)
        self.periods_per_year, self.eps = periods_per_year, eps

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return -_ratio(risk.annualized_return(r, self.periods_per_year), risk.max_drawdown(r), self.eps)


class MaxDrawdownLoss(Loss):
    """``max_drawdown(r, compounded)`` (a positive fraction)."""

    def __init__(self, compounded: bool = True):
        self.compounded = compounded

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return risk.max_drawdown(r, self.compounded)


class CVaRLoss(Loss):
    """``cvar(r, level)`` (expected shortfall, a positive loss); ``level`` in ``(0, 1)``."""

    def __init__(self, level: float = 0.95):
        risk.check_level(level, owner="CVaRLoss")
        self.level = level

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return risk.cvar(r, self.level)


class MeanReturnLoss(Loss):
    """``-mean_return(r)``."""

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return -risk.mean_return(r)


class StdLoss(Loss):
    """``annualized_volatility(r, periods_per_year)`` (sample std, ddof=1; needs a horizon >= 2)."""

    min_horizon = 2

    def __init__(self, periods_per_year: float = 1.0):
        _check_positive(self, periods_per_year=periods_per_year)
        self.periods_per_year = periods_per_year

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return risk.annualized_volatility(r, self.periods_per_year)


class TurnoverLoss(Loss):
    """The proportional cost of the rebalance ``w_prev -> w``: ``sum_i c_i |w_i - w_prev_i|``, ``(B,)``.

    Parameters
    ----------
    cost
        One rate ``c`` for every asset (then the loss is ``c * turnover(w_prev, w)``), a sequence of
        ``N`` per-asset rates, or a :class:`~gradfolio.costs.ProportionalCost` (the backtest's cost
        model: ``ProportionalCost.from_bps(10)`` trains on the cost the backtest charges). Rates
        are fractions per unit traded (10 bps = ``1e-3``), finite and ``>= 0``; given as numbers
        they may exceed 1 (the default ``1.0`` makes the loss the plain turnover, a penalty to
        weight), i.e. they build ``ProportionalCost(cost, max_rate=None)``.

    With one rate the loss is computed as ``c * turnover`` (the values of earlier releases); with
    per-asset rates it is ``cost(w_prev, w)``, the backtest's formula exactly.
    """

    needs_w_prev = True

    def __init__(self, cost: float | Sequence[float] | ProportionalCost = 1.0):
        if isinstance(cost, ProportionalCost):
            self.cost = cost
            return
        if isinstance(cost, (int, float)):
            if not 0 <= cost < math.inf:
                raise ConfigError(f"TurnoverLoss: cost={cost!r} must be a finite number >= 0 (e.g. 10 bps = 1e-3).")
        elif not isinstance(cost, Sequence) or isinstance(cost, str):
            raise ConfigError(
                f"TurnoverLoss: cost={cost!r} must be a number, one number per asset or a ProportionalCost "
                "(e.g. 10 bps = 1e-3)."
            )
        try:
            self.cost = ProportionalCost(cost, max_rate=None)
        except ConfigError as exc:
            raise ConfigError(f"TurnoverLoss: cost={cost!r}: {exc}") from None

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        assert w_prev is not None
        if self.cost.rate.ndim == 0:
            return float(self.cost.rate) * risk.turnover(w_prev, w)
        return self.cost(w_prev, w)

    def __repr__(self) -> str:
        rate = self.cost.rate
        return f"TurnoverLoss(cost={float(rate) if rate.ndim == 0 else rate.tolist()!r})"


class ForecastMSELoss(Loss):
    """Mean squared error of a predict-then-optimize network's forecast: trains the forecaster, not the weights.

    ``mean_i (mu_hat_i - target_i)^2 (+ the forecaster's penalty)`` per sample, with ``mu_hat =
    model.forecast(X) (B, N)`` and ``target = mean_h y[:, 0, h, :]`` the mean simple return per
    period over the horizon (:func:`gradfolio.allocation.forecast.forecast_target`). Used through
    :meth:`model_loss` (the Trainer does so); it needs a model with ``forecast`` (``"pto_lstm"``,
    ``"pto_ridge"``) and cannot judge weights, so it does not combine with portfolio losses.

    Parameters
    ----------
    penalty
        Add the forecaster's regularization (the ridge forecaster's ``alpha |beta|^2``, the same
        objective as its exact fit) to the mean of the per-sample errors.
    """

    forecast_only = True

    def __init__(self, penalty: bool = True):
        if not isinstance(penalty, bool):
            raise ConfigError(f"ForecastMSELoss: penalty={penalty!r} must be true or false.")
        self.penalty = penalty

    def __call__(
        self, w: torch.Tensor, y: torch.Tensor, w_prev: torch.Tensor | None = None, reduction: str = "none"
    ) -> torch.Tensor:
        raise ConfigError(
            "ForecastMSELoss judges a network's forecast, not weights: call loss.model_loss(model, X, y) (the Trainer "
            "does), and do not combine it with portfolio losses."
        )

    def per_sample(self, r: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor | None) -> torch.Tensor:
        return self(w, r)

    def model_loss(
        self, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, w_prev: torch.Tensor | None = None,
        reduction: str = "none",
    ) -> torch.Tensor:
        """``(B,)`` errors (``"none"``) or their mean / sum; the penalty is added to the reduced value only."""
        from gradfolio.allocation.forecast import forecast_target

        forecast = getattr(model, "forecast", None)
        if forecast is None:
            raise ConfigError(
                f"ForecastMSELoss: model {type(model).__name__} makes no forecast; use a predict-then-optimize network "
                "('pto_lstm', 'pto_ridge') or a portfolio loss."
            )
        mu = forecast(X)
        target = forecast_target(y).to(mu.dtype)
        if mu.shape != target.shape:
            raise DataError(f"ForecastMSELoss: forecast {tuple(mu.shape)} and target {tuple(target.shape)} differ.")
        values = (mu - target).pow(2).mean(dim=-1)
        if reduction == "none":
            return values
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"reduction={reduction!r} is unknown; use 'none', 'mean' or 'sum'.")
        total = values.mean() if reduction == "mean" else values.sum()
        if self.penalty and hasattr(model, "forecaster"):
            total = total + model.forecaster.penalty().to(total.dtype)
        return total


LOSSES: Registry[Loss] = Registry("loss")
"""Losses by name; each entry's typed signature is the schema of its parameters."""
LOSSES.register("sharpe", SharpeLoss)
LOSSES.register("sortino", SortinoLoss)
LOSSES.register("calmar", CalmarLoss)
LOSSES.register("max_drawdown", MaxDrawdownLoss)
LOSSES.register("cvar", CVaRLoss)
LOSSES.register("mean_return", MeanReturnLoss)
LOSSES.register("std", StdLoss)
LOSSES.register("turnover", TurnoverLoss)
LOSSES.register("forecast_mse", ForecastMSELoss)


def make_loss(name: str, *, where: str | None = None, **params: Any) -> Loss:
    """A registered loss by name (``LOSSES.build``) with keyword parameters validated by its class's signature.

    Parameters
    ----------
    name
        A name of ``LOSSES`` (``"sharpe"``, ``"sortino"``, ``"calmar"``, ``"max_drawdown"``,
        ``"cvar"``, ``"mean_return"``, ``"std"``, ``"turnover"``, ``"forecast_mse"``).
    where
        Dotted config path of ``params`` for messages (default ``"loss"``).
    **params
        Keyword arguments of the loss class (``level=0.9`` for ``"cvar"``).

    Raises
    ------
    ConfigError
        An unknown name, or a bad parameter named with its path (``loss.level: ...``).
    """
    if name not in LOSSES:
        raise ConfigError(f"loss name={name!r} is unknown; use one of {sorted(LOSSES.names())}.")
    return LOSSES.build(name, where=where, **params)


__all__ = [
    "EPS", "Loss", "Constant", "Combined", "SharpeLoss", "SortinoLoss", "CalmarLoss", "MaxDrawdownLoss", "CVaRLoss",
    "MeanReturnLoss", "StdLoss", "TurnoverLoss", "ForecastMSELoss", "LOSSES", "make_loss",
]
