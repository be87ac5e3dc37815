"""A strategy loaded from a bundle: ``load_strategy(run_or_bundle).predict(prices) -> weights``.

:func:`load_strategy` accepts a bundle folder (one that holds ``strategy.json``) or a run folder
of ``gradfolio backtest`` / ``gradfolio demo`` (whose ``strategies/<label>/`` folders are
bundles: the network's and one per classical benchmark). :meth:`SavedStrategy.predict` answers
"what do I hold next?": the target weights of the next rebalance, decided on the last
``lookback`` rows of returns up to ``as_of`` exactly as the walk-forward backtest decides (the
window is cut from float64 returns, ``log1p`` for log returns, then cast to the strategy's dtype).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gradfolio.allocation.classical import PORTFOLIOS
from gradfolio.allocation.networks import make_network
from gradfolio.allocation.strategy.bundle import (
    DTYPES,
    SPEC_FILE,
    StrategySpec,
    read_spec,
    read_state,
)
from gradfolio.data.windows import make_windows, to_returns
from gradfolio.errors import ConfigError, DataError

STRATEGIES_DIR = "strategies"


def _build(spec: StrategySpec, where: Path) -> torch.nn.Module:
    """The model named by ``spec`` with freshly initialised parameters (its weights are loaded next)."""
    if spec.kind == "agent":  # imports Stable-Baselines3 (the rl extra) only here
        try:
            from gradfolio.allocation.rl.policy import build_saved_agent
        except ImportError:
            raise ConfigError(
                f"{where / SPEC_FILE}: strategy {spec.label!r} is a reinforcement-learning agent; it needs "
                "Stable-Baselines3 and Gymnasium: pip install 'gradfolio[rl]'."
            ) from None
        return build_saved_agent(spec.name, spec.params, len(spec.assets), spec.lookback, str(where / SPEC_FILE))
    try:
        if spec.kind == "network":
            return make_network(
                spec.name, n_assets=len(spec.assets), lookback=spec.lookback, n_channels=spec.n_channels,
                where="params", **spec.params,
            )
        PORTFOLIOS.entry(spec.name, where="name")
        return PORTFOLIOS.build(spec.name, where="params", **spec.params)
    except ConfigError as exc:
        raise ConfigError(f"{where / SPEC_FILE}: {exc} The file was edited or written by another version.") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where / SPEC_FILE}: strategy {spec.name!r} does not take params {spec.params!r} ({exc}); the file was "
            "edited or written by another version."
        ) from None


class SavedStrategy:
    """A strategy rebuilt from a bundle: a callable ``X (B, C, L, N) -> w (B, N)`` with its metadata.

    Attributes
    ----------
    spec
        The validated ``strategy.json`` (:class:`~gradfolio.allocation.strategy.bundle.StrategySpec`).
    path
        The bundle folder.
    model
        The network or classical portfolio, in eval mode, on the CPU, in ``dtype``.
    assets
        Asset names in the order of the weights (a tuple).
    lookback, gap
        Rows seen per decision; days between the decision date and the trade.
    returns_kind
        ``"simple"`` or ``"log"``: the kind of returns the model sees.
    dtype
        The torch dtype it computes in.
    kind, name, label
        ``"network"`` or ``"classical"``, the registry name, the label in its run.
    """

    def __init__(self, spec: StrategySpec, model: torch.nn.Module, path: Path) -> None:
        self.spec = spec
        self.path = path
        self.model = model
        self.assets: tuple[str, ...] = tuple(spec.assets)
        self.lookback = spec.lookback
        self.gap = spec.gap
        self.returns_kind = spec.returns_kind
        self.dtype: torch.dtype = DTYPES[spec.dtype]
        self.kind = spec.kind
        self.name = spec.name
        self.label = spec.label

    def __repr__(self) -> str:
        return (
            f"SavedStrategy(label={self.label!r}, kind={self.kind!r}, name={self.name!r}, assets={len(self.assets)}, "
            f"lookback={self.lookback}, gap={self.gap}, returns_kind={self.returns_kind!r}, dtype={self.spec.dtype})"
        )

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """Weights ``X (B, C, lookback, N) -> w (B, N)``; ``X`` is cast to the strategy's dtype."""
        with torch.no_grad():
            return self.model(X.to(self.dtype))

    def select(self, data: pd.DataFrame, align: bool = False, source: str = "data") -> pd.DataFrame:
        """The columns of ``data`` in the strategy's asset order.

        Raises
        ------
        ConfigError
            Tickers of the strategy missing from ``data`` (always), or tickers of ``data`` the
            strategy was not trained on (unless ``align``: then they are dropped with a warning).
        """
        columns = [str(c) for c in data.columns]
        missing = [a for a in self.assets if a not in columns]
        extra = [c for c in columns if c not in self.assets]
        if missing:
            raise ConfigError(
                f"{source}: missing ticker(s) {missing} that strategy '{self.label}' was trained on"
                f"{f' (and extra {extra})' if extra else ''}; give prices of all of {list(self.assets)}."
            )
        if extra and not align:
            raise ConfigError(
                f"{source}: extra ticker(s) {extra} that strategy '{self.label}' was not trained on; drop those "
                "columns, or pass align=True (CLI: --align) to drop them with a warning."
            )
        if extra:
            warnings.warn(f"{source}: dropped ticker(s) {extra} that strategy '{self.label}' was not trained on.", UserWarning, stacklevel=3)
        return data.set_axis(columns, axis=1)[list(self.assets)]

    def window_returns(
        self, data: pd.DataFrame, as_of: str | pd.Timestamp | None = None, prices: bool | None = None,
        align: bool = False, source: str = "data",
    ) -> pd.DataFrame:
        """The ``lookback`` rows of simple returns the next decision sees, shape ``(lookback, N)``.

        Parameters
        ----------
        data
            Prices (``prices=True``) or simple returns (``prices=False``), one column per ticker
            (any order; extra tickers need ``align``), indexed by date. ``None`` detects: prices
            when every value is positive and the median is above 0.5, returns when some value is
            zero or negative; anything else asks to say which.
        as_of
            The decision date: the last row on or before it is the last row seen (default: the
            last row).
        """
        if not isinstance(data, pd.DataFrame) or not isinstance(data.index, pd.DatetimeIndex):
            raise DataError(
                f"{source}: give a DataFrame indexed by dates (a DatetimeIndex), e.g. gradfolio.data.load_prices(path)."
            )
        if not data.index.is_monotonic_increasing or data.index.has_duplicates:
            raise DataError(f"{source}: dates must be strictly increasing; sort the rows and keep one per date.")
        table = self.select(data, align, source)
        try:
            table = table.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source}: values are not numbers ({exc}); give numeric prices or returns.") from None
        if as_of is not None:
            try:
                stamp = pd.Timestamp(as_of)
            except (TypeError, ValueError):
                raise ConfigError(f"as_of={as_of!r} is not a date; write it as YYYY-MM-DD.") from None
            if stamp is pd.NaT:
                raise ConfigError(f"as_of={as_of!r} is not a date; write it as YYYY-MM-DD.")
            table = table.loc[:stamp]
            if table.empty:
                raise DataError(
                    f"{source}: no row on or before as_of={stamp.date()} (the data start on {data.index[0].date()}); "
                    "pick a later date."
                )
        if prices is None:
            values = table.to_numpy()
            finite = values[np.isfinite(values)]
            if finite.size and (finite <= 0).any():
                prices = False
            elif finite.size and np.median(finite) > 0.5:
                prices = True
            else:
                raise ConfigError(
                    f"{source}: cannot tell prices from returns (all values positive, median {np.median(finite) if finite.size else float('nan'):.3g}); "
                    "say which with prices=True or prices=False."
                )
        need = self.lookback + 1 if prices else self.lookback
        if len(table) < need:
            what = f"{need} prices (lookback {self.lookback} + 1)" if prices else f"{need} returns (lookback)"
            raise DataError(
                f"{source}: {len(table)} rows up to {table.index[-1].date()}, but strategy '{self.label}' needs {what}; "
                "give a longer history."
            )
        table = table.iloc[-need:]
        values = table.to_numpy()
        bad = ~np.isfinite(values) | ((values <= 0) if prices else (values <= -1))
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            kind = "a finite positive price" if prices else "a finite simple return above -1"
            raise DataError(
                f"{source}: column '{table.columns[c]}', {table.index[r].date()}: {float(values[r, c])!r} is not {kind}; "
                "fill or fix the value (gradfolio.data.load_prices forward-fills short gaps)."
            )
        return to_returns(table, "simple") if prices else table

    def predict(
        self, data: pd.DataFrame, as_of: str | pd.Timestamp | None = None, prices: bool | None = None,
        align: bool = False, source: str = "data", holdings: pd.Series | None = None,
    ) -> pd.Series:
        """Target weights of the next rebalance, decided on the data up to ``as_of``.

        The window is the last ``lookback`` rows of simple returns up to ``as_of`` (from
        ``lookback + 1`` prices), made with :func:`gradfolio.data.make_windows` (``horizon=0``) in
        float64 and cast to the strategy's dtype, as in the walk-forward backtest; the trade is
        meant for the close ``gap`` days after the decision date.

        Parameters
        ----------
        data
            Prices or simple returns ``(T, N')`` indexed by date; columns in any order (see
            :meth:`window_returns` for ``prices`` and ``align``). Any dtype.
        as_of
            Decision date (default: the last row).
        prices, align, source
            See :meth:`window_returns`; ``source`` names the data in messages.
        holdings
            Current weights of wealth by ticker (cash is ``1 - sum``; missing tickers hold 0), for
            a strategy that sees what it holds (``needs_holdings``, e.g. EIIE): given to it as both
            the drifted weights ``before`` and the weights after the last trade ``previous``
            (required there, ignored by the others).

        Returns
        -------
        pd.Series of length ``N`` (float64), indexed by the strategy's assets in its order, named
        ``"weight"``; ``attrs`` holds ``as_of`` (the decision date used), ``strategy`` (its label)
        and ``gap``. ``1 - sum`` is cash.

        Raises
        ------
        ConfigError / DataError
            Missing or extra tickers, a bad ``as_of``, too few rows, a non-finite value.
        InfeasibleError
            The portfolio has no solution on this window (e.g. maximum Sharpe when no asset has a
            positive mean).
        """
        returns = self.window_returns(data, as_of, prices, align, source)
        windows = make_windows(
            returns, self.lookback, gap=0, horizon=0, kind=self.returns_kind, dtype=torch.float64, source=source
        )
        X = windows.X[-1:].to(self.dtype)
        held = None
        if getattr(self.model, "needs_holdings", False) is True:
            if holdings is None:
                raise ConfigError(
                    f"strategy '{self.label}' decides from the portfolio it holds (its previous weights); give the "
                    "current holdings (`gradfolio predict --holdings FILE`, or predict(..., holdings=weights))."
                )
            values = holdings.reindex([str(a) for a in self.assets]).fillna(0.0).to_numpy(dtype="float64", copy=True)
            held = torch.as_tensor(values, dtype=self.dtype)[None]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                w = self.model(X) if held is None else self.model(X, held, held)
        finally:
            self.model.train(was_training)
        if not isinstance(w, torch.Tensor) or w.shape != (1, len(self.assets)) or not bool(torch.isfinite(w).all()):
            raise DataError(
                f"strategy '{self.label}': no finite weights for the window ending {windows.dates[-1].date()}; check "
                f"{source} around that date."
            )
        out = pd.Series(w[0].to(torch.float64).cpu().numpy(), index=pd.Index(self.assets, name="ticker"), name="weight")
        out.attrs.update({"as_of": windows.dates[-1], "strategy": self.label, "gap": self.gap})
        return out


def strategy_names(run_dir: str | os.PathLike[str]) -> list[str]:
    """Labels of the bundles in ``<run_dir>/strategies/`` (sorted)."""
    folder = Path(run_dir) / STRATEGIES_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / SPEC_FILE).is_file() and not p.name.startswith("."))


def _bundle_folder(path: Path, name: str | None) -> Path:
    if (path / SPEC_FILE).is_file():
        if name is not None and name != path.name:
            raise ConfigError(f"{path}: is the bundle of one strategy; drop name={name!r} or point to the run folder.")
        return path
    names = strategy_names(path)
    if not names:
        raise ConfigError(
            f"{path}: neither a strategy bundle ({SPEC_FILE}) nor a run folder with {STRATEGIES_DIR}/; give the folder "
            "of a `gradfolio backtest` or `gradfolio demo` run (runs written before strategies were saved must be run again)."
        )
    if name is not None:
        if name not in names:
            raise ConfigError(f"{path}: no strategy {name!r}; the run saved {names}.")
        return path / STRATEGIES_DIR / name
    networks = [n for n in names if read_spec(path / STRATEGIES_DIR / n).kind == "network"]
    if len(networks) == 1:
        return path / STRATEGIES_DIR / networks[0]
    if len(names) == 1:
        return path / STRATEGIES_DIR / names[0]
    raise ConfigError(f"{path}: holds strategies {names}; pick one with name=... (CLI: --strategy NAME).")


def load_strategy(
    run_or_bundle: str | os.PathLike[str], name: str | None = None, device: str | torch.device = "cpu"
) -> SavedStrategy:
    """Load a saved strategy from a bundle folder or a run folder.

    Parameters
    ----------
    run_or_bundle
        A bundle (a folder with ``strategy.json``) or a run folder with ``strategies/``.
    name
        In a run folder, the strategy's label (``net_dense``, ``hrp``...); default: the network,
        or the only strategy.
    device
        Where the model computes.

    Returns
    -------
    SavedStrategy

    Raises
    ------
    ConfigError
        No bundle there, an unknown ``name``, an unknown format or another major gradfolio
        version (both named), a damaged or edited ``strategy.json`` (the field is named), an
        unknown network or portfolio name, weights whose checksum or shapes differ, or a
        ``weights.pt`` that asks to load code (refused unread).
    """
    folder = _bundle_folder(Path(run_or_bundle), name)
    spec = read_spec(folder)
    state = read_state(folder, spec)
    model = _build(spec, folder)
    if spec.kind != "agent":  # an agent's policy computes in float32 as trained; its action map in float64
        model = model.to(dtype=DTYPES[spec.dtype])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"{folder}: the weights do not fit the {spec.kind} {spec.name!r} described by {SPEC_FILE} "
            f"({' '.join(str(exc).split())[:300]}); the bundle was edited: save the strategy again."
        ) from None
    model.to(device=device).eval()
    return SavedStrategy(spec, model, folder)


__all__ = ["SavedStrategy", "load_strategy", "strategy_names", "STRATEGIES_DIR"]
