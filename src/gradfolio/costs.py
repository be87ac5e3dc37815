"""Proportional transaction costs charged on the turnover of a rebalance.

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

import torch
from torch import Tensor

from gradfolio.errors import ConfigError


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

    def __call__(self, w_before: Tensor, w_after: Tensor) -> Tensor:
        """Cost of the rebalances ``w_before -> w_after`` as a fraction of wealth.

        Parameters
        ----------
        w_before, w_after
            Weights, shape ``(..., N)``.

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


__all__ = ["ProportionalCost"]
