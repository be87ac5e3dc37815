"""The equality-constrained QP on an active set: the primal-dual active-set method, polish, backward.

Once it is known which inequality rows hold with equality at the solution (the *active set*),
the QP ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h`` reduces to a linear KKT system::

    [[Q, G_act', A'], [G_act, 0, 0], [A, 0, 0]] [x; lam_act; y] = [-q; h_act; b]

Active bound rows fix their variable, so the system is solved over the free variables only
(``Q`` restricted to them, a unit diagonal on the fixed ones); the general active rows and the
equalities enter through a Schur complement (:class:`~gradfolio.solvers.qp.kkt.SaddlePoint`), with
a unit diagonal on the inactive rows so that their multipliers are zero. Everything is batched:
each element has its own active set, the matrices keep their size.

- **Primal-dual active-set method** (Hintermueller, Ito & Kunisch 2002, a semismooth Newton
  method): solve on a guess of the active set (first the separable problem's,
  :mod:`gradfolio.solvers.qp.separable`), then keep the rows whose multiplier is positive and add
  the rows the solution violates, until the KKT conditions hold. It stops with the exact
  solution, typically after 3-5 solves for portfolio problems. It can cycle on general problems:
  an update that would fix every variable of the budget by bounds takes a guarded step
  (:func:`next_active_set`), an element that returns to a tried set goes to the interior point
  at once, and so do the elements left after ``active_set_iter`` solves. Float64 CPU batches
  with a shared ``G`` run the same method element by element in compiled kernels instead
  (:mod:`gradfolio.solvers.qp.compiled`; ``QPSettings(compiled=False)`` keeps this batched one):
  a batched solve costs ~230 tensor operations of dispatch whether it carries 32 elements or 3.
- **Polish**: the interior point's guess of the active set, solved the same way, is exact once
  the guess is right (the KKT conditions are checked before it is accepted).
- **Backward**: the matrix is symmetric, so the same system gives the adjoint of the implicit
  differentiation of the KKT conditions (OptNet, Amos & Kolter 2017) at the solution.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.solvers.qp import compiled
from gradfolio.solvers.qp.kkt import SaddlePoint
from gradfolio.solvers.qp.separable import separable_active_set
from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.standard_form import Solution, StandardForm, absmax, bmtv, bmv


def active_rows(form: StandardForm, s: Tensor, z: Tensor) -> Tensor:
    """The interior point's guess of the active rows, ``z > s`` ``(B, m)`` bool.

    Of two active bound rows on one variable (``lower == upper``) only the one with the larger
    multiplier is kept, so that every fixed variable has one active row.
    """
    act = z > s
    if form.cols.numel():
        B, n = form.q.shape
        zb = torch.where(act[:, form.mg:], z[:, form.mg:], -torch.inf)
        zmax = zb.new_full((B, n), -torch.inf).scatter_reduce(1, form.cols.expand(B, -1), zb, "amax")
        act[:, form.mg:] &= zb >= zmax[:, form.cols]
    return act


def bound_fixing(form: StandardForm, act: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For active rows ``act (B, m)``: how many active bound rows fix each variable and the value
    they fix it at (zero on free variables; the mean for a tie), both ``(B, n)``, and the bound
    rows' activity as ``0/1`` in ``q``'s dtype ``(B, m - mg)``."""
    B, n = form.q.shape
    act_b = act[:, form.mg:].to(form.q.dtype)
    count = form.q.new_zeros(B, n).index_add_(1, form.cols, act_b)
    fixed = form.q.new_zeros(B, n).index_add_(1, form.cols, act_b * form.bound_value)
    return count, fixed / count.clamp_min(1.0), act_b


def _gather_square(M: Tensor, idx: Tensor | None, B: int) -> Tensor:
    """``M[b][idx[b]][:, idx[b]]`` ``(B, k, k)`` for ``M (B, n, n)`` or shared ``(n, n)`` and ``idx (B, k)``
    (``idx=None``: all of ``M``)."""
    if idx is None:
        return M.expand(B, -1, -1)
    n, k = M.shape[-1], idx.shape[1]
    # Rows by one index_select (whole rows copied), then columns by gather: faster on CPU than
    # advanced indexing with three index tensors.
    flat = idx if M.ndim == 2 else idx + n * torch.arange(B, device=M.device)[:, None]
    rows = M.reshape(-1, n).index_select(0, flat.reshape(-1)).view(B, k, n)
    return rows.gather(2, idx[:, None, :].expand(-1, k, -1))


def _gather_columns(M: Tensor, idx: Tensor | None, B: int) -> Tensor:
    """``M[b][:, idx[b]]`` ``(B, r, k)`` for ``M (B, r, n)`` or shared ``(r, n)`` (``idx=None``: all of ``M``)."""
    M = M.expand(B, -1, -1)
    return M if idx is None else M.gather(2, idx[:, None, :].expand(-1, M.shape[1], -1))


class ActiveSet:
    """Factorized KKT system of the QP restricted to an active set (see the module docstring).

    The free variables of each element are gathered first (``idx``), so the system has the size
    ``k`` of the largest free set in the batch (smaller elements are padded with unit rows): the
    solution of a long-only portfolio problem is sparse, and its active-set system small.

    Parameters
    ----------
    form
        The batch of QPs.
    act
        Active rows ``(B, m)`` bool (general rows first, then bound rows, as in ``form``).
    reg
        Relative regularization of the reduced ``Q`` (for a ``Q`` singular on the free variables).
    """

    def __init__(self, form: StandardForm, act: Tensor, reg: float) -> None:
        B, n, _, p = form.shape
        mg, dtype = form.mg, form.q.dtype
        self.form = form
        count, fixed, act_b = bound_fixing(form, act)
        #: Values of the fixed variables (zero on free ones) ``(B, n)``.
        self.x_fixed = fixed
        #: Each active bound row's share of its variable's multiplier (1, or 1/2 for a tie) ``(B, mb)``.
        self.share = act_b / count[:, form.cols].clamp_min(1.0)
        free = count == 0
        k = int(free.sum(dim=-1).amax()) if B else 0
        #: Free variables first ``(B, k)`` (``None`` when some element has all ``n`` free: no
        #: reordering then) and which of those slots are real (1) or padding (0) ``(B, k)``.
        self.idx = torch.argsort(count, dim=-1, stable=True)[:, :k] if k < n else None
        self.valid = (free if self.idx is None else free.gather(1, self.idx)).to(dtype)
        #: Which rows of ``form.R`` are imposed ``(B, p + mg)``: the equalities and the active
        #: general rows (``None``: all, when there are no general rows).
        self.row_on = torch.cat([form.q.new_ones(B, p), act[:, :mg].to(dtype)], dim=-1) if mg else None
        #: The imposed rows on the free variables ``(B, p + mg, k)``.
        self.C = _gather_columns(form.R, self.idx, B) * self.valid[:, None, :]
        if self.row_on is not None:
            self.C = self.C * self.row_on[:, :, None]
        # Augmented Lagrangian: Q + rho C'C has the same KKT solution on {C x = rc} (the right-hand
        # side gets rho C' rc) and is positive definite whenever the KKT matrix is nonsingular,
        # also where Q is singular (the auxiliary variables of leverage and turnover have no cost).
        self.rho = form.rho.expand(B)
        mask = self.valid[:, :, None] * self.valid[:, None, :]
        # Padding slots keep their own diagonal of Q (plus the regularization): decoupled rows with a
        # zero right-hand side, so their solution is zero and the system stays nonsingular.
        mask.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        H = torch.baddbmm(_gather_square(form.Q, self.idx, B) * mask, self.C.mT * self.rho[:, None, None], self.C)
        self.kkt = SaddlePoint(H, self.C, None if self.row_on is None else 1.0 - self.row_on, form.scale_q, reg)

    @property
    def ok(self) -> Tensor:
        """Whether the system could be factored, per element ``(B,)``."""
        return self.kkt.ok

    def _solve(self, r: Tensor, rc: Tensor, base: Tensor) -> tuple[Tensor, Tensor]:
        """Solve for the free variables with right-hand sides ``r (B, n)`` (gathered) and ``rc``;
        return ``base`` plus the free part ``(B, n)`` and the row multipliers ``(B, p + mg)``."""
        r1 = (r if self.idx is None else r.gather(1, self.idx)) * self.valid + self.rho[:, None] * bmtv(self.C, rc)
        x_free, nu = self.kkt.solve(r1, rc)
        x_free = x_free * self.valid
        return (base + x_free if self.idx is None else base.scatter_add(1, self.idx, x_free)), nu

    def _multipliers(self, x: Tensor, nu: Tensor, lin: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``y (B, p)``, ``lam (B, m)``, the dual residual ``Qx + lin + G'lam + A'y (B, n)`` and ``Qx (B, n)``.

        An active bound row ``c x_j <= h`` gets ``lam = -r_j / c``, where ``r`` is the residual
        without the bound rows, which makes the residual zero on the fixed variables.
        """
        f, p = self.form, self.form.b.shape[-1]
        Qx = f.Qx(x)
        r = Qx + lin + bmtv(f.R, nu)
        lam_b = -r[:, f.cols] / f.coef * self.share
        rd = r.index_add(1, f.cols, f.coef * lam_b)
        return nu[:, :p], torch.cat([nu[:, p:], lam_b], dim=-1), rd, Qx

    def polish(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Solve the equality-constrained QP: ``x (B, n)``, ``y (B, p)``, ``lam (B, m)``, the dual residual
        and ``Qx`` ``(B, n)``."""
        f, x0 = self.form, self.x_fixed
        rc = f.r - bmv(f.R, x0)
        rc = rc if self.row_on is None else rc * self.row_on
        x, nu = self._solve(-(f.q + f.Qx(x0)), rc, x0)
        return x, *self._multipliers(x, nu, f.q)

    def adjoint(self, grad_x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Solve ``K [dx; dlam; dy] = [-grad_x; 0; 0]`` with the active-set KKT matrix ``K``.

        Returns ``(dx (B, n), dy (B, p), dlam (B, m))`` (``dlam`` zero on inactive rows).
        """
        dx, dnu = self._solve(-grad_x, grad_x.new_zeros(self.C.shape[:2]), torch.zeros_like(grad_x))
        dy, dlam, _, _ = self._multipliers(dx, dnu, grad_x)
        return dx, dy, dlam


def solve_on(form: StandardForm, act: Tensor, reg: float, tol: float) -> tuple[Tensor, ...]:
    """Solve on the active sets ``act`` and check the KKT conditions.

    Returns
    -------
    ``x (B, n)``, ``y (B, p)``, ``lam (B, m)``, the slacks ``s = h - Gx (B, m)``, ``ok (B,)``:
    whether ``x`` is the solution, i.e. the inactive rows are feasible, the active rows and the
    equalities hold, the active multipliers are nonnegative and the dual residual is zero, all to
    ``tol`` (scaled), and the factorized :class:`ActiveSet` (whose :meth:`ActiveSet.adjoint`
    gives the backward pass at an accepted solution).
    """
    system = ActiveSet(form, act, reg)
    x, y, lam, rd, Qx = system.polish()
    s = form.h - form.Gx(x)
    # Scaled KKT violations (NaN compares False, so a failed solve is never accepted).
    primal = torch.maximum(absmax(torch.where(act, s, s.clamp_max(0.0))), absmax(form.Ax(x) - form.b))
    dual = torch.maximum(absmax(lam.clamp_max(0.0)), absmax(rd))
    ok = system.ok & (primal <= tol * form.scale_p) & (dual <= tol * form.dual_scale(Qx))
    return x, y, lam, s, ok, system


def _starved(form: StandardForm, count: Tensor) -> Tensor:
    """Whether every variable of the (single) equality row is fixed by a bound row ``(B,)``, from
    the counts ``(B, n)`` of :func:`bound_fixing`."""
    return ~((count == 0) & (form.A[..., 0, :] != 0)).any(dim=-1)


def _guarded_update(form: StandardForm, act: Tensor, lam: Tensor, s: Tensor) -> Tensor:
    """A smaller step than the primal-dual update, for an element whose full update would fix
    every variable of its equality (the budget) by bounds: the equality would then be decided by
    the bounds alone, and unless they happen to satisfy it the next KKT system is inconsistent
    and its multipliers meaningless (the method then cycles).

    Keeps the removals (active rows with a nonpositive multiplier) and adds only the most violated
    inactive row. If every variable is still fixed, it also releases, of the rows that stay
    active, the one with the smallest multiplier among those whose variable would move ``a'x``
    toward ``b`` (a lower bound lets its variable rise, an upper bound fall): a swap, as in a
    pivot of the simplex method.
    """
    mg = form.mg
    new = act & (lam > 0)
    viol = torch.where(act, torch.inf, s)
    worst = viol.argmin(dim=-1, keepdim=True)
    new.scatter_(1, worst, viol.gather(1, worst) < 0)
    count, x_fixed, _ = bound_fixing(form, new)
    a = form.A[..., 0, :].expand_as(x_fixed)
    gap = form.b[:, 0] - (a * x_fixed).sum(dim=-1)
    toward = gap[:, None] * a[:, form.cols] * -form.coef > 0
    movable = new[:, mg:] & act[:, mg:] & toward & _starved(form, count)[:, None]
    score = torch.where(movable, lam[:, mg:], torch.inf)
    j = score.argmin(dim=-1, keepdim=True)
    bound = new[:, mg:]
    bound.scatter_(1, j, bound.gather(1, j) & torch.isinf(score.gather(1, j)))
    return new


def starvable(form: StandardForm) -> Tensor | None:
    """:func:`~gradfolio.solvers.qp.standard_form.starvable_support` of the batch: the number of
    variables of the (single) equality ``(B,)`` or ``(1,)`` where an update can fix all of them,
    else ``None``."""
    return form.support


def next_active_set(
    form: StandardForm, act: Tensor, lam: Tensor, s: Tensor, ok: Tensor, support: Tensor | None,
    restricted: bool = False,
) -> Tensor:
    """The primal-dual update ``(B, m)`` bool: keep the active rows with a positive multiplier, add
    the violated inactive ones; finished elements (``ok``) keep theirs. Given ``support``
    (:func:`starvable`), an element whose update would fix every variable of the equality takes
    :func:`_guarded_update` instead. ``restricted``: :func:`restricted_update` (adds only the
    worst violations) instead of the full update.
    """
    if restricted:
        return restricted_update(form, act, lam, s, ok)
    new = torch.where(act, lam > 0, s < 0)
    # Fixing every variable of the equality takes at least as many active bound rows: a cheap screen.
    if support is not None and bool(((new[:, form.mg:].count_nonzero(dim=-1) >= support) & ~ok).any()):
        starved = _starved(form, bound_fixing(form, new)[0]) & ~ok
        if bool(starved.any()):
            new = torch.where(starved[:, None], _guarded_update(form, act, lam, s), new)
    return torch.where(ok[:, None], act, new)


def restricted_update(form: StandardForm, act: Tensor, lam: Tensor, s: Tensor, ok: Tensor) -> Tensor:
    """The update ``(B, m)`` bool of the active-set method from :data:`RESTRICT_FROM` solves on:
    like :func:`next_active_set` it drops every active row with a nonpositive multiplier, but it
    adds only the inactive rows violated by at least :data:`ADD_FRACTION` of the element's worst
    (scaled) violation; finished elements (``ok``) keep their set.

    On problems whose ``Q`` is far from diagonal (a dense covariance with group rows) the full
    update overshoots: it adds every violated row, whose multipliers then come out negative, and
    the element wanders between sets (tens of row changes per solve) until the cap. Adding the
    worst violations only, as a primal active-set method adds one, lets such elements settle
    (at n = 50 with max weight and two groups: every element of a batch of 32 within 12 solves,
    where the full update left some after 15; docs/solvers.md).
    """
    if not act.shape[-1]:
        return act
    viol = torch.where(act, 0.0, (-s).clamp_min(0.0) / form.scale_p[:, None])
    add = (viol >= ADD_FRACTION * viol.amax(dim=-1, keepdim=True)) & (viol > 0)
    return torch.where(ok[:, None], act, torch.where(act, lam > 0, add))


#: The active-set method looks for cycles from this solve on (index from 0); earlier, a set seen
#: before is rare and the check would cost every problem its few tensor ops.
CYCLE_CHECK_FROM = 4

#: From this solve on (index from 0) the active-set method takes :func:`restricted_update` instead
#: of the full primal-dual update.
RESTRICT_FROM = 2

#: Share of an element's worst violation above which :func:`restricted_update` adds a violated row.
ADD_FRACTION = 0.5

#: Batches at least this large drop their finished elements after every active-set solve; smaller
#: ones re-solve them (unchanged: their active set is kept) until all are done, which costs less
#: than the indexing and lets the backward pass reuse the last factorization.
COMPACT_BATCH = 128

#: From this solve on (index from 0) batches of at least :data:`COMPACT_TAIL` elements drop their
#: finished elements too: with the restricted update a few elements of a batch may take 2-4 times
#: the median number of solves, and that tail then costs what a small batch costs (at n = 250,
#: batch 32: about half the forward time). Long-only batches finish before it (at most 4 solves)
#: and keep the reuse of the factorization (compacting them from the first solve cost 13-38% of
#: forward + backward at batch 32).
COMPACT_FROM = 4
COMPACT_TAIL = 8


def primal_dual_active_set(form: StandardForm, settings: QPSettings) -> tuple[Solution, Tensor, ActiveSet | None]:
    """Run the primal-dual active-set method from the separable problem's active set
    (:func:`~gradfolio.solvers.qp.separable.separable_active_set`; the empty set where it gives none).

    Where ``settings.compiled`` and :func:`~gradfolio.solvers.qp.compiled.applies`, the compiled
    kernels solve every element first (:func:`~gradfolio.solvers.qp.compiled.solve_elements`);
    the batched method below then takes only the elements outside them. Finished elements are
    written to the returned :class:`Solution`; in a batch of at least :data:`COMPACT_BATCH`
    (:data:`COMPACT_TAIL` from solve :data:`COMPACT_FROM` on) they leave it after each solve. An
    element whose update (:func:`next_active_set`) returns to
    an active set it has already tried is cycling: it stops (it is solved again, unchanged, while
    the others go on) and goes to the interior point.

    Returns
    -------
    The :class:`Solution` of the batch (the kernels' own arrays where they solved every element;
    the entries of the elements not solved are left for the interior point), the indices ``(k,)`` of the
    elements not solved (cycling, or not done in ``settings.active_set_iter`` solves), and the
    factorized system of the last solve when it solved the whole batch (in order) and every
    element is done (``None`` otherwise).
    """
    B, n, m, p = form.shape
    tol, _, _ = settings.tolerances(form.q.dtype)
    left: list[Tensor] = []  # cycling elements that left the batch
    whole = True  # the batch still holds every element, in order
    if settings.compiled and settings.active_set_iter and compiled.applies(form):
        # Element by element, compiled (qp/compiled.py); the batched method below only takes the
        # elements outside the kernels.
        x, y, lam, act, status, _ = compiled.solve_elements(
            form, tol, settings.reg, settings.active_set_iter, RESTRICT_FROM, CYCLE_CHECK_FROM, ADD_FRACTION)
        if not status.numpy().any():  # every element solved (status SOLVED is 0): the common case, no copies
            return Solution(x, y, lam, act), torch.zeros(0, dtype=torch.long, device=form.q.device), None
        out = Solution.empty(B, n, m, p, form.q)
        live = torch.arange(B, device=form.q.device)
        solved = status == compiled.SOLVED
        out.put(live[solved], x[solved], y[solved], lam[solved], act[solved])
        left.append(live[status == compiled.UNSOLVED])
        keep = (status == compiled.OUTSIDE).nonzero().squeeze(-1)
        if not keep.numel():
            return out, left[0], None
        form, live, B, whole = form.take(keep), live[keep], keep.numel(), False
    else:
        out = Solution.empty(B, n, m, p, form.q)
        live = torch.arange(B, device=form.q.device)
    support = starvable(form)
    act = separable_active_set(form)
    if act is None:
        act = torch.zeros(B, m, dtype=torch.bool, device=form.q.device)
    cycling = torch.zeros(live.numel(), dtype=torch.bool, device=form.q.device)
    tried: list[Tensor] = []  # the active sets solved so far, (live, m) each
    for i in range(settings.active_set_iter):
        x, y, lam, s, ok, system = solve_on(form, act, settings.reg, tol)
        tried.append(act)
        new = next_active_set(form, act, lam, s, ok, support, i >= RESTRICT_FROM)
        if i >= CYCLE_CHECK_FROM:
            cycling = cycling | (~ok & (torch.stack(tried) == new).all(dim=-1).any(dim=0))
            done, stopped = torch.stack([ok, cycling]).count_nonzero(dim=-1).tolist()
        else:
            done, stopped = int(ok.sum()), 0
        if done + stopped == live.numel():
            if done == live.numel():
                out.put(live, x, y, lam, act)
            else:
                out.put(live[ok], x[ok], y[ok], lam[ok], act[ok])
            unsolved = [*left, live[cycling]] if stopped else left
            return out, (torch.cat(unsolved) if unsolved else live[:0]), system if whole and not stopped else None
        compact = live.numel() >= (COMPACT_BATCH if i < COMPACT_FROM else COMPACT_TAIL)
        if (done or stopped) and (compact or i == settings.active_set_iter - 1):
            out.put(live[ok], x[ok], y[ok], lam[ok], act[ok])
            left.append(live[cycling])
            keep = (~ok & ~cycling).nonzero().squeeze(-1)
            form, live, act, new, cycling = form.take(keep), live[keep], act[keep], new[keep], cycling[keep]
            tried = [t[keep] for t in tried]
            support = form.support  # one per element where A is batched
            whole = False
        # Cycling elements keep their set (solved again, unchanged, like the finished ones).
        act = torch.where(cycling[:, None], act, new) if stopped else new
    return out, torch.cat([*left, live]), None


__all__ = [
    "ActiveSet", "active_rows", "bound_fixing", "next_active_set", "primal_dual_active_set", "solve_on", "starvable",
]
