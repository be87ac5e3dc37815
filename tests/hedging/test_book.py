"""Client orders (Poisson arrivals, long/short with equal probability) and the batched option book."""

from __future__ import annotations

import math

import pytest
import torch

from gradfolio.hedging.blackscholes import bs_greeks
from gradfolio.hedging.book import OptionBook, draw_client_orders

f64 = torch.float64
CPU = torch.device("cpu")


@pytest.mark.parametrize("rate", [1.0, 2.5])
def test_poisson_arrival_rate_and_signs(rate):
    n_paths, n_days = 20_000, 10
    orders = draw_client_orders(n_paths, n_days, rate, torch.Generator().manual_seed(11), CPU, f64)
    assert orders.count.shape == orders.net.shape == (n_paths, n_days + 1)
    assert torch.all(orders.count[:, 0] == 0) and torch.all(orders.net[:, 0] == 0)
    counts, net = orders.count[:, 1:].reshape(-1), orders.net[:, 1:].reshape(-1)
    n = counts.numel()
    # Poisson(rate): mean = variance = rate; standard error of the mean sqrt(rate / n),
    # of the sample variance about sqrt((mu4 - sigma^4) / n) = sqrt((rate + 2 rate^2) / n).
    assert abs(float(counts.mean()) - rate) < 5 * math.sqrt(rate / n)
    assert abs(float(counts.var()) - rate) < 5 * math.sqrt((rate + 2 * rate**2) / n)
    # Net = sum of N independent +-1: mean 0, variance E[N] = rate; parity of net equals parity of N.
    assert abs(float(net.mean())) < 5 * math.sqrt(rate / n)
    assert abs(float(net.var()) - rate) < 5 * math.sqrt((3 * rate**2 + rate) / n) + 5 * rate / math.sqrt(n)
    assert torch.all(net.abs() <= counts) and torch.all(torch.remainder(net + counts, 2) == 0)
    # A single order is a client buy or sell with probability 1/2.
    single = net[counts == 1]
    assert abs(float((single > 0).double().mean()) - 0.5) < 5 * 0.5 / math.sqrt(single.numel())


def test_orders_are_seeded():
    a = draw_client_orders(50, 5, 1.0, torch.Generator().manual_seed(1), CPU, f64)
    b = draw_client_orders(50, 5, 1.0, torch.Generator().manual_seed(1), CPU, f64)
    assert torch.equal(a.net, b.net) and torch.equal(a.count, b.count)


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
