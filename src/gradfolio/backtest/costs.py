"""Proportional transaction costs charged on the turnover of a rebalance.

A rebalance from the drifted weights ``w_before`` to the target weights ``w_after`` trades a
fraction ``|w_after_i - w_before_i|`` of the portfolio's wealth in asset ``i``. The cost is

    cost = sum_i c_i * |w_after_i - w_before_i|        (a fraction of wealth)

with one rate ``c`` for every asset (``c * turnover``) or one rate per asset. Rates are given
as fractions (``0.001``) or with :meth:`ProportionalCost.from_bps` in basis points (``10``).
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
        or a sequence of ``N`` per-asset rates. Must be finite, ``>= 0`` and ``< 1``.
    """

    def __init__(self, rate: float | Sequence[float] = 0.0) -> None:
        values = torch.as_tensor(rate, dtype=torch.float64)
        if values.ndim > 1 or not bool(torch.isfinite(values).all()) or bool((values < 0).any()) or bool(
            (values >= 1).any()
        ):
            raise ConfigError(
                f"cost rate={rate!r}: use one number or one per asset, each in [0, 1) as a fraction of the "
                "traded value (10 bps = 0.001)."
            )
        self.rate = values

    @classmethod
    def from_bps(cls, bps: float | Sequence[float]) -> ProportionalCost:
        """A cost of ``bps`` basis points (1 bp = 0.0001) per unit of turnover."""
        return cls(torch.as_tensor(bps, dtype=torch.float64) / 1e4)

    def __call__(self, w_before: Tensor, w_after: Tensor) -> Tensor:
        """Cost of the rebalances ``w_before -> w_after`` as a fraction of wealth.

        Parameters
        ----------
        w_before, w_after
            Weights, shape ``(..., N)``.

        Returns
        -------
        Tensor of shape ``(...)``: ``sum_i c_i |w_after_i - w_before_i|``.
        """
        rate = self.rate.to(device=w_after.device, dtype=w_after.dtype)
        if rate.ndim == 1 and rate.shape[0] != w_after.shape[-1]:
            raise ConfigError(
                f"cost rate: {rate.shape[0]} per-asset rates given for {w_after.shape[-1]} assets; "
                "give one rate per asset or a single rate."
            )
        return ((w_after - w_before).abs() * rate).sum(-1)

    def __repr__(self) -> str:
        value = float(self.rate) if self.rate.ndim == 0 else self.rate.tolist()
        return f"ProportionalCost(rate={value!r})"


__all__ = ["ProportionalCost"]
