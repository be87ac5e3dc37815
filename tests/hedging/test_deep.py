"""Deep hedging through the simulator: the environment's step is differentiable in the action
(central differences), the risk measures by hand, the GBM problem's P&L against pfhedge's formula,
the learned no-cost hedge against Black-Scholes delta, and with costs the learned risk against
pfhedge's deep hedger on the same paths."""

from __future__ import annotations

import math

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging import EnvConfig, HedgingEnv
from gradfolio.hedging.deep import (
    DeepHedgeConfig,
    EnvPolicy,
    GbmCallHedge,
    MlpHedge,
    env_pnl,
    pnl_risk,
)
from gradfolio.hedging.deep_training import DeepHedgeTrainer
from gradfolio.risk import cvar

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DT = torch.float64


def test_env_episode_pnl_is_differentiable_in_every_action():
    """d(total P&L)/d(action_{p,t}) by autograd through env.step == central differences (float64),
    the gradient of a day's action flowing through the later days' states and books."""
    env = HedgingEnv(EnvConfig(n_days=5), n_paths=4, seed=0, dtype=DT)
    actions = torch.tensor([[0.4, 0.1, 0.7, 0.3, 0.9]] * 4, dtype=DT) + 0.03 * torch.arange(4, dtype=DT)[:, None]
    actions.requires_grad_(True)
    days = iter(range(5))

    def total(a: torch.Tensor) -> torch.Tensor:
        nonlocal days
        days = iter(range(5))
        return env_pnl(env, lambda state: a[:, next(days)], seed=3)

    grad, = torch.autograd.grad(total(actions).sum(), actions)
    eps = 1e-6
    fd = torch.zeros_like(grad)
    for p in range(4):
        for t in range(5):
            up, down = actions.detach().clone(), actions.detach().clone()
            up[p, t] += eps
            down[p, t] -= eps
            fd[p, t] = (total(up)[p] - total(down)[p]) / (2 * eps)  # paths are independent
    assert grad.abs().max() > 0.1  # the action matters
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_risk_measures_by_hand():
    pnl = torch.tensor([-3.0, 1.0, 2.0, 0.5], dtype=DT)
    assert pnl_risk(pnl, "cvar", 0.5).item() == pytest.approx(cvar(pnl, 0.5).item()) == pytest.approx((3.0 - 0.5) / 2)
    lam = 0.7
    entropic = math.log(sum(math.exp(-lam * x) for x in pnl.tolist()) / 4) / lam
    assert pnl_risk(pnl, "entropic", risk_aversion=lam).item() == pytest.approx(entropic, rel=1e-14)
    mean, std = pnl.mean().item(), pnl.std(correction=0).item()
    assert pnl_risk(pnl, "mean_std", risk_aversion=2.0).item() == pytest.approx(-(mean - 2.0 * std), rel=1e-14)
    with pytest.raises(ConfigError, match="risk='var'"):
        pnl_risk(pnl, "var")  # type: ignore[arg-type]


def test_gbm_problem_by_hand_and_against_pfhedge_pl():
    prob = GbmCallHedge(3, 2, s0=1.0, strike=1.0, sigma=0.2, dt=0.01, cost=0.01, dtype=DT)
    spot = torch.tensor([[1.0, 1.1, 1.2], [1.0, 0.9, 0.95], [1.0, 1.0, 1.0]], dtype=DT)
    hedge = torch.tensor([[0.5, 0.8], [0.5, 0.2], [0.0, 0.0]], dtype=DT)
    # path 0: gains 0.5 * 0.1 + 0.8 * 0.1; payoff 0.2; costs 0.01 (1.0 * 0.5 + 1.1 * 0.3)
    expected = [0.13 - 0.2 - 0.01 * (0.5 + 0.33), 0.5 * -0.1 + 0.2 * 0.05 - 0.01 * (0.5 + 0.9 * 0.3), 0.0]
    assert prob.pnl(spot, hedge).tolist() == pytest.approx(expected, rel=1e-12)
    feats = prob.features(spot, 1, hedge[:, 0])
    assert feats[0].tolist() == pytest.approx([math.log(1.1), 0.01, 0.2, 0.5])
    pfhedge = pytest.importorskip("pfhedge")
    from pfhedge.nn.functional import pl

    gen = torch.Generator().manual_seed(0)
    spot = 1.0 + 0.1 * torch.rand(50, 6, generator=gen, dtype=DT)
    hedge = torch.rand(50, 5, generator=gen, dtype=DT)
    prob = GbmCallHedge(50, 5, cost=0.003, dtype=DT)
    unit = torch.cat([hedge, hedge[:, -1:]], dim=1)[:, None, :]  # pfhedge repeats the last holding
    theirs = pl(spot[:, None, :], unit, cost=[0.003], payoff=(spot[:, -1] - 1.0).clamp_min(0.0))
    # pfhedge builds the cost rate as a float32 tensor (0.003 to ~1e-10): hence 1e-9, not 1e-15
    assert pfhedge.__version__ and torch.allclose(prob.pnl(spot, hedge), theirs, rtol=0, atol=1e-9)


def test_learned_no_cost_hedge_is_black_scholes_delta():
    """Without costs the variance-minimising hedge of a call under GBM is (up to discretisation) the
    Black-Scholes delta: the learned holdings are within 0.03 of it on average over 20,000 test paths
    and every date, and the hedged P&L's std is within 10% of the delta hedge's (unhedged: 8x)."""
    prob = GbmCallHedge(1000, 20, sigma=0.2, dt=1 / 250, dtype=DT)
    policy = MlpHedge(hidden=(32, 32), seed=0, dtype=DT)
    DeepHedgeTrainer(policy, prob, DeepHedgeConfig(risk="mean_std", risk_aversion=1.0, lr=1e-2), n_steps=500,
                     eval_every=0).train()
    test = GbmCallHedge(20_000, 20, sigma=0.2, dt=1 / 250, dtype=DT)
    spot = test.simulate(5)
    with torch.no_grad():
        learned = test.hedge(policy, spot)
    delta = test.delta(spot)
    assert (learned - delta).abs().mean().item() < 0.03
    ratio = test.pnl(spot, learned).std().item() / test.pnl(spot, delta).std().item()
    assert 0.9 < ratio < 1.1
    assert test.pnl(spot, torch.zeros_like(delta)).std().item() > 5 * test.pnl(spot, delta).std().item()


def test_learned_risk_with_costs_matches_pfhedge_on_the_same_paths():
    """Proportional cost 0.2%, entropic risk (lambda = 50), the same network shape (2 x 32), inputs,
    optimiser (Adam 3e-3), batch (1000 paths) and budget (200 steps) for both; tested on the same
    20,000 pfhedge-simulated paths: the two learned risks agree within 1% (observed: 0.1%) and both
    beat the Black-Scholes delta hedge, which pays too much cost."""
    pytest.importorskip("pfhedge")
    from pfhedge.instruments import BrownianStock, EuropeanOption
    from pfhedge.nn import EntropicRiskMeasure, Hedger, MultiLayerPerceptron
    from pfhedge.nn.functional import pl

    cost, lam = 2e-3, 50.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        option = EuropeanOption(BrownianStock(sigma=0.2, cost=cost), maturity=20 / 250)
        hedger = Hedger(MultiLayerPerceptron(n_layers=2, n_units=32),
                        ["log_moneyness", "expiry_time", "volatility", "prev_hedge"], criterion=EntropicRiskMeasure(a=lam))
        hedger.fit(option, n_paths=1000, n_epochs=200, verbose=False,
                   optimizer=torch.optim.Adam(hedger.parameters(), lr=3e-3))
        torch.manual_seed(123)
        option.simulate(n_paths=20_000)
        spot = option.ul().spot  # (N, 21) float32
        with torch.no_grad():
            unit = hedger.compute_hedge(option)
            pnl_pf = pl(spot[:, None, :], unit, cost=[cost], payoff=option.payoff())
    prob = GbmCallHedge(1000, 20, sigma=0.2, dt=1 / 250, cost=cost)
    policy = MlpHedge(hidden=(32, 32), seed=0)
    DeepHedgeTrainer(policy, prob, DeepHedgeConfig(risk="entropic", risk_aversion=lam, lr=3e-3), n_steps=200,
                     eval_every=0).train()
    with torch.no_grad():
        pnl_ours = prob.pnl(spot, prob.hedge(policy, spot))
        assert torch.allclose(prob.pnl(spot, unit[:, 0, :-1]), pnl_pf, rtol=0, atol=1e-6)  # same P&L convention
    risk_pf, risk_ours = (pnl_risk(p.double(), "entropic", risk_aversion=lam).item() for p in (pnl_pf, pnl_ours))
    risk_delta = pnl_risk(prob.pnl(spot, prob.delta(spot)).double(), "entropic", risk_aversion=lam).item()
    assert abs(risk_ours - risk_pf) < 0.01 * risk_pf
    assert risk_ours < risk_delta and risk_pf < risk_delta


def test_env_policy_uses_the_agents_state_and_action_map_and_trains():
    env = HedgingEnv(EnvConfig(n_days=5), n_paths=64, seed=0, dtype=DT)
    policy = EnvPolicy(env, DeepHedgeConfig(hidden=(16,), lr=1e-2), seed=1)
    policy.fit_scaler(seed=7)
    state = env.reset(11)
    action = policy(state)
    assert action.shape == (64,) and bool(((action >= 0) & (action <= env.action_high)).all())
    n_gamma, n_vega = env.neutral_contracts(state)
    assert torch.allclose(policy.raw_features(state)[:, -2], env.contracts_to_action(state, n_gamma))
    assert torch.allclose(policy.raw_features(state)[:, -1], env.contracts_to_action(state, n_vega))
    val = HedgingEnv(EnvConfig(n_days=5), n_paths=256, seed=0, dtype=DT)
    trainer = DeepHedgeTrainer(policy, lambda p, s: env_pnl(env, p, s), DeepHedgeConfig(hidden=(16,), lr=1e-2),
                               lambda p, s: env_pnl(val, p, s), n_steps=30, eval_every=30, keep_best=False)
    before = trainer.validate()
    trainer.train()
    assert trainer.history[-1]["val_risk"] < before  # lower CVaR95 on the fixed validation batch
    with pytest.raises(ConfigError, match="eval_every=5 needs a val_simulate"):
        DeepHedgeTrainer(policy, lambda p, s: env_pnl(env, p, s), eval_every=5)
    with pytest.raises(ConfigError, match="n_steps=0"):
        DeepHedgeTrainer(policy, lambda p, s: env_pnl(env, p, s), n_steps=0, eval_every=0)
