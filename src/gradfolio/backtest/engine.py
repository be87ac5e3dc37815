"""Walk-forward backtest: batched target weights, drift between rebalances, proportional costs.

Timing (``k = rebalance_every``, ``g = gap``, ``L = lookback``; positions are rows of the
simple-return table)::

    decision p at row t_p: the strategy sees rows t_p - L + 1 .. t_p   (X, shape (C=1, L, N))
    trade at the close of row t_p + g (decision latency g)
    hold from row t_p + g + 1 to row t_p + g + k, weights drifting with prices
    next decision at t_{p+1} = t_p + k

so the weights that earn the return of day ``s`` use data up to day ``s - 1 - g`` only. The
decision windows are exactly :func:`gradfolio.data.make_windows` with ``horizon = step = k``:
``X`` is what the strategy sees and ``y`` is the holding period. The backtest ends with the
last full holding period.

A strategy is any callable ``X (B, C, L, N) -> w (B, N)`` (a classical portfolio, a trained
network): all rebalance dates between two retrainings are allocated in ONE batched call.
Weights need not sum to one; ``1 - sum_i w_i`` is held in cash at a zero return.

Drift and costs (per strategy, period ``p`` with target ``w``)::

    G_{j,i} = prod_{s<=j} (1 + R_{s,i})            growth of asset i after j+1 holding days
    V_j     = (1 - sum_i w_i) + sum_i w_i G_{j,i}   portfolio value relative to the trade
    gross_j = V_j / V_{j-1} - 1                    (V_{-1} = 1)
    w_before(p+1) = w_i G_{k-1,i} / V_{k-1}         drifted weights at the next rebalance
    cost_p  = sum_i c_i |w_i - w_before_i(p)|       a fraction of wealth, paid at the trade
    net     = (1 - cost_p)(1 + gross_0) - 1 on the first holding day, gross otherwise

The first rebalance starts from cash (``w_before = 0``), so it pays the cost of buying in.

Schedules and other costs: with a ``schedule`` (:mod:`gradfolio.backtest.schedules`: calendar
or no-trade band) or a cost model other than :class:`ProportionalCost` (square-root impact,
borrow, fixed fees, :class:`~gradfolio.costs.CompositeCost`), the periods are simulated one after
the other by :func:`gradfolio.backtest.path.simulate_path` (wealth tracked in currency from
``initial_wealth``); without them the computation above is unchanged.

Strategies that see what they hold: a :class:`HoldingStrategy` (``needs_holdings = True``;
EIIE's portfolio-vector memory, a reinforcement-learning agent, anything whose target depends on
the current portfolio) is called once per rebalance date, in order, as
``strategy(X (1, C, L, N), before (1, N), previous (1, N)) -> w (1, N)`` with the drifted weights
it holds before the trade and the weights after the previous date's trade (cash, zeros, at the
first date), simulated by :func:`gradfolio.backtest.path.simulate_path`: exactly the weights the
simulation then uses, under any cost model and schedule. The other strategies stay batched.

Retraining: with a :class:`RetrainSchedule`, a strategy that has a ``fit`` hook is refitted at
the first rebalance on or after every ``every`` days, on the returns available at that
decision date (rows ``<= t_p``: an expanding window from the first row, or a rolling window of
``size`` rows), before its weights for the next block of rebalances are computed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gradfolio.backtest.path import simulate_path
from gradfolio.backtest.results import BacktestResult
from gradfolio.backtest.schedules import Schedule
from gradfolio.costs import CompositeCost, CostModel, ProportionalCost, as_composite
from gradfolio.data import ReturnKind, Windows, make_windows
from gradfolio.errors import ConfigError, DataError, InfeasibleError
from gradfolio.progress import Progress
from gradfolio.risk import TRADING_DAYS
from gradfolio.seeding import resolve_device

Strategy = Callable[[Tensor], Tensor]
"""A map from windows ``X (B, C, L, N)`` to weights ``w (B, N)``."""


@runtime_checkable
class HoldingStrategy(Protocol):
    """A strategy whose weights depend on the portfolio it holds (``needs_holdings = True``).

    ``strategy(X, before, previous) -> w``: windows ``X (B, C, L, N)``, the drifted weights held
    before the trade ``before (B, N)`` and the weights right after the previous rebalance date
    ``previous (B, N)`` (EIIE's portfolio-vector memory; zeros = cash before the first date),
    to target weights ``w (B, N)``. :func:`walk_forward` calls it date by date with ``B = 1``;
    a vectorized environment calls it with ``B`` paths at once.
    """

    needs_holdings: bool

    def __call__(self, X: Tensor, before: Tensor, previous: Tensor) -> Tensor: ...


def needs_holdings(strategy: object) -> bool:
    """Whether ``strategy`` is a :class:`HoldingStrategy` (its ``needs_holdings`` attribute is true)."""
    return getattr(strategy, "needs_holdings", False) is True

FitHook = Callable[[pd.DataFrame], None]
"""Called with the simple returns available at a retraining date (rows up to that date)."""


@dataclass(frozen=True)
class RetrainSchedule:
    """When and on what data strategies with a ``fit`` hook are refitted.

    Parameters
    ----------
    every
        Days between retrainings (counted from the first decision date); the retraining happens
        at the first rebalance on or after each multiple of ``every``.
    window
        ``"expanding"`` (all rows up to the decision date) or ``"rolling"`` (the last ``size``).
    size
        Rows of a rolling window (required for ``"rolling"``).
    at_start
        Also fit before the first rebalance (set ``False`` when the strategy was trained on the
        data before the backtest already).
    """

    every: int
    window: Literal["expanding", "rolling"] = "expanding"
    size: int | None = None
    at_start: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"retrain every={self.every!r}: use a whole number of days >= 1.")
        if self.window not in ("expanding", "rolling"):
            raise ConfigError(f"retrain window={self.window!r}: use 'expanding' or 'rolling'.")
        if self.window == "rolling" and (self.size is None or self.size < 1):
            raise ConfigError(f"retrain size={self.size!r}: a rolling window needs its length in days (>= 1).")

    def blocks(self, n_rebalances: int, rebalance_every: int) -> list[tuple[int, int, bool]]:
        """Split rebalances ``0..n-1`` into blocks ``(start, stop, refit)`` between retrainings."""
        days = np.arange(n_rebalances) * rebalance_every
        epoch = days // self.every
        starts = [0, *np.flatnonzero(np.diff(epoch) > 0) + 1]
        stops = [*starts[1:], n_rebalances]
        return [(a, b, a > 0 or self.at_start) for a, b in zip(starts, stops, strict=True)]

    def train_rows(self, returns: pd.DataFrame, position: int) -> pd.DataFrame:
        """Rows of ``returns`` available for a retraining at row ``position`` (inclusive)."""
        first = 0 if self.window == "expanding" else max(0, position + 1 - int(self.size or 0))
        return returns.iloc[first : position + 1]


def decision_windows(
    returns: pd.DataFrame,
    lookback: int,
    gap: int = 0,
    rebalance_every: int = 1,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    kind: ReturnKind = "simple",
) -> tuple[Windows, int]:
    """Decision windows of a walk-forward backtest.

    Parameters
    ----------
    returns
        Simple returns, shape ``(T, N)``, indexed by date.
    lookback, gap, rebalance_every
        Days seen, decision latency, days between rebalances.
    start, end
        First decision date is the first row on or after ``start`` (default: the first row with a
        full lookback); holding days end on or before ``end``.
    kind
        Return kind of ``X`` (``y`` is always simple returns).

    Returns
    -------
    (windows, first)
        ``windows.X`` ``(P, 1, lookback, N)`` what each decision sees, ``windows.y``
        ``(P, 1, rebalance_every, N)`` the holding period (both float64); ``first`` is the row of
        ``returns`` of the first decision date.
    """
    if not isinstance(returns.index, pd.DatetimeIndex):
        raise DataError("returns: the index must be a DatetimeIndex of dates; use gradfolio.data.to_returns.")
    first = lookback - 1
    if start is not None:
        first = max(first, int(returns.index.searchsorted(pd.Timestamp(start), side="left")))
    last = len(returns) if end is None else int(returns.index.searchsorted(pd.Timestamp(end), side="right"))
    table = returns.iloc[first - lookback + 1 : last]
    if len(table) < lookback + gap + rebalance_every:
        raise DataError(
            f"returns: {len(table)} rows from {lookback} days before the first decision date to the end, "
            f"but lookback + gap + rebalance_every = {lookback + gap + rebalance_every} are needed for one "
            "rebalance; move 'start' earlier, 'end' later, or shorten the lookback."
        )
    windows = make_windows(
        table, lookback, gap=gap, horizon=rebalance_every, step=rebalance_every, kind=kind, dtype=torch.float64
    )
    return windows, first


def simulate(weights: Tensor, holding: Tensor, cost: ProportionalCost) -> dict[str, Tensor]:
    """Drift target weights through their holding periods and charge the rebalancing costs.

    Parameters
    ----------
    weights
        Target weights after each rebalance, shape ``(S, P, N)`` (strategies, rebalances, assets).
    holding
        Simple asset returns of each holding period, shape ``(P, k, N)``.
    cost
        Cost model applied to ``(w_before, w_after)``.

    Returns
    -------
    dict with ``net`` and ``gross`` ``(S, P * k)`` daily returns, ``cost`` ``(S, P)`` (fraction of
    wealth paid at each rebalance), ``turnover`` ``(S, P)`` and ``before`` ``(S, P, N)`` drifted
    weights before each rebalance.
    """
    S, P, N = weights.shape
    growth = torch.cumprod(1.0 + holding, dim=1)  # (P, k, N)
    cash = 1.0 - weights.sum(-1, keepdim=True)  # (S, P, 1)
    value = cash + torch.einsum("spn,pkn->spk", weights, growth)  # (S, P, k)
    prev = torch.cat([torch.ones_like(value[..., :1]), value[..., :-1]], dim=-1)
    gross = value / prev - 1.0
    drifted = weights * growth[:, -1] / value[..., -1:]  # (S, P, N)
    before = torch.cat([torch.zeros_like(drifted[:, :1]), drifted[:, :-1]], dim=1)
    paid = cost(before, weights)
    net = gross.clone()
    net[..., 0] = (1.0 - paid) * (1.0 + gross[..., 0]) - 1.0
    return {
        "net": net.reshape(S, -1),
        "gross": gross.reshape(S, -1),
        "cost": paid,
        "turnover": (weights - before).abs().sum(-1),
        "before": before,
    }


def _check(name: str, w: object, X: Tensor, dates: pd.DatetimeIndex) -> Tensor:
    if not isinstance(w, Tensor) or w.shape != (X.shape[0], X.shape[-1]):
        shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise DataError(
            f"strategy '{name}': returned weights of shape {shape} for X of shape {tuple(X.shape)}; "
            "a strategy must map X (B, C, L, N) to w (B, N)."
        )
    bad = ~torch.isfinite(w)
    if bool(bad.any()):
        b, i = (int(v) for v in bad.nonzero()[0])
        raise DataError(
            f"strategy '{name}': non-finite weight for asset {i} at rebalance date {dates[b].date()}; "
            "check the strategy's inputs and parameters."
        )
    return w


def _infeasible_rows(exc: InfeasibleError, strategy: Strategy, X: Tensor) -> Tensor:
    """Boolean mask ``(B,)`` of the windows of ``X`` without a solution.

    Taken from ``exc.rows`` (indices into the batch) when the strategy reports them, as the
    classical ratio portfolios do; otherwise found by calling the strategy on each window.
    """
    bad = torch.zeros(X.shape[0], dtype=torch.bool, device=X.device)
    if exc.rows is not None:
        bad[list(exc.rows)] = True
        return bad
    for b in range(X.shape[0]):
        try:
            strategy(X[b : b + 1])
        except InfeasibleError:
            bad[b] = True
    return bad


def _keep_previous(
    name: str, strategy: Strategy, X: Tensor, dates: pd.DatetimeIndex, previous: Tensor, bad: Tensor
) -> Tensor:
    """Weights of the windows with a solution (one call); the others keep the previous target weights.

    Parameters
    ----------
    X
        Windows of the block, shape ``(B, C, L, N)``.
    previous
        Target weights before the block, shape ``(N,)``.
    bad
        Windows without a solution, boolean ``(B,)``.

    Returns
    -------
    Tensor of shape ``(B, N)``: row ``b`` is the strategy's weights if window ``b`` has a
    solution, else those of the last window before it that has one (``previous`` if none).
    """
    ok = ~bad
    solved = [previous[None]]
    if bool(ok.any()):
        solved.append(_check(name, strategy(X[ok]), X[ok], dates[ok.cpu().numpy()]))
    skipped = [str(d.date()) for d in dates[bad.cpu().numpy()]]
    warnings.warn(
        f"strategy '{name}': no solution at {len(skipped)} rebalance date(s) ({', '.join(skipped[:5])}"
        f"{', ...' if len(skipped) > 5 else ''}); the previous target weights were kept there.",
        stacklevel=4,  # the caller of walk_forward
    )
    return torch.cat(solved)[torch.cumsum(ok, dim=0)]


@contextmanager
def _evaluating(strategy: object) -> Iterator[None]:
    """``strategy`` in eval mode (if it is a module) for the duration, its mode restored after."""
    was_training = getattr(strategy, "training", False)
    if isinstance(strategy, torch.nn.Module):
        strategy.eval()
    try:
        yield
    finally:
        if isinstance(strategy, torch.nn.Module):
            strategy.train(was_training)


def _allocate(
    name: str, strategy: Strategy, X: Tensor, dates: pd.DatetimeIndex, previous: Tensor | None
) -> Tensor:
    """Weights of one block of rebalance dates in one batched call (eval mode, no gradients).

    With ``previous`` (the last target weights, zeros = cash before the first rebalance), an
    :class:`InfeasibleError` of the batched call is answered by one more batched call on the
    windows that have a solution; the others keep the previous target weights.
    """
    with _evaluating(strategy), torch.no_grad():
        try:
            return _check(name, strategy(X), X, dates)
        except InfeasibleError as exc:
            if previous is None:
                raise
            bad = _infeasible_rows(exc, strategy, X)
            return _keep_previous(name, strategy, X, dates, previous.to(X.dtype), bad)


class _HoldingDecide:
    """The ``decide`` callback of :func:`simulate_path` for one :class:`HoldingStrategy`.

    Calls ``strategy(X[p:p+1], before, previous)`` at each candidate date ``p`` (in the strategy's
    dtype, eval mode, no gradients), after running the refit hook of every retraining block that
    starts on or before ``p`` (with gradients and the module's own mode, as for a batched strategy); reports progress at the end of each block; with ``infeasible="keep"`` an
    :class:`InfeasibleError` keeps ``previous`` (named in one warning by :meth:`report`).
    """

    def __init__(
        self,
        name: str,
        strategy: HoldingStrategy,
        X: Tensor,
        dates: pd.DatetimeIndex,
        blocks: list[tuple[int, int, bool]],
        refit: Callable[[int], None] | None,
        progress: Progress | None,
        infeasible: str,
    ) -> None:
        self.name, self.strategy, self.X, self.dates = name, strategy, X, dates
        self.refits = [a for a, _, r in blocks if r] if refit is not None else []
        self.ends = {b - 1: b for _, b, _ in blocks}
        self.refit, self.progress, self.infeasible = refit, progress, infeasible
        self.skipped: list[str] = []
        self.reported = 0

    def __call__(self, p: int, before: Tensor, previous: Tensor) -> Tensor:
        while self.refits and self.refits[0] <= p:
            self.refit(self.refits.pop(0))  # type: ignore[misc]
        x = self.X[p : p + 1]
        try:
            with _evaluating(self.strategy), torch.no_grad():  # the refit above trains as for a batched strategy
                w = self.strategy(x, before.to(x.dtype), previous.to(x.dtype))
            w = _check(self.name, w, x, self.dates[p : p + 1])
        except InfeasibleError:
            if self.infeasible != "keep":
                raise
            self.skipped.append(str(self.dates[p].date()))
            w = previous
        if self.progress is not None and p in self.ends:
            self.progress(self.name, self.ends[p], len(self.dates))
            self.reported = self.ends[p]
        return w

    def report(self) -> None:
        """Warn about the dates without a solution (``infeasible="keep"``), as the batched path does."""
        if self.skipped:
            warnings.warn(
                f"strategy '{self.name}': no solution at {len(self.skipped)} rebalance date(s) "
                f"({', '.join(self.skipped[:5])}{', ...' if len(self.skipped) > 5 else ''}); the previous weights "
                "were kept there.",
                stacklevel=3,
            )
        if self.progress is not None and self.reported < len(self.dates):
            self.progress(self.name, len(self.dates), len(self.dates))


MATRIX_FACTOR = 8
"""How many ``N x N`` matrices a strategy may hold per rebalance date at once (a covariance, its
factor, solver workspaces): a block of ``B`` dates is budgeted ``B * N * N * itemsize * MATRIX_FACTOR``
bytes."""

DEFAULT_BUDGET_FRACTION = 0.25
"""The default memory budget: this fraction of the memory available when the backtest starts."""


def available_memory() -> int:
    """Bytes of memory available now (``psutil`` if installed, else ``MemAvailable`` of ``/proc/meminfo``;
    4 GiB when neither can be read)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 * 2**30


def rebalance_chunk(n_assets: int, itemsize: int, memory_budget: int | None = None) -> int:
    """Rebalance dates allocated in one call so that ``B * N * N * itemsize * MATRIX_FACTOR <= memory_budget``.

    Parameters
    ----------
    n_assets
        ``N``, assets per window.
    itemsize
        Bytes per number (8 for float64).
    memory_budget
        Bytes (default :data:`DEFAULT_BUDGET_FRACTION` of :func:`available_memory`).

    Returns
    -------
    The number of dates per call, at least 1.
    """
    budget = int(available_memory() * DEFAULT_BUDGET_FRACTION) if memory_budget is None else int(memory_budget)
    return max(1, budget // max(1, n_assets * n_assets * itemsize * MATRIX_FACTOR))


def _allocate_chunked(
    name: str, strategy: Strategy, X: Tensor, dates: pd.DatetimeIndex, previous: Tensor | None, chunk: int
) -> Tensor:
    """:func:`_allocate` over slices of at most ``chunk`` dates; each slice's ``previous`` is the last
    target weights before it, so the weights equal those of one call on the whole block."""
    if X.shape[0] <= chunk:
        return _allocate(name, strategy, X, dates, previous)
    parts: list[Tensor] = []
    for i in range(0, X.shape[0], chunk):
        prev = parts[-1][-1] if parts and previous is not None else previous
        parts.append(_allocate(name, strategy, X[i : i + chunk], dates[i : i + chunk], prev))
    return torch.cat(parts)


def _flags_check(max_gross: float) -> None:
    if not max_gross > 0:
        raise ConfigError(f"max_gross={max_gross!r}: use a positive gross exposure (sum of |weights|), e.g. 3.")


def _market_context(
    needs: set[str], windows: Windows, returns: pd.DataFrame, volume: pd.DataFrame | None, kind: str, device: torch.device
) -> dict[str, Tensor]:
    """Per-rebalance ``volatility`` and ``adv`` ``(P, N)`` over each decision's lookback rows (float64)."""
    context: dict[str, Tensor] = {}
    R = windows.X[:, 0].to(torch.float64)  # (P, L, N)
    if kind == "log":
        R = torch.expm1(R)
    if "volatility" in needs:
        context["volatility"] = R.std(dim=1).to(device)
    if "adv" in needs:
        if volume is None:
            raise DataError(
                "volume: the cost model needs the average daily traded value of each asset (square-root impact); "
                "pass walk_forward(..., volume=DataFrame of daily traded value, same index and columns as returns)."
            )
        if not isinstance(volume, pd.DataFrame) or list(volume.columns) != list(returns.columns):
            raise DataError("volume: give a DataFrame with the columns of returns, in the same order.")
        table = volume.reindex(returns.index)
        if bool(table.isna().to_numpy().any()):
            day = table.index[table.isna().any(axis=1).to_numpy()][0]
            raise DataError(f"volume: no value for {day.date()} (every date of returns needs one); fill the volume data.")
        L = R.shape[1]
        ends = returns.index.get_indexer(windows.dates)
        csum = np.vstack([np.zeros((1, table.shape[1])), np.cumsum(table.to_numpy(dtype=np.float64), axis=0)])
        adv = (csum[ends + 1] - csum[ends + 1 - L]) / L
        context["adv"] = torch.as_tensor(adv, dtype=torch.float64, device=device)
    return context


def walk_forward(
    strategies: Mapping[str, Strategy],
    returns: pd.DataFrame,
    lookback: int,
    *,
    gap: int = 0,
    rebalance_every: int = 1,
    cost: CostModel | CompositeCost | float = 0.0,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    kind: ReturnKind = "simple",
    retrain: RetrainSchedule | None = None,
    fit_hooks: Mapping[str, FitHook] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    dtypes: Mapping[str, torch.dtype] | None = None,
    periods_per_year: float = TRADING_DAYS,
    progress: Progress | None = None,
    infeasible: Literal["raise", "keep"] = "raise",
    schedule: Schedule | None = None,
    volume: pd.DataFrame | None = None,
    initial_wealth: float | None = None,
    memory_budget: int | None = None,
    max_gross: float = 3.0,
) -> BacktestResult:
    """Walk every strategy forward over the same rebalance dates and holding days.

    Parameters
    ----------
    strategies
        Name -> strategy ``X (B, 1, lookback, N) -> w (B, N)``.
    returns
        Simple returns of the whole history, shape ``(T, N)``, indexed by date (rows before
        ``start`` feed the first lookback and expanding retraining windows).
    lookback, gap, rebalance_every
        Days seen per decision, decision latency, days between rebalances (see module doc).
    cost
        A :class:`ProportionalCost` or one rate (fraction of traded value), or any cost model of
        :mod:`gradfolio.costs` (``SpreadImpactCost``, ``BorrowCost``, ``FixedFee``,
        ``CompositeCost`` of several).
    start, end
        Backtest dates (see :func:`decision_windows`).
    kind
        Return kind of the strategies' input ``X``.
    retrain, fit_hooks
        Retraining schedule and, per strategy name, the hook ``fit(returns_up_to_t)``.
        Strategies without a hook are never refitted.
    device, dtype
        Where and in which floating type the strategies are evaluated; the simulation itself
        runs in float64 on the same device.
    dtypes
        Per strategy name, a floating type that replaces ``dtype`` for that strategy (e.g.
        float64 for the classical portfolios next to a float32 network). The windows are built
        in float64 and cast once per dtype.
    periods_per_year
        Annualization of the metrics.
    progress
        Optional callback ``progress(strategy, done, total)`` after each block of rebalances.
    infeasible
        When a strategy raises :class:`~gradfolio.errors.InfeasibleError` (e.g. a maximum-ratio
        portfolio when no asset has a positive mean): ``"raise"`` stops the backtest; ``"keep"``
        allocates the block's other windows in one more batched call and keeps the previous
        target weights (cash before the first rebalance) at the windows without a solution,
        with a warning. The windows without a solution are read from the error's ``rows``
        (batch indices) when the strategy sets it, else found by calling it window by window.
    schedule
        A :class:`~gradfolio.backtest.schedules.CalendarSchedule` (the strategies are evaluated
        only at its trading dates) or :class:`~gradfolio.backtest.schedules.ThresholdSchedule`;
        default: trade to the target at every candidate date.
    volume
        Daily traded value per asset in currency, ``(T, N)`` with the index and columns of
        ``returns``; needed by square-root impact (its ``adv`` is the mean over each decision's
        lookback rows, its ``volatility`` the standard deviation of the returns there).
    initial_wealth
        Starting wealth in currency, needed by costs in currency (``FixedFee``, impact); the
        wealth is then tracked net of every cost through the backtest.
    memory_budget
        Bytes a strategy may use for one call: the rebalance dates of a block are allocated in
        slices of :func:`rebalance_chunk` dates (``B * N * N * itemsize * MATRIX_FACTOR`` bytes
        at most; a full covariance per date), default a quarter of the available memory. The
        weights are the same as with one call.
    max_gross
        Gross exposure ``sum_i |w_i|`` above which a strategy is flagged in
        :meth:`BacktestResult.flags` (so is a wealth that reaches zero or below).

    Returns
    -------
    BacktestResult
    """
    if not strategies:
        raise ConfigError("strategies: give at least one strategy to backtest.")
    if infeasible not in ("raise", "keep"):
        raise ConfigError(f"infeasible={infeasible!r}: use 'raise' or 'keep'.")
    cost_model = cost if callable(cost) else ProportionalCost(cost)
    on_path = schedule is not None or not isinstance(cost_model, ProportionalCost)
    needs = set(getattr(cost_model, "needs", ()))
    if "wealth" in needs and initial_wealth is None:
        raise ConfigError(f"initial_wealth: {cost_model!r} charges in currency; give the starting wealth (e.g. 1e6).")
    if initial_wealth is not None and not initial_wealth > 0:
        raise ConfigError(f"initial_wealth={initial_wealth!r}: use a positive amount of currency.")
    hooks = dict(fit_hooks or {})
    unknown = sorted(set(hooks) - set(strategies))
    if unknown:
        raise ConfigError(f"fit_hooks: {unknown} are not strategies; use names from {sorted(strategies)}.")
    per_strategy = dict(dtypes or {})
    unknown = sorted(set(per_strategy) - set(strategies))
    if unknown:
        raise ConfigError(f"dtypes: {unknown} are not strategies; use names from {sorted(strategies)}.")
    for name, value in [("dtype", dtype), *((f"dtypes[{n!r}]", d) for n, d in per_strategy.items())]:
        if not isinstance(value, torch.dtype) or not value.is_floating_point:
            raise ConfigError(f"{name}={value!r}: use a floating torch dtype (torch.float32 or torch.float64).")
    _flags_check(max_gross)
    if memory_budget is not None and not (isinstance(memory_budget, int) and memory_budget > 0):
        raise ConfigError(f"memory_budget={memory_budget!r}: give a positive number of bytes (e.g. 8 * 2**30).")
    dev = resolve_device(device)
    windows, first = decision_windows(returns, lookback, gap, rebalance_every, start, end, kind)
    P, k = len(windows), rebalance_every
    inputs: dict[torch.dtype, Tensor] = {}

    def windows_of(name: str) -> Tensor:
        """The decision windows in ``name``'s floating type, cast once per type."""
        kind_of = per_strategy.get(name, dtype)
        if kind_of not in inputs:
            inputs[kind_of] = windows.X.to(device=dev, dtype=kind_of)
        return inputs[kind_of]

    blocks = retrain.blocks(P, k) if retrain is not None else [(0, P, False)]
    mask = np.ones(P, dtype=bool) if schedule is None else np.asarray(schedule.mask(windows.dates), dtype=bool)
    batched = {n: s for n, s in strategies.items() if not needs_holdings(s)}
    targets = []
    for name, strategy in batched.items():
        X = windows_of(name)
        chunk = rebalance_chunk(X.shape[-1], X.element_size(), memory_budget)
        parts: list[Tensor] = []
        for a, b, refit in blocks:
            if refit and name in hooks and retrain is not None:
                hooks[name](retrain.train_rows(returns, first + a * k))
            previous = None
            if infeasible == "keep":
                previous = parts[-1][-1] if parts else torch.zeros(X.shape[-1], device=dev, dtype=X.dtype)
            if mask[a:b].all():
                parts.append(_allocate_chunked(name, strategy, X[a:b], windows.dates[a:b], previous, chunk))
            else:  # a calendar schedule: evaluate only at its trading dates
                block = torch.zeros(b - a, X.shape[-1], device=dev, dtype=X.dtype)
                idx = np.flatnonzero(mask[a:b])
                if len(idx):
                    block[idx] = _allocate_chunked(
                        name, strategy, X[a + idx], windows.dates[a + idx], previous, chunk
                    )
                    block[idx[-1] :] = block[idx[-1]]  # carried as "previous" target
                elif previous is not None:
                    block[:] = previous
                parts.append(block)
            if progress is not None:
                progress(name, b, P)
        targets.append(torch.cat(parts).to(torch.float64))
    holding = windows.y[:, 0].to(device=dev, dtype=torch.float64)
    context = _market_context(needs, windows, returns, volume, kind, dev) if needs else {}
    keys = ("net", "gross", "cost_daily", "turnover", "before", "after")
    rows: dict[str, dict[str, Tensor]] = {}
    if batched:
        if on_path:
            sim = simulate_path(
                torch.stack(targets), holding, as_composite(cost_model), trade=torch.as_tensor(mask),
                schedule=schedule, context=context, initial_wealth=initial_wealth,
            )
        else:
            sim = simulate(torch.stack(targets), holding, cost_model)
            cost_days = torch.zeros_like(sim["net"]).reshape(len(batched), P, k)
            cost_days[..., 0] = sim["cost"]
            sim["cost_daily"] = cost_days.reshape(len(batched), -1)
            sim["after"] = torch.stack(targets)
        rows.update({n: {key: sim[key][s] for key in keys} for s, n in enumerate(batched)})
    for name, strategy in strategies.items():
        if name in batched:
            continue
        hook = hooks.get(name)
        refit = None
        if hook is not None and retrain is not None:
            def refit(a: int, hook: FitHook = hook, retrain: RetrainSchedule = retrain) -> None:
                hook(retrain.train_rows(returns, first + a * k))
        decide = _HoldingDecide(
            name, strategy, windows_of(name), windows.dates, blocks, refit, progress, infeasible  # type: ignore[arg-type]
        )
        sim = simulate_path(
            decide, holding, as_composite(cost_model), trade=torch.as_tensor(mask), schedule=schedule,
            context=context, initial_wealth=initial_wealth,
        )
        decide.report()
        rows[name] = {key: sim[key][0] for key in keys}
    names = list(strategies)
    sim = {key: torch.stack([rows[n][key] for n in names]) for key in keys}
    targets = list(sim["after"])
    days = returns.index[first + gap + 1 : first + gap + 1 + P * k]

    def daily(key: str) -> pd.DataFrame:
        return pd.DataFrame(sim[key].T.cpu().numpy(), index=days, columns=names).rename_axis("date")

    def per_rebalance(values: Tensor) -> pd.DataFrame:
        return pd.DataFrame(values.T.cpu().numpy(), index=windows.dates, columns=names).rename_axis("date")

    def frames(values: Tensor) -> dict[str, pd.DataFrame]:
        assets = list(windows.assets)
        return {
            n: pd.DataFrame(values[s].cpu().numpy(), index=windows.dates, columns=assets).rename_axis("date")
            for s, n in enumerate(names)
        }

    return BacktestResult(
        returns=daily("net"),
        gross_returns=daily("gross"),
        costs=daily("cost_daily"),
        turnover=per_rebalance(sim["turnover"]),
        weights=frames(torch.stack(targets)),
        weights_before=frames(sim["before"]),
        periods_per_year=periods_per_year,
        max_gross=max_gross,
    )


__all__ = ["HoldingStrategy", "needs_holdings", "available_memory", "rebalance_chunk", "MATRIX_FACTOR", "Strategy", "FitHook", "Progress", "RetrainSchedule", "decision_windows", "simulate", "walk_forward"]
