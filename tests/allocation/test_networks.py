"""NETWORKS: names, parameters validated by each class's typed signature, nested allocator parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gradfolio.allocation import NETWORKS, ConvNet, DenseNet, MarkowitzNet, RecurrentNet, make_network
from gradfolio.allocation.convex import ConvexAllocator
from gradfolio.errors import ConfigError, SolverError
from gradfolio.solvers import PortfolioConstraints, QPSettings

D = torch.float64
SHAPE = {"n_assets": 5, "lookback": 12, "n_channels": 2}
SMALL = {"dense": {"hidden": (6, 3)}, "maxout": {"hidden": (4,), "pieces": 3},
         "conv": {"channels": (3,), "kernel_size": 3},
         "lstm": {"hidden": 4, "collapse": "last"}, "rnn": {"hidden": 4, "num_layers": 2},
         "markowitz": {"hidden": 3, "gamma": 2.0, "alpha": 0.3}}


def _x(B: int = 3, seed: int = 1) -> torch.Tensor:
    return 0.02 * torch.randn(B, 2, 12, 5, generator=torch.Generator().manual_seed(seed), dtype=D)


def _direct(name: str) -> torch.nn.Module:
    """The same network built without the registry."""
    n, L, C = SHAPE["n_assets"], SHAPE["lookback"], SHAPE["n_channels"]
    return {
        "dense": lambda: DenseNet(n, L, C, hidden=(6, 3)),
        "maxout": lambda: DenseNet(n, L, C, hidden=(4,), activation="maxout", pieces=3),
        "conv": lambda: ConvNet(L, C, channels=(3,), kernel_size=3, n_assets=n),
        "lstm": lambda: RecurrentNet(C, hidden=4, collapse="last", n_assets=n),
        "rnn": lambda: RecurrentNet(C, hidden=4, cell="rnn", num_layers=2, n_assets=n),
        "markowitz": lambda: MarkowitzNet(n, gamma=2.0, alpha=0.3, n_channels=C, hidden=3),
    }[name]()


def test_the_registered_names() -> None:
    assert NETWORKS.names() == ["dense", "maxout", "conv", "lstm", "rnn", "markowitz"]


@pytest.mark.parametrize("name", NETWORKS.names())
def test_build_by_name_equals_direct_construction(name: str) -> None:
    by_name = make_network(name, **SHAPE, seed=11, **SMALL[name])
    torch.manual_seed(11)
    direct = _direct(name)
    assert type(by_name) is type(direct)
    assert by_name.state_dict().keys() == direct.state_dict().keys()
    for key, value in by_name.state_dict().items():
        assert torch.equal(value, direct.state_dict()[key]), key
    x = _x()
    assert torch.equal(by_name.double()(x), direct.double()(x))
    registry_built = NETWORKS.build(name, context=SHAPE, **SMALL[name])  # seeds aside, the same architecture
    assert str(registry_built) == str(direct.float())


def test_defaults_of_maxout_and_rnn_and_the_context_only_where_taken() -> None:
    maxout = make_network("maxout", **SHAPE, hidden=(4,), seed=0)
    assert type(maxout.body[2]).__name__ == "Maxout"
    assert make_network("rnn", **SHAPE, hidden=4, seed=0).rnn.rnn.__class__ is torch.nn.RNN
    assert make_network("rnn", **SHAPE, hidden=4, cell="lstm", seed=0).rnn.rnn.__class__ is torch.nn.LSTM  # user wins
    lstm = make_network("lstm", 5, 40, hidden=4, seed=0)  # lookback 40 not taken: any window length works
    assert lstm(torch.randn(2, 1, 7, 5)).shape == (2, 5)


@pytest.mark.registry_cases(target=NETWORKS, skip=tuple(SHAPE))
def test_every_parameter_of_every_network_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    name, param, value = registry_case
    with pytest.raises(ConfigError) as err:
        make_network(name, **SHAPE, where="network.params", **{param: value})
    assert str(err.value).startswith(f"network.params.{param}"), str(err.value)


@pytest.mark.parametrize("name", NETWORKS.names())
def test_every_network_rejects_an_unknown_key(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^network.params.hiden: Extra inputs are not permitted \(got 8\)"):
        make_network(name, **SHAPE, where="network.params", hiden=8)


@pytest.mark.parametrize("name", ["dense", "maxout", "conv", "lstm", "rnn"])
@pytest.mark.parametrize(("allocator", "key"), [("softmax", "temperature"), ("sparsemax", "max_weight"),
                                                ("convex", "alpha")])
def test_allocator_params_are_validated_against_the_chosen_allocator(name: str, allocator: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^network.params.allocator_params.{key}: Input should be a valid number"):
        make_network(name, **SHAPE, where="network.params", allocator=allocator, allocator_params={key: "high"})
    with pytest.raises(ConfigError, match=r"^network.params.allocator_params.cap: Extra inputs are not permitted"):
        make_network(name, **SHAPE, where="network.params", allocator=allocator, allocator_params={"cap": 0.3})


def test_nested_qp_settings_from_a_config_reach_the_solver() -> None:
    """``allocator_params: {settings: {...}}`` (a YAML mapping) builds a real QPSettings, used by the solver."""
    params = {"constraints": {"long_only": True, "max_weight": 0.4}, "alpha": 0.2,
              "settings": {"active_set_iter": 0, "max_iter": 1, "compute_dtype": "float64"}}
    net = make_network("dense", **SHAPE, hidden=(6,), allocator="convex", allocator_params=params, seed=0).double()
    assert isinstance(net.allocator, ConvexAllocator)
    assert net.allocator.problem.settings == QPSettings(active_set_iter=0, max_iter=1, compute_dtype=torch.float64)
    assert net.allocator.problem.constraints == PortfolioConstraints(long_only=True, max_weight=0.4)
    with pytest.raises(SolverError, match="did not converge in 1 iterations"):
        net(_x())
    with pytest.raises(ConfigError) as err:
        make_network("dense", **SHAPE, where="network.params", allocator="convex",
                     allocator_params={"settings": {"max_iter": "ten"}})
    path = "network.params.allocator_params.settings.max_iter"
    assert str(err.value).startswith(f"{path}: Input should be a valid integer"), str(err.value)
    with pytest.raises(ConfigError, match=r"^network.params.allocator_params.settings.max_itr: Unexpected keyword"):
        make_network("lstm", **SHAPE, where="network.params", allocator="convex",
                     allocator_params={"settings": {"max_itr": 10}})


def test_markowitz_net_takes_qp_settings() -> None:
    box = {"long_only": True, "max_weight": 0.4}
    starved = {"active_set_iter": 0, "max_iter": 1}
    net = make_network("markowitz", **SHAPE, hidden=3, constraints=box, settings=starved, seed=0).double()
    assert net.allocator.problem.settings == QPSettings(active_set_iter=0, max_iter=1)
    with pytest.raises(SolverError, match="did not converge in 1 iterations"):
        net(_x())
    enough = {"active_set_iter": 0, "max_iter": 40}
    solved = make_network("markowitz", **SHAPE, hidden=3, constraints=box, settings=enough, seed=0)
    reference = make_network("markowitz", **SHAPE, hidden=3, constraints=box, seed=0)
    torch.testing.assert_close(solved.double()(_x()), reference.double()(_x()), atol=1e-7, rtol=0)
    direct = MarkowitzNet(5, settings=QPSettings(max_iter=7), constraints=PortfolioConstraints(long_only=True))
    assert direct.allocator.problem.settings.max_iter == 7 and direct.allocator.problem.constraints.long_only
    with pytest.raises(ConfigError, match=r"^network.settings.max_itr: Unexpected keyword argument"):
        make_network("markowitz", **SHAPE, settings={"max_itr": 3})
