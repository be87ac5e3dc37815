"""The mean-variance allocation problem behind one interface, with two back ends.

For every batch element::

    w* = argmin_w  1/2 gamma w'S w - mu'w + 1/2 alpha |w|^2   s.t.  PortfolioConstraints

with ``S`` given as a covariance ``(B, N, N)`` or a factor ``F (B, K, N)`` (``S = F'F``).
Back ends: ``"qp"`` (default) compiles the constraints once and calls the batched torch QP
solver :func:`~gradfolio.solvers.qp.solve_qp` (specs with leverage or turnover: the ``N``-variable
kernels of :mod:`~gradfolio.solvers.qp.l1_active_set` on the CPU, the standard form as their
fallback and on CUDA); ``"cvxpylayers"`` builds the same problem in cvxpy (plus any user cvxpy
constraints) and differentiates it with cvxpylayers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Literal

import torch
import torch.nn.functional as nnf
from torch import Tensor

from gradfolio.errors import ConfigError
from gradfolio.solvers.constraints import CompiledConstraints, PortfolioConstraints
from gradfolio.solvers.qp import l1_active_set
from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.solve import solve_qp
from gradfolio.solvers.qp.standard_form import bound_rows, bound_rows_last
from gradfolio.solvers.qp.threads import auto_threads, intra_op_threads

if TYPE_CHECKING:
    from gradfolio.solvers.cvxpy_backend import CvxpyBackend

Backend = Literal["qp", "cvxpylayers"]


def per_batch(value: float | Tensor, B: int, name: str, like: Tensor) -> Tensor:
    """A scalar, ``(B,)`` or ``(B, 1)`` value as a ``(B,)`` tensor (``>= 0`` is checked)."""
    if isinstance(value, (int, float)):  # checked in Python: no tensor ops for the check (batch-1 latency)
        if not value >= 0:
            raise ConfigError(f"ConvexProblem: {name} must be >= 0 (the objective must stay convex); got {value:g}.")
        return like.new_full((B,), float(value))
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    if v.numel() not in (1, B):
        raise ConfigError(f"ConvexProblem: {name} has {v.numel()} values for a batch of {B}; give a scalar or one per element.")
    if bool((v < 0).any()):
        raise ConfigError(f"ConvexProblem: {name} must be >= 0 (the objective must stay convex); got min {float(v.min()):g}.")
    return v.expand(B)


def risk_matrix(cov: Tensor | None, factor: Tensor | None, N: int) -> Tensor:
    """``S (B, N, N)`` from a covariance or a factor ``F (B, K, N)`` (``S = F'F``); exactly one is given."""
    if (cov is None) == (factor is None):
        raise ConfigError("ConvexProblem: give exactly one of cov (B, N, N) or factor (B, K, N).")
    if cov is not None:
        if cov.ndim != 3 or cov.shape[-2:] != (N, N):
            raise ConfigError(f"ConvexProblem: cov has shape {tuple(cov.shape)}; expected (B, {N}, {N}).")
        return cov
    if factor.ndim != 3 or factor.shape[-1] != N:
        raise ConfigError(f"ConvexProblem: factor has shape {tuple(factor.shape)}; expected (B, K, {N}).")
    return factor.transpose(-1, -2) @ factor


#: In the standard form (the fallback of :mod:`~gradfolio.solvers.qp.l1_active_set`), leverage or
#: turnover specs with at most this many variables (``x = [w, t, u]``) start in the compiled
#: active-set method on the CPU (:func:`default_settings`): measured faster there than
#: the interior point up to 45 variables at batch 32 (1.2-30x) and at batch 1 (7-50x); at 50-60
#: variables batch 32 ran at 0.7-0.8x with turnover (docs/solvers.md).
AUX_ACTIVE_SET_VARS = 48


def default_settings(constraints: PortfolioConstraints, compiled: CompiledConstraints | None = None) -> QPSettings:
    """The ``"qp"`` back end's settings for ``constraints`` when none are given.

    With leverage or turnover the interior point goes first (``active_set_iter=0``): their
    auxiliary variables (``t >= |w|``, two rows per asset) leave the batched active-set method
    mostly inconsistent systems, so it spends its solves and hands the elements over anyway
    (2-2.3x faster on random specs; docs/solvers.md), with ``gap_tol=1e-14``: its polish is often
    refused on these degenerate specs (an asset at zero binds both ``w <= t`` and ``-w <= t``), and
    at the default 1e-12 an element finished by the tolerances alone was up to ~3e-6 off in its
    weights (1e-8 with 1e-14, at no measurable cost). Given the ``compiled`` constraints of a
    small spec (at most :data:`AUX_ACTIVE_SET_VARS` variables, with bound rows), the settings for
    a solve that the compiled kernels take (float64 on the CPU) start in the active-set method
    instead: there each solve costs microseconds. Otherwise the defaults.
    """
    if constraints.leverage is not None or constraints.turnover is not None:
        small = compiled is not None and compiled.n_vars <= AUX_ACTIVE_SET_VARS and bool(
            bound_rows(torch.as_tensor(compiled.G)).any())  # bound rows: the kernels take it
        return QPSettings(gap_tol=1e-14) if small else QPSettings(active_set_iter=0, gap_tol=1e-14)
    return QPSettings()


def quadratic(S: Tensor, g: Tensor, a: Tensor, n_vars: int) -> Tensor:
    """``Q = g S + a I`` ``(B, n_vars, n_vars)`` for ``S (B, N, N)`` and ``g, a (B,)``, zero-padded
    to ``n_vars`` (the auxiliary variables)."""
    B, N, _ = S.shape
    gS = g[:, None, None] * S
    if n_vars == N:
        Q, diag = gS, gS.diagonal(dim1=-2, dim2=-1)
    else:
        Q = S.new_zeros(B, n_vars, n_vars)
        Q[:, :N, :N] = gS
        diag = Q.diagonal(dim1=-2, dim2=-1)[:, :N]
    diag.add_(a[:, None])
    return Q


class _Quadratic(torch.autograd.Function):
    """:func:`quadratic`, with its backward under the same intra-op thread count as the forward:
    autograd would run the backward of these ``(B, n, n)`` elementwise ops at torch's
    process-wide count, which on a busy machine waits for a descheduled thread (the solve's
    thread rule, qp/threads.py)."""

    @staticmethod
    def forward(ctx, S, g, a, n_vars, threads):  # type: ignore[override]
        with intra_op_threads(threads):
            Q = quadratic(S, g, a, n_vars)
        ctx.threads, ctx.N = threads, S.shape[1]
        ctx.save_for_backward(S, g)
        return Q

    @staticmethod
    def backward(ctx, gQ):  # type: ignore[override]
        S, g = ctx.saved_tensors
        N = ctx.N
        with intra_op_threads(ctx.threads):
            gQ = gQ[:, :N, :N]
            need = ctx.needs_input_grad
            gS = g[:, None, None] * gQ if need[0] else None
            gg = (gQ * S).sum(dim=(-2, -1)) if need[1] else None
            ga = gQ.diagonal(dim1=-2, dim2=-1).sum(dim=-1) if need[2] else None
        return gS, gg, ga, None, None


class ConvexProblem:
    """Batched, differentiable constrained mean-variance problem (see the module docstring).

    Parameters
    ----------
    n_assets
        ``N``.
    constraints
        :class:`PortfolioConstraints` (checked for feasibility here: :class:`InfeasibleError`).
    backend
        ``"qp"`` (batched torch active-set method with an interior-point fallback, default) or
        ``"cvxpylayers"``.
    cvxpy_constraints
        Only for ``backend="cvxpylayers"``: a function ``w (cp.Variable) -> list of constraints``
        added to the declarative ones.
    settings
        :class:`QPSettings` of the ``"qp"`` back end (default: :func:`default_settings`).
    """

    def __init__(
        self,
        n_assets: int,
        constraints: PortfolioConstraints | None = None,
        backend: Backend = "qp",
        cvxpy_constraints: Callable | None = None,
        settings: QPSettings | None = None,
    ) -> None:
        if backend not in ("qp", "cvxpylayers"):
            raise ConfigError(f"ConvexProblem: backend={backend!r}; use 'qp' or 'cvxpylayers'.")
        if cvxpy_constraints is not None and backend != "cvxpylayers":
            raise ConfigError("ConvexProblem: cvxpy_constraints need backend='cvxpylayers'.")
        self.n_assets = int(n_assets)
        self.constraints = constraints or PortfolioConstraints()
        self.compiled = self.constraints.compile(self.n_assets)
        self.backend = backend
        self.settings = settings or default_settings(self.constraints)
        #: The settings of a solve on the CPU, where the compiled kernels take float64 batches
        #: (:func:`default_settings` with the compiled constraints; the same as :attr:`settings`
        #: when those were given).
        self.cpu_settings = settings or default_settings(self.constraints, self.compiled)
        self._cvxpy: CvxpyBackend | None = None
        if backend == "cvxpylayers":  # cvxpy and cvxpylayers are imported only for this back end
            from gradfolio.solvers.cvxpy_backend import CvxpyBackend

            self._cvxpy = CvxpyBackend(self.compiled, cvxpy_constraints)
        self._cache: dict[tuple, dict[str, Tensor]] = {}
        #: Leverage/turnover specs of the ``"qp"`` back end: the same constraints for the kernels of
        #: :mod:`~gradfolio.solvers.qp.l1_active_set`, which solve them in ``N`` variables (CPU,
        #: float64 compute, ``settings.compiled``); ``None`` otherwise.
        self.l1_spec: l1_active_set.L1Spec | None = None
        c = self.constraints
        if backend == "qp" and (c.leverage is not None or c.turnover is not None):
            plain = replace(c, leverage=None, turnover=None)._compile_unchecked(self.n_assets)
            self.l1_spec = l1_active_set.L1Spec.build(plain.G, plain.h0, plain.A, plain.b, c.leverage, c.turnover)

    def _tensors(self, like: Tensor) -> dict[str, Tensor]:
        """``G, h0, H_prev, A, b`` of the compiled constraints in ``like``'s dtype and device, made
        once. Without turnover (a constant ``h``) the rows of ``G``, ``h0`` and ``H_prev`` are put in
        :func:`solve_qp`'s order here (bound rows last), so that it has no ``h`` to permute on
        every call. With turnover :func:`solve_qp` still permutes ``h = h0 + H_prev w_prev`` after
        it is formed (the product with the rows in another order might round differently)."""
        key = (like.dtype, like.device)
        if key not in self._cache:
            t = self.compiled.tensors(like.dtype, like.device)
            perm = None if self.compiled.uses_prev else bound_rows_last(t["G"])
            if perm is not None:
                t.update(G=t["G"][perm], h0=t["h0"][perm], H_prev=t["H_prev"][perm])
            self._cache[key] = t
        return self._cache[key]

    def solve(
        self,
        mu: Tensor,
        cov: Tensor | None = None,
        factor: Tensor | None = None,
        gamma: float | Tensor = 1.0,
        alpha: float | Tensor = 0.0,
        w_prev: Tensor | None = None,
    ) -> Tensor:
        """Optimal weights ``w (B, N)``, differentiable w.r.t. mu, cov/factor, gamma, alpha and w_prev.

        Parameters
        ----------
        mu
            Expected returns ``(B, N)``.
        cov, factor
            Covariance ``(B, N, N)`` or factor ``(B, K, N)`` with ``S = F'F`` (exactly one).
        gamma, alpha
            Risk aversion and L2 regularization: scalars or ``(B,)`` tensors, ``>= 0``.
        w_prev
            Previous weights ``(B, N)``; required when the constraints include turnover.

        Raises
        ------
        ConfigError
            Bad shapes or values.
        SolverError
            A batch element did not converge (named).
        """
        N = self.n_assets
        if mu.ndim != 2 or mu.shape[-1] != N:
            raise ConfigError(f"ConvexProblem: mu has shape {tuple(mu.shape)}; expected (B, {N}).")
        B = mu.shape[0]
        g, a = per_batch(gamma, B, "gamma", mu), per_batch(alpha, B, "alpha", mu)
        if self.compiled.uses_prev:
            if w_prev is None or tuple(w_prev.shape) != (B, N):
                raise ConfigError(f"ConvexProblem: the turnover constraint needs w_prev of shape ({B}, {N}).")
        if self._cvxpy is not None:
            return self._cvxpy.solve(mu, cov, factor, g, a, w_prev)
        # The thread rule of the solve (qp/threads.py) also covers building its inputs: above
        # ~32k elements torch splits an elementwise op across threads, and on a busy machine each
        # such op waits for its descheduled thread.
        settings = self.cpu_settings if mu.device.type == "cpu" else self.settings
        dtype = settings.compute_dtype or mu.dtype
        l1 = self.l1_spec is not None and settings.compiled and l1_active_set.applies(dtype, mu.device, N)
        threads = auto_threads(B, N if l1 else self.compiled.n_vars, settings.threads)
        with intra_op_threads(threads):
            S = risk_matrix(cov, factor, N)
            if l1:
                return self._solve_l1(mu, S, g, a, w_prev, settings, dtype, threads)
            return self._solve_standard(mu, S, g, a, w_prev, settings, threads)

    @staticmethod
    def _quadratic(S: Tensor, g: Tensor, a: Tensor, n_vars: int, threads: int | None) -> Tensor:
        """``Q (B, n_vars, n_vars)``: through :class:`_Quadratic` where a gradient is needed, else
        :func:`quadratic` (the same ``Q`` without the autograd Function, ~10 us at batch 1)."""
        if torch.is_grad_enabled() and (S.requires_grad or g.requires_grad or a.requires_grad):
            return _Quadratic.apply(S, g, a, n_vars, threads)
        return quadratic(S, g, a, n_vars)

    def _solve_standard(self, mu: Tensor, S: Tensor, g: Tensor, a: Tensor, w_prev: Tensor | None,
                        settings: QPSettings, threads: int | None) -> Tensor:
        """The standard form ``x = [w, t, u]`` through :func:`solve_qp`: ``w (B, N)``, run by the
        caller under ``threads`` (the rule's count for this batch and ``n_vars``)."""
        N = self.n_assets
        Q = self._quadratic(S, g, a, self.compiled.n_vars, threads)
        pad = self.compiled.n_vars - N
        q = nnf.pad(-mu, (0, pad)) if pad else -mu
        t = self._tensors(mu)
        h = t["h0"] + w_prev @ t["H_prev"].T if self.compiled.uses_prev else t["h0"]
        x = solve_qp(Q, q, t["G"], h, t["A"], t["b"], settings)
        return x[:, :N] if pad else x

    def _solve_l1(self, mu: Tensor, S: Tensor, g: Tensor, a: Tensor, w_prev: Tensor | None, settings: QPSettings,
                  dtype: torch.dtype, threads: int | None) -> Tensor:
        """Leverage/turnover in ``N`` variables (:mod:`~gradfolio.solvers.qp.l1_active_set`), computed
        in ``dtype`` (float64) under ``threads``; the elements its kernels leave are solved by
        :meth:`_solve_standard`."""
        assert self.l1_spec is not None
        N = self.n_assets
        tol, _, _ = settings.tolerances(dtype)

        def fallback(idx: Tensor) -> Tensor:
            prev = None if w_prev is None else w_prev[idx]
            count = auto_threads(idx.numel(), self.compiled.n_vars, settings.threads)
            with intra_op_threads(count):
                return self._solve_standard(mu[idx], S[idx], g[idx], a[idx], prev, settings, count).to(dtype)

        Q = self._quadratic(S.to(dtype), g.to(dtype), a.to(dtype), N, threads)
        if self.compiled.uses_prev:
            c = w_prev.to(dtype)
        else:  # only the primal method's start (no turnover row): equal weights, feasible for most specs
            budget = self.constraints.budget
            c = mu.new_full((1, N), 0.0 if budget is None else budget / N, dtype=dtype)
        x = l1_active_set.solve_l1(Q, -mu.to(dtype), c, self.l1_spec, tol, settings.reg, fallback)
        return x.to(mu.dtype)


__all__ = ["AUX_ACTIVE_SET_VARS", "ConvexProblem", "default_settings", "per_batch", "quadratic", "risk_matrix"]
