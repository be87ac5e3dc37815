"""Layers, allocators, networks, losses and trainer of gradfolio.allocation."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio import risk
from gradfolio.allocation import (
    CalmarLoss, CVaRLoss, MaxDrawdownLoss, MeanReturnLoss, NormalizedTanhAllocator, SharpeLoss, SoftmaxAllocator,
    SortinoLoss, SparsemaxAllocator, StdLoss, Trainer, TurnoverLoss, make_loss, make_network,
)
from gradfolio.allocation.layers import TimeCollapse, TimeConv, TimeRNN
from gradfolio.data import make_windows, time_split
from gradfolio.errors import ConfigError, DataError, InfeasibleError

torch.set_num_threads(1)
D = torch.float64


def _xy(B=4, L=12, H=6, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.01 * torch.randn(B, 1, L, N, generator=g, dtype=D), 0.01 * torch.randn(B, 1, H, N, generator=g, dtype=D)


# -- layers ---------------------------------------------------------------------------------------

def test_time_conv_is_eq6_and_never_mixes_assets():
    conv = TimeConv(1, 2, kernel_size=3).double()
    x, _ = _xy()
    out = conv(x)
    K, b = conv.conv.weight[:, 0, :, 0], conv.conv.bias  # (2, 3)
    pad = torch.nn.functional.pad(x, (0, 0, 1, 1))
    i, j = 5, 3
    expected = b + (K * pad[0, 0, i:i + 3, j]).sum(-1)
    torch.testing.assert_close(out[0, :, i, j], expected)
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(conv(x[..., perm]), out[..., perm])


def test_time_rnn_shares_weights_across_assets_and_matches_per_asset_lstm():
    torch.manual_seed(0)
    layer = TimeRNN(1, hidden=3).double()
    x, _ = _xy()
    out = layer(x)  # (B, 3, L, N)
    ref, _ = layer.rnn(x[:, :, :, 2].transpose(1, 2))  # asset 2 alone: (B, L, 1)
    torch.testing.assert_close(out[:, :, :, 2], ref.transpose(1, 2))


@pytest.mark.parametrize("mode", ["last", "average", "attention"])
def test_time_collapse_shapes_and_values(mode):
    torch.manual_seed(0)
    x, _ = _xy()
    c = TimeCollapse(mode, channels=1).double()
    out = c(x)
    assert out.shape == (4, 1, 5)
    if mode == "last":
        torch.testing.assert_close(out, x[:, :, -1])
    elif mode == "average":
        torch.testing.assert_close(out, x.mean(2))
    else:  # convex combination over time: between min and max
        assert torch.all(out <= x.amax(2) + 1e-12) and torch.all(out >= x.amin(2) - 1e-12)


# -- allocators -----------------------------------------------------------------------------------

scores = st.lists(st.floats(-5, 5), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(scores, st.floats(0.05, 5))
def test_softmax_long_only_budget(z, temp):
    w = SoftmaxAllocator(temp)(torch.tensor([z], dtype=D))
    assert torch.all(w >= 0) and abs(float(w.sum()) - 1) < 1e-12


@settings(max_examples=60, deadline=None)
@given(scores)
def test_tanh_gross_exposure_one(z):
    if max(abs(v) for v in z) < 1e-3:
        return
    w = NormalizedTanhAllocator()(torch.tensor([z], dtype=D))
    assert abs(float(w.abs().sum()) - 1) < 1e-9
    assert torch.all(torch.sign(w) * torch.sign(torch.tensor([z], dtype=D)) >= 0)  # same side (or 0)


@settings(max_examples=80, deadline=None)
@given(scores, st.floats(0.1, 1.0))
def test_sparsemax_is_the_capped_simplex_projection(z, cap):
    n = len(z)
    cap = max(cap, 1.0 / n)
    zt = torch.tensor([z], dtype=D)
    w = SparsemaxAllocator(cap)(zt)[0].numpy()
    assert abs(w.sum() - 1) < 1e-9 and w.min() >= 0 and w.max() <= cap + 1e-12
    # KKT of the projection: w_i = clip(z_i - tau) with a common tau
    free = (w > 1e-9) & (w < cap - 1e-9)
    if free.any():
        taus = np.asarray(z)[free] - w[free]
        assert np.ptp(taus) < 1e-8
        tau = taus[0]
        assert np.all(np.asarray(z)[w <= 1e-9] <= tau + 1e-8)
        assert np.all(np.asarray(z)[w >= cap - 1e-9] >= tau + cap - 1e-8)


def test_sparsemax_against_cvxpy_and_gradient():
    cp = pytest.importorskip("cvxpy")
    z = torch.tensor([[0.3, -0.2, 0.9, 0.45, 0.05]], dtype=D)  # tau = 0.075, w = (.225, 0, .4, .375, 0)
    cap = 0.4
    v = cp.Variable(5)
    cp.Problem(cp.Minimize(cp.sum_squares(v - z[0].numpy())), [cp.sum(v) == 1, v >= 0, v <= cap]).solve(
        solver=cp.CLARABEL)
    w = SparsemaxAllocator(cap)(z)
    np.testing.assert_allclose(w[0].numpy(), v.value, atol=1e-6)
    np.testing.assert_allclose(w[0].numpy(), [0.225, 0, 0.4, 0.375, 0], atol=1e-12)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: SparsemaxAllocator(cap)(s), (z,))
    with pytest.raises(InfeasibleError, match="max_weight"):
        SparsemaxAllocator(0.1)(z)


# -- networks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dense", "maxout", "conv", "lstm", "rnn"])
@pytest.mark.parametrize("allocator", ["softmax", "tanh", "sparsemax"])
def test_networks_shapes_and_constraints(name, allocator):
    torch.manual_seed(0)
    size = {"lstm": {"hidden": 8}, "rnn": {"hidden": 8}, "conv": {"channels": (4,)}}.get(name, {"hidden": (8,)})
    net = make_network(name, n_assets=5, lookback=12, allocator=allocator, **size)
    x, _ = _xy()
    w = net.double()(x)
    assert w.shape == (4, 5)
    gross = w.abs().sum(-1) if allocator == "tanh" else w.sum(-1)
    torch.testing.assert_close(gross, torch.ones(4, dtype=D))
    with pytest.raises(DataError, match="expected"):
        net(x[:, 0])


def test_network_gradient_by_finite_differences():
    torch.manual_seed(0)
    net = make_network("lstm", 5, 12, hidden=3).double()
    x, y = _xy()

    def f(*ps):
        out = torch.func.functional_call(net, dict(zip([n for n, _ in net.named_parameters()], ps)), (x,))
        return SharpeLoss()(out, y, reduction="mean")

    assert torch.autograd.gradcheck(f, tuple(p.detach().clone().requires_grad_(True) for p in net.parameters()))


def test_unknown_names_raise_config_error():
    with pytest.raises(ConfigError, match="unknown"):
        make_network("transformer", 5, 12)
    with pytest.raises(ConfigError, match="unknown"):
        make_loss("omega")


# -- losses ---------------------------------------------------------------------------------------

def test_losses_equal_gradfolio_risk_on_portfolio_returns():
    w = torch.softmax(torch.randn(4, 5, dtype=D), -1)
    _, y = _xy(H=20)
    r = (y[:, 0] * w[:, None, :]).sum(-1)
    rn = r.numpy()
    cases = {
        SharpeLoss(): -np.array([risk.sharpe_ratio(v, periods_per_year=1) for v in rn]),
        SortinoLoss(): -np.array([risk.sortino_ratio(v, periods_per_year=1) for v in rn]),
        CalmarLoss(): -np.array([risk.calmar_ratio(v, periods_per_year=1) for v in rn]),
        MaxDrawdownLoss(): np.array([risk.max_drawdown(v) for v in rn]),
        CVaRLoss(0.9): np.array([risk.cvar(v, 0.9) for v in rn]),
        MeanReturnLoss(): -rn.mean(-1),
        StdLoss(): rn.std(-1, ddof=1),
    }
    for loss, expected in cases.items():
        np.testing.assert_allclose(loss(w, y).numpy(), expected, rtol=1e-10, err_msg=repr(loss))
    # Sharpe by hand
    np.testing.assert_allclose(SharpeLoss()(w, y).numpy(), -rn.mean(-1) / rn.std(-1, ddof=1), rtol=1e-10)


def test_losses_compose_pickle_and_reduce():
    w = torch.softmax(torch.randn(4, 5, dtype=D), -1)
    w_prev = torch.full((4, 5), 0.2, dtype=D)
    _, y = _xy()
    combo = SharpeLoss() + 0.1 * TurnoverLoss() - 2 * MeanReturnLoss() / 4 + 1.0
    expected = (SharpeLoss()(w, y) + 0.1 * (w - w_prev).abs().sum(-1) - 0.5 * MeanReturnLoss()(w, y) + 1.0)
    torch.testing.assert_close(combo(w, y, w_prev=w_prev), expected)
    torch.testing.assert_close(combo(w, y, w_prev=w_prev, reduction="mean"), expected.mean())
    torch.testing.assert_close(combo(w, y, w_prev=w_prev, reduction="sum"), expected.sum())
    torch.testing.assert_close((-SharpeLoss())(w, y), -SharpeLoss()(w, y))
    again = pickle.loads(pickle.dumps(combo))
    torch.testing.assert_close(again(w, y, w_prev=w_prev), expected)
    with pytest.raises(ConfigError, match="w_prev"):
        combo(w, y)
    with pytest.raises(DataError, match="expected"):
        SharpeLoss()(w, y[:, 0])


# -- trainer --------------------------------------------------------------------------------------

def _planted_market(n_days=700, n_assets=4, seed=0):
    """Asset 0 earns a positive drift only after a positive day (a signal visible in X)."""
    rng = np.random.default_rng(seed)
    R = 0.01 * rng.standard_normal((n_days, n_assets))
    R[1:, 0] += 0.006 * np.sign(R[:-1, 0])
    idx = pd.date_range("2000-01-03", periods=n_days, freq="B", name="date")
    return pd.DataFrame(R, index=idx, columns=[f"a{i}" for i in range(n_assets)])


def _split(horizon=5):
    w = make_windows(_planted_market(), lookback=10, horizon=horizon)
    return time_split(w, 0.2, 0.05)[:2]


def test_training_lowers_the_loss_on_a_planted_signal():
    train, val = _split(horizon=1)
    torch.manual_seed(0)
    net = make_network("lstm", 4, 10, hidden=8, collapse="last")
    trainer = Trainer(net, MeanReturnLoss(), lr=3e-2, max_epochs=20, patience=20, seed=0)
    before = trainer.evaluate(val)
    hist = trainer.fit(train, val)
    after = trainer.evaluate(val)
    assert after == pytest.approx(hist.best_val_loss)
    assert after < before - 0.0005  # >= 0.05 %/day better; perfect timing of asset 0 earns ~0.3 %/day
    assert hist.train_loss[-1] < hist.train_loss[0]


def test_early_stopping_restores_the_best_weights():
    train, val = _split()
    torch.manual_seed(0)
    net = make_network("dense", 4, 10, hidden=(16,))
    hist = Trainer(net, SharpeLoss(), lr=5e-2, max_epochs=40, patience=2, seed=0).fit(train, val)
    assert hist.stopped_early and hist.epochs == hist.best_epoch + 3
    assert Trainer(net, SharpeLoss()).evaluate(val) == pytest.approx(hist.best_val_loss, rel=1e-6)


class _Killer:
    """A tracker that kills the run at a given epoch (a simulated crash after the checkpoint)."""

    def __init__(self, at):
        self.at = at

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        if step == self.at:
            raise KeyboardInterrupt

    def close(self):
        pass


@pytest.mark.parametrize("optimizer", ["adam", "ana"])
def test_resume_after_kill_is_bitwise_identical(tmp_path, optimizer):
    train, val = _split()
    loss = SharpeLoss() + 0.01 * TurnoverLoss()

    def build(tracker=None, ckpt=None):
        torch.manual_seed(1)
        net = make_network("lstm", 4, 10, hidden=4, dropout=0.2)
        return Trainer(net, loss, optimizer=optimizer, lr=1e-2, max_epochs=5, patience=15, seed=3,
                       checkpoint_dir=ckpt, tracker=tracker)

    ref = build()
    h_ref = ref.fit(train, val)
    killed = build(_Killer(2), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(train, val)
    resumed = build(None, tmp_path)
    h = resumed.fit(train, val, resume=True)
    assert h.val_loss == h_ref.val_loss and h.train_loss == h_ref.train_loss
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "trainer.pt").exists()


def test_trainer_validates_arguments():
    net = make_network("dense", 4, 10)
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(net, SharpeLoss(), batch_size=0)
    with pytest.raises(ConfigError, match="optimizer"):
        Trainer(net, SharpeLoss(), optimizer="lbfgs")


def test_markowitz_net_matches_the_convex_allocator_on_the_sample_covariance():
    torch.manual_seed(0)
    net = make_network("markowitz", 5, 12, hidden=4, gamma=2.0, alpha=0.5).double()
    x, y = _xy()
    w = net(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=D))
    # same problem with the explicit sample covariance S = cov(X_0) (ddof 1)
    S = torch.stack([torch.cov(x[b, 0].T) for b in range(4)])
    w_ref = net.allocator(net.scores(x), cov=S)
    torch.testing.assert_close(w, w_ref, atol=1e-7, rtol=0)
    SharpeLoss()(w, y, reduction="mean").backward()
    assert net.allocator.log_gamma.grad is not None and net.head.weight.grad.abs().sum() > 0
