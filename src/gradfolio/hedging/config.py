"""Typed settings of the hedging market (SABR) and of the hedging environment.

The defaults are the setup of the ANADDH paper ("Adaptive Nesterov accelerated distributional
deep hedging", Appendix A and Sections 4 and 6), which builds on the market of Cao, Chen,
Farghadani, Hull, Poulos, Wang and Yuan, "Gamma and vega hedging using deep distributional
reinforcement learning" (Frontiers in AI, 2023) but not with Cao et al.'s SABR parameters:
``beta = 0.5`` and ``rho = 0.2`` are the ANADDH paper's (set ``market.beta`` / ``market.rho`` to
Cao et al.'s values to reproduce their experiments). S0 = 10, mu = 0, beta = 0.5, rho = 0.2,
nu = 0.3, an initial volatility of 30%, one step per trading day with 250 trading days a year, a 30-day episode, a
short 60-day ATM call of 100 units on day 0, Poisson(1/day) client orders for 60-day ATM calls,
a fresh 30-day ATM call as the hedging instrument and a proportional cost of 0.5% of the option
price. Rates and dividends are zero by default (``r = q = 0``), so the forward of eq. 53 is the spot.

Cao et al.'s client-book options are fields too (defaults unchanged bit for bit): random client
maturities (``EnvConfig.client_maturity_days`` as a list drawn from per order), non-ATM client
strikes (``EnvConfig.client_moneyness``), and a rate and dividend yield (``MarketConfig.rate`` /
``MarketConfig.dividend``) in the Black-Scholes prices and greeks, in the forward of Hagan's
formula and in the daily financing of the hedged position.

These models live in the library (not in ``gradfolio.experiments``) because the environment
itself takes them; :mod:`gradfolio.experiments.hedging.config` composes them into the file-level
``HedgingConfig``.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ImpliedVolMode = Literal["per_day", "per_option"]
ActionMap = Literal["gamma_vega", "gamma", "vega_fraction"]
RewardMode = Literal["pnl", "abs_pnl"]
BaselineName = Literal["delta", "delta_gamma", "delta_vega"]
"""Classical baselines of :mod:`gradfolio.hedging.baselines` (the greeks they neutralize)."""
BASELINES: tuple[BaselineName, ...] = get_args(BaselineName)


PositiveDays = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class MarketConfig(BaseModel):
    """SABR market (eqs. 50-52 of the ANADDH paper) sampled once per trading day.

    Attributes
    ----------
    s0
        Initial stock price ``P_0``.
    mu
        Annual drift of the stock (0 = martingale).
    sigma0
        Initial volatility. With ``sigma0_lognormal=True`` (default) it is the initial
        *lognormal* volatility ``sigma_0 P_0^(beta-1)`` (the paper's "initial volatility 30%",
        which prices a 60-day ATM call on 100 units at about $60), and the SABR alpha is
        ``sigma0 * s0**(1 - beta)``; with ``False`` it is the SABR alpha itself.
    sigma0_lognormal
        How ``sigma0`` is read, see above. Both readings coincide for ``beta = 1``.
    beta
        SABR elasticity in ``[0, 1]``.
    rho
        Correlation of the stock and volatility shocks, in ``(-1, 1)``.
    nu
        Volatility of volatility (``v`` in the paper), ``>= 0``; ``0`` gives constant volatility.
    days_per_year
        Trading days per year; one simulation step is ``1 / days_per_year`` years.
    rate
        Continuously compounded risk-free rate ``r`` (annual, in ``[-1, 1]``; default 0). It enters
        the Black-Scholes prices and greeks, the forward ``F = S e^{(r - q) tau}`` of Hagan's
        implied vol (eq. 53) and the daily interest on the cash that finances the hedged
        position. It does **not** change the simulated drift, which stays ``mu`` (the market is
        simulated under the real-world measure, as in the paper's eq. 52; set
        ``mu = rate - dividend`` to simulate under the pricing measure).
    dividend
        Continuous dividend yield ``q`` (annual, in ``[-1, 1]``; default 0): in the prices and
        greeks (``e^{-q tau}`` factors), in the forward, and paid daily on the stock held.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    s0: float = Field(10.0, gt=0)
    mu: float = 0.0
    sigma0: float = Field(0.3, gt=0)
    sigma0_lognormal: bool = True
    beta: float = Field(0.5, ge=0, le=1)
    rho: float = Field(0.2, gt=-1, lt=1)
    nu: float = Field(0.3, ge=0)
    days_per_year: int = Field(250, gt=0)
    rate: float = Field(0.0, ge=-1, le=1, allow_inf_nan=False)
    dividend: float = Field(0.0, ge=-1, le=1, allow_inf_nan=False)

    @property
    def carry(self) -> bool:
        """Whether a rate or a dividend is set (``False``: the zero-rate code paths, bit for bit as before)."""
        return self.rate != 0.0 or self.dividend != 0.0

    @property
    def alpha0(self) -> float:
        """Initial SABR volatility ``sigma_0`` of eq. 52 (``alpha`` in Hagan et al.)."""
        return self.sigma0 * self.s0 ** (1.0 - self.beta) if self.sigma0_lognormal else self.sigma0

    @property
    def dt(self) -> float:
        """Length of one step in years."""
        return 1.0 / self.days_per_year


class EnvConfig(BaseModel):
    """Client book, hedging instrument, costs and the RL interface of :class:`HedgingEnv`.

    Attributes
    ----------
    market
        The SABR market.
    n_days
        Episode length in trading days (decisions on days ``0 .. n_days - 1``).
    initial_contracts
        Trader's position on day 0 in the first client option, in contracts (``-1`` = short one).
    client_maturity_days
        Maturity of the client options in trading days: one number (every option, default 60),
        or a list from which each client order (and the day-0 position) draws its maturity
        uniformly and independently, with the episode's generator (e.g. ``[20, 40, 60, 90]``).
    client_moneyness
        Strike of the client options as a multiple ``k > 0`` of the spot on the day they are
        opened (``K = k S_t``; ``1`` = at the money, the default; ``1.1`` = 10% out of the money
        for a call), or a list from which each order draws ``k`` uniformly, independently of its
        maturity. The hedging option stays at the money.
    arrival_rate
        Poisson intensity of client orders per day (days ``1 .. n_days``).
    contract_size
        Units of the underlying per option contract (100).
    hedge_maturity_days
        Maturity of the ATM call bought/sold each day as the hedging instrument (30, 90 or 120).
    cost
        ``kappa``: cost of trading hedging options, a fraction of the option price, charged as
        ``kappa * price * |contracts| * contract_size``. Stock trades are free.
    implied_vol
        ``"per_day"``: one Hagan vol per path and day, at strike ``s0`` and the days left in the
        episode, used for every option (as in Cao et al.'s code); ``"per_option"``: each option
        gets the Hagan vol of its own strike and remaining maturity.
    action_map
        How an action becomes a number of hedging contracts. ``"gamma_vega"``: ``a in [0, 1]``
        maps linearly onto ``[min(0, n_gamma, n_vega), max(0, n_gamma, n_vega)]`` (Cao et al.
        with vega in the state); ``"gamma"``: onto ``[min(0, n_gamma), max(0, n_gamma)]``;
        ``"vega_fraction"``: the ANADDH ``[0, a_max]`` map, ``contracts = a * n_vega``.
        ``n_gamma``/``n_vega`` are the contracts that make the portfolio gamma/vega neutral.
    a_max
        Upper bound of the action for ``action_map="vega_fraction"`` (ignored otherwise). A
        constant: the ANADDH paper derives a per-option ``a_max`` from a risk tolerance and the
        portfolio's total vega (Section 4.1) without giving the tolerance, so it is not reproduced.
    reward
        ``"pnl"``: signed daily P&L including the cost; ``"abs_pnl"``: the ANADDH reward
        ``-|P_t - P_{t-1}| - cost`` (eqs. 2-4).
    time_to_go
        Append the fraction of the episode still to go as a sixth state feature.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    market: MarketConfig = MarketConfig()
    n_days: int = Field(30, gt=0)
    initial_contracts: float = -1.0
    client_maturity_days: PositiveDays | Annotated[list[PositiveDays], Field(min_length=1)] = Field(60, union_mode="left_to_right")
    client_moneyness: PositiveFloat | Annotated[list[PositiveFloat], Field(min_length=1)] = Field(1.0, union_mode="left_to_right")
    arrival_rate: float = Field(1.0, ge=0)
    contract_size: float = Field(100.0, gt=0)
    hedge_maturity_days: int = Field(30, gt=0)
    cost: float = Field(0.005, ge=0)
    implied_vol: ImpliedVolMode = "per_day"
    action_map: ActionMap = "gamma_vega"
    a_max: float = Field(1.0, gt=0)
    reward: RewardMode = "pnl"
    time_to_go: bool = False

    @property
    def client_types(self) -> list[tuple[int, float]]:
        """The ``(maturity_days, moneyness)`` pairs a client option can have, maturity-major.

        One pair (the default) means every client option is alike; with ``M`` maturities and
        ``K`` moneyness values there are ``M x K`` pairs, each drawn with probability ``1 / (M K)``.
        """
        maturities = self.client_maturity_days if isinstance(self.client_maturity_days, list) else [self.client_maturity_days]
        moneyness = self.client_moneyness if isinstance(self.client_moneyness, list) else [self.client_moneyness]
        return list(itertools.product(maturities, moneyness))


__all__ = ["MarketConfig", "EnvConfig", "ImpliedVolMode", "ActionMap", "RewardMode", "BaselineName", "BASELINES"]
