"""Classical portfolios under PortfolioConstraints (by ticker) against skfolio with the same constraints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfolio import RiskMeasure
from skfolio.optimization import HierarchicalRiskParity, MeanRisk, ObjectiveFunction, RiskBudgeting

from gradfolio.allocation.classical import (
    HierarchicalRiskParity as HRP,
    MaximumCalmar,
    MaximumOmega,
    MaximumSharpe,
    MinimumCDaR,
    MinimumEVaR,
    MinimumMeanAbsoluteDeviation,
    MinimumSemiVariance,
    MinimumWorstRealization,
    MaximumSortino,
    MinimumCVaR,
    MinimumDrawdown,
    MinimumVariance,
    RiskParity,
)
from gradfolio.allocation.classical.constrained import check_spec
from gradfolio.errors import ConfigError, InfeasibleError
from gradfolio.solvers import Group, PortfolioConstraints

RATIO = ObjectiveFunction.MAXIMIZE_RATIO
TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=400)
ENDS = (2000, 6000, 8312)

#: the same constraints by ticker: a 0.30 cap, a tech group at most 0.25, XOM at least 0.06 and KO at most 0.08
SPEC = PortfolioConstraints(
    long_only=True, max_weight=0.3, lower={"XOM": 0.06}, upper={"KO": 0.08},
    groups=[Group(["AAPL", "MSFT", "AMD"], upper=0.25, name="tech")],
)
# skfolio's variance objective is ~1e-4: unscaled, its Clarabel stops 1.6e-6 away from the optimum
SCALED = dict(scale_objective=1e4)

CASES = {
    "min_variance": (MinimumVariance, {}, dict(risk_measure=RiskMeasure.VARIANCE, **SCALED)),
    "max_sharpe": (MaximumSharpe, {"risk_free": 1e-4}, dict(risk_measure=RiskMeasure.VARIANCE, objective_function=RATIO,
                                                           risk_free_rate=1e-4, **SCALED)),
    "min_cvar": (MinimumCVaR, {"beta": 0.9}, dict(risk_measure=RiskMeasure.CVAR, cvar_beta=0.9)),
    "min_drawdown": (MinimumDrawdown, {}, dict(risk_measure=RiskMeasure.MAX_DRAWDOWN)),
    "max_calmar": (MaximumCalmar, {}, dict(risk_measure=RiskMeasure.MAX_DRAWDOWN, objective_function=RATIO)),
    "max_sortino": (MaximumSortino, {"target": 0.0}, dict(risk_measure=RiskMeasure.SEMI_DEVIATION, objective_function=RATIO,
                                                          min_acceptable_return=0.0)),
    "min_cdar": (MinimumCDaR, {"beta": 0.85}, dict(risk_measure=RiskMeasure.CDAR, cdar_beta=0.85)),
    "min_mad": (MinimumMeanAbsoluteDeviation, {}, dict(risk_measure=RiskMeasure.MEAN_ABSOLUTE_DEVIATION)),
    "min_worst_realization": (MinimumWorstRealization, {}, dict(risk_measure=RiskMeasure.WORST_REALIZATION)),
    "min_semi_variance": (MinimumSemiVariance, {}, dict(risk_measure=RiskMeasure.SEMI_VARIANCE, **SCALED)),
}


def _skfolio_bounds(columns) -> dict:
    upper = {a: 0.3 for a in columns}
    upper["KO"] = 0.08
    return dict(min_weights={a: (0.06 if a == "XOM" else 0.0) for a in columns}, max_weights=upper,
                linear_constraints=["AAPL + MSFT + AMD <= 0.25"])


def _check_constraints(w: np.ndarray, columns: list[str]) -> None:
    i = {a: k for k, a in enumerate(columns)}
    assert w.max() <= 0.3 + 1e-9 and w.min() >= -1e-9
    assert w[i["KO"]] <= 0.08 + 1e-9 and w[i["XOM"]] >= 0.06 - 1e-9
    assert w[i["AAPL"]] + w[i["MSFT"]] + w[i["AMD"]] <= 0.25 + 1e-9
    assert abs(w.sum() - 1.0) <= 1e-9


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_skfolio_with_the_same_constraints(windows, case: str) -> None:
    cls, params, options = CASES[case]
    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    w = cls(constraints=SPEC.resolve(columns), **params)(X).numpy()
    for b, f in enumerate(frames):
        ref = MeanRisk(**options, **_skfolio_bounds(columns), solver_params=TIGHT).fit(f).weights_
        np.testing.assert_allclose(w[b], ref, atol=1e-6)
        _check_constraints(w[b], columns)


def test_min_variance_matches_cvxpy(windows) -> None:
    cp = pytest.importorskip("cvxpy")
    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    spec = SPEC.resolve(columns)
    w = MinimumVariance(constraints=spec)(X).numpy()
    lo, hi = spec.bounds(20)
    tech = [columns.index(a) for a in ("AAPL", "MSFT", "AMD")]
    for b, f in enumerate(frames):
        S = np.cov(f.to_numpy().T)
        x = cp.Variable(20)
        cp.Problem(cp.Minimize(cp.quad_form(x, cp.psd_wrap(S / np.diag(S).mean()))),
                   [cp.sum(x) == 1, x >= lo, x <= hi, cp.sum(x[tech]) <= 0.25]).solve(solver="CLARABEL", **TIGHT)
        np.testing.assert_allclose(w[b], x.value, atol=1e-8)


def test_min_evar_matches_skfolio_with_the_same_constraints(windows) -> None:
    """EVaR is flat at its minimum (1e-6 in the weights moves it by ~1e-12): weights to 1e-5, EVaR no worse."""
    from gradfolio import risk

    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    w = MinimumEVaR(beta=0.9, constraints=SPEC.resolve(columns))(X)
    for b, f in enumerate(frames):
        ref = MeanRisk(risk_measure=RiskMeasure.EVAR, evar_beta=0.9, **_skfolio_bounds(columns),
                       solver_params=TIGHT).fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-5)
        _check_constraints(w[b].numpy(), columns)
        R = X[b, 0]
        assert float(risk.evar(R @ w[b], 0.9)) <= float(risk.evar(R @ torch.as_tensor(ref), 0.9)) + 1e-10


def test_max_omega_matches_cvxpy(windows) -> None:
    """skfolio has no Omega objective: the homogenized LP with the same constraints in cvxpy (Clarabel)."""
    cp = pytest.importorskip("cvxpy")
    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    tau = 2e-4
    w = MaximumOmega(threshold=tau, constraints=SPEC.resolve(columns))(X).numpy()
    i = {a: k for k, a in enumerate(columns)}
    tech = [i[a] for a in ("AAPL", "MSFT", "AMD")]
    for b, f in enumerate(frames):
        R = f.to_numpy()
        y, k = cp.Variable(20), cp.Variable(nonneg=True)
        cons = [(R.mean(axis=0) - tau) @ y == 1, cp.sum(y) == k, y >= 0, y <= 0.3 * k, y[i["KO"]] <= 0.08 * k,
                y[i["XOM"]] >= 0.06 * k, cp.sum(y[tech]) <= 0.25 * k]
        cp.Problem(cp.Minimize(cp.sum(cp.pos(-(R - tau) @ y)) / len(R)), cons).solve(solver="CLARABEL", **TIGHT)
        np.testing.assert_allclose(w[b], y.value / k.value, atol=1e-6)
        _check_constraints(w[b], columns)


def test_risk_parity_matches_skfolio_risk_budgeting(windows) -> None:
    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    budgets = np.linspace(1.0, 3.0, 20)
    spec = PortfolioConstraints(upper={"KO": 0.03, "JNJ": 0.035}, lower={"AMD": 0.06},
                                groups=[Group(["XOM", "CVX", "RRC"], upper=0.12, name="energy")])
    w = RiskParity(budgets=budgets.tolist(), constraints=spec.resolve(columns))(X).numpy()
    i = {a: k for k, a in enumerate(columns)}
    for b, f in enumerate(frames):
        ref = RiskBudgeting(
            risk_budget=budgets, min_weights={a: (0.06 if a == "AMD" else 0.0) for a in columns},
            max_weights={a: {"KO": 0.03, "JNJ": 0.035}.get(a, 1.0) for a in columns},
            linear_constraints=["XOM + CVX + RRC <= 0.12"], solver_params=TIGHT,
        ).fit(f).weights_
        np.testing.assert_allclose(w[b], ref, atol=1e-6)
        assert w[b, i["KO"]] <= 0.03 + 1e-9 and w[b, i["AMD"]] >= 0.06 - 1e-9
        assert w[b, [i["XOM"], i["CVX"], i["RRC"]]].sum() <= 0.12 + 1e-9 and abs(w[b].sum() - 1) < 1e-12


def test_risk_parity_without_binding_constraints_equals_newton(windows) -> None:
    X, _ = windows(252, ends=ENDS)
    budgets = [1.0 + 0.1 * k for k in range(20)]
    free = RiskParity(budgets=budgets, constraints=PortfolioConstraints(long_only=True))(X)
    torch.testing.assert_close(free, RiskParity(budgets=budgets)(X), rtol=0, atol=1e-8)


@pytest.mark.parametrize("linkage", ["single", "ward"])
def test_hrp_bounds_match_skfolio(windows, linkage: str) -> None:
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import PearsonDistance
    from skfolio.seriation import HierarchicalSeriation

    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    spec = PortfolioConstraints(lower={"KO": 0.07, "PG": 0.02}, upper=0.08).resolve(columns)
    w = HRP(linkage=linkage, ordering="optimal", constraints=spec)(X).numpy()
    for b, f in enumerate(frames):
        ref = HierarchicalRiskParity(
            min_weights={a: {"KO": 0.07, "PG": 0.02}.get(a, 0.0) for a in columns}, max_weights=0.08,
            distance_estimator=PearsonDistance(),
            seriation_estimator=HierarchicalSeriation(
                hierarchical_clustering_estimator=HierarchicalClustering(linkage_method=LinkageMethod(linkage))),
        ).fit(f).weights_
        np.testing.assert_allclose(w[b], ref, rtol=0, atol=1e-12)
        assert w[b].max() <= 0.08 + 1e-12 and w[b, columns.index("KO")] >= 0.07 - 1e-12


def test_by_ticker_equals_by_index(windows) -> None:
    X, frames = windows(252, ends=ENDS)
    columns = list(frames[0].columns)
    i = {a: k for k, a in enumerate(columns)}
    by_index = PortfolioConstraints(
        long_only=True, max_weight=0.3, lower=[0.06 if a == "XOM" else -np.inf for a in columns],
        upper=[0.08 if a == "KO" else np.inf for a in columns],
        groups=[Group([i["AAPL"], i["MSFT"], i["AMD"]], upper=0.25, name="tech")],
    )
    for cls in (MinimumVariance, MinimumCVaR, MaximumSortino):
        torch.testing.assert_close(cls(constraints=SPEC.resolve(columns))(X), cls(constraints=by_index)(X), rtol=0, atol=0)


def test_infeasible_window_is_named(windows) -> None:
    X, _ = windows(252, ends=ENDS)
    X[1] = -X[1].abs()  # every asset loses in window 1: no long-only portfolio has a positive mean there
    spec = PortfolioConstraints(long_only=True, upper=0.5)
    for model in (MaximumCalmar(constraints=spec), MaximumSharpe(constraints=spec), MaximumSortino(constraints=spec)):
        with pytest.raises(InfeasibleError, match=rf"{type(model).__name__}: no portfolio satisfies .* batch element 1 ") as err:
            model(X)
        assert err.value.rows == [1]


def test_infeasible_spec_raises() -> None:
    X = torch.randn(2, 1, 30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 0.01
    spec = PortfolioConstraints(long_only=True, max_weight=0.2)  # 4 * 0.2 < 1
    for model in (MinimumVariance(constraints=spec), MinimumCVaR(constraints=spec), RiskParity(constraints=spec),
                  HRP(constraints=spec)):
        with pytest.raises(InfeasibleError, match=r"budget=1 is outside \[0, 0.8\]"):
            model(X)


def test_refused_specs() -> None:
    with pytest.raises(ConfigError, match="turnover=0.2 for MinimumCVaR"):
        MinimumCVaR(constraints=PortfolioConstraints(turnover=0.2))
    with pytest.raises(ConfigError, match="budget=0.5 for MaximumSharpe"):
        MaximumSharpe(constraints=PortfolioConstraints(budget=0.5))
    with pytest.raises(ConfigError, match=r"\['groups'\] cannot be applied by recursive bisection"):
        HRP(constraints=PortfolioConstraints(groups=[Group([0, 1], upper=0.3)]))
    with pytest.raises(ConfigError, match="constraints.max_weight"):
        check_spec({"max_weight": "x?"}, "MinimumVariance")
    assert check_spec({"upper": 0.3}, "MinimumVariance") == PortfolioConstraints(upper=0.3)


def test_unresolved_tickers_are_refused(windows) -> None:
    X, _ = windows(60, ends=ENDS)
    with pytest.raises(ConfigError, match=r"PortfolioConstraints.lower is given by ticker \(\['XOM'\]...\); call resolve"):
        MinimumVariance(constraints=SPEC)(X)
    groups_only = PortfolioConstraints(groups=SPEC.groups)
    with pytest.raises(ConfigError, match=r"group 'tech' names its assets by ticker .* call resolve\(assets\)"):
        MinimumCVaR(constraints=groups_only)(X)


def test_long_short_with_leverage_matches_cvxpy(windows) -> None:
    cp = pytest.importorskip("cvxpy")
    X, frames = windows(252, ends=ENDS)
    spec = PortfolioConstraints(lower=-0.15, upper=0.35, leverage=1.3,
                                groups=[Group([0, 1, 2], lower=-0.05, upper=0.3, name="g")])
    w_mv = MinimumVariance(constraints=spec)(X).numpy()
    w_cvar = MinimumCVaR(beta=0.9, constraints=spec)(X).numpy()
    for b, f in enumerate(frames):
        R = f.to_numpy()
        S = np.cov(R.T)
        x = cp.Variable(20)
        rows = [cp.sum(x) == 1, x >= -0.15, x <= 0.35, cp.norm1(x) <= 1.3, cp.sum(x[:3]) >= -0.05, cp.sum(x[:3]) <= 0.3]
        cp.Problem(cp.Minimize(cp.quad_form(x, cp.psd_wrap(S / np.diag(S).mean()))), rows).solve(solver="CLARABEL", **TIGHT)
        np.testing.assert_allclose(w_mv[b], x.value, atol=1e-7)
        a, u = cp.Variable(), cp.Variable(len(R), nonneg=True)
        cp.Problem(cp.Minimize(a + cp.sum(u) / (len(R) * 0.1)), [*rows, u >= -R @ x - a]).solve(solver="CLARABEL", **TIGHT)
        np.testing.assert_allclose(w_cvar[b], x.value, atol=1e-6)
        for w in (w_mv[b], w_cvar[b]):
            assert np.abs(w).sum() <= 1.3 + 1e-9 and w.min() >= -0.15 - 1e-9 and w.max() <= 0.35 + 1e-9
        assert np.abs(w_mv[b]).sum() > 1.3 - 1e-6  # the leverage row binds (1.47 without it)


@pytest.mark.parametrize("case", ["max_sharpe", "max_sortino", "max_calmar"])
def test_long_short_ratios_match_skfolio(windows, case: str) -> None:
    cls, params, options = CASES[case]
    X, frames = windows(252, ends=ENDS)
    spec = PortfolioConstraints(lower=-0.1, upper=0.4, groups=[Group([0, 1], upper=0.2)])
    w = cls(constraints=spec, **params)(X).numpy()
    assert w.min() < -0.05  # shorts are used
    for b, f in enumerate(frames):
        ref = MeanRisk(**options, min_weights=-0.1, max_weights=0.4, linear_constraints=["AAPL + AMD <= 0.2"],
                       solver_params=TIGHT).fit(f).weights_
        np.testing.assert_allclose(w[b], ref, atol=1e-6)
        assert w[b].min() >= -0.1 - 1e-9 and w[b].max() <= 0.4 + 1e-9 and w[b, :2].sum() <= 0.2 + 1e-9
