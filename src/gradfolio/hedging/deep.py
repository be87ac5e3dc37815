"""Deep hedging through the differentiable simulator (Buehler, Gonon, Teichmann & Wood, "Deep hedging", 2019).

The hedging environment is written in torch, and :meth:`HedgingEnv.step` is differentiable with
respect to the action (checked against central differences in ``tests/hedging/test_deep.py``):
the action map (a clamp to ``[0, a_max]``, then an affine map onto the contract range), the cost
``kappa * price * |contracts|``, the option books (in-place slot updates that autograd tracks)
and the revaluation are all differentiable almost everywhere. The clamp has zero gradient
outside the action bounds, which a sigmoid policy never reaches, and ``|contracts|`` has the
subgradient 0 at 0. So a policy network can be trained by backpropagating a risk measure of the
episode's total P&L through the simulated paths directly, with no critic, no replay buffer and
no exploration: every step simulates a fresh batch of paths, plays the whole episode with the
policy and descends ``risk(total P&L)``.

- :func:`pnl_risk`: the risk measures minimised (``cvar``, ``entropic``, ``mean_std``).
- :class:`EnvPolicy`: a policy on :class:`~gradfolio.hedging.env.HedgingEnv` with the RL
  agents' state and action map (features scaled, greek-neutral actions appended, ``a_max *
  sigmoid`` output), so deep hedging is a strategy beside GVDH/ANADDH and the baselines.
- :func:`env_pnl`: the differentiable total P&L of a policy on an environment episode.
- :class:`GbmCallHedge`: the textbook deep-hedging problem (a short call hedged with the stock
  under geometric Brownian motion with proportional costs, pfhedge's convention), the
  cross-check against Black-Scholes and pfhedge.

:mod:`~gradfolio.hedging.deep_training` trains any of them (:class:`DeepHedgeTrainer`).
Shapes: P&L ``(paths,)``, states ``(paths, features)``, actions and hedges ``(paths,)`` per day.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gradfolio.errors import ConfigError
from gradfolio.hedging.blackscholes import live_greeks_unchecked
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.rl.networks import Actor, FeatureScaler, mlp
from gradfolio.risk import cvar
from gradfolio.seeding import make_generator

RiskName = Literal["cvar", "entropic", "mean_std"]
Simulator = Callable[[nn.Module, int], torch.Tensor]
"""``simulate(policy, seed) -> total P&L (paths,)``, differentiable in the policy's parameters."""


class DeepHedgeConfig(BaseModel):
    """Policy network and risk measure of a deep hedger.

    Attributes
    ----------
    hidden
        Hidden widths of the policy network.
    risk
        Risk of the total P&L ``X`` minimised: ``"cvar"`` (expected shortfall of ``X`` at
        ``level``, :func:`gradfolio.risk.cvar`), ``"entropic"`` (``log E[exp(-lambda X)] / lambda``
        with ``lambda = risk_aversion``, Buehler et al.'s and pfhedge's default) or ``"mean_std"``
        (``-(mean - risk_aversion * std)``).
    level
        Confidence level of ``cvar``.
    risk_aversion
        ``lambda`` of ``entropic``, ``c`` of ``mean_std``.
    lr
        Adam's learning rate.
    greek_features
        :class:`EnvPolicy` only: append the gamma- and vega-neutral actions to the features.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: tuple[int, ...] = (64, 64)
    risk: RiskName = "cvar"
    level: float = Field(0.95, gt=0, lt=1)
    risk_aversion: float = Field(1.0, gt=0)
    lr: float = Field(1e-3, gt=0)
    greek_features: bool = True


def pnl_risk(pnl: torch.Tensor, risk: RiskName = "cvar", level: float = 0.95, risk_aversion: float = 1.0) -> torch.Tensor:
    """Risk of the P&L ``(paths,)`` (a scalar to minimise, lower is better), see :class:`DeepHedgeConfig`."""
    if risk == "cvar":
        return cvar(pnl, level)
    if risk == "entropic":
        lam = risk_aversion
        return (torch.logsumexp(-lam * pnl, dim=-1) - math.log(pnl.shape[-1])) / lam
    if risk == "mean_std":
        return -(pnl.mean(dim=-1) - risk_aversion * pnl.std(dim=-1, correction=0))
    raise ConfigError(f"pnl_risk: risk={risk!r} is unknown; use 'cvar', 'entropic' or 'mean_std'.")


class EnvPolicy(nn.Module):
    """Deterministic policy on :class:`HedgingEnv` states: ``state (P, n_state) -> action (P,)`` in ``[0, a_max]``.

    The RL agents' state and action map: the state (plus, with ``greek_features``, the gamma- and
    vega-neutral actions of the environment's action map) standardised by a
    :class:`~gradfolio.hedging.rl.networks.FeatureScaler`, then ``a_max * sigmoid(MLP)``
    (:class:`~gradfolio.hedging.rl.networks.Actor`). Built on ``env``'s device and dtype,
    initialised with ``seed`` (the global RNG is left alone).
    """

    def __init__(self, env: HedgingEnv, config: DeepHedgeConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else DeepHedgeConfig()
        self.env = env
        n = env.n_features + (2 if cfg.greek_features else 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.scaler = FeatureScaler(n)
            self.actor = Actor(n, cfg.hidden, env.action_high)
        self.to(device=env.device, dtype=env.dtype)

    def raw_features(self, state: torch.Tensor) -> torch.Tensor:
        """State ``(P, n_state)`` with the greek-neutral actions appended ``(P, n_state + 2)`` (or as is)."""
        if not self.config.greek_features:
            return state
        n_gamma, n_vega = self.env.neutral_contracts(state)
        extra = [self.env.contracts_to_action(state, n_gamma), self.env.contracts_to_action(state, n_vega)]
        return torch.cat([state, torch.stack(extra, dim=1)], dim=1)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Actions ``(P,)`` in ``[0, a_max]``."""
        return self.actor(self.scaler(self.raw_features(state)))

    @torch.no_grad()
    def fit_scaler(self, seed: int) -> None:
        """Fit the scaler on the states of one episode played with uniform random actions (seeded)."""
        env, gen = self.env, make_generator(seed, self.env.device)
        states = [env.reset(seed)]
        for _ in range(env.config.n_days):
            action = env.action_high * torch.rand(env.n_paths, generator=gen, device=env.device, dtype=env.dtype)
            states.append(env.step(action)[0])
        self.scaler.fit(self.raw_features(torch.cat(states[:-1])))

    def policy(self, state: torch.Tensor) -> torch.Tensor:
        """Greedy action without gradients (an environment :data:`~gradfolio.hedging.env.Policy`)."""
        with torch.no_grad():
            return self(state)


def env_pnl(env: HedgingEnv, policy: Callable[[torch.Tensor], torch.Tensor], seed: int) -> torch.Tensor:
    """Total P&L ``(paths,)`` of ``policy`` on the episode ``seed`` of ``env``, differentiable in the policy.

    The state of each day depends on the earlier actions (the hedges held), so the gradient flows
    through the whole episode, as in Buehler et al.'s deep hedging.
    """
    state = env.reset(seed)
    total = torch.zeros(env.n_paths, device=env.device, dtype=env.dtype)
    for _ in range(env.config.n_days):
        state, _, _, info = env.step(policy(state))
        total = total + info["pnl"]
    return total


def env_simulator(env: HedgingEnv) -> Simulator:
    """``(policy, seed) -> env_pnl(env, policy, seed)`` for :class:`~gradfolio.hedging.deep_training.DeepHedgeTrainer`."""
    return lambda policy, seed: env_pnl(env, policy, seed)


class GbmCallHedge:
    """A short call hedged with the stock under geometric Brownian motion, with proportional costs.

    pfhedge's convention (``pfhedge.nn.functional.pl``): spot ``S_0 .. S_T`` (``T = n_steps``),
    stock holdings ``h_0 .. h_{T-1}`` chosen at ``t`` from the features ``(log(S_t / K), (T - t) dt,
    sigma, h_{t-1})`` with ``h_{-1} = 0``, and

    ``P&L = -(S_T - K)^+ + sum_t h_t (S_{t+1} - S_t) - cost * sum_t S_t |h_t - h_{t-1}|``.

    Parameters
    ----------
    n_paths, n_steps
        Paths per batch and hedging dates.
    s0, strike, sigma, mu, dt
        GBM ``dS = mu S dt + sigma S dW`` from ``s0`` (exact log-normal steps of ``dt`` years).
    cost
        Proportional cost rate of stock trades.
    device, dtype
        Placement and precision.
    """

    N_FEATURES = 4

    def __init__(
        self, n_paths: int = 10_000, n_steps: int = 20, *, s0: float = 1.0, strike: float = 1.0, sigma: float = 0.2,
        mu: float = 0.0, dt: float = 1 / 250, cost: float = 0.0, device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if n_paths < 2 or n_steps < 1 or s0 <= 0 or strike <= 0 or sigma <= 0 or dt <= 0 or cost < 0:
            raise ConfigError(
                f"GbmCallHedge: n_paths={n_paths} (>= 2), n_steps={n_steps} (>= 1), s0={s0}, strike={strike}, "
                f"sigma={sigma}, dt={dt} (> 0), cost={cost} (>= 0): pass values in these ranges."
            )
        self.n_paths, self.n_steps = int(n_paths), int(n_steps)
        self.s0, self.strike, self.sigma, self.mu, self.dt, self.cost = s0, strike, sigma, mu, dt, cost
        self.device, self.dtype = device, dtype

    def simulate(self, seed: int) -> torch.Tensor:
        """Spot paths ``(n_paths, n_steps + 1)`` of episode ``seed``."""
        gen = make_generator(seed, self.device)
        z = torch.randn(self.n_paths, self.n_steps, generator=gen, device=self.device, dtype=self.dtype)
        steps = (self.mu - 0.5 * self.sigma**2) * self.dt + self.sigma * math.sqrt(self.dt) * z
        log_s = torch.cat([torch.zeros_like(z[:, :1]), steps.cumsum(dim=1)], dim=1)
        return self.s0 * log_s.exp()

    def features(self, spot: torch.Tensor, t: int, prev: torch.Tensor) -> torch.Tensor:
        """``(P, 4)``: log-moneyness, time to maturity (years), volatility, previous holding."""
        ttm = torch.full_like(prev, (self.n_steps - t) * self.dt)
        return torch.stack([torch.log(spot[:, t] / self.strike), ttm, torch.full_like(prev, self.sigma), prev], dim=1)

    def hedge(self, policy: Callable[[torch.Tensor], torch.Tensor], spot: torch.Tensor) -> torch.Tensor:
        """Holdings ``(P, n_steps)`` of ``policy(features (P, 4)) -> (P,)`` along ``spot``."""
        prev = torch.zeros_like(spot[:, 0])
        out = []
        for t in range(self.n_steps):
            prev = policy(self.features(spot, t, prev))
            out.append(prev)
        return torch.stack(out, dim=1)

    def pnl(self, spot: torch.Tensor, hedge: torch.Tensor) -> torch.Tensor:
        """P&L ``(P,)`` of holdings ``(P, n_steps)`` along ``spot (P, n_steps + 1)`` (formula above)."""
        gains = (hedge * spot.diff(dim=1)).sum(dim=1)
        trades = torch.cat([hedge[:, :1], hedge.diff(dim=1)], dim=1).abs()
        payoff = (spot[:, -1] - self.strike).clamp_min(0.0)
        return gains - payoff - self.cost * (spot[:, :-1] * trades).sum(dim=1)

    def delta(self, spot: torch.Tensor) -> torch.Tensor:
        """Black-Scholes deltas ``(P, n_steps)`` at the hedging dates (``r = 0``)."""
        ttm = (self.n_steps - torch.arange(self.n_steps, device=spot.device, dtype=spot.dtype)) * self.dt
        strike = torch.full_like(spot[:, :-1], self.strike)
        return live_greeks_unchecked(spot[:, :-1], strike, ttm, torch.full_like(strike, self.sigma)).delta

    def __call__(self, policy: Callable[[torch.Tensor], torch.Tensor], seed: int) -> torch.Tensor:
        """Differentiable P&L ``(P,)`` of ``policy`` on the paths of ``seed`` (a :data:`Simulator`)."""
        spot = self.simulate(seed)
        return self.pnl(spot, self.hedge(policy, spot))


class MlpHedge(nn.Module):
    """Unbounded MLP hedge ``features (P, F) -> holding (P,)`` (pfhedge's ``MultiLayerPerceptron`` shape)."""

    def __init__(self, n_features: int = GbmCallHedge.N_FEATURES, hidden: tuple[int, ...] = (32, 32), seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = mlp(n_features, hidden, 1).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Holdings ``(P,)``."""
        return self.net(x)[:, 0]


def describe(policy: nn.Module) -> dict[str, Any]:
    """Plain-data summary of a policy for checkpoint fingerprints: class and parameter shapes."""
    return {"class": type(policy).__name__, "shapes": {k: list(v.shape) for k, v in policy.state_dict().items()}}


__all__ = [
    "RiskName", "Simulator", "DeepHedgeConfig", "pnl_risk", "EnvPolicy", "env_pnl", "env_simulator", "GbmCallHedge",
    "MlpHedge", "describe",
]
