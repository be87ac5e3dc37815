"""The mean-variance efficient frontier of every window, all risk aversions in one batched QP.

For each window ``b`` and risk aversion ``lambda_g``::

    max  mu_b'w - lambda_g w' S_b w     s.t.  1'w = 1,  w >= 0

(skfolio's ``MeanRisk(objective_function=MAXIMIZE_UTILITY, risk_aversion=lambda_g)`` with the
variance). The ``B x G`` problems are one call of :func:`gradfolio.solvers.solve_qp` (the
objective divided by the mean variance of the window so that the solver sees a well-scaled
problem), so the whole frontier is differentiable with respect to the returns. As ``lambda``
grows the portfolio tends to the minimum-variance one; as it falls, to the asset with the
largest mean. :func:`plot_frontier` draws it (volatility against mean, annualized on request).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.mean import MeanEstimator, resolve_mean
from gradfolio.allocation.classical.mean_variance import SETTINGS
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers import QPSettings, solve_qp


@dataclass(frozen=True)
class Frontier:
    """Efficient frontiers of ``B`` windows at ``G`` risk aversions.

    Attributes
    ----------
    risk_aversions
        ``(G,)``.
    weights
        ``(B, G, N)``: long-only, fully invested.
    mean
        ``(B, G)``: expected return ``mu'w`` per period.
    volatility
        ``(B, G)``: ``sqrt(w'Sw)`` per period.
    """

    risk_aversions: Tensor
    weights: Tensor
    mean: Tensor
    volatility: Tensor


def efficient_frontier(
    R: Tensor,
    risk_aversions: Sequence[float] | Tensor,
    covariance: str | CovarianceEstimator = "sample",
    mean: str | MeanEstimator = "sample",
    mean_params: dict[str, Any] | None = None,
    settings: QPSettings = SETTINGS,
) -> Frontier:
    """Efficient frontier of each window of returns ``R (B, L, N)`` at ``G`` risk aversions.

    Parameters
    ----------
    R
        Simple returns, shape ``(B, L, N)`` (a single window ``(L, N)`` is taken as ``B = 1``).
    risk_aversions
        ``G`` positive numbers ``lambda`` (per-period units: daily returns need ``lambda`` of
        order 1 to 1e4).
    covariance
        A name of :data:`COVARIANCES` or a callable ``(B, L, N) -> (B, N, N)``.
    mean, mean_params
        Expected-return estimator (see :mod:`gradfolio.allocation.classical.mean`).
    settings
        Settings of :func:`gradfolio.solvers.solve_qp`.

    Returns
    -------
    :class:`Frontier` with ``weights (B, G, N)``, ``mean (B, G)`` and ``volatility (B, G)``.

    Raises
    ------
    ConfigError
        A risk aversion that is not a positive finite number, or none at all.
    DataError
        ``R`` not of shape ``(B, L, N)`` with ``L >= 2``, or an asset of zero variance.
    """
    if R.ndim == 2:
        R = R[None]
    if R.ndim != 3 or R.shape[-2] < 2:
        raise DataError(f"R for efficient_frontier: expected (batch, lookback >= 2, assets), got {tuple(R.shape)}.")
    lam = torch.as_tensor(risk_aversions, dtype=torch.float64, device=R.device).flatten()
    if lam.numel() == 0 or not bool((torch.isfinite(lam) & (lam > 0)).all()):
        raise ConfigError(
            f"risk_aversions={risk_aversions!r} for efficient_frontier: give one or more positive finite numbers."
        )
    B, _, N = R.shape
    G = lam.numel()
    S = resolve_covariance(covariance)(R).double()
    scale = (volatilities(S, "efficient_frontier") ** 2).mean(dim=-1)  # (B,)
    mu = resolve_mean(mean, mean_params)(R).double()
    Q = (2.0 * lam[None, :, None, None] * (S / scale[:, None, None])[:, None]).reshape(B * G, N, N)
    q = (-mu / scale[:, None])[:, None, :].expand(B, G, N).reshape(B * G, N)
    eye = torch.eye(N, dtype=S.dtype, device=S.device)
    w = solve_qp(
        Q,
        q,
        G=-eye,
        h=torch.zeros(N, dtype=S.dtype, device=S.device),
        A=torch.ones(1, N, dtype=S.dtype, device=S.device),
        b=torch.ones(1, dtype=S.dtype, device=S.device),
        settings=settings,
    ).clamp_min(0.0)
    w = (w / w.sum(dim=-1, keepdim=True)).reshape(B, G, N)
    ret = (w * mu[:, None, :]).sum(-1)
    vol = torch.einsum("bgn,bnm,bgm->bg", w, S, w).clamp_min(0.0).sqrt()
    return Frontier(lam.to(R.dtype), w.to(R.dtype), ret.to(R.dtype), vol.to(R.dtype))


def plot_frontier(
    frontier: Frontier, window: int = 0, periods_per_year: float = 1.0, ax: Any = None, label: str | None = None
) -> Any:
    """Draw one window's frontier: volatility (x) against expected return (y).

    Parameters
    ----------
    frontier
        From :func:`efficient_frontier`.
    window
        Batch index of the window drawn.
    periods_per_year
        Annualize (means times it, volatilities times its square root); 1 for per period.
    ax
        A matplotlib ``Axes``; a new figure's when ``None``.
    label
        Legend label of the curve.

    Returns
    -------
    The ``Axes`` drawn on.
    """
    B = frontier.mean.shape[0]
    if not -B <= window < B:
        raise ConfigError(f"window={window} for plot_frontier: the frontier has {B} window(s).")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    x = frontier.volatility[window].detach().cpu().double().numpy() * math.sqrt(periods_per_year)
    y = frontier.mean[window].detach().cpu().double().numpy() * periods_per_year
    ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_xlabel("volatility" + (" (annualized)" if periods_per_year != 1 else " (per period)"))
    ax.set_ylabel("expected return" + (" (annualized)" if periods_per_year != 1 else " (per period)"))
    if label is not None:
        ax.legend()
    return ax


__all__ = ["Frontier", "efficient_frontier", "plot_frontier"]
