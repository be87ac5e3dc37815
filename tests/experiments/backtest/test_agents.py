"""The `agents` section of a backtest config: SB3 agents trained before the test period, walked forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
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
from gradfolio.errors import ConfigError, DataError  # noqa: E402
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


REFIT = SMALL.replace("backtest: {rebalance_every: 5, cost_bps: 15}",
                      "backtest: {rebalance_every: 5, cost_bps: 15, retrain_every: 30, retrain_window: rolling, "
                      "retrain_size: 90}")


def test_agent_refits_run_at_the_schedules_dates_on_past_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's refit hook is called where a batched strategy's is, with the same rows (the past of the refit
    date), trains on an environment over exactly those rows, continues from the agent and swaps its policy in."""
    import gradfolio.experiments.backtest.agents as agents_mod
    from gradfolio.backtest import RetrainSchedule

    config = _config(tmp_path, REFIT)
    spec = config.agents[0].model_copy(update={"retrain_timesteps": 64})
    config = config.model_copy(update={"agents": [spec]})
    returns = load_returns(config)
    start = returns.index[returns.index.searchsorted(np.datetime64("2020-06-01"))]
    agents = train_agents(config, returns, start, tmp_path / "ck", False)
    agent = agents["rl_a2c"]
    models = [agent.model]
    calls: list[tuple[int, int, object, Path]] = []
    real = agents_mod.train_one

    def spy(config, spec, env, seed, timesteps, checkpoint, resume, init=None):  # type: ignore[no-untyped-def]
        calls.append((env.T, timesteps, init, checkpoint))
        out = real(config, spec, env, seed, timesteps, checkpoint, resume, init)
        models.append(out.model)
        return out

    monkeypatch.setattr(agents_mod, "train_one", spy)
    hook = agents_mod.agent_hooks(config, agents, tmp_path / "ck", False)["rl_a2c"]
    seen: dict[str, list] = {"agent": [], "batched": []}

    def record(name: str, then=None):  # type: ignore[no-untyped-def]
        def fit(rows: pd.DataFrame) -> None:
            seen[name].append((rows.index[0], rows.index[-1], len(rows)))
            if then is not None:
                then(rows)
        return fit

    def equal(X: torch.Tensor) -> torch.Tensor:
        return torch.full((X.shape[0], X.shape[-1]), 0.25, dtype=X.dtype)

    res = walk_forward({"rl_a2c": agent, "batched": equal}, returns, 20, rebalance_every=5, cost=0.0015, start=start,
                       retrain=RetrainSchedule(every=30, window="rolling", size=90),
                       fit_hooks={"rl_a2c": record("agent", hook), "batched": record("batched")}, dtype=torch.float64)
    assert len(seen["agent"]) >= 3 and seen["agent"] == seen["batched"]
    decisions = res.weights["rl_a2c"].index
    for (first, last, n), (T, steps, init, checkpoint) in zip(seen["agent"], calls, strict=True):
        assert n == 90 and T == n  # the environment holds exactly the rows handed over: the past of the refit date
        assert last in decisions and last >= start
        assert steps == 64 and init is agent  # continued from the agent (the same object walk_forward holds)
        assert checkpoint == tmp_path / "ck" / "agents" / "rl_a2c" / f"refit-{last.date()}" / "agent.pt"
        assert load_state(checkpoint)["num_timesteps"] == 64
    assert agent.model is models[-1] and len(models) == len(seen["agent"]) + 1
    first_policy, last_policy = (m.policy.state_dict() for m in (models[0], models[-1]))
    assert not all(torch.equal(v, last_policy[k]) for k, v in first_policy.items())


def test_refitted_agents_resume_and_save_the_last_policy(tmp_path: Path) -> None:
    config = _config(tmp_path, REFIT.replace("timesteps: 256,", "timesteps: 256, retrain_timesteps: 64,"))
    folder, result = run_backtest(config, tmp_path / "run")
    refits = sorted((folder / "checkpoints" / "agents" / "rl_a2c").glob("refit-*/agent.pt"))
    assert len(refits) >= 3 and sorted((folder / "checkpoints" / "agents" / "rl_convex").glob("refit-*/agent.pt"))
    assert all(load_state(p)["num_timesteps"] == 64 for p in refits)
    convex = min((folder / "checkpoints" / "agents" / "rl_convex").glob("refit-*/agent.pt"))
    assert load_state(convex)["num_timesteps"] == 128  # retrain_timesteps defaults to timesteps
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "checkpoints" / "agents").rglob("agent.pt")}
    # a rerun of the same config resumes every training and refit from its checkpoint: nothing is retrained,
    # and the walk-forward is the same, bit for bit
    _, again = run_backtest(config, tmp_path / "run")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    for name in ("rl_a2c", "rl_convex"):
        assert again.weights[name].equals(result.weights[name])
        assert again.returns[name].equals(result.returns[name])
    # the bundle holds the last refit's policy: it made the last decision, not the first
    prices = load_prices("sp500")[["AAPL", "JPM", "KO", "XOM"]].loc["2019-01-01":"2020-12-31"]
    saved = load_strategy(folder, "rl_a2c")
    w = result.weights["rl_a2c"]
    last = saved.predict(prices.loc[: w.index[-1]], prices=True, holdings=result.weights_before["rl_a2c"].iloc[-1])
    np.testing.assert_array_equal(last.to_numpy(), w.iloc[-1].to_numpy())
    first = saved.predict(prices.loc[: w.index[0]], prices=True, holdings=result.weights_before["rl_a2c"].iloc[0])
    assert not np.array_equal(first.to_numpy(), w.iloc[0].to_numpy())


def test_a_rolling_window_too_short_for_an_episode_fails_before_training(tmp_path: Path) -> None:
    text = REFIT.replace("retrain_size: 90", "retrain_size: 40")
    with pytest.raises(ConfigError, match=r"backtest.retrain_size=40: agent 'rl_a2c' cannot train on a rolling window"):
        run_backtest(_config(tmp_path, text), tmp_path / "run")
    assert not (tmp_path / "run").exists()


CV = SMALL.replace("stats: {enabled: false}", "stats: {enabled: false}\nseeds: [0, 1]\n"
                   "cv: {method: cpcv, n_folds: 4, n_test_folds: 2, executor: serial}")
CV = CV[: CV.index("agents:")] + (
    "agents:\n  - {algo: a2c, timesteps: 64, n_envs: 4, episode_length: 5, checkpoint_every: 64, "
    "algo_params: {n_steps: 4}}\n")


def test_agents_are_cross_validated_per_split_and_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfolio.allocation.rl.training import CHECKPOINT
    from gradfolio.experiments.backtest import cv as cvmod
    from gradfolio.experiments.backtest.agents import agent_env, train_one

    config = _config(tmp_path, CV)
    folder, _ = run_backtest(config, tmp_path / "run")
    data = json.loads((folder / "cv.json").read_text())
    assert set(data["strategies"]) == {"rl_a2c", "equal_weight"}
    agent = data["strategies"]["rl_a2c"]
    sharpe = np.array(agent["sharpe"])
    assert agent["seeds"] == [0, 1] and sharpe.shape == (2, data["n_paths"]) == (2, 3)
    assert np.isfinite(sharpe).all() and np.unique(sharpe).size == 6  # splits and seeds train different agents
    # a task's group returns are the walk of the agent its checkpoint holds, over that group
    returns = load_returns(config)
    plan = cvmod.cv_plan(config, len(returns))
    spec = config.agents[0]
    split, seed = 4, 1
    task = folder / "cv" / "tasks" / "rl_a2c" / f"split-{split}" / f"seed-{seed}"
    result = json.loads((task / "result.json").read_text())["result"]["groups"]
    env = agent_env(config, spec, returns, seed, start_rows=cvmod.agent_start_rows(config, plan, split, spec))
    restored = train_one(config, spec, env, seed, 64, task / "checkpoints" / CHECKPOINT, True)  # resumes: no training
    assert load_state(task / "checkpoints" / CHECKPOINT)["num_timesteps"] == 64
    for g in plan.test_groups[split]:
        start, end = cvmod._group_dates(config, returns, plan, g)
        walk = walk_forward({"a": restored}, returns, 20, rebalance_every=5, cost=ProportionalCost.from_bps(15),
                            start=start, end=end, dtype=torch.float64, infeasible="keep")
        np.testing.assert_array_equal(np.array(result[str(g)]["returns"]), walk.returns["a"].to_numpy())
    # training episodes decide and hold on training days only: never on a test group, its purge or embargo
    span = (spec.episode_length - 1) * 5 + 5
    for s, groups in enumerate(plan.test_groups):
        rows = cvmod.agent_start_rows(config, plan, s, spec)
        test_rows = set((np.flatnonzero(np.isin(plan.group, groups)) + plan.first).tolist())
        assert len(rows) > 0
        for t0 in rows:
            touched = set(range(int(t0) - 19, int(t0) + span + 1))  # lookback, decisions and holding days
            assert not touched & test_rows, (s, t0)
            assert plan.train[s][int(t0) - plan.first : int(t0) + span - plan.first + 1].all()
    # a rerun resumes every task; a changed agent reruns only its own tasks
    calls: list[str] = []
    real = cvmod.cv_task

    def counted(job: dict, where: str) -> dict:
        calls.append(where)
        return real(job, where)

    monkeypatch.setattr(cvmod, "cv_task", counted)
    run_backtest(config, tmp_path / "run")
    assert calls == []
    changed = config.model_copy(update={"agents": [spec.model_copy(update={"timesteps": 48})]})
    run_backtest(changed, tmp_path / "run")
    assert len(calls) == 12 and all("rl_a2c" in c for c in calls)  # 6 splits x 2 seeds; equal_weight's groups kept


def test_an_agent_without_a_training_episode_in_a_split_fails_before_training(tmp_path: Path) -> None:
    text = CV.replace("episode_length: 5", "episode_length: 40")
    with pytest.raises(DataError, match=r"cv: split \d leaves no training episode of 40 rebalances .* agent 'rl_a2c'"):
        run_backtest(_config(tmp_path, text), tmp_path / "run")
    assert not (tmp_path / "run").exists()
