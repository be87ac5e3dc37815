"""Predict-then-optimize networks: each optimizer stage against a reference solver with the forecast plugged in,
decision-focused gradients against finite differences, the forecast_mse loss, training, resume and bad input."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf

from gradfolio.allocation import (
    ForecastMSELoss,
    PredictThenOptimize,
    RidgeForecaster,
    SharpeLoss,
    Trainer,
    forecast_target,
    make_loss,
    make_network,
)
from gradfolio.allocation.classical import MaximumSharpe
from gradfolio.allocation.pto import check_training
from gradfolio.data import Windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers import PortfolioConstraints, QPSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
D = torch.float64
N, L = 5, 30


def _x(B: int = 4, seed: int = 0, C: int = 1) -> torch.Tensor:
    """Daily-like returns: asset means and volatilities that differ, so every stage has an interior answer."""
    g = torch.Generator().manual_seed(seed)
    vol = torch.tensor([0.010, 0.014, 0.008, 0.020, 0.012], dtype=D)
    return 0.0004 + vol * torch.randn(B, C, L, N, generator=g, dtype=D)


def _mu(B: int = 4, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1e-3 * (torch.rand(B, N, generator=g, dtype=D) - 0.3)


def _with_forecast(model: PredictThenOptimize, mu: torch.Tensor) -> PredictThenOptimize:
    """Make the forecaster return ``mu`` whatever the window (the optimizer stage is what is tested)."""
    model.forecast = lambda x: mu  # type: ignore[method-assign]
    return model.double().eval()


def test_mean_variance_stage_is_cvxpy_with_the_forecast() -> None:
    X, mu, gamma = _x(), _mu(), 3.7
    model = _with_forecast(PredictThenOptimize(N, L, forecaster="ridge", optimizer="mean_variance", gamma=gamma), mu)
    w = model(X)
    for b in range(X.shape[0]):
        S = np.cov(X[b, 0].numpy(), rowvar=False)
        v = cp.Variable(N)
        cp.Problem(cp.Maximize(mu[b].numpy() @ v - gamma * cp.quad_form(v, cp.psd_wrap(S))),
                   [cp.sum(v) == 1, v >= 0]).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12,
                                                   tol_feas=1e-12)
        np.testing.assert_allclose(w[b].detach().numpy(), v.value, atol=1e-6)
    assert (w > 1e-4).sum(dim=-1).min() >= 2  # interior answers, not a corner


def test_convex_stage_is_cvxpy_with_the_forecast_constraints_and_shrunk_covariance() -> None:
    X, mu = _x(seed=1), _mu(seed=2)
    gamma, alpha = 2.5, 2e-4
    spec = PortfolioConstraints(long_only=True, max_weight=0.35)
    model = PredictThenOptimize(N, L, forecaster="lstm", optimizer="convex", gamma=gamma, alpha=alpha,
                                covariance="ledoit_wolf", constraints=spec)
    w = _with_forecast(model, mu)(X)
    for b in range(X.shape[0]):
        S = ledoit_wolf(X[b, 0].numpy())[0]  # scikit-learn's Ledoit-Wolf (biased covariance shrunk)
        v = cp.Variable(N)
        cp.Problem(cp.Minimize(0.5 * gamma * cp.quad_form(v, cp.psd_wrap(S)) - mu[b].numpy() @ v
                               + 0.5 * alpha * cp.sum_squares(v)),
                   [cp.sum(v) == 1, v >= 0, v <= 0.35]).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12,
                                                              tol_gap_rel=1e-12, tol_feas=1e-12)
        np.testing.assert_allclose(w[b].detach().numpy(), v.value, atol=1e-6)
    assert float(w.max()) == pytest.approx(0.35, abs=1e-8)  # the cap binds somewhere


def test_convex_stage_default_is_long_only_fully_invested() -> None:
    model = PredictThenOptimize(N, L, forecaster="ridge", optimizer="convex")
    assert model.layer is not None and model.layer.problem.constraints == PortfolioConstraints(long_only=True)
    w = _with_forecast(model, 30 * _mu())(_x())
    assert float(w.min()) >= -1e-10
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=D))


def test_max_sharpe_stage_is_the_classical_max_sharpe_with_the_forecast_as_mean() -> None:
    X, mu, rf = _x(seed=3), _mu(seed=4), 1e-4
    model = _with_forecast(PredictThenOptimize(N, L, forecaster="ridge", optimizer="max_sharpe", risk_free=rf), mu)
    w = model(X)
    classical = MaximumSharpe(risk_free=rf, mean=lambda R: mu)(X)
    torch.testing.assert_close(w, classical, rtol=0, atol=1e-12)
    for b in range(X.shape[0]):  # and the Charnes-Cooper QP by cvxpy + Clarabel
        S = np.cov(X[b, 0].numpy(), rowvar=False)
        y = cp.Variable(N)
        cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(S))),
                   [(mu[b].numpy() - rf) @ y == 1, y >= 0]).solve(solver=cp.CLARABEL, tol_gap_abs=1e-14,
                                                                  tol_gap_rel=1e-14, tol_feas=1e-14)
        np.testing.assert_allclose(w[b].detach().numpy(), y.value / y.value.sum(), atol=1e-6)


def test_max_sharpe_stage_with_constraints_and_covariance() -> None:
    X, mu = _x(seed=5), _mu(seed=6)
    spec = PortfolioConstraints(long_only=True, max_weight=0.3)
    model = PredictThenOptimize(N, L, forecaster="ridge", optimizer="max_sharpe", covariance="oas", constraints=spec)
    w = _with_forecast(model, mu)(X)
    classical = MaximumSharpe(covariance="oas", mean=lambda R: mu, constraints=spec)(X)
    torch.testing.assert_close(w, classical, rtol=0, atol=1e-12)
    assert float(w.max()) <= 0.3 + 1e-8


def test_log_returns_kind_estimates_the_covariance_from_simple_returns() -> None:
    X, mu = _x(seed=8), 0.05 * _mu()
    simple = PredictThenOptimize(N, L, forecaster="ridge", optimizer="convex", gamma=1.5).double()
    log = PredictThenOptimize(N, L, forecaster="ridge", optimizer="convex", gamma=1.5, returns_kind="log").double()
    torch.testing.assert_close(log.optimize(mu, torch.log1p(X)), simple.optimize(mu, X), rtol=0, atol=1e-9)
    assert not torch.allclose(simple.optimize(mu, torch.log1p(X)), simple.optimize(mu, X), rtol=0, atol=1e-4)
    assert (simple.optimize(mu, X) > 1e-3).sum(-1).min() >= 3  # interior answers


def test_forecast_is_the_forecaster_and_the_ridge_prefit_is_exact() -> None:
    X = _x(B=40, seed=9)
    y = 0.01 * torch.randn(40, 1, 6, N, generator=torch.Generator().manual_seed(2), dtype=D)
    windows = Windows(X, y, None, None, L, 0, 6, 1, "simple")  # type: ignore[arg-type]
    model = make_network("pto_ridge", N, L, seed=0, forecaster_params={"alpha": 0.05}).double()
    assert model.closed_form and model.prefit(windows)
    ref = RidgeForecaster(L, alpha=0.05).double().fit(X, forecast_target(y))
    torch.testing.assert_close(model.forecast(X), ref(X), rtol=0, atol=1e-14)
    lstm = make_network("pto_lstm", N, L, seed=0).double()
    assert not lstm.closed_form and not lstm.prefit(windows)


def _gradcheck(model: PredictThenOptimize, X: torch.Tensor, y: torch.Tensor) -> bool:
    """Finite differences of the Sharpe loss of ``model(X)`` with respect to every forecaster parameter."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    loss = SharpeLoss(eps=1e-8)

    def f(*ps: torch.Tensor) -> torch.Tensor:
        w = torch.func.functional_call(model, dict(zip(names, ps)), (X,))
        return loss(w, y, reduction="mean")

    return torch.autograd.gradcheck(f, tuple(p.detach().clone().requires_grad_(True) for p in params),
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("optimizer", ["convex", "mean_variance"])
def test_decision_focused_gradient_matches_finite_differences(optimizer: str) -> None:
    X, y = _x(B=3, seed=10), 0.01 * torch.randn(3, 1, 5, N, generator=torch.Generator().manual_seed(4), dtype=D)
    model = PredictThenOptimize(N, L, forecaster="ridge", optimizer=optimizer, gamma=2.0 if optimizer == "convex" else 5.0,
                                alpha=0.1).double()
    with torch.no_grad():  # forecasts of the order of the returns' means: interior solutions
        model.forecaster.weight.copy_(0.02 * torch.randn(1, L, generator=torch.Generator().manual_seed(1)))
        model.forecaster.bias.fill_(2e-4)
    model.train()
    w = model(X)
    assert w.requires_grad
    assert _gradcheck(model, X, y)
    grads = torch.autograd.grad(SharpeLoss()(w, y, reduction="mean"), list(model.parameters()))
    assert all(float(g.abs().max()) > 0 for g in grads)


def test_max_sharpe_cannot_be_trained_through_but_predicts() -> None:
    model = make_network("pto_ridge", N, L, seed=0).double()
    X = _x()
    with pytest.raises(ConfigError, match="optimizer='max_sharpe' is not differentiable.*forecast_mse"):
        model.train()(X)
    with torch.no_grad():
        model.forecaster.bias.fill_(1e-3)
        assert model(X).shape == (4, N)  # no gradient asked: fine in training mode too
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(X).sum(-1), torch.ones(4, dtype=D))


def test_forecast_mse_loss_value_penalty_and_reductions() -> None:
    X = _x(B=6, seed=11)
    y = 0.01 * torch.randn(6, 2, 4, N, generator=torch.Generator().manual_seed(5), dtype=D)
    model = make_network("pto_ridge", N, L, seed=0, forecaster_params={"alpha": 0.3}).double()
    with torch.no_grad():
        model.forecaster.weight.normal_(0.0, 0.01, generator=torch.Generator().manual_seed(2))
        model.forecaster.bias.fill_(5e-4)
    mu = model.forecast(X)
    per = ((mu - y[:, 0].mean(dim=1)) ** 2).mean(dim=-1)
    penalty = 0.3 * model.forecaster.weight.pow(2).sum()
    loss = make_loss("forecast_mse")
    torch.testing.assert_close(loss.model_loss(model, X, y), per, rtol=0, atol=0)
    torch.testing.assert_close(loss.model_loss(model, X, y, reduction="mean"), per.mean() + penalty, rtol=1e-14, atol=0)
    torch.testing.assert_close(loss.model_loss(model, X, y, reduction="sum"), per.sum() + penalty, rtol=1e-14, atol=0)
    plain = make_loss("forecast_mse", penalty=False)
    assert isinstance(plain, ForecastMSELoss) and plain.penalty is False
    torch.testing.assert_close(plain.model_loss(model, X, y, reduction="mean"), per.mean(), rtol=1e-14, atol=0)
    with pytest.raises(ConfigError, match="judges a network's forecast, not weights"):
        loss(torch.full((6, N), 0.2, dtype=D), y)
    with pytest.raises(ConfigError, match="model DenseNet makes no forecast"):
        loss.model_loss(make_network("dense", N, L, seed=0).double(), X, y)
    with pytest.raises(ConfigError, match="reduction='max'"):
        loss.model_loss(model, X, y, reduction="max")
    with pytest.raises(ConfigError, match="penalty=1"):
        ForecastMSELoss(penalty=1)  # type: ignore[arg-type]


def _windows(B: int, seed: int) -> Windows:
    X = _x(B=B, seed=seed).float()
    # a planted signal: the next horizon's mean return is 0.3 x the window's last return
    y = 0.3 * X[:, :, -1:, :].expand(B, 1, 3, N) + 0.002 * torch.randn(B, 1, 3, N, generator=torch.Generator().manual_seed(seed))
    return Windows(X, y, None, None, L, 0, 3, 1, "simple")  # type: ignore[arg-type]


def test_decision_focused_training_lowers_the_portfolio_loss_and_resumes_bitwise(tmp_path) -> None:
    train, val = _windows(64, 12), _windows(24, 13)

    def trainer(epochs: int, ckpt=None) -> Trainer:
        model = make_network("pto_lstm", N, L, seed=3, forecaster_params={"hidden": 4}, optimizer="convex", gamma=5.0)
        return Trainer(model, make_loss("sharpe"), lr=1e-2, batch_size=16, max_epochs=epochs, patience=10, seed=1,
                       checkpoint_dir=ckpt)

    ref = trainer(4)
    history = ref.fit(train, val)
    assert history.train_loss[-1] < 0.95 * history.train_loss[0]  # -Sharpe falls (3.46 -> 3.06)
    assert history.best_val_loss < history.val_loss[0]
    trainer(2, tmp_path).fit(train, val)
    resumed = trainer(4, tmp_path)
    h = resumed.fit(train, val, resume=True)
    assert h.train_loss == history.train_loss and h.val_loss == history.val_loss
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_forecast_mse_training_of_the_lstm_lowers_the_error() -> None:
    train, val = _windows(96, 14), _windows(32, 15)
    model = make_network("pto_lstm", N, L, seed=0, forecaster_params={"hidden": 6, "collapse": "attention"})
    loss = make_loss("forecast_mse")
    with torch.no_grad():
        before = float(loss.model_loss(model, val.X, val.y, reduction="mean"))
    history = Trainer(model, loss, lr=1e-2, batch_size=16, max_epochs=15, patience=15, seed=0).fit(train, val)
    assert history.best_val_loss < 0.5 * before
    assert history.train_loss[-1] < history.train_loss[0]


def test_check_training() -> None:
    check_training(PredictThenOptimize, {"optimizer": "max_sharpe"}, True, "network")
    check_training(PredictThenOptimize, {"optimizer": "convex"}, False, "network")
    with pytest.raises(ConfigError, match=r"^networks\[1\]\.params\.optimizer: 'max_sharpe' is not differentiable"):
        check_training(PredictThenOptimize, {}, False, "networks[1]")
    from gradfolio.allocation import DenseNet

    with pytest.raises(ConfigError, match=r"^network\.loss: 'forecast_mse' trains a return forecast, .* DenseNet"):
        check_training(DenseNet, {}, True, "network")


def test_parameters_reach_their_stage() -> None:
    settings = QPSettings(max_iter=77)
    model = make_network("pto_lstm", N, L, n_channels=2, seed=0, optimizer="convex", gamma=4.0, alpha=0.2,
                         settings={"max_iter": 77}, forecaster_params={"hidden": 5, "num_layers": 2})
    assert model.layer is not None and model.layer.problem.settings == settings
    assert model.layer.gamma0 == 4.0 and model.alpha == 0.2 and model.portfolio is None
    assert model.forecaster.rnn.rnn.hidden_size == 5 and model.forecaster.rnn.rnn.num_layers == 2
    assert model(_x(C=2).float()).shape == (4, N)
    sharpe = make_network("pto_ridge", N, L, seed=0, risk_free=2e-4, covariance="ledoit_wolf")
    assert sharpe.portfolio is not None and sharpe.portfolio.risk_free == 2e-4 and sharpe.layer is None
    assert sharpe.forecaster.lookback == L and sharpe.forecaster.alpha == 1e-4
    ridge = make_network("pto_ridge", N, L, seed=0, forecaster_params={"alpha": 0.5, "fit_intercept": False})
    assert ridge.forecaster.alpha == 0.5 and not ridge.forecaster.bias.requires_grad
    assert make_network("pto_ridge", N, L, seed=0, returns_kind="log").returns_kind == "log"


def test_bad_input_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"^network\.params\.optimizer: Input should be 'max_sharpe'"):
        make_network("pto_lstm", N, L, where="network.params", optimizer="min_cvar")
    with pytest.raises(ConfigError, match="optimizer='min_cvar' is unknown"):
        PredictThenOptimize(N, L, optimizer="min_cvar")  # type: ignore[arg-type]
    for gamma in (0.0, -1.0):
        with pytest.raises(ConfigError, match=rf"gamma={gamma} must be a finite number > 0"):
            make_network("pto_ridge", N, L, where="network.params", gamma=gamma, optimizer="convex")
    with pytest.raises(ConfigError, match="alpha=-0.1 must be a finite number >= 0"):
        PredictThenOptimize(N, L, alpha=-0.1)
    with pytest.raises(ConfigError, match="constraints are given with optimizer='mean_variance'"):
        PredictThenOptimize(N, L, optimizer="mean_variance", constraints=PortfolioConstraints(max_weight=0.5))
    with pytest.raises(ConfigError, match=r"^network\.params\.forecaster_params\.hidden: Input should be a valid integer"):
        make_network("pto_lstm", N, L, where="network.params", forecaster_params={"hidden": "big"})
    with pytest.raises(ConfigError, match=r"^network\.params\.forecaster: Input should be 'lstm' or 'ridge'"):
        make_network("pto_lstm", N, L, where="network.params", forecaster="arima")
    with pytest.raises(ConfigError, match="covariance='exotic'"):
        PredictThenOptimize(N, L, covariance="exotic")
    with pytest.raises(ConfigError, match="returns_kind='pct'"):
        PredictThenOptimize(N, L, returns_kind="pct")  # type: ignore[arg-type]
    model = make_network("pto_ridge", N, L, seed=0)
    with pytest.raises(DataError, match="X has 4 assets; this network was built for n_assets=5"):
        model(torch.zeros(2, 1, L, 4))
    with pytest.raises(DataError, match=r"expected \(batch, 1, lookback, assets\)"):
        model(torch.zeros(2, L, N))
    with pytest.raises(DataError, match="lookback 12; this forecaster was built for lookback=30"):
        model(torch.zeros(2, 1, 12, N))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("optimizer", ["max_sharpe", "mean_variance", "convex"])
def test_cuda_gives_the_cpu_weights_and_gradients(optimizer: str) -> None:
    X, y = _x(B=6, seed=16), 0.01 * torch.randn(6, 1, 5, N, generator=torch.Generator().manual_seed(6), dtype=D)
    cpu = make_network("pto_lstm", N, L, seed=4, optimizer=optimizer, gamma=5.0).double().eval()
    with torch.no_grad():
        cpu.forecaster.head.bias.fill_(1e-3)
    gpu = make_network("pto_lstm", N, L, seed=4, optimizer=optimizer, gamma=5.0).double().eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    with torch.no_grad():
        torch.testing.assert_close(gpu(X.cuda()).cpu(), cpu(X), rtol=0, atol=1e-8)
    if optimizer != "max_sharpe":
        for model, x, yy in ((cpu, X, y), (gpu, X.cuda(), y.cuda())):
            SharpeLoss()(model(x), yy, reduction="mean").backward()
        torch.testing.assert_close(gpu.forecaster.head.weight.grad.cpu(), cpu.forecaster.head.weight.grad,
                                   rtol=1e-6, atol=1e-9)
