"""Allocation networks trained end to end on portfolio losses (the DeepDow design).

``X (B, C, L, N) -> w (B, N)``: :mod:`~gradfolio.allocation.layers` (time-only convolution,
recurrent layers shared by assets, Maxout, time collapse), :mod:`~gradfolio.allocation.allocators`
(softmax, normalized tanh, capped sparsemax, and the differentiable convex layer of
:mod:`~gradfolio.allocation.convex`, all by name with parameters), :mod:`~gradfolio.allocation.networks`
(dense, maxout, conv, LSTM/RNN, Markowitz; any allocator), :mod:`~gradfolio.allocation.pto`
(predict-then-optimize: a :mod:`~gradfolio.allocation.forecast` forecaster into a portfolio optimizer), :mod:`~gradfolio.allocation.losses` (Sharpe,
Sortino, Calmar, drawdown, CVaR, ... composable, robust ratios) and
:class:`~gradfolio.allocation.trainer.Trainer` (seeded, checkpointed, resumable); Jiang et al.'s EIIE
(:mod:`~gradfolio.allocation.rl.eiie`, a strategy that sees what it holds) and its online stochastic batch
learning (:class:`~gradfolio.allocation.rl.osbl.OSBLTrainer`).
"""

from gradfolio.allocation.convex import ConvexAllocator, MuFactorHead
from gradfolio.allocation.allocators import (
    ALLOCATORS,
    NormalizedTanhAllocator,
    SoftmaxAllocator,
    SparsemaxAllocator,
    TopKAllocator,
    make_allocator,
)
from gradfolio.allocation.losses import (
    EPS,
    LOSSES,
    ForecastMSELoss,
    CalmarLoss,
    CVaRLoss,
    Loss,
    MaxDrawdownLoss,
    MeanReturnLoss,
    SharpeLoss,
    SortinoLoss,
    StdLoss,
    TurnoverLoss,
    make_loss,
)
from gradfolio.allocation.networks import (
    NETWORKS,
    AllocationNetwork,
    ConvNet,
    DenseNet,
    MarkowitzNet,
    RecurrentNet,
    make_network,
    window_factor,
)
from gradfolio.allocation.trainer import History, Trainer
from gradfolio.allocation.rl.eiie import EIIE, commission_factor, price_windows  # registers "eiie"
from gradfolio.allocation.rl.osbl import OSBLHistory, OSBLTrainer
from gradfolio.allocation.forecast import FORECASTERS, LSTMForecaster, RidgeForecaster, forecast_target
from gradfolio.allocation.pto import PredictThenOptimize  # registers "pto_lstm", "pto_ridge"

__all__ = [
    "ALLOCATORS", "SoftmaxAllocator", "NormalizedTanhAllocator", "SparsemaxAllocator", "TopKAllocator", "make_allocator",
    "ConvexAllocator", "MuFactorHead",
    "EPS", "LOSSES", "Loss", "SharpeLoss", "SortinoLoss", "CalmarLoss", "MaxDrawdownLoss", "CVaRLoss", "MeanReturnLoss",
    "StdLoss", "TurnoverLoss", "ForecastMSELoss", "make_loss",
    "NETWORKS", "AllocationNetwork", "DenseNet", "ConvNet", "RecurrentNet", "MarkowitzNet", "make_network",
    "window_factor", "History", "Trainer",
    "FORECASTERS", "LSTMForecaster", "RidgeForecaster", "forecast_target", "PredictThenOptimize",
    "EIIE", "commission_factor", "price_windows", "OSBLTrainer", "OSBLHistory",
]
