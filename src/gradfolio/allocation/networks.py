"""Ready allocation networks ``X (B, C, L, N) -> w (B, N)`` with a pluggable allocator.

Each network computes per-asset scores ``z (B, N)`` and hands them to its allocator
(:mod:`gradfolio.allocation.allocators`): a name with its keyword parameters
(``allocator="sparsemax", allocator_params={"max_weight": 0.3}``) or any ``nn.Module`` mapping
``(B, N) -> (B, N)``. With the convex allocator (``allocator="convex"`` or a
:class:`~gradfolio.allocation.convex.ConvexAllocator` module) the scores are the expected returns
``mu`` and the risk model is the window's sample covariance of channel 0, passed as the factor
``F = (X_0 - mean_t X_0) / sqrt(L - 1)`` of shape ``(B, L, N)`` (``S = F'F``; see
:func:`window_factor`). Channel 0 holds returns of the windows' kind (``Windows.kind``, simple or
log), so the covariance is that of those returns.

- :class:`DenseNet` — dense layers (LeakyReLU or Maxout) on the whole flattened window (mixes assets).
- :class:`ConvNet` — time-only convolutions (eq. 6), channel average pooling, a dense layer over
  time shared by the assets.
- :class:`RecurrentNet` — BachelierNet-like: instance norm, LSTM/RNN over time shared by the
  assets, dropout, time collapse (attention by default), a linear score per asset.
- :class:`MarkowitzNet` — :class:`RecurrentNet` scores as expected returns plus the window's
  covariance into the differentiable convex allocator (DeepDow's BachelierNet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from gradfolio.allocation.allocators import ALLOCATORS, make_allocator
from gradfolio.allocation.convex import ConvexAllocator
from gradfolio.allocation.layers import ChannelAvgPool, Collapse, Maxout, TimeCollapse, TimeConv, TimeRNN
from gradfolio.errors import ConfigError, DataError, GradfolioError
from gradfolio.registry import Registry
from gradfolio.solvers import PortfolioConstraints, QPSettings


def window_factor(x: torch.Tensor) -> torch.Tensor:
    """Sample-covariance factor of the windows' channel 0: ``(B, C, L, N) -> F (B, L, N)``.

    ``F = (X_0 - mean_t X_0) / sqrt(L - 1)``, so ``F'F`` is the sample covariance (``ddof=1``) of
    the window's returns (of the windows' return kind).
    """
    returns = x[:, 0]
    return (returns - returns.mean(dim=1, keepdim=True)) / max(returns.shape[1] - 1, 1) ** 0.5


def _check_dropout(owner: str, dropout: float) -> None:
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ConfigError(f"{owner}: dropout={dropout!r} must lie in [0, 1) (0 for none, e.g. 0.2).")


def _check_sizes(owner: str, **sizes: int | tuple[int, ...]) -> None:
    """Raise :class:`ConfigError` unless every size (an int or a sequence of ints) is a positive integer."""
    for name, value in sizes.items():
        values = value if isinstance(value, (tuple, list)) else (value,)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise ConfigError(f"{owner}: {name}={value!r} must be made of positive integers (e.g. 16).")


class AllocationNetwork(nn.Module):
    """Base class: ``forward(X) = allocator(scores(X))``; subclasses implement :meth:`scores`.

    Parameters
    ----------
    n_channels
        Input channels ``C``.
    allocator
        A name of :data:`~gradfolio.allocation.allocators.ALLOCATORS` or an ``nn.Module``.
    allocator_params
        Keyword arguments of a named allocator (e.g. ``{"max_weight": 0.3}`` for ``"sparsemax"``).
    n_assets
        ``N``; needed only by the convex allocator (whose problem has a fixed size).
    """

    def __init__(
        self,
        n_channels: int,
        allocator: str | nn.Module = "softmax",
        allocator_params: Mapping[str, Any] | None = None,
        n_assets: int | None = None,
    ):
        super().__init__()
        _check_sizes(type(self).__name__, n_channels=n_channels)
        self.n_channels = n_channels
        params = allocator_params or {}
        self.allocator = make_allocator(allocator, n_assets=n_assets, where="allocator_params", **params)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-asset scores ``(B, C, L, N) -> (B, N)``."""
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` unless ``x`` is ``(B, n_channels, L, N)`` (a convex allocator fixes ``N``)."""
        if x.ndim != 4 or x.shape[1] != self.n_channels:
            raise DataError(
                f"{type(self).__name__}: X has shape {tuple(x.shape)}; expected (batch, {self.n_channels}, "
                "lookback, assets) as built by gradfolio.data.make_windows."
            )
        if isinstance(self.allocator, ConvexAllocator) and x.shape[-1] != self.allocator.n_assets:
            raise DataError(
                f"{type(self).__name__}: X has {x.shape[-1]} assets but the convex allocator was built for "
                f"n_assets={self.allocator.n_assets}; build the network for these windows."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weights ``(B, C, L, N) -> (B, N)``; a convex allocator also gets :func:`window_factor` ``(B, L, N)``."""
        self.check_input(x)
        z = self.scores(x)
        if isinstance(self.allocator, ConvexAllocator):
            return self.allocator(z, factor=window_factor(x))
        return self.allocator(z)


Activation = Literal["leaky_relu", "relu", "tanh", "maxout"]


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
        Dropout probability after every hidden layer (and on the input), in ``[0, 1)``.
    allocator, allocator_params
        Name and keyword parameters, or a module (see :func:`~gradfolio.allocation.allocators.make_allocator`).
    """

    def __init__(
        self,
        n_assets: int,
        lookback: int,
        n_channels: int = 1,
        hidden: tuple[int, ...] = (64,),
        activation: Activation = "leaky_relu",
        pieces: int = 2,
        dropout: float = 0.0,
        allocator: str | nn.Module = "softmax",
        allocator_params: Mapping[str, Any] | None = None,
    ):
        _check_sizes("DenseNet", n_assets=n_assets, lookback=lookback, hidden=hidden)
        _check_dropout("DenseNet", dropout)
        super().__init__(n_channels, allocator, allocator_params, n_assets)
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
    dropout, allocator, allocator_params
        As in :class:`DenseNet`.
    n_assets
        ``N``, needed only by the convex allocator (the network itself takes any ``N``).
    """

    def __init__(
        self,
        lookback: int,
        n_channels: int = 1,
        channels: tuple[int, ...] = (16, 16),
        kernel_size: int = 5,
        dropout: float = 0.0,
        allocator: str | nn.Module = "softmax",
        allocator_params: Mapping[str, Any] | None = None,
        n_assets: int | None = None,
    ):
        _check_sizes("ConvNet", lookback=lookback, channels=channels)
        _check_dropout("ConvNet", dropout)
        super().__init__(n_channels, allocator, allocator_params, n_assets)
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
    dropout, allocator, allocator_params
        As in :class:`DenseNet`.
    n_assets
        ``N``, needed only by the convex allocator (the network itself takes any ``N`` and ``L``).
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
        allocator_params: Mapping[str, Any] | None = None,
        n_assets: int | None = None,
    ):
        _check_sizes("RecurrentNet", hidden=hidden, num_layers=num_layers)
        _check_dropout("RecurrentNet", dropout)
        super().__init__(n_channels, allocator, allocator_params, n_assets)
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
    """BachelierNet in gradfolio: :class:`RecurrentNet` with the convex allocator, ``gamma`` and ``alpha`` learned.

    The recurrent scores are the expected returns ``mu (B, N)`` and the window's sample covariance
    (:func:`window_factor`, of the windows' return kind) the risk model of
    ``w = argmin 1/2 gamma w'Sw - mu'w + 1/2 alpha |w|^2`` under any convex constraints. It is
    ``RecurrentNet(allocator="convex", allocator_params={..., "learn_gamma": True, "learn_alpha": True})``.

    Parameters
    ----------
    n_assets
        ``N`` (the convex problem's size).
    constraints
        :class:`gradfolio.solvers.PortfolioConstraints` (default: budget only).
    gamma, alpha
        Initial risk aversion and L2 regularization (both learned, > 0).
    settings
        :class:`gradfolio.solvers.QPSettings` of the convex layer's solver (default: chosen for the
        constraints); a mapping of its fields is accepted (``{"max_iter": 100}``).
    **kwargs
        :class:`RecurrentNet` options (``hidden``, ``cell``, ``collapse``, ``dropout``...) but no
        ``allocator``: for another allocator use ``RecurrentNet`` / ``make_network("lstm", ...)``.
    """

    def __init__(
        self,
        n_assets: int,
        constraints: PortfolioConstraints | None = None,
        gamma: float = 1.0,
        alpha: float = 0.1,
        settings: QPSettings | None = None,
        **kwargs: Any,
    ):
        given = sorted({"allocator", "allocator_params"} & kwargs.keys())
        if given:
            raise ConfigError(
                f"MarkowitzNet: {given} given, but it always uses the convex allocator; set constraints, gamma "
                "and alpha instead, or use make_network('lstm', ..., allocator=...) for another allocator."
            )
        params = {
            "constraints": constraints, "gamma": gamma, "alpha": alpha, "learn_gamma": True, "learn_alpha": True,
            "settings": settings,
        }
        super().__init__(allocator="convex", allocator_params=params, n_assets=n_assets, **kwargs)


NETWORKS: Registry[AllocationNetwork] = Registry("network")
"""Networks by name; each entry's typed signature is the schema of its parameters, and
``allocator_params`` is validated against the signature of the allocator named by ``allocator``."""
_ALLOCATOR_PARAMS = {"allocator_params": ("allocator", ALLOCATORS)}
NETWORKS.register("dense", DenseNet, nested=_ALLOCATOR_PARAMS)
NETWORKS.register("maxout", DenseNet, defaults={"activation": "maxout"}, nested=_ALLOCATOR_PARAMS)
NETWORKS.register("conv", ConvNet, nested=_ALLOCATOR_PARAMS)
NETWORKS.register("lstm", RecurrentNet, nested=_ALLOCATOR_PARAMS)
NETWORKS.register("rnn", RecurrentNet, defaults={"cell": "rnn"}, nested=_ALLOCATOR_PARAMS)
NETWORKS.register("markowitz", MarkowitzNet)


def make_network(
    name: str, n_assets: int, lookback: int, n_channels: int = 1, seed: int | None = None, *,
    where: str | None = None, **params: Any,
) -> AllocationNetwork:
    """Build a registered network: ``"dense"``, ``"maxout"``, ``"conv"``, ``"lstm"``, ``"rnn"`` or ``"markowitz"``.

    ``NETWORKS.build(name, context={"n_assets": ..., "lookback": ..., "n_channels": ...}, **params)``
    under a seeded RNG: the input shape is passed to the classes that take it (a recurrent
    network takes no ``lookback``), and ``params`` are validated by the class's typed signature.

    Parameters
    ----------
    name
        Registry name (see ``NETWORKS``).
    n_assets, lookback, n_channels
        Input shape ``(C, L, N)`` (networks that do not need a size ignore it; every network
        passes ``n_assets`` to a convex allocator).
    seed
        Seed of the parameter initialisation, drawn from a forked CPU RNG (the global RNG is left
        as it was); ``None`` draws from the global RNG.
    where
        Dotted config path of ``params`` for messages (default ``"network"``; the experiments
        pass ``"network.params"``).
    **params
        Keyword arguments of the network class, e.g. ``hidden``, ``dropout``, ``allocator`` and
        ``allocator_params`` (``allocator="sparsemax", allocator_params={"max_weight": 0.3}``;
        ``allocator="convex", allocator_params={"constraints": {"long_only": True}, "alpha": 0.1,
        "settings": {"max_iter": 100}}``: mappings become the typed objects).

    Raises
    ------
    ConfigError
        An unknown name or a bad parameter, named with its path
        (``network.allocator_params.settings.max_iter: Input should be a valid integer ...``).
    """
    if name not in NETWORKS:
        raise ConfigError(f"network name={name!r} is unknown; use one of {sorted(NETWORKS.names())}.")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ConfigError(f"make_network: seed={seed!r} must be an integer or None.")
    context = {"n_assets": n_assets, "lookback": lookback, "n_channels": n_channels}
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
        try:
            return NETWORKS.build(name, where=where, context=context, **params)
        except GradfolioError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"network {name!r}: bad parameters {sorted(params)} ({exc}).") from exc


__all__ = [
    "AllocationNetwork", "DenseNet", "ConvNet", "RecurrentNet", "MarkowitzNet", "NETWORKS", "make_network",
    "window_factor",
]
