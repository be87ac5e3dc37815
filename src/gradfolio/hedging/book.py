"""Batched option positions: the client book and the hedge-option book.

Every option in a book is a call with the book's maturity and the book's strike multiple
(``strike = moneyness x spot`` on the day it is opened; 1 = at the money), so the positions opened
on day ``j`` aggregate into one *slot*: a net number of contracts and a strike per path. Client
options of several maturities or strike multiples (``EnvConfig.client_maturity_days`` /
``client_moneyness`` lists) live in one book per ``(maturity, moneyness)`` pair. A book is therefore a pair of
``(paths, days)`` tensors (quantity, strike) with slot ``j`` expiring on day ``j + maturity``;
the options held on day ``t`` are the contiguous slots ``j`` with ``t - maturity < j <= t``,
a column slice — nothing loops over paths or over options.

The environment's hot path is :meth:`OptionBook.revalue`: one pass over the slots held
overnight gives both the value of yesterday's positions and today's value and greeks, with
``d1``, ``N(d1)``, ``N(d2)`` and ``phi(d1)`` computed once per slot and reduced to ``(paths,)``
sums (the contract size and constant factors applied to the sums, not to every slot).

An option that reaches its expiry day is worth its payoff, settles in cash and leaves the book.
Client orders (Poisson arrivals, long or short with equal probability, each of a type drawn
uniformly) are drawn by :func:`draw_client_orders`. Prices and greeks use the book's rate ``r``
and dividend yield ``q`` (0 by default). Books are built and filled by the environment, so valuation uses the
unchecked Black-Scholes functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.blackscholes import Greeks, bs_greeks_unchecked, live_greeks_unchecked

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT1_2 = math.sqrt(0.5)


def _ndtr_(scaled: torch.Tensor) -> torch.Tensor:
    """``N(x)`` in place from ``scaled = x / sqrt(2)``: torch's ``ndtr`` formula ``(1 + erf(x / sqrt 2)) / 2`` without its temporaries."""
    return scaled.erf_().add_(1.0).mul_(0.5)

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
    rate, dividend
        Risk-free rate ``r`` and dividend yield ``q`` of the Black-Scholes valuation (default 0).

    Attributes
    ----------
    quantity
        ``(P, C)`` net contracts per slot (``> 0`` long, ``< 0`` short).
    strike
        ``(P, C)`` strike per slot (the spot on its opening day).
    log_strike
        ``(P, C)`` natural log of :attr:`strike` (kept for :meth:`revalue`).
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
        rate: float = 0.0,
        dividend: float = 0.0,
    ) -> None:
        self.maturity_days = int(maturity_days)
        self.rate = float(rate)
        self.dividend = float(dividend)
        self.contract_size = float(contract_size)
        self.days_per_year = int(days_per_year)
        self.quantity = torch.zeros(n_paths, n_slots, device=device, dtype=dtype)
        self.strike = torch.ones(n_paths, n_slots, device=device, dtype=dtype)
        self.log_strike = torch.zeros(n_paths, n_slots, device=device, dtype=dtype)

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
        # In place on the column views: ``x[:, day] += y`` also writes the column back (4-5x the time at 10 000 paths).
        self.quantity[:, day].add_(quantity)
        self.strike[:, day].copy_(strike)
        self.log_strike[:, day].copy_(torch.log(strike))

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
            g = live_greeks_unchecked(spot[:, None], strike, tau, vol, self.rate, self.dividend)
        else:
            g = bs_greeks_unchecked(spot[:, None], strike, tau, vol, self.rate, self.dividend)
        return Greeks(*(qty * v for v in g))

    def valuation(self, day: int, spot: torch.Tensor, vol_fn: VolFn) -> Greeks:
        """Total value and greeks ``(P,)`` on ``day`` of the positions held on ``day``."""
        return Greeks(*(v.sum(dim=1) for v in self.slot_greeks(self.held(day), day, spot, vol_fn)))

    def revalue(self, day: int, spot: torch.Tensor, log_spot: torch.Tensor, vol_fn: VolFn) -> tuple[torch.Tensor, Greeks]:
        """Overnight revaluation on ``day`` (``>= 1``) in one pass over the slots held on ``day - 1`` or ``day``.

        Equal to :meth:`slot_greeks` summed over the held slots, up to floating-point
        reassociation: each live slot's ``d1``, ``N(d1)``, ``N(d2)`` and ``phi(d1)`` are computed once
        (``log(S/K)`` as ``log S - log K``), weighted by the quantities and reduced per path; the
        contract size and ``1 / sqrt(2 pi)`` multiply the ``(P,)`` sums. At most one slot (the
        first, opened ``maturity`` days ago) expires on ``day``: it is worth its payoff. A book
        whose held quantities are all zero is worth zero without valuing anything.

        Parameters
        ----------
        day
            Valuation day ``t + 1``.
        spot, log_spot
            ``(P,)`` stock price on ``day`` and its natural log.
        vol_fn
            Implied volatility, see :data:`VolFn`; a ``(P, 1)`` result (one vol per path, the
            ``per_day`` mode) reduces gamma and vega with one matrix product.

        Returns
        -------
        ``(value_held, now)``: ``value_held`` ``(P,)`` the value on ``day`` of the positions held on
        ``day - 1`` (expiring ones at their payoff); ``now`` the value, delta, gamma and vega ``(P,)``
        of the positions held on ``day`` (slot ``day`` included).
        """
        held_prev, held_now = self.held(day - 1), self.held(day)
        live = slice(held_now.start, held_now.stop)
        qty, strike = self.quantity[:, live], self.strike[:, live]
        if not bool(self.quantity[:, held_prev.start : live.stop].any()):  # an empty book (e.g. no hedges traded) is worth 0
            zero = torch.zeros_like(spot)
            return zero, Greeks(zero, zero, zero, zero)
        expiry = torch.arange(live.start, live.stop, device=qty.device) + self.maturity_days
        tau = (expiry - day).to(qty.dtype) / self.days_per_year  # (k,), every tau > 0
        sqrt_tau = tau.sqrt()
        vol = vol_fn(strike, tau)
        size = self.contract_size
        log_strike = self.log_strike[:, live]
        carry = (self.rate, self.dividend) if self.rate != 0.0 or self.dividend != 0.0 else None
        blocks = [
            _live_sums(qty[rows], strike[rows], log_strike[rows], tau, sqrt_tau, spot[rows], log_spot[rows], vol[rows], carry)
            for rows in _blocks(qty.shape[0], qty.shape[1])
        ]
        sums = blocks[0] if len(blocks) == 1 else [torch.cat(parts) for parts in zip(*blocks, strict=True)]
        held_price, value_now, delta, gamma, vega = sums
        value_held = size * held_price
        if held_prev.start < live.start:  # slot held_prev.start expires on ``day``
            first = held_prev.start
            value_held = value_held + size * self.quantity[:, first] * (spot - self.strike[:, first]).clamp(min=0.0)
        c = size * _INV_SQRT_2PI
        return value_held, Greeks(size * value_now, size * delta, c * gamma, (c / 100.0) * vega)

    def revalue_into(self, day: int, spot: np.ndarray, log_spot: np.ndarray, vol_fn: VolFn, out: np.ndarray,
                     accumulate: bool = False, day_vol: np.ndarray | None = None, threads: int = 1,
                     opening: tuple[int, torch.Tensor, torch.Tensor] | None = None) -> None:
        """:meth:`revalue` by the compiled kernel (:mod:`gradfolio.hedging._book_kernels`; CPU).

        Parameters
        ----------
        day
            Valuation day ``t + 1`` (``>= 1``).
        spot, log_spot
            ``(P, D)`` NumPy arrays of the stock price and its log, read at column ``day``.
        vol_fn
            Implied volatility (see :data:`VolFn`), called on the live slots when ``day_vol`` is
            ``None``.
        out
            ``(5, P)`` NumPy array receiving ``value_held`` and the value, delta, gamma and vega of
            :meth:`revalue`'s result, in that order (added to it with ``accumulate``).
        accumulate
            Add this book's sums to ``out`` instead of writing them (several books into one total).
        day_vol
            ``(P, D)`` one implied vol per path and day (the ``per_day`` mode), read at column
            ``day`` for every slot; ``None`` asks ``vol_fn`` for one vol per option.
        threads
            Split the paths among this many threads (:func:`gradfolio.hedging._book_kernels.run`).
        opening
            ``(slot, quantity (P,), strike (P,))``: :meth:`open` them first, in the kernel's pass over
            each row (the slot must be held on ``day``; with per-option vols, which need the new
            strike, :meth:`open` runs before the vols are asked for).
        """
        from gradfolio.hedging import _book_kernels, _normal

        held_prev, live = self.held(day - 1), self.held(day)
        expiry = np.arange(live.start, live.stop) + self.maturity_days
        tau = (expiry - day).astype(np.float64) / self.days_per_year
        if opening is not None and day_vol is None:  # the vols of the live slots need the new slot's strike first
            self.open(*opening)
            opening = None
        if opening is None:
            slot, open_qty, open_strike = -1, np.empty(0, spot.dtype), np.empty(0, spot.dtype)
        else:
            slot = opening[0]
            open_qty, open_strike = (np.ascontiguousarray(x.detach().numpy(), dtype=spot.dtype) for x in opening[1:])
        if day_vol is None:
            t_tau = torch.from_numpy(tau).to(self.quantity.dtype)
            vol = np.ascontiguousarray(torch.broadcast_to(vol_fn(self.strike[:, live], t_tau), (self.quantity.shape[0], tau.size)).numpy())
            vol_col = -1
        else:
            vol, vol_col = day_vol, day
        first = held_prev.start if held_prev.start < live.start else -1
        cdf, pdf = _normal.tables()
        args = (self.quantity.numpy(), self.strike.numpy(), self.log_strike.numpy(), first, live.start, day, spot, log_spot,
                vol, vol_col, tau, np.sqrt(tau), (self.rate - self.dividend) * tau, np.exp(-self.dividend * tau),
                np.exp(-self.rate * tau), self.contract_size, cdf, pdf, out, accumulate, slot, open_qty, open_strike)
        _book_kernels.run(args, self.quantity.shape[0], threads)


_BLOCK_ELEMENTS = 1 << 16
"""Paths x slots valued per block and per torch thread, so that the temporaries of :func:`_live_sums` stay in cache."""


def _blocks(n_paths: int, n_slots: int) -> list[slice]:
    """Row slices of about :data:`_BLOCK_ELEMENTS` elements per torch thread covering ``n_paths`` rows of ``n_slots`` slots.

    Each thread gets a block of that size: more threads, fewer and larger blocks (fewer
    parallel regions to synchronize).
    """
    rows = max(1, _BLOCK_ELEMENTS * torch.get_num_threads() // n_slots)
    return [slice(i, min(i + rows, n_paths)) for i in range(0, n_paths, rows)]


def _live_sums(
    qty: torch.Tensor, strike: torch.Tensor, log_strike: torch.Tensor, tau: torch.Tensor, sqrt_tau: torch.Tensor,
    spot: torch.Tensor, log_spot: torch.Tensor, vol: torch.Tensor, carry: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantity-weighted Black-Scholes sums of live call slots, the core of :meth:`OptionBook.revalue`.

    ``qty, strike, log_strike (P, k)``, ``tau, sqrt_tau (k,)`` (every ``tau > 0``), ``spot, log_spot (P,)``,
    ``vol (P, 1)`` or ``(P, k)`` -> five ``(P,)`` sums: price over the first ``k - 1`` slots, price over
    all ``k``, delta, ``sum q phi(d1) sqrt(2 pi) / (S vol sqrt(tau))`` and ``S sum q phi(d1) sqrt(2 pi) sqrt(tau)``
    (per contract, before the contract size and the constants). With ``carry = (r, q)`` the slots are
    valued with that rate and dividend yield (``d1`` shifted by ``(r - q) tau``, ``N(d1)`` and ``phi(d1)``
    weighted by ``e^{-q tau}``, ``K N(d2)`` by ``e^{-r tau}``); ``None`` is the zero-rate path.
    """
    if carry is not None:
        return _live_sums_carry(qty, strike, tau, sqrt_tau, spot, log_spot[:, None] - log_strike, vol, *carry)
    vol_sqrt = vol * sqrt_tau
    # Few passes, in place where possible: each (P, k) temporary is written once and reused.
    d1 = torch.sub(log_spot[:, None], log_strike).addcmul_(0.5 * vol * vol, tau).div_(vol_sqrt)
    n1 = _ndtr_(d1 * _SQRT1_2)
    kn2 = _ndtr_(torch.sub(d1, vol_sqrt).mul_(_SQRT1_2)).mul_(strike)  # K N(d2)
    price = (n1 * spot[:, None]).sub_(kn2)
    q_pdf = d1.square_().mul_(-0.5).exp_().mul_(qty)  # q phi(d1) sqrt(2 pi), in d1's buffer
    held_price = torch.linalg.vecdot(qty[:, :-1], price[:, :-1])  # slots held on day - 1
    value_now = held_price + qty[:, -1] * price[:, -1]
    delta = torch.linalg.vecdot(qty, n1)
    if vol.shape[-1] == 1:  # one vol per path: sum_j q phi / sqrt(tau) and sum_j q phi sqrt(tau) as one product
        sums = q_pdf @ torch.stack([sqrt_tau.reciprocal(), sqrt_tau], dim=1)
        gamma = sums[:, 0] / (spot * vol[:, 0])
        vega = spot * sums[:, 1]
    else:
        gamma = (q_pdf / vol_sqrt).sum(dim=1) / spot
        vega = spot * (q_pdf * sqrt_tau).sum(dim=1)
    return held_price, value_now, delta, gamma, vega


def _live_sums_carry(
    qty: torch.Tensor, strike: torch.Tensor, tau: torch.Tensor, sqrt_tau: torch.Tensor, spot: torch.Tensor,
    log_moneyness: torch.Tensor, vol: torch.Tensor, rate: float, dividend: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_live_sums` with a rate and a dividend yield (plain out-of-place formulas; shapes as there,
    ``log_moneyness = log S - log K (P, k)``)."""
    vol_sqrt = vol * sqrt_tau
    d1 = (log_moneyness + (rate - dividend + 0.5 * vol * vol) * tau) / vol_sqrt
    disc_q, disc_r = torch.exp(-dividend * tau), torch.exp(-rate * tau)
    n1 = torch.special.ndtr(d1) * disc_q
    price = n1 * spot[:, None] - strike * disc_r * torch.special.ndtr(d1 - vol_sqrt)
    q_pdf = torch.exp(-0.5 * d1 * d1) * disc_q * qty
    held_price = torch.linalg.vecdot(qty[:, :-1], price[:, :-1])
    value_now = held_price + qty[:, -1] * price[:, -1]
    delta = torch.linalg.vecdot(qty, n1)
    gamma = (q_pdf / vol_sqrt).sum(dim=1) / spot
    vega = spot * (q_pdf * sqrt_tau).sum(dim=1)
    return held_price, value_now, delta, gamma, vega


def draw_client_orders(
    n_paths: int,
    n_days: int,
    rate: float,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
    n_types: int = 1,
) -> torch.Tensor:
    """Draw the net client orders of days ``1 .. n_days``, optionally split among ``n_types`` option types.

    On each day ``1 .. n_days`` a Poisson(``rate``) number ``N`` of one-contract orders arrives,
    each with the client long or short with probability 1/2; the trader's net position change is
    ``N_short - N_long = N - 2 B`` with ``B ~ Binomial(N, 1/2)`` the client buys (so the net change
    is Skellam-distributed: the difference of two independent Poisson(``rate / 2``) counts).

    With ``n_types > 1`` each order also draws its type (a ``(maturity, moneyness)`` pair of
    :attr:`EnvConfig.client_types <gradfolio.hedging.config.EnvConfig.client_types>`) uniformly and
    independently: the buys and the sells of each day are split among the types by successive
    binomials (``Binomial(rest, 1 / (types left))``, a uniform multinomial). The counts ``N`` and
    ``B`` are drawn first, as with one type, so the sum over types equals the one-type draw of the
    same generator.

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
    n_types
        Number of client option types (``>= 1``).

    Returns
    -------
    Tensor
        ``(n_paths, n_days + 1)`` net contracts the trader takes on each day (``n_types = 1``), or
        ``(n_paths, n_days + 1, n_types)`` per type; column 0 is zero (day 0 holds the initial
        position only).
    """
    if n_types < 1:
        raise ConfigError(f"draw_client_orders: n_types={n_types}; pass the number of client option types (>= 1).")
    rates = torch.full((n_paths, n_days), float(rate), device=device, dtype=torch.float64)
    counts = torch.poisson(rates, generator=generator)
    buys = torch.binomial(counts, torch.full_like(counts, 0.5), generator=generator)
    if n_types == 1:
        zero = torch.zeros(n_paths, 1, device=device, dtype=dtype)
        return torch.cat([zero, (counts - 2.0 * buys).to(dtype)], dim=1)
    net = torch.zeros(n_paths, n_days + 1, n_types, device=device, dtype=dtype)
    for side, sign in ((counts - buys, 1.0), (buys, -1.0)):  # the trader sells to client buyers: -1 each
        rest = side
        for i in range(n_types - 1):
            part = torch.binomial(rest, torch.full_like(rest, 1.0 / (n_types - i)), generator=generator)
            net[:, 1:, i] += sign * part.to(dtype)
            rest = rest - part
        net[:, 1:, -1] += sign * rest.to(dtype)
    return net


__all__ = ["OptionBook", "VolFn", "draw_client_orders"]
