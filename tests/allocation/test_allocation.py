"""Layers, allocators, networks, losses and trainer of gradfolio.allocation."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio import risk
from gradfolio.allocation import (
    CalmarLoss, ConvexAllocator, CVaRLoss, MarkowitzNet, MaxDrawdownLoss, MeanReturnLoss, NormalizedTanhAllocator,
    SharpeLoss, SoftmaxAllocator, SortinoLoss, SparsemaxAllocator, StdLoss, Trainer, TurnoverLoss, make_allocator,
    make_loss, make_network,
)
from gradfolio.allocation.layers import Maxout, TimeCollapse, TimeConv, TimeRNN
from gradfolio.data import make_windows, time_split
from gradfolio.errors import ConfigError, DataError, InfeasibleError
from gradfolio.solvers import PortfolioConstraints

torch.set_num_threads(1)
D = torch.float64


def _xy(B=4, L=12, H=6, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.01 * torch.randn(B, 1, L, N, generator=g, dtype=D), 0.01 * torch.randn(B, 1, H, N, generator=g, dtype=D)


def _gradcheck_params(module, f):
    """Finite-difference check of ``f(module with parameters ps)`` with respect to every parameter."""
    names = [n for n, _ in module.named_parameters()]

    def call(*ps):
        return f(lambda x: torch.func.functional_call(module, dict(zip(names, ps)), (x,)))

    return torch.autograd.gradcheck(call, tuple(p.detach().clone().requires_grad_(True) for p in module.parameters()))


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


def test_maxout_against_hand_computed_values():
    layer = Maxout(2, 2, pieces=3).double()
    with torch.no_grad():  # unit 0: pieces x0, x1 + 0.5, -x0 - x1; unit 1: x0 + x1, 2 x0, 1 - 3 x1
        layer.linear.weight.copy_(torch.tensor([[1, 0], [0, 1], [-1, -1], [1, 1], [2, 0], [0, -3]], dtype=D))
        layer.linear.bias.copy_(torch.tensor([0, 0.5, 0, 0, 0, 1], dtype=D))
    x = torch.tensor([[2.0, 1.0], [-1.0, -2.0], [0.0, 0.0]], dtype=D)
    # (2, 1): max(2, 1.5, -3) = 2, max(3, 4, -2) = 4; (-1, -2): max(-1, -1.5, 3) = 3, max(-3, -2, 7) = 7;
    # (0, 0): max(0, 0.5, 0) = 0.5, max(0, 0, 1) = 1
    torch.testing.assert_close(layer(x), torch.tensor([[2.0, 4.0], [3.0, 7.0], [0.5, 1.0]], dtype=D))
    with pytest.raises(ConfigError, match="pieces"):
        Maxout(2, 2, pieces=0)


@pytest.mark.parametrize("mode", ["last", "average"])
def test_time_collapse_last_and_average(mode):
    x, _ = _xy()
    out = TimeCollapse(mode).double()(x)
    torch.testing.assert_close(out, x[:, :, -1] if mode == "last" else x.mean(2))


def test_attention_collapse_against_a_loop_reference():
    torch.manual_seed(0)
    C = 3
    layer = TimeCollapse("attention", channels=C).double()
    x = torch.randn(2, C, 4, 3, dtype=D)
    out = layer(x).detach()
    assert out.shape == (2, C, 3)
    A, a, v = layer.affine.weight.tolist(), layer.affine.bias.tolist(), layer.context.tolist()
    for b in range(2):
        for n in range(3):
            hs = [x[b, :, t, n].tolist() for t in range(4)]
            s = [sum(math.tanh(sum(A[i][j] * h[j] for j in range(C)) + a[i]) * v[i] for i in range(C)) for h in hs]
            e = [math.exp(si) for si in s]
            attn = [ei / sum(e) for ei in e]
            expected = [sum(attn[t] * hs[t][c] for t in range(4)) for c in range(C)]
            np.testing.assert_allclose(out[b, :, n].numpy(), expected, rtol=1e-12)
    with torch.no_grad():
        layer.context.zero_()  # equal scores: uniform attention = the average
    torch.testing.assert_close(layer(x), x.mean(2))


# -- allocators -----------------------------------------------------------------------------------

DTYPES = st.sampled_from([torch.float32, torch.float64])
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _batches(elements):
    """``(B, N)`` score matrices with B in 1..4, N in 2..12."""
    rows = st.integers(2, 12).map(lambda n: st.lists(elements, min_size=n, max_size=n))
    return rows.flatmap(lambda row: st.lists(row, min_size=1, max_size=4))


scores = _batches(st.floats(-5, 5))


@settings(max_examples=60, deadline=None)
@given(scores, st.floats(0.05, 5), DTYPES)
def test_softmax_long_only_budget(z, temp, dtype):
    w = SoftmaxAllocator(temp)(torch.tensor(z, dtype=dtype))
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(len(z), dtype=dtype), rtol=0, atol=TOL[dtype])


@settings(max_examples=100, deadline=None)
@given(_batches(st.floats(-5, 5, width=32, allow_subnormal=False) | st.sampled_from([0.0, 1e-30, -1e-8])), DTYPES)
def test_tanh_gross_exposure_one_also_for_zero_and_tiny_scores(z, dtype):
    zt = torch.tensor(z, dtype=dtype)
    w = NormalizedTanhAllocator()(zt)
    torch.testing.assert_close(w.abs().sum(-1), torch.ones(len(z), dtype=dtype), rtol=0, atol=TOL[dtype])
    zero_rows = (zt == 0).all(-1)
    torch.testing.assert_close(w[zero_rows], torch.full_like(w[zero_rows], 1 / zt.shape[-1]))  # 1/N fallback
    rest = w[~zero_rows]
    assert torch.all(torch.sign(rest) == torch.sign(zt[~zero_rows]))  # same side, 0 only for a zero score


def test_tanh_falls_back_to_equal_weights_on_subnormal_scores_and_has_fd_gradient():
    w = NormalizedTanhAllocator()(torch.tensor([[1e-40, -1e-41, 0.0]], dtype=torch.float32))  # subnormal float32
    torch.testing.assert_close(w, torch.full((1, 3), 1 / 3))
    z = torch.tensor([[0.3, -1.2, 0.05, 2.0], [-0.4, 0.7, 1.1, -0.2]], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(NormalizedTanhAllocator(), (z,))


@settings(max_examples=80, deadline=None)
@given(scores, st.floats(0.1, 1.0), DTYPES)
def test_sparsemax_is_the_capped_simplex_projection(z, cap, dtype):
    n = len(z[0])
    cap = max(cap, 1.0 / n)
    tol = 10 * TOL[dtype]
    W = SparsemaxAllocator(cap)(torch.tensor(z, dtype=dtype)).double().numpy()
    for w, zb in zip(W, np.asarray(z)):
        assert abs(w.sum() - 1) < tol and w.min() >= 0 and w.max() <= cap + tol
        # KKT of the projection: w_i = clip(z_i - tau) with a common tau
        free = (w > tol) & (w < cap - tol)
        if free.any():
            taus = zb[free] - w[free]
            assert np.ptp(taus) < tol
            tau = taus[0]
            assert np.all(zb[w <= tol] <= tau + tol)
            assert np.all(zb[w >= cap - tol] >= tau + cap - tol)


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


def test_make_allocator_by_name_with_params_and_errors():
    z = torch.tensor([[0.3, -0.2, 0.9, 0.45, 0.05]], dtype=D)
    torch.testing.assert_close(make_allocator("sparsemax", max_weight=0.4)(z), SparsemaxAllocator(0.4)(z))
    torch.testing.assert_close(make_allocator("softmax", temperature=0.5)(z), torch.softmax(z / 0.5, -1))
    layer = make_allocator("convex", n_assets=5, constraints={"long_only": True}, alpha=0.3)
    assert isinstance(layer, ConvexAllocator) and layer.n_assets == 5 and layer.problem.constraints.long_only
    module = SoftmaxAllocator()
    assert make_allocator(module) is module
    with pytest.raises(ConfigError, match="max_weight"):
        make_allocator("sparsemax", max_weight=2.0)
    with pytest.raises(ConfigError, match=r"^allocator.cap: Extra inputs are not permitted"):
        make_allocator("sparsemax", cap=0.3)
    with pytest.raises(ConfigError, match="n_assets"):
        make_allocator("convex")
    with pytest.raises(ConfigError, match="module"):
        make_allocator(module, temperature=2.0)
    with pytest.raises(ConfigError, match="unknown"):
        make_allocator("argmax")


# -- networks -------------------------------------------------------------------------------------

SIZES = {"lstm": {"hidden": 8}, "rnn": {"hidden": 8}, "conv": {"channels": (4,)}, "dense": {"hidden": (8,)},
         "maxout": {"hidden": (8,)}}


@pytest.mark.parametrize("name", ["dense", "maxout", "conv", "lstm", "rnn"])
@pytest.mark.parametrize("allocator", ["softmax", "tanh", "sparsemax"])
def test_networks_shapes_and_constraints(name, allocator):
    net = make_network(name, n_assets=5, lookback=12, allocator=allocator, seed=0, **SIZES[name])
    x, _ = _xy()
    w = net.double()(x)
    assert w.shape == (4, 5)
    gross = w.abs().sum(-1) if allocator == "tanh" else w.sum(-1)
    torch.testing.assert_close(gross, torch.ones(4, dtype=D))
    with pytest.raises(DataError, match="expected"):
        net(x[:, 0])


def test_allocator_params_by_name():
    net = make_network("dense", 5, 12, hidden=(8,), allocator="sparsemax", allocator_params={"max_weight": 0.3},
                       seed=0).double()
    x, _ = _xy()
    w = net(x).detach()
    assert float(w.max()) <= 0.3 + 1e-12
    torch.testing.assert_close(w, SparsemaxAllocator(0.3)(net.scores(x)))
    with pytest.raises(ConfigError, match="max_weight"):
        make_network("dense", 5, 12, allocator="sparsemax", allocator_params={"max_weight": 0.0})


@pytest.mark.parametrize("name", ["dense", "conv", "lstm"])
def test_convex_allocator_in_any_network_uses_the_window_covariance(name):
    params = {"constraints": PortfolioConstraints(long_only=True), "alpha": 0.5, "gamma": 2.0}
    net = make_network(name, 5, 12, allocator="convex", allocator_params=params, seed=0, **SIZES[name]).double()
    x, y = _xy()
    w = net(x)
    assert (w >= -1e-8).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=D))
    S = torch.stack([torch.cov(x[b, 0].T) for b in range(4)])  # sample covariance (ddof 1) of each window
    reference = ConvexAllocator(5, PortfolioConstraints(long_only=True), gamma=2.0, alpha=0.5)
    torch.testing.assert_close(w, reference(net.scores(x), cov=S), atol=1e-7, rtol=0)
    SharpeLoss()(w, y, reduction="mean").backward()
    first = next(net.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    with pytest.raises(DataError, match="n_assets=5"):
        net(torch.randn(2, 1, 12, 4, dtype=D))


def test_markowitz_net_matches_the_convex_allocator_on_the_sample_covariance():
    net = make_network("markowitz", 5, 12, hidden=4, gamma=2.0, alpha=0.5, seed=0).double()
    x, y = _xy()
    w = net(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=D))
    # same problem with the explicit sample covariance S = cov(X_0) (ddof 1)
    S = torch.stack([torch.cov(x[b, 0].T) for b in range(4)])
    w_ref = net.allocator(net.scores(x), cov=S)
    torch.testing.assert_close(w, w_ref, atol=1e-7, rtol=0)
    SharpeLoss()(w, y, reduction="mean").backward()
    assert net.allocator.log_gamma.grad is not None and net.head.weight.grad.abs().sum() > 0
    for bad in ({"allocator": "softmax"}, {"allocator_params": {"alpha": 1.0}}):
        with pytest.raises(ConfigError, match="MarkowitzNet.*convex allocator"):
            MarkowitzNet(5, **bad)


@pytest.mark.parametrize(("name", "params", "named"), [
    ("dense", {"dropout": 1.5}, "dropout"),
    ("dense", {"hidden": (0,)}, "hidden"),
    ("maxout", {"pieces": 0}, "pieces"),
    ("conv", {"channels": (4, 0)}, "channels"),
    ("conv", {"kernel_size": 4}, "kernel_size"),
    ("lstm", {"hidden": 0}, "hidden"),
    ("lstm", {"dropout": -0.1}, "dropout"),
    ("rnn", {"num_layers": 0}, "num_layers"),
    ("lstm", {"collapse": "max"}, "^network.collapse"),
    ("dense", {"activation": "gelu"}, "activation"),
    ("dense", {"width": 3}, "width"),
    ("dense", {"seed": 1.5}, "seed"),
])
def test_make_network_bad_parameters_raise_config_error_naming_them(name, params, named):
    with pytest.raises(ConfigError, match=named):
        make_network(name, 5, 12, **params)


def test_unknown_names_raise_config_error():
    with pytest.raises(ConfigError, match="unknown"):
        make_network("transformer", 5, 12)
    with pytest.raises(ConfigError, match="unknown"):
        make_loss("omega")


def test_make_network_seed_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = (make_network("lstm", 5, 12, hidden=4, seed=7) for _ in range(2))
    c = make_network("lstm", 5, 12, hidden=4, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    for (k, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    make_network("lstm", 5, 12, hidden=4)  # seed=None draws from the global RNG
    assert not torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ["dense", "maxout", "conv", "lstm"])
def test_network_gradients_by_finite_differences(name):
    size = {"dense": {"hidden": (3,)}, "maxout": {"hidden": (3,), "pieces": 2}, "conv": {"channels": (2,),
            "kernel_size": 3}, "lstm": {"hidden": 3}}[name]
    net = make_network(name, 4, 6, seed=0, **size).double()
    x, y = _xy(B=3, L=6, N=4)
    assert _gradcheck_params(net, lambda f: f(x))  # weights (B, N)
    assert _gradcheck_params(net, lambda f: SharpeLoss()(f(x), y, reduction="mean"))


# -- losses ---------------------------------------------------------------------------------------

def _portfolio(H=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(torch.randn(4, 5, generator=g, dtype=D), -1)
    _, y = _xy(H=H, seed=seed)
    return w, y, (y[:, 0] * w[:, None, :]).sum(-1)


def test_losses_equal_gradfolio_risk_on_portfolio_returns():
    w, y, r = _portfolio()
    rn = r.numpy()
    cases = {
        SharpeLoss(): -np.array([risk.sharpe_ratio(v, periods_per_year=1) for v in rn]),
        SharpeLoss(risk_free=1e-3, periods_per_year=252): -np.array([risk.sharpe_ratio(v, 1e-3) for v in rn]),
        SortinoLoss(): -np.array([risk.sortino_ratio(v, periods_per_year=1) for v in rn]),
        SortinoLoss(target=1e-3, periods_per_year=252): -np.array([risk.sortino_ratio(v, 1e-3) for v in rn]),
        CalmarLoss(): -np.array([risk.calmar_ratio(v, periods_per_year=1) for v in rn]),
        CalmarLoss(periods_per_year=252): -np.array([risk.calmar_ratio(v) for v in rn]),
        MaxDrawdownLoss(): np.array([risk.max_drawdown(v) for v in rn]),
        CVaRLoss(0.9): np.array([risk.cvar(v, 0.9) for v in rn]),
        MeanReturnLoss(): -rn.mean(-1),
        StdLoss(): rn.std(-1, ddof=1),
    }
    for loss, expected in cases.items():
        np.testing.assert_allclose(loss(w, y).numpy(), expected, rtol=1e-10, err_msg=repr(loss))
    # Sharpe by hand
    np.testing.assert_allclose(SharpeLoss()(w, y).numpy(), -rn.mean(-1) / rn.std(-1, ddof=1), rtol=1e-10)


def test_ratio_losses_are_finite_without_downside_drawdown_or_volatility():
    w = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=D)
    up = torch.tensor([0.01, 0.02, 0.005, 0.01, 0.015], dtype=D)  # never falls: no downside, no drawdown
    y = torch.stack([up, torch.full_like(up, 0.003)])[:, None, :, None].expand(2, 1, 5, 2)  # 2nd: constant
    r = y[:, 0, :, 0]
    eps = 1e-4
    cagr = torch.expm1(torch.log1p(r).mean(-1))
    torch.testing.assert_close(SortinoLoss(eps=eps)(w, y), -r.mean(-1) / eps)
    torch.testing.assert_close(SortinoLoss(eps=eps, periods_per_year=4)(w, y), -2 * r.mean(-1) / eps)
    torch.testing.assert_close(CalmarLoss(eps=eps)(w, y), -cagr / eps)
    torch.testing.assert_close(SharpeLoss(eps=eps)(w, y)[1], -r[1].mean() / eps)
    for loss in (SortinoLoss(), CalmarLoss(), SharpeLoss()):
        wg = w.clone().requires_grad_(True)
        loss(wg, y, reduction="sum").backward()
        assert torch.isfinite(wg.grad).all(), repr(loss)


def test_losses_by_finite_differences():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 5, generator=g, dtype=D)
    w_prev = torch.softmax(torch.randn(3, 5, generator=g, dtype=D), -1).requires_grad_(True)
    _, y = _xy(B=3, H=12, seed=3)
    losses = [SharpeLoss(), SortinoLoss(), CalmarLoss(), MaxDrawdownLoss(), MaxDrawdownLoss(compounded=False),
              CVaRLoss(0.8), MeanReturnLoss(), StdLoss(), TurnoverLoss(0.5), SharpeLoss() + 0.1 * TurnoverLoss()]
    for loss in losses:
        wz = torch.softmax(z, -1).detach().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda w, wp, loss=loss: loss(w, y, w_prev=wp), (wz, w_prev)), repr(loss)


def test_losses_compose_pickle_and_reduce():
    w, y, _ = _portfolio(H=6)
    w_prev = torch.full((4, 5), 0.2, dtype=D)
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


def test_losses_validate_horizon_and_arguments():
    w, y, _ = _portfolio(H=1)
    for loss in (SharpeLoss(), StdLoss(), MeanReturnLoss() + 0.5 * StdLoss()):
        with pytest.raises(ConfigError, match="horizon 1 .*horizon >= 2"):
            loss(w, y)
    assert torch.isfinite(SortinoLoss()(w, y)).all() and torch.isfinite(CalmarLoss()(w, y)).all()
    bad = [(CVaRLoss, {"level": 0.0}, "level"), (CVaRLoss, {"level": 1.5}, "level"),
           (TurnoverLoss, {"cost": -1e-3}, "cost"), (TurnoverLoss, {"cost": math.nan}, "cost"),
           (SharpeLoss, {"eps": 0.0}, "eps"), (SortinoLoss, {"periods_per_year": -252}, "periods_per_year"),
           (CalmarLoss, {"eps": -1.0}, "eps"), (StdLoss, {"periods_per_year": 0}, "periods_per_year")]
    for cls, params, named in bad:
        with pytest.raises(ConfigError, match=f"{cls.__name__}: {named}="):
            cls(**params)
    with pytest.raises(ConfigError, match="level"):
        make_loss("cvar", level=95)


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
    net = make_network("lstm", 4, 10, hidden=8, collapse="last", seed=0)
    trainer = Trainer(net, MeanReturnLoss(), lr=3e-2, max_epochs=20, patience=20, seed=0)
    before = trainer.evaluate(val)
    hist = trainer.fit(train, val)
    after = trainer.evaluate(val)
    assert after == pytest.approx(hist.best_val_loss)
    assert after < before - 0.0005  # >= 0.05 %/day better; perfect timing of asset 0 earns ~0.3 %/day
    assert hist.train_loss[-1] < hist.train_loss[0]


@pytest.mark.parametrize("loss", [SortinoLoss(), CalmarLoss()])
def test_sortino_and_calmar_train_at_a_short_horizon(loss):
    train, val = _split(horizon=5)  # many 5-day windows have no downside / no drawdown
    trainer = Trainer(make_network("dense", 4, 10, hidden=(16,), seed=0), loss, lr=1e-2, max_epochs=10, patience=10)
    before = trainer.evaluate(val)
    hist = trainer.fit(train, val)
    assert all(math.isfinite(v) for v in hist.train_loss + hist.val_loss)
    assert hist.train_loss[-1] < hist.train_loss[0] and hist.best_val_loss < before


def test_early_stopping_restores_the_best_weights():
    train, val = _split()
    net = make_network("dense", 4, 10, hidden=(16,), seed=0)
    hist = Trainer(net, SharpeLoss(), lr=5e-2, max_epochs=40, patience=2, seed=0).fit(train, val)
    assert hist.stopped_early and hist.epochs == hist.best_epoch + 3
    assert Trainer(net, SharpeLoss()).evaluate(val) == pytest.approx(hist.best_val_loss, rel=1e-6)


def test_fit_is_seeded_and_leaves_the_global_rng_alone():
    train, val = _split()

    def run():
        net = make_network("lstm", 4, 10, hidden=4, dropout=0.3, seed=0)
        return Trainer(net, SharpeLoss(), lr=1e-2, max_epochs=2, seed=5).fit(train, val).train_loss

    state = torch.get_rng_state()
    first = run()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # another global state: same result
    assert run() == first


def test_previous_weights_are_eval_mode_without_grad_and_keep_the_mode():
    net = make_network("dense", 4, 10, hidden=(16,), dropout=0.5, seed=0).double()
    trainer = Trainer(net, TurnoverLoss(), dtype=D)
    train, _ = _split()
    X = train.X.double()
    idx = torch.tensor([0, 5, 6])
    net.train()
    w_prev = trainer._previous_weights(X, idx)
    assert net.training and not w_prev.requires_grad
    with torch.no_grad():
        expected = net.eval()(X[[0, 4, 5]])  # window 0 is its own predecessor
    torch.testing.assert_close(w_prev, expected)


@pytest.mark.parametrize("optimizer", ["adam", "ana"])
def test_resume_after_kill_is_bitwise_identical(tmp_path, optimizer, recording_tracker):
    train, val = _split()
    loss = SharpeLoss() + 0.01 * TurnoverLoss()

    def build(init_seed, tracker=None, ckpt=None):
        net = make_network("lstm", 4, 10, hidden=4, dropout=0.2, seed=init_seed)
        return Trainer(net, loss, optimizer=optimizer, lr=1e-2, max_epochs=5, patience=15, seed=3,
                       checkpoint_dir=ckpt, tracker=tracker)

    ref = build(1)
    h_ref = ref.fit(train, val)
    killed = recording_tracker(kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        build(1, killed, tmp_path).fit(train, val)
    # another initialisation: only the checkpoint can bring the resumed run back onto the reference
    recorder = recording_tracker()
    resumed = build(99, recorder, tmp_path)
    h = resumed.fit(train, val, resume=True)
    assert recorder.steps == [3, 4]  # only the epochs after the checkpoint are trained
    # both tracked runs carry the parameters; the resumed one says where it started
    assert killed.params["start_epoch"] == 0 and recorder.params["start_epoch"] == 3
    assert {k: v for k, v in recorder.params.items() if k != "start_epoch"} == {
        k: v for k, v in killed.params.items() if k != "start_epoch"}
    assert h.val_loss == h_ref.val_loss and h.train_loss == h_ref.train_loss
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_checks_the_checkpoint(tmp_path):
    train, val = _split()

    def build(ckpt=tmp_path, hidden=(8,), lr=1e-2, loss=SharpeLoss()):
        return Trainer(make_network("dense", 4, 10, hidden=hidden, seed=0), loss, lr=lr, max_epochs=1,
                       checkpoint_dir=ckpt)

    with pytest.raises(ConfigError, match="checkpoint_dir"):
        build(ckpt=None).fit(train, val, resume=True)
    build().fit(train, val)
    for changed, named in (({"lr": 1e-3}, "lr: checkpoint 0.01, now 0.001"), ({"hidden": (4,)}, "parameters"),
                           ({"loss": SortinoLoss()}, "loss")):
        with pytest.raises(ConfigError, match=named):
            build(**changed).fit(train, val, resume=True)
    (tmp_path / "trainer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"Trainer: cannot read .*trainer\.pt.*delete"):
        build().fit(train, val, resume=True)


def test_l1_l2_penalty_value_and_effect():
    net = make_network("dense", 4, 10, hidden=(8,), seed=0)
    trainer = Trainer(net, SharpeLoss(), l1=0.01, l2=0.1)
    matrices = [net.body[2].weight, net.body[5].weight]  # the two Linear layers' weights (no biases)
    assert len([p for p in net.parameters() if p.ndim > 1]) == len(matrices)
    expected = sum(0.01 * m.abs().sum() + 0.1 * m.pow(2).sum() for m in matrices)
    torch.testing.assert_close(trainer._penalty(), expected)

    train, val = _split()

    def weight_norm(l1):
        model = make_network("dense", 4, 10, hidden=(8,), seed=0)
        Trainer(model, SharpeLoss(), lr=1e-2, l1=l1, max_epochs=5, patience=5).fit(train, val)
        return sum(p.detach().abs().sum().item() for p in model.parameters() if p.ndim > 1)

    assert weight_norm(0.01) < 0.5 * weight_norm(0.0)


def test_progress_callback_reports_every_epoch(capsys):
    train, val = _split()
    calls = []
    hist = Trainer(make_network("dense", 4, 10, hidden=(4,), seed=0), SharpeLoss(), max_epochs=3, patience=5,
                   progress=lambda *args: calls.append(args)).fit(train, val)
    assert [c[:3] for c in calls] == [("training", 1, 3), ("training", 2, 3), ("training", 3, 3)]
    assert calls[-1][3] == (f"train {hist.train_loss[-1]:.4f}  val {hist.val_loss[-1]:.4f}  "
                            f"best {hist.best_val_loss:.4f}")
    assert capsys.readouterr().out == ""  # the library draws nothing itself


def test_trainer_validates_arguments():
    net = make_network("dense", 4, 10)
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(net, SharpeLoss(), batch_size=0)
    with pytest.raises(ConfigError, match="optimizer"):
        Trainer(net, SharpeLoss(), optimizer="lbfgs")
    train, val = _split(horizon=1)
    with pytest.raises(ConfigError, match="horizon"):
        Trainer(net, SharpeLoss(), max_epochs=1).fit(train, val)
    y = train.y.clone()
    y[7, 0, 0, 1] = math.nan
    with pytest.raises(DataError, match=r"loss is nan at epoch 0 .* dated \d{4}-\d\d-\d\d to .*NaN"):
        Trainer(net, MeanReturnLoss(), max_epochs=1).fit(dataclasses.replace(train, y=y), val)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_network_loss_and_trainer_step_on_cuda():
    train, val = _split()
    cpu = make_network("lstm", 4, 10, hidden=8, seed=0).double()
    gpu = make_network("lstm", 4, 10, hidden=8, seed=0).double().cuda()
    x, y = train.X[:16].double(), train.y[:16].double()
    w = gpu(x.cuda())
    assert w.device.type == "cuda"
    torch.testing.assert_close(w.cpu(), cpu(x))
    torch.testing.assert_close(SharpeLoss()(w, y.cuda()).cpu(), SharpeLoss()(cpu(x), y))
    before = [p.detach().clone() for p in gpu.parameters()]
    hist = Trainer(gpu, SharpeLoss() + 0.01 * TurnoverLoss(), max_epochs=1, device="cuda", dtype=D).fit(train, val)
    assert math.isfinite(hist.train_loss[0]) and all(p.device.type == "cuda" for p in gpu.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, gpu.parameters()))
