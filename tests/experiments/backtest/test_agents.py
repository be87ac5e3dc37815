"""The `agents` section of a backtest config: SB3 agents trained before the test period, walked forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from typer.testing import CliRunner  # noqa: E402

from gradfolio.allocation.rl import PortfolioEnv  # noqa: E402
from gradfolio.allocation.strategy import load_strategy  # noqa: E402
from gradfolio.backtest import BacktestResult, walk_forward  # noqa: E402
from gradfolio.checkpoint import load_state  # noqa: E402
from gradfolio.cli import app  # noqa: E402
from gradfolio.costs import ProportionalCost  # noqa: E402
from gradfolio.data import load_prices  # noqa: E402
from gradfolio.errors import ConfigError  # noqa: E402
from gradfolio.experiments.backtest.agents import train_agents  # noqa: E402
from gradfolio.experiments.backtest.build import load_returns  # noqa: E402
from gradfolio.experiments.backtest.config import BacktestConfig, load_backtest_config  # noqa: E402
from gradfolio.experiments.backtest.run import run_backtest  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

SMALL = """
seed: 3
benchmarks: [equal_weight]
tracking: false
figures: false
data: {start: 2019-01-01, end: 2020-12-31, lookback: 20, horizon: 5, assets: [AAPL, JPM, KO, XOM]}
split: {val_start: 2020-01-01, test_start: 2020-06-01}
backtest: {rebalance_every: 5, cost_bps: 15}
network: {enabled: false}
stats: {enabled: false}
agents:
  - {algo: a2c, timesteps: 256, n_envs: 8, episode_length: 10, checkpoint_every: 128, algo_params: {n_steps: 4}}
  - {algo: ppo, label: rl_convex, timesteps: 128, n_envs: 8, episode_length: 5, allocator: convex,
     allocator_params: {constraints: {long_only: true, max_weight: 0.4}}, reward: differential_sharpe, eta: 0.05,
     obs_scale: 20.0, algo_params: {n_steps: 8, batch_size: 32}}
"""


def _config(tmp_path: Path, text: str = SMALL) -> BacktestConfig:
    path = tmp_path / "rl.yaml"
    path.write_text(text)
    return load_backtest_config(path)


def test_agents_are_trained_and_walked_forward(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder, result = run_backtest(config, tmp_path / "run")
    assert result.strategies == ["rl_a2c", "rl_convex", "equal_weight"]
    saved = BacktestResult.load(folder)
    assert saved.strategies == result.strategies
    for name in ("rl_a2c", "rl_convex"):
        assert result.turnover[name].iloc[0] == pytest.approx(1.0)  # bought in from cash
        costs = result.costs[name].sum()
        assert costs == pytest.approx(0.0015 * result.turnover[name].sum(), rel=1e-9)  # 15 bps, as the benchmarks
    w = result.weights["rl_convex"].to_numpy()
    assert w.max() <= 0.4 + 1e-6 and np.allclose(w.sum(1), 1.0, atol=1e-6)
    state = load_state(folder / "checkpoints" / "agents" / "rl_a2c" / "agent.pt")
    assert state["num_timesteps"] == 256
    assert (folder / "strategies" / "equal_weight").is_dir()
    # every agent has its bundle: JSON + tensors; predict with the holdings gives the last row bit for bit
    prices = load_prices("sp500")[["AAPL", "JPM", "KO", "XOM"]].loc["2019-01-01":"2020-12-31"]
    for name in ("rl_a2c", "rl_convex"):
        saved = load_strategy(folder, name)
        assert saved.kind == "agent" and saved.dtype == torch.float64 and saved.assets == ("AAPL", "JPM", "KO", "XOM")
        date = result.weights[name].index[-1]
        held = result.weights_before[name].iloc[-1]
        got = saved.predict(prices.loc[:date], prices=True, holdings=held)
        np.testing.assert_array_equal(got.to_numpy(), result.weights[name].iloc[-1].to_numpy())
        assert got.attrs["as_of"] == date
        # an earlier decision too (the policy is the one that made every row without refits)
        first = result.weights[name].index[3]
        again = saved.predict(prices.loc[:first], prices=True, holdings=result.weights_before[name].iloc[3])
        np.testing.assert_array_equal(again.to_numpy(), result.weights[name].iloc[3].to_numpy())
        with pytest.raises(ConfigError, match="give the current holdings"):
            saved.predict(prices.loc[:date], prices=True)
    spec = json.loads((folder / "strategies" / "rl_convex" / "strategy.json").read_text())
    assert spec["kind"] == "agent" and spec["name"] == "ppo" and spec["lookback"] == 20 and spec["dtype"] == "float64"
    params = spec["params"]
    assert params["allocator"] == "convex" and params["allocator_params"]["constraints"]["max_weight"] == 0.4
    assert params["obs_scale"] == 20.0 and params["action_scale"] == 5.0 and params["deterministic"] is True
    assert params["policy"]["class"] == "ActorCriticPolicy" and params["policy"]["observation_size"] == 20 * 4 + 4
    assert params["policy"]["kwargs"]["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    assert params["policy"]["kwargs"]["activation_fn"] == "torch.nn:Tanh"
    assert set(params["versions"]) == {"stable_baselines3", "gymnasium"}
    assert spec["constraints"]["max_weight"] == 0.4 and spec["cost_bps"] == 15.0
    # the weights file is a plain state dict of the policy's tensors (read with weights_only=True)
    state = load_state(folder / "strategies" / "rl_a2c" / "weights.pt")["state_dict"]
    assert all(k.startswith("policy.") for k in state) and "policy.action_net.weight" in state
    # the CLI answers "which allocation do I hold tomorrow" from the holdings
    csv = tmp_path / "held.csv"
    held = result.weights_before["rl_a2c"].iloc[-1]
    csv.write_text("ticker,weight\n" + "".join(f"{t},{float(v)!r}\n" for t, v in held.items()))
    date = result.weights["rl_a2c"].index[-1]
    out = CliRunner().invoke(app, ["predict", "--run", str(folder), "--data", "sp500", "--as-of", str(date.date()),
                                   "--strategy", "rl_a2c", "--holdings", str(csv), "--align", "--out",
                                   str(tmp_path / "today")])
    assert out.exit_code == 0, out.output
    written = json.loads((tmp_path / "today" / "predict.json").read_text())
    expected = result.weights["rl_a2c"].iloc[-1]
    assert written["weights"] == {t: float(v) for t, v in expected.items()}
    missing = CliRunner().invoke(app, ["predict", "--run", str(folder), "--data", "sp500", "--strategy", "rl_a2c",
                                       "--align"])
    assert missing.exit_code == 2 and "give the current holdings" in missing.output


def test_agent_env_is_the_runs_backtest(tmp_path: Path) -> None:
    """The agent trains on the returns up to the first test date, with the run's cost, and the
    walk-forward of the trained agent equals its episode in an environment over the test period."""
    config = _config(tmp_path)
    returns = load_returns(config)
    start = returns.index[returns.index.searchsorted(np.datetime64("2020-06-01"))]
    agents = train_agents(config.model_copy(update={"agents": config.agents[:1]}), returns, start, tmp_path / "ck", False)
    agent = agents["rl_a2c"]
    cost = ProportionalCost.from_bps(15)
    res = walk_forward({"a": agent}, returns, 20, rebalance_every=5, cost=cost, start=start, dtype=torch.float64)
    env = PortfolioEnv(returns, 20, rebalance_every=5, start=int(returns.index.get_loc(start)), cost=cost)
    env.reset()
    nets = []
    for _ in range(env.H):
        _, _, _, info = env.step(agent.scores(*env.observation()))
        nets.append(info["net"][0])
    np.testing.assert_allclose(torch.cat(nets).numpy(), res.returns["a"].to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("agents", "match"),
    [
        ("[{algo: dqn}]", r"agents\[0\].algo: unknown agent 'dqn'; choose one of \['a2c', 'ddpg', 'ppo', 'sac', 'td3'\]"),
        ("[{algo: ppo}, {algo: ppo}]", r"the labels \['rl_ppo'\] repeat"),
        ("[{algo: ppo, allocator: softmax, allocator_params: {temperature: -1, nope: 2}}]", r"agents\[0\].allocator_params"),
        ("[{algo: ppo, allocator: nosuch}]", r"agents\[0\].allocator"),
        ("[{algo: ppo, label: equal_weight}]", r"agent label \['equal_weight'\]"),
    ],
)
def test_bad_agent_sections_fail_before_training(tmp_path: Path, agents: str, match: str) -> None:
    text = SMALL[: SMALL.index("agents:")] + f"agents: {agents}\n"
    with pytest.raises(ConfigError, match=match):
        run_backtest(_config(tmp_path, text), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_example_parses() -> None:
    config = load_backtest_config(EXAMPLES / "backtest_rl.yaml")
    assert [a.algo for a in config.agents] == ["ppo", "ppo"] and config.agents[1].allocator == "convex"
