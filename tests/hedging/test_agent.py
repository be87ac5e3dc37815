"""Agent components without the environment: quantile Huber loss by hand, the critic loss's
targets (eq. 7) by hand, a quantile critic that learns the true quantiles of a Gaussian bandit,
actor objectives against closed forms, the replay buffer, the ANA settings of the config, and the
update's effect on actor, critic and targets."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import parse_config
from gradfolio.hedging.agent import (
    AgentConfig,
    Batch,
    DistributionalAgent,
    QuantileCritic,
    ReplayBuffer,
    huber,
    quantile_huber_loss,
    quantile_levels,
    quantile_objective,
)
from gradfolio.optim import ANA
from gradfolio.risk import cvar

DT = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscribing the 2 CI cores (pytest -n 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quantile_levels_are_mid_points():
    assert torch.allclose(quantile_levels(4, dtype=DT), torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=DT))


def test_huber_branches():
    d = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=DT)
    assert torch.allclose(huber(d, 1.0), torch.tensor([2.5, 0.125, 0.0, 0.125, 2.5], dtype=DT))


def test_quantile_huber_loss_hand_computed_value_and_gradient():
    """One sample, N = 2 quantiles (tau = 1/4, 3/4), M = 2 targets, kappa = 1."""
    pred = torch.tensor([[0.0, 2.0]], dtype=DT, requires_grad=True)
    target = torch.tensor([[0.5, -1.0]], dtype=DT)
    taus = quantile_levels(2, dtype=DT)
    loss = quantile_huber_loss(pred, target, taus, kappa=1.0)
    # delta_ij = pred_i - target_j:
    #   i=0 (tau 1/4): -0.5 -> weight 1/4, H 0.125 ; +1.0 -> weight 3/4, H 0.5
    #   i=1 (tau 3/4): +1.5 -> weight 1/4, H 1.0   ; +3.0 -> weight 1/4, H 2.5
    expected = 0.5 * (0.25 * 0.125 + 0.75 * 0.5) + 0.5 * (0.25 * 1.0 + 0.25 * 2.5)
    assert loss.item() == pytest.approx(expected, rel=1e-14)
    loss.backward()
    # dH/d delta = delta inside kappa, kappa * sign outside; averaged over the 2 targets
    grad0 = 0.5 * (0.25 * -0.5 + 0.75 * 1.0)
    grad1 = 0.5 * (0.25 * 1.0 + 0.25 * 1.0)
    assert torch.allclose(pred.grad, torch.tensor([[grad0, grad1]], dtype=DT), rtol=1e-14)


def test_quantile_huber_loss_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, generator=gen, dtype=DT, requires_grad=True)
    target = torch.randn(3, 7, generator=gen, dtype=DT) * 2
    taus = quantile_levels(5, dtype=DT)
    assert torch.autograd.gradcheck(lambda p: quantile_huber_loss(p, target, taus, 0.7), (pred,))


def test_quantile_critic_learns_gaussian_bandit_quantiles():
    """A one-step bandit with reward N(mu(a), sd(a)) and done = 1: the critic's quantiles converge to
    the true quantiles mu(a) + sd(a) * Phi^-1(tau_i)."""
    torch.manual_seed(0)
    n_q = 11
    critic = QuantileCritic(1, (32, 32), n_q, a_max=1.0).to(DT)
    taus = quantile_levels(n_q, dtype=DT)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 600)
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(512, 1, dtype=DT)

    def mu(a):
        return 1.0 + 2.0 * a

    def sd(a):
        return 0.5 + a

    for _ in range(600):
        a = torch.rand(512, generator=gen, dtype=DT)
        r = mu(a) + sd(a) * torch.randn(512, generator=gen, dtype=DT)
        loss = quantile_huber_loss(critic(x, a), r[:, None], taus, kappa=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    a = torch.tensor([0.0, 0.5, 1.0], dtype=DT)
    true = mu(a)[:, None] + sd(a)[:, None] * torch.tensor(norm.ppf(taus.numpy()), dtype=DT)[None, :]
    err = (critic(torch.zeros(3, 1, dtype=DT), a) - true).abs()
    assert (err < 0.15 * sd(a)[:, None]).all(), err / sd(a)[:, None]


def test_objectives_equal_closed_forms_for_uniform_atoms():
    """Atoms at the mid quantiles of U(a, b): mean, VaR and CVaR of the atom distribution are exact."""
    n, lo, hi = 20, -3.0, 5.0
    q = lo + (hi - lo) * quantile_levels(n, dtype=DT)
    assert quantile_objective(q, "mean").item() == pytest.approx((lo + hi) / 2, rel=1e-14)
    # the atoms' population std: (b - a) sqrt((n^2 - 1) / (12 n^2))
    sd = (hi - lo) * math.sqrt((n * n - 1) / (12 * n * n))
    assert quantile_objective(q, "mean_std", risk_aversion=2.0).item() == pytest.approx(1.0 - 2.0 * sd, rel=1e-12)
    # 5% of 20 atoms = the lowest atom, so CVaR = -(a + (b - a) / 40), while VaR (skfolio's
    # inf{l : P(L <= l) >= 95%}) is the second largest loss, -(a + 3 (b - a) / 40)
    assert quantile_objective(q, "var", level=0.95).item() == pytest.approx(lo + 3 * (hi - lo) / 40, rel=1e-14)
    assert quantile_objective(q, "cvar", level=0.95).item() == pytest.approx(lo + (hi - lo) / 40, rel=1e-14)
    # 10%: the two lowest atoms
    assert quantile_objective(q, "cvar", level=0.9).item() == pytest.approx(lo + (hi - lo) * 2 / 40, rel=1e-14)


def test_objectives_approach_gaussian_closed_forms():
    n, mu, sd = 2000, 0.3, 1.7
    q = mu + sd * torch.tensor(norm.ppf(quantile_levels(n, dtype=DT).numpy()), dtype=DT)
    assert quantile_objective(q, "mean").item() == pytest.approx(mu, abs=1e-12)
    assert quantile_objective(q, "mean_std", 1.645).item() == pytest.approx(mu - 1.645 * sd, abs=2e-3)
    assert quantile_objective(q, "var").item() == pytest.approx(mu + sd * norm.ppf(0.05), abs=1e-2)
    assert quantile_objective(q, "cvar").item() == pytest.approx(mu - sd * norm.pdf(norm.ppf(0.95)) / 0.05, abs=5e-3)


def test_objectives_are_batched_and_differentiable():
    q = torch.randn(4, 16, dtype=DT).sort(dim=1).values.requires_grad_(True)
    out = quantile_objective(q, "cvar", level=0.9)
    assert out.shape == (4,)
    assert torch.allclose(out, -cvar(q, 0.9))
    out.sum().backward()
    # CVaR 90% of 16 atoms weighs the 1.6 lowest: gradient 1/1.6 and 0.6/1.6 on the two lowest atoms
    assert torch.allclose(q.grad[0, :2], torch.tensor([1 / 1.6, 0.6 / 1.6], dtype=DT))
    assert q.grad[0, 2:].abs().sum() == 0
    with pytest.raises(ConfigError, match="objective"):
        quantile_objective(q, "median")  # type: ignore[arg-type]


def _batch(n, f=3, start=0.0):
    s = torch.arange(n * f, dtype=DT).reshape(n, f) + start
    a = torch.arange(n, dtype=DT) + start
    return Batch(s, a, -a, s + 1, torch.zeros(n, dtype=DT))


def test_replay_buffer_wraps_and_round_trips():
    buf = ReplayBuffer(5, 3, dtype=DT)
    buf.add(_batch(3))
    buf.add(_batch(4, start=100.0))
    assert len(buf) == 5 and buf.position == 2
    # slots 0-1 overwritten by the last two of the second batch, 2 by its... order: 3,4,0,1
    assert buf.action.tolist() == [102.0, 103.0, 2.0, 100.0, 101.0]
    assert torch.equal(buf.next_state, buf.state + 1)
    gen = torch.Generator().manual_seed(0)
    batch = buf.sample(64, gen)
    assert set(batch.action.tolist()) == {102.0, 103.0, 2.0, 100.0, 101.0}
    assert torch.equal(batch.reward, -batch.action)
    copy_ = ReplayBuffer(5, 3, dtype=DT)
    copy_.load_state_dict(buf.state_dict())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(x, y) for x, y in zip(buf.sample(8, g1), copy_.sample(8, g2), strict=True))


def test_replay_buffer_errors():
    buf = ReplayBuffer(4, 3, dtype=DT)
    with pytest.raises(ConfigError, match="empty"):
        buf.sample(2, torch.Generator())
    with pytest.raises(ConfigError, match="capacity"):
        buf.add(_batch(5))
    with pytest.raises(ConfigError, match="n_features"):
        buf.add(_batch(2, f=4))
    with pytest.raises(ConfigError, match="capacity"):
        ReplayBuffer(0, 3)


@pytest.mark.parametrize("optimizer", ["adam", "ana"])
def test_update_moves_actor_towards_higher_critic_value_and_lerps_targets(optimizer):
    cfg = AgentConfig(hidden=(16,), n_quantiles=8, optimizer=optimizer, objective="mean", polyak=0.5,
                      lr_actor=1e-2, lr_critic=1e-2, greek_features=False)
    agent = DistributionalAgent(3, 1.0, cfg, seed=0, dtype=DT)
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(64, 3, generator=gen, dtype=DT)
    a = torch.rand(64, generator=gen, dtype=DT)
    batch = Batch(s, a, 5.0 * a, s, torch.ones(64, dtype=DT))  # one-step bandit: reward 5 a
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(batch)
    # the targets average the iterates theta^r: ANA's (not the look-ahead points in the
    # parameters), Adam's parameters
    y = [p.detach() for p in agent.critic.parameters()]
    theta = agent.critic_opt.iterates() if optimizer == "ana" else y
    if optimizer == "ana":
        assert not any(torch.allclose(a, b) for a, b in zip(theta, y, strict=True))
    for before, tgt, online in zip(target_before, agent.critic_target.parameters(), theta, strict=True):
        assert torch.allclose(tgt, 0.5 * before + 0.5 * online)
    for _ in range(300):
        agent.update(batch)
    # the critic learnt Z(s, a) ~ 5 a, so the actor pushes its actions up to a_max
    assert agent.act(s).mean() > 0.9
    z = agent.critic(agent.features(s), torch.full((64,), 0.5, dtype=DT)).mean(dim=1)
    assert torch.allclose(z, torch.full_like(z, 2.5), atol=0.3)


class _Stub(torch.nn.Module):
    """A parameter-free stand-in for a network: ``forward`` is ``fn``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def test_critic_loss_targets_by_hand_with_discount_and_done():
    """Eq. (7) with gamma = 0.9: T = r + gamma (1 - done) Z'(s', pi'(s')) from the *target* networks.

    Stubs make every number explicit (2 quantiles, tau = 1/4, 3/4, kappa = 1, identity scaler):
    online critic Z(s, a) = (a, a + 1); target actor pi'(s') = s'_0 (the online actor would give
    0.9); target critic Z'(s', a') = (s'_1 + a', s'_1 + 2 a') (the online one would give (0, 0)).
    """
    cfg = AgentConfig(hidden=(4,), n_quantiles=2, gamma=0.9, kappa=1.0, greek_features=False)
    agent = DistributionalAgent(2, 1.0, cfg, dtype=DT)
    agent.critic = _Stub(lambda x, a: torch.stack([a, a + 1], dim=1))
    agent.actor = _Stub(lambda x: torch.full_like(x[:, 0], 0.9))
    agent.actor_target = _Stub(lambda x: x[:, 0])
    agent.critic_target = _Stub(lambda x, a: torch.stack([x[:, 1] + a, x[:, 1] + 2 * a], dim=1))
    batch = Batch(
        state=torch.zeros(2, 2, dtype=DT),
        action=torch.tensor([0.5, 0.0], dtype=DT),
        reward=torch.tensor([1.0, -2.0], dtype=DT),
        next_state=torch.tensor([[0.2, 3.0], [0.4, 5.0]], dtype=DT),
        done=torch.tensor([0.0, 1.0], dtype=DT),
    )
    # sample 0 (done = 0): Z = (0.5, 1.5), a' = 0.2, Z' = (3.2, 3.4), T = 1 + 0.9 Z' = (3.88, 4.06);
    #   all delta_ij < -1: weights tau_i, Huber |delta| - 1/2 = (2.88, 3.06) for i = 0, (1.88, 2.06) for i = 1
    loss0 = 0.25 * (2.88 + 3.06) / 2 + 0.75 * (1.88 + 2.06) / 2
    # sample 1 (done = 1): T = r = (-2, -2), Z = (0, 1): delta = 2 (i = 0), 3 (i = 1) > 0:
    #   weights 1 - tau_i = 3/4, 1/4 and Huber 1.5, 2.5
    loss1 = 0.75 * 1.5 + 0.25 * 2.5
    assert agent.critic_loss(batch).item() == pytest.approx((loss0 + loss1) / 2, rel=1e-12)


def test_ana_settings_reach_both_optimizers_and_are_validated():
    cfg = AgentConfig(hidden=(4,), optimizer="ana", ana_betas=(0.9, 0.99), ana_eps=1e-6, ana_restart="none",
                      greek_features=False)
    agent = DistributionalAgent(3, 1.0, cfg)
    for opt, lr in ((agent.actor_opt, cfg.lr_actor), (agent.critic_opt, cfg.lr_critic)):
        assert isinstance(opt, ANA)
        assert {k: opt.defaults[k] for k in ("lr", "betas", "eps", "restart")} == {
            "lr": lr, "betas": (0.9, 0.99), "eps": 1e-6, "restart": "none"}
    # the defaults that produced the documented results
    assert AgentConfig().ana_options == {} and AgentConfig(optimizer="ana").ana_options == {
        "betas": (0.5, 0.999), "eps": 1e-8, "restart": "gradient"}
    adam = DistributionalAgent(3, 1.0, AgentConfig(hidden=(4,), greek_features=False)).actor_opt
    assert type(adam) is torch.optim.Adam
    for bad, field in (({"ana_betas": (1.0, 0.9)}, "ana_betas.0"), ({"ana_eps": 0.0}, "ana_eps"),
                       ({"ana_restart": "always"}, "ana_restart")):
        with pytest.raises(ConfigError, match=rf"agent.yaml: field '{field}'"):
            parse_config(AgentConfig, bad, where="agent.yaml")


def test_agent_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a1 = DistributionalAgent(3, 1.0, AgentConfig(greek_features=False), seed=7)
    assert torch.equal(torch.rand(1), expected)
    a2 = DistributionalAgent(3, 1.0, AgentConfig(greek_features=False), seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a1.state_dict().values(), a2.state_dict().values(), strict=True))
