"""Evaluate hedging policies: episodes -> total P&L per path -> a metrics table.

Every policy is played on the **same** episodes (same seeds, so the same market paths and client
orders), ``n_episodes`` batches of ``env.n_paths`` paths each. The total P&L of a path is the
sum of its daily signed P&L including costs. The table reports, per policy (risk measures from
:mod:`gradfolio.risk`, losses positive):

``mean``, ``std`` (ddof=1), ``mean_std`` = mean - 1.645 std, ``var_95`` and ``cvar_95``
(historical VaR/CVaR of the P&L), ``cost`` (mean total transaction cost) and ``contracts``
(mean total |contracts| traded).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.env import Episode, HedgingEnv, Policy
from gradfolio.risk import cvar, mean_std, value_at_risk


def rollout(env: HedgingEnv, policy: Policy, n_episodes: int = 1, seed: int = 0) -> Episode:
    """Play ``n_episodes`` episodes of ``policy`` and stack their paths.

    Parameters
    ----------
    env
        The environment; each episode runs on its ``env.n_paths`` paths.
    policy
        ``policy(state (paths, features)) -> action (paths,) or (paths, 1)``.
    n_episodes
        Number of episodes, ``>= 1``; episode ``i`` uses seed ``seed + i``.
    seed
        Seed of the first episode.

    Returns
    -------
    Episode
        Fields of shape ``(n_episodes * env.n_paths, env.config.n_days)``, episode ``i`` in rows
        ``i * env.n_paths .. (i + 1) * env.n_paths - 1``.
    """
    if n_episodes < 1:
        raise ConfigError(f"n_episodes={n_episodes}: evaluate at least one episode.")
    episodes = [env.run_episode(policy, seed + i) for i in range(n_episodes)]
    return Episode(*(torch.cat(fields, dim=0) for fields in zip(*episodes, strict=True)))


def evaluate_policies(
    env: HedgingEnv, policies: Mapping[str, Policy], n_episodes: int = 1, seed: int = 0
) -> dict[str, Episode]:
    """:func:`rollout` every policy on the same episodes (same seeds: same market and client orders).

    Parameters
    ----------
    env
        The environment.
    policies
        ``{name: policy}``, at least one.
    n_episodes, seed
        As in :func:`rollout`.

    Returns
    -------
    dict[str, Episode]
        ``{name: Episode}`` in the order of ``policies``, each field
        ``(n_episodes * env.n_paths, env.config.n_days)``.
    """
    if not policies:
        raise ConfigError("no policy to evaluate; pass at least one {name: policy}.")
    return {name: rollout(env, policy, n_episodes, seed) for name, policy in policies.items()}


def pnl_metrics(total_pnl: torch.Tensor, level: float = 0.95, risk_aversion: float = 1.645) -> dict[str, float]:
    """Summary statistics of the total P&L per path.

    Parameters
    ----------
    total_pnl
        ``(paths,)`` total P&L, at least 2 paths (any device and dtype; computed in float64).
    level
        Confidence level of VaR and CVaR, in ``(0, 1)``.
    risk_aversion
        ``c`` in ``mean - c * std``.

    Returns
    -------
    dict[str, float]
        ``mean``, ``std`` (ddof=1), ``mean_std`` = mean - c std, and ``var_<pct>`` / ``cvar_<pct>``
        (historical, losses positive) with ``pct = round(100 * level)``.
    """
    pnl = total_pnl.detach().to(torch.float64).cpu()
    if pnl.numel() < 2:
        raise ConfigError(f"need at least 2 paths to measure the P&L spread, got {pnl.numel()}.")
    pct = round(level * 100)
    return {
        "mean": float(pnl.mean()),
        "std": float(pnl.std(correction=1)),
        "mean_std": float(mean_std(pnl, risk_aversion)),
        f"var_{pct}": float(value_at_risk(pnl, level)),
        f"cvar_{pct}": float(cvar(pnl, level)),
    }


def metrics_table(
    results: Mapping[str, Episode], level: float = 0.95, risk_aversion: float = 1.645
) -> pd.DataFrame:
    """One row per policy: the :func:`pnl_metrics` of its total P&L plus mean cost and contracts.

    Parameters
    ----------
    results
        ``{name: Episode}``, e.g. from :func:`evaluate_policies`; fields ``(paths, days)``.
    level, risk_aversion
        As in :func:`pnl_metrics`.

    Returns
    -------
    pandas.DataFrame
        ``(policies, 7)``, index ``strategy`` (the names, in order), columns ``mean, std, mean_std,
        var_<pct>, cvar_<pct>, cost`` (mean total cost per path) and ``contracts`` (mean total
        ``|contracts|`` traded per path).
    """
    rows = {}
    for name, ep in results.items():
        row = pnl_metrics(ep.total_pnl, level, risk_aversion)
        row["cost"] = float(ep.cost.sum(dim=1).mean())
        row["contracts"] = float(ep.contracts.abs().sum(dim=1).mean())
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "strategy"
    return table


__all__ = ["rollout", "evaluate_policies", "pnl_metrics", "metrics_table"]
