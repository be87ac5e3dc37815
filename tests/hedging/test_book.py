"""Client orders (Poisson arrivals, long/short with equal probability) and the batched option book."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import ive

from gradfolio.errors import ConfigError
from gradfolio.hedging.blackscholes import bs_greeks
from gradfolio.hedging.book import OptionBook, draw_client_orders

f64 = torch.float64
CPU = torch.device("cpu")


def skellam_pmf(k: int, rate: float) -> float:
    """P(net = k) for net = N_short - N_long, two independent Poisson(rate / 2) counts (Poisson thinning)."""
    return float(ive(abs(k), rate))  # e^{-rate} I_|k|(rate), ive being the exponentially scaled Bessel I


@pytest.mark.parametrize("rate", [1.0, 2.5])
def test_net_orders_follow_the_skellam_law(rate):
    n_paths, n_days = 20_000, 10
    net = draw_client_orders(n_paths, n_days, rate, torch.Generator().manual_seed(11), CPU, f64)
    assert net.shape == (n_paths, n_days + 1) and net.dtype == f64
    assert torch.all(net[:, 0] == 0) and torch.equal(net, net.round())
    x = net[:, 1:].reshape(-1)
    n = x.numel()
    # Poisson(rate) orders, each +-1 with probability 1/2: mean 0, variance rate, kurtosis E[x^4] = rate + 3 rate^2.
    assert abs(float(x.mean())) < 5 * math.sqrt(rate / n)
    assert abs(float(x.var()) - rate) < 5 * math.sqrt((rate + 2 * rate**2) / n)
    # Frequencies of net = -3 .. 3 against the Skellam pmf (5 binomial standard errors).
    for k in range(-3, 4):
        p = skellam_pmf(k, rate)
        assert abs(float((x == k).double().mean()) - p) < 5 * math.sqrt(p * (1 - p) / n), k


def test_orders_are_seeded():
    a = draw_client_orders(50, 5, 1.0, torch.Generator().manual_seed(1), CPU, f64)
    b = draw_client_orders(50, 5, 1.0, torch.Generator().manual_seed(1), CPU, f64)
    c = draw_client_orders(50, 5, 1.0, torch.Generator().manual_seed(2), CPU, f64)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_orders_on_cuda_float64():
    cuda = torch.device("cuda")
    n_paths, rate = 200_000, 1.5
    net = draw_client_orders(n_paths, 5, rate, torch.Generator(device=cuda).manual_seed(3), cuda, f64)
    assert net.device.type == "cuda" and net.dtype == f64 and net.shape == (n_paths, 6)
    x = net[:, 1:].reshape(-1).cpu()
    assert torch.all(net[:, 0] == 0) and abs(float(x.var()) - rate) < 5 * math.sqrt((rate + 2 * rate**2) / x.numel())
    p0 = skellam_pmf(0, rate)
    assert abs(float((x == 0).double().mean()) - p0) < 5 * math.sqrt(p0 * (1 - p0) / x.numel())


def test_book_values_held_slots_and_expiry():
    book = OptionBook(n_paths=2, n_slots=6, maturity_days=3, contract_size=100, days_per_year=250, device=CPU, dtype=f64)
    spot0, spot1 = torch.tensor([10.0, 11.0], dtype=f64), torch.tensor([10.5, 10.0], dtype=f64)
    book.open(0, torch.tensor([-1.0, 2.0], dtype=f64), spot0)
    book.open(1, torch.tensor([3.0, 0.0], dtype=f64), spot1)
    assert book.held(0) == slice(0, 1) and book.held(2) == slice(0, 3) and book.held(4) == slice(2, 5)
    vol = lambda strike, tau: torch.full_like(strike, 0.3)  # noqa: E731
    spot = torch.tensor([10.2, 10.8], dtype=f64)
    got = book.valuation(2, spot, vol)
    ref0 = bs_greeks(spot, spot0, 1 / 250, 0.3)
    ref1 = bs_greeks(spot, spot1, 2 / 250, 0.3)
    for name in ("price", "delta", "gamma", "vega"):
        expected = 100 * (book.quantity[:, 0] * getattr(ref0, name) + book.quantity[:, 1] * getattr(ref1, name))
        torch.testing.assert_close(getattr(got, name), expected)
    # On day 3 slot 0 expires: valued at its payoff with zero greeks.
    per_slot = book.slot_greeks(slice(0, 2), 3, spot, vol)
    torch.testing.assert_close(per_slot.price[:, 0], 100 * book.quantity[:, 0] * (spot - spot0).clamp(min=0))
    assert torch.all(per_slot.gamma[:, 0] == 0) and torch.all(per_slot.vega[:, 0] == 0)


@pytest.mark.parametrize("carry", [(0.0, 0.0), (0.03, 0.012), (-0.01, 0.0), (0.0, 0.025)])
@pytest.mark.parametrize("per_slot_vol", [False, True])
@pytest.mark.parametrize("block", [None, 7])
def test_revalue_matches_slot_greeks_summed(per_slot_vol, block, carry, monkeypatch):
    """The fused overnight revaluation equals the option-by-option slot valuation, expiring slot included."""
    import gradfolio.hedging.book as book_module

    if block is not None:  # value 3-row blocks: the cache blocking must not change the sums
        monkeypatch.setattr(book_module, "_BLOCK_ELEMENTS", block)
    gen = torch.Generator().manual_seed(5)
    n_paths, maturity, size = 9, 4, 100
    book = OptionBook(n_paths=n_paths, n_slots=8, maturity_days=maturity, contract_size=size, days_per_year=250, device=CPU, dtype=f64,
                      rate=carry[0], dividend=carry[1])
    spots = 10.0 * torch.exp(0.05 * torch.randn(n_paths, 8, generator=gen, dtype=f64))
    for day in range(6):
        book.open(day, torch.randint(-3, 4, (n_paths,), generator=gen).to(f64), spots[:, day])
    vol_path = 0.2 + 0.1 * torch.rand(n_paths, 1, generator=gen, dtype=f64)

    def vol(strike, tau):
        return vol_path * (1.0 + 0.3 * (strike / 10.0 - 1.0) + tau) if per_slot_vol else vol_path

    for day in (1, 3, 4, 5):  # day 4 and 5: slot day - 4 expires
        spot = spots[:, day]
        value_held, now = book.revalue(day, spot, torch.log(spot), vol)
        prev = book.slot_greeks(book.held(day - 1), day, spot, vol)
        torch.testing.assert_close(value_held, prev.price.sum(dim=1), rtol=1e-13, atol=1e-11)
        for got, want in zip(now, book.valuation(day, spot, vol), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-11)
    # The expiring slot is worth its payoff: day 4 holds slots 0..3 on day 3, slot 0 expires.
    spot = spots[:, 4]
    payoff = size * book.quantity[:, 0] * (spot - book.strike[:, 0]).clamp(min=0)
    live = book.slot_greeks(slice(1, 4), 4, spot, vol).price.sum(dim=1)
    torch.testing.assert_close(book.revalue(4, spot, torch.log(spot), vol)[0], payoff + live, rtol=1e-13, atol=1e-11)


def test_revalue_of_an_empty_book_is_zero():
    book = OptionBook(n_paths=3, n_slots=5, maturity_days=2, contract_size=100, days_per_year=250, device=CPU, dtype=f64)
    spot = torch.tensor([9.0, 10.0, 11.0], dtype=f64)
    book.open(0, torch.zeros(3, dtype=f64), spot)
    value_held, now = book.revalue(1, spot, torch.log(spot), lambda strike, tau: torch.full_like(spot[:, None], 0.3))
    assert torch.equal(value_held, torch.zeros(3, dtype=f64))
    assert all(torch.equal(g, torch.zeros(3, dtype=f64)) for g in now)
    # One contract on one path makes it non-empty again: valued like slot_greeks.
    book.open(1, torch.tensor([0.0, 2.0, 0.0], dtype=f64), spot)
    vol = lambda strike, tau: torch.full_like(spot[:, None], 0.3)
    value_held, now = book.revalue(1, spot, torch.log(spot), vol)
    torch.testing.assert_close(now.price, book.valuation(1, spot, vol).price, rtol=1e-13, atol=1e-12)
    assert float(now.price[1]) > 0 and float(now.price[0]) == 0.0


def test_book_with_rate_and_dividend_values_each_slot_with_black_scholes_at_r_and_q():
    book = OptionBook(n_paths=2, n_slots=4, maturity_days=30, contract_size=100, days_per_year=250, device=CPU, dtype=f64,
                      rate=0.03, dividend=0.012)
    spot0 = torch.tensor([9.5, 10.5], dtype=f64)
    book.open(0, torch.tensor([-2.0, 3.0], dtype=f64), 1.1 * spot0)  # a strike multiple of 1.1
    book.open(1, torch.tensor([1.0, -1.0], dtype=f64), 0.9 * spot0)
    spot = torch.tensor([9.8, 10.1], dtype=f64)
    vol = lambda strike, tau: torch.full_like(strike, 0.27)
    got = book.slot_greeks(slice(0, 2), 2, spot, vol)
    for j, (days, mult) in enumerate([(28, 1.1), (29, 0.9)]):
        want = bs_greeks(spot, mult * spot0, days / 250, 0.27, r=0.03, q=0.012)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g[:, j], 100 * book.quantity[:, j] * w, rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("n_types", [2, 5])
def test_orders_split_among_types_uniformly(n_types):
    rate, n_paths, n_days = 1.7, 40_000, 4
    one = draw_client_orders(n_paths, n_days, rate, torch.Generator().manual_seed(8), CPU, f64)
    split = draw_client_orders(n_paths, n_days, rate, torch.Generator().manual_seed(8), CPU, f64, n_types=n_types)
    assert split.shape == (n_paths, n_days + 1, n_types)
    assert torch.equal(split.sum(dim=-1), one)  # the same counts, only split among the types
    assert torch.all(split[:, 0] == 0) and torch.equal(split, split.round())
    # Poisson thinning: each type's net is Skellam(rate / (2 K), rate / (2 K)), independent across types.
    x = split[:, 1:].reshape(-1, n_types)
    per_type = rate / n_types
    for k in (-1, 0, 1, 2):
        p = skellam_pmf(k, per_type)
        freq = (x == k).double().mean(dim=0)
        assert float((freq - p).abs().max()) < 5 * math.sqrt(p * (1 - p) / x.shape[0]), k
    corr = torch.corrcoef(x.T) - torch.eye(n_types, dtype=f64)
    assert float(corr.abs().max()) < 5 / math.sqrt(x.shape[0])


def test_orders_reject_a_non_positive_number_of_types():
    with pytest.raises(ConfigError, match="n_types=0"):
        draw_client_orders(3, 2, 1.0, torch.Generator().manual_seed(0), CPU, f64, n_types=0)
