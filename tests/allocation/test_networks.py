"""NETWORKS: names, parameters validated by each class's typed signature, nested allocator parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gradfolio.allocation import (
    NETWORKS,
    ConvexAllocator,
    ConvNet,
    DenseNet,
    MarkowitzNet,
    PredictThenOptimize,
    RecurrentNet,
    SharpeLoss,
    SparsemaxAllocator,
    make_loss,
    make_network,
)
from gradfolio.allocation.rl.eiie import EIIE
from gradfolio.errors import ConfigError, DataError, SolverError
from gradfolio.solvers import PortfolioConstraints, QPSettings

torch.set_num_threads(1)


def _xy(B=4, L=12, H=6, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.01 * torch.randn(B, 1, L, N, generator=g, dtype=D), 0.01 * torch.randn(B, 1, H, N, generator=g, dtype=D)


def _gradcheck_params(module, f):
    """Finite-difference check of ``f(module with parameters ps)`` with respect to every parameter."""
    names = [n for n, _ in module.named_parameters()]

    def call(*ps):
        return f(lambda x: torch.func.functional_call(module, dict(zip(names, ps)), (x,)))

    return torch.autograd.gradcheck(call, tuple(p.detach().clone().requires_grad_(True) for p in module.parameters()))


D = torch.float64
SHAPE = {"n_assets": 5, "lookback": 12, "n_channels": 2}
SMALL = {"dense": {"hidden": (6, 3)}, "maxout": {"hidden": (4,), "pieces": 3},
         "conv": {"channels": (3,), "kernel_size": 3},
         "lstm": {"hidden": 4, "collapse": "last"}, "rnn": {"hidden": 4, "num_layers": 2},
         "markowitz": {"hidden": 3, "gamma": 2.0, "alpha": 0.3},
         "pto_lstm": {"forecaster_params": {"hidden": 3}, "optimizer": "convex", "gamma": 2.0},
         "pto_ridge": {"forecaster_params": {"alpha": 0.2}, "optimizer": "mean_variance", "gamma": 3.0},
         "eiie": {"inputs": "prices", "features": 3, "hidden": 5, "kernel_size": 2}}


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
        "pto_lstm": lambda: PredictThenOptimize(n, L, C, forecaster="lstm", forecaster_params={"hidden": 3},
                                                optimizer="convex", gamma=2.0),
        "pto_ridge": lambda: PredictThenOptimize(n, L, C, forecaster="ridge", forecaster_params={"alpha": 0.2},
                                                 optimizer="mean_variance", gamma=3.0),
        "eiie": lambda: EIIE(n, L, C, inputs="prices", features=3, hidden=5, kernel_size=2),
    }[name]()


def test_the_registered_names() -> None:
    assert NETWORKS.names() == ["dense", "maxout", "conv", "lstm", "rnn", "markowitz", "eiie", "pto_lstm", "pto_ridge"]


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
    # a strategy that sees what it holds (EIIE) also takes the weights before and after the last trade
    held: tuple = ()
    if getattr(by_name, "needs_holdings", False):  # EIIE on prices (positive)
        x, held = x.exp(), (None, torch.full((x.shape[0], x.shape[-1]), 0.1, dtype=x.dtype))
    assert torch.equal(by_name.double()(x, *held), direct.double()(x, *held))
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


# -- networks -------------------------------------------------------------------------------------

SIZES = {"lstm": {"hidden": 8}, "rnn": {"hidden": 8}, "conv": {"channels": (4,)}, "dense": {"hidden": (8,)},
         "maxout": {"hidden": (8,)}}


@pytest.mark.parametrize("name", ["dense", "maxout", "conv", "lstm", "rnn"])
@pytest.mark.parametrize("allocator", ["softmax", "tanh", "sparsemax"])
def test_networks_shapes_and_constraints(name, allocator):
    net = make_network(name, n_assets=5, lookback=12, allocator=allocator, seed=0, **SIZES[name])
    x, _ = _xy()
    w = net.double()(x)
    assert w.shape == (4, 5)
    gross = w.abs().sum(-1) if allocator == "tanh" else w.sum(-1)
    torch.testing.assert_close(gross, torch.ones(4, dtype=D))
    with pytest.raises(DataError, match="expected"):
        net(x[:, 0])


def test_allocator_params_by_name():
    net = make_network("dense", 5, 12, hidden=(8,), allocator="sparsemax", allocator_params={"max_weight": 0.3},
                       seed=0).double()
    x, _ = _xy()
    w = net(x).detach()
    assert float(w.max()) <= 0.3 + 1e-12
    torch.testing.assert_close(w, SparsemaxAllocator(0.3)(net.scores(x)))
    with pytest.raises(ConfigError, match="max_weight"):
        make_network("dense", 5, 12, allocator="sparsemax", allocator_params={"max_weight": 0.0})


@pytest.mark.parametrize("name", ["dense", "conv", "lstm"])
def test_convex_allocator_in_any_network_uses_the_window_covariance(name):
    params = {"constraints": PortfolioConstraints(long_only=True), "alpha": 0.5, "gamma": 2.0}
    net = make_network(name, 5, 12, allocator="convex", allocator_params=params, seed=0, **SIZES[name]).double()
    x, y = _xy()
    w = net(x)
    assert (w >= -1e-8).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=D))
    S = torch.stack([torch.cov(x[b, 0].T) for b in range(4)])  # sample covariance (ddof 1) of each window
    reference = ConvexAllocator(5, PortfolioConstraints(long_only=True), gamma=2.0, alpha=0.5)
    torch.testing.assert_close(w, reference(net.scores(x), cov=S), atol=1e-7, rtol=0)
    SharpeLoss()(w, y, reduction="mean").backward()
    first = next(net.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    with pytest.raises(DataError, match="n_assets=5"):
        net(torch.randn(2, 1, 12, 4, dtype=D))


def test_markowitz_net_matches_the_convex_allocator_on_the_sample_covariance():
    net = make_network("markowitz", 5, 12, hidden=4, gamma=2.0, alpha=0.5, seed=0).double()
    x, y = _xy()
    w = net(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=D))
    # same problem with the explicit sample covariance S = cov(X_0) (ddof 1)
    S = torch.stack([torch.cov(x[b, 0].T) for b in range(4)])
    w_ref = net.allocator(net.scores(x), cov=S)
    torch.testing.assert_close(w, w_ref, atol=1e-7, rtol=0)
    SharpeLoss()(w, y, reduction="mean").backward()
    assert net.allocator.log_gamma.grad is not None and net.head.weight.grad.abs().sum() > 0
    for bad in ({"allocator": "softmax"}, {"allocator_params": {"alpha": 1.0}}):
        with pytest.raises(ConfigError, match="MarkowitzNet.*convex allocator"):
            MarkowitzNet(5, **bad)


@pytest.mark.parametrize(("name", "params", "named"), [
    ("dense", {"dropout": 1.5}, "dropout"),
    ("dense", {"hidden": (0,)}, "hidden"),
    ("maxout", {"pieces": 0}, "pieces"),
    ("conv", {"channels": (4, 0)}, "channels"),
    ("conv", {"kernel_size": 4}, "kernel_size"),
    ("lstm", {"hidden": 0}, "hidden"),
    ("lstm", {"dropout": -0.1}, "dropout"),
    ("rnn", {"num_layers": 0}, "num_layers"),
    ("lstm", {"collapse": "max"}, "^network.collapse"),
    ("dense", {"activation": "gelu"}, "activation"),
    ("dense", {"width": 3}, "width"),
    ("dense", {"seed": 1.5}, "seed"),
])
def test_make_network_bad_parameters_raise_config_error_naming_them(name, params, named):
    with pytest.raises(ConfigError, match=named):
        make_network(name, 5, 12, **params)


def test_unknown_names_raise_config_error():
    with pytest.raises(ConfigError, match="unknown"):
        make_network("transformer", 5, 12)
    with pytest.raises(ConfigError, match="unknown"):
        make_loss("omega")


def test_make_network_seed_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = (make_network("lstm", 5, 12, hidden=4, seed=7) for _ in range(2))
    c = make_network("lstm", 5, 12, hidden=4, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    for (k, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    make_network("lstm", 5, 12, hidden=4)  # seed=None draws from the global RNG
    assert not torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ["dense", "maxout", "conv", "lstm"])
def test_network_gradients_by_finite_differences(name):
    size = {"dense": {"hidden": (3,)}, "maxout": {"hidden": (3,), "pieces": 2}, "conv": {"channels": (2,),
            "kernel_size": 3}, "lstm": {"hidden": 3}}[name]
    net = make_network(name, 4, 6, seed=0, **size).double()
    x, y = _xy(B=3, L=6, N=4)
    assert _gradcheck_params(net, lambda f: f(x))  # weights (B, N)
    assert _gradcheck_params(net, lambda f: SharpeLoss()(f(x), y, reduction="mean"))
