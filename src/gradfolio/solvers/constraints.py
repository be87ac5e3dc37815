"""Declarative portfolio constraints compiled to the QP standard form ``A x = b, G x <= h``.

:class:`PortfolioConstraints` names the constraints a practitioner writes down (budget,
long-only, per-asset bounds, maximum weight, group/sector exposure, leverage, turnover);
:meth:`PortfolioConstraints.compile` turns them into dense matrices for ``N`` assets. The
leverage constraint ``sum |w| <= L`` and the turnover constraint ``sum |w - w_prev| <= T``
need auxiliary variables ``t >= |w|`` and ``u >= |w - w_prev|`` (``N`` each), so the compiled
variable is ``x = [w, t, u]`` and users only see ``w = x[:, :N]``. The turnover rows depend on
the previous weights: ``h = h0 + H_prev @ w_prev`` per batch element.

A specification that no portfolio satisfies raises :class:`~gradfolio.errors.InfeasibleError`
when it is compiled, with the reason (a named rule, or a small LP that proves it).

Assets may be named by ticker: ``Group(["AAPL", "MSFT"], upper=0.3, name="tech")`` and per-ticker
bounds ``upper={"AAPL": 0.1}`` are turned into column indices and per-asset vectors by
:meth:`PortfolioConstraints.resolve` against the data's columns (an unknown ticker raises
:class:`~gradfolio.errors.DataError` naming it); a spec by ticker compiles to exactly the same
matrices as the same spec by index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from gradfolio.errors import ConfigError, DataError, InfeasibleError

#: Per-asset bound: a scalar, one value per asset, or ``{ticker: value}`` (resolved by :meth:`PortfolioConstraints.resolve`).
Bound = float | Sequence[float | None] | Mapping[str, float] | None


@dataclass(frozen=True)
class Group:
    """Exposure limits ``lower <= sum_{i in assets} w_i <= upper`` for a group (sector) of assets.

    Parameters
    ----------
    assets
        Column indices of the group's assets, or their tickers (column names; turned into indices
        by :meth:`PortfolioConstraints.resolve`).
    lower, upper
        Bounds on the group's net weight (``None`` for none). The thesis' example ``-z <= sum <= z``
        is ``Group(assets, -z, z)``.
    name
        Used in error messages.
    """

    assets: Sequence[int | str]
    lower: float | None = None
    upper: float | None = None
    name: str = "group"


def _index(ticker: int | str, assets: Sequence[str], where: str) -> int:
    """Column index of ``ticker`` in ``assets`` (an int is kept); DataError naming an unknown one."""
    if isinstance(ticker, (int, np.integer)) and not isinstance(ticker, bool):
        return int(ticker)
    try:
        return list(assets).index(ticker)
    except ValueError:
        raise DataError(
            f"PortfolioConstraints: {where} names ticker {ticker!r}, which is not a column of the data; "
            f"available: {list(assets)}. Fix the ticker or add it to the data."
        ) from None


def _as_vector(value: Bound, n: int, name: str, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default)
    if isinstance(value, Mapping):
        raise ConfigError(
            f"PortfolioConstraints.{name} is given by ticker ({sorted(value)[:5]}...); call "
            "resolve(assets) with the data's columns before compiling."
        )
    if np.ndim(value) == 0:
        arr = np.broadcast_to(np.asarray(value, dtype=float), (n,))
    else:  # a None entry: no bound on that asset
        arr = np.asarray([default if v is None else v for v in value], float)
    if arr.shape != (n,):
        raise ConfigError(f"PortfolioConstraints.{name} has {arr.size} entries for {n} assets; give one per asset or a scalar.")
    if np.isnan(arr).any():
        raise ConfigError(f"PortfolioConstraints.{name} contains NaN; use -inf/inf for no bound.")
    return arr.astype(float)


@dataclass(frozen=True)
class CompiledConstraints:
    """Standard-form constraints of ``x = [w, t, u]`` (float64 NumPy; see :meth:`tensors`).

    Attributes
    ----------
    n_assets, n_vars
        ``N`` and the length of ``x``.
    G, h0, H_prev
        ``G (m, n_vars)``, ``h = h0 + H_prev @ w_prev`` with ``H_prev (m, N)`` (zero without turnover).
    A, b
        ``A (p, n_vars)``, ``b (p,)``.
    uses_prev
        Whether the turnover constraint needs ``w_prev``.
    """

    n_assets: int
    n_vars: int
    G: np.ndarray
    h0: np.ndarray
    H_prev: np.ndarray
    A: np.ndarray
    b: np.ndarray
    uses_prev: bool

    def tensors(self, dtype: torch.dtype = torch.float64, device: str | torch.device | None = None) -> dict[str, Tensor]:
        """``G, h0, H_prev, A, b`` as tensors."""
        return {
            k: torch.as_tensor(getattr(self, k), dtype=dtype, device=device) for k in ("G", "h0", "H_prev", "A", "b")
        }


@dataclass(frozen=True)
class PortfolioConstraints:
    """Declarative constraints on portfolio weights ``w (N,)``.

    Parameters
    ----------
    budget
        ``sum w = budget`` (``None``: no budget constraint).
    long_only
        ``w >= 0``.
    lower, upper
        Per-asset bounds: a scalar, one per asset (``None`` entries for none), or ``{ticker: value}``
        (the assets not named are unbounded on that side; see :meth:`resolve`);
        ``None``/``-inf``/``inf`` for none.
    max_weight
        ``|w_i| <= max_weight`` for every asset.
    groups
        :class:`Group` exposure limits (sectors).
    leverage
        ``sum |w| <= leverage`` (gross exposure).
    turnover
        ``sum |w - w_prev| <= turnover`` against previous weights given at solve time.
    """

    budget: float | None = 1.0
    long_only: bool = False
    lower: Bound = None
    upper: Bound = None
    max_weight: float | None = None
    groups: Sequence[Group] = field(default_factory=tuple)
    leverage: float | None = None
    turnover: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_weight", "leverage", "turnover"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"PortfolioConstraints.{name}={v} must be a finite number >= 0 (or None).")
        if self.budget is not None and not math.isfinite(self.budget):
            raise ConfigError(f"PortfolioConstraints.budget={self.budget} must be finite (or None).")

    def resolve(self, assets: Sequence[str]) -> PortfolioConstraints:
        """The same spec with tickers turned into column indices of ``assets``.

        Parameters
        ----------
        assets
            The data's column names, in column order (``N`` of them).

        Returns
        -------
        A :class:`PortfolioConstraints` whose groups hold indices and whose ``lower``/``upper``
        mappings became vectors of length ``N`` (``None`` for assets not named, so the spec stays
        plain JSON data); other fields unchanged. Specs already by index compile to the same.

        Raises
        ------
        DataError
            A group or bound names a ticker that is not in ``assets`` (named, with the available ones).
        ConfigError
            A group lists an asset twice.
        """
        assets = [str(a) for a in assets]
        groups = []
        for g in self.groups:
            idx = [_index(a, assets, f"group {g.name!r}") for a in g.assets]
            if len(set(idx)) != len(idx):
                raise ConfigError(f"PortfolioConstraints: group {g.name!r} lists an asset twice ({list(g.assets)}); list each once.")
            groups.append(replace(g, assets=tuple(idx)))
        bounds = {}
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                vec: list[float | None] = [None] * len(assets)
                for ticker, v in value.items():
                    vec[_index(ticker, assets, f"{name}[{ticker!r}]")] = float(v)
                value = tuple(vec)
            bounds[name] = value
        return replace(self, groups=tuple(groups), **bounds)

    def bounds(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Effective per-asset bounds ``(lo, hi)`` combining long_only, lower/upper and max_weight."""
        lo = _as_vector(self.lower, n, "lower", -np.inf)
        hi = _as_vector(self.upper, n, "upper", np.inf)
        if self.long_only:
            lo = np.maximum(lo, 0.0)
        if self.max_weight is not None:
            lo, hi = np.maximum(lo, -self.max_weight), np.minimum(hi, self.max_weight)
        return lo, hi

    def check(self, n: int) -> None:
        """Raise :class:`InfeasibleError` with the reason when no ``w`` of ``n`` assets satisfies the spec."""
        lo, hi = self.bounds(n)
        bad = np.nonzero(lo > hi)[0]
        if bad.size:
            i = int(bad[0])
            raise InfeasibleError(
                f"PortfolioConstraints: asset {i} has lower bound {lo[i]:g} above its upper bound {hi[i]:g} "
                "(from lower/upper/long_only/max_weight); relax one of them."
            )
        if self.budget is not None:
            if lo.sum() > self.budget + 1e-12 or hi.sum() < self.budget - 1e-12:
                raise InfeasibleError(
                    f"PortfolioConstraints: budget={self.budget:g} is outside [{lo.sum():g}, {hi.sum():g}], the "
                    "range the per-asset bounds allow (e.g. max_weight * N < 1); relax the bounds or the budget."
                )
            if self.leverage is not None and abs(self.budget) > self.leverage + 1e-12:
                raise InfeasibleError(
                    f"PortfolioConstraints: leverage={self.leverage:g} is below |budget|={abs(self.budget):g}; "
                    "sum |w| >= |sum w|, so raise the leverage limit."
                )
        for g in self.groups:
            idx = list(g.assets)
            if any(not isinstance(i, (int, np.integer)) or isinstance(i, bool) for i in idx):
                raise ConfigError(
                    f"PortfolioConstraints: group {g.name!r} names its assets by ticker ({idx[:5]}); call "
                    "resolve(assets) with the data's columns before compiling."
                )
            if not idx or min(idx) < 0 or max(idx) >= n:
                raise ConfigError(f"PortfolioConstraints: group {g.name!r} has asset indices outside 0..{n - 1} (or none).")
            glo, ghi = lo[idx].sum(), hi[idx].sum()
            if (g.upper is not None and glo > g.upper + 1e-12) or (g.lower is not None and ghi < g.lower - 1e-12):
                raise InfeasibleError(
                    f"PortfolioConstraints: group {g.name!r} must lie in [{g.lower}, {g.upper}] but its assets' "
                    f"bounds only allow [{glo:g}, {ghi:g}]; relax the group limits or the asset bounds."
                )
        # Everything else (interactions of groups, budget, leverage): a feasibility LP on x = [w, t].
        spec = PortfolioConstraints(
            self.budget, self.long_only, self.lower, self.upper, self.max_weight, self.groups, self.leverage, None
        )
        c = spec._compile_unchecked(n)
        res = linprog(np.zeros(c.n_vars), A_ub=c.G if c.G.size else None, b_ub=c.h0 if c.G.size else None,
                      A_eq=c.A if c.A.size else None, b_eq=c.b if c.A.size else None,
                      bounds=[(None, None)] * c.n_vars, method="highs")
        if res.status == 2:
            raise InfeasibleError(
                f"PortfolioConstraints: no portfolio of {n} assets satisfies {self.describe()} together "
                "(a feasibility LP proves it); relax the group limits, bounds, budget or leverage."
            )

    def describe(self) -> str:
        """One-line summary of the active constraints (for messages)."""
        parts = [f"{k}={getattr(self, k)}" for k in ("budget", "lower", "upper", "max_weight", "leverage", "turnover")
                 if getattr(self, k) is not None]
        if self.long_only:
            parts.append("long_only")
        parts += [f"group {g.name!r} in [{g.lower}, {g.upper}]" for g in self.groups]
        return ", ".join(parts) or "no constraints"

    def compile(self, n: int) -> CompiledConstraints:
        """Check feasibility (:meth:`check`) and return the standard form for ``n`` assets."""
        if n < 1:
            raise ConfigError(f"PortfolioConstraints.compile: n_assets={n} must be >= 1.")
        self.check(n)
        return self._compile_unchecked(n)

    def _compile_unchecked(self, n: int) -> CompiledConstraints:
        n_t = n if self.leverage is not None else 0
        n_u = n if self.turnover is not None else 0
        nv = n + n_t + n_u
        eye = np.eye(n)
        G_rows: list[np.ndarray] = []
        h_rows: list[np.ndarray] = []
        P_rows: list[np.ndarray] = []

        def add(G: np.ndarray, h: np.ndarray, P: np.ndarray | None = None) -> None:
            G_rows.append(G)
            h_rows.append(h)
            P_rows.append(np.zeros((G.shape[0], n)) if P is None else P)

        def w_block(M: np.ndarray) -> np.ndarray:
            out = np.zeros((M.shape[0], nv))
            out[:, :n] = M
            return out

        lo, hi = self.bounds(n)
        fin = np.isfinite(lo)
        add(w_block(-eye[fin]), -lo[fin])
        fin = np.isfinite(hi)
        add(w_block(eye[fin]), hi[fin])
        for g in self.groups:
            row = np.zeros((1, n))
            row[0, list(g.assets)] = 1.0
            if g.upper is not None:
                add(w_block(row), np.array([g.upper]))
            if g.lower is not None:
                add(w_block(-row), np.array([-g.lower]))
        if self.leverage is not None:  # w - t <= 0, -w - t <= 0, sum t <= L
            for sign in (1.0, -1.0):
                G = w_block(sign * eye)
                G[:, n:n + n] = -eye
                add(G, np.zeros(n))
            G = np.zeros((1, nv))
            G[0, n:2 * n] = 1.0
            add(G, np.array([self.leverage]))
        if self.turnover is not None:  # w - u <= w_prev, -w - u <= -w_prev, sum u <= T
            for sign in (1.0, -1.0):
                G = w_block(sign * eye)
                G[:, n + n_t:] = -eye
                add(G, np.zeros(n), sign * eye)
            G = np.zeros((1, nv))
            G[0, n + n_t:] = 1.0
            add(G, np.array([self.turnover]))
        if self.budget is not None:
            A, b = w_block(np.ones((1, n))), np.array([float(self.budget)])
        else:
            A, b = np.zeros((0, nv)), np.zeros(0)
        cat = lambda rows, w: np.concatenate(rows) if rows else np.zeros((0, w))  # noqa: E731
        return CompiledConstraints(
            n_assets=n, n_vars=nv, G=cat(G_rows, nv), h0=np.concatenate(h_rows) if h_rows else np.zeros(0),
            H_prev=cat(P_rows, n), A=A, b=b, uses_prev=self.turnover is not None,
        )


def constraints_data(spec: PortfolioConstraints) -> dict[str, Any]:
    """``spec`` as plain JSON-ready data (lists, not tuples): what a config or a strategy bundle holds.

    ``PortfolioConstraints(**constraints_data(spec))`` (with groups rebuilt from their mappings by the
    registries' validation) is ``spec`` again.
    """
    import dataclasses

    data = dataclasses.asdict(spec)
    data["groups"] = [{**g, "assets": list(g["assets"])} for g in data["groups"]]
    for side in ("lower", "upper"):
        if isinstance(data[side], tuple):
            data[side] = list(data[side])
    return data


__all__ = ["Group", "PortfolioConstraints", "CompiledConstraints", "constraints_data"]
