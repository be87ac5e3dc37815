"""Returns, window alignment, time splits with purge, and torch loaders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio import ConfigError, DataError
from gradfolio.data import Windows, load_prices, make_loader, make_windows, time_split, to_returns


def toy_returns(T: int = 60, N: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        rng.normal(0, 0.01, size=(T, N)), index=pd.bdate_range("2020-01-01", periods=T), columns=["a", "b", "c"][:N]
    )


def test_simple_and_log_returns() -> None:
    prices = pd.DataFrame({"A": [1.0, 2.0, 1.0], "B": [4.0, 5.0, 5.0]}, index=pd.bdate_range("2020-01-01", periods=3))
    simple = to_returns(prices)
    assert simple.index[0] == prices.index[1]
    np.testing.assert_allclose(simple.to_numpy(), [[1.0, 0.25], [-0.5, 0.0]])
    np.testing.assert_allclose(to_returns(prices, "log").to_numpy(), np.log1p(simple.to_numpy()))
    with pytest.raises(ConfigError, match="'simple' or 'log'"):
        to_returns(prices, "pct")  # type: ignore[arg-type]


def test_window_alignment_against_manual_slices() -> None:
    rets = toy_returns()
    L, G, H, S = 10, 2, 5, 3
    w = make_windows(rets, L, G, H, S, dtype=torch.float64)
    n = (len(rets) - L - G - H) // S + 1
    assert w.X.shape == (n, 1, L, 3) and w.y.shape == (n, 1, H, 3) and len(w.dates) == n
    values = rets.to_numpy()
    for i in (0, 1, n - 1):
        s = i * S
        np.testing.assert_array_equal(w.X[i, 0].numpy(), values[s : s + L])
        np.testing.assert_array_equal(w.y[i, 0].numpy(), values[s + L + G : s + L + G + H])
        assert w.dates[i] == rets.index[s + L - 1]
    assert w.assets == ("a", "b", "c")
    logw = make_windows(rets, L, G, H, S, kind="log", dtype=torch.float64)
    torch.testing.assert_close(logw.X, torch.log1p(w.X))
    torch.testing.assert_close(logw.y, w.y)  # targets stay simple returns


def test_window_errors() -> None:
    rets = toy_returns(T=20)
    with pytest.raises(DataError, match=r"^returns: 20 rows of returns, but one window needs lookback \+ gap \+ horizon = "
                       r"20 \+ 0 \+ 5 = 25 \(returns of 26 prices\)"):
        make_windows(rets, 20, 0, 5)
    with pytest.raises(DataError, match=r"^data/prices.csv: 20 rows of returns"):
        make_windows(rets, 18, 1, 2, source="data/prices.csv")
    assert len(make_windows(rets, 18, 0, 2)) == 1  # exactly lookback + gap + horizon rows make one window
    for kwargs in ({"lookback": 0}, {"lookback": 5, "gap": -1}, {"lookback": 5, "horizon": -1}, {"lookback": 5, "step": 0},
                   {"lookback": 5.0}, {"lookback": True}, {"lookback": 5, "step": True}, {"lookback": 5, "gap": False}):
        name, value = list(kwargs.items())[-1]
        with pytest.raises(ConfigError, match=rf"^{name}={value!r} must be an integer >= [01]"):
            make_windows(rets, **kwargs)  # type: ignore[arg-type]


def test_horizon_zero_makes_prediction_windows() -> None:
    # horizon 0 (issue: "make_windows refuses horizon=0"): no target, the last window ends on the
    # last row, i.e. the window a strategy sees for its next rebalance
    rets = toy_returns(T=31)
    w = make_windows(rets, 7, horizon=0, step=2, kind="log", dtype=torch.float64)
    n = (31 - 7) // 2 + 1
    assert w.X.shape == (n, 1, 7, 3) and w.y.shape == (n, 1, 0, 3) and w.horizon == 0
    np.testing.assert_array_equal(w.X[-1, 0].numpy(), np.log1p(rets.to_numpy()[-7:]))
    assert w.dates[-1] == rets.index[-1] and list(w.dates) == list(rets.index[6::2])
    last = make_windows(rets.iloc[-7:], 7, horizon=0)
    assert len(last) == 1 and last.X.dtype == torch.float32 and last.dates[0] == rets.index[-1]
    # a gap still leaves its rows after the last window (the decision's latency)
    assert make_windows(rets, 7, gap=3, horizon=0).dates[-1] == rets.index[-4]
    with pytest.raises(DataError, match=r"lookback \+ gap \+ horizon = 7 \+ 0 \+ 0 = 7"):
        make_windows(rets.iloc[:6], 7, horizon=0)


def test_windows_attributes_are_documented() -> None:
    doc = Windows.__doc__ or ""
    for field in ("X", "y", "dates", "assets", "lookback, gap, horizon, step", "kind"):
        assert f"\n    {field}\n" in doc, field


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 15), st.integers(0, 5), st.integers(1, 10), st.integers(1, 4),
    st.floats(0.0, 0.3), st.floats(0.05, 0.3),
)
def test_split_is_ordered_and_purged(L: int, G: int, H: int, S: int, val: float, test: float) -> None:
    rets = toy_returns(T=400)
    w = make_windows(rets, L, G, H, S)
    train, valid, tst = time_split(w, val, test)
    parts = [p for p in (train, valid, tst) if len(p)]
    assert len(train) >= 1 and len(tst) >= 1
    assert len(train) + len(valid) + len(tst) <= len(w)
    row = {d: i for i, d in enumerate(rets.index)}
    for earlier, later in zip(parts, parts[1:]):
        last_target_row = row[earlier.dates[-1]] + G + H  # last day judged by the earlier part
        first_decision_row = row[later.dates[0]]
        assert first_decision_row > last_target_row  # no target of an earlier part reaches a later decision
        assert first_decision_row - last_target_row <= S  # and no more than one step is wasted
    purge = (G + H) // S
    assert len(w) - len(train) - len(valid) - len(tst) == purge * (len(parts) - 1)


def test_split_errors() -> None:
    w = make_windows(toy_returns(T=30), 5, 0, 5)
    with pytest.raises(ConfigError, match="val_frac"):
        time_split(w, 0.6, 0.5)
    short = make_windows(toy_returns(T=12), 5, 0, 5)  # 3 windows, purge 5: 1 test + 1 val + 2 * 5 + 1 train = 13
    with pytest.raises(DataError, match=r"^3 windows \(step=1\) are too few: 1 for test \(test_frac=0.3\), 1 for "
                       r"validation \(val_frac=0.3\), a purge of 5 windows .* need 13; lower val_frac or test_frac"):
        time_split(short, 0.3, 0.3)
    with pytest.raises(DataError, match=r"^test_frac=0.01 of 21 windows rounds to 0 test windows; raise test_frac"):
        time_split(w, 0.0, 0.01)
    stepped = make_windows(toy_returns(T=60), 5, 2, 5, step=3)  # 17 windows, purge (2 + 5) // 3 = 2
    train, _, test = time_split(stepped, 0.0, 0.3)
    assert (len(stepped), len(train), len(test)) == (17, 10, 5)
    with pytest.raises(DataError, match=r"^17 windows \(step=3\) are too few: 7 for test .* need 21"):
        time_split(stepped, 0.55, 0.4)


def test_loader_is_seeded_and_complete() -> None:
    w = make_windows(to_returns(load_prices("sp500").iloc[:300]), 20, 0, 5)
    first = [x for x, _ in make_loader(w, batch_size=32, seed=7)]
    again = [x for x, _ in make_loader(w, batch_size=32, seed=7)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (32, 1, 20, 20)
    seen = torch.cat([y for _, y in make_loader(w, batch_size=50, shuffle=False)])
    torch.testing.assert_close(seen, w.y)
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(w, batch_size=0)
