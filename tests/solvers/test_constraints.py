"""PortfolioConstraints: compiled standard form and infeasibility reasons."""

from __future__ import annotations

import numpy as np
import pytest

from gradfolio.errors import ConfigError, DataError, InfeasibleError
from gradfolio.solvers import Group, PortfolioConstraints


def test_compiled_form_accepts_exactly_the_feasible_points():
    spec = PortfolioConstraints(long_only=True, max_weight=0.5, groups=[Group([0, 1], upper=0.6)], turnover=0.4)
    c = spec.compile(4)
    assert c.n_vars == 8 and c.uses_prev
    w_prev = np.array([0.25, 0.25, 0.25, 0.25])

    def feasible(w):  # with the tightest auxiliary u = |w - w_prev|
        x = np.concatenate([w, np.abs(w - w_prev)])
        return bool((c.G @ x <= c.h0 + c.H_prev @ w_prev + 1e-12).all() and np.allclose(c.A @ x, c.b))

    assert feasible(np.array([0.3, 0.2, 0.25, 0.25]))
    assert not feasible(np.array([0.4, 0.3, 0.15, 0.15]))  # group 0.7 > 0.6
    assert not feasible(np.array([0.05, 0.05, 0.45, 0.45]))  # turnover 0.8 > 0.4
    assert not feasible(np.array([-0.1, 0.3, 0.4, 0.4]))  # short
    assert not feasible(np.array([0.1, 0.1, 0.2, 0.5]))  # budget 0.9


def test_leverage_lift():
    c = PortfolioConstraints(leverage=1.5).compile(3)
    assert c.n_vars == 6 and not c.uses_prev
    w = np.array([1.2, -0.2, 0.0])
    assert (c.G @ np.concatenate([w, np.abs(w)]) <= c.h0 + 1e-12).all()
    w = np.array([1.5, -0.5, 0.0])  # gross 2.0
    assert not (c.G @ np.concatenate([w, np.abs(w)]) <= c.h0 + 1e-12).all()


@pytest.mark.parametrize(
    "spec, n, match",
    [
        (PortfolioConstraints(lower=0.3, upper=0.2), 3, "asset 0 has lower bound 0.3 above its upper bound 0.2"),
        (PortfolioConstraints(long_only=True, max_weight=0.2), 4, r"budget=1 is outside \[0, 0.8\]"),
        (PortfolioConstraints(leverage=0.5), 4, "leverage=0.5 is below"),
        (PortfolioConstraints(long_only=True, groups=[Group([0, 1], lower=1.5, name="banks")]), 3, "group 'banks'"),
        (
            PortfolioConstraints(groups=[Group([0, 1], upper=0.3, name="a"), Group([2, 3], upper=0.3, name="b")]),
            4,
            "feasibility LP",
        ),
    ],
)
def test_infeasible_specs_raise_with_reason(spec, n, match):
    with pytest.raises(InfeasibleError, match=match):
        spec.compile(n)


def test_bad_values():
    with pytest.raises(ConfigError, match="leverage"):
        PortfolioConstraints(leverage=-1.0)
    with pytest.raises(ConfigError, match="group 'g'"):
        PortfolioConstraints(groups=[Group([0, 9], upper=1.0, name="g")]).compile(3)
    with pytest.raises(ConfigError, match="lower has 2 entries for 3 assets"):
        PortfolioConstraints(lower=[0.0, 0.0]).compile(3)


# -- by ticker -----------------------------------------------------------------------------------

TICKERS = ["AAPL", "MSFT", "JPM", "XOM", "KO"]


def test_by_ticker_compiles_to_the_same_matrices_as_by_index():
    by_ticker = PortfolioConstraints(
        long_only=True, max_weight=0.6, lower={"XOM": 0.05}, upper={"KO": 0.15, "AAPL": 0.4},
        groups=[Group(["AAPL", "MSFT"], upper=0.3, name="tech"), Group(["JPM", 3], lower=0.1, name="mixed")],
        leverage=1.2,
    )
    by_index = PortfolioConstraints(
        long_only=True, max_weight=0.6, lower=[-np.inf, -np.inf, -np.inf, 0.05, -np.inf],
        upper=[0.4, np.inf, np.inf, np.inf, 0.15],
        groups=[Group([0, 1], upper=0.3, name="tech"), Group([2, 3], lower=0.1, name="mixed")], leverage=1.2,
    )
    resolved = by_ticker.resolve(TICKERS)
    assert [tuple(g.assets) for g in resolved.groups] == [(0, 1), (2, 3)]
    a, b = resolved.compile(5), by_index.compile(5)
    for name in ("G", "h0", "H_prev", "A", "b"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert by_index.resolve(TICKERS).compile(5).G.tobytes() == b.G.tobytes()


def test_unknown_ticker_is_a_data_error_naming_it():
    with pytest.raises(DataError, match=r"group 'tech' names ticker 'TSLA', which is not a column .* available: \['AAPL'"):
        PortfolioConstraints(groups=[Group(["AAPL", "TSLA"], upper=0.3, name="tech")]).resolve(TICKERS)
    with pytest.raises(DataError, match=r"upper\['NVDA'\] names ticker 'NVDA'"):
        PortfolioConstraints(upper={"NVDA": 0.1}).resolve(TICKERS)
    with pytest.raises(ConfigError, match="group 'g' lists an asset twice"):
        PortfolioConstraints(groups=[Group(["AAPL", 0], upper=0.3, name="g")]).resolve(TICKERS)


def test_unresolved_spec_refuses_to_compile():
    with pytest.raises(ConfigError, match=r"upper is given by ticker .* call resolve\(assets\)"):
        PortfolioConstraints(upper={"KO": 0.1}).compile(5)
    with pytest.raises(ConfigError, match=r"group 'tech' names its assets by ticker"):
        PortfolioConstraints(groups=[Group(["AAPL"], upper=0.1, name="tech")]).compile(5)


def test_mapping_spec_from_a_config_is_validated():
    from pydantic import TypeAdapter

    spec = TypeAdapter(PortfolioConstraints).validate_python(
        {"upper": {"KO": 0.15}, "groups": [{"assets": ["AAPL", 1], "upper": 0.3, "name": "tech"}]}
    )
    assert spec.upper == {"KO": 0.15} and spec.groups[0] == Group(["AAPL", 1], None, 0.3, "tech")
    assert spec.resolve(TICKERS).upper == (None, None, None, None, 0.15)
    assert PortfolioConstraints(upper=[None, 0.3]).bounds(2)[1].tolist() == [np.inf, 0.3]


def test_constraints_data_is_plain_and_rebuilds_the_spec() -> None:
    import json

    from gradfolio.solvers.constraints import constraints_data

    spec = PortfolioConstraints(
        long_only=False, lower=(-0.1, 0.0, -0.2), upper=(0.4, 0.35, 0.5),
        groups=(Group((0, 2), 0.05, 0.6, name="energy"), Group((1,), None, 0.3)), leverage=1.7,
    )
    data = constraints_data(spec)
    assert json.loads(json.dumps(data)) == data  # JSON-ready: lists, numbers, None
    assert data["lower"] == [-0.1, 0.0, -0.2] and data["groups"][0]["assets"] == [0, 2]
    rebuilt = PortfolioConstraints(**{**data, "groups": tuple(Group(**{**g, "assets": tuple(g["assets"])})
                                                         for g in data["groups"]),
                                      "lower": tuple(data["lower"]), "upper": tuple(data["upper"])})
    assert rebuilt == spec
