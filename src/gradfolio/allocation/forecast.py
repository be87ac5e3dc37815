"""Return forecasters of the predict-then-optimize networks: ``X (B, C, L, N) -> mu_hat (B, N)``.

A forecaster predicts each asset's mean simple return per period over the next horizon,
``mu_hat[b, i] ~ mean_h y[b, 0, h, i]`` (:func:`forecast_target`), from the asset's own window.
Both are shared by the assets (one set of coefficients, any ``N``):

- :class:`RidgeForecaster` — a linear map on the window, ``mu_hat_i = <beta, X[:, :, :, i]> + b``
  (``beta (C, L)``), with a ridge penalty ``alpha |beta|^2``; :meth:`RidgeForecaster.fit` solves
  the ridge problem in closed form (exact), and the coefficients are also ``nn.Parameter`` s, so
  the forecaster trains by gradient like any network (decision-focused training included).
- :class:`LSTMForecaster` — an LSTM over time shared by the assets
  (:class:`~gradfolio.allocation.layers.TimeRNN`), a time collapse and a linear head.

:data:`FORECASTERS` holds them by name (``"ridge"``, ``"lstm"``) for
:class:`~gradfolio.allocation.pto.PredictThenOptimize`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradfolio.allocation.layers import Collapse, TimeCollapse, TimeRNN
from gradfolio.errors import ConfigError, DataError
from gradfolio.registry import Registry


def forecast_target(y: torch.Tensor) -> torch.Tensor:
    """What a forecaster predicts: the mean simple return per period over the horizon, ``y (B, C, H, N) -> (B, N)``.

    Channel 0 of the targets holds simple returns (:func:`gradfolio.data.make_windows`), so the
    target is in the units of the per-period covariance the optimizer stage pairs it with.
    """
    if y.ndim != 4:
        raise DataError(f"forecast_target: y has shape {tuple(y.shape)}; expected (batch, channels, horizon, assets).")
    return y[:, 0].mean(dim=1)


def _check_int(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ConfigError(f"{owner}: {name}={value!r} must be a positive integer (e.g. 16).")


class Forecaster(nn.Module):
    """Base class: ``forward(X (B, C, L, N)) -> mu_hat (B, N)``; :meth:`penalty` is added to the MSE in training."""

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        _check_int(type(self).__name__, n_channels=n_channels)
        self.n_channels = n_channels

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` unless ``x`` is ``(B, n_channels, L, N)``."""
        if x.ndim != 4 or x.shape[1] != self.n_channels:
            raise DataError(
                f"{type(self).__name__}: X has shape {tuple(x.shape)}; expected (batch, {self.n_channels}, lookback, "
                "assets) as built by gradfolio.data.make_windows."
            )

    def penalty(self) -> torch.Tensor:
        """Regularization added to the forecast MSE (a scalar; zero by default)."""
        p = next(self.parameters())
        return torch.zeros((), dtype=p.dtype, device=p.device)


class RidgeForecaster(Forecaster):
    """Linear forecast on the window with a ridge penalty, shared by the assets.

    ``mu_hat[b, i] = sum_{c, l} beta[c, l] X[b, c, l, i] + intercept``. Trained on the objective

        mean_{b, i} (mu_hat[b, i] - target[b, i])^2 + alpha |beta|^2

    (intercept not penalized), either exactly by :meth:`fit` or by gradient (the Trainer with the
    ``forecast_mse`` loss, which adds :meth:`penalty`). With ``M = B N`` rows the minimizer is
    scikit-learn's ``Ridge(alpha=alpha * M)`` on the rows ``X[b, :, :, i].ravel()``.

    Parameters
    ----------
    lookback
        ``L`` (the coefficients cover every lag).
    n_channels
        ``C``.
    alpha
        Ridge penalty ``>= 0`` on the mean squared error's scale.
    fit_intercept
        Learn the intercept (else it stays 0).
    """

    def __init__(self, lookback: int, n_channels: int = 1, alpha: float = 1e-4, fit_intercept: bool = True) -> None:
        super().__init__(n_channels)
        _check_int("RidgeForecaster", lookback=lookback)
        if not (isinstance(alpha, (int, float)) and 0 <= alpha < math.inf):
            raise ConfigError(f"RidgeForecaster: alpha={alpha!r} must be a finite number >= 0 (e.g. 1e-4).")
        self.lookback, self.alpha, self.fit_intercept = lookback, float(alpha), bool(fit_intercept)
        self.weight = nn.Parameter(torch.zeros(n_channels, lookback))
        self.bias = nn.Parameter(torch.zeros(()), requires_grad=self.fit_intercept)

    def check_input(self, x: torch.Tensor) -> None:
        """Also check ``L == lookback``."""
        super().check_input(x)
        if x.shape[2] != self.lookback:
            raise DataError(
                f"RidgeForecaster: X has lookback {x.shape[2]}; this forecaster was built for lookback={self.lookback}."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, N)``."""
        self.check_input(x)
        return torch.einsum("bcln,cl->bn", x, self.weight.to(x.dtype)) + self.bias.to(x.dtype)

    def penalty(self) -> torch.Tensor:
        """``alpha |beta|^2``."""
        return self.alpha * self.weight.pow(2).sum()

    @torch.no_grad()
    def fit(self, x: torch.Tensor, target: torch.Tensor) -> RidgeForecaster:
        """Set the coefficients to the exact ridge solution on windows ``x (B, C, L, N)`` and ``target (B, N)``.

        Solved in float64: ``beta = (F_c'F_c + alpha M I)^-1 F_c'y_c`` with centred rows (when
        ``fit_intercept``), ``intercept = mean(y) - mean(F) beta``.
        """
        self.check_input(x)
        if target.shape != (x.shape[0], x.shape[-1]):
            raise DataError(
                f"RidgeForecaster.fit: target has shape {tuple(target.shape)}; expected (batch, assets) = "
                f"{(x.shape[0], x.shape[-1])}."
            )
        F = x.double().permute(0, 3, 1, 2).reshape(-1, self.n_channels * self.lookback)  # (B N, C L)
        t = target.double().reshape(-1)
        M = F.shape[0]
        f_mean = F.mean(dim=0) if self.fit_intercept else torch.zeros_like(F[0])
        t_mean = t.mean() if self.fit_intercept else torch.zeros_like(t[0])
        Fc, tc = F - f_mean, t - t_mean
        gram = Fc.T @ Fc + self.alpha * M * torch.eye(F.shape[1], dtype=F.dtype, device=F.device)
        beta = torch.linalg.lstsq(gram, (Fc.T @ tc)[:, None]).solution[:, 0]
        self.weight.copy_(beta.reshape(self.n_channels, self.lookback).to(self.weight.dtype))
        self.bias.copy_((t_mean - f_mean @ beta).to(self.bias.dtype))
        return self


class LSTMForecaster(Forecaster):
    """LSTM over time shared by the assets: ``X -> TimeRNN -> Dropout -> TimeCollapse -> Linear(hidden -> 1)``.

    The inputs are fed as they are (no instance normalization: the forecast is in return units,
    which a normalization of the window would remove). Works for any ``L`` and ``N``.

    Parameters
    ----------
    n_channels
        Input channels ``C``.
    hidden
        LSTM hidden size.
    num_layers
        Stacked LSTM layers.
    collapse
        ``"last"`` (default), ``"attention"`` or ``"average"``.
    dropout
        Dropout probability on the collapsed features, in ``[0, 1)``.
    """

    def __init__(
        self, n_channels: int = 1, hidden: int = 16, num_layers: int = 1, collapse: Collapse = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(n_channels)
        _check_int("LSTMForecaster", hidden=hidden, num_layers=num_layers)
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ConfigError(f"LSTMForecaster: dropout={dropout!r} must lie in [0, 1) (0 for none).")
        self.rnn = TimeRNN(n_channels, hidden, "lstm", num_layers)
        self.collapse = TimeCollapse(collapse, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, N)``."""
        self.check_input(x)
        h = self.dropout(self.collapse(self.rnn(x)))  # (B, hidden, N)
        return self.head(h.transpose(1, 2)).squeeze(-1)


FORECASTERS: Registry[Forecaster] = Registry("forecaster")
"""Forecasters by name (``"ridge"``, ``"lstm"``); the typed signature is the schema of ``forecaster_params``."""
FORECASTERS.register("ridge", RidgeForecaster)
FORECASTERS.register("lstm", LSTMForecaster)


__all__ = ["Forecaster", "RidgeForecaster", "LSTMForecaster", "FORECASTERS", "forecast_target"]
