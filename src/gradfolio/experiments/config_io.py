"""Load typed (pydantic) configurations from YAML or TOML files, and write them back.

Every problem ends in a :class:`~gradfolio.errors.ConfigError` that names the file, the field
and the fix, e.g. ``config.yaml: field 'train.lr': Input should be greater than 0 (got -1)``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from pathlib import Path
from collections.abc import Mapping
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gradfolio.errors import ConfigError
from gradfolio.io import atomic_write_text

M = TypeVar("M", bound=BaseModel)


#: A date-like token ``YYYY-M-D`` (YAML and TOML dates are ``YYYY-MM-DD``).
_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")


def _invalid_date(text: str, line: int | None = None) -> tuple[int, str, str] | None:
    """The first date-like token of ``text`` that is not a valid ``YYYY-MM-DD`` date.

    Parameters
    ----------
    text
        The file's text.
    line
        Look only on this line (1-based), e.g. the one a parser reported; ``None``: every line.

    Returns
    -------
    ``(line, token, reason)`` or ``None`` when every date-like token is a valid date.
    """
    for n, row in enumerate(text.splitlines(), start=1):
        if line is not None and n != line:
            continue
        for match in _DATE.finditer(row):
            year, month, day = match.groups()
            if len(month) != 2 or len(day) != 2:
                return n, match.group(0), "month and day need two digits"
            try:
                dt.date(int(year), int(month), int(day))
            except ValueError as exc:
                return n, match.group(0), str(exc)
    return None


def _parse_error(path: Path, text: str, exc: Exception) -> ConfigError:
    """A parse error of ``path``; an invalid date is named with its line and the expected form."""
    bad = None
    if isinstance(exc, tomllib.TOMLDecodeError):
        at = re.search(r"at line (\d+)", str(exc))
        bad = _invalid_date(text, int(at.group(1))) if at else None
    elif not isinstance(exc, yaml.YAMLError):  # PyYAML's bare ValueError for a date that does not exist
        bad = _invalid_date(text)
    if bad is not None:
        line, token, reason = bad
        return ConfigError(
            f"{path}: line {line}: invalid date {token!r} ({reason}); write dates as YYYY-MM-DD with a month "
            "from 01 to 12 and a day that exists in that month, e.g. 2020-02-29."
        )
    return ConfigError(f"{path}: cannot parse the file ({exc}); fix its syntax.".replace("\n", " "))


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dictionary."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found; pass the path of an existing .yaml/.yml/.toml file.")
    suffix = p.suffix.lower()
    if suffix not in {".toml", ".yaml", ".yml"}:
        raise ConfigError(f"{p}: unknown config format {suffix!r}; use a .yaml, .yml or .toml file.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc}); save the file as UTF-8.") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise _parse_error(p, text, exc) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of fields, got {type(data).__name__}.")
    return data


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem: ``where: field 'a.b': message (got value)``."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "<root>"
        got = f" (got {err['input']!r})" if err["type"] != "missing" and "input" in err else ""
        lines.append(f"{where}: field '{field}': {err['msg']}{got}")
    return "; ".join(lines)


def parse_config(model: type[M], data: dict[str, Any], where: str = "<config>") -> M:
    """Validate ``data`` as ``model``; raise :class:`ConfigError` naming ``where`` and each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None


def load_config(model: type[M], path: str | os.PathLike[str]) -> M:
    """Load ``path`` (YAML or TOML) and validate it as ``model``."""
    return parse_config(model, read_mapping(path), where=str(path))


def dump_config(config: BaseModel, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` to ``path`` as YAML, atomically."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    return atomic_write_text(path, text)


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys, the form trackers log parameters in.

    Parameters
    ----------
    tree
        Nested mapping, e.g. ``config.model_dump(mode="json")``.
    prefix
        Prepended to every key (used by the recursion).

    Returns
    -------
    dict[str, Any]
        ``{"env.market.nu": 0.3, ...}``: one entry per leaf (non-mapping value), in order.
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


__all__ = ["read_mapping", "format_validation_error", "parse_config", "load_config", "dump_config", "flatten_params"]
