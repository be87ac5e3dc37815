"""EIIE (Jiang, Xu and Liang): commission factor, price inputs, topology, cash bias, holding strategy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import brentq

from gradfolio.allocation.rl.eiie import (
    EIIE,
    approx_commission_factor,
    close_relatives,
    commission_factor,
    drift,
    price_windows,
    with_cash,
)
from gradfolio.backtest import HoldingStrategy, walk_forward
from gradfolio.errors import ConfigError, DataError

torch.set_num_threads(1)
D = torch.float64


def _mu_reference(target: np.ndarray, drifted: np.ndarray, c: float) -> float:
    """The authors' fixed-point loop (NumPy, one portfolio), iterated to 1e-15."""
    mu0, mu1 = 1.0, 1 - 2 * c + c**2
    while abs(mu1 - mu0) > 1e-15:
        mu0 = mu1
        mu1 = (1 - c * drifted[0] - (2 * c - c**2) * np.maximum(drifted[1:] - mu1 * target[1:], 0).sum()) / (
            1 - c * target[0]
        )
    return mu1


def _portfolios(rng: np.random.Generator, B: int, M: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.dirichlet(np.full(M, 0.7), size=B)
    b = rng.dirichlet(np.full(M, 1.9), size=B)
    return a, b


@pytest.mark.parametrize("c", [0.0025, 0.013, 0.17])
def test_commission_factor_matches_numpy_fixed_point_and_root(c: float) -> None:
    rng = np.random.default_rng(7)
    drifted, target = _portfolios(rng, 40, 6)
    mu = commission_factor(torch.tensor(drifted), torch.tensor(target), c).numpy()
    ref = np.array([_mu_reference(t, d, c) for t, d in zip(target, drifted)])
    np.testing.assert_allclose(mu, ref, rtol=0, atol=1e-12)
    # an independent solver: the root of mu - RHS(mu) (decreasing in mu) by bisection

    def gap(m: float, d: np.ndarray, t: np.ndarray) -> float:
        rhs = (1 - c * d[0] - (2 * c - c**2) * np.maximum(d[1:] - m * t[1:], 0).sum()) / (1 - c * t[0])
        return m - rhs

    roots = np.array([brentq(gap, 0.0, 1.0 + 1e-9, args=(d, t), xtol=1e-15) for t, d in zip(target, drifted)])
    np.testing.assert_allclose(mu, roots, rtol=0, atol=1e-12)


def test_commission_factor_bounds_and_first_order_approximation() -> None:
    rng = np.random.default_rng(3)
    for c in (0.001, 0.02, 0.2):
        drifted, target = _portfolios(rng, 500, 5)
        d, t = torch.tensor(drifted), torch.tensor(target)
        mu = commission_factor(d, t, c)
        k = 2 * c - c**2
        # RHS is increasing in mu: evaluated at mu = 0 (all risky sold) and mu = 1 it brackets the fixed point
        lower = (1 - c * d[:, 0] - k * d[:, 1:].sum(-1)) / (1 - c * t[:, 0])
        upper = (1 - c * d[:, 0] - k * torch.relu(d[:, 1:] - t[:, 1:]).sum(-1)) / (1 - c * t[:, 0])
        assert bool((mu >= lower - 1e-14).all()) and bool((mu <= torch.clamp(upper, max=1.0) + 1e-14).all())
        # mu = 1 - c sum_{i>=1} |w'_i - w_i| + O(c^2): within c^2 on every draw
        approx = approx_commission_factor(d, t, c)
        assert float((mu - approx).abs().max()) <= c**2
        assert float((mu - approx).abs().max()) > 0.01 * c**2  # not the same formula
    same = torch.tensor([[0.2, 0.5, 0.3]], dtype=D)
    assert commission_factor(same, same, 0.01).item() == pytest.approx(1.0, abs=1e-12)
    assert commission_factor(same, torch.tensor([[0.1, 0.6, 0.3]], dtype=D), 0.0).item() == 1.0


def test_commission_factor_bad_input() -> None:
    w = torch.full((2, 3), 1 / 3, dtype=D)
    with pytest.raises(ConfigError, match="commission=1.5"):
        commission_factor(w, w, 1.5)
    with pytest.raises(DataError, match=r"\(B, N \+ 1\)"):
        commission_factor(w, w[:, :2], 0.01)
    with pytest.raises(ConfigError, match="commission=-0.1"):
        approx_commission_factor(w, w, -0.1)


def test_drift_and_with_cash() -> None:
    w = torch.tensor([[0.1, 0.6, 0.3]], dtype=D)
    y = torch.tensor([[1.0, 1.1, 0.8]], dtype=D)
    value = 0.1 + 0.66 + 0.24
    torch.testing.assert_close(drift(w, y), torch.tensor([[0.1, 0.66, 0.24]], dtype=D) / value)
    torch.testing.assert_close(with_cash(torch.tensor([[0.25, 0.5]], dtype=D)), torch.tensor([[0.25, 0.25, 0.5]], dtype=D))


@pytest.mark.parametrize("kind", ["simple", "log"])
def test_close_relatives_are_prices_over_the_latest(kind: str) -> None:
    rng = np.random.default_rng(1)
    prices = np.exp(np.cumsum(rng.normal(0, 0.02, (9, 3)), axis=0))  # L + 1 = 9 closes
    r = prices[1:] / prices[:-1] - 1 if kind == "simple" else np.log(prices[1:] / prices[:-1])
    out = close_relatives(torch.tensor(r)[None], kind)[0].numpy()
    np.testing.assert_allclose(out, prices / prices[-1], rtol=1e-12)


def _eiie(**kw: object) -> EIIE:
    torch.manual_seed(0)
    return EIIE(**{"n_assets": 4, "lookback": 12, **kw}).double()  # type: ignore[arg-type]


def test_shapes_softmax_over_cash_and_assets() -> None:
    m = _eiie()
    X = 0.01 * torch.randn(5, 1, 12, 4, dtype=D)
    prev = torch.rand(5, 4, dtype=D) / 4
    full = m.portfolio(X, prev)
    assert full.shape == (5, 5)
    torch.testing.assert_close(full.sum(-1), torch.ones(5, dtype=D))
    w = m(X, None, prev)
    torch.testing.assert_close(w, full[:, 1:])
    torch.testing.assert_close(1 - w.sum(-1), full[:, 0])  # cash = 1 - sum w
    assert m.conv1.weight.shape == (2, 1, 3, 1) and m.conv2.weight.shape == (20, 2, 11, 1)
    assert m.vote.weight.shape == (1, 21, 1, 1)
    assert isinstance(m, HoldingStrategy) and m.needs_holdings is True


def test_cash_logit_is_the_bias_only() -> None:
    m = _eiie()
    with torch.no_grad():
        m.cash_bias.fill_(0.7)
    X = 0.02 * torch.randn(3, 1, 12, 4, dtype=D)
    logits = m.logits(X, torch.rand(3, 4, dtype=D))
    torch.testing.assert_close(logits[:, 0], torch.full((3,), 0.7, dtype=D))
    # every other parameter zero: all scores zero, the cash weight is e^b / (e^b + N) whatever the inputs
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name != "cash_bias":
                p.zero_()
    w = m.portfolio(torch.randn(2, 1, 12, 4, dtype=D) * 0.05, torch.rand(2, 4, dtype=D))
    e = np.exp(0.7)
    torch.testing.assert_close(w[:, 0], torch.full((2,), e / (e + 4), dtype=D))
    torch.testing.assert_close(w[:, 1:], torch.full((2, 4), 1 / (e + 4), dtype=D))


def test_identical_independent_evaluators() -> None:
    m = _eiie()
    X = 0.01 * torch.randn(2, 1, 12, 4, dtype=D)
    prev = torch.rand(2, 4, dtype=D) / 4
    logits = m.logits(X, prev)
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(m.logits(X[..., perm], prev[:, perm])[:, 1:], logits[:, 1 + perm])
    # asset 3's inputs and previous weight move only asset 3's score
    X2, prev2 = X.clone(), prev.clone()
    X2[..., 3] += 0.05
    prev2[:, 3] += 0.1
    moved = m.logits(X2, prev2)
    torch.testing.assert_close(moved[:, :4], logits[:, :4])
    assert float((moved[:, 4] - logits[:, 4]).detach().abs().min()) > 0
    # the previous weight enters linearly through the 1x1 vote
    slope = m.vote.weight[0, -1, 0, 0]
    torch.testing.assert_close(m.logits(X, prev + 0.2)[:, 1:] - logits[:, 1:], torch.full((2, 4), 0.2, dtype=D) * slope)


def test_bad_inputs_raise_data_errors_naming_the_step() -> None:
    m = _eiie()
    X = 0.01 * torch.randn(2, 1, 12, 4, dtype=D)
    prev = torch.zeros(2, 4, dtype=D)
    with pytest.raises(DataError, match=r"EIIE.forward: X has shape \(2, 1, 11, 4\)"):
        m(X[:, :, 1:], None, prev)
    with pytest.raises(DataError, match="previous weights are missing"):
        m(X)
    with pytest.raises(DataError, match=r"previous has shape \(2, 3\)"):
        m(X, None, prev[:, :3])
    bad = X.clone()
    bad[1, 0, 4, 2] = float("nan")
    with pytest.raises(DataError, match="X holds NaN"):
        m(bad, None, prev)
    with pytest.raises(DataError, match="previous holds NaN"):
        m(X, None, prev + float("nan"))
    p = _eiie(inputs="prices")
    with pytest.raises(DataError, match="positive prices"):
        p(-torch.ones(1, 1, 12, 4, dtype=D), None, prev[:1])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"inputs": "ohlc"}, "inputs='ohlc'"),
        ({"returns_kind": "pct"}, "returns_kind='pct'"),
        ({"n_channels": 3}, "inputs='returns' reads one channel"),
        ({"beta": 1.0}, "beta=1.0"),
        ({"commission_method": "exact"}, "commission_method='exact'"),
        ({"hidden": 0}, "hidden=0"),
        ({"kernel_size": 14}, "kernel_size=14 is longer than the 13 prices"),
    ],
)
def test_bad_parameters(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EIIE(4, 12, **kw)


def test_non_default_topology_and_log_returns() -> None:
    m = _eiie(features=3, kernel_size=5, hidden=7, returns_kind="log", beta=0.2, commission_method="approx")
    assert m.conv1.weight.shape == (3, 1, 5, 1) and m.conv2.weight.shape == (7, 3, 9, 1)
    assert m.vote.weight.shape == (1, 8, 1, 1) and m.beta == 0.2 and m.commission_method == "approx"
    r = 0.01 * torch.randn(2, 1, 12, 4, dtype=D)
    simple = _eiie(features=3, kernel_size=5, hidden=7)
    simple.load_state_dict(m.state_dict())
    # log returns r are the simple returns expm1(r): the same prices, the same weights
    prev = torch.zeros(2, 4, dtype=D)
    torch.testing.assert_close(m(r, None, prev), simple(torch.expm1(r), None, prev))


def test_price_windows_close_high_low() -> None:
    rng = np.random.default_rng(5)
    idx = pd.bdate_range("2021-01-04", periods=40)
    close = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 0.01, (40, 3)), axis=0)), index=idx, columns=list("abc"))
    high = close * (1 + rng.uniform(0, 0.02, close.shape))
    low = close * (1 - rng.uniform(0, 0.02, close.shape))
    w = price_windows(close, 6, high=high, low=low, horizon=2)
    assert w.X.shape[1:] == (3, 6, 3) and w.step == w.horizon == 2
    r = idx.get_loc(w.dates[4])
    np.testing.assert_array_equal(w.X[4, 1].numpy(), high.to_numpy()[r - 5 : r + 1])
    np.testing.assert_array_equal(w.X[4, 2].numpy(), low.to_numpy()[r - 5 : r + 1])
    np.testing.assert_allclose(w.y[4, 0].numpy(), (close / close.shift(1) - 1).to_numpy()[r + 1 : r + 3])
    m = EIIE(3, 6, n_channels=3, inputs="prices", kernel_size=2).double()
    V = m.normalized(w.X[:2])
    torch.testing.assert_close(V[:, :, -1:, :][:, 0], torch.ones(2, 1, 3, dtype=D))  # latest close is 1
    torch.testing.assert_close(V[:, 1], w.X[:2, 1] / w.X[:2, :1, -1:, :][:, 0])
    assert m.portfolio(w.X[:2], torch.zeros(2, 3, dtype=D)).shape == (2, 4)
    close_only = price_windows(close, 6)
    assert close_only.X.shape[1] == 1
    with pytest.raises(DataError, match="both high and low"):
        price_windows(close, 6, high=high)
    with pytest.raises(DataError, match="low holds missing"):
        price_windows(close, 6, high=high, low=low.where(low > low.iloc[3, 0], np.nan))


def test_walk_forward_feeds_the_weights_after_the_last_trade() -> None:
    rng = np.random.default_rng(2)
    idx = pd.bdate_range("2020-01-01", periods=80)
    returns = pd.DataFrame(rng.normal(0.0005, 0.01, (80, 3)), index=idx, columns=list("xyz"))
    torch.manual_seed(4)
    m = EIIE(3, 10).double()
    with torch.no_grad():
        m.vote.weight[0, -1] = 3.0  # a strong feedback of the previous weights
    res = walk_forward({"eiie": m}, returns, 10, rebalance_every=3, cost=0.002, dtype=D)
    W = torch.tensor(res.weights["eiie"].to_numpy())
    from gradfolio.backtest import decision_windows

    windows, _ = decision_windows(returns, 10, rebalance_every=3)
    previous = torch.zeros(1, 3, dtype=D)
    for p in range(len(windows)):
        w = m(windows.X[p : p + 1], None, previous)
        torch.testing.assert_close(W[p : p + 1], w, rtol=0, atol=1e-12)
        previous = w
    assert float(res.costs["eiie"].sum()) > 0
