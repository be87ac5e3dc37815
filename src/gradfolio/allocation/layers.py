"""Building blocks of allocation networks, batched over samples AND assets.

Every layer takes and returns tensors laid out like the inputs ``X (B, C, L, N)``
(batch, channels, time, assets) until a time collapse turns them into ``(B, C, N)``.
Weights are shared across assets: the asset order carries no meaning (thesis, sec. 1.3.1),
so no layer mixes neighbouring assets and none loops over samples or assets in Python.
LeakyReLU and dropout are ``torch.nn.LeakyReLU`` / ``torch.nn.Dropout`` (used as is).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from gradfolio.errors import ConfigError

Collapse = Literal["last", "average", "attention"]


class TimeConv(nn.Module):
    """Time-only convolution (thesis eq. 6): ``Y^c_{ij} = b_c + sum_m K^c_m X_{i+m, j}``.

    A ``Conv2d`` with kernel ``(kernel_size, 1)``: it slides along time only, never across
    assets. ``(B, C_in, L, N) -> (B, C_out, L, N)`` (zero "same" padding keeps ``L``).

    Parameters
    ----------
    in_channels, out_channels
        Channels in and out.
    kernel_size
        Filter height ``H_f`` (time steps), odd.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"TimeConv: kernel_size={kernel_size} must be a positive odd integer (e.g. 3 or 5).")
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=(kernel_size // 2, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, L, N) -> (B, C_out, L, N)``."""
        return self.conv(x)


class ChannelAvgPool(nn.Module):
    """Average over channels (thesis sec. 1.3.2): ``(B, C, L, N) -> (B, 1, L, N)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over dimension 1, kept."""
        return x.mean(dim=1, keepdim=True)


class TimeRNN(nn.Module):
    """RNN or LSTM over time with one set of weights shared by every asset.

    All ``B * N`` asset series run through one cuDNN/MKL call: ``(B, C, L, N)`` is viewed as
    ``(B N, L, C)``. ``(B, C, L, N) -> (B, hidden, L, N)`` (outputs at every time step).

    Parameters
    ----------
    in_channels
        Input channels ``C``.
    hidden
        Hidden state size.
    cell
        ``"lstm"`` (eqs. 7-12) or ``"rnn"`` (tanh recurrent layer, sec. 1.4.1).
    num_layers
        Stacked recurrent layers.
    """

    def __init__(self, in_channels: int, hidden: int = 32, cell: Literal["lstm", "rnn"] = "lstm", num_layers: int = 1):
        super().__init__()
        cells = {"lstm": nn.LSTM, "rnn": nn.RNN}
        if cell not in cells:
            raise ConfigError(f"TimeRNN: cell={cell!r} is unknown; use 'lstm' or 'rnn'.")
        self.rnn = cells[cell](in_channels, hidden, num_layers=num_layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, hidden, L, N)``."""
        B, C, L, N = x.shape
        seq = x.permute(0, 3, 2, 1).reshape(B * N, L, C)
        out, _ = self.rnn(seq)
        return out.reshape(B, N, L, -1).permute(0, 3, 2, 1)


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al., 2013): ``sigma(x)_i = max_j (W_ij^T x + b_ij)``.

    ``(..., in_features) -> (..., out_features)``; each output unit is the max of ``pieces``
    affine functions of the input.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2):
        super().__init__()
        if pieces < 1:
            raise ConfigError(f"Maxout: pieces={pieces} must be >= 1.")
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_features) -> (..., out_features)``."""
        z = self.linear(x)
        return z.unflatten(-1, (-1, self.pieces)).amax(dim=-1)


class TimeCollapse(nn.Module):
    """Collapse the time axis: ``(B, C, L, N) -> (B, C, N)``.

    Parameters
    ----------
    mode
        ``"last"`` (last time step), ``"average"`` (mean over time) or ``"attention"``
        (DeepDow's attention collapse: scores ``s_t = tanh(A h_t) . v`` for every asset,
        softmax over time, weighted sum of ``h_t``).
    channels
        Channels ``C`` (needed by ``"attention"``).
    """

    def __init__(self, mode: Collapse = "last", channels: int | None = None):
        super().__init__()
        if mode not in ("last", "average", "attention"):
            raise ConfigError(f"TimeCollapse: mode={mode!r} is unknown; use 'last', 'average' or 'attention'.")
        self.mode = mode
        if mode == "attention":
            if channels is None:
                raise ConfigError("TimeCollapse: mode='attention' needs channels (the size C of dimension 1).")
            self.affine = nn.Linear(channels, channels)
            self.context = nn.Parameter(torch.randn(channels) / channels**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, N) -> (B, C, N)``."""
        if self.mode == "last":
            return x[:, :, -1, :]
        if self.mode == "average":
            return x.mean(dim=2)
        h = x.permute(0, 3, 2, 1)  # (B, N, L, C)
        scores = torch.tanh(self.affine(h)) @ self.context  # (B, N, L)
        attn = torch.softmax(scores, dim=-1)
        return torch.einsum("bnl,bnlc->bcn", attn, h)


__all__ = ["Collapse", "TimeConv", "ChannelAvgPool", "TimeRNN", "Maxout", "TimeCollapse"]
