"""Minimum-risk portfolios for more risk measures: CDaR, mean absolute deviation, worst
realization, semi-variance and entropic value at risk (EVaR), and maximum Omega. Long-only and fully invested by default (any
:class:`~gradfolio.solvers.PortfolioConstraints` instead with ``constraints=``, as every
:class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`: the builders' budget row
and closing ``-w <= 0`` rows are replaced by the spec's, Omega's rows homogenized; see
:mod:`~gradfolio.allocation.classical.constrained`); one sparse Clarabel problem per window
(:class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`, as the portfolios of
:mod:`~gradfolio.allocation.classical.downside`); ``mu`` is the window mean.

Minimum CDaR (Chekhlov, Uryasev and Zabarankin), drawdowns ``d_t`` of uncompounded cumulative
returns as in ``min_drawdown``, their CVaR at ``beta`` by Rockafellar-Uryasev::

    min  a + sum_t u_t / (L (1 - beta))   s.t.  d_t >= d_{t-1} - R_t w,  d >= 0,  u_t >= d_t - a,  u >= 0

Minimum mean absolute deviation (Konno and Yamazaki)::

    min  sum_t v_t / L   s.t.  v_t >= (R_t - mu) w,  v_t >= -(R_t - mu) w

Minimum worst realization (Young's minimax)::

    min  z   s.t.  z >= -R_t w

Minimum semi-variance (below the mean; Markowitz)::

    min  sum_t v_t^2 / (L - 1)   s.t.  v_t >= -(R_t - mu) w,  v >= 0

Minimum entropic value at risk (Ahmadi-Javid), ``EVaR_beta(w) = inf_{z>0} z log(E[exp(-R w / z)]
/ (1 - beta))``, with ``L`` exponential cones (Clarabel's ``{(a, b, c): b exp(a / b) <= c}``; as
skfolio writes it)::

    min  t - z log(L (1 - beta))   s.t.  (-R_t w - t, z, u_t) in K_exp,  sum_t u_t <= z,  z >= 0

(``sum_t z exp((-R_t w - t) / z) <= z`` is ``t >= z log sum_t exp(-R_t w / z)``); the returns
are divided by their mean absolute value first (EVaR is positively homogeneous: same argmin).

all with ``sum w = 1``, ``w >= 0``. Maximum Omega ratio (Keating and Shadwick) at threshold
``tau``, ``Omega(w) = 1 + (mu'w - tau) / LPM1(w)`` with ``LPM1 = mean_t max(tau - R_t w, 0)``,
homogenized (Charnes-Cooper, ``y = k w``; Kapsos, Christofides and Rustem)::

    min  sum_t v_t / L   s.t.  v_t >= -(R_t - tau) y,  v >= 0,  (mu - tau)' y = 1,  y >= 0,   w = y / 1'y

which needs some ``mu_i > tau`` (else :class:`~gradfolio.errors.InfeasibleError` names the
windows). Peers: skfolio's ``MeanRisk(risk_measure=CDAR | MEAN_ABSOLUTE_DEVIATION
| WORST_REALIZATION | SEMI_VARIANCE | EVAR)``; the minimized risks equal :mod:`gradfolio.risk`'s
``cdar``, ``mean_absolute_deviation``, ``worst_realization``, ``semi_variance`` and ``evar``.
"""

from __future__ import annotations

import numpy as np

from gradfolio.allocation.classical.base import confidence_level
from gradfolio.allocation.classical.conic_portfolio import ConicPortfolio
from gradfolio.allocation.classical.mean import MeanEstimator
from gradfolio.allocation.classical.downside import (
    _batch,
    _budget,
    _column,
    _dense,
    _diagonal,
    _MaximumRatio,
)
from gradfolio.solvers.conic import ConicBatch, Pattern


def _row(r: int, c0: int, k: int, value: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``value`` in columns ``c0 .. c0 + k - 1`` of row ``r``."""
    return np.full(k, r), c0 + np.arange(k), np.full(k, float(value))


class MinimumCDaR(ConicPortfolio):
    """Minimum conditional drawdown at risk (skfolio's ``MeanRisk(risk_measure=CDAR, cdar_beta=beta)``).

    Parameters
    ----------
    beta
        Confidence level in ``(0, 1)``.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_cdar"

    def __init__(self, beta: float = 0.95, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta = confidence_level(beta, "MinimumCDaR")

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), d (L), a, u (L)]
        B, L, N = R.shape
        a = N + L
        q = np.zeros(N + 2 * L + 1)
        q[a] = 1.0
        q[a + 1 :] = 1.0 / (L * (1.0 - self.beta))
        return _batch(
            np.broadcast_to(q, (B, q.size)),
            (1 + 4 * L + N, N + 2 * L + 1),
            _budget(N),
            _dense(1, 0, -R),  # -R_t w - d_t + d_{t-1} <= 0
            _diagonal(1, N, L, -1.0),
            _diagonal(2, N, L - 1, 1.0),
            _diagonal(1 + L, N, L, -1.0),  # -d_t <= 0
            _diagonal(1 + 2 * L, N, L, 1.0),  # d_t - a - u_t <= 0
            _column(1 + 2 * L, a, L, -1.0),
            _diagonal(1 + 2 * L, a + 1, L, -1.0),
            _diagonal(1 + 3 * L, a + 1, L, -1.0),  # -u_t <= 0
            _diagonal(1 + 4 * L, 0, N, -1.0),  # -w_i <= 0
        )


class MinimumMeanAbsoluteDeviation(ConicPortfolio):
    """Minimum mean absolute deviation (skfolio's ``MeanRisk(risk_measure=MEAN_ABSOLUTE_DEVIATION)``).

    Parameters
    ----------
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_mad"

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), v (L)]
        B, L, N = R.shape
        Rc = R - R.mean(axis=1, keepdims=True)
        q = np.concatenate([np.zeros(N), np.full(L, 1.0 / L)])
        return _batch(
            np.broadcast_to(q, (B, q.size)),
            (1 + 2 * L + N, N + L),
            _budget(N),
            _dense(1, 0, Rc),  # (R_t - mu) w - v_t <= 0
            _diagonal(1, N, L, -1.0),
            _dense(1 + L, 0, -Rc),  # -(R_t - mu) w - v_t <= 0
            _diagonal(1 + L, N, L, -1.0),
            _diagonal(1 + 2 * L, 0, N, -1.0),
        )


class MinimumWorstRealization(ConicPortfolio):
    """Minimax portfolio: the smallest worst daily loss (skfolio's ``MeanRisk(risk_measure=WORST_REALIZATION)``).

    Parameters
    ----------
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_worst_realization"

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), z]
        B, L, N = R.shape
        q = np.zeros(N + 1)
        q[N] = 1.0
        return _batch(
            np.broadcast_to(q, (B, q.size)),
            (1 + L + N, N + 1),
            _budget(N),
            _dense(1, 0, -R),  # -R_t w - z <= 0
            _column(1, N, L, -1.0),
            _diagonal(1 + L, 0, N, -1.0),
        )


class MinimumSemiVariance(ConicPortfolio):
    """Minimum semi-variance below the mean (skfolio's ``MeanRisk(risk_measure=SEMI_VARIANCE)``).

    Parameters
    ----------
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_semi_variance"

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), v (L)]; objective 1/2 sum v_t^2 (the 1 / (L - 1) and the scaling of the
        # deviations to a mean absolute value of one do not move the argmin)
        B, L, N = R.shape
        Rc = R - R.mean(axis=1, keepdims=True)
        Rc = Rc / np.abs(Rc).mean(axis=(1, 2), keepdims=True)
        return _batch(
            np.zeros((B, N + L)),
            (1 + 2 * L + N, N + L),
            _budget(N),
            _dense(1, 0, -Rc),  # -(R_t - mu) w - v_t <= 0
            _diagonal(1, N, L, -1.0),
            _diagonal(1 + L, N, L, -1.0),  # -v_t <= 0
            _diagonal(1 + 2 * L, 0, N, -1.0),
            P=[_diagonal(N, N, L, 1.0)],
        )


class MinimumEVaR(ConicPortfolio):
    """Minimum entropic value at risk (skfolio's ``MeanRisk(risk_measure=EVAR, evar_beta=beta)``).

    One exponential cone per day of the window (``3 L`` rows after the linear ones), solved by
    Clarabel like the other conic portfolios; the minimized risk is :func:`gradfolio.risk.evar`.

    Parameters
    ----------
    beta
        Confidence level in ``(0, 1)``.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_evar"

    def __init__(self, beta: float = 0.95, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta = confidence_level(beta, "MinimumEVaR")

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [w (N), t, z, u (L)]; the linear rows only (the cones: :meth:`cones`)
        B, L, N = R.shape
        t = N
        q = np.zeros(N + 2 + L)
        q[t] = 1.0
        q[t + 1] = -np.log(L * (1.0 - self.beta))
        return _batch(
            np.broadcast_to(q, (B, q.size)),
            (3 + N, N + 2 + L),
            _budget(N),
            _row(1, t + 2, L, 1.0),  # sum u - z <= 0
            _column(1, t + 1, 1, -1.0),
            _column(2, t + 1, 1, -1.0),  # -z <= 0
            _diagonal(3, 0, N, -1.0),  # -w_i <= 0
        )

    def cones(self, batch: ConicBatch, R: np.ndarray) -> ConicBatch:
        # rows m + 3 s, m + 3 s + 1, m + 3 s + 2: b - A x = (-R_s w - t, z, u_s), b = 0
        B, L, N = R.shape
        (m, n), t = batch.A.shape, N
        scaled = R / np.abs(R).mean(axis=(1, 2), keepdims=True)
        first = m + 3 * np.arange(L)
        rows = [batch.A.rows, np.repeat(first, N), first, first + 1, first + 2]
        cols = [batch.A.cols, np.tile(np.arange(N), L), np.full(L, t), np.full(L, t + 1), t + 2 + np.arange(L)]
        values = [batch.A_values, scaled.reshape(B, L * N), np.ones(L), np.full(L, -1.0), np.full(L, -1.0)]
        values = np.concatenate([np.broadcast_to(v, (B, v.shape[-1])) for v in values], axis=1)
        P = None if batch.P is None else Pattern(batch.P.rows, batch.P.cols, batch.P.shape)
        return ConicBatch(q=batch.q, A=Pattern(np.concatenate(rows), np.concatenate(cols), (m + 3 * L, n)),
                          A_values=values, b=np.concatenate([batch.b, np.zeros((B, 3 * L))], axis=1),
                          m_eq=batch.m_eq, P=P, P_values=batch.P_values, n_exp=L)


class MaximumOmega(_MaximumRatio):
    """Maximum Omega ratio at ``threshold`` (homogenized LP; see the module text).

    skfolio has no Omega objective: the optimum is checked against
    :func:`gradfolio.risk.omega_ratio` of every asset, of random portfolios and of a direct
    search, and the LP against cvxpy + Clarabel.

    Parameters
    ----------
    threshold
        ``tau``, the return per period that splits gains from losses.
    mean, mean_params
        Expected-return estimator ``mu`` in ``mu'w - tau`` (default ``"sample"``, the window
        mean; see :class:`~gradfolio.allocation.classical.MaximumCalmar`); the lower partial
        moment stays that of the returns.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``sum w = 1, w >= 0`` (see
        :class:`~gradfolio.allocation.classical.conic_portfolio.ConicPortfolio`).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_omega"

    def __init__(
        self,
        threshold: float = 0.0,
        mean: str | MeanEstimator = "sample",
        mean_params: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(risk_free=threshold, mean=mean, mean_params=mean_params, **kwargs)
        self.threshold = float(threshold)

    def build(self, R: np.ndarray) -> ConicBatch:
        # x = [y (N), v (L)]; row 0: (mu - tau)' y = 1
        B, L, N = R.shape
        excess = self.expected(R) - self.threshold
        q = np.concatenate([np.zeros(N), np.full(L, 1.0 / L)])
        return _batch(
            np.broadcast_to(q, (B, q.size)),
            (1 + 2 * L + N, N + L),
            _dense(0, 0, excess[:, None]),
            _dense(1, 0, -(R - self.threshold)),  # -(R_t - tau) y - v_t <= 0
            _diagonal(1, N, L, -1.0),
            _diagonal(1 + L, N, L, -1.0),  # -v_t <= 0
            _diagonal(1 + 2 * L, 0, N, -1.0),  # -y_i <= 0
        )


__all__ = ["MaximumOmega", "MinimumCDaR", "MinimumEVaR", "MinimumMeanAbsoluteDeviation", "MinimumWorstRealization", "MinimumSemiVariance"]
