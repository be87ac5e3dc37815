"""Path-dependent simulation: schedules that skip trades, wealth-dependent and daily costs.

:func:`gradfolio.backtest.simulate` drifts every holding period independently (one tensor
computation), which is exact when every candidate date trades to its target and the cost is a
fraction of the traded weights. :func:`simulate_path` walks the rebalances one after the other
(batched over strategies) for everything else: a schedule (the weights after a date depend on
the drifted weights, so on the whole path), a cost in currency (``FixedFee``, square-root impact:
they depend on the wealth reached), a daily cost (``BorrowCost``). Per rebalance ``p`` with
holding growth ``G_{j,i}`` (as in the engine)::

    w_after  = schedule(w_before, target_p)   (or w_before where the calendar does not trade)
    c_p      = trade costs(w_before, w_after; wealth W_p, volatility_p, adv_p)
    w_day_j  = w_after_i G_{j-1,i} / V_{j-1}   weights at the start of holding day j (w_day_0 = w_after)
    h_j      = daily costs(w_day_j)             a fraction of the wealth at the start of day j
    net_j    = (1 - c_p [j = 0]) (1 + gross_j - h_j) - 1
    W_{p+1}  = W_p prod_j (1 + net_j)

Wealth ``W`` is tracked in currency from ``initial_wealth`` (net of every cost).

Targets may also be decided on the way (``weights`` a callable ``decide(p, before, previous)``):
a strategy that sees what it holds (:class:`~gradfolio.backtest.engine.HoldingStrategy`: EIIE's
portfolio-vector memory, a reinforcement-learning agent) gets the drifted weights ``w_before``
and the weights after the previous date's trade at every date, exactly those the simulation then uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gradfolio.backtest.schedules import Schedule
from gradfolio.costs import CompositeCost

Decide = Callable[[int, Tensor, Tensor], Tensor]
"""``decide(p, before (S, N), previous (S, N)) -> target (S, N)`` at candidate date ``p``."""


def simulate_path(
    weights: Tensor | Decide,
    holding: Tensor,
    cost: CompositeCost,
    *,
    trade: Tensor,
    schedule: Schedule | None = None,
    context: dict[str, Tensor] | None = None,
    initial_wealth: float | None = None,
    n_strategies: int = 1,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """Rebalance by rebalance: schedule, trade and daily costs, wealth in currency.

    Parameters
    ----------
    weights
        Target weights at each candidate date, shape ``(S, P, N)`` (rows where ``trade`` is
        false are ignored), or a callable ``decide(p, before, previous) -> target (S, N)``
        called at each candidate date where ``trade`` is true with the drifted weights
        ``before (S, N)`` and the weights right after the previous candidate date
        ``previous (S, N)`` (what it traded to; zeros, cash, before the first date).
    holding
        Simple asset returns of each holding period, shape ``(P, k, N)``.
    cost
        The cost models (trade and daily parts).
    trade
        Boolean ``(P,)``: the candidate dates where the strategy was evaluated.
    schedule
        Maps ``(w_before, target)`` to the weights after a candidate date (default: the target).
    context
        Per-rebalance market data: ``volatility`` and ``adv``, each ``(P, N)``.
    initial_wealth
        Starting wealth in currency (``W_0``), required by costs that need ``wealth``.
    n_strategies, dtype
        ``S`` and the floating type of the simulation when ``weights`` is a callable (taken
        from the tensor otherwise).

    Returns
    -------
    dict with ``net``, ``gross``, ``cost_daily`` ``(S, P * k)``, ``cost`` ``(S, P)`` (trade
    costs), ``turnover`` ``(S, P)``, ``before`` and ``after`` ``(S, P, N)``, ``wealth``
    ``(S, P + 1)`` (before each rebalance, then at the end).
    """
    if isinstance(weights, Tensor):
        S, P, N = weights.shape
        dtype, dev = weights.dtype, weights.device
        targets: Tensor | None = weights
    else:
        S, (P, _, N) = n_strategies, holding.shape
        dev, targets = holding.device, None
    k = holding.shape[1]
    growth = torch.cumprod(1.0 + holding.to(dtype), dim=1)  # (P, k, N)
    context = dict(context or {})
    start = 1.0 if initial_wealth is None else float(initial_wealth)
    W = torch.full((S,), start, dtype=dtype, device=dev)
    before = torch.zeros(S, N, dtype=dtype, device=dev)
    after = torch.zeros_like(before)
    has_daily = cost.has_daily
    nets, grosses, cost_days, paid_all, turns, befores, afters, wealth = [], [], [], [], [], [], [], [W]
    for p in range(P):
        if bool(trade[p]):
            target = targets[:, p] if targets is not None else weights(p, before, after).to(dtype)  # type: ignore[operator]
            after = target if schedule is None else schedule.rebalance(before, target)
        else:
            after = before
        ctx = {key: value[p] for key, value in context.items()}
        if initial_wealth is not None:
            ctx["wealth"] = W
        paid = cost.trade(before, after, **ctx)
        value = (1.0 - after.sum(-1, keepdim=True)) + after @ growth[p].T  # (S, k)
        prev = torch.cat([torch.ones_like(value[:, :1]), value[:, :-1]], dim=-1)
        gross = value / prev - 1.0
        if has_daily:
            day_w = torch.cat([after[:, None], after[:, None] * growth[p, :-1] / value[:, :-1, None]], dim=1)
            held = cost.daily(day_w, **ctx)  # (S, k)
        else:
            held = torch.zeros_like(gross)
        factor = 1.0 + gross - held
        factor = torch.cat([(1.0 - paid)[:, None] * factor[:, :1], factor[:, 1:]], dim=1)
        charged = held.clone()
        charged[:, 0] = charged[:, 0] + paid
        nets.append(factor - 1.0)
        grosses.append(gross)
        cost_days.append(charged)
        paid_all.append(paid)
        turns.append((after - before).abs().sum(-1))
        befores.append(before)
        afters.append(after)
        W = W * factor.prod(dim=-1)
        wealth.append(W)
        before = after * growth[p, -1] / value[:, -1:]
    return {
        "net": torch.cat(nets, dim=1),
        "gross": torch.cat(grosses, dim=1),
        "cost_daily": torch.cat(cost_days, dim=1),
        "cost": torch.stack(paid_all, dim=1),
        "turnover": torch.stack(turns, dim=1),
        "before": torch.stack(befores, dim=1),
        "after": torch.stack(afters, dim=1),
        "wealth": torch.stack(wealth, dim=1),
    }


__all__ = ["Decide", "simulate_path"]
