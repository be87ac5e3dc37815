"""Strategies that see what they hold (``needs_holdings``): walked date by date through the
path simulation, checked against the batched engine and a day-by-day reference loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.backtest import RetrainSchedule, walk_forward
from gradfolio.backtest.engine import HoldingStrategy, needs_holdings
from gradfolio.backtest.schedules import CalendarSchedule, ThresholdSchedule
from gradfolio.errors import DataError, InfeasibleError


def market(T: int = 80, N: int = 4, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0004, 0.015, size=(T, N)) + np.linspace(-0.001, 0.002, N)
    dates = pd.bdate_range("2021-03-01", periods=T, name="date")
    return pd.DataFrame(values, index=dates, columns=[f"x{i}" for i in range(N)])


def momentum(X: torch.Tensor) -> torch.Tensor:
    return 0.9 * torch.softmax(40.0 * X[:, 0].sum(1), dim=-1)  # 10% cash


class Recorder:
    """Ignores the holdings but records them: must equal the batched strategy exactly."""

    needs_holdings = True

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, X: torch.Tensor, before: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        assert X.shape[0] == 1 and before.shape == previous.shape == (1, X.shape[-1])
        self.calls.append((before.clone(), previous.clone()))
        return momentum(X)


class Partial:
    """Trades a fraction ``eta`` of the way from what it holds to the momentum target."""

    needs_holdings = True

    def __init__(self, eta: float) -> None:
        self.eta = eta

    def __call__(self, X: torch.Tensor, before: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return before + self.eta * (momentum(X) - before)


def reference(returns: np.ndarray, decide, first: int, gap: int, k: int, rates: np.ndarray, P: int):
    """Day by day in money per asset; ``decide(p, before, previous)`` gives the target."""
    N = returns.shape[1]
    wealth, holdings, previous = 1.0, np.zeros(N), np.zeros(N)
    net, targets = [], []
    for p in range(P):
        before = holdings / wealth
        target = decide(p, before, previous)
        wealth_after = wealth * (1.0 - (rates * np.abs(target - before)).sum())
        holdings = target * wealth_after
        cash = wealth_after - holdings.sum()
        previous = target
        targets.append(target)
        for j in range(k):
            holdings = holdings * (1.0 + returns[first + p * k + gap + 1 + j])
            new_wealth = holdings.sum() + cash
            net.append(new_wealth / wealth - 1.0)
            wealth = new_wealth
    return np.array(net), np.array(targets)


def test_protocol_and_marker() -> None:
    assert needs_holdings(Recorder()) and isinstance(Recorder(), HoldingStrategy)
    assert not needs_holdings(momentum)

    class Falsy:
        needs_holdings = 1  # truthy but not True: not a holding strategy

    assert not needs_holdings(Falsy())


def test_holding_strategy_that_ignores_holdings_equals_the_batched_one() -> None:
    R = market()
    rec = Recorder()
    cost = torch.tensor([0.001, 0.003, 0.0005, 0.002], dtype=torch.float64)
    from gradfolio.costs import ProportionalCost

    res = walk_forward(
        {"batched": momentum, "held": rec}, R, 6, gap=1, rebalance_every=3, cost=ProportionalCost(cost),
        dtype=torch.float64,
    )
    for frame in (res.returns, res.gross_returns, res.costs, res.turnover):
        np.testing.assert_allclose(frame["held"], frame["batched"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.weights["held"], res.weights["batched"], rtol=0, atol=0)
    np.testing.assert_allclose(res.weights_before["held"], res.weights_before["batched"], rtol=1e-12, atol=1e-15)
    # the strategy saw exactly the simulation's drifted weights and its own last targets
    befores = torch.cat([b for b, _ in rec.calls]).numpy()
    previous = torch.cat([q for _, q in rec.calls]).numpy()
    np.testing.assert_allclose(befores, res.weights_before["held"].to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(previous[0], 0.0)
    np.testing.assert_allclose(previous[1:], res.weights["held"].to_numpy()[:-1], rtol=0, atol=0)


@pytest.mark.parametrize(("gap", "k", "eta"), [(0, 1, 0.3), (2, 4, 0.65)])
def test_path_dependent_strategy_matches_day_by_day_reference(gap: int, k: int, eta: float) -> None:
    R = market(90, N=3, seed=11)
    L = 7
    rates = np.array([0.002, 0.0007, 0.004])
    from gradfolio.costs import ProportionalCost

    res = walk_forward(
        {"partial": Partial(eta)}, R, L, gap=gap, rebalance_every=k, cost=ProportionalCost(torch.tensor(rates)),
        dtype=torch.float64,
    )
    P = len(res.turnover)
    X = torch.tensor(R.to_numpy())
    first = L - 1

    def decide(p: int, before: np.ndarray, previous: np.ndarray) -> np.ndarray:
        t = first + p * k
        window = X[t - L + 1 : t + 1].T.T[None, None]
        target = momentum(window)[0].numpy()
        return before + eta * (target - before)

    net, targets = reference(R.to_numpy(), decide, first, gap, k, rates, P)
    np.testing.assert_allclose(res.weights["partial"].to_numpy(), targets, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(res.returns["partial"].to_numpy(), net, rtol=1e-10, atol=1e-14)
    # partial trading really depends on the path: it differs from trading to the target
    full = walk_forward({"m": momentum}, R, L, gap=gap, rebalance_every=k, cost=0.001, dtype=torch.float64)
    assert np.abs(full.weights["m"].to_numpy() - targets).max() > 1e-3


def test_refit_hooks_run_at_the_batched_dates_and_rows() -> None:
    R = market(120)
    seen: dict[str, list[pd.Timestamp]] = {"held": [], "batched": []}

    def hook(name: str):
        return lambda train: seen[name].append((train.index[0], train.index[-1]))

    schedule = RetrainSchedule(every=10, window="rolling", size=25)
    walk_forward(
        {"batched": momentum, "held": Recorder()}, R, 5, rebalance_every=2, start=R.index[30], retrain=schedule,
        fit_hooks={"batched": hook("batched"), "held": hook("held")}, dtype=torch.float64,
    )
    assert len(seen["held"]) >= 3
    assert seen["held"] == seen["batched"]


def test_schedules_are_honoured() -> None:
    R = market(100)
    for schedule in (CalendarSchedule(freq="W"), CalendarSchedule(every=3), ThresholdSchedule([0.2, 0.1, 0.3, 0.15], to="edge")):
        res = walk_forward(
            {"batched": momentum, "held": Recorder()}, R, 5, cost=0.002, schedule=schedule, dtype=torch.float64
        )
        np.testing.assert_allclose(res.returns["held"], res.returns["batched"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(res.weights["held"], res.weights["batched"], rtol=1e-12, atol=1e-15)
        assert res.turnover["held"].eq(0).sum() >= len(res.turnover) // 4  # dates without a trade


def test_bad_weights_name_the_date() -> None:
    R = market()

    class Bad:
        needs_holdings = True

        def __call__(self, X, before, previous):
            w = momentum(X)
            if len(calls) == 4:
                w[0, 2] = float("nan")
            calls.append(1)
            return w

    calls: list[int] = []
    with pytest.raises(DataError, match="strategy 'bad': non-finite weight for asset 2 at rebalance date"):
        walk_forward({"bad": Bad()}, R, 5, dtype=torch.float64)

    class Shape:
        needs_holdings = True

        def __call__(self, X, before, previous):
            return torch.ones(1, X.shape[-1] + 1, dtype=X.dtype)

    with pytest.raises(DataError, match=r"strategy 'shape': returned weights of shape \(1, 5\)"):
        walk_forward({"shape": Shape()}, R, 5, dtype=torch.float64)


def test_infeasible_dates_keep_the_previous_weights() -> None:
    R = market()

    class Sometimes:
        needs_holdings = True

        def __init__(self) -> None:
            self.p = -1

        def __call__(self, X, before, previous):
            self.p += 1
            if self.p in (3, 4):
                raise InfeasibleError("no solution")
            return momentum(X)

    with pytest.raises(InfeasibleError):
        walk_forward({"s": Sometimes()}, R, 5, dtype=torch.float64)
    with pytest.warns(UserWarning, match="no solution at 2 rebalance date"):
        res = walk_forward({"s": Sometimes()}, R, 5, dtype=torch.float64, infeasible="keep")
    w = res.weights["s"].to_numpy()
    np.testing.assert_array_equal(w[3], w[2])
    np.testing.assert_array_equal(w[4], w[2])
    assert np.abs(w[5] - w[2]).max() > 0


def test_modules_are_evaluated_in_eval_mode_without_gradients() -> None:
    R = market(40)

    class Net(torch.nn.Module):
        needs_holdings = True

        def __init__(self) -> None:
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)
            self.modes: list[tuple[bool, bool]] = []

        def forward(self, X, before, previous):
            self.modes.append((self.training, torch.is_grad_enabled()))
            return self.drop(momentum(X))

    net = Net().train()
    walk_forward({"net": net}, R, 5, dtype=torch.float64)
    assert set(net.modes) == {(False, False)}
    assert net.training


def test_refit_hooks_train_with_gradients_and_the_modules_own_mode() -> None:
    R = market(90)

    class Net(torch.nn.Module):
        needs_holdings = True

        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
            self.at_refit: list[tuple[bool, bool]] = []

        def forward(self, X, before, previous):
            return momentum(X) * self.scale / (1.0 + self.scale.abs())

        def fit(self, train: pd.DataFrame) -> None:  # a real gradient step, as a network's refit does
            self.at_refit.append((self.training, torch.is_grad_enabled()))
            loss = (self.scale - 2.0) ** 2
            loss.backward()
            with torch.no_grad():
                self.scale -= 0.1 * self.scale.grad
            self.scale.grad = None

    net = Net().train()
    schedule = RetrainSchedule(every=10, window="expanding")
    walk_forward({"net": net}, R, 5, rebalance_every=2, start=R.index[30], retrain=schedule,
                 fit_hooks={"net": net.fit}, dtype=torch.float64)
    assert len(net.at_refit) >= 2 and set(net.at_refit) == {(True, True)}
    assert net.training and float(net.scale.detach()) != 1.0
