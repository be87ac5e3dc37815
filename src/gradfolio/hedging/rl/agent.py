"""Distributional deterministic actor-critic for gamma/vega hedging (GVDH with Adam, ANADDH with ANA).

The agent follows the D4PG-style design of Cao et al. (2023) and eqs. (5)-(13) of the ANADDH
paper:

- **Actor** ``pi(s) = a_max * sigmoid(f(s))``: a deterministic action in ``[0, a_max]``.
- **Quantile critic** ``Z_tau(s, a)``: ``n_quantiles`` values at the mid-quantile levels
  ``tau_i = (2 i + 1) / (2 N)`` of the return-to-go (eq. 6), with target networks updated by
  Polyak averaging.
- **Critic loss** (eqs. 7-10): targets ``T_j = r + gamma (1 - done) Z'_j(s', pi'(s'))``, all
  pairwise errors ``delta_ij = Z_i(s, a) - T_j`` and the quantile Huber loss
  ``|tau_i - 1{delta_ij > 0}| H_kappa(delta_ij)``, summed over ``i``, averaged over ``j`` and the batch.
  The all-pairs form is QR-DQN's (Dabney et al., 2018); the paper's eq. (8) pairs each ``tau``
  with its own target ``T_tau`` only (:func:`~gradfolio.hedging.rl.losses.quantile_huber_loss`).
- **Actor objective**, a risk measure of the critic's quantiles at ``a = pi(s)``, maximised:
  ``mean``, ``mean_std`` (mean - c std), ``var`` (minus the VaR) or ``cvar`` (minus the CVaR);
  see :func:`~gradfolio.hedging.rl.losses.quantile_objective`.

Features. The actor and critic see the environment state standardised by a
:class:`~gradfolio.hedging.rl.networks.FeatureScaler` fitted once on early states, plus
(``greek_features=True``) the two actions that make the portfolio gamma or vega neutral, computed
from the state with the environment's own action map (:meth:`HedgingEnv.contracts_to_action`).

With ANA the networks' parameters hold the optimizer's look-ahead points ``y_r`` between
updates (see :mod:`gradfolio.optim.ana`); the target networks average the iterates ``theta^r``
(:meth:`DistributionalAgent.update`), and :meth:`DistributionalAgent.at_iterates` /
:meth:`DistributionalAgent.use_iterates` put the iterates into the networks for validation and
at the end of training.

The pieces live next to this module: :mod:`~gradfolio.hedging.rl.losses`,
:mod:`~gradfolio.hedging.rl.replay` and :mod:`~gradfolio.hedging.rl.networks`; this module joins
them into :class:`DistributionalAgent`, and :mod:`~gradfolio.hedging.rl.training` trains it.

Every tensor has a leading batch axis: states ``(batch, features)``, actions ``(batch,)``,
quantiles ``(batch, n_quantiles)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gradfolio.hedging.rl.losses import Objective, quantile_huber_loss, quantile_levels, quantile_objective
from gradfolio.hedging.rl.networks import Actor, FeatureScaler, QuantileCritic
from gradfolio.hedging.rl.replay import Batch
from gradfolio.optim import ANA, OptimizerName, Restart, at_iterates, make_optimizer

Beta = Annotated[float, Field(ge=0, lt=1)]


class AgentConfig(BaseModel):
    """Networks, losses and optimizers of :class:`DistributionalAgent`.

    Attributes
    ----------
    hidden
        Widths of the hidden layers of both actor and critic.
    n_quantiles
        Number ``N`` of quantiles predicted by the critic.
    kappa
        Huber threshold of the quantile Huber loss, eq. (10).
    gamma
        Discount factor ``gamma`` of eq. (7); 1 makes the critic model the total P&L to go.
    polyak
        Weight of the online network in the target update ``target <- polyak * online + (1 - polyak) * target``
        (with ANA, ``online`` is the iterate ``theta^r``).
    optimizer
        ``"adam"`` (GVDH, PyTorch's defaults ``betas=(0.9, 0.999)``, ``eps=1e-8``) or ``"ana"``
        (ANADDH, :class:`gradfolio.optim.ANA` with the three ``ana_*`` settings).
    lr_actor, lr_critic
        Learning rates of the two optimizers.
    ana_betas
        ANA's moment decay rates ``(beta_1, beta_2)``, each in ``[0, 1)`` (eqs. 25-26).
    ana_eps
        ANA's ``epsilon`` under the square root of eq. (27), > 0.
    ana_restart
        ``"gradient"``: reset Nesterov's ``t`` on uphill steps (adaptive restart, not in the
        paper); ``"none"``: the paper's rule, eq. (23) without restart.
    objective
        Risk measure of the critic's quantiles the actor maximises (:func:`~gradfolio.hedging.rl.losses.quantile_objective`).
    risk_aversion
        ``c`` of ``mean - c std``.
    level
        Confidence level of ``var`` / ``cvar`` (0.95 = the worst 5%).
    greek_features
        Append the gamma- and vega-neutralising actions to the features.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: tuple[int, ...] = (64, 64)
    n_quantiles: int = Field(32, ge=2)
    kappa: float = Field(1.0, gt=0)
    gamma: float = Field(1.0, gt=0, le=1)
    polyak: float = Field(0.005, gt=0, le=1)
    optimizer: OptimizerName = "adam"
    lr_actor: float = Field(1e-4, gt=0)
    lr_critic: float = Field(1e-3, gt=0)
    ana_betas: tuple[Beta, Beta] = (0.5, 0.999)
    ana_eps: float = Field(1e-8, gt=0)
    ana_restart: Restart = "gradient"
    objective: Objective = "mean_std"
    risk_aversion: float = Field(1.645, ge=0)
    level: float = Field(0.95, gt=0, lt=1)
    greek_features: bool = True

    @property
    def ana_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`gradfolio.optim.make_optimizer`: the ANA settings, none for Adam."""
        if self.optimizer != "ana":
            return {}
        return {"betas": self.ana_betas, "eps": self.ana_eps, "restart": self.ana_restart}


FeatureFn = Callable[[torch.Tensor], torch.Tensor]


class DistributionalAgent(nn.Module):
    """Deterministic actor, quantile critic, their targets and optimizers.

    Parameters
    ----------
    n_state
        Width of the environment state.
    a_max
        Largest action (the environment's ``action_high``).
    config
        Hyper-parameters (:class:`AgentConfig`).
    extra_features
        Optional ``state (B, n_state) -> (B, k)`` appended to the state before scaling (the
        greek-neutral actions, see :func:`greek_feature_fn`); ``n_extra`` is its width.
    n_extra
        Width ``k`` of ``extra_features``.
    seed
        Seed of the network initialisation (the global RNG is left untouched).
    device, dtype
        Placement and precision of the networks.
    """

    def __init__(
        self,
        n_state: int,
        a_max: float,
        config: AgentConfig | None = None,
        *,
        extra_features: FeatureFn | None = None,
        n_extra: int = 0,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else AgentConfig()
        self.extra_features, self.n_state = extra_features, n_state
        n_features = n_state + (n_extra if extra_features is not None else 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.scaler = FeatureScaler(n_features)
            self.actor = Actor(n_features, cfg.hidden, a_max)
            self.critic = QuantileCritic(n_features, cfg.hidden, cfg.n_quantiles, a_max)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(device=device, dtype=dtype)
        self.register_buffer("taus", quantile_levels(cfg.n_quantiles, device=device, dtype=dtype))
        self.actor_opt, self.critic_opt = (
            make_optimizer(cfg.optimizer, net.parameters(), lr, where="agent.optimizer", **cfg.ana_options)
            for net, lr in ((self.actor, cfg.lr_actor), (self.critic, cfg.lr_critic))
        )
        self.a_max = float(a_max)

    @property
    def dtype(self) -> torch.dtype:
        """Precision of the networks."""
        return self.taus.dtype

    def _raw_features(self, state: torch.Tensor) -> torch.Tensor:
        """States ``(B, n_state)`` cast to the agent's device and dtype, with the extra features appended."""
        state = state.to(self.taus.device, self.dtype)
        if self.extra_features is not None:
            state = torch.cat([state, self.extra_features(state)], dim=1)
        return state

    def features(self, state: torch.Tensor) -> torch.Tensor:
        """Scaled features ``(B, F)`` of states ``(B, n_state)`` (cast to the agent's dtype)."""
        return self.scaler(self._raw_features(state))

    def fit_scaler(self, states: torch.Tensor) -> None:
        """Fit the feature scaler on states ``(B, n_state)`` (call once, before training)."""
        self.scaler.fit(self._raw_features(states))

    @torch.no_grad()
    def act(self, state: torch.Tensor, noise_std: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions ``(B,)`` for states ``(B, n_state)``; Gaussian exploration noise of ``noise_std * a_max``, clipped."""
        action = self.actor(self.features(state))
        if noise_std > 0.0:
            noise = torch.randn(action.shape, generator=generator, device=action.device, dtype=action.dtype)
            action = (action + noise_std * self.a_max * noise).clamp(0.0, self.a_max)
        return action

    def policy(self, state: torch.Tensor) -> torch.Tensor:
        """Greedy action in the dtype of ``state`` (an environment :data:`~gradfolio.hedging.env.Policy`)."""
        return self.act(state).to(state.dtype)

    def critic_loss(self, batch: Batch) -> torch.Tensor:
        """Quantile Huber loss of the critic on ``batch`` against the target networks (eqs. 7-10)."""
        cfg = self.config
        s, s2 = self.features(batch.state), self.features(batch.next_state)
        with torch.no_grad():
            next_q = self.critic_target(s2, self.actor_target(s2))  # (B, N)
            target = batch.reward[:, None] + cfg.gamma * (1.0 - batch.done[:, None]) * next_q
        return quantile_huber_loss(self.critic(s, batch.action), target, self.taus, cfg.kappa)

    def actor_objective(self, batch: Batch) -> torch.Tensor:
        """Mean over the batch of :func:`~gradfolio.hedging.rl.losses.quantile_objective` of ``Z(s, pi(s))`` (to maximise)."""
        cfg = self.config
        s = self.features(batch.state)
        quantiles = self.critic(s, self.actor(s))
        return quantile_objective(quantiles, cfg.objective, cfg.risk_aversion, cfg.level).mean()

    def update(self, batch: Batch) -> dict[str, float]:
        """One critic step, one actor step and a Polyak update of both targets.

        With ANA the targets move towards the iterates ``theta^r`` (the networks that are
        validated and saved), not towards the look-ahead points ``y_r`` held in the parameters.

        Returns
        -------
        ``{"critic_loss": ..., "actor_objective": ...}`` before the steps.
        """
        loss = self.critic_loss(batch)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        objective = self.actor_objective(batch)
        self.actor_opt.zero_grad(set_to_none=True)
        (-objective).backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        with torch.no_grad(), self.at_iterates():
            for online, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), self.config.polyak)
        return {"critic_loss": float(loss.detach()), "actor_objective": float(objective.detach())}

    def at_iterates(self) -> AbstractContextManager[None]:
        """Context in which actor and critic hold ANA's iterates ``theta^r`` (a no-op with Adam).

        See :func:`gradfolio.optim.at_iterates`; the look-ahead points are restored on exit.
        """
        return at_iterates(self.actor_opt, self.critic_opt)

    def use_iterates(self) -> None:
        """Put ANA's iterates ``theta^r`` into actor and critic for good, at the end of training (no-op with Adam)."""
        for opt in (self.actor_opt, self.critic_opt):
            if isinstance(opt, ANA):
                opt.iterate_()

    def full_state_dict(self) -> dict[str, Any]:
        """Networks, targets, scaler and both optimizers (for checkpoints)."""
        return {"modules": self.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict()}

    def load_full_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`full_state_dict` saved."""
        self.load_state_dict(state["modules"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])


def greek_feature_fn(env: Any) -> FeatureFn:
    """``state -> (B, 2)``: the actions that make the portfolio gamma / vega neutral under ``env``'s action map."""

    def features(state: torch.Tensor) -> torch.Tensor:
        n_gamma, n_vega = env.neutral_contracts(state)
        return torch.stack([env.contracts_to_action(state, n_gamma), env.contracts_to_action(state, n_vega)], dim=1)

    return features


__all__ = ["AgentConfig", "DistributionalAgent", "FeatureFn", "greek_feature_fn"]
