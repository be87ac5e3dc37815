"""Per-window convex problems in sparse standard form, solved by Clarabel.

Used by the portfolios whose problems are sparse LPs/QPs with many scenario constraints
(see ``downside.py`` for why they are not sent to the dense batched torch solver).
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.errors import SolverError


@dataclass(frozen=True)
class ConicProblem:
    """``min 1/2 x'Px + q'x`` s.t. ``A_eq x = b_eq`` and ``G x <= h`` (sparse, NumPy)."""

    q: np.ndarray
    A_eq: sp.csc_matrix
    b_eq: np.ndarray
    G: sp.csc_matrix
    h: np.ndarray
    P: sp.csc_matrix | None = None


def solve_clarabel(problem: ConicProblem, who: str, batch_index: int, tol: float = 1e-10) -> np.ndarray:
    """Solve one :class:`ConicProblem` with Clarabel; return the primal solution ``x``.

    Raises
    ------
    SolverError
        Clarabel did not reach ``Solved`` (the batch element is named).
    """
    n = problem.q.shape[0]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    settings.tol_ktratio = 1e-8
    A = sp.vstack([problem.A_eq, problem.G]).tocsc()
    b = np.concatenate([problem.b_eq, problem.h])
    P = problem.P if problem.P is not None else sp.csc_matrix((n, n))
    cones = [clarabel.ZeroConeT(problem.A_eq.shape[0]), clarabel.NonnegativeConeT(problem.G.shape[0])]
    solution = clarabel.DefaultSolver(sp.triu(P).tocsc(), problem.q, A, b, cones, settings).solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise SolverError(
            f"{who}: Clarabel stopped with status {solution.status} at batch element {batch_index}; "
            "check that window's returns (constant or duplicated assets) or use a longer lookback."
        )
    return np.asarray(solution.x)


class ConicPortfolio(ClassicalPortfolio):
    """Solve one conic problem per window; subclasses build it and read the weights back."""

    tol: float = 1e-10

    def problem(self, R: np.ndarray, b: int) -> ConicProblem:
        """The problem of window ``b`` with returns ``R (L, N)``; implemented by subclasses."""
        raise NotImplementedError

    def weights(self, x: np.ndarray, N: int) -> np.ndarray:
        """Long-only weights from the solution ``x`` (first ``N`` entries, rescaled to sum one)."""
        w = np.clip(x[:N], 0.0, None)
        return w / w.sum()

    def allocate(self, R: Tensor) -> Tensor:
        who = type(self).__name__
        data = R.detach().cpu().double().numpy()
        N = data.shape[-1]
        out = np.stack(
            [self.weights(solve_clarabel(self.problem(r, b), who, b, self.tol), N) for b, r in enumerate(data)]
        )
        return torch.as_tensor(out, dtype=R.dtype, device=R.device)
