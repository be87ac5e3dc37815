"""Losses of the distributional agent: quantile levels, the Huber branches, the quantile Huber loss
by hand and against finite differences, and the actor objectives against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from gradfolio.errors import ConfigError
from gradfolio.hedging.rl.losses import huber, quantile_huber_loss, quantile_levels, quantile_objective
from gradfolio.risk import cvar

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DT = torch.float64


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


def test_mean_reduction_is_cao_s_average_over_quantiles_and_targets():
    """'mean' = mean_b mean_i mean_j (Cao et al.'s reduce_mean over targets and quantiles), by hand."""
    pred = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    target = torch.tensor([[0.5, 4.0]], dtype=torch.float64)
    taus = torch.tensor([0.1, 0.5, 0.7], dtype=torch.float64)
    # delta_ij = pred_i - target_j; weight |tau_i - 1{delta > 0}|; Huber (kappa = 1)
    terms = []
    for i, p in enumerate([0.0, 1.0, 3.0]):
        for t in (0.5, 4.0):
            d = p - t
            h = 0.5 * d * d if abs(d) <= 1 else abs(d) - 0.5
            terms.append(abs(taus[i].item() - (d > 0)) * h)
    mean = sum(terms) / 6
    assert quantile_huber_loss(pred, target, taus, 1.0, "mean").item() == pytest.approx(mean, rel=1e-14)
    assert quantile_huber_loss(pred, target, taus, 1.0, "sum").item() == pytest.approx(3 * mean, rel=1e-14)
    with pytest.raises(ConfigError, match="reduction='max'"):
        quantile_huber_loss(pred, target, taus, 1.0, "max")  # type: ignore[arg-type]
