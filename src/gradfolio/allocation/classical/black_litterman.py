"""Black-Litterman posterior returns and covariance, batched over windows.

With ``S`` the covariance estimate of a window (per period), a prior ``pi`` of expected returns,
``K`` views ``P mu = q`` (pick matrix ``P (K, N)``, targets ``q (K,)``) held with uncertainty
``Omega (K, K)`` and the scalar ``tau``::

    A        = tau P S P' + Omega                               (K, K)
    mu_post  = pi + tau S P' A^{-1} (q - P pi)                  (N,)
    S_post   = S + tau S - tau S P' A^{-1} P S tau              (N, N)

(He and Litterman, "The Intuition Behind Black-Litterman Model Portfolios"; the posterior
covariance ``S + M`` is PyPortfolioOpt's ``bl_cov``). Priors:

``"market"``
    Market-implied (reverse optimization): ``pi = delta S w_mkt + r_f`` with
    ``w_mkt = caps / sum(caps)``, ``delta`` the risk aversion.
``"equal"``
    The same with equal market weights ``w_mkt = 1/N``. (PyPortfolioOpt's ``pi="equal"`` is a
    different thing, the constant vector ``1/N``; pass that as an explicit prior if wanted.)
a tensor
    Explicit prior returns, shape ``(N,)`` or ``(B, N)``.

View uncertainty ``Omega`` (diagonal):

``"default"``
    He-Litterman: ``Omega = diag(tau P S P')``, each view as uncertain as the prior of its view
    portfolio.
``"idzorek"``
    Idzorek's confidences ``c_k`` in ``[0, 1]`` by the closed form of Walters ("The
    Black-Litterman Model in Detail"): ``Omega_kk = tau (1 - c_k) / c_k P_k S P_k'``;
    ``c_k = 1`` is certainty (``Omega_kk = 0``), ``c_k = 0`` gives ``Omega_kk = 1e6`` (as
    PyPortfolioOpt: the view is practically ignored).
a tensor
    An explicit symmetric positive semidefinite ``Omega``, shape ``(K, K)`` or ``(B, K, K)``.

Absolute views ("asset i returns q_i") are rows of ``P`` with a single 1 (``absolute={i: q_i}``);
relative views ("asset i outperforms asset j by q") have ``+1`` and ``-1`` (or any weights).
Views and prior are in the units of the returns (per period: daily returns need daily views,
e.g. an annual view divided by 252). ``delta`` is scale-free (mean over variance).

Everything is computed in float64 on the device of the returns and returned in their dtype; it
is differentiable in the returns, the views and the prior. Matches PyPortfolioOpt's
``BlackLittermanModel`` (``bl_returns``, ``bl_cov``) to 1e-10 (see the tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.errors import ConfigError, DataError

PRIORS = ("market", "equal")
OMEGAS = ("default", "idzorek")
#: ``Omega_kk`` of a view with confidence 0 under Idzorek's method (PyPortfolioOpt's value).
ZERO_CONFIDENCE_OMEGA = 1e6


def _tensor(value: object, name: str) -> Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} for BlackLitterman: not numeric ({exc}); give numbers.") from exc
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{name} for BlackLitterman: contains non-finite values; give finite numbers.")
    return t


class BlackLitterman:
    """Black-Litterman posterior: returns ``R (B, L, N)`` -> posterior mean ``(B, N)``.

    Calling the object gives the posterior expected returns, so it is a mean estimator
    (``MaximumSharpe(mean=BlackLitterman(...))`` or
    ``MaximumSharpe(mean="black_litterman", mean_params={...})``); :meth:`covariance` gives the
    posterior covariance (a covariance estimator: ``MaximumSharpe(covariance=bl.covariance)``)
    and :meth:`posterior` both.

    Parameters
    ----------
    P, q
        Pick matrix ``(K, N)`` or ``(B, K, N)`` and view returns ``(K,)`` or ``(B, K)`` (per
        period); a leading ``B`` gives each window its own views.
    absolute
        Absolute views ``{asset index: return}``, appended after the rows of ``P`` (or alone).
    prior
        ``"equal"`` (default), ``"market"`` (needs ``market_caps``) or explicit prior returns
        ``(N,)`` / ``(B, N)``.
    market_caps
        Market capitalizations ``(N,)`` or ``(B, N)`` (positive), for ``prior="market"``.
    risk_aversion
        ``delta > 0`` of the implied prior (PyPortfolioOpt's default 1).
    tau
        Uncertainty of the prior, in ``(0, 1]`` (default 0.05).
    omega
        ``"default"`` (He-Litterman), ``"idzorek"`` (needs ``confidences``) or an explicit
        ``(K, K)`` / ``(B, K, K)`` matrix.
    confidences
        Idzorek confidences in ``[0, 1]``, one per view ``(K,)``.
    covariance
        Estimator of ``S``: ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a
        callable ``R (B, L, N) -> (B, N, N)``.
    risk_free
        Risk-free return per period, added to an implied (``"market"`` / ``"equal"``) prior.

    Raises
    ------
    ConfigError
        Views of mismatched shapes, a confidence outside ``[0, 1]``, an unknown prior or omega,
        a non-positive ``tau`` / ``risk_aversion`` / cap, an omega that is not symmetric
        positive semidefinite; at call time a view count or asset count that does not fit the
        windows, or a singular ``tau P S P' + Omega`` (redundant views held with certainty).
    """

    def __init__(
        self,
        P: Tensor | Sequence[Sequence[float]] | None = None,
        q: Tensor | Sequence[float] | None = None,
        *,
        absolute: Mapping[int, float] | None = None,
        prior: str | Tensor | Sequence[float] = "equal",
        market_caps: Tensor | Sequence[float] | None = None,
        risk_aversion: float = 1.0,
        tau: float = 0.05,
        omega: str | Tensor | Sequence[Sequence[float]] = "default",
        confidences: Tensor | Sequence[float] | None = None,
        covariance: str | CovarianceEstimator = "sample",
        risk_free: float = 0.0,
    ) -> None:
        if (P is None) != (q is None):
            raise ConfigError("P and q for BlackLitterman: give both the pick matrix P and the view returns q, or neither.")
        if P is None and not absolute:
            raise ConfigError("views for BlackLitterman: give P and q (relative views) or absolute={asset: return}.")
        self.P = None if P is None else _tensor(P, "P")
        self.q = None if q is None else _tensor(q, "q")
        if self.P is not None and self.q is not None:
            if self.P.ndim not in (2, 3) or self.q.ndim != self.P.ndim - 1 or self.q.shape != self.P.shape[:-1]:
                raise ConfigError(
                    f"P and q for BlackLitterman: P has shape {tuple(self.P.shape)} and q {tuple(self.q.shape)}; "
                    "use P (K, N) with q (K,), or P (B, K, N) with q (B, K)."
                )
        self.absolute = {}
        for i, value in dict(absolute or {}).items():
            if not isinstance(i, int) or i < 0:
                raise ConfigError(f"absolute for BlackLitterman: key {i!r} is not an asset index >= 0.")
            self.absolute[i] = float(_tensor(value, f"absolute[{i}]"))
        if isinstance(prior, str):
            if prior not in PRIORS:
                raise ConfigError(f"prior={prior!r} for BlackLitterman: use 'market', 'equal' or prior returns (N,).")
            self.prior: str | Tensor = prior
        else:
            self.prior = _tensor(prior, "prior")
            if self.prior.ndim not in (1, 2):
                raise ConfigError(f"prior for BlackLitterman: shape {tuple(self.prior.shape)}; use (N,) or (B, N).")
        self.market_caps = None if market_caps is None else _tensor(market_caps, "market_caps")
        if self.prior == "market":
            caps = self.market_caps
            if caps is None or caps.ndim not in (1, 2) or not bool((caps > 0).all()):
                raise ConfigError(
                    "market_caps for BlackLitterman: prior='market' needs positive market caps of shape (N,) or (B, N)."
                )
        if not risk_aversion > 0:
            raise ConfigError(f"risk_aversion={risk_aversion!r} for BlackLitterman: use a positive number.")
        if not 0 < tau <= 1:
            raise ConfigError(f"tau={tau!r} for BlackLitterman: use a prior uncertainty in (0, 1], e.g. 0.05.")
        self.risk_aversion = float(risk_aversion)
        self.tau = float(tau)
        self.risk_free = float(risk_free)
        K = self.n_views
        self.confidences = None if confidences is None else _tensor(confidences, "confidences")
        if self.confidences is not None:
            c = self.confidences
            if c.shape != (K,):
                raise ConfigError(
                    f"confidences for BlackLitterman: shape {tuple(c.shape)} for {K} views; give one confidence per view."
                )
            if bool(((c < 0) | (c > 1)).any()):
                raise ConfigError(
                    f"confidences for BlackLitterman: {c.tolist()} has values outside [0, 1]; "
                    "a confidence is a fraction (1 = certain, 0 = no confidence)."
                )
        if isinstance(omega, str):
            if omega not in OMEGAS:
                raise ConfigError(f"omega={omega!r} for BlackLitterman: use 'default', 'idzorek' or a (K, K) matrix.")
            if omega == "idzorek" and self.confidences is None:
                raise ConfigError("omega='idzorek' for BlackLitterman: give confidences in [0, 1], one per view.")
            self.omega: str | Tensor = omega
        else:
            om = _tensor(omega, "omega")
            if om.ndim not in (2, 3) or om.shape[-2:] != (K, K):
                raise ConfigError(f"omega for BlackLitterman: shape {tuple(om.shape)} for {K} views; use (K, K) or (B, K, K).")
            if not torch.allclose(om, om.mT, rtol=1e-12, atol=0.0) or bool(
                (torch.linalg.eigvalsh(om) < -1e-12 * om.abs().amax(dim=(-2, -1), keepdim=True)[..., 0]).any()
            ):
                raise ConfigError("omega for BlackLitterman: must be symmetric positive semidefinite (a covariance of the views).")
            self.omega = om
        self.covariance_estimator = resolve_covariance(covariance)

    @property
    def n_views(self) -> int:
        """Number of views ``K`` (rows of ``P`` plus absolute views)."""
        return (0 if self.P is None else self.P.shape[-2]) + len(self.absolute)

    def views(self, B: int, N: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Pick matrices ``(B, K, N)`` and view returns ``(B, K)`` in float64 for ``B`` windows of ``N`` assets."""
        rows, targets = [], []
        if self.P is not None and self.q is not None:
            if self.P.shape[-1] != N or (self.P.ndim == 3 and self.P.shape[0] != B):
                raise ConfigError(
                    f"P for BlackLitterman: shape {tuple(self.P.shape)} does not fit {B} windows of {N} assets; "
                    "use (K, N) or (B, K, N)."
                )
            rows.append(self.P.to(device).expand(B, -1, N))
            targets.append(self.q.to(device).expand(B, -1))
        if self.absolute:
            bad = [i for i in self.absolute if i >= N]
            if bad:
                raise ConfigError(f"absolute for BlackLitterman: asset indices {bad} but the windows have {N} assets.")
            eye = torch.eye(N, dtype=torch.float64, device=device)[list(self.absolute)]
            rows.append(eye.expand(B, -1, N))
            targets.append(torch.tensor(list(self.absolute.values()), dtype=torch.float64, device=device).expand(B, -1))
        return torch.cat(rows, dim=1), torch.cat(targets, dim=1)

    def _per_window(self, t: Tensor, B: int, tail: tuple[int, ...], name: str, device: torch.device) -> Tensor:
        if t.shape[-len(tail) :] != tail or (t.ndim == len(tail) + 1 and t.shape[0] != B):
            raise ConfigError(
                f"{name} for BlackLitterman: shape {tuple(t.shape)} does not fit {B} windows; "
                f"use {tail} or ({B}, {', '.join(map(str, tail))})."
            )
        return t.to(device).expand(B, *tail)

    def prior_returns(self, S: Tensor) -> Tensor:
        """Prior expected returns ``pi (B, N)`` from covariances ``S (B, N, N)`` (float64)."""
        B, N = S.shape[0], S.shape[-1]
        if isinstance(self.prior, Tensor):
            return self._per_window(self.prior, B, (N,), "prior", S.device)
        if self.prior == "market":
            assert self.market_caps is not None
            caps = self._per_window(self.market_caps, B, (N,), "market_caps", S.device)
            w = caps / caps.sum(dim=-1, keepdim=True)
        else:
            w = torch.full((B, N), 1.0 / N, dtype=S.dtype, device=S.device)
        return self.risk_aversion * (S @ w[..., None])[..., 0] + self.risk_free

    def view_uncertainty(self, S: Tensor, P: Tensor) -> Tensor:
        """``Omega (B, K, K)`` for covariances ``S (B, N, N)`` and pick matrices ``P (B, K, N)``."""
        B, K = P.shape[0], P.shape[1]
        if isinstance(self.omega, Tensor):
            return self._per_window(self.omega, B, (K, K), "omega", S.device)
        var = torch.einsum("bkn,bnm,bkm->bk", P, S, P)  # P_k S P_k'
        if self.omega == "default":
            return torch.diag_embed(self.tau * var)
        assert self.confidences is not None
        c = self.confidences.to(S.device)
        alpha = (1.0 - c) / torch.where(c > 0, c, torch.ones_like(c))
        diag = torch.where(c > 0, self.tau * alpha * var, torch.full_like(var, ZERO_CONFIDENCE_OMEGA))
        return torch.diag_embed(diag)

    def posterior(self, R: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior expected returns and covariance of every window.

        Parameters
        ----------
        R
            Simple returns, shape ``(B, L, N)``.

        Returns
        -------
        (mu, cov)
            ``mu (B, N)`` and ``cov (B, N, N)``, per period, in ``R``'s dtype.
        """
        if R.ndim != 3:
            raise DataError(f"R for BlackLitterman: shape {tuple(R.shape)}; expected (B, L, N) returns.")
        S = self.covariance_estimator(R).double()
        mu, cov = self.update(S, self.prior_returns(S))
        return mu.to(R.dtype), cov.to(R.dtype)

    def update(self, S: Tensor, pi: Tensor) -> tuple[Tensor, Tensor]:
        """The Black-Litterman update of a prior ``pi (B, N)`` with covariances ``S (B, N, N)`` (float64)."""
        B, N = pi.shape
        P, q = self.views(B, N, S.device)
        omega = self.view_uncertainty(S, P)
        tSP = self.tau * S @ P.mT  # (B, N, K)
        A = P @ tSP + omega
        A = 0.5 * (A + A.mT)
        # Singular up to rounding, judged on the unit-diagonal scaling D^-1/2 A D^-1/2 (so that a
        # view with huge uncertainty, confidence 0, does not make the others look singular).
        d = torch.diagonal(A, dim1=-2, dim2=-1)
        scale = torch.where(d > 0, d, torch.ones_like(d)).rsqrt()
        eig = torch.linalg.eigvalsh(A * scale[:, :, None] * scale[:, None, :])
        tiny = (d <= 0).any(dim=-1) | (eig[:, 0] <= A.shape[-1] * 1e3 * torch.finfo(A.dtype).eps)
        if bool(tiny.any()):
            b = int(tiny.nonzero()[0])
            raise ConfigError(
                f"omega for BlackLitterman: tau P S P' + Omega is singular in window {b} (views that repeat or "
                "contradict each other held with certainty, or a view on assets without variance); drop the "
                "redundant views or lower their confidences below 1."
            )
        solved = torch.linalg.solve(A, torch.cat([(q - (P @ pi[..., None])[..., 0])[..., None], tSP.mT], dim=-1))
        mu = pi + (tSP @ solved[..., :1])[..., 0]
        cov = S + self.tau * S - tSP @ solved[..., 1:]
        return mu, 0.5 * (cov + cov.mT)

    def __call__(self, R: Tensor) -> Tensor:
        """Posterior expected returns ``(B, N)`` of returns ``R (B, L, N)``."""
        return self.posterior(R)[0]

    def covariance(self, R: Tensor) -> Tensor:
        """Posterior covariance ``(B, N, N)`` of returns ``R (B, L, N)``."""
        return self.posterior(R)[1]

    def __repr__(self) -> str:
        prior = self.prior if isinstance(self.prior, str) else "tensor"
        omega = self.omega if isinstance(self.omega, str) else "tensor"
        return f"BlackLitterman(views={self.n_views}, prior={prior!r}, omega={omega!r}, tau={self.tau})"


__all__ = ["BlackLitterman"]
