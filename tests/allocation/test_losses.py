"""LOSSES: names, parameters validated by each class's typed signature, builds equal to the classes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gradfolio.allocation import LOSSES, make_loss
from gradfolio.allocation.losses import (
    CalmarLoss, CVaRLoss, MaxDrawdownLoss, MeanReturnLoss, SharpeLoss, SortinoLoss, StdLoss, TurnoverLoss,
)
from gradfolio.errors import ConfigError

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
    assert LOSSES.names() == list(CASES)


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
