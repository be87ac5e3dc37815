"""A batch of QPs ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h`` in the form the solvers work on.

A shared ``G`` (2-D) has its *bound rows* (one nonzero, ``c x_j <= h``) moved last by
:func:`gradfolio.solvers.qp.solve_qp`; :class:`StandardForm` keeps them as a column index and a
coefficient, so their products with ``x`` and their part of ``G' diag(d) G`` cost ``O(m)``
instead of ``O(m n)``, and the active-set system can fix the variables they bind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch
from torch import Tensor


def bmv(M: Tensor, v: Tensor) -> Tensor:
    """``M @ v`` for ``M (B, r, c)`` or shared ``(r, c)`` and ``v (B, c)`` -> ``(B, r)``.

    Computed as ``v' M'`` (row vectors): on CPU this batched product is several times faster than
    ``M v`` (a batch of matrix-vector products) for square ``M``.
    """
    return v @ M.mT if M.ndim == 2 else (v.unsqueeze(-2) @ M.mT).squeeze(-2)


def bmtv(M: Tensor, v: Tensor) -> Tensor:
    """``M' @ v`` for ``M (B, r, c)`` or shared ``(r, c)`` and ``v (B, r)`` -> ``(B, c)``."""
    return v @ M if M.ndim == 2 else (v.unsqueeze(-2) @ M).squeeze(-2)


def absmax(t: Tensor) -> Tensor:
    """``max |t|`` over the last dimension, ``0`` where it is empty."""
    return t.abs().amax(dim=-1) if t.shape[-1] else t.new_zeros(t.shape[:-1])


def bound_rows(G: Tensor) -> Tensor:
    """Which rows of ``G (..., m, n)`` are bound rows (exactly one nonzero) ``(..., m)`` bool."""
    return (G != 0).sum(dim=-1) == 1


def bound_rows_last(G: Tensor) -> Tensor | None:
    """The stable permutation ``(m,)`` of a shared ``G (m, n)``'s rows that moves its bound rows
    last (:func:`gradfolio.solvers.qp.solve_qp` solves with them there), or ``None`` where they
    are last already (or ``G`` has no rows)."""
    if not G.shape[0]:
        return None
    perm = torch.argsort(bound_rows(G).int(), stable=True)
    return None if bool((perm == torch.arange(perm.numel(), device=perm.device)).all()) else perm


def trailing_bound_rows(G: Tensor) -> int:
    """Number of trailing rows of a shared ``G (m, n)`` with exactly one nonzero (0 for a batched ``G``)."""
    if G.ndim != 2 or not G.shape[0]:
        return 0
    return int(torch.flip(bound_rows(G), [0]).int().cumprod(0).sum())


@dataclass(frozen=True)
class Solution:
    """Primal-dual solution of a batch: ``x (B, n)``, ``y (B, p)``, ``lam (B, m)`` and the active rows ``act (B, m)``."""

    x: Tensor
    y: Tensor
    lam: Tensor
    act: Tensor

    @staticmethod
    def empty(B: int, n: int, m: int, p: int, like: Tensor) -> Solution:
        """Uninitialized storage for ``B`` elements."""
        return Solution(like.new_empty(B, n), like.new_empty(B, p), like.new_empty(B, m),
                        torch.zeros(B, m, dtype=torch.bool, device=like.device))

    def put(self, idx: Tensor | None, x: Tensor, y: Tensor, lam: Tensor, act: Tensor) -> None:
        """Write the results of the elements ``idx`` (``None``: of every element, in order)."""
        if idx is None:
            for mine, new in ((self.x, x), (self.y, y), (self.lam, lam), (self.act, act)):
                mine.copy_(new)
            return
        self.x[idx], self.y[idx], self.lam[idx], self.act[idx] = x, y, lam, act


@dataclass(frozen=True)
class PairRows:
    """The general rows of a shared ``G`` with at most two nonzeros (leverage's ``w_i - t_i <= 0``
    and ``-w_i - t_i <= 0``, turnover's rows alike), kept as column pairs, and the other rows dense.

    Their part of ``G' diag(d) G`` is four entries per row, added by one ``index_add_`` instead of
    a dense ``(n, mg) x (mg, n)`` product per element: with leverage and turnover at n = 50
    (150 variables, 205 general rows) that product was 60% of an interior-point iteration.

    Attributes
    ----------
    rows, dense
        Indices of the pair rows ``(R,)`` and of the other general rows ``(mg - R,)``.
    G_dense
        The other general rows ``(mg - R, n)``.
    flat, weight
        For each pair row with columns ``i, j`` and coefficients ``a, b``: the flat positions
        ``(i, i), (j, j), (i, j), (j, i)`` in an ``n x n`` matrix and ``a^2, b^2, ab, ab``, ``(4R,)``.
    """

    rows: Tensor
    dense: Tensor
    G_dense: Tensor
    flat: Tensor
    weight: Tensor

    #: A ``G`` needs at least this many pair rows per variable of ``x`` (a third of the variables
    #: with leverage or turnover: 2n rows for 3n variables) for the split; elsewhere (a few group
    #: rows that happen to have two members) the dense product stays, unchanged.
    MIN_SHARE = 0.5

    @staticmethod
    def split(Gg: Tensor) -> PairRows | None:
        """The split of the general rows ``Gg (mg, n)``, or ``None`` when they have fewer than
        ``MIN_SHARE * n`` pair rows."""
        n = Gg.shape[-1]
        pair = (Gg != 0).sum(dim=-1) <= 2
        if not Gg.shape[0] or int(pair.sum()) < PairRows.MIN_SHARE * n:
            return None
        rows, dense = pair.nonzero().squeeze(-1), (~pair).nonzero().squeeze(-1)
        cols = Gg[rows].abs().topk(2, dim=-1).indices  # a row with one nonzero gets a zero coefficient
        a, b = Gg[rows].gather(1, cols).unbind(-1)
        i, j = cols.unbind(-1)
        flat = torch.stack([i * n + i, j * n + j, i * n + j, j * n + i], dim=-1).reshape(-1)
        weight = torch.stack([a * a, b * b, a * b, a * b], dim=-1).reshape(-1)
        return PairRows(rows, dense, Gg[dense], flat, weight)

    def gram(self, Q: Tensor, d: Tensor, B: int) -> Tensor:
        """``Q + Gg' diag(d) Gg`` ``(B, n, n)`` for the general rows' ``d (B, mg)``."""
        n = Q.shape[-1]
        if self.dense.numel():
            H = Q + (self.G_dense.mT * d[:, None, self.dense]) @ self.G_dense
        else:
            H = Q.expand(B, n, n).clone()
        H.view(B, n * n).index_add_(1, self.flat, d[:, self.rows].repeat_interleave(4, dim=-1) * self.weight)
        return H


def starvable_support(A: Tensor, cols: Tensor, coef: Tensor) -> Tensor | None:
    """The number of variables of the (single) equality ``a'x = b`` ``(B,)`` or ``(1,)`` when an
    active-set update can fix all of them by bound rows (columns ``cols``, coefficients ``coef``),
    else ``None``.

    It can only if the bound rows block ``a'x`` in both directions: when every bound row keeps
    ``a'x`` from falling (say; a lower bound on a variable with ``a_j > 0``), a solve that meets
    the equality leaves a free variable on the feasible side of its bound whenever ``b`` is
    feasible (long-only with a budget: the free weights sum to 1, so one is positive).
    """
    if A.shape[-2] != 1 or not cols.numel():
        return None
    a = A[..., 0, :].reshape(-1, A.shape[-1])
    side = a[:, cols] * coef
    if not bool(((side > 0).any(dim=-1) & (side < 0).any(dim=-1)).any()):
        return None
    return (a != 0).sum(dim=-1)


@dataclass(frozen=True)
class Rows:
    """What the constraint matrices alone decide, for a ``G`` whose bound rows come last
    (:func:`gradfolio.solvers.qp.solve_qp` sorts them there): computed once per shared ``G`` and
    ``A`` and reused by every call with the same tensors (:meth:`StandardForm.build`).

    Attributes
    ----------
    mg, cols, coef, pairs
        As in :class:`StandardForm`.
    R
        ``[A; G_general]`` when ``A`` and ``G`` are shared (``None``: formed per call).
    colsq
        ``max_j |R_j|^2`` ``(1,)`` of that ``R`` (``None`` with it): the denominator of ``rho``.
    support
        :func:`starvable_support`.
    """

    mg: int
    cols: Tensor
    coef: Tensor
    pairs: PairRows | None
    R: Tensor | None
    colsq: Tensor | None
    support: Tensor | None

    @staticmethod
    def of(G: Tensor, A: Tensor) -> Rows:
        """The rows of ``G (m, n)`` or ``(B, m, n)`` (bound rows last) and ``A (p, n)`` or ``(B, p, n)``."""
        mg = G.shape[-2] - trailing_bound_rows(G)
        if G.ndim == 2:
            cols = G[mg:].abs().argmax(dim=-1)
            coef = G[mg:].gather(-1, cols[:, None]).squeeze(-1)
        else:
            cols, coef = torch.zeros(0, dtype=torch.long, device=G.device), G.new_zeros(0)
        R = torch.cat([A, G[:mg]]) if A.ndim == G.ndim == 2 else None
        colsq = None if R is None else absmax(R.square().sum(dim=-2)).clamp_min(1.0).reshape(-1)
        return Rows(mg, cols, coef, PairRows.split(G[:mg]) if G.ndim == 2 else None, R, colsq,
                    starvable_support(A, cols, coef))

    @cached_property
    def arrays(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """``R (1, p + mg, n)``, ``cols (m - mg,)``, ``coef (m - mg,)``, ``colsq (1,)`` and ``support``
        (``(B,)`` or ``(1,)``; ``[0]`` for none, int64) as contiguous NumPy arrays for the compiled
        kernels (:mod:`gradfolio.solvers.qp.compiled`; CPU tensors only), converted once per
        :class:`Rows`: for a shared ``G`` and ``A``, once per pair of tensors instead of on every
        solve. ``R`` and ``colsq`` are ``None`` where they are formed per call (a batched ``G`` or ``A``)."""
        def arr(t: Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().numpy())

        R = None
        if self.R is not None:
            R = arr(self.R).reshape(1, *self.R.shape) if self.R.numel() else np.zeros((1, *self.R.shape))
        sup = np.zeros(1, np.int64) if self.support is None else arr(self.support).astype(np.int64).reshape(-1)
        return R, arr(self.cols), arr(self.coef), None if self.colsq is None else arr(self.colsq).reshape(-1), sup


@dataclass(frozen=True)
class StandardForm:
    """QP data of a batch; shared matrices stay 2-D.

    Attributes
    ----------
    Q
        ``(B, n, n)`` or shared ``(n, n)``.
    q
        ``(B, n)``.
    G, h
        ``G (m, n)`` or ``(B, m, n)``, ``h (B, m)``; for a shared ``G`` the last ``m - mg`` rows
        are bound rows.
    A, b
        ``A (p, n)`` or ``(B, p, n)``, ``b (B, p)``.
    mg
        Number of general (leading) rows of ``G``; the bound rows are ``mg:``.
    cols, coef
        Column ``(m - mg,)`` and nonzero coefficient ``(m - mg,)`` of each bound row.
    scale_p, scale_d
        Residual scales ``1 + max|h, b|`` and ``1 + max|q|`` ``(B,)`` (the dual one grows with
        ``|Qx|`` at a point: :meth:`dual_scale`).
    scale_q
        ``max(1, max_i |Q_ii|)`` ``(B,)`` (``(1,)`` for a shared ``Q``): the scale of regularizations.
    R, r
        The equality rows and the general inequality rows stacked, ``R = [A; G_general]``
        (``(p + mg, n)`` shared when both are, else ``(B, p + mg, n)``) and ``r = [b; h_general]`` ``(B, p + mg)``.
    bound_value
        The value ``h / coef`` at which each bound row binds its variable ``(B, m - mg)``.
    rho
        ``scale_q`` over the largest squared column norm of ``R`` ``(B,)`` or ``(1,)``: the weight
        of the augmented-Lagrangian term of the active-set systems.
    pairs
        The general rows with at most two nonzeros as column pairs (:class:`PairRows`; ``None``
        for a batched ``G`` or where there are few of them).
    support
        :func:`starvable_support` ``(B,)`` or ``(1,)``, or ``None``.
    rows
        The :class:`Rows` of ``G`` and ``A`` (``mg``, ``cols``, ``coef``, ``pairs`` and ``support``
        are its). The scales, ``R``, ``r``, ``bound_value`` and ``rho`` are computed when first asked
        for: the compiled kernels (:mod:`gradfolio.solvers.qp.compiled`) compute their own, and a
        batch they solve never pays for them.
    """

    Q: Tensor
    q: Tensor
    G: Tensor
    h: Tensor
    A: Tensor
    b: Tensor
    rows: Rows

    @staticmethod
    def build(Q: Tensor, q: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, rows: Rows | None = None) -> StandardForm:
        """The batch with the trailing bound rows of a shared ``G`` split off (``rows``:
        :meth:`Rows.of` of ``G`` and ``A``, when the caller has it already). The scales and
        stacked rows are computed when first asked for (the compiled kernels compute their own)."""
        return StandardForm(Q, q, G, h, A, b, rows or Rows.of(G, A))

    @property
    def mg(self) -> int:
        return self.rows.mg

    @property
    def cols(self) -> Tensor:
        return self.rows.cols

    @property
    def coef(self) -> Tensor:
        return self.rows.coef

    @property
    def pairs(self) -> PairRows | None:
        return self.rows.pairs

    @property
    def support(self) -> Tensor | None:
        return self.rows.support

    @cached_property
    def R(self) -> Tensor:
        if self.rows.R is not None:
            return self.rows.R
        B, mg = self.q.shape[0], self.mg
        return torch.cat([self.A.expand(B, -1, -1), self.G[..., :mg, :].expand(B, -1, -1)], dim=-2)

    @cached_property
    def colsq(self) -> Tensor:
        """``max_j |R_j|^2`` (at least 1) ``(B,)`` or ``(1,)``: the denominator of :attr:`rho`."""
        return self.rows.colsq if self.rows.colsq is not None else absmax(self.R.square().sum(dim=-2)).clamp_min(1.0).reshape(-1)

    @cached_property
    def scale_q(self) -> Tensor:
        return self.Q.diagonal(dim1=-2, dim2=-1).abs().amax(dim=-1).clamp_min(1.0).reshape(-1)

    @cached_property
    def scale_p(self) -> Tensor:
        return 1.0 + absmax(torch.cat([self.h, self.b], dim=-1))

    @cached_property
    def scale_d(self) -> Tensor:
        return 1.0 + absmax(self.q)

    @cached_property
    def r(self) -> Tensor:
        return torch.cat([self.b, self.h[:, : self.mg]], dim=-1)

    @cached_property
    def bound_value(self) -> Tensor:
        return self.h[:, self.mg:] / self.coef

    @cached_property
    def rho(self) -> Tensor:
        return self.scale_q / self.colsq

    @cached_property
    def shape(self) -> tuple[int, int, int, int]:
        """``(B, n, m, p)``."""
        return self.q.shape[0], self.q.shape[1], self.h.shape[-1], self.b.shape[-1]

    def take(self, idx: Tensor) -> StandardForm:
        """The batch elements ``idx`` (shared matrices are kept as they are)."""
        mat = lambda t: t if t.ndim == 2 else t[idx]  # noqa: E731
        rows = self.rows
        if rows.support is not None and rows.support.shape[0] > 1:  # one per element (a batched A)
            rows = replace(rows, support=rows.support[idx])
        return StandardForm(mat(self.Q), self.q[idx], mat(self.G), self.h[idx], mat(self.A), self.b[idx], rows)

    def Qx(self, x: Tensor) -> Tensor:
        """``Q x`` ``(B, n)``."""
        return bmv(self.Q, x)

    def dual_scale(self, Qx: Tensor) -> Tensor:
        """Scale of the dual residual at a point with ``Q x = Qx (B, n)``: ``1 + max(|q|, |Qx|)`` ``(B,)``.

        Relative to the largest term of the gradient, so that a large ``Q`` (a high risk aversion)
        is not held to more digits than its solve can give.
        """
        return torch.maximum(self.scale_d, 1.0 + absmax(Qx))

    def Gx(self, x: Tensor) -> Tensor:
        """``G x`` ``(B, m)``, the bound rows as ``coef * x[cols]``."""
        bound = self.coef * x[:, self.cols]
        if not self.mg:
            return bound
        return torch.cat([bmv(self.G[..., : self.mg, :], x), bound], dim=-1)

    def Gtz(self, z: Tensor) -> Tensor:
        """``G' z`` ``(B, n)`` for ``z (B, m)``."""
        out = bmtv(self.G[..., : self.mg, :], z[:, : self.mg]) if self.mg else z.new_zeros(z.shape[0], self.q.shape[1])
        return out.index_add(1, self.cols, self.coef * z[:, self.mg:]) if self.cols.numel() else out

    def Ax(self, x: Tensor) -> Tensor:
        """``A x`` ``(B, p)``."""
        return bmv(self.A, x)

    def Aty(self, y: Tensor) -> Tensor:
        """``A' y`` ``(B, n)``."""
        return bmtv(self.A, y)

    def gram(self, d: Tensor) -> Tensor:
        """``Q + G' diag(d) G`` ``(B, n, n)`` for ``d (B, m)`` (bound rows enter as a diagonal)."""
        B, n = self.q.shape
        if self.pairs is not None:
            H = self.pairs.gram(self.Q, d[:, : self.mg], B)
        elif self.mg:
            Gg = self.G[..., : self.mg, :]
            H = self.Q + (Gg.mT * d[:, None, : self.mg]) @ Gg
        else:
            H = self.Q.expand(B, n, n).clone()
        if self.cols.numel():
            H.diagonal(dim1=-2, dim2=-1).index_add_(1, self.cols, d[:, self.mg:] * self.coef.square())
        return H

    def kkt(self, x: Tensor, y: Tensor, z: Tensor, s: Tensor, tol: float, gap_tol: float) -> tuple[Tensor, ...]:
        """KKT residuals ``rd = Qx + q + G'z + A'y``, ``rpe = Ax - b``, ``rpi = Gx + s - h``, the mean
        complementarity ``mu = mean(s z)`` ``(B,)`` and whether each element meets the tolerances
        (scaled residuals ``<= tol``, ``mu <= gap_tol``)."""
        Qx = self.Qx(x)
        rd = Qx + self.q + self.Gtz(z) + self.Aty(y)
        rpe = self.Ax(x) - self.b
        rpi = self.Gx(x) + s - self.h
        gap = (s * z).mean(dim=-1) if s.shape[-1] else s.new_zeros(s.shape[0])
        ok = (absmax(torch.cat([rpi, rpe], dim=-1)) <= tol * self.scale_p) & (absmax(rd) <= tol * self.dual_scale(Qx))
        return rd, rpe, rpi, gap, ok & (gap <= gap_tol)


__all__ = ["PairRows", "Rows", "Solution", "StandardForm", "absmax", "bmtv", "bmv", "bound_rows", "bound_rows_last",
           "starvable_support",
           "trailing_bound_rows"]
