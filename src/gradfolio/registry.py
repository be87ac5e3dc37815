"""One idiom for everything built by name: :meth:`Registry.register` and :meth:`Registry.build`.

Networks, allocators, losses, optimizers, covariance estimators, classical portfolios and
hedging strategies are each kept in a :class:`Registry`. An entry is a class or a factory
function; its typed signature *is* its parameter schema: :meth:`Registry.params_model` turns it
into a pydantic model (``extra="forbid"``), so a config's keyword parameters are validated
before anything is built, and every problem ends in one :class:`~gradfolio.errors.ConfigError`
that names the full path of the bad key, e.g.::

    network.params.allocator_params.settings.max_iter: Input should be a valid integer (got 'ten')

Parameters whose annotation is a pydantic-compatible type (numbers, strings, literals, lists,
tuples, dataclasses such as :class:`~gradfolio.solvers.PortfolioConstraints`, pydantic models)
are validated and converted (a mapping becomes the dataclass); other annotated types (modules,
callables, tensors) are checked with ``isinstance``. A parameter that holds the parameters of
another registry's entry (a network's ``allocator_params``, named by its ``allocator``) is
declared with ``nested=`` at registration and validated against that entry, recursively.

Examples
--------
>>> LOSSES: Registry[object] = Registry("loss")
>>> @LOSSES.register("scaled")
... class Scaled:
...     def __init__(self, scale: float = 1.0) -> None:
...         self.scale = scale
>>> LOSSES.build("scaled", scale=2).scale
2.0
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from gradfolio.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_MISSING = inspect.Parameter.empty


class _Required:
    """Default of a parameter the signature requires (reported by :meth:`Registry.validate`)."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


def format_errors(exc: ValidationError, where: str) -> str:
    """One clause per problem of a pydantic error: ``where.a.b: message (got value)``, joined by ``; ``.

    Parameters
    ----------
    exc
        The validation error.
    where
        Dotted path of the validated mapping (``""`` for the top level).
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not _schema_tag(p))
        path = ".".join(p for p in (where, loc) if p) or "<root>"
        got = f" (got {_short(err['input'])})" if err["type"] != "missing" and "input" in err else ""
        message = err["msg"].removeprefix("Value error, ")
        messages = grouped.setdefault((path, got), [])
        if message not in messages:  # the alternatives of a union: one clause, "a or b"
            messages.append(message)
    return "; ".join(f"{path}: {' or '.join(messages)}{got}" for (path, got), messages in grouped.items())


#: Location parts pydantic adds for the members of a union (``int | str`` -> ``int``, ``str``).
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "callable", "none", "dict", "list", "tuple", "set",
                        "frozenset", "date", "datetime", "decimal", "any", "nullable"})


def _schema_tag(part: int | str) -> bool:
    """Whether a part of an error location names a pydantic validator or union member, not a key."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part or part in _TYPE_TAGS)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error message never quotes a whole input)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Entry:
    """One registered factory.

    Attributes
    ----------
    name
        Registry name.
    factory
        The class or function called by :meth:`Registry.build`.
    defaults
        Keyword arguments applied before the user's (e.g. ``activation="maxout"``).
    nested
        ``{param: (selector_param, registry)}``: ``param`` holds keyword arguments of the entry
        of ``registry`` named by ``selector_param`` (validated recursively).
    context
        Parameters the caller supplies from the data (``n_assets``, ``lookback``): passed only if
        the factory takes them, never validated as user parameters.
    """

    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    nested: dict[str, tuple[str, Registry[Any]]] = field(default_factory=dict)
    model: type[BaseModel] | None = None


class Registry(Generic[T]):
    """Named factories of one kind (``"network"``, ``"loss"``...), built with validated parameters.

    Parameters
    ----------
    kind
        What the entries are, used in messages (``"network"`` -> ``unknown network 'x'``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    # -- registration --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        factory: Callable[..., T] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        nested: Mapping[str, tuple[str, Registry[Any]]] | None = None,
    ) -> Any:
        """Add ``factory`` under ``name``; without ``factory``, a decorator that adds what it decorates.

        Parameters
        ----------
        name
            Registry name; registering a taken name raises :class:`ConfigError`.
        factory
            A class or function whose annotated keyword parameters are its schema.
        defaults
            Keyword arguments applied before the user's.
        nested
            See :class:`Entry`.
        """

        def add(obj: F) -> F:
            if name in self._entries:
                raise ConfigError(f"{self.kind} {name!r} is registered twice; choose another name.")
            self._entries[name] = Entry(name, obj, dict(defaults or {}), dict(nested or {}))
            return obj

        return add if factory is None else add(factory)  # type: ignore[arg-type]

    # -- look-up -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str, where: str | None = None) -> Entry:
        """The entry ``name``; :class:`ConfigError` naming ``where`` and the choices if unknown."""
        if not isinstance(name, str) or name not in self._entries:
            place = f"{where}: " if where else ""
            raise ConfigError(f"{place}unknown {self.kind} {_short(name)}; choose one of {sorted(self._entries)}.")
        return self._entries[name]

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``."""
        return self.entry(name).factory

    # -- validation and building ---------------------------------------------------------------

    def params_model(self, name: str) -> type[BaseModel]:
        """The pydantic model of ``name``'s keyword parameters (built once from its signature).

        Every named parameter becomes a field with the annotation and default of the signature
        (an unannotated one accepts anything; ``Annotated`` validators apply); ``*args`` are not
        part of the schema and a function's ``**kwargs`` lets unknown keys through unchecked,
        while a class's ``**kwargs`` stand for its base class's parameters (see
        :func:`_parameters`). Defaults of the entry override the signature's.
        """
        entry = self.entry(name)
        if entry.model is None:
            entry.model = _signature_model(f"{self.kind}:{name}", entry.factory, entry.defaults)
        return entry.model

    def validate(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        where: str | None = None,
        provided: frozenset[str] | set[str] = frozenset(),
    ) -> dict[str, Any]:
        """``params`` checked against ``name``'s schema and converted to the annotated types.

        Parameters
        ----------
        name
            Registry name (unknown: :class:`ConfigError` listing the choices).
        params
            Keyword parameters as a config gives them (mappings for typed objects are fine).
        where
            Dotted path of ``params`` in the caller's config, prefixed to every message
            (default: the kind, e.g. ``"loss"``).
        provided
            Required parameters the caller supplies itself (``n_assets``): not reported missing,
            here nor in nested parameters (a network hands its ``n_assets`` to its allocator).

        Returns
        -------
        The validated keyword arguments: the given keys only (defaults are left to the factory),
        with nested parameters validated recursively.

        Raises
        ------
        ConfigError
            Unknown name, unknown key, wrong type or value; every bad key is named with its path.
        """
        where = self.kind if where is None else where
        if not isinstance(params, Mapping) and params is not None:
            raise ConfigError(f"{where}: parameters must be a mapping of names to values, got {_short(params)}.")
        given = dict(params or {})
        entry = self.entry(name, where)
        model = self.params_model(name)
        try:
            validated = model.model_validate(given)
        except ValidationError as exc:
            raise ConfigError(f"{format_errors(exc, where)}; see {_describe(entry.factory)}.") from None
        missing = [
            key for key, info in model.model_fields.items()
            if info.default is _REQUIRED and key not in given and key not in provided and key not in entry.defaults
        ]
        if missing:
            raise ConfigError(f"{where}: missing parameter(s) {missing}; see {_describe(entry.factory)}.")
        out = {key: getattr(validated, key) for key in given if key in model.model_fields}
        out.update({key: value for key, value in given.items() if key not in model.model_fields})  # **kwargs
        for param, (selector, registry) in entry.nested.items():
            if param in out and out[param] is not None:
                choice = out.get(selector, entry.defaults.get(selector, _default(entry.factory, selector)))
                if isinstance(choice, str):
                    out[param] = registry.validate(choice, out[param], f"{where}.{param}", provided)
        return out

    def build(self, name: str, /, *, where: str | None = None, context: Mapping[str, Any] | None = None, **params: Any) -> T:
        """Build the entry ``name`` with validated ``params``.

        Parameters
        ----------
        name
            Registry name.
        where
            Dotted config path of ``params`` for messages (default: the kind).
        context
            Arguments the caller derives from the data (``n_assets=20``...): passed only where the
            factory's signature takes them, and not validated as user parameters.
        **params
            The user's keyword parameters.

        Raises
        ------
        ConfigError
            As :meth:`validate`; and a :class:`ConfigError` (never ``TypeError``) if the factory
            rejects the combination.
        """
        entry = self.entry(name, where)
        accepted = _accepted(entry.factory)
        extra = {k: v for k, v in (context or {}).items() if k not in params and (accepted is None or k in accepted)}
        kwargs = self.validate(name, params, where, provided=frozenset(extra))
        try:
            return entry.factory(**{**entry.defaults, **extra, **kwargs})
        except TypeError as exc:
            raise ConfigError(f"{where or self.kind}: {exc}; see {_describe(entry.factory)}.") from exc
        except ConfigError as exc:  # a value the factory itself refuses: say where it came from
            if where is None or str(exc).startswith(where):
                raise
            raise ConfigError(f"{where}: {exc}") from None


    def bind(self, name: str, /, *, where: str | None = None, **params: Any) -> Callable[..., T]:
        """The entry ``name`` with validated ``params`` bound, for entries called later with call-time arguments.

        A covariance estimator ``R (B, L, N) -> (B, N, N)`` gets its options now and the returns
        at call time: ``COVARIANCES.bind("exponential", span=60)(R)``. The required parameters
        left unbound are the call-time ones (not reported missing).

        Returns
        -------
        ``functools.partial(factory, **defaults, **params)``, or the factory itself when neither
        the entry nor the caller binds anything.

        Raises
        ------
        ConfigError
            As :meth:`validate`.
        """
        entry = self.entry(name, where)
        model = self.params_model(name)
        call_time = frozenset(key for key, info in model.model_fields.items() if info.default is _REQUIRED)
        kwargs = {**entry.defaults, **self.validate(name, params, where, provided=call_time)}
        return functools.partial(entry.factory, **kwargs) if kwargs else entry.factory


def _describe(factory: Callable[..., Any]) -> str:
    """``module.Name`` of a factory, for messages."""
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def _signature(target: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    """The call signature of a function (or an ``__init__``) and its resolved type hints (``Annotated`` kept)."""
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - one unresolvable hint (a TYPE_CHECKING import): resolve one by one
        hints = {}
        namespace = getattr(target, "__globals__", {})
        for p in signature.parameters.values():
            if isinstance(p.annotation, str):
                hints[p.name] = _one_hint(p.annotation, namespace)
            elif p.annotation is not _MISSING:
                hints[p.name] = p.annotation
    return signature, hints


def _parameters(factory: Callable[..., Any]) -> tuple[list[inspect.Parameter], dict[str, Any], bool]:
    """The named parameters of ``factory``, their type hints, and whether it takes any other keyword.

    A function: its signature (``**kwargs`` takes any other keyword). A class: its ``__init__``,
    and when that ``__init__`` takes ``**kwargs`` they are taken to be forwarded to the base class,
    whose ``__init__`` parameters are added, down the MRO until an ``__init__`` without
    ``**kwargs`` (``object.__init__`` takes none). So a subclass written
    ``def __init__(self, beta: float = 0.95, **kwargs)`` has the schema ``beta`` plus its base's
    parameters, and an unknown key is still named. (A class that keeps arbitrary keywords itself
    is registered through a factory function that says so with ``**kwargs``.)
    """
    if inspect.isclass(factory):
        targets = [vars(k)["__init__"] for k in factory.__mro__ if "__init__" in vars(k)]
    else:
        targets = [factory]
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for target in targets:
        if target is object.__init__:
            return list(params.values()), hints, False
        signature, target_hints = _signature(target)
        takes_any = False
        for i, p in enumerate(signature.parameters.values()):
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                takes_any = True
            elif p.kind is inspect.Parameter.VAR_POSITIONAL or (i == 0 and p.name == "self") or p.name in params:
                continue
            else:
                params[p.name] = p
                hints[p.name] = target_hints.get(p.name, Any)
        if not takes_any:
            return list(params.values()), hints, False
    return list(params.values()), hints, True


def _one_hint(annotation: str, namespace: dict[str, Any]) -> Any:
    """One annotation of our own source resolved in its module's namespace (``Any`` if it cannot be)."""

    def shim() -> None: ...

    shim.__annotations__ = {"value": annotation}
    try:
        return typing.get_type_hints(shim, globalns=namespace, include_extras=True)["value"]
    except Exception:  # noqa: BLE001 - a name imported only for type checking
        return Any


def _accepted(factory: Callable[..., Any]) -> set[str] | None:
    """Names ``factory`` takes as keywords (``None``: it takes ``**kwargs``, so any)."""
    params, _, takes_any = _parameters(factory)
    if takes_any:
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in keyword}


def _default(factory: Callable[..., Any], name: str) -> Any:
    """The signature default of parameter ``name`` (``None`` if absent)."""
    params, _, _ = _parameters(factory)
    p = next((p for p in params if p.name == name), None)
    return None if p is None or p.default is _MISSING else p.default


def _signature_model(title: str, factory: Callable[..., Any], defaults: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model with one field per keyword parameter of ``factory`` (see :func:`_parameters`)."""
    params, hints, takes_any = _parameters(factory)
    fields: dict[str, Any] = {}
    for p in params:
        default = defaults.get(p.name, p.default)
        fields[p.name] = (hints.get(p.name, Any), _REQUIRED if default is _MISSING else default)
    config = ConfigDict(
        extra="allow" if takes_any else "forbid", arbitrary_types_allowed=True, protected_namespaces=(),
        validate_default=False,
    )
    return create_model(title.replace(":", "_"), __config__=config, **fields)  # type: ignore[call-overload]


__all__ = ["Registry", "Entry", "format_errors"]
