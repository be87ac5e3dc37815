"""Black-Scholes prices and greeks of European calls and puts, batched in torch.

Conventions (ANADDH paper, Appendix A.7, eqs. 57-60):

- ``tau`` is the time to maturity in **years**; ``vol`` the annual implied volatility;
  ``r`` and ``q`` continuously compounded rate and dividend yield.
- ``delta`` is per unit of the underlying, ``gamma`` per unit per unit of price, and ``vega``
  is per **volatility point**: the price change for a +1% (0.01) move of ``vol``
  (``S e^{-q tau} sqrt(tau) phi(d1) / 100``), as in Cao et al.'s code.
- At ``tau = 0`` the price is the payoff, delta the exercise indicator (``S > K`` for a call),
  and gamma and vega are zero.

Every argument broadcasts against the others (tensors or Python floats); results have the
broadcast shape, device and dtype of the tensor inputs. All functions are differentiable.

The public functions check their inputs (``spot, strike, vol > 0``, ``tau >= 0``) and raise
:class:`~gradfolio.errors.ConfigError` naming the argument. The unchecked
:func:`bs_greeks_unchecked`, :func:`live_greeks_unchecked` (every ``tau > 0``) and
:func:`expired_greeks` (``tau = 0``) skip those checks, for the environment's hot path on values it
built itself (:mod:`~gradfolio.hedging.book`, :mod:`~gradfolio.hedging.env`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from gradfolio.hedging.validation import Scalar, as_tensors, check_positive

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Greeks(NamedTuple):
    """Price and first/second-order sensitivities of an option (all the broadcast shape)."""

    price: torch.Tensor
    delta: torch.Tensor
    gamma: torch.Tensor
    vega: torch.Tensor


def _checked(where: str, spot: Scalar, strike: Scalar, tau: Scalar, vol: Scalar, r: Scalar, q: Scalar) -> list[torch.Tensor]:
    """The arguments as tensors (see :func:`~gradfolio.hedging.validation.as_tensors`), after checking the Black-Scholes domain."""
    spot, strike, tau, vol, r, q = as_tensors(spot, strike, tau, vol, r, q)
    check_positive(where, "spot", spot, "pass the price of the underlying")
    check_positive(where, "strike", strike, "pass a positive strike")
    check_positive(where, "tau", tau, "pass the time to maturity in years (0 at expiry)", allow_zero=True)
    check_positive(where, "vol", vol, "pass the annual implied volatility as a fraction, e.g. 0.2 for 20%")
    return [spot, strike, tau, vol, r, q]


def bs_greeks(
    spot: Scalar,
    strike: Scalar,
    tau: Scalar,
    vol: Scalar,
    r: Scalar = 0.0,
    q: Scalar = 0.0,
    call: bool = True,
) -> Greeks:
    """Black-Scholes price, delta, gamma and vega (per vol point) in one pass.

    Parameters
    ----------
    spot, strike
        Underlying price and strike, any broadcastable shapes.
    tau
        Time to maturity in years (``>= 0``).
    vol
        Implied volatility (annual, ``> 0``).
    r, q
        Risk-free rate and dividend yield.
    call
        ``True`` for calls, ``False`` for puts.

    Returns
    -------
    Greeks
        ``price, delta, gamma, vega``, each of the broadcast shape.

    Raises
    ------
    ConfigError
        If some ``spot``, ``strike`` or ``vol`` is ``<= 0`` or some ``tau`` is ``< 0`` (or NaN).
    """
    return bs_greeks_unchecked(*_checked("bs_greeks", spot, strike, tau, vol, r, q), call)


def bs_greeks_unchecked(
    spot: torch.Tensor, strike: torch.Tensor, tau: torch.Tensor, vol: torch.Tensor,
    r: Scalar = 0.0, q: Scalar = 0.0, call: bool = True,
) -> Greeks:
    """:func:`bs_greeks` without the input checks, for tensors the caller knows to be valid.

    Arguments broadcast against each other; every field of the returned :class:`Greeks` has the
    broadcast shape. Invalid inputs give NaN or infinite values instead of an error.
    """
    live = tau > 0
    g = live_greeks_unchecked(spot, strike, torch.where(live, tau, torch.ones_like(tau)), vol, r, q, call)
    e = expired_greeks(spot, strike, call)
    return Greeks(*(torch.where(live, a, b) for a, b in zip(g, e, strict=True)))


def live_greeks_unchecked(
    spot: torch.Tensor, strike: torch.Tensor, tau: torch.Tensor, vol: torch.Tensor,
    r: Scalar = 0.0, q: Scalar = 0.0, call: bool = True,
) -> Greeks:
    """Unchecked :func:`bs_greeks` for options known to be alive (every ``tau > 0``): no expiry branch, fewer passes.

    Arguments broadcast; the fields of the returned :class:`Greeks` have the broadcast shape.
    """
    sqrt_tau = tau.sqrt()
    vol_sqrt = vol * sqrt_tau
    d1 = (torch.log(spot / strike) + (r - q + 0.5 * vol * vol) * tau) / vol_sqrt
    d2 = d1 - vol_sqrt
    disc_q = torch.exp(-q * tau) if isinstance(q, torch.Tensor) or q != 0 else 1.0
    disc_r = torch.exp(-r * tau) if isinstance(r, torch.Tensor) or r != 0 else 1.0
    pdf = torch.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    if call:
        delta = disc_q * torch.special.ndtr(d1)
        price = spot * delta - strike * disc_r * torch.special.ndtr(d2)
    else:
        delta = -disc_q * torch.special.ndtr(-d1)
        price = spot * delta + strike * disc_r * torch.special.ndtr(-d2)
    gamma = disc_q * pdf / (spot * vol_sqrt)
    vega = spot * disc_q * sqrt_tau * pdf / 100.0
    return Greeks(price, delta, gamma, vega)


def expired_greeks(spot: torch.Tensor, strike: torch.Tensor, call: bool = True) -> Greeks:
    """Options at expiry: price = payoff, delta = exercise indicator (signed for puts), zero gamma and vega.

    ``spot`` and ``strike`` broadcast; the fields of the returned :class:`Greeks` have their broadcast shape.
    """
    moneyness = spot - strike if call else strike - spot
    price = moneyness.clamp(min=0.0)
    delta = (moneyness > 0).to(price.dtype) * (1.0 if call else -1.0)
    zero = torch.zeros_like(price)
    return Greeks(price, delta, zero, zero)


def bs_price(spot: Scalar, strike: Scalar, tau: Scalar, vol: Scalar, r: Scalar = 0.0, q: Scalar = 0.0, call: bool = True) -> torch.Tensor:
    """Black-Scholes price (eq. 58); arguments, shapes and errors as in :func:`bs_greeks`."""
    return bs_greeks_unchecked(*_checked("bs_price", spot, strike, tau, vol, r, q), call).price


def bs_delta(spot: Scalar, strike: Scalar, tau: Scalar, vol: Scalar, r: Scalar = 0.0, q: Scalar = 0.0, call: bool = True) -> torch.Tensor:
    """Black-Scholes delta (eq. 59) per unit of the underlying; see :func:`bs_greeks`."""
    return bs_greeks_unchecked(*_checked("bs_delta", spot, strike, tau, vol, r, q), call).delta


def bs_gamma(spot: Scalar, strike: Scalar, tau: Scalar, vol: Scalar, r: Scalar = 0.0, q: Scalar = 0.0, call: bool = True) -> torch.Tensor:
    """Black-Scholes gamma (same for calls and puts); see :func:`bs_greeks`."""
    return bs_greeks_unchecked(*_checked("bs_gamma", spot, strike, tau, vol, r, q), call).gamma


def bs_vega(spot: Scalar, strike: Scalar, tau: Scalar, vol: Scalar, r: Scalar = 0.0, q: Scalar = 0.0, call: bool = True) -> torch.Tensor:
    """Black-Scholes vega (eq. 60) per volatility point (divided by 100); see :func:`bs_greeks`."""
    return bs_greeks_unchecked(*_checked("bs_vega", spot, strike, tau, vol, r, q), call).vega


__all__ = [
    "Greeks", "bs_greeks", "bs_price", "bs_delta", "bs_gamma", "bs_vega",
    "bs_greeks_unchecked", "live_greeks_unchecked", "expired_greeks",
]
