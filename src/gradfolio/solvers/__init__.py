"""Differentiable batched convex solvers and declarative portfolio constraints.

- :func:`solve_qp`: batched dense QP ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h`` (torch
  active-set method with an interior-point fallback, implicit differentiation), the workhorse
  for many rebalance dates at once.
- :func:`solve_factor_qp`: the long-only budget QP with a factor covariance ``LL' + diag(d)``,
  solved and differentiated without forming the ``N x N`` matrix (Woodbury interior point).
- :class:`PortfolioConstraints` / :class:`Group`: declarative constraints compiled to that form.
- :class:`ConvexProblem`: the constrained mean-variance problem with the ``"qp"`` or
  ``"cvxpylayers"`` back end.
"""

from gradfolio.solvers.constraints import CompiledConstraints, Group, PortfolioConstraints
from gradfolio.solvers.factor_qp import solve_factor_qp
from gradfolio.solvers.sectors import load_sector_map, sector_groups
from gradfolio.solvers.problem import ConvexProblem
from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.solve import solve_qp

__all__ = ["CompiledConstraints", "ConvexProblem", "Group", "PortfolioConstraints", "QPSettings", "load_sector_map",
           "sector_groups", "solve_factor_qp", "solve_qp"]
