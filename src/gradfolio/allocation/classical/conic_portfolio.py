"""Classical portfolios solved as one sparse conic problem per window (Clarabel batches).

:class:`ConicPortfolio` turns the windows ``R (B, L, N)`` into a :class:`~gradfolio.solvers.conic.ConicBatch`
(built by a subclass, in groups bounded by ``max_build_nonzeros``), solves it with
:func:`~gradfolio.solvers.conic.solve_batch` and reads long-only weights ``w (B, N)`` off the
solutions. The downside-risk portfolios (:mod:`gradfolio.allocation.classical.downside`) are its
subclasses.

With ``constraints`` (a :class:`~gradfolio.solvers.PortfolioConstraints`), the default
``sum w = 1, w >= 0`` rows are replaced by the spec's rows (see
:mod:`gradfolio.allocation.classical.constrained`) and the weights are the solver's, unclipped.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.constrained import (
    check_spec, constrain, constrained_weights, raise_infeasible, solve_all,
)
from gradfolio.solvers.conic import ConicBatch, solve_batch
from gradfolio.solvers.constraints import PortfolioConstraints


class ConicPortfolio(ClassicalPortfolio):
    """Solve one conic problem per window, ``windows_per_solve`` windows per Clarabel call (default one).

    Subclasses build the problems of a group of windows at once (:meth:`build`); the weights are
    the first ``N`` entries of each solution, clipped at zero and rescaled to sum one.

    Parameters
    ----------
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` by index or resolved by ticker (default
        ``None``: long-only and fully invested); they replace the default ``sum w = 1, w >= 0``
        (``long_only=True`` keeps ``w >= 0``). A turnover limit is refused (no previous weights).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.

    Attributes
    ----------
    tol
        Clarabel's gap and feasibility tolerances.
    windows_per_solve
        Windows stacked into one Clarabel call (block-diagonal problem), at most. One (default):
        stacking was measured slower and only as accurate as the whole stacked problem's
        tolerances (see ``downside.py``).
    max_solve_nonzeros
        Bound on the stored nonzeros of one Clarabel call (fewer windows per call beyond it).
    max_build_nonzeros
        Bound on the values built at once (windows are built in groups below it).
    """

    tol: float = 1e-10
    windows_per_solve: int = 1
    max_solve_nonzeros: int = 2**21
    max_build_nonzeros: int = 2**22
    #: Maximum-ratio problems (solved in ``y = k w``): their constraint rows are homogenized.
    ratio: bool = False

    def __init__(self, constraints: PortfolioConstraints | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.constraints = check_spec(constraints, type(self).__name__, self.ratio)

    def build(self, R: np.ndarray) -> ConicBatch:
        """The problems of the windows ``R (c, L, N)``; implemented by subclasses."""
        raise NotImplementedError

    def cones(self, batch: ConicBatch, R: np.ndarray) -> ConicBatch:
        """``batch`` with the portfolio's exponential-cone rows appended (default: none, ``batch`` itself).

        Called after :meth:`build` (and after the spec's rows replaced the default ones, which
        keeps the builder's variables in their columns), so that the cones stay the last rows.
        """
        return batch

    def weights(self, x: np.ndarray, N: int) -> np.ndarray:
        """Long-only weights from the solutions ``x (B, n)`` (first ``N`` entries, rescaled to sum one)."""
        w = np.clip(x[:, :N], 0.0, None)
        return w / w.sum(axis=1, keepdims=True)

    def allocate(self, R: Tensor) -> Tensor:
        who = type(self).__name__
        data = R.detach().cpu().double().numpy()
        B, L, N = data.shape
        nnz = L * N + 6 * L + 2 * N  # about the nonzeros of one window, to size the groups
        per_build = max(1, self.max_build_nonzeros // nnz)
        out = np.empty((B, N))
        if self.constraints is not None:
            return self._allocate_constrained(data, per_build, R)
        for start in range(0, B, per_build):
            chunk = data[start : start + per_build]
            batch = self.cones(self.build(chunk), chunk)
            per_solve = max(1, min(self.windows_per_solve, self.max_solve_nonzeros // batch.nnz))
            x = solve_batch(batch, who, start, self.tol, per_solve)
            out[start : start + len(batch)] = self.weights(x, N)
        return torch.as_tensor(out, dtype=R.dtype, device=R.device)

    def _allocate_constrained(self, data: np.ndarray, per_build: int, R: Tensor) -> Tensor:
        """The windows under ``self.constraints``: the builder's rows but the budget and ``w >= 0``."""
        who = type(self).__name__
        B, _, N = data.shape
        compiled = self.constraints.compile(N)
        out = np.empty((B, N))
        infeasible: list[int] = []
        for start in range(0, B, per_build):
            chunk = data[start : start + per_build]
            batch = self.build(chunk)
            keep = np.ones(batch.A.shape[0], dtype=bool)
            keep[-N:] = False  # every builder ends with the rows -w_i <= 0
            if not self.ratio:
                keep[0] = False  # the budget row (a ratio's row 0 is its normalization)
            batch = self.cones(constrain(batch, compiled, keep, self.ratio), chunk)
            per_solve = max(1, min(self.windows_per_solve, self.max_solve_nonzeros // batch.nnz))
            x, rows = solve_all(batch, who, start, self.tol, per_solve)
            infeasible += rows
            out[start : start + len(batch)] = constrained_weights(x, N, self.ratio)
        raise_infeasible(infeasible, who, self.constraints)
        return torch.as_tensor(out, dtype=R.dtype, device=R.device)


__all__ = ["ConicPortfolio"]
