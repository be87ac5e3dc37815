"""Batched saddle-point systems ``[[H, C'], [C, -E]]`` by Cholesky and a Schur complement.

Both linear systems of the QP solver have this form: the interior point's Newton system
(``H = Q + G' diag(z/s) G``, ``C = A``, ``E = 0``) and the equality-constrained QP on an active
set (``H`` = ``Q`` on the free variables, ``C`` = the equality and active rows, ``E`` = 1 on
inactive rows so that their multipliers are zero). ``H`` is factored once; the first solve also
forms ``W = H^{-1} C'`` (in the same triangular solves as its right-hand side) and the small
Schur complement ``S = C W + E`` (factored too, unless it is ``1 x 1``: one row, a division).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.solvers.qp.standard_form import bmv


def cholesky(H: Tensor, scale: Tensor, reg: float) -> tuple[Tensor, Tensor]:
    """Cholesky factor of ``H + reg * scale * I`` (in place on ``H``) and a per-element success flag.

    Elements that are numerically singular get a second try with a ``1e-8 * scale`` shift.

    Parameters
    ----------
    H
        Symmetric matrices ``(B, k, k)`` (modified in place).
    scale
        ``(B,)`` or ``(1,)``: the scale of the diagonal shift.
    reg
        Relative shift (makes the systems well posed for singular ``Q``).

    Returns
    -------
    ``L (B, k, k)`` and ``ok (B,)``.
    """
    H.diagonal(dim1=-2, dim2=-1).add_((reg * scale).unsqueeze(-1))
    L, info = torch.linalg.cholesky_ex(H)
    if bool((info > 0).any()):
        bad = info > 0
        shift = (1e-8 * scale.expand(H.shape[0])[bad])[:, None]
        H[bad] = H[bad] + torch.diag_embed(shift.expand(-1, H.shape[-1]))
        L, info = torch.linalg.cholesky_ex(H)
    return L, info == 0


def cho_solve(L: Tensor, R: Tensor) -> Tensor:
    """``(L L')^{-1} R`` for ``L (B, k, k)`` lower triangular and ``R (B, k, r)``.

    Two batched triangular solves: on CPU (MKL) faster than ``torch.cholesky_solve``, which
    solves the batch one LAPACK call at a time.
    """
    return torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(L, R, upper=False), upper=True)


class SaddlePoint:
    """Solver of ``H dx + C' dy = r1``, ``C dx - diag(E) dy = r2`` for a batch.

    Parameters
    ----------
    H
        Symmetric positive definite ``(B, n, n)`` (consumed: the factorization works in place).
    C
        Rows ``(k, n)`` shared or ``(B, k, n)``; ``k = 0`` for none.
    E
        Diagonal ``(B, k)`` added to the Schur complement with a minus sign in the system, or
        ``None`` for zero.
    scale
        Scale of the regularization of ``H`` (see :func:`cholesky`).
    reg
        Relative regularization of ``H``; the Schur complement gets ``reg`` relative to its own
        diagonal (keeps it factorizable when rows are dependent, e.g. a degenerate active set).
    """

    def __init__(self, H: Tensor, C: Tensor, E: Tensor | None, scale: Tensor, reg: float) -> None:
        self.L, self.ok = cholesky(H, scale, reg)
        self.C, self.E, self.reg = C, E, reg
        self.k = C.shape[-2]
        self.W: Tensor | None = None
        #: Cholesky factor of the Schur complement ``(B, k, k)``; for ``k == 1`` the complement itself ``(B, 1)``.
        self.Ls: Tensor | None = None

    def _schur(self, r1: Tensor) -> Tensor:
        """Form ``W``, factor ``S``; return ``H^{-1} r1`` from the same solve."""
        B = self.L.shape[0]
        rhs = torch.cat([self.C.mT.expand(B, -1, -1), r1.unsqueeze(-1)], dim=-1)
        sol = cho_solve(self.L, rhs)
        self.W = sol[..., : self.k]
        S = self.C @ self.W
        if self.E is not None:
            S.diagonal(dim1=-2, dim2=-1).add_(self.E)
        S.diagonal(dim1=-2, dim2=-1).add_(self.reg * (1.0 + S.detach().abs().amax(dim=(-2, -1), keepdim=True)[..., 0]))
        if self.k == 1:  # one row (e.g. the budget): a positive scalar, no factorization
            self.Ls = S[..., 0]
            self.ok = self.ok & (self.Ls[:, 0] > 0)
        else:
            self.Ls, info = torch.linalg.cholesky_ex(S)
            self.ok = self.ok & (info == 0)
        return sol[..., self.k]

    def solve(self, r1: Tensor, r2: Tensor) -> tuple[Tensor, Tensor]:
        """``(dx (B, n), dy (B, k))`` for ``r1 (B, n)``, ``r2 (B, k)``."""
        if self.W is None and self.k:
            v = self._schur(r1)
        else:
            v = cho_solve(self.L, r1.unsqueeze(-1)).squeeze(-1)
        if not self.k:
            return v, r2
        rhs = bmv(self.C, v) - r2
        dy = rhs / self.Ls if self.k == 1 else cho_solve(self.Ls, rhs.unsqueeze(-1)).squeeze(-1)
        return v - bmv(self.W, dy), dy


__all__ = ["SaddlePoint", "cho_solve", "cholesky"]
