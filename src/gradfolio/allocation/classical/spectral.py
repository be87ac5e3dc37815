"""Random-matrix cleaning of the covariance (López de Prado, "Machine Learning for Asset
Managers"), batched over windows: ``R (B, L, N) -> Sigma (B, N, N)``.

Both start from the sample covariance ``S`` (``ddof=1``), its correlation ``C = D^-1 S D^-1``
(``D = diag(sqrt(diag S))``) and the eigen-decomposition ``C = V diag(lambda) V'`` (``lambda``
in decreasing order).

``denoised`` (Marcenko-Pastur constant-residual method)
    With ``q = L / N``, the Marcenko-Pastur density of a pure-noise correlation of variance
    ``v`` is ``f(x) = q sqrt((x+ - x)(x - x-)) / (2 pi v x)`` on ``[x-, x+]``,
    ``x± = v (1 ± sqrt(1/q))^2``. ``v`` minimizes ``sum_g (kde(x_g) - f(x_g))^2`` over 1,000
    points ``x_g`` of ``[x-, x+]``, ``kde`` being a Gaussian kernel density (bandwidth 0.01) of
    the eigenvalues. The ``k`` eigenvalues ``>= x+`` are kept, the others replaced by their
    mean; ``C~ = V diag(lambda~) V'`` is rescaled to unit diagonal and ``Sigma = D C~ D``.
    skfolio's ``DenoiseCovariance`` (which finds ``v`` by L-BFGS-B from 0.5; here a grid of
    ``grid`` values in ``[1e-5, 1 - 1e-5]`` then golden-section refinement, batched).
``detoned``
    The ``n_markets`` largest components are removed, ``C~ = C - sum_{j<n} lambda_j v_j v_j'``,
    rescaled to unit diagonal and ``Sigma = D C~ D``: skfolio's
    ``DetoneCovariance(n_markets, nearest=False)``. The result is singular (rank
    ``N - n_markets``): meant for clustering (``hrp``, ``herc``), not for a minimum-variance QP.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfolio.errors import ConfigError


def _correlation(R: Tensor) -> tuple[Tensor, Tensor]:
    Xc = R - R.mean(dim=-2, keepdim=True)
    S = Xc.mT @ Xc / (R.shape[-2] - 1)
    std = S.diagonal(dim1=-2, dim2=-1).sqrt()
    return S / (std[..., :, None] * std[..., None, :]), std


def _rescale(C: Tensor, std: Tensor) -> Tensor:
    d = C.diagonal(dim1=-2, dim2=-1).sqrt()
    scale = std / d
    return C * scale[..., :, None] * scale[..., None, :]


def _mp_loss(v: Tensor, evals: Tensor, q: float, bandwidth: float, points: int) -> Tensor:
    """Squared error between Marcenko-Pastur and kernel densities: ``v (B, G)``, ``evals (B, N)`` -> ``(B, G)``."""
    r = (1.0 / q) ** 0.5
    lo, hi = v * (1 - r) ** 2, v * (1 + r) ** 2
    u = torch.linspace(0.0, 1.0, points, dtype=v.dtype, device=v.device)
    x = lo[..., None] + (hi - lo)[..., None] * u  # (B, G, P)
    pdf0 = q / (2 * math.pi * v[..., None] * x) * ((hi[..., None] - x) * (x - lo[..., None])).clamp(min=0).sqrt()
    z = (x[..., None] - evals[:, None, None, :]) / bandwidth  # (B, G, P, N)
    kde = torch.exp(-0.5 * z * z).mean(dim=-1) / (bandwidth * math.sqrt(2 * math.pi))
    return ((kde - pdf0) ** 2).sum(dim=-1)


def marcenko_pastur_variance(
    evals: Tensor, q: float, bandwidth: float = 0.01, grid: int = 64, points: int = 1000
) -> Tensor:
    """Noise variance ``v`` fitted to correlation eigenvalues ``evals (B, N)`` -> ``(B,)``.

    A grid of ``grid`` values in ``[1e-5, 1 - 1e-5]``, then 40 golden-section steps in the
    bracket around the best grid value.
    """
    lo_b, hi_b = 1e-5, 1 - 1e-5
    evals = evals.detach()
    B = evals.shape[0]
    g = torch.linspace(lo_b, hi_b, grid, dtype=evals.dtype, device=evals.device).expand(B, grid)
    chunk = max(1, 2**22 // (points * evals.shape[-1] * max(B, 1)))  # bounds the (B, G, P, N) kernel tensor
    loss = torch.cat([_mp_loss(g[:, i : i + chunk], evals, q, bandwidth, points) for i in range(0, grid, chunk)], dim=-1)
    k = loss.argmin(dim=-1)
    step = (hi_b - lo_b) / (grid - 1)
    a = (g.gather(-1, k[:, None])[:, 0] - step).clamp(min=lo_b)
    b = (g.gather(-1, k[:, None])[:, 0] + step).clamp(max=hi_b)
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - phi * (b - a), a + phi * (b - a)
        fc = _mp_loss(c[:, None], evals, q, bandwidth, points)[:, 0]
        fd = _mp_loss(d[:, None], evals, q, bandwidth, points)[:, 0]
        left = fc < fd
        b = torch.where(left, d, b)
        a = torch.where(left, a, c)
    return (a + b) / 2


def denoised_covariance(R: Tensor, bandwidth: float = 0.01, grid: int = 64) -> Tensor:
    """Marcenko-Pastur denoised covariance of each window (skfolio's ``DenoiseCovariance``).

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.
    bandwidth
        Bandwidth of the Gaussian kernel density of the eigenvalues; positive.
    grid
        Number of noise variances tried before the golden-section refinement; at least 3.

    Returns
    -------
    Tensor of shape ``(B, N, N)``; differentiable in ``R`` (the number of kept factors is
    piecewise constant).
    """
    if not bandwidth > 0:
        raise ConfigError(f"bandwidth={bandwidth!r} for the denoised covariance: use a positive bandwidth.")
    if grid < 3:
        raise ConfigError(f"grid={grid!r} for the denoised covariance: use at least 3 grid points.")
    L, N = R.shape[-2], R.shape[-1]
    q = L / N
    C, std = _correlation(R)
    evals, evecs = torch.linalg.eigh(C)
    evals, evecs = evals.flip(-1), evecs.flip(-1)  # decreasing
    v = marcenko_pastur_variance(evals, q, bandwidth, grid)
    edge = v * (1 + (1 / q) ** 0.5) ** 2
    keep = evals.detach() >= edge[:, None]  # (B, N), a prefix since evals decrease
    noise = (~keep).to(R.dtype)
    mean_noise = (evals * noise).sum(-1) / noise.sum(-1).clamp(min=1)
    cleaned = torch.where(keep, evals, mean_noise[:, None])
    Ct = (evecs * cleaned[..., None, :]) @ evecs.mT
    return _rescale(Ct, std)


def detoned_covariance(R: Tensor, n_markets: int = 1) -> Tensor:
    """Covariance without its ``n_markets`` largest correlation components (skfolio's ``DetoneCovariance``).

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.
    n_markets
        Number of leading components removed; in ``[0, N - 1]``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``, singular of rank ``N - n_markets``.
    """
    N = R.shape[-1]
    if not 0 <= n_markets < N:
        raise ConfigError(f"n_markets={n_markets!r} for the detoned covariance: use 0 <= n_markets < {N} (assets).")
    C, std = _correlation(R)
    evals, evecs = torch.linalg.eigh(C)
    Vm, lm = evecs[..., N - n_markets :], evals[..., N - n_markets :]
    Ct = C - (Vm * lm[..., None, :]) @ Vm.mT
    return _rescale(Ct, std)


__all__ = ["denoised_covariance", "detoned_covariance", "marcenko_pastur_variance"]
