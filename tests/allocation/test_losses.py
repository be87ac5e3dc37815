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
