"""Batched primal-dual interior-point method (Mehrotra predictor-corrector) with active-set polish.

Solves, for every batch element at once, ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h`` (data in a
:class:`~gradfolio.solvers.qp.standard_form.StandardForm`). Each Newton step eliminates the slacks
and inequality multipliers, which leaves ``H = Q + G' diag(z/s) G`` (one batched Cholesky) and a
``p x p`` Schur complement for the equalities (:class:`~gradfolio.solvers.qp.kkt.SaddlePoint`).
:func:`gradfolio.solvers.qp.solve_qp` uses it for the elements that the primal-dual active-set
method did not solve.

- **Polish.** Once an element's complementarity ``mu`` is small, its guess of the active set
  (``z > s``) is solved exactly (:func:`~gradfolio.solvers.qp.active_set.solve_on`) and accepted
  if the KKT conditions hold; a rejected guess is retried when it changes.
- **Compaction.** Finished elements leave the batch, so later iterations factor only the
  elements still running.

An element that neither converges nor polishes within ``max_iter`` iterations raises
:class:`~gradfolio.errors.SolverError` naming it (never NaN weights).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.errors import SolverError
from gradfolio.solvers.qp.active_set import active_rows, solve_on
from gradfolio.solvers.qp.kkt import SaddlePoint
from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.standard_form import Solution, StandardForm


def _max_step(v: Tensor, dv: Tensor) -> Tensor:
    """Largest ``a <= 1`` with ``v + a dv >= 0`` per element (``v > 0``), shape ``(B,)``."""
    return torch.where(dv < 0, -v / dv, torch.inf).amin(dim=-1).clamp(max=1.0)


def _initial_point(form: StandardForm, reg: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Minimize ``1/2 x'Qx + q'x + 1/2 |Gx - h|^2`` s.t. ``Ax = b``, then shift ``s, z > 0``."""
    B, _, m, p = form.shape
    kkt = SaddlePoint(form.gram(form.q.new_ones(B, m)), form.A, None, form.scale_q, reg)
    x, _ = kkt.solve(-form.q + form.Gtz(form.h), form.b)
    r = form.h - form.Gx(x)
    s = r + (1.0 - r.amin(dim=-1, keepdim=True)).clamp_min(0.0)
    z = -r + (1.0 + r.amax(dim=-1, keepdim=True)).clamp_min(0.0)
    return x, form.q.new_zeros(B, p), z, s


def _newton_step(
    form: StandardForm, x: Tensor, y: Tensor, z: Tensor, s: Tensor, res: tuple[Tensor, ...], reg: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One Mehrotra predictor-corrector step from the residuals ``(rd, rpe, rpi, mu)`` of
    :meth:`StandardForm.kkt`; elements whose Newton matrix fails keep their iterate."""
    rd, rpe, rpi, mu = res
    d = z / s
    kkt = SaddlePoint(form.gram(d), form.A, None, form.scale_q, reg)

    def direction(rc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        w = (z * rpi - rc) / s
        dx, dy = kkt.solve(-rd - form.Gtz(w), -rpe)
        Gdx = form.Gx(dx)
        return dx, dy, -rpi - Gdx, d * Gdx + w

    sz = s * z
    _, _, ds_a, dz_a = direction(sz)
    a_aff = torch.minimum(_max_step(s, ds_a), _max_step(z, dz_a))[:, None]
    mu_aff = ((s + a_aff * ds_a) * (z + a_aff * dz_a)).mean(dim=-1)
    sigma = (mu_aff / mu).clamp(0.0, 1.0) ** 3
    dx, dy, ds, dz = direction(sz + ds_a * dz_a - (sigma * mu)[:, None])
    step = 0.99 * torch.minimum(_max_step(s, ds), _max_step(z, dz))[:, None]
    ok = kkt.ok[:, None]
    # torch.where (not a zero step) so that NaN directions of failed elements do not leak.
    return tuple(torch.where(ok, v + step * dv, v) for v, dv in ((x, dx), (y, dy), (z, dz), (s, ds)))  # type: ignore[return-value]


def interior_point(form: StandardForm, settings: QPSettings, out: Solution, index: Tensor, batch: int) -> None:
    """Solve the batch ``form`` and write it to ``out`` at ``index`` (see the module docstring).

    Parameters
    ----------
    form
        The QPs to solve (``k`` elements).
    settings
        Tolerances, iteration cap and regularization.
    out
        Where the solutions go.
    index
        Positions ``(k,)`` of the elements in ``out`` (and in the caller's batch).
    batch
        Size of the caller's batch (for the error message).

    Raises
    ------
    SolverError
        Elements that did not finish in ``settings.max_iter`` iterations (named by position).
    """
    tol, gap_tol, polish_gap = settings.tolerances(form.q.dtype)
    live = index
    x, y, z, s = _initial_point(form, settings.reg)
    tried = torch.zeros_like(z, dtype=torch.bool)
    untried = torch.ones_like(live, dtype=torch.bool)
    for it in range(settings.max_iter + 1):
        *res, done = form.kkt(x, y, z, s, tol, gap_tol)
        if bool(done.any()):
            out.put(live[done], x[done], y[done], z[done], active_rows(form.take(done), s[done], z[done]))
        # Polish the elements whose complementarity is small, when their guess of the active set is new.
        idx = (res[3] <= polish_gap).nonzero().squeeze(-1)
        act = active_rows(form.take(idx), s[idx], z[idx])
        fresh = untried[idx] | (act != tried[idx]).any(dim=-1)
        idx, act = idx[fresh], act[fresh]
        if idx.numel():
            px, py, plam, _, ok, _ = solve_on(form.take(idx), act, settings.reg, tol)
            out.put(live[idx[ok]], px[ok], py[ok], plam[ok], act[ok])
            done[idx[ok]] = True
            tried[idx], untried[idx] = act, False
        if bool(done.all()) or it == settings.max_iter:
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(-1)
            form, live, tried, untried = form.take(keep), live[keep], tried[keep], untried[keep]
            x, y, z, s = x[keep], y[keep], z[keep], s[keep]
            res = [r[keep] for r in res]
        x, y, z, s = _newton_step(form, x, y, z, s, tuple(res), settings.reg)
    raise_unfinished(
        live[~done], batch, f"the interior-point method did not converge in {settings.max_iter} iterations "
        f"(tol={tol:g}, gap_tol={gap_tol:g}, {form.q.dtype})",
    )


def raise_unfinished(idx: Tensor, B: int, what: str) -> None:
    """Raise :class:`SolverError` naming the elements ``idx`` of a batch of ``B`` (nothing when empty).

    ``what`` says what failed (e.g. which method did not converge, with its tolerances).
    """
    if not idx.numel():
        return
    bad = idx.tolist()
    shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
    raise SolverError(
        f"solve_qp: {what} for batch element(s) {shown} of {B}; the problem may be "
        "infeasible, unbounded or badly scaled there. Check those elements' inputs (a "
        "positive semidefinite Q, feasible constraints), rescale, use float64, or raise max_iter."
    )


__all__ = ["interior_point", "raise_unfinished"]
