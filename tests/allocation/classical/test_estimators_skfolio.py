"""OAS, EWMA, Gerber, detoned, denoised covariances and the James-Stein mean against skfolio,
on the bundled S&P 500 windows and the Fama-French industries."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skfolio.moments import OAS, DenoiseCovariance, DetoneCovariance, EWCovariance, GerberCovariance, ShrunkMu

from gradfolio.allocation.classical import COVARIANCES, resolve_covariance
from gradfolio.allocation.classical.covariance import ewma_covariance, oas_covariance
from gradfolio.allocation.classical.gerber import gerber_covariance
from gradfolio.allocation.classical.mean import james_stein_mean, resolve_mean
from gradfolio.allocation.classical.spectral import (
    _correlation,
    _mp_loss,
    denoised_covariance,
    detoned_covariance,
    marcenko_pastur_variance,
)
from gradfolio.errors import ConfigError


def _close(got: torch.Tensor, ref: np.ndarray, rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(got.numpy(), ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_oas_matches_skfolio(both_windows) -> None:
    X, frames = both_windows
    cov = oas_covariance(X[:, 0])
    for b, f in enumerate(frames):
        ref = OAS().fit(f.to_numpy())
        assert 0.0 < ref.shrinkage_ < 1.0
        _close(cov[b], ref.covariance_)


@pytest.mark.parametrize("half_life", [7.0, 40.0])
def test_ewma_matches_skfolio(both_windows, half_life: float) -> None:
    X, frames = both_windows
    cov = ewma_covariance(X[:, 0], half_life=half_life)
    for b, f in enumerate(frames):
        _close(cov[b], EWCovariance(half_life=half_life).fit(f.to_numpy()).covariance_)


@pytest.mark.parametrize(("threshold", "psd"), [(0.5, True), (0.3, False)])
def test_gerber_matches_skfolio(both_windows, threshold: float, psd: bool) -> None:
    X, frames = both_windows
    cov = gerber_covariance(X[:, 0], threshold=threshold, psd_variant=psd)
    for b, f in enumerate(frames):
        ref = GerberCovariance(threshold=threshold, psd_variant=psd, nearest=False).fit(f.to_numpy()).covariance_
        _close(cov[b], ref)
    if psd:
        assert bool((torch.linalg.eigvalsh(cov) > -1e-15).all())


@pytest.mark.parametrize("n_markets", [1, 3])
def test_detoned_matches_skfolio(both_windows, n_markets: int) -> None:
    X, frames = both_windows
    cov = detoned_covariance(X[:, 0], n_markets=n_markets)
    for b, f in enumerate(frames):
        ref = DetoneCovariance(n_markets=n_markets, nearest=False).fit(f.to_numpy()).covariance_
        _close(cov[b], ref, rtol=1e-9)
    # singular of rank N - n_markets, variances kept
    ev = torch.linalg.eigvalsh(cov / cov.diagonal(dim1=-2, dim2=-1).amax(-1)[:, None, None])
    assert bool((ev[:, :n_markets].abs() < 1e-12).all()) and bool((ev[:, n_markets:] > 1e-6).all())
    torch.testing.assert_close(cov.diagonal(dim1=-2, dim2=-1), X[:, 0].var(dim=-2), rtol=1e-12, atol=0)


def _skfolio_variance(evals: np.ndarray, q: float) -> tuple[float, float]:
    """skfolio's fitted Marcenko-Pastur noise variance and its loss (same objective, L-BFGS-B from 0.5)."""
    import scipy.optimize as sco

    ev = torch.tensor(evals)[None]

    def loss(x: np.ndarray) -> float:
        return float(_mp_loss(torch.tensor([[float(x[0])]], dtype=torch.float64), ev, q, 0.01, 1000)[0, 0])

    res = sco.minimize(loss, x0=0.5, bounds=((1e-5, 1 - 1e-5),))
    return float(res.x[0]), float(res.fun)


@pytest.mark.parametrize(("data", "agree"), [("sp500", (0, 2, 3)), ("ff", (0, 1))])
def test_denoised_matches_skfolio_where_its_local_search_is_global(windows, ff_windows, data: str, agree) -> None:
    """skfolio fits the noise variance by L-BFGS-B from 0.5 on a rugged loss, we by a global grid +
    golden section: the covariances agree wherever skfolio's local search lands in the global
    minimum (``agree``); elsewhere our loss is strictly lower than skfolio's."""
    X, frames = windows(252) if data == "sp500" else ff_windows(120)
    cov = denoised_covariance(X[:, 0])
    L, N = X.shape[-2], X.shape[-1]
    C, _ = _correlation(X[:, 0])
    evals = torch.linalg.eigvalsh(C).flip(-1)
    ours = marcenko_pastur_variance(evals, L / N)
    ours_loss = _mp_loss(ours[:, None], evals, L / N, 0.01, 1000)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b, f in enumerate(frames):
            ref = DenoiseCovariance(nearest=False).fit(f.to_numpy()).covariance_
            _, ref_loss = _skfolio_variance(evals[b].numpy(), L / N)
            if b in agree:
                _close(cov[b], ref, rtol=1e-9)
            else:
                assert float(ours_loss[b]) < ref_loss - 1.0
                assert np.abs(cov[b].numpy() - ref).max() > 1e-3 * np.abs(ref).max()
    torch.testing.assert_close(cov.diagonal(dim1=-2, dim2=-1), X[:, 0].var(dim=-2), rtol=1e-12, atol=0)
    assert bool((torch.linalg.eigvalsh(cov) > 0).all())


def test_denoised_options_change_the_fit(windows) -> None:
    X, _ = windows(252)
    base = denoised_covariance(X[:, 0])
    wide = denoised_covariance(X[:, 0], bandwidth=0.5)
    assert float((base[1] - wide[1]).abs().max()) > 1e-6  # keeps 1 factor instead of 2
    torch.testing.assert_close(base[0], wide[0], rtol=1e-12, atol=0)
    C, _ = _correlation(X[:, 0])
    evals = torch.linalg.eigvalsh(C).flip(-1)
    coarse = marcenko_pastur_variance(evals, 252 / 20, grid=3)
    fine = marcenko_pastur_variance(evals, 252 / 20, grid=64)
    assert float(coarse[0]) == pytest.approx(0.9817, abs=1e-3) and float(fine[0]) == pytest.approx(0.9841, abs=1e-3)
    with pytest.raises(ConfigError, match="bandwidth"):
        denoised_covariance(X[:, 0], bandwidth=0.0)
    with pytest.raises(ConfigError, match="grid"):
        denoised_covariance(X[:, 0], grid=2)


@pytest.mark.parametrize("vol_weighted", [False, True])
def test_james_stein_matches_skfolio(both_windows, vol_weighted: bool) -> None:
    X, frames = both_windows
    mu = james_stein_mean(X[:, 0], vol_weighted_target=vol_weighted)
    via_name = resolve_mean("james_stein", {"vol_weighted_target": vol_weighted})(X[:, 0])
    torch.testing.assert_close(mu, via_name, rtol=0, atol=0)
    for b, f in enumerate(frames):
        ref = ShrunkMu(vol_weighted_target=vol_weighted).fit(f.to_numpy())
        _close(mu[b], ref.mu_, rtol=1e-10)
        assert abs(ref.beta_) > 1e-3  # a real shrinkage


def test_errors_name_the_option(windows) -> None:
    X, _ = windows(60)
    with pytest.raises(ConfigError, match="half_life"):
        ewma_covariance(X[:, 0], half_life=0.0)
    with pytest.raises(ConfigError, match="threshold"):
        gerber_covariance(X[:, 0], threshold=1.0)
    with pytest.raises(ConfigError, match="n_markets"):
        detoned_covariance(X[:, 0], n_markets=20)
    with pytest.raises(ConfigError, match="vol_weighted_target"):
        resolve_mean("james_stein", {"vol_weighted_target": "yes"})
    with pytest.raises(ConfigError, match="covariance.half_life"):
        resolve_covariance("ewma", half_life="long")


@pytest.mark.parametrize("name", ["oas", "ewma", "denoised", "detoned", "gerber"])
def test_new_estimators_batched_equal_one_by_one(windows, name: str) -> None:
    X, _ = windows(100)
    est = resolve_covariance(name)
    batched = est(X[:, 0])
    assert name in COVARIANCES
    for b in range(X.shape[0]):
        torch.testing.assert_close(est(X[b : b + 1, 0])[0], batched[b], rtol=1e-9, atol=1e-18)
