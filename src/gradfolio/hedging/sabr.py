"""SABR stock and volatility paths (ANADDH eqs. 50-52) and Hagan's implied volatility (eqs. 53-56).

Simulation, one step of ``dt`` years per trading day, for ``t = 0 .. T-1``::

    q_v        = rho q_s + sqrt(1 - rho^2) q_i                                      (50)
    sigma_{t+1} = sigma_t exp(-nu^2 dt / 2 + nu q_v sqrt(dt))                       (51)
    P_{t+1}     = P_t exp((mu - (sigma_t P_t^(beta-1))^2 / 2) dt
                          + sigma_t P_t^(beta-1) sqrt(dt) q_s)                      (52)

with ``q_s, q_i`` independent standard normal matrices of shape ``(paths, T + 1)`` (the last
column is drawn, as in the paper, but unused). The volatility is an exact lognormal martingale;
the price is a log-Euler step of ``dP = mu P dt + sigma P^beta dW`` (exact GBM for ``beta = 1``),
so ``E[P_T] = P_0 e^{mu T dt}`` holds for every ``beta``.

``alpha0`` (Hagan's alpha, :attr:`MarketConfig.alpha0 <gradfolio.hedging.config.MarketConfig.alpha0>`)
is the initial SABR volatility ``sigma_0`` of eq. 52, not the lognormal volatility: the latter is
``alpha0 * s0**(beta - 1)``. :func:`hagan_implied_vol` checks its inputs; the environment's hot path
calls the unchecked :func:`hagan_implied_vol_unchecked` on values it built itself.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.config import MarketConfig
from gradfolio.hedging.validation import Scalar, as_tensors, check_positive
from gradfolio.seeding import make_generator, resolve_device

_MARKET = MarketConfig()  # defaults of the SABR parameters (the paper's market)

_SMALL = 1e-12


class SabrPaths(NamedTuple):
    """Simulated stock prices and instantaneous SABR volatilities, each ``(paths, steps + 1)``."""

    spot: torch.Tensor
    vol: torch.Tensor


def check_sabr_params(
    beta: float, rho: float, nu: float, alpha0: float | None = None, s0: float | None = None
) -> None:
    """Check SABR parameters, raising :class:`ConfigError` naming the bad one and its valid range.

    Parameters
    ----------
    beta, rho, nu
        Elasticity in ``[0, 1]``, correlation in ``(-1, 1)`` and volatility of volatility ``>= 0``.
    alpha0, s0
        Initial SABR volatility (Hagan's alpha) and initial price, each ``> 0``; ``None`` skips
        the check (Hagan's formula takes neither).

    Raises
    ------
    ConfigError
        On the first parameter out of its range (NaN included).
    """
    if alpha0 is not None and not alpha0 > 0:
        raise ConfigError(
            f"alpha0={alpha0}: the initial SABR volatility (Hagan's alpha) must be > 0; it is "
            "sigma0 * s0**(1 - beta) for an initial lognormal vol sigma0 (MarketConfig.alpha0, 0.3 * sqrt(10) by default)."
        )
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"beta={beta}: the SABR elasticity must lie in [0, 1] (e.g. 0.5).")
    if not -1.0 < rho < 1.0:
        raise ConfigError(f"rho={rho}: the SABR correlation must lie strictly between -1 and 1 (e.g. 0.2).")
    if not nu >= 0:
        raise ConfigError(f"nu={nu}: the volatility of volatility must be >= 0 (0 = constant volatility).")
    if s0 is not None and not s0 > 0:
        raise ConfigError(f"s0={s0}: the initial stock price must be > 0 (e.g. 10).")


def simulate_sabr(
    n_paths: int,
    n_steps: int,
    *,
    alpha0: float,
    s0: float = _MARKET.s0,
    beta: float = _MARKET.beta,
    rho: float = _MARKET.rho,
    nu: float = _MARKET.nu,
    mu: float = _MARKET.mu,
    dt: float = _MARKET.dt,
    generator: int | torch.Generator | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> SabrPaths:
    """Simulate SABR paths with eqs. 50-52, vectorized over paths.

    ``alpha0`` is required; ``s0, beta, rho, nu, mu, dt`` default to those of :class:`MarketConfig`.

    Parameters
    ----------
    n_paths, n_steps
        Number of paths ``N`` and of time steps ``T``.
    alpha0
        Initial SABR volatility ``sigma_0`` of eq. 52 (Hagan's alpha, ``MarketConfig.alpha0``).
        Required: the initial lognormal volatility is ``alpha0 * s0**(beta - 1)``, so 30% at
        ``s0 = 10, beta = 0.5`` is ``alpha0 = 0.3 * sqrt(10)`` but ``alpha0 = 0.3`` at ``beta = 1``.
    s0
        Initial price ``P_0``.
    beta, rho, nu
        SABR elasticity, correlation and volatility of volatility.
    mu
        Annual drift.
    dt
        Step length in years (``1/250`` = one trading day).
    generator
        Seed or ``torch.Generator`` (on ``device``); the same seed gives the same paths.
    device, dtype
        Where and in which precision the paths are computed.

    Returns
    -------
    SabrPaths
        ``spot`` and ``vol``, each ``(n_paths, n_steps + 1)``, column 0 holding ``s0``/``alpha0``.
    """
    check_sabr_params(beta, rho, nu, alpha0, s0)
    if n_paths < 1 or n_steps < 0:
        raise ConfigError(f"n_paths={n_paths}, n_steps={n_steps}: need at least one path and n_steps >= 0.")
    if not dt > 0:
        raise ConfigError(f"dt={dt}: the step length in years must be > 0 (1/250 for daily steps).")
    dev = resolve_device(device)
    gen = make_generator(generator, dev)
    shape = (n_paths, n_steps + 1)
    q_s = torch.randn(shape, generator=gen, device=dev, dtype=dtype)
    q_i = torch.randn(shape, generator=gen, device=dev, dtype=dtype)
    q_v = rho * q_s + math.sqrt(1.0 - rho * rho) * q_i  # (50)
    # (51): the volatility path is a cumulative product, no loop needed.
    vol_steps = torch.exp(-0.5 * nu * nu * dt + nu * math.sqrt(dt) * q_v[:, :n_steps])
    vol = torch.empty(shape, device=dev, dtype=dtype)
    vol[:, 0] = alpha0
    vol[:, 1:] = alpha0 * torch.cumprod(vol_steps, dim=1)
    # (52): the price depends on its own level through P^(beta-1), so it steps through time.
    spot = torch.empty(shape, device=dev, dtype=dtype)
    spot[:, 0] = s0
    sqrt_dt = math.sqrt(dt)
    for t in range(n_steps):
        local = vol[:, t] * spot[:, t].pow(beta - 1.0)
        spot[:, t + 1] = spot[:, t] * torch.exp((mu - 0.5 * local * local) * dt + local * sqrt_dt * q_s[:, t])
    return SabrPaths(spot=spot, vol=vol)


def hagan_implied_vol(
    forward: Scalar,
    strike: Scalar,
    tau: Scalar,
    alpha: Scalar,
    beta: float,
    rho: float,
    nu: float,
) -> torch.Tensor:
    """Hagan et al. (2002) lognormal implied volatility of the SABR model (eqs. 54-56).

    Parameters
    ----------
    forward
        Forward ``F = P e^{(r - q) tau}`` (eq. 53; ``F = P`` with ``r = q = 0``).
    strike
        Strike ``K``.
    tau
        Time to maturity in years (``t_opt``).
    alpha
        Current SABR volatility ``sigma_t``.
    beta, rho, nu
        SABR parameters (``nu = 0`` is allowed: ``Phi / chi -> 1``).

    Returns
    -------
    Tensor of the broadcast shape of the arguments (float64 when none is a tensor). Where ``F = K``
    (``|ln F/K| < 1e-12``) the ATM branch ``sigma Psi / F^(1-beta)`` is used; elsewhere
    ``Lambda Psi Phi / chi``.

    Raises
    ------
    ConfigError
        If some ``forward``, ``strike`` or ``alpha`` is ``<= 0``, some ``tau`` is ``< 0`` (or NaN),
        or ``beta, rho, nu`` are out of range (:func:`check_sabr_params`).
    """
    check_sabr_params(beta, rho, nu)
    f, k, t, a = as_tensors(forward, strike, tau, alpha)
    check_positive("hagan_implied_vol", "forward", f, "pass the forward F = P e^{(r - q) tau} (the spot when r = q = 0)")
    check_positive("hagan_implied_vol", "strike", k, "pass a positive strike")
    check_positive("hagan_implied_vol", "tau", t, "pass the time to maturity in years", allow_zero=True)
    check_positive("hagan_implied_vol", "alpha", a, "pass the current SABR volatility sigma_t (Hagan's alpha), e.g. MarketConfig().alpha0")
    return hagan_implied_vol_unchecked(f, k, t, a, beta, rho, nu)


def hagan_implied_vol_unchecked(f: torch.Tensor, k: Scalar, t: Scalar, a: torch.Tensor, beta: float, rho: float, nu: float) -> torch.Tensor:
    """:func:`hagan_implied_vol` of forward ``f``, strike ``k``, maturity ``t``, alpha ``a``, without the input checks.

    ``f, k, t, a`` broadcast; the result has their broadcast shape. Invalid inputs (non-positive
    ``f``, ``k`` or ``a``) give NaN instead of an error.
    """
    log_fk = torch.log(f / k)
    one_b = 1.0 - beta
    x = (f * k).pow(0.5 * one_b)  # (54)
    y = one_b * log_fk
    lam = a / (x * (1.0 + y * y / 24.0 + y.pow(4) / 1920.0))  # (55)
    psi = 1.0 + t * (one_b * one_b * a * a / (24.0 * x * x) + rho * beta * a * nu / (4.0 * x) + nu * nu * (2.0 - 3.0 * rho * rho) / 24.0)
    phi = nu * x / a * log_fk
    small = phi.abs() < 1e-8
    safe_phi = torch.where(small, torch.ones_like(phi), phi)
    chi = torch.log((torch.sqrt(1.0 - 2.0 * rho * safe_phi + safe_phi * safe_phi) + safe_phi - rho) / (1.0 - rho))
    # Phi / chi -> 1 (Taylor: 1 - rho Phi / 2) when Phi -> 0 (near the money or nu -> 0).
    ratio = torch.where(small, 1.0 - 0.5 * rho * phi, safe_phi / chi)
    atm = log_fk.abs() < _SMALL
    return torch.where(atm, a * psi / f.pow(one_b), lam * psi * ratio)  # (56)


__all__ = ["SabrPaths", "check_sabr_params", "simulate_sabr", "hagan_implied_vol", "hagan_implied_vol_unchecked"]
