"""The agent without the environment: the critic loss's targets (eq. 7) by hand, the update's effect
on actor, critic and targets, the ANA settings of the config and the seeded initialisation."""

from __future__ import annotations

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import parse_config
from gradfolio.hedging.rl.agent import AgentConfig, DistributionalAgent
from gradfolio.hedging.rl.replay import Batch
from gradfolio.optim import ANA

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DT = torch.float64


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


@pytest.mark.parametrize("optimizer", ["adam", "ana"])
def test_target_update_weights_the_online_network_by_polyak(optimizer):
    # an asymmetric polyak: target <- 0.3 online + 0.7 target (a swapped update, 0.7 online +
    # 0.3 target, gives other numbers; with polyak = 0.5 both would agree), for actor and critic
    polyak = 0.3
    cfg = AgentConfig(hidden=(16,), n_quantiles=8, optimizer=optimizer, objective="mean", polyak=polyak,
                      lr_actor=1e-2, lr_critic=1e-2, greek_features=False)
    agent = DistributionalAgent(3, 1.0, cfg, seed=4, dtype=DT)
    with torch.no_grad():  # targets away from the online networks, so the weighting shows
        for p in (*agent.actor_target.parameters(), *agent.critic_target.parameters()):
            p.add_(0.25)
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(32, 3, generator=gen, dtype=DT)
    a = torch.rand(32, generator=gen, dtype=DT)
    pairs = ((agent.actor, agent.actor_target, agent.actor_opt), (agent.critic, agent.critic_target, agent.critic_opt))
    before = [[p.clone() for p in target.parameters()] for _, target, _ in pairs]
    agent.update(Batch(s, a, 5.0 * a, s, torch.ones(32, dtype=DT)))
    for (online, target, opt), old in zip(pairs, before, strict=True):
        theta = opt.iterates() if optimizer == "ana" else [p.detach() for p in online.parameters()]
        for b, t, o in zip(old, target.parameters(), theta, strict=True):
            torch.testing.assert_close(t, (1 - polyak) * b + polyak * o, rtol=1e-12, atol=1e-14)
            assert not torch.allclose(t, polyak * b + (1 - polyak) * o)


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


# -- Cao et al.'s agent: every option at its non-default value ------------------------------------

def test_cao_preset_builds_their_networks_levels_and_optimizers():
    from gradfolio.hedging.rl.agent import CAO_TAUS

    cfg = AgentConfig.cao()
    assert len(CAO_TAUS) == 99 and CAO_TAUS[0] == 0.01 and CAO_TAUS[49] == 0.5 and CAO_TAUS[-1] == 0.99
    agent = DistributionalAgent(5, 1.0, cfg, dtype=DT)
    assert torch.allclose(agent.taus, torch.arange(1, 100, dtype=DT) / 100, rtol=0, atol=1e-15)
    actor_widths = [m.out_features for m in agent.actor.modules() if isinstance(m, torch.nn.Linear)]
    critic_widths = [m.out_features for m in agent.critic.modules() if isinstance(m, torch.nn.Linear)]
    assert actor_widths == [256, 256, 256, 1] and critic_widths == [512, 512, 256, 99]
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in agent.critic.modules()) == 3
    assert [g["lr"] for g in agent.critic_opt.param_groups] == [1e-4]
    assert (cfg.n_step, cfg.target_update, cfg.target_period, cfg.grad_clip, cfg.quantile_reduction) == (
        5, "hard", 100, 40.0, "mean")
    assert AgentConfig.cao(n_step=3).n_step == 3


def test_explicit_taus_are_validated():
    with pytest.raises(ValueError, match="n_quantiles=4"):
        AgentConfig(taus=(0.1, 0.5, 0.9), n_quantiles=4)
    with pytest.raises(ValueError, match="strictly increasing"):
        AgentConfig(taus=(0.1, 0.6, 0.5), n_quantiles=3)
    with pytest.raises(ValueError):
        AgentConfig(taus=(0.0, 0.5, 0.9), n_quantiles=3)
    agent = DistributionalAgent(2, 1.0, AgentConfig(hidden=(4,), taus=(0.2, 0.3, 0.9), n_quantiles=3,
                                                    greek_features=False), dtype=DT)
    assert agent.taus.tolist() == [0.2, 0.3, 0.9]


def test_n_step_target_discounts_the_bootstrap_by_gamma_to_the_n():
    """n = 3, gamma = 0.9: T = R + 0.729 (1 - done) Z'(s', pi'(s')), and the 'mean' reduction (1/N of 'sum')."""
    cfg = AgentConfig(hidden=(4,), n_quantiles=2, gamma=0.9, n_step=3, greek_features=False, quantile_reduction="mean")
    agent = DistributionalAgent(2, 1.0, cfg, dtype=DT)
    agent.critic = _Stub(lambda x, a: torch.stack([a, a + 1], dim=1))
    agent.actor_target = _Stub(lambda x: x[:, 0])
    agent.critic_target = _Stub(lambda x, a: torch.stack([x[:, 1] + a, x[:, 1] + 2 * a], dim=1))
    batch = Batch(torch.zeros(1, 2, dtype=DT), torch.tensor([0.5], dtype=DT), torch.tensor([1.0], dtype=DT),
                  torch.tensor([[0.2, 3.0]], dtype=DT), torch.tensor([0.0], dtype=DT))
    # Z = (0.5, 1.5); Z' = (3.2, 3.4); T = 1 + 0.729 Z' = (3.3328, 3.4786); all delta < -1: weight tau_i
    t = [1 + 0.729 * 3.2, 1 + 0.729 * 3.4]
    loss_sum = 0.25 * sum(x - 0.5 - 0.5 for x in t) / 2 + 0.75 * sum(x - 1.5 - 0.5 for x in t) / 2
    assert agent.critic_loss(batch).item() == pytest.approx(loss_sum / 2, rel=1e-12)


def _bandit(n: int = 64) -> Batch:
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(n, 3, generator=gen, dtype=DT)
    a = torch.rand(n, generator=gen, dtype=DT)
    return Batch(s, a, 5.0 * a, s, torch.ones(n, dtype=DT))


@pytest.mark.parametrize("optimizer", ["adam", "ana"])
def test_hard_target_copies_every_period_and_only_then(optimizer):
    cfg = AgentConfig(hidden=(8,), n_quantiles=4, optimizer=optimizer, target_update="hard", target_period=3,
                      lr_actor=1e-2, lr_critic=1e-2, greek_features=False)
    agent = DistributionalAgent(3, 1.0, cfg, seed=1, dtype=DT)
    start = [p.clone() for p in agent.critic_target.parameters()]
    for _ in range(2):
        agent.update(_bandit())
    assert all(torch.equal(p, q) for p, q in zip(agent.critic_target.parameters(), start, strict=True))
    agent.update(_bandit())
    with agent.at_iterates():  # the copy is of the iterates theta^r (ANA) / the parameters (Adam)
        for net, target in ((agent.critic, agent.critic_target), (agent.actor, agent.actor_target)):
            assert all(torch.equal(p, q) for p, q in zip(net.parameters(), target.parameters(), strict=True))
    assert agent.n_updates == 3
    other = DistributionalAgent(3, 1.0, cfg, seed=1, dtype=DT)
    other.load_full_state_dict(agent.full_state_dict())
    assert other.n_updates == 3  # the period survives a checkpoint


def test_gradient_clipping_bounds_the_step_norm():
    """The gradient each optimizer steps with has global norm 1e-3 after clipping (far larger unclipped);
    torch divides by ``norm + 1e-6``, hence the relative 1e-5 (the unclipped norm is > 1e-2)."""
    cfg = AgentConfig(hidden=(8,), n_quantiles=4, grad_clip=1e-3, greek_features=False)
    agent = DistributionalAgent(3, 1.0, cfg, seed=0, dtype=DT)
    seen: dict[str, float] = {}
    for name, opt in (("critic", agent.critic_opt), ("actor", agent.actor_opt)):
        step = opt.step

        def record(*args, _name=name, _opt=opt, _step=step, **kwargs):
            grads = [p.grad for g in _opt.param_groups for p in g["params"] if p.grad is not None]
            seen[_name] = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
            return _step(*args, **kwargs)

        opt.step = record
    agent.update(_bandit())
    assert seen["critic"] == pytest.approx(1e-3, rel=1e-4) and seen["actor"] == pytest.approx(1e-3, rel=1e-4)
    unclipped = DistributionalAgent(3, 1.0, AgentConfig(hidden=(8,), n_quantiles=4, greek_features=False), seed=0, dtype=DT)
    loss = unclipped.critic_loss(_bandit())
    loss.backward()
    assert float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in unclipped.critic.parameters()]))) > 1e-2
