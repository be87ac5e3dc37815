"""LOSSES: names, parameters validated by each class's typed signature, builds equal to the classes."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
import torch

from gradfolio import risk
from gradfolio.allocation import (
    LOSSES,
    CalmarLoss,
    CVaRLoss,
    MaxDrawdownLoss,
    MeanReturnLoss,
    SharpeLoss,
    SortinoLoss,
    StdLoss,
    TurnoverLoss,
    make_loss,
    make_network,
)
from gradfolio.errors import ConfigError, DataError

torch.set_num_threads(1)


def _xy(B=4, L=12, H=6, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.01 * torch.randn(B, 1, L, N, generator=g, dtype=D), 0.01 * torch.randn(B, 1, H, N, generator=g, dtype=D)


D = torch.float64
# a non-default value for every parameter, and the direct construction it must equal
CASES = {
    "sharpe": ({"risk_free": 1e-4, "periods_per_year": 252, "eps": 1e-3}, SharpeLoss(1e-4, 252.0, 1e-3)),
    "sortino": ({"target": -2e-3, "periods_per_year": "12", "eps": 5e-4}, SortinoLoss(-2e-3, 12.0, 5e-4)),
    "calmar": ({"periods_per_year": 52, "eps": 2e-3}, CalmarLoss(52.0, 2e-3)),
    "max_drawdown": ({"compounded": False}, MaxDrawdownLoss(False)),
    "cvar": ({"level": 0.9}, CVaRLoss(0.9)),
    "mean_return": ({}, MeanReturnLoss()),
    "std": ({"periods_per_year": 252}, StdLoss(252.0)),
    "turnover": ({"cost": 1e-3}, TurnoverLoss(1e-3)),
}


def test_the_registered_names() -> None:
    assert LOSSES.names() == [*CASES, "forecast_mse"]  # forecast_mse: tests/allocation/test_pto.py


@pytest.mark.parametrize("name", list(CASES))
def test_build_by_name_equals_direct_construction(name: str) -> None:
    params, direct = CASES[name]
    g = torch.Generator().manual_seed(3)
    w = torch.softmax(torch.randn(6, 4, generator=g, dtype=D), -1)
    w_prev = torch.softmax(torch.randn(6, 4, generator=g, dtype=D), -1)
    y = 0.02 * torch.randn(6, 1, 9, 4, generator=g, dtype=D)
    built = make_loss(name, **params)
    assert type(built) is type(direct) and vars(built) == vars(direct)
    assert torch.equal(built(w, y, w_prev), direct(w, y, w_prev))
    assert torch.equal(LOSSES.build(name, **params)(w, y, w_prev), direct(w, y, w_prev))


@pytest.mark.registry_cases(target=LOSSES)
def test_every_parameter_of_every_loss_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    name, param, value = registry_case
    with pytest.raises(ConfigError) as err:
        make_loss(name, where="network.loss_params", **{param: value})
    assert str(err.value).startswith(f"network.loss_params.{param}"), str(err.value)


@pytest.mark.parametrize("name", list(CASES))
def test_every_loss_rejects_an_unknown_key(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^loss.levle: Extra inputs are not permitted \(got 0.9\)"):
        make_loss(name, levle=0.9)


def test_an_unknown_loss_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^loss name='omega' is unknown; use one of \['calmar', 'cvar'"):
        make_loss("omega")
    with pytest.raises(ConfigError, match=r"^network.loss: unknown loss 'omega'; choose one of \['calmar', 'cvar'"):
        LOSSES.build("omega", where="network.loss")


# -- losses ---------------------------------------------------------------------------------------

def _portfolio(H=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(torch.randn(4, 5, generator=g, dtype=D), -1)
    _, y = _xy(H=H, seed=seed)
    return w, y, (y[:, 0] * w[:, None, :]).sum(-1)


def test_losses_equal_gradfolio_risk_on_portfolio_returns():
    w, y, r = _portfolio()
    rn = r.numpy()
    cases = {
        SharpeLoss(): -np.array([risk.sharpe_ratio(v, periods_per_year=1) for v in rn]),
        SharpeLoss(risk_free=1e-3, periods_per_year=252): -np.array([risk.sharpe_ratio(v, 1e-3) for v in rn]),
        SortinoLoss(): -np.array([risk.sortino_ratio(v, periods_per_year=1) for v in rn]),
        SortinoLoss(target=1e-3, periods_per_year=252): -np.array([risk.sortino_ratio(v, 1e-3) for v in rn]),
        CalmarLoss(): -np.array([risk.calmar_ratio(v, periods_per_year=1) for v in rn]),
        CalmarLoss(periods_per_year=252): -np.array([risk.calmar_ratio(v) for v in rn]),
        MaxDrawdownLoss(): np.array([risk.max_drawdown(v) for v in rn]),
        CVaRLoss(0.9): np.array([risk.cvar(v, 0.9) for v in rn]),
        MeanReturnLoss(): -rn.mean(-1),
        StdLoss(): rn.std(-1, ddof=1),
    }
    for loss, expected in cases.items():
        np.testing.assert_allclose(loss(w, y).numpy(), expected, rtol=1e-10, err_msg=repr(loss))
    # Sharpe by hand
    np.testing.assert_allclose(SharpeLoss()(w, y).numpy(), -rn.mean(-1) / rn.std(-1, ddof=1), rtol=1e-10)


def test_ratio_losses_are_finite_without_downside_drawdown_or_volatility():
    w = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=D)
    up = torch.tensor([0.01, 0.02, 0.005, 0.01, 0.015], dtype=D)  # never falls: no downside, no drawdown
    y = torch.stack([up, torch.full_like(up, 0.003)])[:, None, :, None].expand(2, 1, 5, 2)  # 2nd: constant
    r = y[:, 0, :, 0]
    eps = 1e-4
    cagr = torch.expm1(torch.log1p(r).mean(-1))
    torch.testing.assert_close(SortinoLoss(eps=eps)(w, y), -r.mean(-1) / eps)
    torch.testing.assert_close(SortinoLoss(eps=eps, periods_per_year=4)(w, y), -2 * r.mean(-1) / eps)
    torch.testing.assert_close(CalmarLoss(eps=eps)(w, y), -cagr / eps)
    torch.testing.assert_close(SharpeLoss(eps=eps)(w, y)[1], -r[1].mean() / eps)
    for loss in (SortinoLoss(), CalmarLoss(), SharpeLoss()):
        wg = w.clone().requires_grad_(True)
        loss(wg, y, reduction="sum").backward()
        assert torch.isfinite(wg.grad).all(), repr(loss)


def test_losses_by_finite_differences():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 5, generator=g, dtype=D)
    w_prev = torch.softmax(torch.randn(3, 5, generator=g, dtype=D), -1).requires_grad_(True)
    _, y = _xy(B=3, H=12, seed=3)
    losses = [SharpeLoss(), SortinoLoss(), CalmarLoss(), MaxDrawdownLoss(), MaxDrawdownLoss(compounded=False),
              CVaRLoss(0.8), MeanReturnLoss(), StdLoss(), TurnoverLoss(0.5), SharpeLoss() + 0.1 * TurnoverLoss()]
    for loss in losses:
        wz = torch.softmax(z, -1).detach().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda w, wp, loss=loss: loss(w, y, w_prev=wp), (wz, w_prev)), repr(loss)


def test_losses_compose_pickle_and_reduce():
    w, y, _ = _portfolio(H=6)
    w_prev = torch.full((4, 5), 0.2, dtype=D)
    combo = SharpeLoss() + 0.1 * TurnoverLoss() - 2 * MeanReturnLoss() / 4 + 1.0
    expected = (SharpeLoss()(w, y) + 0.1 * (w - w_prev).abs().sum(-1) - 0.5 * MeanReturnLoss()(w, y) + 1.0)
    torch.testing.assert_close(combo(w, y, w_prev=w_prev), expected)
    torch.testing.assert_close(combo(w, y, w_prev=w_prev, reduction="mean"), expected.mean())
    torch.testing.assert_close(combo(w, y, w_prev=w_prev, reduction="sum"), expected.sum())
    torch.testing.assert_close((-SharpeLoss())(w, y), -SharpeLoss()(w, y))
    again = pickle.loads(pickle.dumps(combo))
    torch.testing.assert_close(again(w, y, w_prev=w_prev), expected)
    with pytest.raises(ConfigError, match="w_prev"):
        combo(w, y)
    with pytest.raises(DataError, match="expected"):
        SharpeLoss()(w, y[:, 0])


def test_losses_validate_horizon_and_arguments():
    w, y, _ = _portfolio(H=1)
    for loss in (SharpeLoss(), StdLoss(), MeanReturnLoss() + 0.5 * StdLoss()):
        with pytest.raises(ConfigError, match="horizon 1 .*horizon >= 2"):
            loss(w, y)
    assert torch.isfinite(SortinoLoss()(w, y)).all() and torch.isfinite(CalmarLoss()(w, y)).all()
    bad = [(CVaRLoss, {"level": 0.0}, "level"), (CVaRLoss, {"level": 1.5}, "level"),
           (TurnoverLoss, {"cost": -1e-3}, "cost"), (TurnoverLoss, {"cost": math.nan}, "cost"),
           (SharpeLoss, {"eps": 0.0}, "eps"), (SortinoLoss, {"periods_per_year": -252}, "periods_per_year"),
           (CalmarLoss, {"eps": -1.0}, "eps"), (StdLoss, {"periods_per_year": 0}, "periods_per_year")]
    for cls, params, named in bad:
        with pytest.raises(ConfigError, match=f"{cls.__name__}: {named}="):
            cls(**params)
    with pytest.raises(ConfigError, match="level"):
        make_loss("cvar", level=95)


def _one_asset(returns: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``(1, 1)`` fully in one asset and targets ``(1, 1, H, 1)`` with these returns."""
    return torch.ones(1, 1, dtype=D), torch.tensor(returns, dtype=D).reshape(1, 1, -1, 1)


def test_max_drawdown_loss_follows_compounded() -> None:
    # +50%, -40%, -50%: wealth 1.5, 0.9, 0.45 (drawdown 1 - 0.45/1.5 = 0.7); arithmetic wealth
    # 1 + cumsum = 1.5, 1.1, 0.6 (drawdown 1.5 - 0.6 = 0.9, skfolio's arithmetic definition)
    w, y = _one_asset([0.5, -0.4, -0.5])
    torch.testing.assert_close(MaxDrawdownLoss(True)(w, y), torch.tensor([0.7], dtype=D), rtol=1e-14, atol=0)
    torch.testing.assert_close(MaxDrawdownLoss(False)(w, y), torch.tensor([0.9], dtype=D), rtol=1e-14, atol=0)


def test_std_loss_annualizes_with_periods_per_year() -> None:
    w, y = _one_asset([0.01, -0.02, 0.03, 0.0])
    sample_std = torch.tensor([0.01, -0.02, 0.03, 0.0], dtype=D).std()  # ddof = 1
    for ppy in (1.0, 12.0, 252.0):
        torch.testing.assert_close(StdLoss(ppy)(w, y), sample_std.reshape(1) * ppy**0.5, rtol=1e-14, atol=0)


def test_sortino_loss_gradient_is_finite_without_shortfall() -> None:
    # no return below the target (all zero, or all non-negative): the downside deviation is 0 and
    # the loss is -mean(r) / eps * sqrt(ppy), whose gradient in w is -mean_t(R_t) / eps * sqrt(ppy) / B
    eps, ppy = 5e-4, 12.0
    for R in (torch.zeros(2, 1, 4, 3, dtype=D), torch.tensor([0.0, 0.01, 0.03], dtype=D).expand(2, 1, 4, 3)):
        w = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]], dtype=D, requires_grad=True)
        loss = SortinoLoss(0.0, ppy, eps)(w, R, reduction="mean")
        (grad,) = torch.autograd.grad(loss, w)
        expected = -R[:, 0].mean(1) / eps * ppy**0.5 / 2
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, expected, rtol=1e-12, atol=0)


def test_model_loss_is_the_loss_of_the_models_weights() -> None:
    """The Trainer's one call: ``loss.model_loss(model, X, y, w_prev)`` equals ``loss(model(X), y, w_prev)``."""
    X, y = _xy(B=5)
    net = make_network("dense", 5, 12, hidden=(4,), seed=2).double()
    loss = SharpeLoss(eps=1e-3) + 0.3 * TurnoverLoss(2e-3)
    w_prev = torch.softmax(torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=D), -1)
    for reduction in ("none", "mean", "sum"):
        expected = loss(net(X), y, w_prev=w_prev, reduction=reduction)
        assert torch.equal(loss.model_loss(net, X, y, w_prev=w_prev, reduction=reduction), expected)
