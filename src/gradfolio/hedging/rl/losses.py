"""Losses of the distributional critic and the actor's risk objective (ANADDH eqs. 6-10).

- :func:`quantile_levels`: the mid-quantile levels ``tau_i = (2 i + 1) / (2 N)`` of eq. (6) at
  which the critic predicts the return-to-go.
- :func:`huber` and :func:`quantile_huber_loss` (eqs. 8-10): all pairwise errors
  ``delta_ij = Z_i(s, a) - T_j`` between predicted quantiles and target samples, weighted by
  ``|tau_i - 1{delta_ij > 0}| H_kappa(delta_ij)``, summed over ``i``, averaged over ``j`` and the
  batch. The all-pairs form is QR-DQN's (Dabney et al., 2018); the paper's eq. (8) pairs each
  ``tau`` with its own target ``T_tau`` only.
- :func:`quantile_objective`: a risk measure of the quantile atoms (``mean``, ``mean_std``,
  ``var``, ``cvar``) that the actor maximises.

Shapes: predicted quantiles ``(batch, n_quantiles)``, target samples ``(batch, n_targets)``,
levels ``(n_quantiles,)``; :func:`quantile_objective` reduces the last axis of ``(..., N)``.
"""

from __future__ import annotations

from typing import Literal

import torch

from gradfolio.errors import ConfigError
from gradfolio.risk import cvar, value_at_risk

Objective = Literal["mean", "mean_std", "var", "cvar"]


def quantile_levels(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mid-quantile levels ``tau_i = (2 i + 1) / (2 n)``, ``i = 0 .. n - 1``; shape ``(n,)``."""
    return (2 * torch.arange(n, device=device, dtype=dtype) + 1) / (2 * n)


def huber(delta: torch.Tensor, kappa: float) -> torch.Tensor:
    """Huber function of eq. (10): ``delta^2 / 2`` if ``|delta| <= kappa`` else ``kappa (|delta| - kappa / 2)``."""
    abs_delta = delta.abs()
    return torch.where(abs_delta <= kappa, 0.5 * delta**2, kappa * (abs_delta - 0.5 * kappa))


QuantileReduction = Literal["sum", "mean"]


def quantile_huber_loss(
    pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0, reduction: QuantileReduction = "sum"
) -> torch.Tensor:
    """Quantile Huber loss of eqs. (8)-(10) between predicted quantiles and target samples.

    Parameters
    ----------
    pred
        ``(B, N)`` predicted quantiles ``Z_tau_i(s, a)``.
    target
        ``(B, M)`` target samples ``T_j`` (treated as constants).
    taus
        ``(N,)`` quantile levels of ``pred``.
    kappa
        Huber threshold.
    reduction
        ``"sum"`` (QR-DQN's, the default): summed over the quantiles ``i``; ``"mean"``: averaged
        over them, as the loss of Cao et al.'s code (``reduce_mean`` over targets and quantiles),
        i.e. the ``"sum"`` loss divided by ``N``.

    Returns
    -------
    Scalar ``mean_b sum_i mean_j |tau_i - 1{delta_bij > 0}| H_kappa(delta_bij)`` with
    ``delta_bij = pred_bi - target_bj`` (``mean_i`` in place of ``sum_i`` for ``"mean"``).
    """
    if reduction not in ("sum", "mean"):
        raise ConfigError(f"quantile_huber_loss: reduction={reduction!r} is unknown; use 'sum' or 'mean'.")
    delta = pred[:, :, None] - target.detach()[:, None, :]  # (B, N, M)
    weight = (taus[None, :, None] - (delta.detach() > 0).to(pred.dtype)).abs()
    per_pair = (weight * huber(delta, kappa)).mean(dim=2)
    return (per_pair.sum(dim=1) if reduction == "sum" else per_pair.mean(dim=1)).mean()


def quantile_objective(
    quantiles: torch.Tensor, objective: Objective, risk_aversion: float = 1.645, level: float = 0.95
) -> torch.Tensor:
    """Risk-adjusted value of a return distribution given by equally weighted quantile atoms.

    The ``N`` quantiles at the mid levels ``(2 i + 1) / (2 N)`` are read as ``N`` atoms of mass
    ``1 / N`` (the distribution the quantile critic represents).

    Parameters
    ----------
    quantiles
        ``(..., N)`` quantile atoms of the return (higher is better).
    objective
        ``"mean"``: the mean; ``"mean_std"``: ``mean - risk_aversion * std`` (population std of
        the atoms); ``"var"``: minus the value at risk; ``"cvar"``: minus the conditional value at
        risk, both at ``level`` with :mod:`gradfolio.risk`'s exact discrete definitions.

    Returns
    -------
    ``(...)`` values to maximise; differentiable in ``quantiles``.
    """
    if objective == "mean":
        return quantiles.mean(dim=-1)
    if objective == "mean_std":
        return quantiles.mean(dim=-1) - risk_aversion * quantiles.std(dim=-1, correction=0)
    if objective == "var":
        return -value_at_risk(quantiles, level)
    if objective == "cvar":
        return -cvar(quantiles, level)
    raise ConfigError(f"objective={objective!r} is unknown; use 'mean', 'mean_std', 'var' or 'cvar'.")


__all__ = ["Objective", "QuantileReduction", "quantile_levels", "huber", "quantile_huber_loss", "quantile_objective"]
