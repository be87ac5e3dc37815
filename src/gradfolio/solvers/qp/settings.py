"""Settings of the batched QP solver (:func:`gradfolio.solvers.solve_qp`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradfolio.seeding import TorchDType


@dataclass(frozen=True)
class QPSettings:
    """Solver settings.

    Parameters
    ----------
    tol
        Tolerance on the scaled primal and dual KKT residuals, and the feasibility and sign
        tolerance of an active-set solution; ``None`` picks ``1e-9`` in float64 and ``1e-4`` in
        float32.
    gap_tol
        Tolerance on the mean complementarity ``s'z / m`` of the interior point (a weakly active
        bound is off by about its square root); ``None`` picks ``1e-12`` in float64 and ``1e-5``
        in float32.
    compute_dtype
        Precision of the solve and its backward pass. The default ``float64`` runs float32 inputs
        in float64 and casts the result back (the interior point's Newton systems become too
        ill-conditioned near the solution for float32 to reach 1e-6 weights); ``None`` computes in
        the input dtype (faster on GPUs; float32 stops at ~1e-4 residuals and may raise
        :class:`~gradfolio.errors.SolverError` on ill-conditioned problems). A config may give
        ``"float32"``, ``"float64"`` or ``null``.
    active_set_iter
        Iterations of the primal-dual active-set method tried first (0: interior point only); with
        max weight and group rows at n = 250 a few elements need 15-20.
    max_iter
        Interior-point iteration cap for the elements the active-set method leaves; elements not
        finished by then raise :class:`~gradfolio.errors.SolverError`.
    reg
        Relative diagonal regularization of the linear systems (only makes them well posed when
        ``Q`` is singular; the solution is not moved because the residuals are computed without it).
    polish_gap
        Complementarity below which the interior point tries its guess of the active set;
        ``None`` picks ``1e-6`` in float64 and ``1e-3`` in float32.
    threads
        Intra-op threads of a solve (forward and backward): ``"auto"`` runs small solves on one
        thread (:func:`gradfolio.solvers.qp.threads.auto_threads`), ``None`` keeps torch's setting,
        an integer fixes the count; the previous count is restored afterwards.
    compiled
        Solve float64 CPU batches element by element with the compiled kernels of
        :mod:`gradfolio.solvers.qp.compiled` (where they apply: a shared ``G`` with bound rows, at
        most :data:`~gradfolio.solvers.qp.compiled.COMPILED_N` variables), forward and backward;
        each element's bits are then the same in any batch. ``False`` keeps the batched torch
        method everywhere (as on CUDA, in float32 and with a batched ``G``).
    """

    tol: float | None = None
    gap_tol: float | None = None
    compute_dtype: TorchDType | None = torch.float64
    active_set_iter: int = 25
    max_iter: int = 50
    reg: float = 1e-11
    polish_gap: float | None = None
    threads: int | str | None = "auto"
    compiled: bool = True

    def tolerances(self, dtype: torch.dtype) -> tuple[float, float, float]:
        """``(tol, gap_tol, polish_gap)`` for ``dtype``."""
        f64 = dtype == torch.float64
        tol = self.tol if self.tol is not None else (1e-9 if f64 else 1e-4)
        gap = self.gap_tol if self.gap_tol is not None else (1e-12 if f64 else 1e-5)
        polish = self.polish_gap if self.polish_gap is not None else (1e-6 if f64 else 1e-3)
        return float(tol), float(gap), float(polish)


__all__ = ["QPSettings"]
