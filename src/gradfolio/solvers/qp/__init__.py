"""The batched dense QP engine: ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h`` for a whole batch.

- ``solve.py``: :func:`solve_qp` and its autograd Function (forward, implicit-differentiation backward).
- ``active_set.py``: the primal-dual active-set method, the polish and the backward's KKT solve.
- ``ipm.py``: the primal-dual interior point for the elements the active-set method leaves.
- ``kkt.py``: the saddle-point (Schur complement) solves both methods share.
- ``separable.py``: the separable problem's exact solution, the active-set method's first guess.
- ``standard_form.py``: the batch in the form the methods work on (bound rows kept apart).
- ``settings.py``: :class:`QPSettings`.
"""

from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.solve import solve_qp

__all__ = ["QPSettings", "solve_qp"]
