"""PortfolioEnv: the backtest's accounting to 1e-12, exact observations, vectorized = single paths."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.allocation.rl import PortfolioEnv
from gradfolio.backtest import walk_forward
from gradfolio.costs import ProportionalCost
from gradfolio.errors import ConfigError, DataError

L, GAP, K = 6, 2, 3
COST = ProportionalCost([0.0012, 0.0041, 0.0003])  # asymmetric per-asset rates


class Replay:
    """A HoldingStrategy replaying fixed weights and recording what it sees."""

    needs_holdings = True

    def __init__(self, W: torch.Tensor) -> None:
        self.W, self.p, self.seen = W, 0, []

    def __call__(self, X, before, previous):
        self.seen.append((X.clone(), before.clone(), previous.clone()))
        w = self.W[self.p : self.p + 1].to(X.dtype)
        self.p += 1
        return w


def _weights(P: int, N: int) -> torch.Tensor:
    rng = np.random.default_rng(3)
    W = rng.dirichlet(np.ones(N), P) * rng.uniform(0.6, 1.2, (P, 1))  # cash and leverage
    W[::4, 1] -= 0.3  # some shorts
    return torch.as_tensor(W)


def test_episode_equals_walk_forward(market: pd.DataFrame) -> None:
    env = PortfolioEnv(market, L, gap=GAP, rebalance_every=K, start="first", cost=COST, allocator="weights")
    W = _weights(env.H, 3)
    strat = Replay(W)
    res = walk_forward({"s": strat}, market, L, gap=GAP, rebalance_every=K, cost=COST, dtype=torch.float64)
    assert env.H == len(res.turnover) == len(strat.seen) and env.H > 10
    X, before = env.reset()
    nets, wealth, befores = [], [], []
    for p in range(env.H):
        seen_X, seen_before, seen_prev = strat.seen[p]
        assert torch.equal(X, seen_X)  # the observation, exactly
        # the drifted weights to the last bit or two: the env and the backtest form them with other
        # tensor operations, whose rounding depends on the CPU's kernels (AVX-512 vs AVX2 MKL)
        torch.testing.assert_close(before, seen_before, rtol=0, atol=1e-15)
        assert torch.equal(env.previous, seen_prev)
        (X, before), reward, done, info = env.step(W[p : p + 1])
        nets.append(info["net"][0])
        befores.append(info["before"][0])
        wealth.append(float(info["wealth"][0]))
        assert float(reward[0]) == pytest.approx(float(torch.log1p(info["net"][0]).sum()), abs=1e-15)
        assert bool(done[0]) == (p == env.H - 1)
    net = torch.cat(nets).numpy()
    np.testing.assert_allclose(net, res.returns["s"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch.stack(befores).numpy(), res.weights_before["s"].to_numpy(), rtol=0, atol=1e-12)
    assert wealth[-1] == pytest.approx(float((1 + res.returns["s"]).prod()), abs=1e-12)
    with pytest.raises(DataError, match="finished its"):
        env.step(W[:1])


def test_vectorized_paths_equal_single_paths(market: pd.DataFrame) -> None:
    starts = [L - 1, 9, 14, 20]
    vec = PortfolioEnv(market, L, gap=GAP, rebalance_every=K, start=starts, n_envs=4, episode_length=8, cost=COST,
                       reward="differential_sharpe", eta=0.07)
    singles = [PortfolioEnv(market, L, gap=GAP, rebalance_every=K, start=s, episode_length=8, cost=COST,
                            reward="differential_sharpe", eta=0.07) for s in starts]
    vec.reset()
    for e in singles:
        e.reset()
    gen = torch.Generator().manual_seed(5)
    for _ in range(8):
        a = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 2
        (X, b), r, d, info = vec.step(a)
        for i, e in enumerate(singles):
            (Xi, bi), ri, di, info_i = e.step(a[i : i + 1])
            assert torch.equal(X[i : i + 1], Xi) and torch.equal(b[i : i + 1], bi)
            assert torch.equal(r[i : i + 1], ri) and torch.equal(d[i : i + 1], di)
            assert torch.equal(info["net"][i : i + 1], info_i["net"])
    assert bool(d.all())


def test_observation_is_window_and_drifted_weights(market: pd.DataFrame) -> None:
    env = PortfolioEnv(market, L, rebalance_every=K, start=10, episode_length=3, kind="log", obs_scale=30.0)
    X, before = env.reset()
    R = torch.as_tensor(np.array(market.to_numpy()))
    assert torch.equal(X[0, 0], torch.log1p(R[10 - L + 1 : 11]))
    assert torch.equal(before, torch.zeros(1, 3, dtype=torch.float64))
    a = torch.tensor([[1.0, -0.5, 0.2]], dtype=torch.float64)
    (X1, before1), _, _, info = env.step(a)
    w = torch.softmax(a, -1)[0]
    growth = torch.prod(1 + R[11 : 11 + K], dim=0)
    expected = w * growth / (w * growth).sum()
    torch.testing.assert_close(before1[0], expected, rtol=0, atol=1e-15)
    assert torch.equal(X1[0, 0], torch.log1p(R[10 + K - L + 1 : 11 + K]))
    flat = env.flat_observation()
    assert flat.shape == (1, L * 3 + 3) and env.observation_size == L * 3 + 3
    assert torch.equal(flat[0, : L * 3], 30.0 * X1[0, 0].reshape(-1)) and torch.equal(flat[0, L * 3 :], before1[0])
    assert float(info["turnover"][0]) == pytest.approx(1.0)  # from cash


def test_random_starts_are_seeded_and_in_range(market: pd.DataFrame) -> None:
    def starts(seed: int) -> torch.Tensor:
        env = PortfolioEnv(market, L, gap=GAP, rebalance_every=K, n_envs=64, episode_length=5, seed=seed)
        env.reset()
        return env.t.clone()

    a, b, c = starts(1), starts(1), starts(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= L - 1 and int(a.max()) + 4 * K <= len(market) - 1 - GAP - K
    env = PortfolioEnv(market, L, n_envs=2, episode_length=2, seed=1)
    env.reset()
    env.step(torch.zeros(2, 3))
    kept = env.t.clone()
    env.reset(mask=torch.tensor([True, False]), seed=9)
    assert int(env.t[1]) == int(kept[1]) and int(env.steps[1]) == 1 and int(env.steps[0]) == 0


def test_random_starts_among_given_rows(market: pd.DataFrame) -> None:
    rows = [L - 1, L + 4, 40, 41]
    env = PortfolioEnv(market, L, gap=GAP, rebalance_every=K, n_envs=256, episode_length=5, start_rows=rows, seed=3)
    env.reset()
    assert set(env.t.tolist()) == set(rows)  # every given row drawn, no other
    again = PortfolioEnv(market, L, gap=GAP, rebalance_every=K, n_envs=256, episode_length=5, start_rows=rows, seed=3)
    again.reset()
    assert torch.equal(env.t, again.t)
    for _ in range(5):  # an episode from the latest allowed start stays in the data
        env.step(torch.zeros(256, 3))
    latest = len(market) - 1 - GAP - K - 4 * K
    PortfolioEnv(market, L, gap=GAP, rebalance_every=K, episode_length=5, start_rows=[latest])
    with pytest.raises(ConfigError, match=f"start row {latest + 1} of start_rows is outside"):
        PortfolioEnv(market, L, gap=GAP, rebalance_every=K, episode_length=5, start_rows=[L, latest + 1])
    with pytest.raises(ConfigError, match=f"start row {L - 2} of start_rows"):
        PortfolioEnv(market, L, gap=GAP, rebalance_every=K, episode_length=5, start_rows=[L - 2])
    with pytest.raises(DataError, match="start_rows is empty"):
        PortfolioEnv(market, L, episode_length=5, start_rows=[])
    with pytest.raises(ConfigError, match="start_rows needs start='random'"):
        PortfolioEnv(market, L, episode_length=5, start="first", start_rows=[L])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": 1.5}, "eta"),
        ({"reward": "sharpe"}, "reward"),
        ({"cost": [0.001, 0.002]}, "cost rates"),
        ({"episode_length": 500, "start": "first"}, "episode_length"),
        ({"start": 2, "episode_length": 3}, "start row 2"),
        ({"start": "random"}, "needs an episode_length"),
        ({"gap": -1}, "gap"),
    ],
)
def test_bad_settings(market: pd.DataFrame, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PortfolioEnv(market, L, **kwargs)


def test_bad_data() -> None:
    with pytest.raises(DataError, match="too few"):
        PortfolioEnv(torch.zeros(5, 2), 4, rebalance_every=2)
    with pytest.raises(DataError, match="finite simple returns"):
        PortfolioEnv(torch.tensor([[0.1, float("nan")]] * 10), 2)


def test_finrl_reference_of_the_benchmark_is_this_env_without_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/bench_portfolio_env.py times a port of FinRL's StockPortfolioEnv: it computes this
    environment's wealth with k = 1, gap 0 and the costs FinRL ignores set to zero (and not with costs)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3] / "benchmarks"))
    ref = importlib.import_module("finrl_portfolio_reference")
    rng = np.random.default_rng(2)
    close = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0.0005, 0.01, (40, 4)), axis=0),
                         index=pd.bdate_range("2021-01-01", periods=40), columns=list("WXYZ"))
    df = ref.make_finrl_frame(close, lookback=10)
    finrl = ref.make_env(df, 4, cost=0.01)
    finrl.reset()
    R = close.pct_change().iloc[1:]
    ours = {c: PortfolioEnv(R, 10, start="first", cost=c) for c in (0.0, 0.01)}
    for env in ours.values():
        env.reset()
    assert all(env.H == len(close) - 11 for env in ours.values())
    gen = np.random.default_rng(3)
    for _ in range(ours[0.0].H):
        a = gen.normal(size=4)
        finrl.step(a)
        for env in ours.values():
            env.step(torch.as_tensor(a)[None])
    assert finrl.portfolio_value / 1e6 == pytest.approx(float(ours[0.0].wealth[0]), rel=1e-12)
    assert float(ours[0.01].wealth[0]) < 0.99 * float(ours[0.0].wealth[0])  # what costs FinRL leaves out
