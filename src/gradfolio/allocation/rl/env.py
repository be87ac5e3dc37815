"""A batched portfolio environment on torch: ``B`` paths stepped in one tensor computation.

Timing and accounting are those of :func:`gradfolio.backtest.walk_forward` (``L = lookback``,
``g = gap``, ``k = rebalance_every``; rows of the simple-return table ``R (T, N)``). An episode of
``H`` steps starts at a decision row ``t_0`` (random, seeded, or fixed); step ``p`` decides at row
``t_p = t_0 + p k``::

    observation   X_p = R[t_p - L + 1 .. t_p] (C=1, L, N) (log1p of it for kind="log") and the
                  drifted weights held before the trade, w_before (N,)
    action        scores a (N,) -> w = allocator(a)         (checked against the constraints)
    trade         cost_p = sum_i c_i |w_i - w_before_i|     (the backtest's ProportionalCost)
    hold          rows t_p + g + 1 .. t_p + g + k:  G_{j,i} = prod_{s<=j} (1 + R_{s,i})
                  V_j = (1 - sum_i w_i) + sum_i w_i G_{j,i},   gross_j = V_j / V_{j-1} - 1
                  net_0 = (1 - cost_p)(1 + gross_0) - 1,       net_j = gross_j (j > 0)
    drift         w_before(p+1) = w_i G_{k-1,i} / V_{k-1};    wealth W_{p+1} = W_p prod_j (1 + net_j)
    reward        log(W_{p+1} / W_p), or the differential Sharpe ratio of R_p = W_{p+1} / W_p - 1

The first step starts from cash (``w_before = 0``) and pays for buying in, as the backtest does,
so an episode's wealth and daily net returns equal ``walk_forward``'s for the same weights.
Episodes end (``done``; a time limit, so a truncation) after ``H`` steps; :meth:`PortfolioEnv.reset`
restarts all paths or those of a mask. The Gymnasium and Stable-Baselines3 adapters are in
:mod:`gradfolio.allocation.rl.adapters`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from gradfolio.allocation.rl.actions import ActionMap
from gradfolio.allocation.rl.rewards import Reward, differential_sharpe
from gradfolio.costs import ProportionalCost
from gradfolio.errors import ConfigError, DataError
from gradfolio.seeding import make_generator, resolve_device
from gradfolio.solvers import PortfolioConstraints

WINDOW_COPY_BYTES = 2**28
"""Every window is stored once (``(T - L + 1) L N`` numbers) when it fits in this many bytes;
larger tables are read through a strided view of the returns (slower gathers, no copy)."""


class PortfolioEnv:
    """``B`` portfolio paths over one return table, stepped together (see the module docstring).

    Parameters
    ----------
    returns
        Simple returns ``(T, N)``: a DataFrame (its columns name the assets) or a tensor.
    lookback, gap, rebalance_every
        ``L``, ``g``, ``k`` as in :func:`~gradfolio.backtest.walk_forward`.
    n_envs
        ``B``, paths stepped at once.
    episode_length
        ``H``, steps per episode; ``None``: from the start to the last full holding period
        (fixed starts only).
    start
        ``"random"`` (uniform over the rows that leave ``H`` steps, from ``seed``), ``"first"``
        (the first row with a full lookback, as ``walk_forward``), a row index, or one row per path.
    start_rows
        With ``start="random"``: draw the starts uniformly among these decision rows only (e.g. the
        rows whose whole episode lies in the training part of a cross-validation split); each must
        leave ``H`` steps. ``None``: every row that leaves ``H`` steps.
    cost
        Proportional cost rate(s) (one, or one per asset) or a :class:`~gradfolio.costs.ProportionalCost`.
    allocator, allocator_params, constraints
        The action map (:class:`~gradfolio.allocation.rl.actions.ActionMap`).
    reward
        ``"log"`` or ``"differential_sharpe"`` (:mod:`~gradfolio.allocation.rl.rewards`).
    eta
        Adaptation rate of the differential Sharpe ratio, in ``(0, 1)``.
    kind
        Return kind of the observed window (``"simple"`` or ``"log"``), as ``walk_forward(kind=...)``.
    obs_scale
        Factor applied to the window in :meth:`flat_observation` (returns are small numbers).
    seed
        Seed of the random starts.
    device, dtype
        Where and in which float type paths are simulated (float64 by default: exact accounting).
    """

    def __init__(
        self,
        returns: pd.DataFrame | Tensor,
        lookback: int,
        *,
        gap: int = 0,
        rebalance_every: int = 1,
        n_envs: int = 1,
        episode_length: int | None = None,
        start: Literal["random", "first"] | int | Sequence[int] = "random",
        start_rows: Sequence[int] | np.ndarray | Tensor | None = None,
        cost: float | Sequence[float] | ProportionalCost = 0.0,
        allocator: str | nn.Module = "softmax",
        allocator_params: Mapping[str, Any] | None = None,
        constraints: PortfolioConstraints | Mapping[str, Any] | None = None,
        reward: Reward = "log",
        eta: float = 0.01,
        kind: Literal["simple", "log"] = "simple",
        obs_scale: float = 1.0,
        seed: int | None = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = dtype
        if isinstance(returns, pd.DataFrame):
            self.assets = [str(c) for c in returns.columns]
            values = torch.as_tensor(np.array(returns.to_numpy(dtype=np.float64)))
        elif isinstance(returns, Tensor):
            values = returns.detach().to(torch.float64).cpu()
            self.assets = [f"asset_{i}" for i in range(values.shape[-1])] if values.ndim == 2 else []
        else:
            raise DataError(f"PortfolioEnv: returns is a {type(returns).__name__}; give a (T, N) DataFrame or tensor.")
        if values.ndim != 2 or not bool(torch.isfinite(values).all()) or bool((values <= -1).any()):
            raise DataError(
                "PortfolioEnv: returns must be a (T, N) table of finite simple returns > -1; clean the data "
                "(gradfolio.data.to_returns)."
            )
        for name, v in (("lookback", lookback), ("rebalance_every", rebalance_every), ("n_envs", n_envs)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"PortfolioEnv: {name}={v!r} must be a whole number >= 1.")
        if not isinstance(gap, int) or gap < 0:
            raise ConfigError(f"PortfolioEnv: gap={gap!r} must be a whole number >= 0.")
        if reward not in ("log", "differential_sharpe"):
            raise ConfigError(f"PortfolioEnv: reward={reward!r}; use 'log' or 'differential_sharpe'.")
        if not 0 < eta < 1:
            raise ConfigError(f"PortfolioEnv: eta={eta!r} must lie in (0, 1) (e.g. 0.01).")
        if kind not in ("simple", "log"):
            raise ConfigError(f"PortfolioEnv: kind={kind!r}; use 'simple' or 'log'.")
        T, N = values.shape
        self.T, self.N, self.L, self.gap, self.k, self.B = T, N, lookback, gap, rebalance_every, n_envs
        self.first_row, self.last_row = lookback - 1, T - 1 - gap - rebalance_every  # decision rows
        if self.last_row < self.first_row:
            raise DataError(
                f"PortfolioEnv: {T} rows are too few for lookback={lookback}, gap={gap}, rebalance_every="
                f"{rebalance_every}; give at least {lookback + gap + rebalance_every} rows."
            )
        self.reward_kind, self.eta, self.kind, self.obs_scale = reward, float(eta), kind, float(obs_scale)
        self.cost = cost if isinstance(cost, ProportionalCost) else ProportionalCost(cost)
        if self.cost.rate.ndim == 1 and self.cost.rate.shape[0] != N:
            raise ConfigError(f"PortfolioEnv: {self.cost.rate.shape[0]} cost rates for {N} assets; give one per asset.")
        self.action_map = ActionMap(N, allocator, allocator_params, constraints)
        R = values.to(self.device, dtype)
        seen = torch.log1p(R) if kind == "log" else R
        windows = seen.unfold(0, lookback, 1).permute(0, 2, 1)  # (T - L + 1, L, N), window ending at row L-1+i
        small = windows.numel() * windows.element_size() <= WINDOW_COPY_BYTES
        self._windows = windows.contiguous() if small else windows  # a copy gathers 2-4x faster
        self._growth = torch.cumprod(1.0 + R.unfold(0, rebalance_every, 1).permute(0, 2, 1), dim=1)  # (T-k+1, k, N)
        self._start = start
        self.max_steps = (self.last_row - self.first_row) // rebalance_every + 1
        self.H = self._episode_length(episode_length, start)
        self._start_rows = self._candidate_rows(start_rows, start)
        self.generator = make_generator(seed, self.device) if seed is not None else torch.Generator(self.device)
        self.seed = seed
        z = torch.zeros(n_envs, N, device=self.device, dtype=dtype)
        self.t = torch.full((n_envs,), self.first_row, dtype=torch.long, device=self.device)
        self.steps = torch.zeros(n_envs, dtype=torch.long, device=self.device)
        self.before, self.previous = z.clone(), z.clone()
        self.wealth = torch.ones(n_envs, device=self.device, dtype=dtype)
        self.A, self.Bm = torch.zeros_like(self.wealth), torch.zeros_like(self.wealth)
        self._X = self._gather()

    # ------------------------------------------------------------------ starts
    def _fixed_rows(self, start: Any) -> Tensor | None:
        if start == "random":
            return None
        if start == "first":
            rows = [self.first_row] * self.B
        elif isinstance(start, (int, np.integer)):
            rows = [int(start)] * self.B
        else:
            rows = [int(s) for s in start]
            if len(rows) != self.B:
                raise ConfigError(f"PortfolioEnv: start has {len(rows)} rows for n_envs={self.B}; give one per path.")
        for r in rows:
            if not self.first_row <= r <= self.last_row:
                raise ConfigError(
                    f"PortfolioEnv: start row {r} is outside [{self.first_row}, {self.last_row}], the decision rows "
                    "with a full lookback and a full holding period."
                )
        return torch.as_tensor(rows, dtype=torch.long, device=self.device)

    def _candidate_rows(self, rows: Any, start: Any) -> Tensor | None:
        if rows is None:
            return None
        if start != "random":
            raise ConfigError(f"PortfolioEnv: start_rows needs start='random' (got start={start!r}).")
        values = torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(-1), device=self.device)
        latest = self.last_row - (self.H - 1) * self.k
        if values.numel() == 0:
            raise DataError(
                f"PortfolioEnv: start_rows is empty: no decision row leaves an episode of {self.H} steps; give more "
                "rows or a shorter episode_length."
            )
        bad = (values < self.first_row) | (values > latest)
        if bool(bad.any()):
            raise ConfigError(
                f"PortfolioEnv: start row {int(values[bad][0])} of start_rows is outside [{self.first_row}, {latest}], "
                f"the rows with a full lookback that leave {self.H} steps."
            )
        return values

    def _episode_length(self, H: int | None, start: Any) -> int:
        rows = self._fixed_rows(start)
        if H is None:
            if rows is None:
                raise ConfigError("PortfolioEnv: start='random' needs an episode_length (steps per episode).")
            return int((self.last_row - int(rows.max())) // self.k + 1)
        if not isinstance(H, int) or H < 1 or H > self.max_steps:
            raise ConfigError(f"PortfolioEnv: episode_length={H!r} must lie in [1, {self.max_steps}] for this data.")
        latest = int(rows.max()) if rows is not None else self.first_row
        if latest + (H - 1) * self.k > self.last_row:
            raise ConfigError(f"PortfolioEnv: episode_length={H} runs past the data from start row {latest}; shorten it.")
        return H

    # ------------------------------------------------------------------ API
    def reset(self, mask: Tensor | None = None, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """Start new episodes on all paths (or those of the boolean ``mask (B,)``); ``(X, before)`` of all paths.

        ``seed`` reseeds the random starts first.
        """
        if seed is not None:
            self.generator.manual_seed(int(seed))
            self.seed = seed
        mask = torch.ones(self.B, dtype=torch.bool, device=self.device) if mask is None else mask.to(self.device)
        rows = self._fixed_rows(self._start)
        if rows is None and self._start_rows is not None:
            pick = torch.randint(len(self._start_rows), (self.B,), generator=self.generator, device=self.device)
            rows = self._start_rows[pick]
        elif rows is None:
            span = self.last_row - (self.H - 1) * self.k - self.first_row + 1
            rows = self.first_row + torch.randint(span, (self.B,), generator=self.generator, device=self.device)
        self.t = torch.where(mask, rows, self.t)
        zero = torch.zeros_like(self.before)
        m = mask[:, None]
        self.before, self.previous = torch.where(m, zero, self.before), torch.where(m, zero, self.previous)
        self.steps = torch.where(mask, torch.zeros_like(self.steps), self.steps)
        for name in ("A", "Bm"):
            setattr(self, name, torch.where(mask, torch.zeros_like(self.A), getattr(self, name)))
        self.wealth = torch.where(mask, torch.ones_like(self.wealth), self.wealth)
        self._X = self._gather()
        return self.observation()

    def _gather(self) -> Tensor:
        """The windows ``(B, 1, L, N)`` of the paths' decision rows ``t`` (one gather per step)."""
        return self._windows.index_select(0, self.t - self.first_row)[:, None]

    def observation(self) -> tuple[Tensor, Tensor]:
        """``X (B, 1, L, N)`` the windows the paths see now and ``before (B, N)`` the weights they hold."""
        return self._X, self.before.clone()

    def flat_observation(self) -> Tensor:
        """``(B, L * N + N)``: the window (times ``obs_scale``) row by row, then the held weights."""
        X, before = self.observation()
        return flatten_observation(X, before, self.obs_scale)

    def step(self, action: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor, Tensor, dict[str, Tensor]]:
        """Trade every path to ``allocator(action)`` and hold for ``k`` days.

        Parameters
        ----------
        action
            Scores ``(B, N)`` (weights for ``allocator="weights"``).

        Returns
        -------
        ``((X, before), reward (B,), done (B,), info)``: the next observation, the reward, whether
        the episode ended (``H`` steps), and ``info`` with ``weights`` ``(B, N)`` (after the trade),
        ``before`` ``(B, N)``, ``cost``, ``turnover`` ``(B,)``, ``net`` and ``gross`` ``(B, k)``
        daily returns, ``wealth`` ``(B,)`` after the period.

        Raises
        ------
        DataError
            A NaN, a wrong shape, or weights that violate the constraints (naming the step), or a
            path stepped past the end of its episode (reset it first).
        """
        if bool((self.steps >= self.H).any()):
            b = int((self.steps >= self.H).nonzero()[0])
            raise DataError(f"PortfolioEnv.step: environment {b} finished its {self.H}-step episode; call reset first.")
        X, before = self.observation()
        w = self.action_map(action.to(self.device) if isinstance(action, Tensor) else action, X, before, self.steps)
        paid = self.cost(before, w)  # (B,)
        growth = self._growth[self.t + self.gap + 1]  # (B, k, N)
        value = (1.0 - w.sum(-1, keepdim=True)) + torch.einsum("bn,bkn->bk", w, growth)
        prev = torch.cat([torch.ones_like(value[:, :1]), value[:, :-1]], dim=-1)
        gross = value / prev - 1.0
        net = torch.cat([((1.0 - paid) * (1.0 + gross[:, 0]) - 1.0)[:, None], gross[:, 1:]], dim=-1)
        period = torch.prod(1.0 + net, dim=-1)  # W_{p+1} / W_p
        if self.reward_kind == "log":
            reward = torch.log1p(net).sum(-1)
        else:
            reward, self.A, self.Bm = differential_sharpe(period - 1.0, self.A, self.Bm, self.eta)
        info = {
            "weights": w, "before": before, "cost": paid, "turnover": (w - before).abs().sum(-1),
            "net": net, "gross": gross, "wealth": self.wealth * period, "step": self.steps.clone(),
        }
        self.wealth = info["wealth"]
        self.previous = w
        self.before = w * growth[:, -1] / value[:, -1:]
        self.steps = self.steps + 1
        done = self.steps >= self.H
        self.t = torch.where(done, self.t, self.t + self.k)
        self._X = self._gather()
        return self.observation(), reward, done, info

    @property
    def observation_size(self) -> int:
        """Length of :meth:`flat_observation`'s rows, ``L * N + N``."""
        return self.L * self.N + self.N


def flatten_observation(X: Tensor, before: Tensor, scale: float = 1.0) -> Tensor:
    """``X (B, C, L, N)`` (channel 0) and ``before (B, N)`` -> ``(B, L * N + N)``: the agent's observation."""
    return torch.cat([X[:, 0].reshape(X.shape[0], -1) * scale, before], dim=-1)


__all__ = ["PortfolioEnv", "flatten_observation"]
