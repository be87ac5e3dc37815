"""Risk parity against skfolio's RiskBudgeting and the defining property (equal contributions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfolio.optimization import RiskBudgeting

from gradfolio.allocation.classical import RiskParity, risk_budget_weights
from gradfolio.errors import ConfigError, SolverError


@pytest.mark.parametrize("lookback", [60, 252])
def test_equal_risk_contribution_matches_skfolio(windows, lookback: int) -> None:
    X, frames = windows(lookback)
    w = RiskParity()(X)
    for b, f in enumerate(frames):
        np.testing.assert_allclose(w[b].numpy(), RiskBudgeting().fit(f).weights_, atol=1e-4)
        cov = np.cov(f.to_numpy().T)
        contrib = w[b].numpy() * (cov @ w[b].numpy())
        np.testing.assert_allclose(contrib / contrib.sum(), np.full(20, 0.05), atol=1e-10)


def test_risk_budgets_match_skfolio(windows) -> None:
    X, frames = windows(252, ends=(6000, 8312))
    budgets = np.linspace(1.0, 3.0, 20)
    w = RiskParity(budgets=budgets)(X)
    for b, f in enumerate(frames):
        ref = RiskBudgeting(risk_budget=budgets / budgets.sum()).fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-4)
        cov = np.cov(f.to_numpy().T)
        contrib = w[b].numpy() * (cov @ w[b].numpy())
        np.testing.assert_allclose(contrib / contrib.sum(), budgets / budgets.sum(), atol=1e-10)


def test_two_assets_is_inverse_volatility() -> None:
    sd = torch.tensor([0.1, 0.3], dtype=torch.float64)
    for rho in (-0.8, 0.0, 0.9):
        corr = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
        cov = (sd[:, None] * sd[None] * corr)[None]
        w = risk_budget_weights(cov)[0]
        torch.testing.assert_close(w, torch.tensor([0.75, 0.25], dtype=torch.float64), rtol=0, atol=1e-12)


def test_batched_equals_one_by_one_and_other_estimator(windows) -> None:
    X, _ = windows(120)
    model = RiskParity(covariance="ledoit_wolf")
    batched = model(X)
    for b in range(X.shape[0]):
        torch.testing.assert_close(model(X[b : b + 1])[0], batched[b], rtol=0, atol=1e-12)
    assert (batched - RiskParity()(X)).abs().max() > 1e-4


def test_risk_parity_errors(windows) -> None:
    X, _ = windows(60)
    with pytest.raises(ConfigError, match="one positive finite budget"):
        RiskParity(budgets=[1.0, -1.0])
    with pytest.raises(ConfigError, match="3 budgets for 20 assets"):
        RiskParity(budgets=[1.0, 1.0, 1.0])(X)
    with pytest.raises(SolverError, match="batch element"):
        RiskParity(max_iter=1)(X)
