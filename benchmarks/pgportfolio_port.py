"""A straightforward PyTorch port of PGPortfolio's EIIE network and training step (benchmark peer only).

PGPortfolio (the code of "A Deep Reinforcement Learning Framework for the Financial Portfolio
Management Problem") is TensorFlow 1 / tflearn. This port keeps its structure line for line, in
PyTorch, so that the benchmark compares implementations, not frameworks:

- ``pgportfolio/learn/network.py`` ``CNN`` with the default layers: the input ``[batch, features,
  coins, window]`` divided by the latest close, ``ConvLayer`` (3 -> 2 maps, ``[1, 3]``, ReLU),
  ``EIIE_Dense`` (2 -> 20 maps over the whole remaining window, ReLU), ``EIIE_Output_WithW`` (the
  previous weights appended, a 1x1 convolution, a learned cash ("btc") bias, softmax);
- ``pgportfolio/learn/nnagent.py``: the loss ``-mean(log(sum(w * y) * [1, mu]))`` with
  ``mu = 1 - c sum |w_{t+1} - w'_t|`` over the coins (the within-batch approximation), weight
  decay on the convolution kernels, Adam;
- ``pgportfolio/marketdata/datamatrices.py``: the portfolio-vector memory as a NumPy array over
  the coins (initialised at ``1 / coins``), the batch start drawn with ``np.random.geometric`` and
  redrawn until it fits, the memory rows of the batch overwritten with its outputs.

Not part of gradfolio: it lives in ``benchmarks/`` and is used by ``bench_eiie.py`` only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PGPortfolioCNN(nn.Module):
    """PGPortfolio's ``CNN`` with its default EIIE layers: ``x (B, F, N, W), w (B, N) -> (B, N + 1)``."""

    def __init__(self, features: int, coins: int, window: int, weight_decay: tuple[float, float, float]):
        super().__init__()
        self.conv = nn.Conv2d(features, 2, (1, 3))
        self.dense = nn.Conv2d(2, 20, (1, window - 2))
        self.out = nn.Conv2d(21, 1, (1, 1))
        self.btc_bias = nn.Parameter(torch.zeros(1, 1))
        self.weight_decay = weight_decay

    def forward(self, x: torch.Tensor, previous_w: torch.Tensor) -> torch.Tensor:
        x = x / x[:, 0:1, :, -1:]
        x = torch.relu(self.conv(x))
        x = torch.relu(self.dense(x))  # (B, 20, N, 1)
        x = torch.cat([x, previous_w[:, None, :, None]], dim=1)
        x = self.out(x)[:, 0, :, 0]
        x = torch.cat([self.btc_bias.expand(x.shape[0], 1), x], dim=1)
        return torch.softmax(x, dim=1)

    def regularization(self) -> torch.Tensor:
        return sum(d * (m.weight ** 2).sum() / 2 for d, m in zip(self.weight_decay, (self.conv, self.dense, self.out)))


class PGPortfolioAgent:
    """``NNAgent`` + ``DataMatrices`` batching: one :meth:`train_step` is one OSBL batch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, commission: float, bias: float, lr: float,
                 seed: int, weight_decay: tuple[float, float, float] = (0.0, 5e-9, 5e-8)):
        self.x, self.y = x, y  # (T, F, N, W) prices, (T, N) price relatives of the next period
        self.batch_size, self.commission, self.bias = batch_size, commission, bias
        coins = x.shape[2]
        self.pvm = np.full((x.shape[0], coins), 1.0 / coins, dtype=x.dtype)
        self.rng = np.random.RandomState(seed)
        self.net = PGPortfolioCNN(x.shape[1], coins, x.shape[3], weight_decay).to(torch.from_numpy(x[:1]).dtype)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)

    def _sample(self, start: int, end: int) -> int:
        ran = self.rng.geometric(self.bias)
        while ran > end - start:
            ran = self.rng.geometric(self.bias)
        return end - ran

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        start = self._sample(1, self.x.shape[0] - self.batch_size)
        idx = np.arange(start, start + self.batch_size)
        return (torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx]),
                torch.from_numpy(self.pvm[idx - 1]), idx)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        future_price = torch.cat([torch.ones_like(y[:, :1]), y], dim=1)
        future_omega = future_price * output / (future_price * output).sum(1, keepdim=True)
        w_t, w_t1 = future_omega[:-1], output[1:]
        mu = 1 - (w_t1[:, 1:] - w_t[:, 1:]).abs().sum(1) * self.commission
        pv = (output * future_price).sum(1) * torch.cat([torch.ones(1, dtype=mu.dtype), mu])
        return -torch.log(pv).mean() + self.net.regularization()

    def train_step(self) -> float:
        x, y, last_w, idx = self.next_batch()
        self.optimizer.zero_grad()
        output = self.net(x, last_w)
        loss = self.loss(output, y)
        loss.backward()
        self.optimizer.step()
        self.pvm[idx] = output[:, 1:].detach().numpy()
        return float(loss.detach())
