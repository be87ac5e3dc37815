"""The standard form's structured pieces: the pair rows of leverage and turnover in ``G' diag(d) G``."""

from __future__ import annotations

import numpy as np
import torch

from gradfolio.solvers import ConvexProblem, Group, PortfolioConstraints
from gradfolio.solvers.qp.standard_form import PairRows, StandardForm


def lev_turn_spec(n: int) -> PortfolioConstraints:
    groups = [Group(list(range(3)), upper=0.25, name="g1"), Group(list(range(3, 7)), lower=0.1, upper=0.4, name="g2")]
    return PortfolioConstraints(max_weight=0.3, groups=groups, leverage=1.4, turnover=0.6)


def form_of(spec: PortfolioConstraints, n: int, B: int, gen: torch.Generator) -> StandardForm:
    t = ConvexProblem(n, spec).compiled.tensors(torch.float64, torch.device("cpu"))
    G, h = t["G"], t["h0"].expand(B, -1)
    perm = torch.argsort(((G != 0).sum(dim=-1) == 1).int(), stable=True)  # bound rows last, as solve_qp does
    nv = G.shape[1]
    M = torch.randn(B, nv, nv, generator=gen, dtype=torch.float64)
    return StandardForm.build(M @ M.mT, torch.randn(B, nv, generator=gen, dtype=torch.float64), G[perm], h[:, perm],
                              t["A"], t["b"].expand(B, -1))


def test_pair_rows_give_the_dense_gram(gen):
    n, B = 12, 5
    form = form_of(lev_turn_spec(n), n, B, gen)
    assert form.pairs is not None
    assert form.pairs.rows.numel() == 4 * n  # w - t, -w - t, w - u, -w - u per asset
    assert form.pairs.dense.numel() == form.mg - 4 * n  # the groups, sum t, sum u
    d = torch.rand(B, form.shape[2], generator=gen, dtype=torch.float64) + 0.3
    Gg = form.G[: form.mg]
    dense = form.Q + (Gg.mT * d[:, None, : form.mg]) @ Gg
    dense.diagonal(dim1=-2, dim2=-1).index_add_(1, form.cols, d[:, form.mg:] * form.coef.square())
    torch.testing.assert_close(form.gram(d), dense, rtol=1e-13, atol=1e-13)
    # A row with a single nonzero among the general rows is a pair with one zero coefficient.
    one = torch.zeros(1, Gg.shape[1], dtype=torch.float64)
    one[0, 4] = -2.5
    pairs = PairRows.split(torch.cat([Gg, one]))
    H = pairs.gram(form.Q, torch.cat([d[:, : form.mg], d[:, :1]], dim=-1), B)
    ref = form.Q + (torch.cat([Gg, one]).mT * torch.cat([d[:, : form.mg], d[:, :1]], dim=-1)[:, None]) @ torch.cat([Gg, one])
    torch.testing.assert_close(H, ref, rtol=1e-13, atol=1e-13)


def test_few_pair_rows_keep_the_dense_product(gen):
    # Max weight and two groups of two assets at n = 10: two pair rows for 10 variables.
    spec = PortfolioConstraints(long_only=True, max_weight=0.2, groups=[
        Group([0, 1], upper=0.2, name="g1"), Group([2, 3], lower=0.15, upper=0.35, name="g2")])
    assert form_of(spec, 10, 2, gen).pairs is None


def test_leverage_turnover_portfolios_match_clarabel_and_the_dense_path(gen, refs, monkeypatch):
    n, B = 12, 6
    spec = lev_turn_spec(n)
    S = refs.cov(gen, B, n, 1e2)
    mu = 0.02 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    w_prev = torch.full((B, n), 1.0 / n, dtype=torch.float64)
    w_prev[:, 0] += 0.2
    w_prev[:, 1] -= 0.2
    prob = ConvexProblem(n, spec)
    w = prob.solve(mu, cov=S, gamma=4.0, alpha=0.02, w_prev=w_prev)
    for i in range(B):
        ref = refs.portfolio(spec, mu[i].numpy(), S[i].numpy(), 4.0, 0.02, w_prev[i].numpy())
        np.testing.assert_allclose(w[i].numpy(), ref, atol=1e-7)
    monkeypatch.setattr(PairRows, "MIN_SHARE", float("inf"))  # the dense product throughout
    np.testing.assert_allclose(w.numpy(), prob.solve(mu, cov=S, gamma=4.0, alpha=0.02, w_prev=w_prev).numpy(), atol=1e-8)
    monkeypatch.undo()
    c = torch.linspace(-1.0, 0.7, n, dtype=torch.float64)
    refs.fd(lambda m: (prob.solve(m, cov=S[:2], gamma=4.0, alpha=0.02, w_prev=w_prev[:2]) * c).sum(), [mu[:2]], 0, gen)
