"""Networks of the distributional agent: the layer stack, the feature scaler's statistics by hand,
the actor's range, the critic's sorted quantiles and action scaling, and a quantile critic that
learns the true quantiles of a Gaussian bandit."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from gradfolio.hedging.rl.losses import quantile_huber_loss, quantile_levels
from gradfolio.hedging.rl.networks import Actor, FeatureScaler, QuantileCritic, mlp

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DT = torch.float64


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


def test_mlp_layer_widths():
    net = mlp(5, (7, 3), 2)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 3), (3, 2)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 2 and isinstance(net[-1], torch.nn.Linear)


def test_feature_scaler_statistics_by_hand_and_constant_column():
    x = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [8.0, 5.0, 12.0]], dtype=DT)
    scaler = FeatureScaler(3).to(DT).fit(x)
    # population statistics: means (4, 5, 6), variances 26/3 and 56/3; the constant column keeps std 1
    assert torch.allclose(scaler.mean, torch.tensor([4.0, 5.0, 6.0], dtype=DT), rtol=1e-15)
    std = torch.tensor([math.sqrt(26 / 3), 1.0, math.sqrt(56 / 3)], dtype=DT)
    assert torch.allclose(scaler.std, std, rtol=1e-15)
    y = torch.tensor([[4.0 + 2 * std[0].item(), 7.0, 6.0 - std[2].item()]], dtype=DT)
    assert torch.allclose(scaler(y), torch.tensor([[2.0, 2.0, -1.0]], dtype=DT), rtol=1e-14)
    # frozen: refitting is explicit, the forward pass never updates the statistics
    scaler(torch.randn(10, 3, dtype=DT))
    assert torch.allclose(scaler.mean, torch.tensor([4.0, 5.0, 6.0], dtype=DT), rtol=1e-15)


def test_actor_is_a_max_times_sigmoid_of_its_network():
    torch.manual_seed(3)
    actor = Actor(4, (6,), a_max=2.5).to(DT)
    x = 10.0 * torch.randn(50, 4, dtype=DT)
    a = actor(x)
    assert a.shape == (50,)
    assert torch.allclose(a, 2.5 * torch.sigmoid(actor.net(x)[:, 0]), rtol=1e-15)
    assert bool(((a >= 0) & (a <= 2.5)).all()) and a.max() > 1.25 > a.min()


def test_quantile_critic_sorts_its_outputs_and_scales_the_action():
    torch.manual_seed(4)
    critic = QuantileCritic(3, (8,), n_quantiles=5, a_max=4.0).to(DT)
    x = torch.randn(6, 3, dtype=DT)
    action = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 0.5], dtype=DT)
    q = critic(x, action)
    assert q.shape == (6, 5)
    assert bool((q[:, 1:] >= q[:, :-1]).all())
    raw = critic.net(torch.cat([x, (action / 4.0)[:, None]], dim=1))
    assert torch.equal(q, torch.sort(raw, dim=1).values)
    with pytest.raises(RuntimeError):
        critic(x, action[:5])  # one action per state


def test_layer_norm_blocks_normalise_each_hidden_layer():
    """``layer_norm=True``: Linear -> LayerNorm -> ReLU; at init (scale 1, shift 0) the pre-activations
    of every hidden layer have mean 0 and variance 1 per row, whatever the input's scale."""
    net = mlp(3, (7, 5), 2, layer_norm=True)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU", "Linear"]
    x = 1000.0 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = net.double()
    h = net[1](net[0](x))
    assert h.mean(dim=1).abs().max().item() < 1e-10
    assert h.var(dim=1, correction=0).sub(1).abs().max().item() < 1e-4  # LayerNorm's eps = 1e-5
    actor = Actor(3, (4, 4), 2.0, layer_norm=True)
    critic = QuantileCritic(3, (4,), 5, 2.0, layer_norm=True)
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in actor.modules()) == 2
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in critic.modules()) == 1
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in Actor(3, (4, 4), 2.0).modules())
