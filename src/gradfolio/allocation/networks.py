"""Ready allocation networks ``X (B, C, L, N) -> w (B, N)`` with a pluggable allocator.

Each network computes per-asset scores ``z (B, N)`` and hands them to its allocator
(:mod:`gradfolio.allocation.allocators`; a name or any ``nn.Module`` mapping ``(B, N) -> (B, N)``).

- :class:`DenseNet` — dense layers (LeakyReLU or Maxout) on the whole flattened window (mixes assets).
- :class:`ConvNet` — time-only convolutions (eq. 6), channel average pooling, a dense layer over
  time shared by the assets.
- :class:`RecurrentNet` — BachelierNet-like: instance norm, LSTM/RNN over time shared by the
  assets, dropout, time collapse (attention by default), a linear score per asset.
- :class:`MarkowitzNet` — :class:`RecurrentNet` scores as expected returns plus the window's
  covariance into the differentiable convex allocator (DeepDow's BachelierNet).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from gradfolio.allocation.allocators import make_allocator
from gradfolio.allocation.layers import ChannelAvgPool, Collapse, Maxout, TimeCollapse, TimeConv, TimeRNN
from gradfolio.errors import ConfigError, DataError


class AllocationNetwork(nn.Module):
    """Base class: ``forward(X) = allocator(scores(X))``; subclasses implement :meth:`scores`."""

    def __init__(self, n_channels: int, allocator: str | nn.Module = "softmax"):
        super().__init__()
        self.n_channels = n_channels
        self.allocator = make_allocator(allocator)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-asset scores ``(B, C, L, N) -> (B, N)``."""
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` unless ``x`` has shape ``(B, n_channels, L, N)``."""
        if x.ndim != 4 or x.shape[1] != self.n_channels:
            raise DataError(
                f"{type(self).__name__}: X has shape {tuple(x.shape)}; expected (batch, {self.n_channels}, "
                "lookback, assets) as built by gradfolio.data.make_windows."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weights ``(B, C, L, N) -> (B, N)``."""
        self.check_input(x)
        return self.allocator(self.scores(x))


def _activation(name: str) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise ConfigError(f"activation={name!r} is unknown; use 'leaky_relu', 'relu', 'tanh' or 'maxout'.")


class DenseNet(AllocationNetwork):
    """Dense network on the flattened window (thesis sec. 1.2): ``C L N -> hidden... -> N`` scores.

    Parameters
    ----------
    n_assets, lookback, n_channels
        Input shape ``(C, L, N)`` (fixed: the first layer sees every entry).
    hidden
        Sizes of the hidden layers.
    activation
        ``"leaky_relu"`` (slope 0.01), ``"relu"``, ``"tanh"`` or ``"maxout"``.
    pieces
        Affine pieces per Maxout unit.
    dropout
        Dropout probability after every hidden layer (and on the input).
    allocator
        Name or module (see :func:`~gradfolio.allocation.allocators.make_allocator`).
    """

    def __init__(
        self,
        n_assets: int,
        lookback: int,
        n_channels: int = 1,
        hidden: tuple[int, ...] = (64,),
        activation: str = "leaky_relu",
        pieces: int = 2,
        dropout: float = 0.0,
        allocator: str | nn.Module = "softmax",
    ):
        super().__init__(n_channels, allocator)
        self.n_assets, self.lookback = n_assets, lookback
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
        width = n_channels * lookback * n_assets
        for h in hidden:
            if activation == "maxout":
                layers += [Maxout(width, h, pieces)]
            else:
                layers += [nn.Linear(width, h), _activation(activation)]
            layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_assets))
        self.body = nn.Sequential(*layers)

    def check_input(self, x: torch.Tensor) -> None:
        """Also check ``L == lookback`` and ``N == n_assets``."""
        super().check_input(x)
        if x.shape[2:] != (self.lookback, self.n_assets):
            raise DataError(
                f"DenseNet: X has shape {tuple(x.shape)}; this network was built for lookback={self.lookback} and "
                f"n_assets={self.n_assets}; build a new one for these windows."
            )

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, N)``."""
        return self.body(x)


class ConvNet(AllocationNetwork):
    """Time-only convolutions (eq. 6) + channel average pooling + a time-dense layer shared by assets.

    ``X -> [TimeConv -> LeakyReLU -> Dropout]* -> ChannelAvgPool (B, 1, L, N) -> Linear(L -> 1)``
    applied to every asset. Permuting the assets permutes the scores (no cross-asset mixing).

    Parameters
    ----------
    lookback
        Window length ``L`` (the dense layer acts on time).
    n_channels
        Input channels.
    channels
        Output channels of each convolution.
    kernel_size
        Time extent ``H_f`` of the filters (odd).
    dropout, allocator
        As in :class:`DenseNet`.
    """

    def __init__(
        self,
        lookback: int,
        n_channels: int = 1,
        channels: tuple[int, ...] = (16, 16),
        kernel_size: int = 5,
        dropout: float = 0.0,
        allocator: str | nn.Module = "softmax",
    ):
        super().__init__(n_channels, allocator)
        self.lookback = lookback
        layers: list[nn.Module] = []
        c_in = n_channels
        for c in channels:
            layers += [TimeConv(c_in, c, kernel_size), nn.LeakyReLU(0.01), nn.Dropout(dropout)]
            c_in = c
        layers.append(ChannelAvgPool())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(lookback, 1)

    def check_input(self, x: torch.Tensor) -> None:
        """Also check ``L == lookback``."""
        super().check_input(x)
        if x.shape[2] != self.lookback:
            raise DataError(f"ConvNet: X has lookback {x.shape[2]}; this network was built for {self.lookback}.")

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, N)``."""
        pooled = self.body(x)[:, 0]  # (B, L, N)
        return self.head(pooled.transpose(1, 2)).squeeze(-1)


class RecurrentNet(AllocationNetwork):
    """BachelierNet-like recurrent network, any allocator.

    ``X -> InstanceNorm2d -> TimeRNN (LSTM/RNN shared by assets) -> Dropout -> TimeCollapse
    -> Linear(hidden -> 1) per asset -> allocator``. Works for any lookback and number of assets.

    Parameters
    ----------
    n_channels
        Input channels.
    hidden
        Recurrent hidden size.
    cell
        ``"lstm"`` or ``"rnn"``.
    num_layers
        Stacked recurrent layers.
    collapse
        ``"attention"``, ``"last"`` or ``"average"``.
    normalize
        Instance normalisation of each input channel (as BachelierNet).
    dropout, allocator
        As in :class:`DenseNet`.
    """

    def __init__(
        self,
        n_channels: int = 1,
        hidden: int = 32,
        cell: Literal["lstm", "rnn"] = "lstm",
        num_layers: int = 1,
        collapse: Collapse = "attention",
        normalize: bool = True,
        dropout: float = 0.0,
        allocator: str | nn.Module = "softmax",
    ):
        super().__init__(n_channels, allocator)
        self.norm = nn.InstanceNorm2d(n_channels, affine=True) if normalize else nn.Identity()
        self.rnn = TimeRNN(n_channels, hidden, cell, num_layers)
        self.dropout = nn.Dropout(dropout)
        self.collapse = TimeCollapse(collapse, hidden)
        self.head = nn.Linear(hidden, 1)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, N)``."""
        h = self.collapse(self.dropout(self.rnn(self.norm(x))))  # (B, hidden, N)
        return self.head(h.transpose(1, 2)).squeeze(-1)


class MarkowitzNet(RecurrentNet):
    """BachelierNet in gradfolio: :class:`RecurrentNet` scores as expected returns ``mu (B, N)``,
    the window's sample covariance as risk model, and a differentiable
    :class:`~gradfolio.allocation.convex.ConvexAllocator` (learnable ``gamma`` and ``alpha``) for
    ``w = argmin 1/2 gamma w'Sw - mu'w + 1/2 alpha |w|^2`` under any convex constraints.

    The covariance enters as the factor ``F = (X_0 - mean) / sqrt(L - 1)`` of shape ``(B, L, N)``
    (``S = F'F``), never formed explicitly.

    Parameters
    ----------
    n_assets
        ``N`` (the convex problem's size).
    constraints
        :class:`gradfolio.solvers.PortfolioConstraints` (default: budget only).
    gamma, alpha
        Initial risk aversion and L2 regularization (both learned).
    **kwargs
        :class:`RecurrentNet` options (``hidden``, ``cell``, ``collapse``, ``dropout``...).
    """

    def __init__(
        self, n_assets: int, constraints: Any = None, gamma: float = 1.0, alpha: float = 0.1, **kwargs: Any
    ):
        from gradfolio.allocation.convex import ConvexAllocator

        kwargs.pop("allocator", None)
        allocator = ConvexAllocator(n_assets, constraints, gamma, alpha, learn_gamma=True, learn_alpha=True)
        super().__init__(allocator=allocator, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weights ``(B, C, L, N) -> (B, N)`` from the convex problem."""
        self.check_input(x)
        returns = x[:, 0]
        factor = (returns - returns.mean(dim=1, keepdim=True)) / max(returns.shape[1] - 1, 1) ** 0.5
        return self.allocator(self.scores(x), factor=factor)


def _dense(**kw: Any) -> DenseNet:
    return DenseNet(**kw)


def _maxout(**kw: Any) -> DenseNet:
    return DenseNet(**{"activation": "maxout", **kw})


def _conv(**kw: Any) -> ConvNet:
    kw.pop("n_assets", None)
    return ConvNet(**kw)


def _lstm(**kw: Any) -> RecurrentNet:
    kw.pop("n_assets", None)
    kw.pop("lookback", None)
    return RecurrentNet(**kw)


def _rnn(**kw: Any) -> RecurrentNet:
    return _lstm(**{"cell": "rnn", **kw})


def _markowitz(**kw: Any) -> MarkowitzNet:
    kw.pop("lookback", None)
    return MarkowitzNet(**kw)


NETWORKS = {"dense": _dense, "maxout": _maxout, "conv": _conv, "lstm": _lstm, "rnn": _rnn, "markowitz": _markowitz}


def make_network(name: str, n_assets: int, lookback: int, n_channels: int = 1, **params: Any) -> AllocationNetwork:
    """Build a registered network (``"dense"``, ``"maxout"``, ``"conv"``, ``"lstm"``, ``"rnn"``).

    Parameters
    ----------
    name
        Registry name.
    n_assets, lookback, n_channels
        Input shape ``(C, L, N)`` (networks that do not need a size ignore it).
    **params
        Keyword arguments of the network class (e.g. ``hidden``, ``dropout``, ``allocator``).
    """
    if name not in NETWORKS:
        raise ConfigError(f"network name={name!r} is unknown; use one of {sorted(NETWORKS)}.")
    try:
        return NETWORKS[name](n_assets=n_assets, lookback=lookback, n_channels=n_channels, **params)
    except TypeError as exc:
        raise ConfigError(f"network {name!r}: bad parameters {sorted(params)} ({exc}).") from exc


__all__ = ["AllocationNetwork", "DenseNet", "ConvNet", "RecurrentNet", "MarkowitzNet", "NETWORKS", "make_network"]
