"""Differentiable batched convex solvers and declarative portfolio constraints."""

from gradfolio.solvers.qp import QPSettings, solve_qp

__all__ = ["QPSettings", "solve_qp"]
