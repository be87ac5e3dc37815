"""Downside-risk portfolios: minimum CVaR, minimum drawdown, maximum Calmar, maximum Sortino.

All four are long-only and fully invested by default (any
:class:`~gradfolio.solvers.PortfolioConstraints` instead with ``constraints=``, see
:mod:`gradfolio.allocation.classical.constrained`), and estimated from the simple returns ``R (L, N)``
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
standard form (batches of :mod:`gradfolio.solvers.conic`, through
:class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`). The standard forms of
all windows are built at once: one window's sparsity pattern (index arrays) plus a ``(B, nnz)``
array of values computed from ``R (B, L, N)`` in NumPy, no per-window sparse-matrix
construction. Each Clarabel call then takes ``windows_per_solve`` windows as one block-diagonal
problem; the default is one window per call, because stacking was measured slower (252-day
windows, 512 of them, one thread: stacking 2 / 8 / 32 / 512 windows per call gave 157 / 140 /
119 / 73 windows/s for minimum CVaR against 160/s one by one, and 36/s against 115–128/s for
minimum drawdown and maximum Calmar with all 512 in one call). An interior-point method takes a
common step and stops when every block has converged, so a stacked problem needs more iterations
(up to about twice as many) at the same cost per iteration and per window, and its tolerances
apply to the whole stacked problem (the weights then differ from the one-window solve by up to
4e-6).

The batched dense torch QP (:func:`gradfolio.solvers.solve_qp`) can express them (with ``Q = 0``)
but is the wrong tool here: it stores the inequality matrices (``2L + N`` to ``3L + N`` rows,
``L + N + 1`` columns) densely (~1.1 MB per window in float64 for minimum CVaR with ``L = 252``)
and factors dense systems of that size at every iteration. Measured on 32 windows of 252 days
(2 CPU cores, one thread): minimum CVaR took 14.9 s with ``solve_qp`` (max weight error 5e-8 at
``tol=1e-9``; no convergence at ``1e-11``) against 0.22 s with Clarabel. Clarabel takes 6–8 ms
per window. The weights are computed without autograd.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import confidence_level, positive_excess
from gradfolio.allocation.classical.conic_portfolio import ConicPortfolio
from gradfolio.allocation.classical.mean import MeanEstimator, resolve_mean, sample_mean
from gradfolio.solvers.conic import ConicBatch, Pattern

# Each builder below lists the nonzeros of one window's constraint matrix ``A`` (row 0: the
# equality, rows 1, 2, ...: the ``G x <= h`` rows, ``h = 0``) as (rows, cols, values) parts,
# the values either shared by every window (``(k,)``) or per window (``(B, k)``).


def _dense(r0: int, c0: int, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense block ``V (B, p, q)`` at row ``r0``, column ``c0``."""
    B, p, q = V.shape
    return np.repeat(r0 + np.arange(p), q), np.tile(c0 + np.arange(q), p), V.reshape(B, p * q)


def _diagonal(r0: int, c0: int, k: int, value: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``value`` times a ``k x k`` identity at row ``r0``, column ``c0``."""
    return r0 + np.arange(k), c0 + np.arange(k), np.full(k, float(value))


def _column(r0: int, c: int, k: int, value: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``value`` in rows ``r0 .. r0 + k - 1`` of column ``c``."""
    return r0 + np.arange(k), np.full(k, c), np.full(k, float(value))


def _pattern(B: int, shape: tuple[int, int], *parts) -> tuple[Pattern, np.ndarray]:
    """The pattern of the parts and their values ``(B, nnz)``."""
    rows = np.concatenate([r for r, _, _ in parts])
    cols = np.concatenate([c for _, c, _ in parts])
    values = np.concatenate([np.broadcast_to(v, (B, v.shape[-1])) for _, _, v in parts], axis=1)
    return Pattern(rows, cols, shape), values


def _batch(q: np.ndarray, shape: tuple[int, int], *parts, P=None) -> ConicBatch:
    """One equality (row 0, right-hand side 1) and ``G x <= 0`` (the other rows)."""
    B = q.shape[0]
    A, values = _pattern(B, shape, *parts)
    b = np.zeros((B, shape[0]))
    b[:, 0] = 1.0
    P, P_values = (None, None) if P is None else _pattern(B, (shape[1], shape[1]), *P)
    return ConicBatch(q=q, A=A, A_values=values, b=b, m_eq=1, P=P, P_values=P_values)


def _drawdown_constraints(R: np.ndarray) -> list:
    """``G x <= 0`` in rows ``1 ..`` for ``x = [w (N), d (L), z]``: ``d_t >= d_{t-1} - R_t w``
    (``d_{-1} = 0``), ``d >= 0``, ``z >= d``, ``w >= 0``."""
    _, L, N = R.shape
    return [
        _dense(1, 0, -R),  # -R_t w - d_t + d_{t-1} <= 0
        _diagonal(1, N, L, -1.0),
        _diagonal(2, N, L - 1, 1.0),
        _diagonal(1 + L, N, L, -1.0),  # -d_t <= 0
        _diagonal(1 + 2 * L, N, L, 1.0),  # d_t - z <= 0
        _column(1 + 2 * L, N + L, L, -1.0),
        _diagonal(1 + 3 * L, 0, N, -1.0),  # -w_i <= 0
    ]


def _budget(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row 0: ``sum w = 1``."""
    return np.zeros(N, dtype=np.int64), np.arange(N), np.ones(N)


class _MaximumRatio(ConicPortfolio):
    """A ratio ``(mu'w - r_f) / risk(w)``, homogenized; every window is checked before any solve.

    Windows where no asset has ``mu_i > r_f`` raise one
    :class:`~gradfolio.errors.InfeasibleError` that names them all (its ``rows``: their batch
    indices), see :func:`~gradfolio.allocation.classical.base.positive_excess`.
    """

    ratio = True

    def __init__(
        self,
        risk_free: float = 0.0,
        mean: str | MeanEstimator = "sample",
        mean_params: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.risk_free = float(risk_free)
        self.mean = resolve_mean(mean, mean_params)

    def expected(self, R: np.ndarray) -> np.ndarray:
        """``mu (c, N)`` of the windows ``R (c, L, N)`` from the mean estimator (the sample mean
        is taken in NumPy, as before the estimator hook)."""
        if self.mean is sample_mean:
            return R.mean(axis=1)
        return self.mean(torch.from_numpy(R)).detach().cpu().double().numpy()

    def allocate(self, R: Tensor) -> Tensor:
        if self.constraints is None:  # with constraints, Clarabel proves a window infeasible
            mu = None if self.mean is sample_mean else self.mean(R)
            positive_excess(R, self.risk_free, type(self).__name__, mean=mu)
        return super().allocate(R)


class MinimumCVaR(ConicPortfolio):
    """Minimum conditional value at risk (expected shortfall) portfolio.

    Matches skfolio's ``MeanRisk(risk_measure=CVAR, objective=MINIMIZE_RISK, cvar_beta=beta)``.

    Parameters
    ----------
    beta
        Confidence level in ``(0, 1)``: the CVaR is the mean loss of the worst ``1 - beta``
        fraction of days.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_cvar"

    def __init__(self, beta: float = 0.95, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta = confidence_level(beta, "MinimumCVaR")

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), a, u (L)]
        B, L, N = R.shape
        q = np.concatenate([np.zeros(N), [1.0], np.full(L, 1.0 / (L * (1.0 - self.beta)))])
        return _batch(
            np.broadcast_to(q, (B, q.size)),
            (1 + 2 * L + N, N + 1 + L),
            _budget(N),
            _dense(1, 0, -R),  # -R_t w - a - u_t <= 0
            _column(1, N, L, -1.0),
            _diagonal(1, N + 1, L, -1.0),
            _diagonal(1 + L, N + 1, L, -1.0),  # -u_t <= 0
            _diagonal(1 + 2 * L, 0, N, -1.0),  # -w_i <= 0
        )


class MinimumDrawdown(ConicPortfolio):
    """Minimum maximum-drawdown portfolio (drawdowns of uncompounded cumulative returns).

    Matches skfolio's ``MeanRisk(risk_measure=MAX_DRAWDOWN, objective=MINIMIZE_RISK)``.

    Parameters
    ----------
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_drawdown"

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), d (L), z]
        B, L, N = R.shape
        q = np.zeros((B, N + L + 1))
        q[:, -1] = 1.0
        return _batch(q, (1 + 3 * L + N, N + L + 1), _budget(N), *_drawdown_constraints(R))


class MaximumCalmar(_MaximumRatio):
    """Maximum Calmar ratio ``(mu'w - r_f) / maxDD(w)`` (per-period mean over uncompounded drawdown).

    Matches skfolio's ``MeanRisk(risk_measure=MAX_DRAWDOWN, objective=MAXIMIZE_RATIO)``.

    Parameters
    ----------
    risk_free
        Risk-free return per period (same units as the returns).
    mean, mean_params
        Expected-return estimator ``mu``: ``"sample"`` (default, the window mean),
        ``"james_stein"``, ``"black_litterman"`` (with ``mean_params`` its keywords) or any
        callable ``R (B, L, N) -> mu (B, N)``; see :mod:`gradfolio.allocation.classical.mean`.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_calmar"

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [y (N), d (L), z]; row 0: (mu - r_f)' y = 1
        B, L, N = R.shape
        excess = self.expected(R) - self.risk_free
        q = np.zeros((B, N + L + 1))
        q[:, -1] = 1.0
        return _batch(q, (1 + 3 * L + N, N + L + 1), _dense(0, 0, excess[:, None]), *_drawdown_constraints(R))


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
    mean, mean_params
        Expected-return estimator ``mu`` in the ratio's numerator (as in :class:`MaximumCalmar`);
        the semi-deviation's ``tau=None`` stays the window mean of the returns.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_sortino"

    def __init__(
        self,
        target: float | None = 0.0,
        risk_free: float = 0.0,
        mean: str | MeanEstimator = "sample",
        mean_params: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(risk_free=risk_free, mean=mean, mean_params=mean_params, **kwargs)
        self.target = None if target is None else float(target)

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [y (N), v (L)]; row 0: (mu - r_f)' y = 1; objective 1/2 sum v_t^2
        B, L, N = R.shape
        excess = self.expected(R) - self.risk_free
        below = R - (R.mean(axis=1, keepdims=True) if self.target is None else self.target)
        return _batch(
            np.zeros((B, N + L)),
            (1 + 2 * L + N, N + L),
            _dense(0, 0, excess[:, None]),
            _dense(1, 0, -below),  # -(R_t - tau) y - v_t <= 0
            _diagonal(1, N, L, -1.0),
            _diagonal(1 + L, N, L, -1.0),  # -v_t <= 0
            _diagonal(1 + 2 * L, 0, N, -1.0),  # -y_i <= 0
            P=[_diagonal(N, N, L, 1.0)],
        )
