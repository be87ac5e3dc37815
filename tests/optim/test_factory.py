"""OPTIMIZERS: adam and ana by name, options validated by the typed signature, builds equal to the classes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.optim import ANA, OPTIMIZERS, make_optimizer


def _steps(opt_factory: Any, n: int = 3) -> list[torch.Tensor]:
    """Parameters after ``n`` steps on a fixed quadratic."""
    w = torch.tensor([1.5, -0.5, 2.0], requires_grad=True)
    opt = opt_factory([w])
    target = torch.tensor([0.3, 0.1, -0.2])
    out = []
    for _ in range(n):
        opt.zero_grad()
        ((w - target) ** 2 * torch.tensor([1.0, 3.0, 0.5])).sum().backward()
        opt.step()
        out.append(w.detach().clone())
    return out


def test_the_registered_names() -> None:
    assert OPTIMIZERS.names() == ["adam", "ana"]


@pytest.mark.parametrize(("name", "options", "direct"), [
    ("adam", {}, lambda p: torch.optim.Adam(p, lr=0.05)),
    ("ana", {}, lambda p: ANA(p, lr=0.05)),
    ("ana", {"betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.01, "restart": "none"},
     lambda p: ANA(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, restart="none")),
])
def test_build_by_name_equals_direct_construction(name: str, options: dict[str, Any], direct: Any) -> None:
    by_name = _steps(lambda p: make_optimizer(name, p, 0.05, **options))
    reference = _steps(direct)
    assert all(torch.equal(a, b) for a, b in zip(by_name, reference, strict=True))
    assert not torch.equal(by_name[0], by_name[-1])
    registry_built = _steps(lambda p: OPTIMIZERS.build(name, context={"params": p}, lr=0.05, **options))
    assert all(torch.equal(a, b) for a, b in zip(registry_built, reference, strict=True))


@pytest.mark.registry_cases(target=OPTIMIZERS, skip=("params",))
def test_every_option_of_every_optimizer_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    name, param, value = registry_case
    options = {"lr": 0.01, param: value}
    with pytest.raises(ConfigError) as err:
        make_optimizer(name, [torch.zeros(2, requires_grad=True)], where="agent.optimizer", **options)
    assert str(err.value).startswith(f"agent.optimizer.{param}"), str(err.value)


@pytest.mark.parametrize("name", ["adam", "ana"])
def test_every_optimizer_rejects_an_unknown_key(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^agent.optimizer.momentum: "):
        make_optimizer(name, [torch.zeros(2, requires_grad=True)], 0.01, where="agent.optimizer", momentum=0.9)
    with pytest.raises(ConfigError, match=r"^optimizer.momentum: Extra inputs are not permitted"):
        OPTIMIZERS.build(name, context={"params": [torch.zeros(2, requires_grad=True)]}, momentum=0.9)
