"""Load typed (pydantic) configurations from YAML or TOML files, and write them back.

Every problem ends in a :class:`~gradfolio.errors.ConfigError` that names the file, the field
and the fix, e.g. ``config.yaml: field 'train.lr': Input should be greater than 0 (got -1)``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gradfolio.errors import ConfigError
from gradfolio.io import atomic_write_text

M = TypeVar("M", bound=BaseModel)


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dictionary."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found; pass the path of an existing .yaml/.yml/.toml file.")
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8")
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{p}: unknown config format {suffix!r}; use a .yaml, .yml or .toml file.")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot parse the file ({exc}); fix its syntax.".replace("\n", " ")) from exc
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


__all__ = ["read_mapping", "format_validation_error", "parse_config", "load_config", "dump_config"]
