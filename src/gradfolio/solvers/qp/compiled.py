"""The primal-dual active-set method element by element, compiled with Numba (float64, CPU).

The batched torch method (:func:`~gradfolio.solvers.qp.active_set.primal_dual_active_set`)
costs ~230 tensor operations per active-set solve, ~4 us each to dispatch, whatever the size of
the problem: at n = 10-100 its time is dispatch, not arithmetic, and a batch takes as many solves
as its slowest element. The kernels here (:mod:`gradfolio.solvers.qp._kernels`) run the same
method on one element at a time, compiled:

- the first guess of :func:`~gradfolio.solvers.qp.separable.separable_active_set` (the same
  water-filling);
- per iteration the batched method's system (:mod:`gradfolio.solvers.qp.kkt`) for that element:
  the Cholesky factor of ``Q_FF + rho C_F'C_F`` plus the relative shift (``F`` the free
  variables, ``C`` the equalities and the active general rows), then of the small Schur
  complement of ``C`` with its own shift;
- the same scaled KKT check as :func:`~gradfolio.solvers.qp.active_set.solve_on` before a
  solution is accepted (so it is exact to rounding);
- the same updates: the full primal-dual update with the guarded step of
  :func:`~gradfolio.solvers.qp.active_set.next_active_set` for the first
  :data:`~gradfolio.solvers.qp.active_set.RESTRICT_FROM` solves, then
  :func:`~gradfolio.solvers.qp.active_set.restricted_update`, and the same cycle test from
  :data:`~gradfolio.solvers.qp.active_set.CYCLE_CHECK_FROM` solves on;
- where the batched method would give up (a cycle, or ``active_set_iter`` solves), one row at a
  time for up to ``active_set_iter`` more solves: drop the active row with the most negative
  multiplier, else add the most violated row (a primal active-set step, which leaves the cycles
  of the primal-dual update; a solve costs microseconds here, an interior-point iteration of the
  batched code ~1 ms). Only what is still unsolved then goes to the interior point;
- the backward pass's adjoint system on the final active set (:func:`adjoint`).

Each element is solved alone, so its bits do not depend on the batch it is in: a strategy's
weights at one date (``predict``, batch 1) are those of the backtest (all dates at once). An
element comes back with a status: solved; unsolved (the interior point takes it); or outside the
kernel (a variable fixed by two bound rows, a system that stays singular after the second shift:
the batched torch method takes it).

The Cholesky factorizations and triangular solves are written out (the systems are the
``k x k`` free block, a few to a few dozen rows): no LAPACK call, so no dependence on MKL's code
path either. Numba compiles the kernels on their first call and caches them on disk next to this
file (``cache=True``; where that folder is read-only, in Numba's user-wide cache folder): ~30 s
once per installation on a 2-core machine, then well under a second to load per process.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from gradfolio.solvers.qp.standard_form import StandardForm

#: Status of an element: solved.
SOLVED = 0
#: Status: cycling, or not done after ``2 * active_set_iter`` solves (the interior point takes it).
UNSOLVED = 1
#: Status: outside the kernel (the batched torch method takes it).
OUTSIDE = 2

#: Largest number of variables solved here (beyond it the per-element dense products ``Q x``
#: cost more than a batched solve shared by the elements; measured in docs/solvers.md).
COMPILED_N = 400


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (it is a dependency; where it is missing or broken, e.g. on a
    platform without its wheels, the batched torch method solves everything)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def applies(form: StandardForm) -> bool:
    """Whether the kernels take the batch: float64 on the CPU, a shared ``G`` with bound rows and
    at most :data:`COMPILED_N` variables (and Numba :func:`available`). Depends on the problem's
    size and type only, never on the batch size."""
    n = form.q.shape[1]
    return (available() and form.q.device.type == "cpu" and form.q.dtype == torch.float64 and 0 < n <= COMPILED_N
            and form.G.ndim == 2 and form.cols.numel() > 0)


def _arr(t: Tensor) -> np.ndarray:
    """A contiguous NumPy view (or copy) of a CPU tensor."""
    return np.ascontiguousarray((t.detach() if t.requires_grad else t).numpy())


def _stacked(t: Tensor, *shape: int) -> np.ndarray:
    """``t`` as a NumPy array with a leading batch dimension (1 for a shared ``t``)."""
    a = _arr(t)
    return a.reshape(-1, *shape) if a.size else np.zeros((1, *shape))


def _rows(form: StandardForm) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``R (1 or B, p + mg, n)``, ``cols``, ``coef``, ``colsq (1 or B,)`` and ``support`` of ``form`` as
    NumPy arrays: those of a shared ``G`` and ``A`` converted once (:attr:`Rows.arrays`)."""
    B, n, m, p = form.shape
    R, cols, coef, colsq, sup = form.rows.arrays
    if R is None:
        R = _stacked(form.R, p + form.mg, n)
    if colsq is None:
        colsq = _arr(form.colsq).reshape(-1)
    return R, cols, coef, colsq, sup


def solve_elements(form: StandardForm, tol: float, reg: float, iters: int, restrict_from: int,
                   cycle_from: int, add_fraction: float) -> tuple[Tensor, ...]:
    """Run the forward kernel on every element of ``form`` from the separable first guess (the
    guarded step where ``form.support`` says the equality can be starved).

    Returns ``x (B, n)``, ``y (B, p)``, ``lam (B, m)``, the final active rows ``act (B, m)`` (valid
    where solved), the status ``(B,)`` (:data:`SOLVED`, :data:`UNSOLVED`, :data:`OUTSIDE`) and the
    number of active-set solves of each element ``(B,)``.
    """
    from gradfolio.solvers.qp import _kernels

    B, n, m, p = form.shape
    act = np.zeros((B, m), np.bool_)
    x, y, lam = np.zeros((B, n)), np.zeros((B, p)), np.zeros((B, m))
    status, solves = np.empty(B, np.int64), np.zeros(B, np.int64)
    R, cols, coef, colsq, sup = _rows(form)
    _kernels.forward_batch(
        _stacked(form.Q, n, n), _arr(form.q), R, _arr(form.b), _arr(form.h), form.mg, cols, coef, colsq, act, True,
        tol, reg, iters, restrict_from, cycle_from, add_fraction, sup, x, y, lam, status, solves)
    t = torch.from_numpy
    return t(x), t(y), t(lam), t(act), t(status), t(solves)


def adjoint(form: StandardForm, act: Tensor, reg: float, grad_x: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """The backward pass's adjoint on the final active rows ``act (B, m)``: ``(dx (B, n), dy (B, p),
    dlam (B, m))`` as :meth:`~gradfolio.solvers.qp.active_set.ActiveSet.adjoint` gives them, or
    ``None`` where a factorization fails for some element (the torch system then takes the batch)."""
    from gradfolio.solvers.qp import _kernels

    B, n, m, p = form.shape
    dx, dy, dlam = np.zeros((B, n)), np.zeros((B, p)), np.zeros((B, m))
    ok = np.zeros(B, np.bool_)
    R, cols, coef, colsq, _ = _rows(form)
    _kernels.adjoint_batch(
        _stacked(form.Q, n, n), R, form.mg, cols, coef, colsq, _arr(act), reg, _arr(grad_x), dx, dy, dlam, ok)
    if not ok.all():
        return None
    t = torch.from_numpy
    return t(dx), t(dy), t(dlam)


def warm() -> None:
    """Compile (or load) the kernels now, on a tiny problem: ``make setup`` runs this once after
    installing, so that the first solve of a session does not pay the compilation (~30 s once per
    installation on a 2-core machine; loading the cached kernels then takes well under a second)."""
    n, f64 = 3, torch.float64
    eye = torch.eye(n, dtype=f64)
    form = StandardForm.build(eye * torch.tensor([1.0, 2.0, 3.0], dtype=f64), torch.tensor([[-1.0, 0.5, 0.2]], dtype=f64),
                              torch.cat([-eye, eye]), torch.tensor([[0.0] * n + [0.6] * n], dtype=f64),
                              torch.ones(1, n, dtype=f64), torch.ones(1, 1, dtype=f64))
    act = solve_elements(form, 1e-9, 1e-11, 25, 2, 4, 0.5)[3]
    adjoint(form, act, 1e-11, torch.ones(1, n, dtype=f64))


__all__ = ["COMPILED_N", "OUTSIDE", "SOLVED", "UNSOLVED", "adjoint", "applies", "available", "solve_elements", "warm"]
