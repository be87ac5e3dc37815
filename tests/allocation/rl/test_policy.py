"""Saved agents: every SB3 algorithm round-trips through a JSON + tensors bundle and decides as in the backtest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("stable_baselines3")

from gradfolio.allocation.rl import PortfolioEnv  # noqa: E402
from gradfolio.allocation.rl.agent import SB3Strategy  # noqa: E402
from gradfolio.allocation.rl.policy import AgentPolicy, save_agent  # noqa: E402
from gradfolio.allocation.rl.training import train_agent  # noqa: E402
from gradfolio.allocation.strategy import load_strategy  # noqa: E402
from gradfolio.allocation.strategy.bundle import _sha256  # noqa: E402
from gradfolio.backtest import walk_forward  # noqa: E402
from gradfolio.errors import ConfigError  # noqa: E402

COST = [0.002, 0.0005, 0.001, 0.003]

PARAMS = {
    "ppo": {"n_steps": 8, "batch_size": 32, "policy_kwargs": {"net_arch": {"pi": [7, 5], "vf": [6]}}},
    "a2c": {"n_steps": 4, "policy_kwargs": {"net_arch": [9], "activation_fn": torch.nn.ReLU}},
    "sac": {"learning_starts": 8, "batch_size": 16, "policy_kwargs": {"net_arch": [12, 6]}},
    "td3": {"learning_starts": 8, "batch_size": 16, "policy_kwargs": {"net_arch": [10]}},
    "ddpg": {"learning_starts": 8, "batch_size": 16, "policy_kwargs": {"net_arch": [8, 8]}},
}


def _walk(agent: object, planted: pd.DataFrame) -> object:
    return walk_forward({"a": agent}, planted, 10, gap=1, rebalance_every=3, cost=COST, dtype=torch.float64,
                        start=planted.index[200], kind="log")


@pytest.mark.parametrize("algo", sorted(PARAMS))
def test_every_algorithm_round_trips_bit_for_bit(algo: str, planted: pd.DataFrame, tmp_path: Path) -> None:
    env = PortfolioEnv(planted.iloc[:200], 10, gap=1, rebalance_every=3, n_envs=4, episode_length=6, cost=COST,
                       obs_scale=15.0, kind="log", allocator="sparsemax", seed=2)
    agent = train_agent(env, algo, 64, seed=2, action_scale=2.5, algo_params=PARAMS[algo])
    res = _walk(agent, planted)
    assert res.weights["a"].std().max() > 1e-4  # decisions that depend on the window and the holdings
    save_agent(tmp_path / "b", agent, algo=algo, assets=list(planted.columns), returns_kind="log", lookback=10, gap=1,
               label=f"rl_{algo}", data_fingerprint=planted)
    before = torch.random.get_rng_state()
    saved = load_strategy(tmp_path / "b")
    assert torch.equal(torch.random.get_rng_state(), before)  # rebuilding draws nothing from the global generator
    assert isinstance(saved.model, AgentPolicy) and saved.kind == "agent" and saved.name == algo
    assert all(p.dtype == torch.float32 for p in saved.model.parameters())  # the policy as trained
    # every decision of the walk-forward, from the bundle, bit for bit (log returns, gap 1, k = 3)
    for p in (0, len(res.turnover) // 2, len(res.turnover) - 1):
        date = res.weights["a"].index[p]
        got = saved.predict(planted.loc[:date], prices=False, holdings=res.weights_before["a"].iloc[p])
        np.testing.assert_array_equal(got.to_numpy(), res.weights["a"].iloc[p].to_numpy())
    # and the bundle as a strategy walked forward gives the same backtest
    again = _walk(saved.model, planted)
    np.testing.assert_array_equal(again.returns["a"].to_numpy(), res.returns["a"].to_numpy())
    spec = json.loads((tmp_path / "b" / "strategy.json").read_text())
    assert spec["params"]["allocator"] == "sparsemax" and spec["params"]["action_scale"] == 2.5
    assert spec["params"]["obs_scale"] == 15.0 and spec["returns_kind"] == "log" and spec["gap"] == 1
    kwargs = spec["params"]["policy"]["kwargs"]
    assert kwargs["net_arch"] == json.loads(json.dumps(PARAMS[algo]["policy_kwargs"]["net_arch"]))
    if algo == "a2c":
        assert kwargs["activation_fn"] == "torch.nn:ReLU" and kwargs["optimizer_class"] == "torch.optim:RMSprop"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    market = pd.DataFrame(rng.normal(0.0005, 0.015, (120, 3)), index=pd.bdate_range("2020-01-01", periods=120),
                          columns=["A0", "A1", "A2"])
    env = PortfolioEnv(market, 5, n_envs=4, episode_length=5, seed=0)
    agent = train_agent(env, "a2c", 40, seed=0, algo_params={"n_steps": 2})
    return save_agent(tmp_path_factory.mktemp("agent") / "b", agent, algo="a2c", assets=["A0", "A1", "A2"],
                      returns_kind="simple", lookback=5)


def _edit(src: Path, dst: Path, change) -> Path:  # type: ignore[no-untyped-def]
    import shutil

    shutil.copytree(src, dst)
    spec = json.loads((dst / "strategy.json").read_text())
    change(spec)
    (dst / "strategy.json").write_text(json.dumps(spec))
    return dst


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s["params"]["policy"]["kwargs"].update(activation_fn="os:system"), r"activation_fn='os:system' must name a class of torch.nn"),
        (lambda s: s["params"]["policy"]["kwargs"].update(activation_fn="torch.nn:Linear"), r"activation_fn='torch.nn:Linear' is not an allowed class"),
        (lambda s: s["params"]["policy"]["kwargs"].update(optimizer_class="torch.nn:ReLU"), r"optimizer_class='torch.nn:ReLU' must name a class of torch.optim"),
        (lambda s: s["params"]["policy"]["kwargs"].update(features_extractor_class="stable_baselines3.common.torch_layers:MlpExtractor"), r"MlpExtractor' is not an allowed class \(BaseFeaturesExtractor\)"),
        (lambda s: s["params"]["policy"].update({"class": "MultiInputPolicy"}), r"field 'params.policy.class'"),
        (lambda s: s["params"].update(obs_scale=-1.0), r"field 'params.obs_scale'"),
        (lambda s: s["params"].update(extra=1), r"field 'params.extra'"),
        (lambda s: s["params"]["policy"].update(observation_size=21), r"do not fit lookback 5 and 3 assets"),
        (lambda s: s.update(name="dqn"), r"unknown agent 'dqn'"),
        (lambda s: s["params"]["policy"]["kwargs"]["net_arch"].update(pi=[64, 65]), r"the weights do not fit"),
        (lambda s: s["params"].update(allocator="nosuch"), r"allocator 'nosuch'"),
    ],
)
def test_edited_bundles_are_one_config_error(bundle: Path, tmp_path: Path, change, match: str) -> None:  # type: ignore[no-untyped-def]
    edited = _edit(bundle, tmp_path / "e", change)
    with pytest.raises(ConfigError, match=match) as info:
        load_strategy(edited)
    assert str(edited / "strategy.json") in str(info.value) or "weights do not fit" in str(info.value)


def test_a_pickled_weights_file_is_refused_unread(bundle: Path, tmp_path: Path) -> None:
    import os
    import pickle
    import shutil

    dst = tmp_path / "p"
    shutil.copytree(bundle, dst)

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"state_dict": Boom()}, dst / "weights.pt", pickle_module=pickle)
    spec = json.loads((dst / "strategy.json").read_text())
    spec["weights_sha256"] = _sha256(dst / "weights.pt")
    (dst / "strategy.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError):
        load_strategy(dst)
    assert not (tmp_path / "ran").exists()


def test_what_cannot_be_saved_is_refused(planted: pd.DataFrame, tmp_path: Path) -> None:
    from gradfolio.allocation.rl import ActionMap

    env = PortfolioEnv(planted.iloc[:100], 5, n_envs=4, episode_length=5, seed=0)
    agent = train_agent(env, "a2c", 40, seed=0, algo_params={"n_steps": 2})
    other = SB3Strategy(agent.model, ActionMap(4, "tanh", constraints={"long_only": True}), action_scale=5.0)
    with pytest.raises(ConfigError, match="constraints .* other than its allocator's"):
        save_agent(tmp_path / "x", other, algo="a2c", assets=list(planted.columns), returns_kind="simple", lookback=5)
    module = SB3Strategy(agent.model, ActionMap(4, torch.nn.Softmax(dim=-1)), action_scale=5.0)
    with pytest.raises(ConfigError, match="allocator is a module"):
        save_agent(tmp_path / "x", module, algo="a2c", assets=list(planted.columns), returns_kind="simple", lookback=5)
    with pytest.raises(ConfigError, match="unknown agent 'dqn'"):
        save_agent(tmp_path / "x", agent, algo="dqn", assets=list(planted.columns), returns_kind="simple", lookback=5)
    with pytest.raises(ConfigError, match="spaces"):
        save_agent(tmp_path / "x", agent, algo="a2c", assets=list(planted.columns), returns_kind="simple", lookback=6)
    assert not (tmp_path / "x").exists()


def test_a_non_activation_from_torch_nn_is_refused_at_save(planted: pd.DataFrame, tmp_path: Path) -> None:
    env = PortfolioEnv(planted.iloc[:100], 5, n_envs=4, episode_length=5, seed=0)
    agent = train_agent(env, "ppo", 32, seed=0, algo_params={"n_steps": 8, "batch_size": 32,
                                                            "policy_kwargs": {"activation_fn": torch.nn.Identity}})
    with pytest.raises(ConfigError, match=r"activation_fn='torch.nn:Identity' is not an allowed class"):
        save_agent(tmp_path / "x", agent, algo="ppo", assets=list(planted.columns), returns_kind="simple", lookback=5)
    assert not (tmp_path / "x").exists()
