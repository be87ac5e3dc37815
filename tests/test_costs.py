"""ProportionalCost: the one proportional cost model of the backtest and the training loss."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from gradfolio import risk
from gradfolio.allocation import TurnoverLoss, make_loss
from gradfolio.costs import ProportionalCost
from gradfolio.errors import ConfigError

D = torch.float64
RATES = [0.0007, 0.0031, 0.0, 0.012, 0.0004]  # asymmetric per-asset rates


def _weights(seed: int = 5, B: int = 6, N: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1),
            torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1))


def _y(B: int = 6, H: int = 4, N: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return 0.01 * torch.randn(B, 1, H, N, generator=g, dtype=D)


def test_cost_model() -> None:
    before = torch.tensor([[0.5, 0.5, 0.0]])
    after = torch.tensor([[0.2, 0.3, 0.5]])
    assert float(ProportionalCost.from_bps(10)(before, after)) == pytest.approx(0.001 * 1.0)
    per_asset = ProportionalCost([0.001, 0.002, 0.003])
    assert float(per_asset(before, after)) == pytest.approx(0.001 * 0.3 + 0.002 * 0.2 + 0.003 * 0.5)
    with pytest.raises(ConfigError, match="2 per-asset rates given for 3 assets"):
        ProportionalCost([0.1, 0.2])(before, after)
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="cost rate"):
            ProportionalCost(bad)


def test_closed_form_batched_in_the_weights_dtype() -> None:
    before, after = _weights()
    expected = (np.abs(after.numpy() - before.numpy()) * np.array(RATES)).sum(-1)
    np.testing.assert_allclose(ProportionalCost(RATES)(before, after).numpy(), expected, rtol=1e-14)
    bps = ProportionalCost.from_bps([r * 1e4 for r in RATES])
    np.testing.assert_allclose(bps(before, after).numpy(), expected, rtol=1e-12)
    cost32 = ProportionalCost(RATES)(before.float(), after.float())
    assert cost32.dtype == torch.float32 and cost32.shape == (6,)
    np.testing.assert_allclose(cost32.numpy(), expected, rtol=1e-5)


def test_max_rate_bounds_the_rates() -> None:
    with pytest.raises(ConfigError, match=r"each in \[0, 1\)"):
        ProportionalCost(1.5)
    assert float(ProportionalCost(1.5, max_rate=None).rate) == 1.5
    assert ProportionalCost([0.2, 7.0], max_rate=None).rate.tolist() == [0.2, 7.0]
    with pytest.raises(ConfigError, match=r"rate=0.3: .*each in \[0, 0.25\)"):
        ProportionalCost(0.3, max_rate=0.25)
    assert float(ProportionalCost(0.2, max_rate=0.25).rate) == 0.2
    with pytest.raises(ConfigError, match="each finite and >= 0"):
        ProportionalCost([0.1, -0.2], max_rate=None)
    with pytest.raises(ConfigError, match="each finite and >= 0"):
        ProportionalCost(float("inf"), max_rate=None)
    assert float(ProportionalCost.from_bps(25_000, max_rate=None).rate) == pytest.approx(2.5)
    with pytest.raises(ConfigError, match="cost rate"):
        ProportionalCost.from_bps(25_000)
    assert repr(ProportionalCost(0.001)) == "ProportionalCost(rate=0.001)"
    assert repr(ProportionalCost([0.5, 2.0], max_rate=None)) == "ProportionalCost(rate=[0.5, 2.0], max_rate=None)"


def test_backtest_reexports_the_core_model() -> None:
    import gradfolio.backtest
    import gradfolio.backtest.engine

    assert gradfolio.backtest.ProportionalCost is ProportionalCost
    assert gradfolio.backtest.engine.ProportionalCost is ProportionalCost


def test_turnover_loss_with_per_asset_rates_is_the_backtest_cost() -> None:
    w_prev, w = _weights()
    y = _y()
    cost = ProportionalCost(RATES)
    expected = cost(w_prev, w)
    for loss in (TurnoverLoss(RATES), TurnoverLoss(cost), make_loss("turnover", cost=RATES)):
        assert torch.equal(loss(w, y, w_prev=w_prev), expected), repr(loss)
    # asymmetric: the rates are not permutation-invariant, reversing them changes the cost
    assert not torch.allclose(TurnoverLoss(RATES[::-1])(w, y, w_prev=w_prev), expected)
    hand = sum(r * (w[:, i] - w_prev[:, i]).abs() for i, r in enumerate(RATES))
    torch.testing.assert_close(expected, hand, rtol=1e-14, atol=0)


def test_turnover_loss_cost_scales_the_closed_form() -> None:
    w_prev, w = _weights(seed=9)
    y = _y()
    turnover = (w - w_prev).abs().sum(-1)
    default = TurnoverLoss()(w, y, w_prev=w_prev)
    torch.testing.assert_close(default, turnover, rtol=1e-15, atol=0)
    for c in (0.37, 2.5, 1e-3):
        value = TurnoverLoss(c)(w, y, w_prev=w_prev)
        torch.testing.assert_close(value, c * turnover, rtol=1e-15, atol=0)
        # one rate keeps the formula of earlier releases, bit for bit
        assert torch.equal(value, c * risk.turnover(w_prev, w))
        assert not torch.allclose(value, default)
    bps = TurnoverLoss(ProportionalCost.from_bps(25))(w, y, w_prev=w_prev)
    torch.testing.assert_close(bps, 0.0025 * turnover, rtol=1e-14, atol=0)
    assert torch.equal(TurnoverLoss(0)(w, y, w_prev=w_prev), torch.zeros(6, dtype=D))


def test_turnover_loss_per_asset_validation_gradient_and_pickle() -> None:
    w_prev, w = _weights()
    y = _y()
    with pytest.raises(ConfigError, match="TurnoverLoss: cost=\\[0.1, -0.2\\]"):
        TurnoverLoss([0.1, -0.2])
    with pytest.raises(ConfigError, match="TurnoverLoss: cost='high'"):
        TurnoverLoss("high")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="3 per-asset rates given for 5 assets"):
        TurnoverLoss([0.1, 0.2, 0.3])(w, y, w_prev=w_prev)
    big = TurnoverLoss([1.5, 0.0, 3.0, 0.5, 2.0])  # penalty weights above 1 are allowed
    assert repr(big) == "TurnoverLoss(cost=[1.5, 0.0, 3.0, 0.5, 2.0])" and repr(TurnoverLoss(0.001)) == "TurnoverLoss(cost=0.001)"
    wz = w.clone().requires_grad_(True)
    wp = w_prev.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: big(a, y, w_prev=b), (wz, wp))
    again = pickle.loads(pickle.dumps(0.5 * big))
    torch.testing.assert_close(again(w, y, w_prev=w_prev), 0.5 * big(w, y, w_prev=w_prev))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_per_asset_cost_on_cuda_equals_cpu() -> None:
    w_prev, w = _weights()
    y = _y()
    loss = TurnoverLoss(RATES)
    gpu = loss(w.cuda(), y.cuda(), w_prev=w_prev.cuda())
    torch.testing.assert_close(gpu.cpu(), loss(w, y, w_prev=w_prev))


def test_cost_models_compare_by_rates_and_bound() -> None:
    assert ProportionalCost([0.001, 0.003]) == ProportionalCost([0.001, 0.003])
    assert ProportionalCost([0.001, 0.003]) != ProportionalCost([0.003, 0.001])
    assert ProportionalCost(0.001) != ProportionalCost([0.001])  # one rate is not one per asset
    assert ProportionalCost(0.5, max_rate=None) != ProportionalCost(0.5)
    assert ProportionalCost(0.001) != 0.001


# ---- spread + square-root impact, borrow, fixed fees, composite: two-asset hand computations ----
from math import sqrt  # noqa: E402

from gradfolio.costs import BorrowCost, CompositeCost, CostModel, FixedFee, SpreadImpactCost  # noqa: E402
from gradfolio.errors import DataError  # noqa: E402

BEFORE = torch.tensor([0.55, 0.45], dtype=D)
AFTER = torch.tensor([0.2, 0.7], dtype=D)  # 0.1 in cash; |dw| = (0.35, 0.25)
MARKET = dict(wealth=torch.tensor(2e6, dtype=D), volatility=torch.tensor([0.02, 0.015], dtype=D),
              adv=torch.tensor([5e7, 1e7], dtype=D))


def test_spread_impact_closed_form() -> None:
    model = SpreadImpactCost(spread=[0.001, 0.004], impact=0.8)
    expected = (0.001 / 2 * 0.35 + 0.004 / 2 * 0.25
                + 0.8 * 0.02 * sqrt(0.35 * 2e6 / 5e7) * 0.35 + 0.8 * 0.015 * sqrt(0.25 * 2e6 / 1e7) * 0.25)
    assert abs(float(model(BEFORE, AFTER, **MARKET)) - expected) < 1e-17
    assert abs(expected - 0.0020084211) < 1e-9  # the same, evaluated by hand
    # batched: a leading axis of rebalances with their own wealth
    two = model(torch.stack([BEFORE, AFTER]), torch.stack([AFTER, AFTER]), **{**MARKET, "wealth": torch.tensor([2e6, 1.0], dtype=D)})
    assert abs(float(two[0]) - expected) < 1e-17 and float(two[1]) == 0.0
    spread_only = SpreadImpactCost(spread=0.003, impact=0.0)
    assert spread_only.needs == ()
    assert abs(float(spread_only(BEFORE, AFTER)) - 0.0015 * 0.6) < 1e-17
    assert isinstance(model, CostModel) and model.needs == ("wealth", "volatility", "adv")
    with pytest.raises(DataError, match="adv for SpreadImpactCost.*volume="):
        model(BEFORE, AFTER, wealth=MARKET["wealth"], volatility=MARKET["volatility"])
    with pytest.raises(DataError, match="adv.*positive"):
        model(BEFORE, AFTER, **{**MARKET, "adv": torch.tensor([5e7, 0.0], dtype=D)})
    with pytest.raises(ConfigError, match="impact"):
        SpreadImpactCost(impact=-1.0)
    with pytest.raises(ConfigError, match="spread"):
        SpreadImpactCost(spread=[0.001, -0.002])


def test_borrow_fee_and_composite_closed_form() -> None:
    short = torch.tensor([1.3, -0.45], dtype=D)
    borrow = BorrowCost(rate=[0.02, 0.05], periods_per_year=250)
    assert borrow.charged == "daily"
    assert abs(float(borrow(short, short)) - 0.05 / 250 * 0.45) < 1e-18
    assert float(borrow(BEFORE, AFTER)) == 0.0  # long-only: nothing borrowed
    fee = FixedFee(fee=[5.0, 12.0])
    wealth = torch.tensor(1e4, dtype=D)
    assert abs(float(fee(BEFORE, AFTER, wealth=wealth)) - 17.0 / 1e4) < 1e-18
    only_second = torch.tensor([0.55, 0.35], dtype=D)
    assert abs(float(fee(BEFORE, only_second, wealth=wealth)) - 12.0 / 1e4) < 1e-18
    assert float(FixedFee(5.0, tolerance=0.3)(BEFORE, AFTER, wealth=wealth)) == 5.0 / 1e4  # 0.35 > 0.3 only
    with pytest.raises(DataError, match="wealth for FixedFee.*initial_wealth"):
        fee(BEFORE, AFTER)
    both = CompositeCost(ProportionalCost(0.001), CompositeCost(fee, borrow))
    assert len(both.parts) == 3 and both.has_daily and both.needs == ("wealth",)
    trade = float(both.trade(BEFORE, AFTER, wealth=wealth))
    assert abs(trade - (0.001 * 0.6 + 17.0 / 1e4)) < 1e-18
    assert abs(float(both.daily(short)) - 0.05 / 250 * 0.45) < 1e-18
    assert abs(float(both(BEFORE, short, wealth=wealth)) - (0.001 * (0.75 + 0.9) + 17.0 / 1e4 + 0.05 / 250 * 0.45)) < 1e-17
    with pytest.raises(ConfigError, match="not a cost model"):
        CompositeCost(lambda a, b: a.sum())
    with pytest.raises(ConfigError, match="rate"):
        BorrowCost(rate=1.5)
