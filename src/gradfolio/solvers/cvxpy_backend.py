"""cvxpylayers back end: the same compiled problem in cvxpy, plus arbitrary user cvxpy constraints.

The objective is written ``1/2 |P w|^2 - mu'w`` with the parameter ``P = [sqrt(gamma) F;
sqrt(alpha) I]`` formed in torch (``F`` the factor, or the transposed Cholesky factor of the
covariance), which keeps the problem DPP. The declarative constraints are the compiled
``G x <= h0 + H_prev w_prev``, ``A x = b`` of :class:`~gradfolio.solvers.constraints.CompiledConstraints`,
so both back ends solve exactly the same problem. One cvxpylayers layer is built (and cached)
per factor rank ``K``.

cvxpy and cvxpylayers are imported when a layer is first built (and this module only by
``ConvexProblem(..., backend="cvxpylayers")``), so ``import gradfolio`` does not load them.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from gradfolio.errors import ConfigError, SolverError
from gradfolio.solvers.constraints import CompiledConstraints


class CvxpyBackend:
    """Build and call cvxpylayers layers for a :class:`CompiledConstraints` (see module docstring).

    Parameters
    ----------
    compiled
        The declarative constraints in standard form.
    extra
        ``w (cp.Variable of shape (N,)) -> list of cvxpy constraints`` (or ``None``).
    solver_args
        Keyword arguments of diffcp's cone solve (Clarabel at tight tolerances by default).
    """

    def __init__(self, compiled: CompiledConstraints, extra: Callable | None = None, solver_args: dict | None = None) -> None:
        self.compiled = compiled
        self.extra = extra
        self.solver_args = solver_args or {
            "solve_method": "Clarabel", "tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10,
        }
        self._layers: dict[int, object] = {}

    def layer(self, rows: int):
        """The cvxpylayers ``CvxpyLayer`` for a risk factor with ``rows`` rows."""
        if rows not in self._layers:
            import cvxpy as cp
            from cvxpylayers.torch import CvxpyLayer

            c, N = self.compiled, self.compiled.n_assets
            x = cp.Variable(c.n_vars)
            w = x[:N]
            P = cp.Parameter((rows, N))
            mu = cp.Parameter(N)
            params = [P, mu]
            cons = []
            if c.A.shape[0]:
                cons.append(c.A @ x == c.b)
            if c.G.shape[0]:
                h = c.h0
                if c.uses_prev:
                    w_prev = cp.Parameter(N)
                    params.append(w_prev)
                    h = c.h0 + c.H_prev @ w_prev
                cons.append(c.G @ x <= h)
            if self.extra is not None:
                cons += list(self.extra(w))
            problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(P @ w) - mu @ w), cons)
            if not problem.is_dpp():
                raise ConfigError("CvxpyBackend: the extra cvxpy constraints make the problem not DPP; use only constants and w.")
            self._layers[rows] = CvxpyLayer(problem, parameters=params, variables=[x])
        return self._layers[rows]

    def solve(self, mu: Tensor, cov: Tensor | None, factor: Tensor | None, gamma: Tensor, alpha: Tensor,
              w_prev: Tensor | None) -> Tensor:
        """Weights ``(B, N)`` (arguments as in :meth:`ConvexProblem.solve`, gamma/alpha ``(B,)``)."""
        N = self.compiled.n_assets
        if (cov is None) == (factor is None):
            raise ConfigError("ConvexProblem: give exactly one of cov (B, N, N) or factor (B, K, N).")
        if factor is None:
            L, info = torch.linalg.cholesky_ex(cov)
            if bool((info > 0).any()):
                b = int((info > 0).nonzero()[0])
                raise ConfigError(f"ConvexProblem (cvxpylayers): cov[{b}] is not positive definite; pass a factor instead.")
            factor = L.transpose(-1, -2)
        eye = torch.eye(N, dtype=mu.dtype, device=mu.device).expand(mu.shape[0], N, N)
        P = torch.cat([gamma.sqrt()[:, None, None] * factor, alpha.sqrt()[:, None, None] * eye], dim=1)
        args = [P, mu] + ([w_prev] if self.compiled.uses_prev else [])
        try:
            (x,) = self.layer(P.shape[1])(*args, solver_args=self.solver_args)
        except Exception as exc:  # cvxpylayers raises plain exceptions on solver failure
            raise SolverError(f"ConvexProblem (cvxpylayers): the solve failed ({exc}); check the inputs.") from exc
        return x[:, :N]


__all__ = ["CvxpyBackend"]
