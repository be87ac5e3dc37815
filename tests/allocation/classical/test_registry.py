"""PORTFOLIOS: every concrete classical portfolio by its name, parameters validated by its typed signature."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from gradfolio.allocation import classical
from gradfolio.allocation.classical import PORTFOLIOS
from gradfolio.errors import ConfigError

# a non-default value for (nearly) every parameter of every portfolio
PARAMS: dict[str, dict[str, Any]] = {
    "equal_weight": {"returns_kind": "log"},
    "inverse_volatility": {"covariance": "ledoit_wolf", "returns_kind": "log"},
    "random": {"seed": 5},
    "eigen": {"k": 0, "covariance": "exponential", "min_net": 1e-5},
    "risk_parity": {"budgets": [1.0, 2.0, 1.0, 3.0, 1.0, 1.0], "covariance": "ledoit_wolf", "max_iter": 80,
                    "constraints": {"upper": 0.3}},
    "hrp": {"linkage": "ward", "distance": "pearson_absolute", "ordering": "optimal", "covariance": "exponential",
            "constraints": {"upper": [0.3, 0.25, 0.4, 0.35, 0.3, 0.45]}},
    "min_variance": {"covariance": "ledoit_wolf", "constraints": {"long_only": True, "max_weight": 0.35}},
    "max_sharpe": {"covariance": "exponential", "risk_free": 1e-5,
                   "constraints": {"long_only": True, "groups": [{"assets": [0, 1], "upper": 0.4}]}},
    "min_cvar": {"beta": 0.9, "constraints": {"long_only": True, "upper": 0.4}},
    "min_drawdown": {"returns_channel": 1, "constraints": {"lower": -0.1, "leverage": 1.4}},
    "max_calmar": {"risk_free": 1e-5, "mean": "james_stein", "constraints": {"long_only": True, "upper": 0.5}},
    "max_sortino": {"target": None, "risk_free": 1e-5, "mean": "james_stein", "mean_params": {"vol_weighted_target": True},
                    "constraints": {"long_only": True, "lower": 0.05}},
    "inverse_variance": {"covariance": "oas"},
    "max_diversification": {"covariance": "gerber", "returns_kind": "log"},
    "herc": {"n_clusters": 2, "linkage": "average", "distance": "pearson_squared", "covariance": "ewma"},
    "factor_mean_variance": {"n_factors": 2, "risk_aversion": 30.0, "mean": "james_stein"},
    "cardinality": {"max_assets": 3, "min_weight": 0.05, "max_weight": 0.8, "objective": "cvar", "beta": 0.9,
                    "covariance": "oas", "time_limit": 20.0},
    "min_cdar": {"beta": 0.8},
    "min_evar": {"beta": 0.9, "returns_kind": "log", "constraints": {"long_only": True, "upper": 0.45}},
    "max_omega": {"threshold": -1e-4, "mean": "james_stein"},
    "min_mad": {"returns_kind": "log"},
    "min_worst_realization": {"returns_channel": 1},
    "min_semi_variance": {"returns_kind": "log"},
    "nco": {"n_clusters": 3, "linkage": "complete", "distance": "pearson_absolute", "covariance": "oas"},
}


def _concrete_portfolios() -> list[type[classical.ClassicalPortfolio]]:
    """Every concrete ClassicalPortfolio exported by gradfolio.allocation.classical, in export order."""
    return [
        obj for obj in (getattr(classical, attr) for attr in classical.__all__)
        if inspect.isclass(obj) and issubclass(obj, classical.ClassicalPortfolio) and not inspect.isabstract(obj)
    ]


def test_every_concrete_portfolio_is_registered_under_its_name() -> None:
    classes = _concrete_portfolios()
    assert PORTFOLIOS.names() == [cls.name for cls in classes]
    assert all(PORTFOLIOS.get(cls.name) is cls for cls in classes)
    assert set(PARAMS) == set(PORTFOLIOS.names())


@pytest.mark.parametrize("name", list(PARAMS))
def test_build_by_name_equals_direct_construction(windows: Any, name: str) -> None:
    X, _ = windows(80, ends=(2000, 6000))
    X = torch.cat([X[..., :6], X[..., :6]], dim=1)  # channel 1 = channel 0 (for returns_channel=1)
    params = PARAMS[name]
    built = PORTFOLIOS.build(name, where=f"benchmark_params.{name}", **params)
    direct = PORTFOLIOS.get(name)(**params)
    assert type(built) is type(direct) and built.name == name
    w = built(X)
    assert torch.equal(w, direct(X))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, dtype=w.dtype))


@pytest.mark.registry_cases(target=PORTFOLIOS)
def test_every_parameter_of_every_portfolio_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    name, param, value = registry_case
    with pytest.raises(ConfigError) as err:
        PORTFOLIOS.build(name, where=f"benchmark_params.{name}", **{param: value})
    assert str(err.value).startswith(f"benchmark_params.{name}.{param}"), str(err.value)


@pytest.mark.parametrize("name", list(PARAMS))
def test_every_portfolio_rejects_an_unknown_key(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^benchmark_params.{name}.risk_fre: Extra inputs are not permitted"):
        PORTFOLIOS.build(name, where=f"benchmark_params.{name}", risk_fre=0.01)
