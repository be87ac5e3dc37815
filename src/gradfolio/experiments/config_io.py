"""Load typed (pydantic) configurations from YAML or TOML files, and write them back.

Every problem ends in a :class:`~gradfolio.errors.ConfigError` that names the file, the field
and the fix, e.g. ``config.yaml: field 'train.lr': Input should be greater than 0 (got -1)``.

Nothing in a config file can make loading slow or its error huge: files over
:data:`MAX_CONFIG_BYTES` are refused before parsing, YAML aliases may expand to at most
:data:`MAX_YAML_NODES` nodes (an "alias bomb" is refused before any object is built), a key
written twice in one mapping is an error naming both lines, and a message quotes at most
:data:`MAX_EXCERPT` characters of any value.
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

#: Largest config file read, in bytes (1 MiB); a config is a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20
#: Most nodes a YAML document may hold once every alias is expanded.
MAX_YAML_NODES = 100_000
#: Longest excerpt of a value quoted in an error message, in characters.
MAX_EXCERPT = 80

_MERGE_TAG = "tag:yaml.org,2002:merge"


def excerpt(value: Any, limit: int = MAX_EXCERPT) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` and the full length appended when cut).

    The repr of a huge value is never built in full: containers are summarised by ``reprlib``
    first, so quoting an expanded YAML alias costs microseconds, not seconds.
    """
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = short.maxlong = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    short.maxlevel = 3
    text = short.repr(value) if isinstance(value, (list, tuple, dict, set, frozenset, str)) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}..."


class _YamlTooLarge(ValueError):
    """A YAML document whose aliases expand to more than :data:`MAX_YAML_NODES` nodes."""


def _expanded_size(root: yaml.Node) -> int:
    """Number of nodes of ``root`` once every alias is expanded, stopping past :data:`MAX_YAML_NODES`.

    Shared (aliased) nodes are counted once per use, but each node's size is computed once, so
    the cost is linear in the composed (unexpanded) document. A node that contains itself (a
    recursive alias ``&a [*a]``) is refused.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _YamlTooLarge(
                f"line {node.start_mark.line + 1}: an alias refers to a collection that contains it; a config "
                "cannot be recursive: write the values out"
            )
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise _YamlTooLarge(
                    f"line {node.start_mark.line + 1}: its aliases expand to more than {MAX_YAML_NODES:,} values "
                    "(nested aliases multiply); write the values out instead of nesting aliases"
                )
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


_SafeBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML was built with it


class _StrictLoader(_SafeBase):
    """``yaml.SafeLoader`` (libyaml's when available) that refuses a key written twice in one mapping (merge keys ``<<`` may be overridden)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first != key_node.start_mark.line + 1:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"duplicate key {excerpt(key)} on line {key_node.start_mark.line + 1} (first on line {first}); "
                        "keep one of the two",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    """Parse one YAML document safely: no Python objects, bounded alias expansion, no duplicate keys."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


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
    if isinstance(exc, _YamlTooLarge):
        return ConfigError(f"{path}: {exc}.")
    if isinstance(exc, RecursionError):
        return ConfigError(f"{path}: the file is nested too deeply to parse; flatten its structure.")
    if isinstance(exc, yaml.constructor.ConstructorError) and "duplicate key" in str(exc.problem):
        return ConfigError(f"{path}: {exc.problem}.")
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
    detail = " ".join(str(exc).split())
    if len(detail) > 4 * MAX_EXCERPT:
        detail = detail[: 4 * MAX_EXCERPT - 3] + "..."
    return ConfigError(f"{path}: cannot parse the file ({detail}); fix its syntax.")


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dictionary.

    Raises
    ------
    ConfigError
        A missing or unreadable file, one larger than :data:`MAX_CONFIG_BYTES`, a syntax error, a
        YAML document whose aliases expand to more than :data:`MAX_YAML_NODES` values (or refer
        to themselves), a key written twice in one mapping (YAML and TOML), a top level that is
        not a mapping.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        what = "a folder, not a file" if p.is_dir() else "config file not found"
        raise ConfigError(f"{p}: {what}; pass the path of an existing .yaml/.yml/.toml file.")
    suffix = p.suffix.lower()
    if suffix not in {".toml", ".yaml", ".yml"}:
        raise ConfigError(f"{p}: unknown config format {suffix!r}; use a .yaml, .yml or .toml file.")
    try:
        with p.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the file ({exc.strerror or exc}); check its permissions.") from None
    if len(raw) > MAX_CONFIG_BYTES:
        size = max(p.stat().st_size, len(raw))
        raise ConfigError(
            f"{p}: the file is {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} bytes (1 MiB) a config may have; "
            "pass a config file, not a data file (configs name their data files by path)."
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: byte {raw[exc.start : exc.start + 1]!r} at offset {exc.start} is not UTF-8 text; save the file as UTF-8."
        ) from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else _load_yaml(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise _parse_error(p, text, exc) from None
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
        got = f" (got {excerpt(err['input'])})" if err["type"] != "missing" and "input" in err else ""
        lines.append(f"{where}: field '{field}': {err['msg']}{got}")
    return "; ".join(lines)


def parse_config(model: type[M], data: dict[str, Any], where: str = "<config>") -> M:
    """Validate ``data`` as ``model``; raise :class:`ConfigError` naming ``where`` and each bad field.

    After the fields themselves, a model with a ``check_references()`` method (names and
    keyword parameters of registry entries, such as ``network.params``) has those checked too,
    so a bad key anywhere fails here, before any work, as one :class:`ConfigError` naming its
    dotted path (``network.params.allocator_params.settings.max_iter``).
    """
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
    check = getattr(config, "check_references", None)
    if callable(check):
        try:
            check()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return config


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


__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_YAML_NODES",
    "MAX_EXCERPT",
    "excerpt",
    "read_mapping",
    "format_validation_error",
    "parse_config",
    "load_config",
    "dump_config",
    "flatten_params",
]
