"""Walk-forward engine: closed forms, a day-by-day reference loop, timing and look-ahead checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio import risk
from gradfolio.allocation.classical import (
    EqualWeight,
    MaximumCalmar,
    MaximumSharpe,
    MaximumSortino,
    MinimumCVaR,
    MinimumVariance,
    RiskParity,
)
from gradfolio.backtest import ProportionalCost, RetrainSchedule, decision_windows, simulate, walk_forward
from gradfolio.data import load_prices, to_returns
from gradfolio.errors import ConfigError, DataError, InfeasibleError


def market(T: int = 60, N: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0005, 0.02, size=(T, N))
    dates = pd.bdate_range("2020-01-01", periods=T, name="date")
    return pd.DataFrame(values, index=dates, columns=[f"a{i}" for i in range(N)])


def equal_weight(X: torch.Tensor) -> torch.Tensor:
    B, _, _, N = X.shape
    return torch.full((B, N), 1.0 / N, dtype=X.dtype)


def momentum(X: torch.Tensor) -> torch.Tensor:
    """Softmax of the summed lookback returns: depends on every day of the window."""
    return torch.softmax(50.0 * X[:, 0].sum(1), dim=-1)


def last_day(X: torch.Tensor) -> torch.Tensor:
    """Softmax of the last day of the window only."""
    return torch.softmax(50.0 * X[:, 0, -1], dim=-1)


class TinyNet(torch.nn.Module):
    def __init__(self, lookback: int, n: int):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(lookback * n, n)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(X.flatten(1)), dim=-1)


def reference_loop(returns: np.ndarray, targets: np.ndarray, first: int, gap: int, k: int, rate: float):
    """Day-by-day simulation in holdings (money per asset), independent of the engine's algebra."""
    P, N = targets.shape
    wealth, holdings = 1.0, np.zeros(N)
    net, turnover = [], []
    for p in range(P):
        before = holdings / wealth
        to = np.abs(targets[p] - before).sum()
        wealth_after = wealth * (1.0 - rate * to)
        holdings = targets[p] * wealth_after
        cash = wealth_after - holdings.sum()
        turnover.append(to)
        for j in range(k):
            holdings = holdings * (1.0 + returns[first + p * k + gap + 1 + j])
            new_wealth = holdings.sum() + cash
            net.append(new_wealth / wealth - 1.0)
            wealth = new_wealth
    return np.array(net), np.array(turnover)


def test_windows_alignment() -> None:
    R = market(40)
    L, g, k = 5, 2, 3
    w, first = decision_windows(R, L, gap=g, rebalance_every=k, start=R.index[10])
    assert first == 10
    values = R.to_numpy()
    for p in range(len(w)):
        t = first + p * k
        assert w.dates[p] == R.index[t]
        np.testing.assert_allclose(w.X[p, 0].numpy(), values[t - L + 1 : t + 1], rtol=1e-6)
        np.testing.assert_allclose(w.y[p, 0].numpy(), values[t + g + 1 : t + g + 1 + k], rtol=1e-6)
    # the last full holding period fits, one more would not
    last_t = first + (len(w) - 1) * k
    assert last_t + g + k <= len(R) - 1 < last_t + k + g + k


def test_buy_and_hold_closed_form() -> None:
    R = market(50)
    L, k = 10, 40
    res = walk_forward({"ew": equal_weight}, R, L, rebalance_every=k, cost=0.0, dtype=torch.float64)
    held = R.iloc[L : L + k]
    growth = (1.0 + held).prod()
    wealth = (1.0 + res.returns["ew"]).prod()
    assert wealth == pytest.approx(growth.mean(), rel=1e-12)
    # wealth path of buy-and-hold is the average of the asset wealth paths
    np.testing.assert_allclose(res.wealth()["ew"].to_numpy(), (1.0 + held).cumprod().mean(axis=1).to_numpy(), rtol=1e-12)


def test_drift_before_next_rebalance() -> None:
    R = market(40)
    L, k = 5, 10
    res = walk_forward({"ew": equal_weight}, R, L, rebalance_every=k, cost=0.0, dtype=torch.float64)
    G = (1.0 + R.iloc[L : L + k]).prod().to_numpy()
    expected = G / G.sum()
    np.testing.assert_allclose(res.weights_before["ew"].iloc[1].to_numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(res.weights_before["ew"].iloc[0].to_numpy(), 0.0)
    assert res.turnover["ew"].iloc[1] == pytest.approx(np.abs(expected - 1 / 3).sum(), rel=1e-12)


def test_costs_by_hand_three_assets() -> None:
    dates = pd.bdate_range("2021-01-04", periods=6, name="date")
    R = pd.DataFrame(
        [[0.0, 0.0, 0.0], [0.10, -0.05, 0.02], [0.02, 0.01, -0.01], [-0.03, 0.04, 0.0], [0.05, 0.0, 0.01],
         [0.0, 0.02, -0.02]],
        index=dates, columns=["x", "y", "z"],
    )
    targets = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], dtype=torch.float64)
    calls = iter(targets)

    def fixed(X: torch.Tensor) -> torch.Tensor:
        return torch.stack([next(calls) for _ in range(X.shape[0])])

    c = 0.002
    res = walk_forward({"fixed": fixed}, R, lookback=2, rebalance_every=2, cost=c, dtype=torch.float64)
    # rebalance 1 at 2021-01-05 (row 1) from cash: turnover 1, cost c * 1
    # holding rows 2, 3: asset growth (1.02, 1.01, 0.99) then (0.97, 1.04, 1.00)
    g1 = np.array([1.02, 1.01, 0.99])
    v1 = 0.5 * 1.02 + 0.3 * 1.01 + 0.2 * 0.99
    r_day1 = (1 - c * 1.0) * v1 - 1
    g2 = g1 * np.array([0.97, 1.04, 1.00])
    v2 = 0.5 * g2[0] + 0.3 * g2[1] + 0.2 * g2[2]
    r_day2 = v2 / v1 - 1
    drifted = np.array([0.5, 0.3, 0.2]) * g2 / v2
    to2 = np.abs(np.array([0.2, 0.2, 0.6]) - drifted).sum()
    v3 = 0.2 * 1.05 + 0.2 * 1.0 + 0.6 * 1.01
    r_day3 = (1 - c * to2) * v3 - 1
    np.testing.assert_allclose(res.returns["fixed"].iloc[:3].to_numpy(), [r_day1, r_day2, r_day3], rtol=1e-12)
    np.testing.assert_allclose(res.turnover["fixed"].to_numpy(), [1.0, to2], rtol=1e-12)
    np.testing.assert_allclose(res.costs["fixed"].to_numpy(), [c, 0.0, c * to2, 0.0], rtol=1e-12, atol=0)
    # gross returns carry no cost
    assert res.gross_returns["fixed"].iloc[0] == pytest.approx(v1 - 1, rel=1e-12)
    assert list(res.returns.index) == list(dates[2:])


def test_daily_rebalance_without_costs_is_sum_w_r() -> None:
    R = market(80, N=4)
    L = 10
    res = walk_forward({"mom": momentum}, R, L, rebalance_every=1, cost=0.0, dtype=torch.float64)
    W = torch.tensor(res.weights["mom"].to_numpy())  # (P, N), decided at t, held over t + 1
    held = torch.tensor(R.iloc[L:].to_numpy())
    expected = risk.portfolio_returns(W, held[:, None, :])[:, 0]
    np.testing.assert_allclose(res.returns["mom"].to_numpy(), expected.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("gap", "k", "rate"), [(0, 1, 0.001), (2, 3, 0.0025), (1, 7, 0.0)])
def test_matches_day_by_day_reference(gap: int, k: int, rate: float) -> None:
    R = market(90, N=5, seed=3)
    L = 8
    res = walk_forward({"mom": momentum}, R, L, gap=gap, rebalance_every=k, cost=rate, dtype=torch.float64)
    first = L - 1
    net, to = reference_loop(R.to_numpy(), res.weights["mom"].to_numpy(), first, gap, k, rate)
    np.testing.assert_allclose(res.returns["mom"].to_numpy(), net, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.turnover["mom"].to_numpy(), to, rtol=1e-10)
    assert res.returns.index[0] == R.index[first + gap + 1]


def test_cash_share_earns_zero() -> None:
    R = market(30)

    def half(X: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[0.5, 0.0, 0.0]], dtype=X.dtype).expand(X.shape[0], 3)

    res = walk_forward({"half": half}, R, 5, rebalance_every=1)
    np.testing.assert_allclose(res.returns["half"].to_numpy(), 0.5 * R["a0"].iloc[5:].to_numpy(), rtol=1e-6)


def test_no_look_ahead_with_gap() -> None:
    R = market(70, N=4)
    L, g, k = 6, 2, 2
    net = TinyNet(L, 4).double()
    base = walk_forward({"net": net, "last": last_day}, R, L, gap=g, rebalance_every=k, dtype=torch.float64)
    q = 40  # perturb every row from q on
    bumped = R.copy()
    bumped.iloc[q:] += np.array([0.05, -0.03, 0.02, 0.0])
    out = walk_forward({"net": net, "last": last_day}, bumped, L, gap=g, rebalance_every=k, dtype=torch.float64)
    decided = base.turnover.index
    before_q = decided < R.index[q]
    for name in ("net", "last"):
        pd.testing.assert_frame_equal(base.weights[name][before_q], out.weights[name][before_q])
        # the first decision that sees row q does change: the check can fail
        assert not np.allclose(base.weights[name][~before_q].iloc[0], out.weights[name][~before_q].iloc[0])
    # returns of days before q are identical; a decision at row t is first used on row t + g + 1
    days = base.returns.index < R.index[q]
    pd.testing.assert_frame_equal(base.returns[days], out.returns[days])
    first_use = base.returns.index.get_loc(base.turnover.index[~before_q][0]) + g + 1
    assert base.returns.index[first_use] > R.index[q]


def test_start_end_and_batched_calls() -> None:
    R = market(100)
    calls = []

    def counting(X: torch.Tensor) -> torch.Tensor:
        calls.append(X.shape[0])
        return equal_weight(X)

    res = walk_forward({"ew": counting}, R, 10, rebalance_every=5, start=R.index[50], end=R.index[80])
    assert calls == [len(res.turnover)]  # one batched call for all rebalance dates
    assert res.turnover.index[0] == R.index[50]
    assert res.returns.index[0] == R.index[51] and res.returns.index[-1] <= R.index[80]
    assert len(res.returns) == 5 * len(res.turnover)


@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_retraining_hook_sees_only_the_past(window: str) -> None:
    R = market(120)
    L, k, m = 5, 5, 20
    seen: list[pd.DataFrame] = []

    class Mean(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.full((3,), 1 / 3)

        def fit(self, train: pd.DataFrame) -> None:
            seen.append(train)
            score = torch.tensor(train.mean().to_numpy())
            self.w = torch.softmax(100 * score, dim=0)

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            return self.w.to(X.dtype).expand(X.shape[0], -1)

    model = Mean()
    schedule = RetrainSchedule(every=m, window=window, size=30, at_start=True)
    res = walk_forward(
        {"mean": model, "ew": equal_weight}, R, L, rebalance_every=k, start=R.index[40], retrain=schedule,
        fit_hooks={"mean": model.fit}, dtype=torch.float64,
    )
    decisions = res.turnover.index
    refits = [decisions[p] for p in range(len(decisions)) if p * k % m == 0]
    assert [s.index[-1] for s in seen] == refits
    for s in seen:
        if window == "expanding":
            assert s.index[0] == R.index[0]
        else:
            assert len(s) == 30
        # weights between two refits are those fitted on the data up to the refit date
        expected = torch.softmax(100 * torch.tensor(s.mean().to_numpy()), dim=0).numpy()
        np.testing.assert_allclose(res.weights["mean"].loc[s.index[-1]].to_numpy(), expected, rtol=1e-12)


def test_schedule_blocks() -> None:
    assert RetrainSchedule(every=10).blocks(7, 3) == [(0, 4, False), (4, 7, True)]
    assert RetrainSchedule(every=3, at_start=True).blocks(3, 3) == [(0, 1, True), (1, 2, True), (2, 3, True)]


def test_errors_are_clear() -> None:
    R = market(30)
    with pytest.raises(DataError, match="strategy 'bad': returned weights of shape"):
        walk_forward({"bad": lambda X: X[:, 0, 0, :2]}, R, 5)

    def nan(X: torch.Tensor) -> torch.Tensor:
        w = equal_weight(X)
        w[1, 2] = float("nan")
        return w

    with pytest.raises(DataError, match=r"strategy 'nan': non-finite weight for asset 2 at rebalance date"):
        walk_forward({"nan": nan}, R, 5)
    with pytest.raises(DataError, match="lookback \\+ gap \\+ rebalance_every = 40"):
        walk_forward({"ew": equal_weight}, R, 30, rebalance_every=10)
    with pytest.raises(ConfigError, match="fit_hooks"):
        walk_forward({"ew": equal_weight}, R, 5, fit_hooks={"other": lambda r: None})
    with pytest.raises(ConfigError, match="rolling window needs"):
        RetrainSchedule(every=5, window="rolling")
    with pytest.raises(ConfigError, match="at least one strategy"):
        walk_forward({}, R, 5)


@settings(max_examples=25, deadline=None)
@given(
    P=st.integers(1, 4), k=st.integers(1, 4), N=st.integers(1, 4), rate=st.floats(0, 0.01), seed=st.integers(0, 10_000)
)
def test_simulate_matches_reference_property(P: int, k: int, N: int, rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(N), size=P) * rng.uniform(0.5, 1.5)  # leverage or cash allowed
    R = rng.normal(0, 0.03, size=(1 + P * k, N))
    sim = simulate(
        torch.tensor(w)[None], torch.tensor(R[1:]).reshape(P, k, N), ProportionalCost(rate)
    )
    net, to = reference_loop(R, w, first=0, gap=0, k=k, rate=rate)
    np.testing.assert_allclose(sim["net"][0].numpy(), net, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sim["turnover"][0].numpy(), to, rtol=1e-10, atol=1e-14)


def test_infeasible_windows_keep_previous_targets() -> None:
    R = market(80, N=3, seed=5)
    L = 10

    def long_winners(X: torch.Tensor) -> torch.Tensor:
        """Weights on the assets with a positive mean; no solution when none has one."""
        mu = X[:, 0].mean(1)
        if bool((mu <= 0).all(-1).any()):
            raise InfeasibleError("no asset with a positive mean")
        pos = mu.clamp_min(0)
        return pos / pos.sum(-1, keepdim=True)

    with pytest.raises(InfeasibleError):
        walk_forward({"lw": long_winners}, R, L, rebalance_every=2, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"strategy 'lw': no solution at \d+ rebalance date"):
        res = walk_forward({"lw": long_winners}, R, L, rebalance_every=2, dtype=torch.float64, infeasible="keep")
    windows, _ = decision_windows(R, L, rebalance_every=2)
    mu = windows.X[:, 0].mean(1)
    dead = (mu <= 0).all(-1).numpy()
    assert dead.any() and not dead.all()
    W = res.weights["lw"].to_numpy()
    previous = np.zeros(3)
    for p in range(len(W)):
        if dead[p]:
            np.testing.assert_allclose(W[p], previous)
        else:
            pos = mu[p].clamp_min(0).numpy()
            np.testing.assert_allclose(W[p], pos / pos.sum(), rtol=1e-12)
            previous = W[p]


def one_window_at_a_time(strategy, X: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """The reference semantics of infeasible="keep": each window alone, keeping the last weights."""
    rows = []
    for b in range(X.shape[0]):
        try:
            previous = strategy(X[b : b + 1])[0]
        except InfeasibleError:
            pass
        rows.append(previous)
    return torch.stack(rows)


@pytest.mark.parametrize("model", [MaximumSharpe(), MaximumSortino(), MaximumCalmar()], ids=lambda m: m.name)
def test_infeasible_windows_are_batched(model) -> None:
    # 60-day windows: no stock of the bundled data has a positive mean on 2020-03-20 and 2020-03-23
    returns = to_returns(load_prices("sp500"))
    L, start, end = 60, "2020-03-09", "2020-04-24"
    windows, _ = decision_windows(returns, L, start=start, end=end)
    dead = (windows.X[:, 0].mean(1) <= 0).all(-1)
    assert [str(d.date()) for d in windows.dates[dead.numpy()]] == ["2020-03-20", "2020-03-23"]
    every = int(windows.dates.get_loc(pd.Timestamp("2020-03-23")))  # a retraining block starts at a dead window
    schedule = RetrainSchedule(every=every)
    blocks = schedule.blocks(len(windows), 1)
    calls: list[int] = []

    def counted(X: torch.Tensor) -> torch.Tensor:
        calls.append(X.shape[0])
        return model(X)

    with pytest.warns(UserWarning) as record:
        res = walk_forward(
            {"ratio": counted}, returns, L, start=start, end=end, retrain=schedule, dtype=torch.float64,
            infeasible="keep",
        )
    assert [str(w.message) for w in record] == [
        f"strategy 'ratio': no solution at 1 rebalance date(s) ({day}); the previous target weights were kept there."
        for day in ("2020-03-20", "2020-03-23")
    ]
    # one call per block, plus one on the windows with a solution in each block that has a dead window
    with_dead = [bool(dead[a:b].any()) for a, b, _ in blocks]
    assert len(calls) == len(blocks) + sum(with_dead) and sum(with_dead) == 2
    X = windows.X.double()
    expected = one_window_at_a_time(model, X, torch.zeros(X.shape[-1], dtype=torch.float64))
    np.testing.assert_allclose(res.weights["ratio"].to_numpy(), expected.numpy(), rtol=0, atol=1e-6)
    # the dead windows keep the weights of 2020-03-19, across the block boundary
    W = res.weights["ratio"]
    np.testing.assert_array_equal(W.loc["2020-03-20"].to_numpy(), W.loc["2020-03-19"].to_numpy())
    np.testing.assert_array_equal(W.loc["2020-03-23"].to_numpy(), W.loc["2020-03-19"].to_numpy())


def test_reported_rows_skip_the_window_by_window_search() -> None:
    R = market(80, N=3, seed=10)
    L = 10
    calls: list[int] = []

    def long_winners(X: torch.Tensor) -> torch.Tensor:
        """Weights on the assets with a positive mean; the error lists the windows where none has one."""
        calls.append(X.shape[0])
        mu = X[:, 0].mean(1)
        dead = (mu <= 0).all(-1)
        if bool(dead.any()):
            raise InfeasibleError("no asset with a positive mean", rows=dead.nonzero().flatten().tolist())
        pos = mu.clamp_min(0)
        return pos / pos.sum(-1, keepdim=True)

    windows, _ = decision_windows(R, L, rebalance_every=2)
    dead = (windows.X[:, 0].mean(1) <= 0).all(-1)
    assert 1 < int(dead.sum()) < len(windows) and bool(dead[0])  # cash is kept until the first solution
    with pytest.warns(UserWarning, match=rf"strategy 'lw': no solution at {int(dead.sum())} rebalance date"):
        res = walk_forward({"lw": long_winners}, R, L, rebalance_every=2, dtype=torch.float64, infeasible="keep")
    assert calls == [len(windows), len(windows) - int(dead.sum())]
    calls.clear()
    expected = one_window_at_a_time(long_winners, windows.X.double(), torch.zeros(3, dtype=torch.float64))
    np.testing.assert_allclose(res.weights["lw"].to_numpy(), expected.numpy(), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(res.weights["lw"].iloc[0].to_numpy(), 0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    returns = to_returns(load_prices("sp500")).iloc[-600:]
    L = 60
    strategies = {
        "ew": EqualWeight(),
        "rp": RiskParity(),
        "mv": MinimumVariance(),
        "sharpe": MaximumSharpe(),
        "cvar": MinimumCVaR(),
        "net": TinyNet(L, returns.shape[1]).double(),
    }
    schedule = RetrainSchedule(every=50)
    runs = {
        device: walk_forward(
            strategies, returns, L, rebalance_every=5, cost=0.001, start=returns.index[300], retrain=schedule,
            device=device, dtype=torch.float64, infeasible="keep",
        )
        for device in ("cpu", "cuda")
    }
    for name in strategies:
        np.testing.assert_allclose(
            runs["cuda"].weights[name].to_numpy(), runs["cpu"].weights[name].to_numpy(), rtol=0, atol=1e-6
        )
    np.testing.assert_allclose(runs["cuda"].returns.to_numpy(), runs["cpu"].returns.to_numpy(), rtol=0, atol=1e-8)


def test_per_strategy_dtypes() -> None:
    # a float32 network next to classical portfolios evaluated in float64 (the backtest's default)
    returns = market(T=120, N=4, seed=3)
    seen: dict[str, torch.dtype] = {}

    def spy(name: str, strategy):
        def call(X: torch.Tensor) -> torch.Tensor:
            seen[name] = X.dtype
            return strategy(X)

        return call

    strategies = {"mv": MinimumVariance(), "net": TinyNet(20, 4)}
    res = walk_forward(
        {n: spy(n, s) for n, s in strategies.items()}, returns, 20, rebalance_every=5,
        dtypes={"mv": torch.float64},
    )
    assert seen == {"mv": torch.float64, "net": torch.float32}
    alone64 = walk_forward({"mv": MinimumVariance()}, returns, 20, rebalance_every=5, dtype=torch.float64)
    alone32 = walk_forward({"net": TinyNet(20, 4)}, returns, 20, rebalance_every=5)
    pd.testing.assert_frame_equal(res.weights["mv"], alone64.weights["mv"], check_exact=True)
    pd.testing.assert_frame_equal(res.weights["net"], alone32.weights["net"], check_exact=True)
    # in float64 the budget holds to machine precision
    np.testing.assert_allclose(res.weights["mv"].sum(axis=1).to_numpy(), 1.0, rtol=0, atol=1e-14)
    with pytest.raises(ConfigError, match=r"dtypes: \['nope'\] are not strategies"):
        walk_forward({"mv": MinimumVariance()}, returns, 20, dtypes={"nope": torch.float64})
    with pytest.raises(ConfigError, match=r"dtypes\['mv'\]=torch.int64: use a floating torch dtype"):
        walk_forward({"mv": MinimumVariance()}, returns, 20, dtypes={"mv": torch.int64})


def test_rebalance_chunk_closed_form() -> None:
    from gradfolio.backtest.engine import MATRIX_FACTOR, available_memory, rebalance_chunk

    per_date = 10 * 10 * 8 * MATRIX_FACTOR
    assert rebalance_chunk(10, 8, 5 * per_date) == 5
    assert rebalance_chunk(10, 8, 5 * per_date + per_date - 1) == 5
    assert rebalance_chunk(10, 4, 5 * per_date) == 10  # float32: twice as many dates
    assert rebalance_chunk(10, 8, 1) == 1  # at least one date per call
    assert available_memory() > 0 and rebalance_chunk(10, 8) >= 1


def test_memory_budget_batches_give_the_same_result_bit_for_bit() -> None:
    from gradfolio.allocation.classical import HierarchicalRiskParity
    from gradfolio.backtest.engine import MATRIX_FACTOR

    R = to_returns(load_prices("sp500")).iloc[-700:, :8]
    sizes: list[int] = []

    def counted(strategy):
        def call(X: torch.Tensor) -> torch.Tensor:
            sizes.append(X.shape[0])
            return strategy(X)
        return call

    strategies = {
        "hrp": HierarchicalRiskParity(),
        "risk_parity": RiskParity(),
        "momentum": momentum,
        # QP-solved: the batched active-set solver pads every system to the batch's largest, so
        # its last bits depend on which windows share a call (one by one differs as much)
        "min_variance": MinimumVariance(),
        "max_sharpe": MaximumSharpe(),  # infeasible at some dates: the previous weights are kept
    }
    def picky(X: torch.Tensor) -> torch.Tensor:
        """Momentum, with no solution where the first asset fell on the last day (many dates)."""
        dead = X[:, 0, -1, 0] < 0
        if bool(dead.any()):
            raise InfeasibleError("first asset fell", rows=dead.nonzero().flatten().tolist())
        return momentum(X)

    strategies["picky"] = picky
    exact = ["hrp", "risk_parity", "momentum", "picky"]
    kwargs = dict(rebalance_every=5, cost=ProportionalCost.from_bps(17), dtype=torch.float64, infeasible="keep",
                  retrain=RetrainSchedule(every=60), start=R.index[200])
    whole = walk_forward(strategies, R, 60, **kwargs)
    budget = 3 * 8 * 8 * 8 * MATRIX_FACTOR  # three rebalance dates per call
    chunked = walk_forward({k: counted(v) for k, v in strategies.items()}, R, 60, memory_budget=budget, **kwargs)
    assert max(sizes) == 3 and len(sizes) > 100
    for a, b in ((whole.returns, chunked.returns), (whole.costs, chunked.costs), (whole.turnover, chunked.turnover)):
        pd.testing.assert_frame_equal(a[exact], b[exact], check_exact=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-13)
    for name in strategies:
        pd.testing.assert_frame_equal(
            whole.weights[name], chunked.weights[name], check_exact=name in exact, rtol=0, atol=1e-13
        )
    with pytest.raises(ConfigError, match="memory_budget=0"):
        walk_forward({"ew": equal_weight}, R, 60, memory_budget=0)


def test_degenerate_strategies_are_flagged() -> None:
    R = market(T=40, N=2, seed=3)
    R.iloc[30, 0] = -0.3  # a crash of a0 under 5x leverage: return -1.5 or so, wealth below zero

    def levered(X: torch.Tensor) -> torch.Tensor:
        return torch.tensor([5.0, -1.0], dtype=X.dtype).expand(X.shape[0], 2)

    res = walk_forward({"levered": levered, "ew": equal_weight}, R, 10, rebalance_every=5, dtype=torch.float64)
    flags = res.flags()
    assert list(flags.columns) == ["max_gross_exposure", "min_wealth", "gross_exceeded", "wealth_nonpositive", "flagged"]
    assert flags.loc["levered", "max_gross_exposure"] == 6.0 and flags.loc["ew", "max_gross_exposure"] == pytest.approx(1.0)
    assert flags.loc["levered", "min_wealth"] == res.wealth()["levered"].min() < 0
    assert flags["gross_exceeded"].tolist() == [True, False] and flags["wealth_nonpositive"].tolist() == [True, False]
    assert res.metrics()["flagged"].tolist() == [1.0, 0.0]
    assert res.metrics().loc["levered", "max_gross_exposure"] == 6.0
    (line,) = res.warnings()
    assert line.startswith("strategy 'levered' is degenerate: gross exposure reached 6 (limit 3) and wealth fell to -")
    loose = walk_forward({"levered": levered}, R, 10, rebalance_every=5, dtype=torch.float64, max_gross=6.5)
    assert not loose.flags().loc["levered", "gross_exceeded"] and loose.flags().loc["levered", "flagged"]
    with pytest.raises(ConfigError, match="max_gross=0"):
        walk_forward({"ew": equal_weight}, R, 10, max_gross=0)
