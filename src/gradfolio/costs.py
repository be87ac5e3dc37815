"""Transaction and holding costs: proportional, spread + square-root impact, borrow, fixed fees.

Every model follows the :class:`CostModel` protocol ``model(w_before, w_after, **context) ->
cost (...)``, the cost as a fraction of wealth, and says when it is charged (``charged``):
``"trade"`` models are charged once per rebalance on the trade ``w_before -> w_after``;
``"daily"`` models (:class:`BorrowCost`) every holding day on the weights held that day (called
with ``w_before = w_after =`` the day's weights). :class:`CompositeCost` sums several models.
The context a model needs is named by its ``needs`` (``wealth``: wealth before the trade, in
currency; ``volatility``: per-asset daily volatility; ``adv``: per-asset average daily traded
value, in currency); the walk-forward backtest supplies it (see ``docs/backtest.md``).

Proportional costs
------------------

A rebalance from the drifted weights ``w_before`` to the target weights ``w_after`` trades a
fraction ``|w_after_i - w_before_i|`` of the portfolio's wealth in asset ``i``. The cost is

    cost = sum_i c_i * |w_after_i - w_before_i|        (a fraction of wealth)

with one rate ``c`` for every asset (``c * turnover``) or one rate per asset. Rates are given
as fractions (``0.001``) or with :meth:`ProportionalCost.from_bps` in basis points (``10``).

One model for both pillars' uses of a proportional cost: the walk-forward backtest charges it
(:func:`gradfolio.backtest.walk_forward`, which re-exports it) and the training loss
:class:`gradfolio.allocation.TurnoverLoss` penalizes it, so a per-asset rate means the same in
training and in the backtest.

Rates below one. A cost paid out of wealth is a fraction of the traded value, so by default a
rate must lie in ``[0, 1)``. A penalty weight is not bounded that way (``TurnoverLoss()``'s
default weight is ``1.0``, and ``10 * turnover`` is a valid penalty): ``max_rate=None`` lifts the
upper bound and only asks for finite rates ``>= 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from gradfolio.errors import ConfigError, DataError

Charged = Literal["trade", "daily"]


@runtime_checkable
class CostModel(Protocol):
    """``model(w_before (..., N), w_after (..., N), **context) -> cost (...)``, a fraction of wealth.

    Attributes
    ----------
    charged
        ``"trade"`` (once per rebalance) or ``"daily"`` (every holding day, on the day's weights).
    needs
        Names of the context entries the model reads (``"wealth"``, ``"volatility"``, ``"adv"``).
    """

    charged: ClassVar[Charged]
    needs: tuple[str, ...]

    def __call__(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor: ...


def _rates(value: float | Sequence[float], name: str, who: str, upper: float | None = None) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    bad = t.ndim > 1 or not bool(torch.isfinite(t).all()) or bool((t < 0).any())
    if bad or (upper is not None and bool((t >= upper).any())):
        bound = ">= 0" if upper is None else f"in [0, {upper:g})"
        raise ConfigError(f"{name}={value!r} for {who}: use one number or one per asset, each finite and {bound}.")
    return t


def _per_asset(rate: Tensor, like: Tensor, name: str, who: str) -> Tensor:
    rate = rate.to(device=like.device, dtype=like.dtype)
    if rate.ndim == 1 and rate.shape[0] != like.shape[-1]:
        raise ConfigError(
            f"{name} for {who}: {rate.shape[0]} per-asset values given for {like.shape[-1]} assets; "
            "give one value per asset or a single value."
        )
    return rate


def _context(context: dict[str, Tensor], key: str, who: str, like: Tensor) -> Tensor:
    if key not in context or context[key] is None:
        source = {
            "wealth": "walk_forward(..., initial_wealth=...) (the starting wealth in currency)",
            "volatility": "the per-asset daily volatility (walk_forward estimates it over each lookback)",
            "adv": "walk_forward(..., volume=...) (daily traded value per asset, in currency)",
        }[key]
        raise DataError(f"{key} for {who}: missing; this cost model needs {source}.")
    return torch.as_tensor(context[key], dtype=like.dtype, device=like.device)


class ProportionalCost:
    """Cost proportional to the traded fraction of wealth.

    Parameters
    ----------
    rate
        Cost per unit of turnover as a fraction of the traded value: one number for every asset,
        or a sequence of ``N`` per-asset rates. Must be finite, ``>= 0`` and ``< max_rate``.
    max_rate
        Exclusive upper bound of the rates (default ``1``: a cost is less than the traded value);
        ``None`` for no upper bound (a penalty weight, as in :class:`~gradfolio.allocation.TurnoverLoss`).

    Attributes
    ----------
    rate
        The rates as a float64 tensor, shape ``()`` (one rate) or ``(N,)``.
    """

    def __init__(self, rate: float | Sequence[float] = 0.0, *, max_rate: float | None = 1.0) -> None:
        values = torch.as_tensor(rate, dtype=torch.float64)
        too_big = max_rate is not None and bool((values >= max_rate).any())
        if values.ndim > 1 or not bool(torch.isfinite(values).all()) or bool((values < 0).any()) or too_big:
            bound = "finite and >= 0" if max_rate is None else f"in [0, {max_rate:g})"
            raise ConfigError(
                f"cost rate={rate!r}: use one number or one per asset, each {bound} as a fraction of the "
                "traded value (10 bps = 0.001)."
            )
        self.rate = values
        self.max_rate = max_rate

    @classmethod
    def from_bps(cls, bps: float | Sequence[float], *, max_rate: float | None = 1.0) -> ProportionalCost:
        """A cost of ``bps`` basis points (1 bp = 0.0001) per unit of turnover (``max_rate`` as a fraction)."""
        return cls(torch.as_tensor(bps, dtype=torch.float64) / 1e4, max_rate=max_rate)

    charged: ClassVar[Charged] = "trade"
    needs: tuple[str, ...] = ()

    def __call__(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor:
        """Cost of the rebalances ``w_before -> w_after`` as a fraction of wealth.

        Parameters
        ----------
        w_before, w_after
            Weights, shape ``(..., N)``.
        context
            Ignored (the proportional cost needs none).

        Returns
        -------
        Tensor of shape ``(...)``: ``sum_i c_i |w_after_i - w_before_i|``, in the dtype and on
        the device of ``w_after``.
        """
        rate = self.rate.to(device=w_after.device, dtype=w_after.dtype)
        if rate.ndim == 1 and rate.shape[0] != w_after.shape[-1]:
            raise ConfigError(
                f"cost rate: {rate.shape[0]} per-asset rates given for {w_after.shape[-1]} assets; "
                "give one rate per asset or a single rate."
            )
        return ((w_after - w_before).abs() * rate).sum(-1)

    def __eq__(self, other: object) -> bool:
        """Same rates (shape and values) and the same ``max_rate``."""
        if not isinstance(other, ProportionalCost):
            return NotImplemented
        return self.max_rate == other.max_rate and self.rate.shape == other.rate.shape and bool(
            torch.equal(self.rate, other.rate)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable rates: not a dict key

    def __repr__(self) -> str:
        value = float(self.rate) if self.rate.ndim == 0 else self.rate.tolist()
        bound = "" if self.max_rate == 1.0 else f", max_rate={self.max_rate!r}"
        return f"ProportionalCost(rate={value!r}{bound})"


class SpreadImpactCost:
    """Half the bid-ask spread plus square-root market impact, per asset.

    For a trade of ``|dw_i| = |w_after_i - w_before_i|`` of wealth ``W`` in asset ``i``::

        cost = sum_i  spread_i / 2 * |dw_i|  +  k * sigma_i * sqrt(|dw_i| W / ADV_i) * |dw_i|

    a fraction of wealth: crossing half the quoted spread, plus the square-root law of market
    impact (the price moves against a metaorder of value ``Q = |dw_i| W`` by
    ``k sigma_i sqrt(Q / ADV_i)``, ``sigma_i`` the daily volatility and ``ADV_i`` the average
    daily traded value; Almgren, Thum, Hauptmann and Li, "Direct estimation of equity market
    impact"; Tóth et al., "Anomalous price impact and the critical nature of liquidity", who
    find ``k`` of order one), paid on the traded fraction. Differentiable in the weights except
    at ``dw_i = 0``.

    Parameters
    ----------
    spread
        Full bid-ask spread as a fraction of price (``0.0005`` = 5 bps), one or one per asset.
    impact
        ``k >= 0`` (default 1); ``0`` leaves the spread alone and needs no market data.

    Context
    -------
    wealth ``(...)`` in currency, volatility ``(..., N)`` per day, adv ``(..., N)`` in currency.
    """

    charged: ClassVar[Charged] = "trade"

    def __init__(self, spread: float | Sequence[float] = 0.0, impact: float = 1.0) -> None:
        self.spread = _rates(spread, "spread", "SpreadImpactCost", upper=2.0)
        if not (impact >= 0 and impact < float("inf")):
            raise ConfigError(f"impact={impact!r} for SpreadImpactCost: use a coefficient k >= 0 (of order one).")
        self.impact = float(impact)
        self.needs: tuple[str, ...] = ("wealth", "volatility", "adv") if self.impact > 0 else ()

    def __call__(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor:
        """Cost ``(...)`` of the trades ``w_before (..., N) -> w_after (..., N)`` (see the class doc)."""
        who = "SpreadImpactCost"
        dw = (w_after - w_before).abs()
        cost = (0.5 * _per_asset(self.spread, dw, "spread", who) * dw).sum(-1)
        if self.impact == 0:
            return cost
        wealth = _context(context, "wealth", who, dw)
        sigma = _context(context, "volatility", who, dw)
        adv = _context(context, "adv", who, dw)
        if bool((adv <= 0).any()) or not bool(torch.isfinite(adv).all()):
            raise DataError(f"adv for {who}: average daily traded values must be positive and finite; fill the volume data.")
        traded = dw * wealth[..., None]
        return cost + (self.impact * sigma * torch.sqrt(traded / adv) * dw).sum(-1)

    def __repr__(self) -> str:
        spread = float(self.spread) if self.spread.ndim == 0 else self.spread.tolist()
        return f"SpreadImpactCost(spread={spread!r}, impact={self.impact!r})"


class BorrowCost:
    """Borrow fee on short positions, an annual rate charged every holding day.

    ``cost = sum_i b_i / A * max(-w_i, 0)`` per day, a fraction of wealth, on the weights ``w``
    held that day (``A`` periods per year; ``charged = "daily"``: the backtest calls it with
    ``w_before = w_after = w_day``).

    Parameters
    ----------
    rate
        Annual borrow rate ``b`` (``0.02`` = 2% a year), one or one per asset.
    periods_per_year
        ``A`` (default 252).
    """

    charged: ClassVar[Charged] = "daily"
    needs: tuple[str, ...] = ()

    def __init__(self, rate: float | Sequence[float], periods_per_year: float = 252.0) -> None:
        self.rate = _rates(rate, "rate", "BorrowCost", upper=1.0)
        if not periods_per_year > 0:
            raise ConfigError(f"periods_per_year={periods_per_year!r} for BorrowCost: use a positive number (252).")
        self.periods_per_year = float(periods_per_year)

    def __call__(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor:
        """Cost ``(...)`` of holding ``w_after (..., N)`` for one day."""
        rate = _per_asset(self.rate, w_after, "rate", "BorrowCost")
        return (rate / self.periods_per_year * (-w_after).clamp_min(0.0)).sum(-1)

    def __repr__(self) -> str:
        rate = float(self.rate) if self.rate.ndim == 0 else self.rate.tolist()
        return f"BorrowCost(rate={rate!r}, periods_per_year={self.periods_per_year!r})"


class FixedFee:
    """A fixed fee in currency per asset traded, as a fraction of wealth.

    ``cost = fee * #{i : |w_after_i - w_before_i| > tolerance} / W`` with ``W`` the wealth before
    the trade (context ``wealth``, in currency). Not differentiable (a count).

    Parameters
    ----------
    fee
        Currency per asset traded (``> 0``), one or one per asset.
    tolerance
        Trades of at most this fraction of wealth are not counted (default 0: every ``|dw| > 0``).
    """

    charged: ClassVar[Charged] = "trade"
    needs: tuple[str, ...] = ("wealth",)

    def __init__(self, fee: float | Sequence[float], tolerance: float = 0.0) -> None:
        self.fee = _rates(fee, "fee", "FixedFee")
        if not tolerance >= 0:
            raise ConfigError(f"tolerance={tolerance!r} for FixedFee: use a fraction of wealth >= 0.")
        self.tolerance = float(tolerance)

    def __call__(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor:
        """Cost ``(...)`` of the trades ``w_before (..., N) -> w_after (..., N)``."""
        traded = ((w_after - w_before).abs() > self.tolerance).to(w_after.dtype)
        wealth = _context(context, "wealth", "FixedFee", w_after)
        if bool((wealth <= 0).any()):
            raise DataError("wealth for FixedFee: must be positive (the portfolio has been wiped out).")
        return (_per_asset(self.fee, traded, "fee", "FixedFee") * traded).sum(-1) / wealth

    def __repr__(self) -> str:
        fee = float(self.fee) if self.fee.ndim == 0 else self.fee.tolist()
        return f"FixedFee(fee={fee!r}, tolerance={self.tolerance!r})"


class CompositeCost:
    """The sum of several cost models.

    Calling it sums every part (trade and daily alike: a caller outside the backtest decides
    what the weights mean); the backtest instead charges the ``trade`` parts (:meth:`trade`) at
    each rebalance and the ``daily`` parts (:meth:`daily`) every holding day.

    Parameters
    ----------
    parts
        Cost models (nested composites are flattened).
    """

    charged: ClassVar[str] = "composite"

    def __init__(self, *parts: CostModel) -> None:
        flat: list[CostModel] = []
        for part in parts:
            if isinstance(part, CompositeCost):
                flat.extend(part.parts)
            elif callable(part) and getattr(part, "charged", None) in ("trade", "daily"):
                flat.append(part)
            else:
                raise ConfigError(
                    f"CompositeCost: {part!r} is not a cost model; give ProportionalCost, SpreadImpactCost, "
                    "BorrowCost, FixedFee or an object with charged = 'trade' | 'daily'."
                )
        if not flat:
            raise ConfigError("CompositeCost: give at least one cost model.")
        self.parts = tuple(flat)
        self.needs = tuple(sorted({n for p in flat for n in getattr(p, "needs", ())}))

    def _sum(self, parts: Sequence[CostModel], w_before: Tensor, w_after: Tensor, context: dict) -> Tensor:
        total = torch.zeros(w_after.shape[:-1], dtype=w_after.dtype, device=w_after.device)
        for part in parts:
            total = total + part(w_before, w_after, **context)
        return total

    def __call__(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor:
        """Sum ``(...)`` of every part's cost."""
        return self._sum(self.parts, w_before, w_after, context)

    def trade(self, w_before: Tensor, w_after: Tensor, **context: Tensor) -> Tensor:
        """Sum ``(...)`` of the parts charged per trade."""
        return self._sum([p for p in self.parts if p.charged == "trade"], w_before, w_after, context)

    def daily(self, w: Tensor, **context: Tensor) -> Tensor:
        """Sum ``(...)`` of the parts charged per day on the weights ``w (..., N)`` held."""
        return self._sum([p for p in self.parts if p.charged == "daily"], w, w, context)

    @property
    def has_daily(self) -> bool:
        """Whether some part is charged per day."""
        return any(p.charged == "daily" for p in self.parts)

    def __repr__(self) -> str:
        return f"CompositeCost({', '.join(map(repr, self.parts))})"


def as_composite(cost: CostModel | CompositeCost) -> CompositeCost:
    """``cost`` as a :class:`CompositeCost` (itself if it is one)."""
    return cost if isinstance(cost, CompositeCost) else CompositeCost(cost)


__all__ = ["CostModel", "ProportionalCost", "SpreadImpactCost", "BorrowCost", "FixedFee", "CompositeCost", "as_composite"]
