"""Rewards of the portfolio environment: the net log return and Moody & Saffell's differential Sharpe.

With ``R_t`` the net simple return of the portfolio over holding period ``t`` (after costs)::

    log:                  r_t = log(1 + R_t) = sum_j log(1 + net_j)
    differential_sharpe:  A_t = A_{t-1} + eta (R_t - A_{t-1}),   B_t = B_{t-1} + eta (R_t^2 - B_{t-1})
                          D_t = (B_{t-1} dA_t - A_{t-1} dB_t / 2) / (B_{t-1} - A_{t-1}^2)^{3/2}
                          dA_t = R_t - A_{t-1},  dB_t = R_t^2 - B_{t-1};  A_0 = B_0 = 0

``D_t`` is the first-order term in ``eta`` of the exponential moving Sharpe ratio
``S_t = A_t / sqrt(B_t - A_t^2)`` ("Learning to trade via direct reinforcement", Moody & Saffell);
it is ``0`` while the moving variance ``B_{t-1} - A_{t-1}^2`` is below :data:`MIN_VARIANCE`
(the first period of every episode).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Reward = Literal["log", "differential_sharpe"]
MIN_VARIANCE = 1e-12
"""Moving variance below which the differential Sharpe ratio is set to 0 (undefined there)."""


def differential_sharpe(R: Tensor, A: Tensor, B: Tensor, eta: float) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the differential Sharpe ratio: ``R, A, B (batch,) -> (D, A_new, B_new)``."""
    dA, dB = R - A, R * R - B
    var = B - A * A
    ok = var > MIN_VARIANCE
    D = torch.where(ok, (B * dA - 0.5 * A * dB) / torch.where(ok, var, torch.ones_like(var)).pow(1.5), torch.zeros_like(R))
    return D, A + eta * dA, B + eta * dB


__all__ = ["Reward", "MIN_VARIANCE", "differential_sharpe"]
