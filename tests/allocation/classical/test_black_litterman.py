"""Black-Litterman posterior against PyPortfolioOpt's BlackLittermanModel, closed forms and errors.

Two data sets: the bundled S&P 500 (daily, 20 stocks) and the Fama-French 10 industry portfolios
(monthly, 1949-2017) of ``linearmodels.datasets.french``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pypfopt import EfficientFrontier
from pypfopt.black_litterman import BlackLittermanModel

from gradfolio.allocation.classical import (
    BlackLitterman,
    MaximumSharpe,
    resolve_mean,
    sample_mean,
)
from gradfolio.allocation.classical.mean_variance import MinimumVariance
from gradfolio.errors import ConfigError

INDUSTRIES = ["NoDur", "Durbl", "Manuf", "Enrgy", "Chems", "BusEq", "Telcm", "Utils", "Shops", "Hlth", "Money", "Other"]


@pytest.fixture(scope="module")
def french_returns() -> pd.DataFrame:
    french = pytest.importorskip("linearmodels.datasets.french")
    data = french.load().set_index("dates")
    return data[[c for c in INDUSTRIES if c in data.columns]]


def _frames(returns: pd.DataFrame, lookback: int, ends: tuple[int, ...]) -> list[pd.DataFrame]:
    return [returns.iloc[e - lookback : e] for e in ends]


def _views(N: int, kind: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric views: absolute on assets 1 and 4, relative 0 vs 3 and a 0.7/0.3 basket vs 6."""
    rows, q = [], []
    if kind in ("absolute", "mixed"):
        for i, v in ((1, 0.9), (4, -0.35)):
            p = np.zeros(N)
            p[i] = 1.0
            rows.append(p)
            q.append(v * scale)
    if kind in ("relative", "mixed"):
        p = np.zeros(N)
        p[0], p[3] = 1.0, -1.0
        rows.append(p)
        q.append(0.4 * scale)
        p = np.zeros(N)
        p[2], p[5], p[6] = 0.7, 0.3, -1.0
        rows.append(p)
        q.append(-0.15 * scale)
    return np.array(rows), np.array(q)


CONFIDENCES = {"absolute": [0.25, 0.9], "relative": [0.6, 0.05], "mixed": [0.25, 0.9, 0.6, 1.0]}


@pytest.mark.parametrize("dataset", ["sp500", "french"])
@pytest.mark.parametrize("kind", ["absolute", "relative", "mixed"])
@pytest.mark.parametrize("omega", ["default", "idzorek"])
@pytest.mark.parametrize("prior", ["market", "equal"])
def test_posterior_matches_pypfopt(
    dataset: str, kind: str, omega: str, prior: str, sp500_returns: pd.DataFrame, request: pytest.FixtureRequest
) -> None:
    if dataset == "sp500":
        frames, scale = _frames(sp500_returns, 252, (2000, 5000, 8312)), 1e-3
    else:
        frames, scale = _frames(request.getfixturevalue("french_returns"), 120, (200, 500, 819)), 1e-2
    N = frames[0].shape[1]
    P, q = _views(N, kind, scale)
    caps = np.linspace(1.0, 4.0, N) ** 1.5
    conf = CONFIDENCES[kind]
    model = BlackLitterman(
        P, q, prior=prior, market_caps=caps, risk_aversion=2.7, tau=0.07, omega=omega,
        confidences=conf if omega == "idzorek" else None, risk_free=1e-5,
    )
    X = torch.stack([torch.tensor(f.to_numpy()) for f in frames])
    mu, cov = model.posterior(X)
    assert mu.shape == (3, N) and cov.shape == (3, N, N)
    for b, f in enumerate(frames):
        S = f.cov()
        weights = caps if prior == "market" else np.ones(N)
        ref = BlackLittermanModel(
            S, pi="market", market_caps=pd.Series(weights, index=S.index), risk_aversion=2.7, risk_free_rate=1e-5,
            P=P, Q=q, omega=omega, view_confidences=conf if omega == "idzorek" else None, tau=0.07,
        )
        np.testing.assert_allclose(mu[b].numpy(), ref.bl_returns().to_numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(cov[b].numpy(), ref.bl_cov().to_numpy(), rtol=0, atol=1e-10)
        torch.testing.assert_close(model(X[b : b + 1])[0], mu[b], rtol=0, atol=1e-15)


def test_absolute_dict_equals_pick_rows_and_per_window_views(sp500_returns: pd.DataFrame) -> None:
    X = torch.stack([torch.tensor(f.to_numpy()) for f in _frames(sp500_returns, 252, (3000, 7000))])
    N = X.shape[-1]
    P, q = _views(N, "mixed", 1e-3)
    both = BlackLitterman(P[2:], q[2:], absolute={1: q[0], 4: q[1]}, omega="idzorek", confidences=[0.6, 1.0, 0.25, 0.9])
    full = BlackLitterman(P[[2, 3, 0, 1]], q[[2, 3, 0, 1]], omega="idzorek", confidences=[0.6, 1.0, 0.25, 0.9])
    torch.testing.assert_close(both(X), full(X), rtol=0, atol=1e-15)
    # views given per window (B, K, N): window 1 gets view returns 2.5 times those of window 0
    q2 = np.stack([q, 2.5 * q])
    batched = BlackLitterman(np.stack([P, P]), q2)
    for b in range(2):
        torch.testing.assert_close(batched(X)[b], BlackLitterman(P, q2[b])(X[b : b + 1])[0], rtol=0, atol=1e-15)


def test_closed_forms_of_one_view() -> None:
    """Two assets, one absolute view on asset 0: mu_post = pi + S[:, 0] tau (q - pi_0) / (tau S_00 + omega)."""
    S = torch.tensor([[[0.04, 0.006], [0.006, 0.09]]], dtype=torch.float64)
    model = BlackLitterman(absolute={0: 0.05}, prior="market", market_caps=[3.0, 1.0], risk_aversion=2.0, tau=0.1)
    pi = 2.0 * S[0] @ torch.tensor([0.75, 0.25], dtype=torch.float64)  # (0.0630, 0.0180)
    omega = 0.1 * 0.04  # He-Litterman
    mu, cov = model.update(S, pi[None])
    gain = 0.1 / (0.1 * 0.04 + omega)
    torch.testing.assert_close(mu[0], pi + S[0, :, 0] * gain * (0.05 - pi[0]), rtol=0, atol=1e-15)
    expected_cov = 1.1 * S[0] - 0.1 * gain * torch.outer(S[0, :, 0], S[0, :, 0])
    torch.testing.assert_close(cov[0], expected_cov, rtol=0, atol=1e-15)
    # Idzorek: confidence 1 reaches the view exactly, confidence 0 keeps the prior (to 1e-6 relative)
    certain = BlackLitterman(absolute={0: 0.05}, prior=pi, omega="idzorek", confidences=[1.0]).update(S, pi[None])[0]
    assert abs(float(certain[0, 0]) - 0.05) < 1e-15
    ignored = BlackLitterman(absolute={0: 0.05}, prior=pi, omega="idzorek", confidences=[0.0]).update(S, pi[None])[0]
    torch.testing.assert_close(ignored[0], pi, rtol=1e-6, atol=0)
    # an explicit omega (K, K) and an explicit prior (N,)
    explicit = BlackLitterman(absolute={0: 0.05}, prior=[0.01, 0.02], omega=[[0.002]], tau=0.1).update(S, torch.tensor([[0.01, 0.02]], dtype=torch.float64))[0]
    g = 0.1 / (0.1 * 0.04 + 0.002)
    torch.testing.assert_close(explicit[0], torch.tensor([0.01, 0.02], dtype=torch.float64) + S[0, :, 0] * g * 0.04, rtol=0, atol=1e-15)


def test_max_sharpe_with_black_litterman_mean(sp500_returns: pd.DataFrame) -> None:
    frames = _frames(sp500_returns, 252, (2500, 6000, 8312))
    X = torch.stack([torch.tensor(f.to_numpy()) for f in frames])[:, None]
    N = X.shape[-1]
    P, q = _views(N, "mixed", 1e-3)
    params = dict(P=P.tolist(), q=q.tolist(), prior="market", market_caps=np.linspace(1.0, 4.0, N).tolist(), risk_aversion=2.7)
    by_name = MaximumSharpe(mean="black_litterman", mean_params=params)(X)
    bl = BlackLitterman(**params)
    by_object = MaximumSharpe(mean=bl)(X)
    torch.testing.assert_close(by_name, by_object, rtol=0, atol=0)
    for b, f in enumerate(frames):
        mu = bl(X[b : b + 1, 0])[0].numpy()
        ppo = EfficientFrontier(pd.Series(mu * 252, index=f.columns), f.cov() * 252).max_sharpe(risk_free_rate=0.0)
        np.testing.assert_allclose(by_name[b].numpy(), np.array([ppo[a] for a in f.columns]), atol=1e-4)
    # the default mean is the sample mean: same weights as before the hook existed
    torch.testing.assert_close(MaximumSharpe(mean="sample")(X), MaximumSharpe()(X), rtol=0, atol=0)
    torch.testing.assert_close(resolve_mean()(X[:, 0]), X[:, 0].mean(1), rtol=0, atol=0)
    assert resolve_mean(sample_mean) is sample_mean
    # the posterior covariance is a covariance estimator
    w = MinimumVariance(covariance=bl.covariance)(X)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, dtype=X.dtype))


def test_gradient_flows_to_views_and_returns() -> None:
    g = torch.Generator().manual_seed(3)
    R = (0.01 * torch.randn(1, 40, 3, dtype=torch.float64, generator=g)).requires_grad_()
    q = torch.tensor([0.002, -0.001], dtype=torch.float64, requires_grad=True)
    P = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)

    def f(R: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        model = BlackLitterman(P, q.detach(), omega="idzorek", confidences=[0.4, 0.8])
        model.q = q  # keep the graph to q
        return model(R)

    assert torch.autograd.gradcheck(f, (R, q))


def test_bad_views_raise_config_error() -> None:
    P = [[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    with pytest.raises(ConfigError, match="P and q"):
        BlackLitterman(P, [0.01])
    with pytest.raises(ConfigError, match="P and q"):
        BlackLitterman(P)
    with pytest.raises(ConfigError, match="views"):
        BlackLitterman()
    with pytest.raises(ConfigError, match="confidences.*outside"):
        BlackLitterman(P, [0.01, 0.02], omega="idzorek", confidences=[0.5, 1.2])
    with pytest.raises(ConfigError, match="confidences.*one confidence per view"):
        BlackLitterman(P, [0.01, 0.02], omega="idzorek", confidences=[0.5])
    with pytest.raises(ConfigError, match="omega='idzorek'"):
        BlackLitterman(P, [0.01, 0.02], omega="idzorek")
    with pytest.raises(ConfigError, match="positive semidefinite"):
        BlackLitterman(P, [0.01, 0.02], omega=[[0.01, 0.0], [0.0, -0.02]])
    with pytest.raises(ConfigError, match="omega.*shape"):
        BlackLitterman(P, [0.01, 0.02], omega=[[0.01]])
    with pytest.raises(ConfigError, match="market_caps"):
        BlackLitterman(P, [0.01, 0.02], prior="market")
    with pytest.raises(ConfigError, match="tau"):
        BlackLitterman(P, [0.01, 0.02], tau=0.0)
    R = 0.01 * torch.randn(2, 30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="P for BlackLitterman.*4 assets"):
        BlackLitterman(P, [0.01, 0.02])(R)
    with pytest.raises(ConfigError, match="absolute.*4 assets"):
        BlackLitterman(absolute={7: 0.01})(R)
    # the same view twice, held with certainty: tau P S P' + Omega is singular
    twice = [[1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]]
    with pytest.raises(ConfigError, match="singular"):
        BlackLitterman(twice, [0.01, 0.01], omega="idzorek", confidences=[1.0, 1.0])(R)
    with pytest.raises(ConfigError, match="mean=.*unknown|mean='median'"):
        MaximumSharpe(mean="median")
    with pytest.raises(ConfigError, match="mean_params"):
        MaximumSharpe(mean="black_litterman", mean_params={"views": 3})
