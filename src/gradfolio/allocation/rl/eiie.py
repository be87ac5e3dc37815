"""EIIE: the Ensemble of Identical Independent Evaluators of Jiang, Xu and Liang.

The policy network of "A Deep Reinforcement Learning Framework for the Financial Portfolio
Management Problem" (2017), convolutional version. Every asset is scored by the same small
network that sees only that asset's normalized price history and the weight it holds; a cash
asset with a learned bias joins the scores and a softmax over the ``N + 1`` scores gives the
portfolio (cash first, as in the paper)::

    V (B, C, W, N)  prices divided by the latest close (close; high, low when given)
    -> Conv2d(C -> 2, kernel (k, 1), 'valid') -> ReLU              (B, 2, W - k + 1, N)
    -> Conv2d(2 -> 20, kernel (W - k + 1, 1)) -> ReLU               (B, 20, 1, N)
    -> concat previous weights w_{t-1} as channel 21                (B, 21, 1, N)
    -> Conv2d(21 -> 1, kernel 1x1)                                  (B, 1, 1, N) scores
    -> [cash bias, scores] -> softmax                               (B, N + 1) = (cash, w_1..w_N)

gradfolio's weights exclude cash (cash is ``1 - sum_i w_i``), so :class:`EIIE` returns the ``N``
risky weights of that softmax; :meth:`EIIE.portfolio` returns the whole ``(B, N + 1)`` vector.

EIIE is a :class:`gradfolio.backtest.HoldingStrategy` (``needs_holdings = True``): it is called as
``eiie(X, before, previous) -> w`` with ``previous`` the weights right after the last trade (the
paper's portfolio-vector memory entry ``w_{t-1}``); :func:`gradfolio.backtest.walk_forward` walks
it date by date with exactly those weights.

Inputs. ``inputs="returns"`` (the default, what gradfolio's windows hold): ``X (B, 1, L, N)`` are
returns of kind ``returns_kind``; the ``L + 1`` closes they imply, divided by the latest one
(``v_{t-L} / v_t, ..., v_t / v_t = 1``), are the close channel (``W = L + 1``). The bundled data is
close-only. ``inputs="prices"``: ``X (B, C, L, N)`` are prices (``C = 1``: close; ``C = 3``: close,
high, low, as built by :func:`price_windows`), divided inside by the latest close (``W = L``).

The commission factor ``mu`` of a trade from the drifted weights ``w'`` to the target ``w`` (both
``(B, N + 1)``, cash first, buying and selling at the same rate ``c``) is the fixed point of the
paper's equation (14)::

    mu = [1 - c w'_0 - (2c - c^2) sum_{i>=1} (w'_i - mu w_i)^+] / (1 - c w_0)

solved by :func:`commission_factor` as in the authors' code (from ``mu = 1 - 2c + c^2``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from gradfolio.allocation.networks import NETWORKS
from gradfolio.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from gradfolio.data import Windows

Inputs = Literal["returns", "prices"]
CommissionMethod = Literal["iterative", "approx"]


def commission_factor(
    drifted: Tensor, target: Tensor, commission: float, tol: float = 1e-12, max_iter: int = 200
) -> Tensor:
    """Jiang et al.'s transaction remainder factor ``mu`` (eq. 14 with equal buy and sell rates).

    ``mu`` is the fraction of wealth left after trading from ``drifted`` to ``target``:
    ``mu = [1 - c w'_0 - (2c - c^2) sum_{i>=1} (w'_i - mu w_i)^+] / (1 - c w_0)``, iterated from
    ``mu = 1 - 2c + c^2`` until every row moves by less than ``tol`` (differentiable: the iterations
    are unrolled, their last one carries the gradient of the fixed point to ``tol``).

    Parameters
    ----------
    drifted
        ``w' (B, N + 1)``: the weights held before the trade (drifted with the prices), cash first.
    target
        ``w (B, N + 1)``: the weights after the trade, cash first.
    commission
        ``c``, the commission rate of buying and of selling, in ``[0, 1)``.
    tol, max_iter
        Stopping rule of the fixed-point iteration.

    Returns
    -------
    Tensor ``mu (B,)`` in ``(0, 1]``; ``mu = 1 - c sum_{i>=1} |w'_i - w_i| + O(c^2)``.

    Raises
    ------
    ConfigError
        ``commission`` outside ``[0, 1)``.
    DataError
        Shapes that differ or are not ``(B, N + 1)``.
    """
    if not (isinstance(commission, (int, float)) and 0 <= commission < 1):
        raise ConfigError(f"commission_factor: commission={commission!r} must lie in [0, 1) (e.g. 0.0025).")
    if drifted.ndim != 2 or drifted.shape != target.shape or drifted.shape[1] < 2:
        raise DataError(
            f"commission_factor: drifted {tuple(drifted.shape)} and target {tuple(target.shape)} must both be "
            "(B, N + 1) portfolio vectors with cash first."
        )
    c = float(commission)
    num0 = 1.0 - c * drifted[:, 0]
    den = 1.0 - c * target[:, 0]
    k = 2 * c - c * c
    mu = torch.full_like(num0, 1.0 - k)
    for _ in range(max_iter):
        new = (num0 - k * torch.relu(drifted[:, 1:] - mu[:, None] * target[:, 1:]).sum(-1)) / den
        done = bool(((new - mu).abs() < tol).all())
        mu = new
        if done:
            break
    return mu


def approx_commission_factor(drifted: Tensor, target: Tensor, commission: float) -> Tensor:
    """``mu ~= 1 - c sum_{i>=1} |w'_i - w_i|`` (cash excluded), the approximation the authors train with.

    Shapes as :func:`commission_factor`: ``(B, N + 1), (B, N + 1) -> (B,)``.
    """
    if not (isinstance(commission, (int, float)) and 0 <= commission < 1):
        raise ConfigError(f"approx_commission_factor: commission={commission!r} must lie in [0, 1) (e.g. 0.0025).")
    return 1.0 - commission * (drifted[:, 1:] - target[:, 1:]).abs().sum(-1)


def drift(weights: Tensor, relatives: Tensor) -> Tensor:
    """Weights after one period of price moves: ``w' = (y * w) / (y . w)``; ``(B, M), (B, M) -> (B, M)``.

    ``relatives`` are the period's price relatives ``y = v_t / v_{t-1}`` (cash: 1).
    """
    grown = weights * relatives
    return grown / grown.sum(-1, keepdim=True)


def with_cash(weights: Tensor) -> Tensor:
    """gradfolio weights ``(B, N)`` (cash implicit) to the paper's vector ``(B, N + 1)`` with cash first."""
    return torch.cat([1.0 - weights.sum(-1, keepdim=True), weights], dim=-1)


def close_relatives(returns: Tensor, kind: Literal["simple", "log"] = "simple") -> Tensor:
    """The closes implied by a window of returns, divided by the latest: ``(B, L, N) -> (B, L + 1, N)``.

    Row ``j`` is ``v_{t-L+j} / v_t`` (row ``L`` is 1), ``v`` the close path whose returns are ``returns``.
    """
    log = torch.log1p(returns) if kind == "simple" else returns
    after = torch.flip(torch.cumsum(torch.flip(log, dims=[1]), dim=1), dims=[1])  # sum_{s >= j} log r_s
    zero = torch.zeros_like(log[:, :1])
    return torch.exp(-torch.cat([after, zero], dim=1))


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"EIIE: {name}={value!r} must be a positive integer.")


class EIIE(nn.Module):
    """Jiang et al.'s convolutional EIIE policy with portfolio-vector memory and a cash bias.

    ``eiie(X (B, C, L, N), before (B, N), previous (B, N)) -> w (B, N)`` (risky weights; cash is
    ``1 - sum w``). ``before`` (the drifted weights) is accepted for the
    :class:`~gradfolio.backtest.HoldingStrategy` protocol and not used: the paper feeds back the
    weights after the last trade, ``previous``.

    Parameters
    ----------
    n_assets, lookback, n_channels
        Input shape ``(C, L, N)``.
    inputs
        ``"returns"`` (channel 0 holds returns of ``returns_kind``; close only) or ``"prices"``
        (``X`` holds close, or close, high and low prices; see the module doc).
    returns_kind
        ``"simple"`` or ``"log"``: the kind of the returns when ``inputs="returns"``.
    features
        Feature maps of the first convolution (2 in the paper).
    kernel_size
        Time extent of the first convolution (3 in the paper).
    hidden
        Feature maps of the second convolution, over the remaining window (20 in the paper).
    beta
        The online stochastic batch learning's geometric bias towards recent periods, read by
        :class:`~gradfolio.allocation.rl.osbl.OSBLTrainer` when it is not given one.
    commission_method
        How the training reward's commission factor is computed: ``"iterative"`` (eq. 14,
        :func:`commission_factor`) or ``"approx"`` (``1 - c sum |w' - w|``, as in the authors' code).
    """

    needs_holdings = True
    trainer = "osbl"

    def __init__(
        self,
        n_assets: int,
        lookback: int,
        n_channels: int = 1,
        inputs: Inputs = "returns",
        returns_kind: Literal["simple", "log"] = "simple",
        features: int = 2,
        kernel_size: int = 3,
        hidden: int = 20,
        beta: float = 0.05,
        commission_method: CommissionMethod = "iterative",
    ):
        super().__init__()
        for name, value in (("n_assets", n_assets), ("lookback", lookback), ("n_channels", n_channels),
                            ("features", features), ("kernel_size", kernel_size), ("hidden", hidden)):
            _check_int(name, value)
        if inputs not in ("returns", "prices"):
            raise ConfigError(f"EIIE: inputs={inputs!r}; use 'returns' (gradfolio's windows) or 'prices'.")
        if returns_kind not in ("simple", "log"):
            raise ConfigError(f"EIIE: returns_kind={returns_kind!r}; use 'simple' or 'log'.")
        if inputs == "returns" and n_channels != 1:
            raise ConfigError(
                f"EIIE: inputs='returns' reads one channel of returns but n_channels={n_channels}; "
                "use inputs='prices' for close/high/low price windows (gradfolio.allocation.rl.eiie.price_windows)."
            )
        if not (isinstance(beta, (int, float)) and 0 < beta < 1):
            raise ConfigError(f"EIIE: beta={beta!r} must lie in (0, 1) (e.g. 0.05; the paper used 5e-5 per 30 min).")
        if commission_method not in ("iterative", "approx"):
            raise ConfigError(f"EIIE: commission_method={commission_method!r}; use 'iterative' or 'approx'.")
        self.n_assets, self.lookback, self.n_channels = n_assets, lookback, n_channels
        self.inputs, self.returns_kind = inputs, returns_kind
        self.beta, self.commission_method = float(beta), commission_method
        self.window = lookback + 1 if inputs == "returns" else lookback
        if kernel_size > self.window:
            raise ConfigError(
                f"EIIE: kernel_size={kernel_size} is longer than the {self.window} prices a window of lookback "
                f"{lookback} gives; use kernel_size <= {self.window}."
            )
        self.conv1 = nn.Conv2d(n_channels, features, (kernel_size, 1))
        self.conv2 = nn.Conv2d(features, hidden, (self.window - kernel_size + 1, 1))
        self.vote = nn.Conv2d(hidden + 1, 1, (1, 1))
        self.cash_bias = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        return f"inputs={self.inputs!r}, returns_kind={self.returns_kind!r}, window={self.window}"

    def check_input(self, X: Tensor, previous: Tensor | None, where: str = "forward") -> None:
        """Raise :class:`DataError` unless ``X (B, C, L, N)`` and ``previous (B, N)`` fit the network and are finite."""
        if X.ndim != 4 or tuple(X.shape[1:]) != (self.n_channels, self.lookback, self.n_assets):
            raise DataError(
                f"EIIE.{where}: X has shape {tuple(X.shape)}; expected (batch, {self.n_channels}, {self.lookback}, "
                f"{self.n_assets}) as built by gradfolio.data.make_windows (or price_windows for inputs='prices')."
            )
        if previous is None:
            raise DataError(
                f"EIIE.{where}: the previous weights are missing; EIIE sees what it holds: call it as "
                "eiie(X, before, previous) (walk_forward does; `gradfolio predict` needs --holdings)."
            )
        if previous.shape != (X.shape[0], self.n_assets):
            raise DataError(
                f"EIIE.{where}: previous has shape {tuple(previous.shape)}; expected ({X.shape[0]}, {self.n_assets}) "
                "weights after the last trade (zeros: all cash)."
            )
        if not bool(torch.isfinite(X).all()):
            raise DataError(f"EIIE.{where}: X holds NaN or inf; fill or drop the missing prices before windowing.")
        if not bool(torch.isfinite(previous).all()):
            raise DataError(f"EIIE.{where}: previous holds NaN or inf; give finite weights (zeros: all cash).")
        if self.inputs == "prices" and not bool((X > 0).all()):
            raise DataError(f"EIIE.{where}: inputs='prices' needs positive prices; X holds values <= 0.")

    def normalized(self, X: Tensor) -> Tensor:
        """The price tensor the evaluators see, divided by the latest close: ``(B, C, L, N) -> (B, C, W, N)``."""
        if self.inputs == "returns":
            return close_relatives(X[:, 0], self.returns_kind)[:, None]
        return X / X[:, :1, -1:, :]

    def logits(self, X: Tensor, previous: Tensor, validate: bool = True) -> Tensor:
        """Scores before the softmax, cash first: ``(B, C, L, N), (B, N) -> (B, N + 1)``.

        ``validate=False`` skips the shape and finiteness checks (for a trainer that checked its
        data once).
        """
        if validate:
            self.check_input(X, previous, "logits")
        h = torch.relu(self.conv2(torch.relu(self.conv1(self.normalized(X)))))  # (B, hidden, 1, N)
        h = torch.cat([h, previous[:, None, None, :].to(h.dtype)], dim=1)
        scores = self.vote(h)[:, 0, 0, :]  # (B, N)
        return torch.cat([self.cash_bias.expand(scores.shape[0], 1), scores], dim=1)

    def portfolio(self, X: Tensor, previous: Tensor, validate: bool = True) -> Tensor:
        """The whole portfolio vector, cash first: ``(B, C, L, N), (B, N) -> (B, N + 1)`` (rows sum to 1)."""
        return torch.softmax(self.logits(X, previous, validate), dim=-1)

    def forward(self, X: Tensor, before: Tensor | None = None, previous: Tensor | None = None) -> Tensor:
        """Risky weights ``(B, C, L, N), (B, N), (B, N) -> (B, N)``; cash is ``1 - sum w``."""
        self.check_input(X, previous, "forward")
        assert previous is not None
        return self.portfolio(X, previous, validate=False)[:, 1:]


def price_windows(
    close: pd.DataFrame,
    lookback: int,
    high: pd.DataFrame | None = None,
    low: pd.DataFrame | None = None,
    horizon: int = 1,
    gap: int = 0,
) -> Windows:
    """Jiang et al.'s price windows: ``X (n, C, lookback, N)`` of close (and high, low) prices.

    Consecutive windows are consecutive periods (``step = horizon``), as the portfolio-vector
    memory needs. ``X`` holds the raw prices of the last ``lookback`` rows (EIIE divides them by
    the latest close), ``y`` the simple close returns of the ``horizon`` rows after ``gap``.

    Parameters
    ----------
    close, high, low
        Price tables ``(T, N)`` with the same index and columns (high and low both or neither).
    lookback, horizon, gap
        Rows seen, rows of each period, rows between decision and trade.

    Returns
    -------
    :class:`gradfolio.data.Windows` with ``C = 3`` (close, high, low) or ``C = 1``, for
    ``EIIE(inputs="prices", n_channels=C)``.
    """
    import dataclasses

    import numpy as np

    from gradfolio.data import make_windows, to_returns

    if (high is None) != (low is None):
        raise DataError("price_windows: give both high and low prices, or neither (close only).")
    frames = [close] + ([high, low] if high is not None else [])
    for name, frame in zip(("close", "high", "low"), frames):
        if frame.shape != close.shape or not frame.index.equals(close.index) or list(frame.columns) != list(close.columns):
            raise DataError(f"price_windows: {name} must have the index and columns of close.")
        if not bool(np.isfinite(frame.to_numpy(dtype=float)).all()) or not bool((frame.to_numpy(dtype=float) > 0).all()):
            raise DataError(f"price_windows: {name} holds missing or non-positive prices; clean the table first.")
    returns = to_returns(close, "simple")
    base = make_windows(returns, lookback, gap=gap, horizon=horizon, step=horizon, kind="simple",
                        dtype=torch.float64)
    rows = close.index.get_indexer(base.dates)  # row of each decision date in the price tables
    stack = np.stack([f.to_numpy(dtype=np.float64) for f in frames])  # (C, T + 1, N)
    X = np.stack([stack[:, r - lookback + 1 : r + 1] for r in rows])  # (n, C, lookback, N)
    return dataclasses.replace(base, X=torch.as_tensor(X))



NETWORKS.register("eiie", EIIE)  # type: ignore[arg-type]  # a HoldingStrategy: forward(X, before, previous)

__all__ = [
    "EIIE",
    "approx_commission_factor",
    "close_relatives",
    "commission_factor",
    "drift",
    "price_windows",
    "with_cash",
]
