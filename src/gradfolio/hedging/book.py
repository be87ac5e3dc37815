"""Batched option positions: the client book and the hedge-option book.

Every option in both books is a call that is at the money when it is opened, and every option
opened on the same day has the same maturity, so the positions opened on day ``j`` aggregate
into one *slot*: a net number of contracts and a strike per path. A book is therefore a pair of
``(paths, days)`` tensors (quantity, strike) with slot ``j`` expiring on day ``j + maturity``;
the options held on day ``t`` are the contiguous slots ``j`` with ``t - maturity < j <= t``,
a column slice — nothing loops over paths or over options.

An option that reaches its expiry day is worth its payoff, settles in cash and leaves the book.
Client orders (Poisson arrivals, long or short with equal probability) are drawn by
:func:`draw_client_orders`. Books are built and filled by the environment, so valuation uses the
unchecked Black-Scholes functions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gradfolio.hedging.blackscholes import Greeks, bs_greeks_unchecked, live_greeks_unchecked

VolFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``vol_fn(strike (paths, k), tau (k,)) -> implied vol broadcastable to (paths, k)``."""


class OptionBook:
    """Net call positions per opening day, batched over paths.

    Parameters
    ----------
    n_paths
        Number of simulated paths ``P``.
    n_slots
        Number of opening days ``C`` (slot ``j`` = options opened on day ``j``).
    maturity_days
        Maturity of every option in the book, in trading days.
    contract_size
        Units of the underlying per contract.
    days_per_year
        Converts days to maturity into years.
    device, dtype
        Placement of the tensors.

    Attributes
    ----------
    quantity
        ``(P, C)`` net contracts per slot (``> 0`` long, ``< 0`` short).
    strike
        ``(P, C)`` strike per slot (the spot on its opening day).
    """

    def __init__(
        self,
        n_paths: int,
        n_slots: int,
        maturity_days: int,
        contract_size: float,
        days_per_year: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.maturity_days = int(maturity_days)
        self.contract_size = float(contract_size)
        self.days_per_year = int(days_per_year)
        self.quantity = torch.zeros(n_paths, n_slots, device=device, dtype=dtype)
        self.strike = torch.ones(n_paths, n_slots, device=device, dtype=dtype)

    def open(self, day: int, quantity: torch.Tensor, strike: torch.Tensor) -> None:
        """Open positions on ``day``: add contracts to slot ``day`` and set its strike.

        Parameters
        ----------
        day
            Opening day, the slot index in ``[0, C)``.
        quantity
            ``(P,)`` contracts added per path (``> 0`` bought, ``< 0`` sold, ``0`` none).
        strike
            ``(P,)`` strike of the slot per path (the day's spot for ATM options); it replaces the
            slot's strike, so every position opened on ``day`` must share it.
        """
        self.quantity[:, day] += quantity
        self.strike[:, day] = strike

    def held(self, day: int) -> slice:
        """Slots held on ``day``: opened by then and not expired before it.

        Parameters
        ----------
        day
            Day ``t >= 0``.

        Returns
        -------
        slice
            Column slice ``[max(0, t - maturity + 1), t + 1)`` of :attr:`quantity` / :attr:`strike`;
            slot ``t - maturity + 1`` expires on day ``t + 1``, slot ``t - maturity`` expired on day ``t``.
        """
        return slice(max(0, day - self.maturity_days + 1), day + 1)

    def slot_greeks(self, slots: slice, day: int, spot: torch.Tensor, vol_fn: VolFn) -> Greeks:
        """Position-weighted value and greeks on ``day`` of each slot in ``slots``.

        Parameters
        ----------
        slots
            Column slice of the slots to value (e.g. :meth:`held`); slots that expire on ``day``
            are worth their payoff with zero greeks.
        day
            Valuation day.
        spot
            ``(P,)`` stock price on ``day``.
        vol_fn
            Implied volatility of the options, see :data:`VolFn`.

        Returns
        -------
        Greeks
            Each ``(P, k)``: value in currency, delta in units of the underlying, gamma in units per
            unit of price, vega in currency per volatility point — times quantity and contract size.
        """
        qty = self.quantity[:, slots] * self.contract_size
        start = slots.start or 0
        expiry = torch.arange(start, start + qty.shape[1], device=qty.device) + self.maturity_days
        tau = (expiry - day).clamp(min=0).to(qty.dtype) / self.days_per_year
        strike = self.strike[:, slots]
        vol = vol_fn(strike, tau)
        n_expired = min(max(0, day - self.maturity_days - start + 1), qty.shape[1])  # expiry j + M <= day
        if n_expired == 0:
            g = live_greeks_unchecked(spot[:, None], strike, tau, vol)
        else:
            g = bs_greeks_unchecked(spot[:, None], strike, tau, vol)
        return Greeks(*(qty * v for v in g))

    def valuation(self, day: int, spot: torch.Tensor, vol_fn: VolFn) -> Greeks:
        """Total value and greeks ``(P,)`` on ``day`` of the positions held on ``day``."""
        return Greeks(*(v.sum(dim=1) for v in self.slot_greeks(self.held(day), day, spot, vol_fn)))


def draw_client_orders(
    n_paths: int,
    n_days: int,
    rate: float,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Draw the net client orders of days ``1 .. n_days``.

    On each day ``1 .. n_days`` a Poisson(``rate``) number ``N`` of one-contract orders arrives,
    each with the client long or short with probability 1/2; the trader's net position change is
    ``N_short - N_long = N - 2 B`` with ``B ~ Binomial(N, 1/2)`` the client buys (so the net change
    is Skellam-distributed: the difference of two independent Poisson(``rate / 2``) counts).

    Parameters
    ----------
    n_paths, n_days
        Number of paths and of days.
    rate
        Poisson intensity of orders per day, ``>= 0``.
    generator
        Random generator on ``device`` (the environment's episode generator).
    device, dtype
        Placement and precision of the result.

    Returns
    -------
    Tensor
        ``(n_paths, n_days + 1)`` net contracts the trader takes on each day; column 0 is zero
        (day 0 holds the initial position only).
    """
    rates = torch.full((n_paths, n_days), float(rate), device=device, dtype=torch.float64)
    counts = torch.poisson(rates, generator=generator)
    buys = torch.binomial(counts, torch.full_like(counts, 0.5), generator=generator)
    zero = torch.zeros(n_paths, 1, device=device, dtype=dtype)
    return torch.cat([zero, (counts - 2.0 * buys).to(dtype)], dim=1)


__all__ = ["OptionBook", "VolFn", "draw_client_orders"]
