"""Vectorized gamma/vega hedging environment over thousands of SABR paths at once.

One episode is ``n_days`` trading days (30 by default) on every path simultaneously:

- **Day 0.** The trader is short ``initial_contracts`` (-1) 60-day ATM calls of 100 units.
- **Each day t = 0 .. n_days - 1** the agent sees the state and chooses an action; the action
  becomes a number of contracts of a fresh ATM call of ``hedge_maturity_days`` (30), bought
  (``> 0``) or sold (``< 0``) at ``kappa * price * |contracts| * 100`` and held to expiry. The
  stock is then re-hedged to delta neutral at no cost.
- **Overnight** the market moves (SABR), every option is revalued (implied vol per day or per
  option) and the day's P&L of options and stock, minus the cost, is booked.
- **Day t + 1** new client orders arrive (Poisson, 1/day, 60-day ATM calls by default, the client
  long or short with probability 1/2; with ``client_maturity_days`` / ``client_moneyness`` lists
  each order draws its maturity and strike multiple uniformly); the next state is observed. ``done`` is ``True`` on every path
  after the step that reaches day ``n_days``.

State, ``(paths, 5)`` (``(paths, 6)`` with ``time_to_go``), in this order (:attr:`HedgingEnv.FEATURES`):

0. ``spot``: stock price ``S_t``;
1. ``portfolio_gamma``: gamma of the client book plus the hedge options held, before today's
   trade (units of stock per unit of price: ``sum qty * 100 * gamma``);
2. ``hedge_gamma``: gamma of **one contract** of today's hedging option (``100 * gamma``);
3. ``portfolio_vega``: vega of the same portfolio (currency per volatility point);
4. ``hedge_vega``: vega of one contract of today's hedging option;
5. ``time_to_go`` (optional): ``(n_days - t) / n_days``.

The contracts that make the portfolio gamma or vega neutral are ``n_gamma = -state[:, 1] /
state[:, 2]`` and ``n_vega = -state[:, 3] / state[:, 4]`` (:meth:`HedgingEnv.neutral_contracts`).

Actions, ``(paths,)`` or ``(paths, 1)``, clipped to ``[0, 1]`` (``[0, a_max]`` for
``"vega_fraction"``) and mapped to contracts by ``config.action_map``
(:meth:`HedgingEnv.action_to_contracts`, inverse :meth:`HedgingEnv.contracts_to_action`).

Rewards, ``(paths,)``: ``"pnl"`` the signed P&L of the day including the cost, or ``"abs_pnl"``
``-|P&L before cost| - cost``. Whatever the reward, ``info["pnl"]`` is the signed P&L.

Markets: ``reset(seed)`` simulates the episode's :class:`Market` (SABR paths, client orders);
``reset(market=other_env.market)`` replays a given one, e.g. on another device or in another dtype.
Rates and dividends (``market.rate`` ``r``, ``market.dividend`` ``q``) are zero by default: the
forward of eq. 53 is the spot. Otherwise every option is valued with Black-Scholes at ``r`` and
``q``, Hagan's vol uses the forward ``F = S e^{(r - q) tau}``, and the day's P&L includes the carry
of the hedged position: ``stock S_t (e^{q dt} - 1)`` dividends on the stock held, minus
``(e^{r dt} - 1)(V_t + stock S_t)`` interest on the cash that finances the options (worth ``V_t``
after the trade) and the stock. The simulated drift stays ``market.mu``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.blackscholes import Greeks, live_greeks_unchecked
from gradfolio.hedging.book import OptionBook, VolFn, draw_client_orders
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.sabr import hagan_implied_vol_unchecked, simulate_sabr
from gradfolio.hedging.validation import check_positive
from gradfolio.seeding import make_generator, resolve_device
from gradfolio.threads import intra_op_threads

Policy = Callable[[torch.Tensor], torch.Tensor]
"""``policy(state (paths, features)) -> action (paths,) or (paths, 1)``."""


class Market(NamedTuple):
    """The exogenous inputs of one episode, each ``(paths, n_days + 1)``: what :meth:`HedgingEnv.reset` draws."""

    spot: torch.Tensor
    """Stock prices ``S_t`` (eqs. 50-52)."""
    sabr_vol: torch.Tensor
    """Instantaneous SABR volatilities ``sigma_t`` (Hagan's alpha on day ``t``)."""
    orders: torch.Tensor
    """Net client contracts the trader takes on each day: ``(paths, n_days + 1)`` when every client
    option is alike (column 0 unused: day 0 holds ``initial_contracts``), or ``(paths, n_days + 1,
    types)`` per type of :attr:`EnvConfig.client_types` (column 0: the day-0 position, in the type
    each path drew)."""


class Episode(NamedTuple):
    """What one episode of a policy produced, each ``(paths, n_days)`` unless noted."""

    pnl: torch.Tensor
    """Signed daily P&L including the cost."""
    reward: torch.Tensor
    """The environment's reward (equal to ``pnl`` for ``reward="pnl"``)."""
    cost: torch.Tensor
    """Transaction cost paid each day (``>= 0``)."""
    contracts: torch.Tensor
    """Hedging contracts traded each day."""

    @property
    def total_pnl(self) -> torch.Tensor:
        """``(paths,)`` P&L of the whole episode."""
        return self.pnl.sum(dim=1)


def _add(a: Greeks, b: Greeks) -> Greeks:
    return Greeks(*(x + y for x, y in zip(a, b, strict=True)))


class HedgingEnv:
    """Batched gamma/vega hedging environment (see the module docstring for the conventions).

    Parameters
    ----------
    config
        Market, book, cost, action and reward settings; the defaults are the ANADDH paper's setup
        (Cao et al.'s (2023) market with the ANADDH paper's SABR ``beta = 0.5``, ``rho = 0.2``; see
        :mod:`gradfolio.hedging.config`).
    n_paths
        Number of paths simulated in parallel (the batch of every tensor).
    seed
        Seed of the environment's own generator, used by ``reset()`` without a seed.
    device, dtype
        Placement and precision of every tensor (float64 recommended for tests).
    fused
        Revalue each book overnight in one fused pass (:meth:`OptionBook.revalue`: d1, N(d1),
        N(d2) and the density once per live slot; about 1.3x the environment's path-steps/s). Off
        by default: it reorders floating-point sums, so float32 results (the agents') differ in
        their last bits from the published ones, which the default per-slot valuation reproduces.
    compiled
        Revalue the books overnight with the compiled kernel (:meth:`OptionBook.revalue_into`,
        Numba, CPU only): every path's slots in one pass, ``N`` and ``phi`` from polynomial tables
        accurate to ``5e-16``, paths split among ``torch.get_num_threads()`` threads (the step's
        own ``(P,)`` torch operations then run on one). Off by default for the reason of ``fused``
        (results agree with it to rounding, not bit for bit); no gradients; takes precedence over
        ``fused``. Speed in docs/hedging.md.

    Attributes
    ----------
    spot, sabr_vol, orders, day_vol
        After :meth:`reset`: stock prices, SABR volatilities, net client orders (see :class:`Market`)
        and per-day Hagan implied vols of the episode, each ``(paths, n_days + 1)``.
    clients, hedges
        The client books, one per type of :attr:`EnvConfig.client_types` (one by default), and the
        hedge-option book (:class:`~gradfolio.hedging.book.OptionBook`).
    client
        The first client book (the only one by default).
    t, state
        Current day and state ``(paths, features)``.

    Examples
    --------
    >>> env = HedgingEnv(EnvConfig(), n_paths=4, seed=0)
    >>> state = env.reset(seed=1)
    >>> state.shape
    torch.Size([4, 5])
    >>> state, reward, done, info = env.step(torch.full((4,), 0.5))
    """

    FEATURES: tuple[str, ...] = ("spot", "portfolio_gamma", "hedge_gamma", "portfolio_vega", "hedge_vega")

    def __init__(
        self,
        config: EnvConfig | None = None,
        n_paths: int = 1000,
        *,
        seed: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        fused: bool = False,
        compiled: bool = False,
    ) -> None:
        if n_paths < 1:
            raise ConfigError(f"n_paths={n_paths}: the environment needs at least one path.")
        self.config = config if config is not None else EnvConfig()
        self.n_paths = int(n_paths)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.fused = bool(fused)
        self.compiled = bool(compiled)
        if self.compiled and self.device.type != "cpu":
            raise ConfigError(f"HedgingEnv(compiled=True) runs on the CPU; device is {self.device}. "
                              "Pass device='cpu', or fused=True for the fused torch valuation on this device.")
        self._generator = make_generator(seed, self.device)
        self.t = 0
        self._started = False

    # ------------------------------------------------------------------ spaces
    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the state columns."""
        return self.FEATURES + (("time_to_go",) if self.config.time_to_go else ())

    @property
    def n_features(self) -> int:
        """Number of state columns."""
        return len(self.feature_names)

    @property
    def action_low(self) -> float:
        """Smallest action (0)."""
        return 0.0

    @property
    def action_high(self) -> float:
        """Largest action (1, or ``a_max`` for ``action_map="vega_fraction"``)."""
        return self.config.a_max if self.config.action_map == "vega_fraction" else 1.0

    # ------------------------------------------------------------------ action map
    @staticmethod
    def neutral_contracts(state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contracts of today's hedging option that make the portfolio gamma / vega neutral.

        Parameters
        ----------
        state
            ``(paths, features)`` as returned by :meth:`reset` / :meth:`step`.

        Returns
        -------
        ``(n_gamma, n_vega)``, each ``(paths,)``.
        """
        return -state[:, 1] / state[:, 2], -state[:, 3] / state[:, 4]

    def contract_range(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contracts reached by the smallest and the largest action, each ``(paths,)``."""
        n_gamma, n_vega = self.neutral_contracts(state)
        zero = torch.zeros_like(n_gamma)
        mode = self.config.action_map
        if mode == "gamma_vega":
            return torch.minimum(zero, torch.minimum(n_gamma, n_vega)), torch.maximum(zero, torch.maximum(n_gamma, n_vega))
        if mode == "gamma":
            return torch.minimum(zero, n_gamma), torch.maximum(zero, n_gamma)
        return torch.minimum(zero, self.config.a_max * n_vega), torch.maximum(zero, self.config.a_max * n_vega)

    def action_to_contracts(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Map actions ``(paths,)`` (clipped to the action bounds) to hedging contracts ``(paths,)``."""
        a = action.clamp(self.action_low, self.action_high)
        if self.config.action_map == "vega_fraction":
            return a * self.neutral_contracts(state)[1]
        low, high = self.contract_range(state)
        return low + a * (high - low)

    def contracts_to_action(self, state: torch.Tensor, contracts: torch.Tensor) -> torch.Tensor:
        """Action that trades ``contracts`` ``(paths,)``, clipped to the action bounds when out of reach."""
        if self.config.action_map == "vega_fraction":
            n_vega = self.neutral_contracts(state)[1]
            safe = torch.where(n_vega == 0, torch.ones_like(n_vega), n_vega)
            a = torch.where(n_vega == 0, torch.zeros_like(n_vega), contracts / safe)
        else:
            low, high = self.contract_range(state)
            width = high - low
            safe = torch.where(width == 0, torch.ones_like(width), width)
            a = torch.where(width == 0, torch.zeros_like(width), (contracts - low) / safe)
        return a.clamp(self.action_low, self.action_high)

    # ------------------------------------------------------------------ dynamics
    @property
    def market(self) -> Market:
        """The current episode's :class:`Market` (after :meth:`reset`), e.g. to replay it elsewhere."""
        return Market(self.spot, self.sabr_vol, self.orders)

    def reset(self, seed: int | torch.Generator | None = None, *, market: Market | None = None) -> torch.Tensor:
        """Start a new episode on every path and return the day-0 state ``(paths, features)``.

        Parameters
        ----------
        seed
            Seed (or generator) of this episode's randomness; ``None`` continues the
            environment's own generator. The same seed gives the same episode on the same device.
        market
            Replay this market instead of simulating one (e.g. ``other_env.market``, from any
            device or dtype): three ``(paths, n_days + 1)`` tensors, ``spot`` and ``sabr_vol`` > 0.
            Exclusive with ``seed``.
        """
        if market is None:
            market = self._simulate_market(seed)
        elif seed is not None:
            raise ConfigError("HedgingEnv.reset() got both a seed and a market; pass one (the market replaces the simulation).")
        else:
            market = self._checked_market(market)
        cfg, mkt = self.config, self.config.market
        P, T = self.n_paths, cfg.n_days
        self.spot, self.sabr_vol, self.orders = market
        self._log_spot = torch.log(self.spot)
        days_left = torch.arange(T, -1, -1, device=self.device, dtype=self.dtype) / mkt.days_per_year
        # Per-day implied vol (Cao et al.): Hagan at strike s0 and the days left in the episode.
        self.day_vol = hagan_implied_vol_unchecked(self._forward(self.spot, days_left), mkt.s0, days_left, self.sabr_vol,
                                                   mkt.beta, mkt.rho, mkt.nu)
        book = dict(n_paths=P, n_slots=T + 1, contract_size=cfg.contract_size, days_per_year=mkt.days_per_year,
                    device=self.device, dtype=self.dtype, rate=mkt.rate, dividend=mkt.dividend)
        self._types = cfg.client_types
        if self.compiled:  # NumPy views (copies where not contiguous) read by the compiled kernel
            self._threads = torch.get_num_threads()
            day_vol = np.ascontiguousarray(self.day_vol.detach().numpy()) if cfg.implied_vol == "per_day" else None
            self._arrays = (np.ascontiguousarray(self.spot.detach().numpy()), np.ascontiguousarray(self._log_spot.detach().numpy()), day_vol)
        self.clients = [OptionBook(maturity_days=m, **book) for m, _ in self._types]
        self.client = self.clients[0]
        self.hedges = OptionBook(maturity_days=cfg.hedge_maturity_days, **book)
        if self.orders.dim() == 2:
            self.client.open(0, torch.full((P,), cfg.initial_contracts, device=self.device, dtype=self.dtype),
                             self._client_strike(0, self.spot[:, 0]))
        else:
            for client, opening in zip(self.clients, self._client_openings(0), strict=True):
                client.open(*opening)
        self.t = 0
        self._started = True
        spot0, vol_fn = self.spot[:, 0], self._vol_fn(0)
        client = self.client.valuation(0, spot0, vol_fn)
        for other in self.clients[1:]:
            client = _add(client, other.valuation(0, spot0, vol_fn))
        self._observe(_add(client, self.hedges.valuation(0, spot0, vol_fn)))
        return self.state

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Trade the hedging option, delta-hedge, move one day and book the P&L.

        Parameters
        ----------
        action
            ``(paths,)`` or ``(paths, 1)``, see :meth:`action_to_contracts`.

        Returns
        -------
        state
            ``(paths, features)`` on the next day.
        reward
            ``(paths,)`` per ``config.reward``.
        done
            ``(paths,)`` bool, all ``True`` after the last day.
        info
            ``pnl`` (signed P&L incl. cost), ``cost``, ``contracts`` (traded), ``n_gamma`` and
            ``n_vega`` (neutral amounts at decision time), ``gamma_after`` / ``vega_after``
            (portfolio greeks right after the trade), ``stock`` (stock position held overnight),
            each ``(paths,)``; and ``day`` (int, the day just reached).
        """
        if self.compiled:  # torch's few (P,) operations on one thread, the kernels on the caller's count
            self._threads = torch.get_num_threads()
            with intra_op_threads(1):
                return self._step(action)
        return self._step(action)

    def _step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """:meth:`step`."""
        if not self._started:
            raise ConfigError("HedgingEnv.step() was called before reset(); call env.reset(seed) first.")
        if self.t >= self.config.n_days:
            raise ConfigError(f"the episode ended on day {self.t}; call env.reset() before stepping again.")
        action = torch.as_tensor(action, device=self.device, dtype=self.dtype)
        if action.shape not in {(self.n_paths,), (self.n_paths, 1)}:
            raise ConfigError(f"action has shape {tuple(action.shape)}; expected ({self.n_paths},) or ({self.n_paths}, 1).")
        cfg, t = self.config, self.t
        state, hedge, port = self.state, self._hedge_option, self._portfolio
        n_gamma, n_vega = self.neutral_contracts(state)
        contracts = self.action_to_contracts(state, action.reshape(-1))
        if self.compiled and contracts.requires_grad:
            raise ConfigError("HedgingEnv(compiled=True).step got inputs that require grad (the action, or a market replayed "
                              "with gradients); the compiled valuation has no gradients. Use HedgingEnv(compiled=False) to "
                              "differentiate through the episode, or torch.no_grad().")
        size = cfg.contract_size
        cost = cfg.cost * hedge.price * contracts.abs() * size
        value_t = port.price + contracts * size * hedge.price
        stock = -(port.delta + contracts * size * hedge.delta)
        gamma_after = port.gamma + contracts * size * hedge.gamma
        vega_after = port.vega + contracts * size * hedge.vega
        # Overnight: today's hedges and tomorrow's client orders are booked, then every book is revalued once.
        t1 = t + 1
        spot_next = self.spot[:, t1]
        held, now = self._night(t, spot_next, [*self._client_openings(t1), (t, contracts, self.spot[:, t])])
        gross = held - value_t + stock * (spot_next - self.spot[:, t])
        mkt = cfg.market
        if mkt.carry:  # dividends on the stock held, interest on the cash financing options and stock
            stock_value = stock * self.spot[:, t]
            gross = gross + stock_value * math.expm1(mkt.dividend * mkt.dt) - (value_t + stock_value) * math.expm1(mkt.rate * mkt.dt)
        pnl = gross - cost
        reward = pnl if cfg.reward == "pnl" else -gross.abs() - cost
        self.t = t1
        self._observe(now)
        done = torch.full((self.n_paths,), self.t >= cfg.n_days, device=self.device, dtype=torch.bool)
        info = {
            "pnl": pnl, "cost": cost, "contracts": contracts, "n_gamma": n_gamma, "n_vega": n_vega,
            "gamma_after": gamma_after, "vega_after": vega_after, "stock": stock, "day": self.t,
        }
        return self.state, reward, done, info

    def run_episode(
        self, policy: Policy, seed: int | torch.Generator | None = None, *, market: Market | None = None
    ) -> Episode:
        """Play one episode of ``policy`` on every path (no gradients) and collect its P&L.

        Parameters
        ----------
        policy
            ``policy(state) -> action``, e.g. a baseline of :mod:`gradfolio.hedging.baselines`
            or a trained actor network.
        seed
            Episode seed; the same seed gives every policy the same market and client orders.
        market
            Replay this market instead (see :meth:`reset`).

        Returns
        -------
        Episode
            Each field ``(paths, n_days)``.
        """
        state = self.reset(seed, market=market)
        rows: dict[str, list[torch.Tensor]] = {"pnl": [], "reward": [], "cost": [], "contracts": []}
        done = torch.zeros(self.n_paths, dtype=torch.bool)
        with torch.no_grad():
            while not bool(done.all()):
                state, reward, done, info = self.step(policy(state))
                rows["pnl"].append(info["pnl"])
                rows["reward"].append(reward)
                rows["cost"].append(info["cost"])
                rows["contracts"].append(info["contracts"])
        return Episode(**{k: torch.stack(v, dim=1) for k, v in rows.items()})

    # ------------------------------------------------------------------ internals
    def _simulate_market(self, seed: int | torch.Generator | None = None) -> Market:
        """Draw an episode's SABR paths and client orders with ``seed`` (``None``: the env's own generator)."""
        cfg, mkt = self.config, self.config.market
        gen = self._generator if seed is None else make_generator(seed, self.device)
        P, T = self.n_paths, cfg.n_days
        paths = simulate_sabr(
            P, T, alpha0=mkt.alpha0, s0=mkt.s0, beta=mkt.beta, rho=mkt.rho, nu=mkt.nu, mu=mkt.mu, dt=mkt.dt,
            generator=gen, device=self.device, dtype=self.dtype,
        )
        n_types = len(cfg.client_types)
        orders = draw_client_orders(P, T, cfg.arrival_rate, gen, self.device, self.dtype, n_types)
        if n_types > 1:  # the day-0 position draws its type like an order
            kind = torch.randint(n_types, (P, 1), generator=gen, device=self.device)
            orders[:, 0, :] = cfg.initial_contracts * torch.nn.functional.one_hot(kind[:, 0], n_types).to(self.dtype)
        return Market(paths.spot, paths.vol, orders)

    def _checked_market(self, market: Market) -> Market:
        """``market`` on this env's device and dtype, after checking shapes and positivity."""
        shape = (self.n_paths, self.config.n_days + 1)
        n_types = len(self.config.client_types)
        out = Market(*(torch.as_tensor(x, device=self.device, dtype=self.dtype) for x in market))
        for name, x in zip(Market._fields, out, strict=True):
            want = shape + (n_types,) if name == "orders" and n_types > 1 else shape
            if tuple(x.shape) != want:
                dims = "(n_paths, n_days + 1, client types)" if len(want) == 3 else "(n_paths, n_days + 1)"
                raise ConfigError(f"HedgingEnv.reset: market.{name} has shape {tuple(x.shape)}; expected {want} {dims}.")
        check_positive("HedgingEnv.reset", "market.spot", out.spot, "pass positive stock prices")
        check_positive("HedgingEnv.reset", "market.sabr_vol", out.sabr_vol, "pass positive SABR volatilities")
        return out

    def _forward(self, spot: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Forward ``F = S e^{(r - q) tau}`` of eq. 53 (the spot itself when ``r = q``); ``spot`` and ``tau`` broadcast."""
        mkt = self.config.market
        return spot if mkt.rate == mkt.dividend else spot * torch.exp((mkt.rate - mkt.dividend) * tau)

    def _client_strike(self, kind: int, spot: torch.Tensor) -> torch.Tensor:
        """Strike ``(P,)`` of client options of type ``kind`` opened at ``spot (P,)``: the type's multiple of the spot."""
        k = self._types[kind][1]
        return spot if k == 1.0 else k * spot

    def _client_openings(self, day: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """The day's client orders as :meth:`OptionBook.open` arguments ``(day, contracts (P,), strike (P,))``,
        one per client book (``orders (P, n_days + 1)`` or ``(P, n_days + 1, types)``)."""
        spot = self.spot[:, day]
        if self.orders.dim() == 2:
            return [(day, self.orders[:, day], self._client_strike(0, spot))]
        return [(day, self.orders[:, day, i], self._client_strike(i, spot)) for i in range(len(self.clients))]

    def _night(self, t: int, spot: torch.Tensor, openings: list[tuple[int, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, Greeks]:
        """Open ``openings`` (one :meth:`OptionBook.open` per book: the client books, then the hedges) and
        revalue every book on day ``t + 1`` (``spot (P,)`` its price): the value ``(P,)`` of the
        positions held on day ``t`` and the greeks of those held on day ``t + 1``, summed over the
        client books, then the hedges."""
        t1 = t + 1
        books = [*self.clients, self.hedges]
        vol_fn = self._vol_fn(t1)
        if self.compiled:  # each book's opening in its kernel pass
            out = np.empty((5, self.n_paths), dtype=self._arrays[0].dtype)
            spot_np, log_spot_np, day_vol = self._arrays
            for i, (book, opening) in enumerate(zip(books, openings, strict=True)):
                book.revalue_into(t1, spot_np, log_spot_np, vol_fn, out, i > 0, day_vol, self._threads, opening)
            rows = torch.from_numpy(out)
            return rows[0], Greeks(rows[1], rows[2], rows[3], rows[4])
        for book, opening in zip(books, openings, strict=True):
            book.open(*opening)
        log_spot = self._log_spot[:, t1]
        held, now = self._overnight(books[0], t, spot, log_spot, vol_fn)
        for book in books[1:]:  # added in book order, as the compiled kernel accumulates them
            more, more_now = self._overnight(book, t, spot, log_spot, vol_fn)
            held, now = held + more, _add(now, more_now)
        return held, now

    def _overnight(self, book: OptionBook, t: int, spot: torch.Tensor, log_spot: torch.Tensor, vol_fn: VolFn) -> tuple[torch.Tensor, Greeks]:
        """``book`` revalued on day ``t + 1``: fused (:meth:`OptionBook.revalue`) or slot by slot (:meth:`_revalue`)."""
        if self.fused:
            return book.revalue(t + 1, spot, log_spot, vol_fn)
        return self._revalue(book, t, spot, vol_fn)

    def _vol_fn(self, day: int) -> VolFn:
        mkt = self.config.market
        if self.config.implied_vol == "per_day":
            vol = self.day_vol[:, day : day + 1]
            return lambda strike, tau: vol
        spot, alpha = self.spot[:, day : day + 1], self.sabr_vol[:, day : day + 1]
        return lambda strike, tau: hagan_implied_vol_unchecked(self._forward(spot, tau), strike, tau, alpha, mkt.beta, mkt.rho, mkt.nu)

    @staticmethod
    def _revalue(book: OptionBook, t: int, spot: torch.Tensor, vol_fn: VolFn) -> tuple[torch.Tensor, Greeks]:
        """Value ``book`` on day ``t + 1`` in one pass over the slots held on day ``t`` or ``t + 1``.

        Returns the value ``(P,)`` of the positions held on day ``t`` (expiring ones at their payoff)
        and the value and greeks of those held on day ``t + 1`` (new arrivals included).
        """
        held_t, held_next = book.held(t), book.held(t + 1)
        slots = slice(held_t.start, held_next.stop)
        g = book.slot_greeks(slots, t + 1, spot, vol_fn)
        old = held_t.stop - slots.start  # columns of the positions held on day t
        new = held_next.start - slots.start  # first column still held on day t + 1
        return g.price[:, :old].sum(dim=1), Greeks(*(v[:, new:].sum(dim=1) for v in g))

    def _observe(self, portfolio: Greeks) -> None:
        """Store the portfolio greeks, price today's hedging option and build the state on day ``self.t``."""
        cfg, t = self.config, self.t
        spot = self.spot[:, t]
        vol_fn = self._vol_fn(t)
        self._portfolio = portfolio
        tau = torch.full((1,), cfg.hedge_maturity_days / cfg.market.days_per_year, device=self.device, dtype=self.dtype)
        strike = spot[:, None]
        mkt = cfg.market
        if self.compiled:  # the at-the-money call by the compiled kernel
            from gradfolio.hedging import _book_kernels, _normal

            out = np.empty((4, self.n_paths), dtype=self._arrays[0].dtype)
            vol = np.ascontiguousarray(torch.broadcast_to(vol_fn(strike, tau), strike.shape)[:, 0].detach().numpy())
            args = (self._arrays[0], t, vol, cfg.hedge_maturity_days / mkt.days_per_year, mkt.rate, mkt.dividend, *_normal.tables(), out)
            _book_kernels.run(args, self.n_paths, self._threads, _book_kernels.atm_call)
            self._hedge_option = Greeks(*torch.from_numpy(out))
        else:
            greeks = live_greeks_unchecked(strike, strike, tau, vol_fn(strike, tau), mkt.rate, mkt.dividend)
            self._hedge_option = Greeks(*(g[:, 0] for g in greeks))
        size = cfg.contract_size
        columns = [spot, self._portfolio.gamma, size * self._hedge_option.gamma, self._portfolio.vega, size * self._hedge_option.vega]
        if cfg.time_to_go:
            columns.append(torch.full_like(spot, (cfg.n_days - t) / cfg.n_days))
        self.state = torch.stack(columns, dim=1)


__all__ = ["HedgingEnv", "Episode", "Market", "Policy"]
