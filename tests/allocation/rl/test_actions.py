"""ActionMap: bad actions and infeasible weights raise naming the step; the convex layer as the action map."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.allocation.networks import window_factor
from gradfolio.allocation.rl import ActionMap, PortfolioEnv
from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers import PortfolioConstraints


def _stepped(market: pd.DataFrame, steps: int, **kwargs) -> PortfolioEnv:
    env = PortfolioEnv(market, 5, start="first", episode_length=6, n_envs=2, **kwargs)
    env.reset()
    for _ in range(steps):
        env.step(torch.full((2, 3), 1 / 3, dtype=torch.float64))
    return env


def test_nan_action_names_the_step(market: pd.DataFrame) -> None:
    env = _stepped(market, 2)
    a = torch.zeros(2, 3)
    a[1, 2] = float("nan")
    with pytest.raises(DataError, match=r"step 2, environment 1\).*non-finite score.*asset 2"):
        env.step(a)


def test_wrong_shape_names_the_step(market: pd.DataFrame) -> None:
    env = _stepped(market, 3)
    with pytest.raises(DataError, match=r"step 3\): action of shape \(2, 4\).*\(2, 3\)"):
        env.step(torch.zeros(2, 4))
    with pytest.raises(DataError, match="action of shape list"):
        env.step([0.0, 0.0, 0.0])  # type: ignore[arg-type]


def test_weights_violating_the_constraints_name_the_step(market: pd.DataFrame) -> None:
    env = _stepped(market, 1, allocator="weights", constraints={"long_only": True, "budget": 1.0})
    with pytest.raises(DataError, match=r"step 1, environment 0\).*lower bound.*by 0\.2"):
        env.step(torch.tensor([[1.2, -0.2, 0.0], [0.5, 0.5, 0.0]], dtype=torch.float64))
    with pytest.raises(DataError, match=r"step 1, environment 1\).*budget sum w = 1.*by 0\.1"):
        env.step(torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.4, 0.0]], dtype=torch.float64))
    env = _stepped(market, 0, allocator="weights", constraints=PortfolioConstraints(budget=None, turnover=0.5))
    env.step(torch.tensor([[0.2, 0.2, 0.0]] * 2, dtype=torch.float64))  # turnover 0.4 from cash: allowed
    bad = env.before.clone()
    bad[:, 2] += 0.6
    with pytest.raises(DataError, match=r"step 1, environment 0\).*turnover.*by 0\.1"):
        env.step(bad)


def test_convex_layer_honours_max_weight(market: pd.DataFrame) -> None:
    spec = {"long_only": True, "max_weight": 0.45}
    env = PortfolioEnv(market, 8, start="first", episode_length=4, n_envs=2, allocator="convex",
                       allocator_params={"constraints": spec, "gamma": 3.0})
    X, _ = env.reset()
    a = torch.tensor([[5.0, -5.0, 0.1], [0.02, 0.01, -0.03]], dtype=torch.float64)
    _, _, _, info = env.step(a)
    w = info["weights"]
    assert bool((w <= 0.45 + 1e-6).all()) and bool((w >= -1e-6).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)
    F = window_factor(X).numpy()
    for b in range(2):  # the reference QP: max mu'w - gamma/2 w'F'F w, s.t. the constraints
        x = cp.Variable(3)
        S = F[b].T @ F[b]
        cp.Problem(cp.Minimize(1.5 * cp.quad_form(x, cp.psd_wrap(S)) - a[b].numpy() @ x),
                   [cp.sum(x) == 1, x >= 0, x <= 0.45]).solve(solver=cp.CLARABEL)
        np.testing.assert_allclose(w[b].numpy(), x.value, atol=1e-5)
    assert float(w[0, 0]) == pytest.approx(0.45, abs=1e-6)  # the cap binds


def test_softmax_weights_and_checked_defaults(market: pd.DataFrame) -> None:
    amap = ActionMap(3, "sparsemax", {"max_weight": 0.5})
    assert amap.constraints is not None and amap.constraints.long_only
    w = amap(torch.tensor([[3.0, 1.0, -2.0]], dtype=torch.float64), torch.zeros(1, 1, 4, 3), torch.zeros(1, 3, dtype=torch.float64))
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64))
    assert ActionMap(3, "tanh").constraints is None
    with pytest.raises(ConfigError, match="takes no allocator_params"):
        ActionMap(3, "weights", {"max_weight": 0.5})
