"""ConvexAllocator and MuFactorHead: closed form, gradients to every input, learnable gamma."""

from __future__ import annotations

import pytest
import torch

from gradfolio.allocation.convex import ConvexAllocator, MuFactorHead
from gradfolio.errors import ConfigError, InfeasibleError
from gradfolio.solvers import PortfolioConstraints


def test_budget_only_closed_form():
    # min 1/2 g w'Sw - mu'w + 1/2 a |w|^2, 1'w = 1  =>  w = M^-1 (mu + l 1), M = g S + a I.
    gen = torch.Generator().manual_seed(0)
    B, N = 4, 6
    X = torch.randn(B, 30, N, generator=gen, dtype=torch.float64)
    S = X.mT @ X / 30
    mu = 0.1 * torch.randn(B, N, generator=gen, dtype=torch.float64)
    gamma, alpha = 2.5, 0.1
    M = gamma * S + alpha * torch.eye(N, dtype=torch.float64)
    Mi_mu, Mi_1 = torch.linalg.solve(M, mu), torch.linalg.solve(M, torch.ones(B, N, dtype=torch.float64))
    lam = (1 - Mi_mu.sum(-1, keepdim=True)) / Mi_1.sum(-1, keepdim=True)
    w = ConvexAllocator(N, gamma=gamma, alpha=alpha)(mu, cov=S)
    torch.testing.assert_close(w, Mi_mu + lam * Mi_1, rtol=1e-8, atol=1e-9)


def test_network_end_to_end_gradients():
    torch.manual_seed(0)
    head = MuFactorHead(in_features=5, n_assets=7, n_factors=2).double()
    layer = ConvexAllocator(7, PortfolioConstraints(long_only=True, max_weight=0.4, turnover=0.5),
                            gamma=3.0, alpha=0.05, learn_gamma=True).double()
    feats = torch.randn(3, 5, dtype=torch.float64)
    w_prev = torch.full((3, 7), 1 / 7, dtype=torch.float64, requires_grad=True)
    mu, factor = head(feats)
    assert mu.shape == (3, 7) and factor.shape == (3, 2, 7)
    w = layer(mu, factor=factor, w_prev=w_prev)
    assert w.shape == (3, 7) and (w >= -1e-8).all() and (w <= 0.4 + 1e-8).all()
    assert ((w - w_prev).abs().sum(-1) <= 0.5 + 1e-8).all()
    returns = torch.randn(3, 7, dtype=torch.float64)
    (-(w * returns).sum()).backward()
    for p in (head.mu.weight, head.factor.weight, layer.log_gamma, w_prev):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_per_call_gamma_overrides_default():
    gen = torch.Generator().manual_seed(1)
    F = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    mu = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    layer = ConvexAllocator(5, PortfolioConstraints(long_only=True), gamma=1.0)
    torch.testing.assert_close(layer(mu, factor=F, gamma=4.0), ConvexAllocator(5, PortfolioConstraints(long_only=True), gamma=4.0)(mu, factor=F))


def test_errors():
    with pytest.raises(InfeasibleError):
        ConvexAllocator(4, PortfolioConstraints(long_only=True, max_weight=0.1))
    with pytest.raises(ConfigError, match="gamma"):
        ConvexAllocator(4, gamma=0.0, learn_gamma=True)
