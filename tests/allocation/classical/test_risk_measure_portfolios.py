"""Minimum CDaR, MAD, worst realization and semi-variance against skfolio's MeanRisk on the S&P 500
and Fama-French industry windows; the minimized risk against gradfolio.risk."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk

from gradfolio import risk
from gradfolio.allocation.classical import (
    EqualWeight,
    MinimumCDaR,
    MinimumMeanAbsoluteDeviation,
    MinimumSemiVariance,
    MinimumWorstRealization,
)
from gradfolio.errors import ConfigError

TIGHT = dict(solver_params=dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10), scale_objective=1e4)

CASES = [
    (MinimumCDaR(beta=0.9), dict(risk_measure=RiskMeasure.CDAR, cdar_beta=0.9), lambda r: risk.cdar(r, 0.9)),
    (MinimumMeanAbsoluteDeviation(), dict(risk_measure=RiskMeasure.MEAN_ABSOLUTE_DEVIATION), risk.mean_absolute_deviation),
    (MinimumWorstRealization(), dict(risk_measure=RiskMeasure.WORST_REALIZATION), risk.worst_realization),
    (MinimumSemiVariance(), dict(risk_measure=RiskMeasure.SEMI_VARIANCE), risk.semi_variance),
]


@pytest.mark.parametrize(("model", "peer", "measure"), CASES, ids=lambda c: type(c).__name__ if hasattr(c, "allocate") else "")
def test_matches_skfolio_and_minimizes_the_measure(both_windows, model, peer, measure) -> None:
    X, frames = both_windows
    w = model(X)
    ew = EqualWeight()(X)
    for b, f in enumerate(frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = MeanRisk(**peer, **TIGHT).fit(f.to_numpy()).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=2e-6)
        R = X[b, 0]
        ours = float(measure(R @ w[b]))
        assert ours <= float(measure(R @ ew[b])) + 1e-15
        assert ours <= float(measure(R @ torch.as_tensor(ref))) * (1 + 1e-6) + 1e-15
    torch.testing.assert_close(w.sum(-1), torch.ones(len(frames), dtype=w.dtype))


def test_cdar_beta_is_checked_and_matters(windows) -> None:
    X, _ = windows(252)
    assert float((MinimumCDaR(beta=0.5)(X) - MinimumCDaR(beta=0.95)(X)).abs().max()) > 1e-3
    with pytest.raises(ConfigError, match="beta=1.0"):
        MinimumCDaR(beta=1.0)
