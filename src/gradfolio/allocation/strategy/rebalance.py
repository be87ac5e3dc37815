"""From target weights to trades: current holdings, trades, turnover and estimated cost.

Weights are fractions of the portfolio's wealth ``V`` (cash included: ``1 - sum_i w_i`` is cash).
Going from the current weights ``c`` to the target ``w`` trades ``w_i - c_i`` of ``V`` in asset
``i`` (``(w_i - c_i) V`` in currency), the turnover is ``sum_i |w_i - c_i|`` and the estimated
cost is ``sum_i rate_i |w_i - c_i|`` of ``V`` (:class:`gradfolio.costs.ProportionalCost`, the
model the backtest charges), i.e. ``cost * V`` in currency.

Holdings file (CSV, one row per ticker, header row), one of three layouts:

- ``ticker,weight``: fractions of wealth (e.g. ``0.25``); the rest is cash;
- ``ticker,value``: currency held; the wealth ``V`` is ``--capital`` or else the sum of values;
- ``ticker,shares``: shares held, valued at the last price on or before the decision date.

A row ``CASH`` (any case) holds cash: a weight, a currency amount (``value`` and ``shares``).
Tickers the strategy does not hold are refused (sell them separately); strategy tickers missing
from the file are held at zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gradfolio.costs import ProportionalCost
from gradfolio.errors import ConfigError

CASH = "CASH"
LAYOUTS = ("weight", "value", "shares")


@dataclass(frozen=True)
class Holdings:
    """Current holdings as weights of wealth (``weights`` indexed by ticker) and the wealth if known."""

    weights: pd.Series
    capital: float | None


def read_holdings(
    path: str | os.PathLike[str],
    assets: tuple[str, ...],
    capital: float | None = None,
    last_prices: pd.Series | None = None,
) -> Holdings:
    """Read a holdings CSV (see the module doc) into weights over ``assets``.

    Parameters
    ----------
    path
        The CSV file.
    assets
        The strategy's tickers (the weights come back in this order).
    capital
        Wealth ``V`` in currency (``--capital``); with ``value``/``shares`` it defaults to the
        sum of the holdings (cash row included) and may not be below it.
    last_prices
        Price per ticker at the decision date (needed by the ``shares`` layout).

    Raises
    ------
    ConfigError
        Unreadable file, no ``ticker`` column, none or several of ``weight``/``value``/``shares``,
        repeated or unknown tickers, non-numeric or non-finite numbers, a capital below the
        holdings, or shares without prices (each with the file, row and fix).
    """
    p = Path(path)
    where = str(p)
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{where}: cannot read the holdings CSV ({exc}); write 'ticker,weight' (or value/shares) rows.") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    layouts = [c for c in LAYOUTS if c in frame.columns]
    if "ticker" not in frame.columns or len(layouts) != 1:
        raise ConfigError(
            f"{where}: columns {list(frame.columns)}; a holdings file has a 'ticker' column and exactly one of "
            "'weight' (fraction of wealth), 'value' (currency) or 'shares'."
        )
    layout = layouts[0]
    tickers = [t.strip() for t in frame["ticker"]]
    numbers = []
    for row, (ticker, text) in enumerate(zip(tickers, frame[layout], strict=True), start=2):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or not ticker:
            raise ConfigError(f"{where}: row {row}: ticker {ticker!r}, {layout} {text!r} is not a finite number with a ticker; fix the row.")
        numbers.append(value)
    seen: set[str] = set()
    for row, ticker in enumerate(tickers, start=2):
        key = CASH if ticker.upper() == CASH else ticker
        if key in seen:
            raise ConfigError(f"{where}: row {row}: ticker {ticker!r} appears twice; keep one row per ticker.")
        seen.add(key)
    unknown = [t for t in tickers if t.upper() != CASH and t not in assets]
    if unknown:
        raise ConfigError(
            f"{where}: ticker(s) {unknown} are not among the strategy's assets {list(assets)}; sell them separately "
            f"or remove their rows (a '{CASH}' row holds cash)."
        )
    held = {t: v for t, v in zip(tickers, numbers, strict=True) if t.upper() != CASH}
    cash = sum(v for t, v in zip(tickers, numbers, strict=True) if t.upper() == CASH)
    if layout == "weight":
        weights = pd.Series([held.get(a, 0.0) for a in assets], index=pd.Index(assets, name="ticker"), dtype=np.float64)
        return Holdings(weights=weights, capital=capital)
    if layout == "shares":
        if last_prices is None:
            raise ConfigError(f"{where}: holdings in shares need prices; give price data (not returns).")
        values = {t: n * float(last_prices[t]) for t, n in held.items()}
    else:
        values = held
    total = sum(values.values()) + cash
    wealth = total if capital is None else capital
    if not wealth > 0:
        raise ConfigError(f"{where}: holdings worth {total:g} in total; give --capital (the wealth) above zero.")
    if capital is not None and capital < total - 1e-9 * abs(total):
        raise ConfigError(
            f"--capital {capital:g} is below the holdings in {where} ({total:g}); give the whole wealth, cash included."
        )
    weights = pd.Series([values.get(a, 0.0) / wealth for a in assets], index=pd.Index(assets, name="ticker"), dtype=np.float64)
    return Holdings(weights=weights, capital=float(wealth))


@dataclass(frozen=True)
class RebalancePlan:
    """The trades from the current weights to the target.

    Attributes
    ----------
    table
        Indexed by ticker: ``current``, ``target``, ``trade`` (weights of wealth) and, with a
        capital, ``current_value``, ``target_value``, ``trade_value`` (currency).
    turnover
        ``sum_i |target_i - current_i|``.
    cost
        Estimated cost as a fraction of wealth (``sum_i rate_i |trade_i|``).
    capital
        Wealth in currency (``None``: weights only).
    cost_value
        ``cost * capital`` (``None`` without a capital).
    cash_before, cash_after
        ``1 - sum current`` and ``1 - sum target``.
    """

    table: pd.DataFrame
    turnover: float
    cost: float
    capital: float | None
    cost_value: float | None
    cash_before: float
    cash_after: float


def rebalance_plan(
    target: pd.Series, current: pd.Series | None = None, cost: ProportionalCost | None = None, capital: float | None = None
) -> RebalancePlan:
    """Trades, turnover and estimated cost of moving from ``current`` to ``target`` (see the module doc).

    Parameters
    ----------
    target
        Target weights ``(N,)`` indexed by ticker.
    current
        Current weights ``(N,)`` over the same tickers (any order); ``None``: all cash.
    cost
        The cost model (default: none).
    capital
        Wealth in currency for the trades in currency (``> 0``).
    """
    if capital is not None and not (np.isfinite(capital) and capital > 0):
        raise ConfigError(f"capital={capital!r}: give the portfolio's wealth in currency, a positive number.")
    now = pd.Series(0.0, index=target.index) if current is None else current.reindex(target.index)
    if now.isna().any():
        raise ConfigError(f"current weights: no weight for {list(now.index[now.isna()])}; give one per target ticker.")
    table = pd.DataFrame({"current": now.to_numpy(np.float64), "target": target.to_numpy(np.float64)}, index=target.index)
    table["trade"] = table["target"] - table["current"]
    model = cost if cost is not None else ProportionalCost(0.0)
    before, after = (torch.tensor(table[c].to_numpy(np.float64, copy=True)) for c in ("current", "target"))
    fraction = float(model(before, after))
    if capital is not None:
        for col in ("current", "target", "trade"):
            table[f"{col}_value"] = table[col] * capital
    return RebalancePlan(
        table=table,
        turnover=float(table["trade"].abs().sum()),
        cost=fraction,
        capital=capital,
        cost_value=None if capital is None else fraction * capital,
        cash_before=float(1.0 - table["current"].sum()),
        cash_after=float(1.0 - table["target"].sum()),
    )


__all__ = ["CASH", "Holdings", "read_holdings", "RebalancePlan", "rebalance_plan"]
