"""A saved strategy on disk: ``strategy.json`` (what it is) + ``weights.pt`` (its tensors).

A *bundle* is a folder that describes one strategy completely, so that it can be rebuilt and
asked for weights without the config or the code that trained it::

    <bundle>/strategy.json   format, versions, kind ("network" | "classical" | "agent"), registry name and
                             parameters, asset names in order, return kind, lookback, gap, dtype,
                             constraints, data fingerprint, sha256 of weights.pt
    <bundle>/weights.pt      {"state_dict": {name: tensor}} written by gradfolio.checkpoint.save_state

A bundle is data, never code: ``strategy.json`` is read with :func:`json.loads` and validated
field by field (:class:`StrategySpec`, unknown keys refused), the model is rebuilt from a
registry name (:func:`gradfolio.allocation.make_network` or a classical portfolio's ``name``), and
``weights.pt`` is read with ``torch.load(weights_only=True)`` after its sha256 is checked, so a
crafted file cannot run code. A bundle is written into a temporary folder beside the target and
renamed into place: a kill leaves the old bundle or the new one.

The data fingerprint (:func:`returns_fingerprint`) is the sha256 of the simple-returns table the
strategy was trained on (the whole table a backtest run loaded: every training and refit window
was cut from it): its dates as int64 nanoseconds, its asset names (UTF-8, separated by ``\\x1f``)
and its values as little-endian float64, in that order, with the number of rows and the first
and last date.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from gradfolio import __version__
from gradfolio.checkpoint import load_state, save_state
from gradfolio.errors import ConfigError
from gradfolio.io import _umask, atomic_write_text

FORMAT = "gradfolio-strategy"
FORMAT_VERSION = 1
SPEC_FILE = "strategy.json"
WEIGHTS_FILE = "weights.pt"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataFingerprint(_Strict):
    """What the strategy was trained on (see :func:`returns_fingerprint`)."""

    algorithm: Literal["sha256"] = "sha256"
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: StrictInt = Field(ge=0)
    first: StrictStr | None
    last: StrictStr | None
    covers: StrictStr = "dates (int64 ns), asset names (utf-8, \\x1f-separated), values (float64 little-endian)"


class StrategySpec(_Strict):
    """The validated content of ``strategy.json`` (every field is checked on load).

    Attributes
    ----------
    format, format_version
        ``"gradfolio-strategy"`` and the layout version (this gradfolio reads version 1).
    gradfolio_version, torch_version
        Versions that wrote the bundle.
    kind
        ``"network"`` (rebuilt with ``make_network(name, ...)``), ``"classical"`` (the classical
        portfolio whose ``name`` is ``name``) or ``"agent"`` (a reinforcement-learning agent whose
        algorithm is ``name``, rebuilt by :func:`gradfolio.allocation.rl.policy.build_saved_agent`
        from ``params``: action map, scales and the policy's architecture).
    name, label, params
        Registry name, the label in the run (``net_dense``, ``hrp``) and the keyword parameters.
    n_channels, assets, returns_kind, lookback, gap
        Input ``X (B, n_channels, lookback, len(assets))`` of ``returns_kind`` returns, the
        assets in this order; the trade happens ``gap`` days after the decision date.
    dtype
        ``"float32"`` or ``"float64"``: the dtype the model computes in.
    constraints
        Portfolio constraints the strategy was built with (JSON), if any.
    rebalance_every, cost_bps
        The walk-forward rules of the run that saved it (``None`` when saved outside a run).
    data_fingerprint
        What it was trained on (``None`` when not known).
    weights_sha256
        sha256 of ``weights.pt``.
    """

    format: Literal["gradfolio-strategy"]
    format_version: StrictInt
    gradfolio_version: StrictStr = Field(pattern=r"^\d+\.\d+\.\d+")
    torch_version: StrictStr
    kind: Literal["network", "classical", "agent"]
    name: StrictStr
    label: StrictStr
    params: dict[StrictStr, Any]
    n_channels: StrictInt = Field(1, ge=1)
    assets: list[StrictStr] = Field(min_length=1)
    returns_kind: Literal["simple", "log"]
    lookback: StrictInt = Field(ge=1)
    gap: StrictInt = Field(ge=0)
    dtype: Literal["float32", "float64"]
    constraints: dict[StrictStr, Any] | None = None
    rebalance_every: StrictInt | None = Field(None, ge=1)
    cost_bps: float | None = Field(None, ge=0)
    data_fingerprint: DataFingerprint | None = None
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def returns_fingerprint(returns: pd.DataFrame) -> DataFingerprint:
    """sha256 of a returns table: dates (int64 ns), asset names, float64 values (see the module doc).

    Parameters
    ----------
    returns
        Table ``(T, N)`` indexed by dates.
    """
    digest = hashlib.sha256()
    index = pd.DatetimeIndex(returns.index)
    digest.update(np.ascontiguousarray(index.asi8, dtype="<i8").tobytes())
    digest.update("\x1f".join(str(c) for c in returns.columns).encode("utf-8"))
    digest.update(np.ascontiguousarray(returns.to_numpy(dtype=np.float64), dtype="<f8").tobytes())
    return DataFingerprint(
        digest=digest.hexdigest(),
        rows=len(returns),
        first=str(index[0].date()) if len(index) else None,
        last=str(index[-1].date()) if len(index) else None,
    )


def json_params(params: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``params`` as plain JSON data (what a bundle can hold), or a ConfigError naming the bad value."""
    try:
        return json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{owner}: parameters {' '.join(repr(dict(params)).split())[:200]} cannot be saved in a strategy bundle "
            f"({exc}); use numbers, "
            "strings, booleans, lists and mappings only (a registry name instead of an object)."
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_strategy(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    kind: Literal["network", "classical", "agent"],
    name: str,
    params: Mapping[str, Any],
    assets: Sequence[str],
    returns_kind: Literal["simple", "log"],
    lookback: int,
    gap: int = 0,
    dtype: torch.dtype | str = torch.float32,
    data_fingerprint: DataFingerprint | pd.DataFrame | None = None,
    constraints: Mapping[str, Any] | None = None,
    label: str | None = None,
    n_channels: int = 1,
    rebalance_every: int | None = None,
    cost_bps: float | None = None,
) -> Path:
    """Write ``model`` as a strategy bundle into ``folder`` (replaced atomically if it exists).

    Parameters
    ----------
    folder
        The bundle folder (e.g. ``<run>/strategies/net_dense``).
    model
        The network or classical portfolio ``X (B, C, L, N) -> w (B, N)``; its ``state_dict``
        (moved to the CPU) is saved.
    kind, name, params
        How to rebuild it: ``make_network(name, n_assets, lookback, n_channels, **params)`` for a
        network, ``portfolio_class_named(name)(**params)`` for a classical portfolio, the agent
        ``name`` from ``params`` (:func:`gradfolio.allocation.rl.policy.save_agent` writes those).
        ``params`` must be JSON data.
    assets, returns_kind, lookback, gap, n_channels
        The input the strategy expects (assets in the order of the last axis of ``X``).
    dtype
        The dtype it computes in (``torch.float32``/``"float32"`` or float64).
    data_fingerprint
        A :class:`DataFingerprint`, or the training returns table to fingerprint.
    constraints, label, rebalance_every, cost_bps
        Optional metadata (constraints as JSON, the run's label, walk-forward rules).

    Returns
    -------
    Path of the bundle folder.

    Raises
    ------
    ConfigError
        Parameters that are not JSON data, an unknown kind or dtype, or metadata out of range.
    """
    target = Path(folder)
    dtype_name = str(dtype).removeprefix("torch.")
    if isinstance(data_fingerprint, pd.DataFrame):
        data_fingerprint = returns_fingerprint(data_fingerprint)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gradfolio_version": __version__,
        "torch_version": torch.__version__,
        "kind": kind,
        "name": name,
        "label": label or name,
        "params": json_params(params, f"strategy {label or name!r}"),
        "n_channels": n_channels,
        "assets": [str(a) for a in assets],
        "returns_kind": returns_kind,
        "lookback": lookback,
        "gap": gap,
        "dtype": dtype_name,
        "constraints": None if constraints is None else json_params(constraints, f"strategy {name!r} constraints"),
        "rebalance_every": rebalance_every,
        "cost_bps": None if cost_bps is None else float(cost_bps),
        "data_fingerprint": None if data_fingerprint is None else data_fingerprint.model_dump(),
        "weights_sha256": "0" * 64,
    }
    _validate(meta, target / SPEC_FILE)  # refuse to write what could not be read back
    if len(set(meta["assets"])) != len(meta["assets"]):
        raise ConfigError(f"strategy {meta['label']!r}: asset names {meta['assets']} repeat; give unique names.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        save_state(tmp / WEIGHTS_FILE, {"state_dict": state})
        meta["weights_sha256"] = _sha256(tmp / WEIGHTS_FILE)
        atomic_write_text(tmp / SPEC_FILE, json.dumps(meta, indent=2) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "bundle")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _field_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"field '{where}': {err['msg']} (got {err.get('input')!r:.80})")
    return "; ".join(parts)


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in re.match(r"^(\d+)\.(\d+)\.(\d+)", text).groups())  # type: ignore[union-attr]
    return major, minor, patch


def _validate(meta: Any, where: Path) -> StrategySpec:
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: not a strategy description (a JSON {type(meta).__name__}); use a bundle gradfolio wrote.")
    if meta.get("format") != FORMAT:
        raise ConfigError(
            f"{where}: format {meta.get('format')!r} is not {FORMAT!r}; this is not a gradfolio strategy bundle."
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"{where}: bundle format_version {version!r} is unknown to gradfolio {__version__} (it reads "
            f"format_version {FORMAT_VERSION}); load it with the gradfolio version that wrote it "
            f"({meta.get('gradfolio_version', 'unknown')}) or save the strategy again."
        )
    try:
        return StrategySpec.model_validate(meta)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_field_errors(exc)}; the file was edited or damaged: save the strategy again.") from None


def read_spec(folder: str | os.PathLike[str]) -> StrategySpec:
    """Read and check ``<folder>/strategy.json`` (format, versions, every field).

    A bundle written by a newer gradfolio of the same major version loads with a warning; another
    major version, or an unknown ``format_version``, is refused.

    Raises
    ------
    ConfigError
        Missing or unreadable file, unknown format or version, a field of the wrong type or out
        of range, an unknown key, or repeated asset names (each named with the file).
    """
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no strategy description; point to a run folder or a strategy bundle gradfolio wrote.")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as JSON ({exc}); the file is damaged: save the strategy again.") from None
    spec = _validate(meta, path)
    saved, now = _version(spec.gradfolio_version), _version(__version__)
    if saved[0] != now[0]:
        raise ConfigError(
            f"{path}: written by gradfolio {spec.gradfolio_version}, this is gradfolio {__version__} (another major "
            f"version); load it with gradfolio {saved[0]}.x or save the strategy again."
        )
    if saved > now:
        warnings.warn(
            f"{path}: written by gradfolio {spec.gradfolio_version}, newer than this gradfolio {__version__}; "
            "loading it (same format), but upgrade gradfolio if its weights look wrong.",
            UserWarning,
            stacklevel=3,
        )
    if len(set(spec.assets)) != len(spec.assets):
        repeated = sorted({a for a in spec.assets if spec.assets.count(a) > 1})
        raise ConfigError(f"{path}: field 'assets' repeats {repeated}; the file was edited: save the strategy again.")
    return spec


def read_state(folder: str | os.PathLike[str], spec: StrategySpec) -> dict[str, torch.Tensor]:
    """The state dict of ``<folder>/weights.pt``, checked against ``spec.weights_sha256`` and read safely.

    Raises
    ------
    ConfigError
        A missing file, a checksum that differs from ``strategy.json``, a file that is not a
        state dict of tensors, or one that asks to load anything but plain data (refused unread
        by ``torch.load(weights_only=True)``: it cannot run code).
    """
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the bundle is incomplete: save the strategy again.")
    found = _sha256(path)
    if found != spec.weights_sha256:
        raise ConfigError(
            f"{path}: sha256 {found[:12]}... differs from strategy.json's weights_sha256 "
            f"{spec.weights_sha256[:12]}...; the weights were replaced or damaged: save the strategy again."
        )
    state = load_state(path, "cpu", owner=f"strategy {spec.label!r}")
    tensors = state.get("state_dict")
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        raise ConfigError(f"{path}: holds no state dict of tensors (key 'state_dict'); save the strategy again.")
    return tensors


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DTYPES",
    "DataFingerprint",
    "StrategySpec",
    "returns_fingerprint",
    "json_params",
    "save_strategy",
    "read_spec",
    "read_state",
]
