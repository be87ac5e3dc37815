"""Gerber covariance (Gerber, Markowitz, Ernst, Miao, Javid and Sargen, "The Gerber Statistic"),
batched over windows: ``R (B, L, N) -> Sigma (B, N, N)``.

With ``s_i`` the (biased, ``ddof=0``) standard deviation of asset ``i`` and ``c`` the threshold,
day ``t`` is *up* for ``i`` if ``r_ti >= c s_i``, *down* if ``r_ti <= -c s_i``, else *neutral*.
With ``U, D, M`` the 0/1 indicator matrices ``(L, N)``::

    H = U'U + D'D - U'D - D'U
    rho = H / (L - M'M)                      (psd_variant=True, positive semi-definite)
    rho = H / sqrt(diag(H) diag(H)')          (psd_variant=False, the original statistic)
    Sigma = diag(s) rho diag(s)

This is skfolio's ``GerberCovariance(threshold, psd_variant)``. The indicators are step
functions, so the estimate has no gradient with respect to the returns except through ``s``.
"""

from __future__ import annotations

from torch import Tensor

from gradfolio.errors import ConfigError


def gerber_covariance(R: Tensor, threshold: float = 0.5, psd_variant: bool = True) -> Tensor:
    """Gerber covariance of each window.

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.
    threshold
        Fraction ``c`` of each asset's standard deviation beyond which a move counts; in ``(0, 1)``.
    psd_variant
        Normalize by ``L - M'M`` (positive semi-definite) instead of ``sqrt(diag(H) diag(H)')``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold={threshold!r} for the gerber covariance: use a value strictly between 0 and 1.")
    L = R.shape[-2]
    std = R.std(dim=-2, correction=0, keepdim=True)  # (B, 1, N)
    up = (R >= threshold * std).to(R.dtype)
    down = (R <= -threshold * std).to(R.dtype)
    neutral = 1.0 - up - down
    H = up.mT @ up + down.mT @ down - up.mT @ down - down.mT @ up
    if psd_variant:
        rho = H / (L - neutral.mT @ neutral)
    else:
        h = H.diagonal(dim1=-2, dim2=-1).sqrt()
        rho = H / (h[..., :, None] * h[..., None, :])
    s = std[..., 0, :]
    return rho * s[..., :, None] * s[..., None, :]


__all__ = ["gerber_covariance"]
