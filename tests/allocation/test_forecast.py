"""Forecasters of the predict-then-optimize networks: exact ridge against scikit-learn, a planted AR signal
recovered by the ridge and by the LSTM, shapes and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge

from gradfolio.allocation import (
    FORECASTERS,
    LSTMForecaster,
    RidgeForecaster,
    Trainer,
    forecast_target,
    make_loss,
)
from gradfolio.allocation.pto import PredictThenOptimize
from gradfolio.data import make_windows
from gradfolio.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
D = torch.float64


def _rows(X: torch.Tensor) -> np.ndarray:
    """``(B, C, L, N) -> (B N, C L)``: one row per (window, asset), as the ridge forecaster sees them."""
    B, C, L, N = X.shape
    return X.permute(0, 3, 1, 2).reshape(B * N, C * L).numpy()


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_fit_is_sklearn_ridge(fit_intercept: bool) -> None:
    g = torch.Generator().manual_seed(3)
    X = torch.randn(40, 2, 6, 3, generator=g, dtype=D)
    target = torch.randn(40, 3, generator=g, dtype=D) + 0.7
    alpha = 0.037
    f = RidgeForecaster(lookback=6, n_channels=2, alpha=alpha, fit_intercept=fit_intercept).double().fit(X, target)
    M = 40 * 3
    ref = Ridge(alpha=alpha * M, fit_intercept=fit_intercept, solver="cholesky").fit(_rows(X), target.reshape(-1).numpy())
    np.testing.assert_allclose(f.weight.detach().reshape(-1).numpy(), ref.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(float(f.bias.detach()), ref.intercept_ if fit_intercept else 0.0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f(X).detach().reshape(-1).numpy(), ref.predict(_rows(X)), rtol=0, atol=1e-10)
    assert f.bias.requires_grad is fit_intercept


def test_ridge_fit_minimizes_the_training_loss_and_alpha_zero_is_least_squares() -> None:
    g = torch.Generator().manual_seed(5)
    X = torch.randn(30, 1, 4, 2, generator=g, dtype=D)
    target = torch.randn(30, 2, generator=g, dtype=D)
    f = RidgeForecaster(lookback=4, alpha=0.0).double().fit(X, target)
    F = np.hstack([_rows(X), np.ones((60, 1))])
    coef, *_ = np.linalg.lstsq(F, target.reshape(-1).numpy(), rcond=None)
    np.testing.assert_allclose(f.weight.detach().reshape(-1).numpy(), coef[:-1], atol=1e-10)
    np.testing.assert_allclose(float(f.bias.detach()), coef[-1], atol=1e-10)
    # the gradient of mean-squared error + alpha |beta|^2 vanishes at the exact fit (the objective the Trainer minimizes)
    f = RidgeForecaster(lookback=4, alpha=0.02).double().fit(X, target)
    objective = (f(X) - target).pow(2).mean() + f.penalty()
    grads = torch.autograd.grad(objective, [f.weight, f.bias])
    assert max(float(gr.abs().max()) for gr in grads) < 1e-12
    assert float(f.penalty().detach()) == pytest.approx(0.02 * float(f.weight.detach().pow(2).sum()), rel=1e-14)


def _ar_returns(T: int, N: int, phi: float, seed: int) -> pd.DataFrame:
    """``r_t = phi r_{t-1} + e_t`` per asset (independent, unit-free scale 0.01)."""
    rng = np.random.default_rng(seed)
    e = 0.01 * rng.standard_normal((T, N))
    r = np.zeros((T, N))
    for t in range(1, T):
        r[t] = phi * r[t - 1] + e[t]
    return pd.DataFrame(r, index=pd.bdate_range("2001-01-01", periods=T), columns=[f"A{i}" for i in range(N)])


def test_ridge_recovers_a_planted_ar_coefficient() -> None:
    phi = 0.37
    windows = make_windows(_ar_returns(3000, 4, phi, seed=1), lookback=5, horizon=1, dtype=D)
    f = RidgeForecaster(lookback=5, alpha=1e-6).double().fit(windows.X, forecast_target(windows.y))
    beta = f.weight.detach()[0]
    assert beta[-1] == pytest.approx(phi, abs=0.03)  # the last lag carries the signal
    assert beta[:-1].abs().max() < 0.04  # the older lags none
    assert abs(float(f.bias.detach())) < 1e-3


def test_lstm_trained_on_forecast_mse_recovers_a_planted_ar_coefficient() -> None:
    phi = -0.6
    returns = _ar_returns(900, 3, phi, seed=2) * 100  # unit scale: a small LSTM learns it in a few epochs
    windows = make_windows(returns, lookback=4, horizon=1)
    n = len(windows)
    train, val = windows.subset(0, int(0.8 * n)), windows.subset(int(0.8 * n) + 1, n)
    model = PredictThenOptimize(3, 4, forecaster="lstm", forecaster_params={"hidden": 8}, optimizer="mean_variance")
    loss = make_loss("forecast_mse")
    before = loss.model_loss(model, val.X, val.y, reduction="mean").item()
    history = Trainer(model, loss, lr=1e-2, batch_size=64, max_epochs=40, patience=40, seed=1).fit(train, val)
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]
    after = loss.model_loss(model, val.X, val.y, reduction="mean").item()
    assert after < 0.75 * before
    with torch.no_grad():
        mu = model.forecast(val.X).reshape(-1).numpy()
    last = val.X[:, 0, -1].reshape(-1).numpy()
    slope = np.polyfit(last, mu, 1)[0]
    assert slope == pytest.approx(phi, abs=0.1)
    # the best achievable MSE is the noise variance 1: the trained forecast comes within 10% of it
    assert after < 1.1


def test_lstm_forecaster_parameters_and_shapes() -> None:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 2, 7, 3, generator=g)
    f = LSTMForecaster(n_channels=2, hidden=5, num_layers=2, collapse="average", dropout=0.3)
    assert f(X).shape == (5, 3)
    assert f.rnn.rnn.num_layers == 2 and f.rnn.rnn.hidden_size == 5
    assert f.collapse.mode == "average" and f.dropout.p == 0.3
    f.eval()
    # shared by the assets: permuting assets permutes the forecast
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(f(X[..., perm]), f(X)[:, perm])
    assert FORECASTERS.names() == ["ridge", "lstm"]


def test_forecast_target_is_the_horizon_mean_of_channel_0() -> None:
    y = torch.arange(2 * 2 * 3 * 2, dtype=D).reshape(2, 2, 3, 2)
    torch.testing.assert_close(forecast_target(y), y[:, 0].mean(dim=1))
    assert forecast_target(y)[1, 0] == (12 + 14 + 16) / 3
    with pytest.raises(DataError, match="expected \\(batch, channels, horizon, assets\\)"):
        forecast_target(y[0])


def test_bad_forecaster_input() -> None:
    with pytest.raises(ConfigError, match="alpha=-1"):
        RidgeForecaster(lookback=3, alpha=-1)
    with pytest.raises(ConfigError, match="lookback=0"):
        RidgeForecaster(lookback=0)
    with pytest.raises(ConfigError, match="hidden=0"):
        LSTMForecaster(hidden=0)
    with pytest.raises(ConfigError, match="dropout=1"):
        LSTMForecaster(dropout=1)
    with pytest.raises(DataError, match="lookback 4; this forecaster was built for lookback=3"):
        RidgeForecaster(lookback=3)(torch.zeros(2, 1, 4, 2))
    with pytest.raises(DataError, match=r"expected \(batch, 1, lookback, assets\)"):
        LSTMForecaster()(torch.zeros(2, 3, 4))
    with pytest.raises(DataError, match="target has shape"):
        RidgeForecaster(lookback=3).fit(torch.zeros(2, 1, 3, 2), torch.zeros(2, 3))
