"""The classical portfolios on CUDA give the CPU's weights (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from gradfolio.allocation.classical import (
    EigenPortfolio,
    HierarchicalRiskParity,
    InverseVolatility,
    MaximumSharpe,
    MinimumCVaR,
    MinimumVariance,
    RandomPortfolio,
    RiskParity,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

#: (portfolio factory, absolute tolerance on the weights): closed forms and Newton steps agree to
#: rounding; the QPs stop at their tolerance on each device; Clarabel runs on the CPU either way.
CASES = {
    "inverse_volatility": (InverseVolatility, 1e-12),
    "eigen": (EigenPortfolio, 1e-9),
    "risk_parity": (RiskParity, 1e-10),
    "hrp": (HierarchicalRiskParity, 1e-10),
    "min_variance": (MinimumVariance, 1e-6),
    "max_sharpe": (MaximumSharpe, 1e-6),
    "min_cvar": (MinimumCVaR, 1e-12),
    "random": (lambda: RandomPortfolio(seed=7), 0.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_matches_cpu(windows, case: str) -> None:
    make, atol = CASES[case]
    X, _ = windows(120, ends=(2000, 6000, 8312))
    cpu = make()(X)
    gpu = make()(X.cuda())
    assert gpu.device.type == "cuda" and gpu.dtype == X.dtype
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=atol)
