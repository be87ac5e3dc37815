"""Predict-then-optimize (PTO) networks: a return forecaster followed by a portfolio optimizer.

``X (B, C, L, N) -> mu_hat = forecaster(X) (B, N) -> w = optimizer(mu_hat, Sigma(X)) (B, N)``, with
``Sigma`` the covariance estimate of the window's simple returns (channel 0; ``"sample"``,
``"ledoit_wolf"``, ... of :data:`gradfolio.allocation.classical.COVARIANCES`). Optimizer stages:

``"max_sharpe"``
    :class:`~gradfolio.allocation.classical.MaximumSharpe` with ``mean=`` the forecast:
    ``max (mu_hat'w - r_f) / sqrt(w'Sigma w)`` s.t. ``1'w = 1, w >= 0`` (or ``constraints``).
``"mean_variance"``
    :func:`~gradfolio.allocation.classical.efficient_frontier` at one risk aversion with the
    forecast as the mean: ``max mu_hat'w - gamma w'Sigma w`` s.t. ``1'w = 1, w >= 0``.
``"convex"``
    The differentiable convex layer :class:`~gradfolio.allocation.convex.ConvexAllocator`:
    ``min 1/2 gamma w'Sigma w - mu_hat'w + 1/2 alpha |w|^2`` under any ``constraints`` (default
    long only, fully invested); the objective is divided by the mean variance ``tr(Sigma) / N``
    before the solve (the same minimizer, a well-scaled problem for daily returns).

Two ways to train the same network (:class:`~gradfolio.allocation.trainer.Trainer`):

- **predict, then optimize** — the ``"forecast_mse"`` loss
  (:class:`~gradfolio.allocation.losses.ForecastMSELoss`) fits the forecaster alone to the mean
  return of the next horizon; the optimizer only turns forecasts into weights. The ridge
  forecaster can also be fitted exactly (:meth:`PredictThenOptimize.prefit`).
- **decision-focused** — a portfolio loss (``"sharpe"``, ``"cvar"``...) of the weights trains the
  forecaster through the optimizer, which must then be differentiable: ``"convex"`` or
  ``"mean_variance"`` (batched QPs with implicit differentiation). ``"max_sharpe"`` is refused:
  its weights do not depend on the scale of the forecast and its constrained form runs Clarabel
  without autograd (:class:`~gradfolio.errors.ConfigError` when a gradient is asked of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gradfolio.allocation.classical import MaximumSharpe, efficient_frontier
from gradfolio.allocation.classical.covariance import resolve_covariance
from gradfolio.allocation.convex import ConvexAllocator
from gradfolio.allocation.forecast import (
    FORECASTERS,
    Forecaster,
    RidgeForecaster,
    forecast_target,
)
from gradfolio.allocation.networks import NETWORKS, AllocationNetwork
from gradfolio.data import Windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers import PortfolioConstraints, QPSettings

Optimizer = Literal["max_sharpe", "mean_variance", "convex"]
OPTIMIZERS: tuple[str, ...] = ("max_sharpe", "mean_variance", "convex")
DIFFERENTIABLE: tuple[str, ...] = ("mean_variance", "convex")
"""Optimizer stages a portfolio loss can train the forecaster through (decision-focused)."""


class _Forecast:
    """Mean estimator ``R (B, L, N) -> mu (B, N)`` handing the classical portfolio the forecast of the current call."""

    def __init__(self) -> None:
        self.value: Tensor | None = None

    def __call__(self, R: Tensor) -> Tensor:
        assert self.value is not None, "the forecast is set by PredictThenOptimize.forward"
        return self.value.to(R.dtype)


class PredictThenOptimize(AllocationNetwork):
    """A forecaster's expected returns into a portfolio optimizer: ``X (B, C, L, N) -> w (B, N)``.

    See the module docstring for the stages and the two trainings.

    Parameters
    ----------
    n_assets, lookback, n_channels
        Input shape ``(C, L, N)`` (``N`` fixes the convex layer's size; ``L`` the ridge's).
    forecaster
        ``"lstm"`` (:class:`~gradfolio.allocation.forecast.LSTMForecaster`) or ``"ridge"``
        (:class:`~gradfolio.allocation.forecast.RidgeForecaster`).
    forecaster_params
        Keyword arguments of the forecaster (``{"hidden": 8}``, ``{"alpha": 1e-3}``).
    optimizer
        ``"max_sharpe"``, ``"mean_variance"`` or ``"convex"``.
    gamma
        Risk aversion ``> 0`` of ``"mean_variance"`` (``mu'w - gamma w'Sw``) and ``"convex"``
        (``1/2 gamma w'Sw - mu'w``), per-period units.
    alpha
        L2 regularization ``>= 0`` of ``"convex"``.
    risk_free
        Risk-free return per period of ``"max_sharpe"``.
    covariance
        Covariance estimator of the window (a name of
        :data:`~gradfolio.allocation.classical.COVARIANCES`: ``"sample"``, ``"ledoit_wolf"``...).
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` of ``"max_sharpe"`` (budget 1, solved by
        Clarabel) or ``"convex"``; default (and always for ``"mean_variance"``): long only, fully
        invested, so that the three stages compare on equal terms.
    settings
        :class:`~gradfolio.solvers.QPSettings` of the convex layer (default: chosen for the constraints).
    returns_kind
        Kind of channel 0 of ``X`` (``"simple"`` or ``"log"``); the covariance is estimated from
        simple returns (``expm1`` of log returns), the unit of the forecast target.

    Raises
    ------
    ConfigError
        An unknown ``optimizer``, ``gamma <= 0``, ``alpha < 0``, constraints with
        ``"mean_variance"``, or a bad forecaster / covariance name or parameter.
    """

    def __init__(
        self,
        n_assets: int,
        lookback: int,
        n_channels: int = 1,
        forecaster: Literal["lstm", "ridge"] = "lstm",
        forecaster_params: Mapping[str, Any] | None = None,
        optimizer: Optimizer = "max_sharpe",
        gamma: float = 1.0,
        alpha: float = 0.0,
        risk_free: float = 0.0,
        covariance: str = "sample",
        constraints: PortfolioConstraints | None = None,
        settings: QPSettings | None = None,
        returns_kind: Literal["simple", "log"] = "simple",
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"PredictThenOptimize: optimizer={optimizer!r} is unknown; use one of {list(OPTIMIZERS)}.")
        if not (isinstance(gamma, (int, float)) and 0 < gamma < float("inf")):
            raise ConfigError(f"PredictThenOptimize: gamma={gamma!r} must be a finite number > 0 (risk aversion, e.g. 1).")
        if not (isinstance(alpha, (int, float)) and 0 <= alpha < float("inf")):
            raise ConfigError(f"PredictThenOptimize: alpha={alpha!r} must be a finite number >= 0 (e.g. 0.01).")
        if returns_kind not in ("simple", "log"):
            raise ConfigError(f"PredictThenOptimize: returns_kind={returns_kind!r} must be 'simple' or 'log'.")
        if constraints is not None and optimizer == "mean_variance":
            raise ConfigError(
                "PredictThenOptimize: constraints are given with optimizer='mean_variance' (long only, fully invested); "
                "use optimizer='convex' (the same objective under any constraints) or 'max_sharpe'."
            )
        super().__init__(n_channels, allocator=nn.Identity())
        self.n_assets, self.lookback = n_assets, lookback
        self.optimizer, self.gamma, self.alpha, self.risk_free = optimizer, float(gamma), float(alpha), float(risk_free)
        self.returns_kind = returns_kind
        context = {"n_channels": n_channels, "lookback": lookback}
        self.forecaster: Forecaster = FORECASTERS.build(
            forecaster, where="forecaster_params", context=context, **dict(forecaster_params or {})
        )
        self.covariance = resolve_covariance(covariance, where="covariance")
        self._mean = _Forecast()
        self.portfolio: MaximumSharpe | None = None
        self.layer: ConvexAllocator | None = None
        if optimizer == "max_sharpe":
            self.portfolio = MaximumSharpe(
                covariance=self.covariance, risk_free=risk_free, mean=self._mean, constraints=constraints,
                returns_kind=returns_kind,
            )
        elif optimizer == "convex":
            spec = constraints if constraints is not None else PortfolioConstraints(long_only=True)
            self.layer = ConvexAllocator(n_assets, spec, gamma=gamma, alpha=alpha, settings=settings)

    @property
    def closed_form(self) -> bool:
        """Whether :meth:`prefit` fits the forecaster exactly (the ridge forecaster)."""
        return isinstance(self.forecaster, RidgeForecaster)

    def forecast(self, x: Tensor) -> Tensor:
        """Expected returns per period over the next horizon, ``(B, C, L, N) -> mu_hat (B, N)``."""
        self.check_input(x)
        return self.forecaster(x)

    def scores(self, x: Tensor) -> Tensor:
        """The forecast ``(B, C, L, N) -> (B, N)``."""
        return self.forecast(x)

    def check_input(self, x: Tensor) -> None:
        """Also check ``N == n_assets``."""
        super().check_input(x)
        if x.shape[-1] != self.n_assets:
            raise DataError(
                f"PredictThenOptimize: X has {x.shape[-1]} assets; this network was built for n_assets={self.n_assets}."
            )

    def returns(self, x: Tensor) -> Tensor:
        """Simple returns of channel 0, ``(B, C, L, N) -> (B, L, N)``."""
        R = x[:, 0]
        return torch.expm1(R) if self.returns_kind == "log" else R

    def optimize(self, mu: Tensor, x: Tensor) -> Tensor:
        """Weights of the optimizer stage for forecasts ``mu (B, N)`` and windows ``x (B, C, L, N)`` -> ``(B, N)``."""
        R = self.returns(x)
        if self.optimizer == "convex":
            assert self.layer is not None
            # The objective divided by the mean variance s: the same minimizer, a well-scaled QP.
            S = self.covariance(R).to(mu.dtype)
            s = S.diagonal(dim1=-2, dim2=-1).mean(dim=-1).clamp_min(torch.finfo(S.dtype).tiny)  # (B,)
            return self.layer(mu / s[:, None], cov=S / s[:, None, None], alpha=self.alpha / s)
        if self.optimizer == "mean_variance":
            frontier = efficient_frontier(R, [self.gamma], covariance=self.covariance, mean=lambda _: mu)
            return frontier.weights[:, 0]
        assert self.portfolio is not None
        self._mean.value = mu
        try:
            return self.portfolio.allocate(R)
        finally:
            self._mean.value = None

    def forward(self, x: Tensor) -> Tensor:
        """Weights ``(B, C, L, N) -> (B, N)``.

        Raises
        ------
        ConfigError
            A gradient is asked (training mode, autograd on) of a stage that is not differentiable
            (``"max_sharpe"``): train it with the ``"forecast_mse"`` loss instead.
        """
        mu = self.forecast(x)
        if self.training and torch.is_grad_enabled() and self.optimizer not in DIFFERENTIABLE:
            raise ConfigError(
                f"PredictThenOptimize: optimizer={self.optimizer!r} is not differentiable, so a portfolio loss cannot "
                "train the forecaster through it; train with the 'forecast_mse' loss (predict, then optimize) or use "
                "optimizer='convex' or 'mean_variance' (decision-focused)."
            )
        return self.optimize(mu, x)

    @torch.no_grad()
    def prefit(self, windows: Windows) -> bool:
        """Fit a closed-form forecaster exactly on ``windows`` (``X``, targets :func:`forecast_target` of ``y``).

        Returns whether it did (``False``: the forecaster trains by gradient only).
        """
        if not isinstance(self.forecaster, RidgeForecaster):
            return False
        p = self.forecaster.weight
        self.forecaster.fit(windows.X.to(p.device), forecast_target(windows.y.to(p.device)))
        return True


def check_training(network: type, params: Mapping[str, Any], forecast_loss: bool, where: str) -> None:
    """Raise :class:`ConfigError` if a network and a loss cannot train together.

    Parameters
    ----------
    network
        The network class (or factory) of the config.
    params
        Its parameters (with the registry's defaults).
    forecast_loss
        Whether the loss trains a forecast (``"forecast_mse"``) rather than the weights.
    where
        Dotted config path of the network section (``"networks[1]"``).
    """
    is_pto = isinstance(network, type) and issubclass(network, PredictThenOptimize)
    if forecast_loss and not is_pto:
        raise ConfigError(
            f"{where}.loss: 'forecast_mse' trains a return forecast, which network {getattr(network, '__name__', network)} "
            "does not make; use a predict-then-optimize network ('pto_lstm', 'pto_ridge') or a portfolio loss."
        )
    optimizer = params.get("optimizer", "max_sharpe")
    if is_pto and not forecast_loss and optimizer not in DIFFERENTIABLE:
        raise ConfigError(
            f"{where}.params.optimizer: {optimizer!r} is not differentiable, so the portfolio loss cannot train the "
            "forecaster through it; set optimizer 'convex' (or 'mean_variance') for decision-focused training, or "
            "loss 'forecast_mse' for predict-then-optimize."
        )


__all__ = ["PredictThenOptimize", "OPTIMIZERS", "DIFFERENTIABLE", "check_training"]


def _register() -> None:
    """Add ``"pto_lstm"`` and ``"pto_ridge"`` to :data:`~gradfolio.allocation.networks.NETWORKS`."""
    nested = {"forecaster_params": ("forecaster", FORECASTERS)}
    NETWORKS.register("pto_lstm", PredictThenOptimize, defaults={"forecaster": "lstm"}, nested=nested)
    NETWORKS.register("pto_ridge", PredictThenOptimize, defaults={"forecaster": "ridge"}, nested=nested)


_register()
