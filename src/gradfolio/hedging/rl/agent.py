"""Distributional deterministic actor-critic for gamma/vega hedging (GVDH with Adam, ANADDH with ANA).

The agent follows the D4PG-style design of Cao et al. (2023) and eqs. (5)-(13) of the ANADDH
paper:

- **Actor** ``pi(s) = a_max * sigmoid(f(s))``: a deterministic action in ``[0, a_max]``.
- **Quantile critic** ``Z_tau(s, a)``: ``n_quantiles`` values at the mid-quantile levels
  ``tau_i = (2 i + 1) / (2 N)`` of the return-to-go (eq. 6) (or explicit ``taus``), with target
  networks updated by Polyak averaging (or hard copies, ``target_update="hard"``).
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
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from gradfolio.hedging.rl.losses import (
    Objective,
    QuantileReduction,
    quantile_huber_loss,
    quantile_levels,
    quantile_objective,
)
from gradfolio.hedging.rl.networks import Actor, FeatureScaler, QuantileCritic
from gradfolio.hedging.rl.replay import Batch
from gradfolio.optim import ANA, OptimizerName, Restart, at_iterates, make_optimizer

Beta = Annotated[float, Field(ge=0, lt=1)]
Level = Annotated[float, Field(gt=0, lt=1)]
TargetUpdate = Literal["polyak", "hard"]

CAO_TAUS: tuple[float, ...] = tuple(round(0.01 * k, 2) for k in range(1, 100))
"""The 99 quantile levels 0.01, 0.02, ..., 0.99 of Cao et al.'s critic (``np.arange(0.01, 1.0, 0.01)``)."""


class AgentConfig(BaseModel):
    """Networks, losses and optimizers of :class:`DistributionalAgent`.

    Attributes
    ----------
    hidden
        Widths of the hidden layers of both actor and critic (unless ``actor_hidden`` /
        ``critic_hidden`` say otherwise).
    actor_hidden, critic_hidden
        Widths of the actor's / the critic's hidden layers; ``None`` (default): ``hidden``.
    actor_layer_norm, critic_layer_norm
        ``Linear -> LayerNorm -> ReLU`` hidden blocks in the actor / the critic (default: no LayerNorm).
    n_quantiles
        Number ``N`` of quantiles predicted by the critic.
    taus
        Explicit quantile levels ``(N,)``, strictly increasing in ``(0, 1)`` (``n_quantiles`` must
        equal their number); ``None`` (default): the mid-quantiles ``(2 i + 1) / (2 N)``. The
        actor's objective still reads the ``N`` values as equally weighted atoms, as Cao et al.'s
        code does for its levels ``0.01 .. 0.99`` (:data:`CAO_TAUS`).
    n_step
        Steps of the critic's targets ``T = sum_{k<n} gamma^k r_{t+k} + gamma^n (1 - done) Z'(s_{t+n}, pi'(s_{t+n}))``
        (:class:`~gradfolio.hedging.rl.replay.NStepAccumulator` builds the transitions); 1 (default): eq. (7).
    target_update, target_period
        ``"polyak"`` (default): soft update with weight ``polyak`` after every update; ``"hard"``:
        copy the online networks into the targets after every ``target_period`` updates.
    grad_clip
        Clip the gradient of the actor and of the critic to this global L2 norm before each step
        (:func:`torch.nn.utils.clip_grad_norm_`); ``None`` (default): no clipping.
    quantile_reduction
        ``"sum"`` (default) or ``"mean"`` over the quantiles in the critic's loss
        (:func:`~gradfolio.hedging.rl.losses.quantile_huber_loss`).
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

    The defaults are gradfolio's GVDH/ANADDH agent; :meth:`cao` is Cao et al.'s D4PG-style agent.
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
    actor_hidden: tuple[int, ...] | None = None
    critic_hidden: tuple[int, ...] | None = None
    actor_layer_norm: bool = False
    critic_layer_norm: bool = False
    taus: tuple[Level, ...] | None = None
    n_step: int = Field(1, ge=1)
    target_update: TargetUpdate = "polyak"
    target_period: int = Field(100, ge=1)
    grad_clip: float | None = Field(None, gt=0)
    quantile_reduction: QuantileReduction = "sum"

    @model_validator(mode="after")
    def _check_taus(self) -> AgentConfig:
        if self.taus is not None:
            if len(self.taus) != self.n_quantiles:
                raise ValueError(
                    f"taus has {len(self.taus)} levels but n_quantiles={self.n_quantiles}; set n_quantiles to {len(self.taus)}"
                )
            if any(b <= a for a, b in zip(self.taus, self.taus[1:], strict=False)):
                raise ValueError("taus must be strictly increasing, e.g. [0.01, 0.02, ..., 0.99]")
        return self

    @classmethod
    def cao(cls, **overrides: Any) -> AgentConfig:
        """Cao et al.'s agent (their D4PG code's settings), with ``overrides`` on top.

        99 quantiles at ``0.01 .. 0.99``, a LayerNorm critic ``512-512-256`` and a LayerNorm actor
        ``256-256-256``, 5-step targets, hard target copies every 100 updates, Adam with actor and
        critic learning rates ``1e-4``, gradient clipping at norm 40 and the quantile loss averaged
        over quantiles. Their exploration (constant noise 0.3) and update ratio (one update per 8
        transitions) are trainer settings: see ``CAO_TRAINER`` in
        :mod:`gradfolio.experiments.hedging.config` (the ``preset: cao`` of a config file sets both).
        """
        preset: dict[str, Any] = {
            "n_quantiles": len(CAO_TAUS), "taus": CAO_TAUS, "actor_hidden": (256, 256, 256),
            "critic_hidden": (512, 512, 256), "actor_layer_norm": True, "critic_layer_norm": True,
            "n_step": 5, "target_update": "hard", "target_period": 100, "optimizer": "adam",
            "lr_actor": 1e-4, "lr_critic": 1e-4, "grad_clip": 40.0, "quantile_reduction": "mean",
        }
        return cls(**{**preset, **overrides})

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
            actor_hidden = cfg.hidden if cfg.actor_hidden is None else cfg.actor_hidden
            critic_hidden = cfg.hidden if cfg.critic_hidden is None else cfg.critic_hidden
            self.actor = Actor(n_features, actor_hidden, a_max, cfg.actor_layer_norm)
            self.critic = QuantileCritic(n_features, critic_hidden, cfg.n_quantiles, a_max, cfg.critic_layer_norm)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(device=device, dtype=dtype)
        taus = (quantile_levels(cfg.n_quantiles, device=device, dtype=dtype) if cfg.taus is None
                else torch.tensor(cfg.taus, device=device, dtype=dtype))
        self.register_buffer("taus", taus)
        self.n_updates = 0
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
            discount = cfg.gamma if cfg.n_step == 1 else cfg.gamma**cfg.n_step
            target = batch.reward[:, None] + discount * (1.0 - batch.done[:, None]) * next_q
        return quantile_huber_loss(self.critic(s, batch.action), target, self.taus, cfg.kappa, cfg.quantile_reduction)

    def actor_objective(self, batch: Batch) -> torch.Tensor:
        """Mean over the batch of :func:`~gradfolio.hedging.rl.losses.quantile_objective` of ``Z(s, pi(s))`` (to maximise)."""
        cfg = self.config
        s = self.features(batch.state)
        quantiles = self.critic(s, self.actor(s))
        return quantile_objective(quantiles, cfg.objective, cfg.risk_aversion, cfg.level).mean()

    def update(self, batch: Batch) -> dict[str, float]:
        """One critic step, one actor step and an update of both targets.

        ``batch`` holds ``n_step``-step transitions (:class:`~gradfolio.hedging.rl.replay.NStepAccumulator`).
        Gradients are clipped to ``grad_clip`` when set. The targets follow ``target_update``:
        a Polyak step every update, or a copy every ``target_period`` updates. With ANA the targets
        move towards (or copy) the iterates ``theta^r`` (the networks that are validated and
        saved), not the look-ahead points ``y_r`` held in the parameters.

        ANA and the actor's gradient: the actor's gradient is taken where the parameters are,
        i.e. at ANA's look-ahead point ``y_r`` (the optimizer's convention, :mod:`gradfolio.optim.ana`),
        with the critic also at its look-ahead point; the ANADDH paper's eqs. (28) and (31) write
        that gradient at the iterate. See docs/hedging.md ("ANA's two points").

        Returns
        -------
        ``{"critic_loss": ..., "actor_objective": ...}`` before the steps.
        """
        cfg = self.config
        loss = self.critic_loss(batch)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        objective = self.actor_objective(batch)
        self.actor_opt.zero_grad(set_to_none=True)
        (-objective).backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        self.n_updates += 1
        pairs = ((self.actor, self.actor_target), (self.critic, self.critic_target))
        if cfg.target_update == "polyak":
            with torch.no_grad(), self.at_iterates():
                for online, target in pairs:
                    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), cfg.polyak)
        elif self.n_updates % cfg.target_period == 0:
            with torch.no_grad(), self.at_iterates():
                for online, target in pairs:
                    torch._foreach_copy_(list(target.parameters()), list(online.parameters()))
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
                "critic_opt": self.critic_opt.state_dict(), "n_updates": self.n_updates}

    def load_full_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`full_state_dict` saved."""
        self.load_state_dict(state["modules"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.n_updates = int(state.get("n_updates", 0))


def greek_feature_fn(env: Any) -> FeatureFn:
    """``state -> (B, 2)``: the actions that make the portfolio gamma / vega neutral under ``env``'s action map."""

    def features(state: torch.Tensor) -> torch.Tensor:
        n_gamma, n_vega = env.neutral_contracts(state)
        return torch.stack([env.contracts_to_action(state, n_gamma), env.contracts_to_action(state, n_vega)], dim=1)

    return features


__all__ = ["CAO_TAUS", "TargetUpdate", "AgentConfig", "DistributionalAgent", "FeatureFn", "greek_feature_fn"]
