"""Networks of the distributional agent: the deterministic actor, the quantile critic and the feature scaler.

- :class:`Actor` ``pi(s) = a_max * sigmoid(f(s))``: a deterministic action in ``[0, a_max]``.
- :class:`QuantileCritic` ``Z_tau(s, a)``: ``n_quantiles`` sorted values of the return-to-go.
- :class:`FeatureScaler`: per-feature standardisation fitted once on early states.
- :func:`mlp`: the ``Linear -> ReLU`` stack both networks are built on (``Linear -> LayerNorm -> ReLU``
  with ``layer_norm=True``, as in the LayerNorm networks of Cao et al.'s D4PG agent).

Every tensor has a leading batch axis: features ``(batch, features)``, actions ``(batch,)``,
quantiles ``(batch, n_quantiles)``.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, layer_norm: bool = False) -> nn.Sequential:
    """``Linear -> ReLU`` blocks of widths ``hidden``, then a linear layer to ``n_out``.

    With ``layer_norm`` every hidden block is ``Linear -> LayerNorm -> ReLU`` (the LayerNorm has
    its learnable scale and shift). Input ``(B, n_in)`` -> output ``(B, n_out)``.
    """
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), *([nn.LayerNorm(width)] if layer_norm else []), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class FeatureScaler(nn.Module):
    """Per-feature standardisation ``(x - mean) / std`` with statistics fitted once and frozen.

    Parameters
    ----------
    n_features
        Number of columns of the input ``(batch, n_features)``.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> FeatureScaler:
        """Set the statistics from ``x`` ``(batch, n_features)``; constant columns get ``std = 1``."""
        std = x.std(dim=0, correction=0)
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised ``x``, same shape."""
        return (x - self.mean) / self.std


class Actor(nn.Module):
    """Deterministic policy ``a = a_max * sigmoid(f(x))``: features ``(B, F)`` -> actions ``(B,)``."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], a_max: float, layer_norm: bool = False) -> None:
        super().__init__()
        self.net = mlp(n_features, hidden, 1, layer_norm)
        self.a_max = float(a_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Actions in ``[0, a_max]``, shape ``(B,)``."""
        return self.a_max * torch.sigmoid(self.net(x)[:, 0])


class QuantileCritic(nn.Module):
    """``Z_tau(s, a)``: features ``(B, F)`` and actions ``(B,)`` -> quantiles ``(B, N)``, sorted."""

    def __init__(
        self, n_features: int, hidden: tuple[int, ...], n_quantiles: int, a_max: float, layer_norm: bool = False
    ) -> None:
        super().__init__()
        self.net = mlp(n_features + 1, hidden, n_quantiles, layer_norm)
        self.a_max = float(a_max)

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Quantiles ``(B, N)``, the action rescaled to ``[0, 1]`` on input.

        The output is sorted along the quantile axis, so every row is a valid quantile function.
        """
        out = self.net(torch.cat([x, (action / self.a_max)[:, None]], dim=1))
        return torch.sort(out, dim=1).values


__all__ = ["mlp", "FeatureScaler", "Actor", "QuantileCritic"]
