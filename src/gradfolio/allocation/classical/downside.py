"""Downside-risk portfolios: minimum CVaR, minimum drawdown, maximum Calmar, maximum Sortino.

All four are long-only and fully invested, and estimated from the simple returns ``R (L, N)``
of each window with ``mu`` the mean return per asset.

Formulations (``x >= 0`` element-wise is written ``x >= 0``)
----------------------------------------------------------
Minimum CVaR (Rockafellar–Uryasev LP), ``beta`` the confidence level::

    min  a + sum_t u_t / (L (1 - beta))   s.t.  u_t >= -R_t w - a,  u >= 0,  sum w = 1,  w >= 0

Minimum maximum drawdown (Chekhlov et al. LP, on uncompounded cumulative returns as in
skfolio): ``d_t`` is the drawdown after day ``t`` (``d_0 = 0``)::

    min  z   s.t.  d_t >= d_{t-1} - R_t w,  d >= 0,  z >= d_t,  sum w = 1,  w >= 0

Maximum Calmar ratio ``(mu'w - r_f) / maxDD(w)`` and maximum Sortino ratio
``(mu'w - r_f) / semi-deviation(w)`` are homogenized (Charnes–Cooper): with ``y = k w``,
``k > 0``, the constraint ``(mu - r_f)' y = 1`` fixes the scale, the risk (positively
homogeneous) is minimized over ``y >= 0`` and ``w = y / sum(y)``. For Calmar this is the
drawdown LP above in ``y``; for Sortino it is the QP::

    min  sum_t v_t^2   s.t.  v_t >= -(R_t - tau) y,  v >= 0,  (mu - r_f)' y = 1,  y >= 0

with ``tau`` the minimum acceptable return (``None``: the window mean, skfolio's default).
The ratio problems need some asset with ``mu_i > r_f``; otherwise
:class:`~gradfolio.errors.InfeasibleError` names every such window (see ``positive_excess``).

Solver
------
The problems have ``L + N + 2`` variables and about ``3 L`` sparse constraints per window. They
are solved by Clarabel (the interior-point solver cvxpy uses) called directly on the sparse
standard form (:mod:`gradfolio.allocation.classical.conic`), one window after the other. The
batched dense torch QP (:func:`gradfolio.solvers.solve_qp`) can express them (with ``Q = 0``)
but is the wrong tool here: it stores the inequality matrices (``2L + N`` to ``3L + N`` rows,
``L + N + 1`` columns) densely (~1.1 MB per window in float64 for minimum CVaR with ``L = 252``)
and factors dense systems of that size at every iteration. Measured on 32 windows of 252 days
(2 CPU cores, one thread): minimum CVaR took 14.9 s with ``solve_qp`` (max weight error 5e-8 at
``tol=1e-9``; no convergence at ``1e-11``) against 0.22 s with Clarabel. The loop costs 7–11 ms
per window. The weights are computed without autograd.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from torch import Tensor

from gradfolio.allocation.classical.base import positive_excess
from gradfolio.allocation.classical.conic import ConicPortfolio, ConicProblem
from gradfolio.errors import ConfigError


def _blocks(rows: list[list]) -> sp.csc_matrix:
    return sp.bmat(rows, format="csc")


def _drawdown_constraints(R: np.ndarray) -> tuple[sp.csc_matrix, np.ndarray]:
    """``G x <= 0`` for ``x = [w (N), d (L), z]``: ``d_t >= d_{t-1} - R_t w``, ``d >= 0``, ``z >= d``, ``w >= 0``."""
    L, N = R.shape
    eye_L = sp.identity(L, format="csc")
    diff = eye_L - sp.eye(L, k=-1, format="csc")  # (D d)_t = d_t - d_{t-1}, d_{-1} = d_0 = 0
    ones = sp.csc_matrix(np.ones((L, 1)))
    G = _blocks(
        [
            [sp.csc_matrix(-R), -diff, None],
            [None, -eye_L, None],
            [None, eye_L, -ones],
            [-sp.identity(N, format="csc"), None, sp.csc_matrix((N, 1))],
        ]
    )
    return G, np.zeros(G.shape[0])


class _MaximumRatio(ConicPortfolio):
    """A ratio ``(mu'w - r_f) / risk(w)``, homogenized; every window is checked before any solve.

    Windows where no asset has ``mu_i > r_f`` raise one
    :class:`~gradfolio.errors.InfeasibleError` that names them all (its ``rows``: their batch
    indices), see :func:`~gradfolio.allocation.classical.base.positive_excess`.
    """

    def __init__(self, risk_free: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.risk_free = float(risk_free)

    def allocate(self, R: Tensor) -> Tensor:
        positive_excess(R, self.risk_free, type(self).__name__)
        return super().allocate(R)


class MinimumCVaR(ConicPortfolio):
    """Minimum conditional value at risk (expected shortfall) portfolio.

    Matches skfolio's ``MeanRisk(risk_measure=CVAR, objective=MINIMIZE_RISK, cvar_beta=beta)``.

    Parameters
    ----------
    beta
        Confidence level in ``(0, 1)``: the CVaR is the mean loss of the worst ``1 - beta``
        fraction of days.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_cvar"

    def __init__(self, beta: float = 0.95, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < beta < 1.0:
            raise ConfigError(f"beta={beta!r} for MinimumCVaR: use a confidence level in (0, 1), e.g. 0.95.")
        self.beta = float(beta)

    def problem(self, R: np.ndarray, b: int) -> ConicProblem:
        L, N = R.shape
        q = np.concatenate([np.zeros(N), [1.0], np.full(L, 1.0 / (L * (1.0 - self.beta)))])
        eye_L = sp.identity(L, format="csc")
        G = _blocks(
            [
                [sp.csc_matrix(-R), sp.csc_matrix(-np.ones((L, 1))), -eye_L],
                [None, sp.csc_matrix((L, 1)), -eye_L],
                [-sp.identity(N, format="csc"), sp.csc_matrix((N, 1)), sp.csc_matrix((N, L))],
            ]
        )
        A_eq = sp.csc_matrix(np.concatenate([np.ones(N), np.zeros(L + 1)])[None])
        return ConicProblem(q=q, A_eq=A_eq, b_eq=np.ones(1), G=G, h=np.zeros(G.shape[0]))


class MinimumDrawdown(ConicPortfolio):
    """Minimum maximum-drawdown portfolio (drawdowns of uncompounded cumulative returns).

    Matches skfolio's ``MeanRisk(risk_measure=MAX_DRAWDOWN, objective=MINIMIZE_RISK)``.

    Parameters
    ----------
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_drawdown"

    def problem(self, R: np.ndarray, b: int) -> ConicProblem:
        L, N = R.shape
        G, h = _drawdown_constraints(R)
        q = np.concatenate([np.zeros(N + L), [1.0]])
        A_eq = sp.csc_matrix(np.concatenate([np.ones(N), np.zeros(L + 1)])[None])
        return ConicProblem(q=q, A_eq=A_eq, b_eq=np.ones(1), G=G, h=h)


class MaximumCalmar(_MaximumRatio):
    """Maximum Calmar ratio ``(mu'w - r_f) / maxDD(w)`` (per-period mean over uncompounded drawdown).

    Matches skfolio's ``MeanRisk(risk_measure=MAX_DRAWDOWN, objective=MAXIMIZE_RATIO)``.

    Parameters
    ----------
    risk_free
        Risk-free return per period (same units as the returns).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_calmar"

    def problem(self, R: np.ndarray, b: int) -> ConicProblem:
        L, N = R.shape
        excess = R.mean(axis=0) - self.risk_free
        G, h = _drawdown_constraints(R)
        q = np.concatenate([np.zeros(N + L), [1.0]])
        A_eq = sp.csc_matrix(np.concatenate([excess, np.zeros(L + 1)])[None])
        return ConicProblem(q=q, A_eq=A_eq, b_eq=np.ones(1), G=G, h=h)


class MaximumSortino(_MaximumRatio):
    """Maximum Sortino ratio ``(mu'w - r_f) / semi-deviation(w)``.

    The semi-deviation is ``sqrt(sum_t min(R_t w - tau, 0)^2 / (L - 1))``. Matches skfolio's
    ``MeanRisk(risk_measure=SEMI_DEVIATION, objective=MAXIMIZE_RATIO,
    min_acceptable_return=tau)``.

    Parameters
    ----------
    target
        Minimum acceptable return ``tau`` per period; ``None`` uses each asset's window mean
        (skfolio's default), ``0.0`` (default) matches :func:`gradfolio.risk.sortino_ratio`.
    risk_free
        Risk-free return per period.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_sortino"

    def __init__(self, target: float | None = 0.0, risk_free: float = 0.0, **kwargs) -> None:
        super().__init__(risk_free=risk_free, **kwargs)
        self.target = None if target is None else float(target)

    def problem(self, R: np.ndarray, b: int) -> ConicProblem:
        L, N = R.shape
        excess = R.mean(axis=0) - self.risk_free
        below = R - (R.mean(axis=0) if self.target is None else self.target)
        eye_L = sp.identity(L, format="csc")
        G = _blocks(
            [
                [sp.csc_matrix(-below), -eye_L],
                [None, -eye_L],
                [-sp.identity(N, format="csc"), sp.csc_matrix((N, L))],
            ]
        )
        P = _blocks([[sp.csc_matrix((N, N)), None], [None, eye_L]])
        A_eq = sp.csc_matrix(np.concatenate([excess, np.zeros(L)])[None])
        return ConicProblem(q=np.zeros(N + L), A_eq=A_eq, b_eq=np.ones(1), G=G, h=np.zeros(G.shape[0]), P=P)
