"""Every field of every experiment config, fed a wrong type or a wrong nested key, fails as one
ConfigError naming its dotted path: never AttributeError or TypeError, and before any work."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.config_io import parse_config
from gradfolio.experiments.hedging.config import HedgingConfig
from gradfolio.experiments.hedging.sweep import SweepConfig
from gradfolio.experiments.hedging.train import HedgeTrainingConfig

MODELS: dict[str, type[BaseModel]] = {
    "backtest": BacktestConfig,
    "hedging": HedgingConfig,
    "hedge_training": HedgeTrainingConfig,
    "sweep": SweepConfig,
}


def _members(annotation: Any) -> list[Any]:
    """The alternatives of an annotation (``Annotated``, unions and ``Optional`` unwrapped)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (a nested section), if any."""
    for m in _members(annotation):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return m
    return None


def _wrong(annotation: Any) -> list[Any]:
    """Values of a wrong type for a field annotated ``annotation``."""
    members = _members(annotation)
    if Any in members:
        return []

    def takes(m: Any, kinds: tuple[type, ...]) -> bool:
        origin = typing.get_origin(m) or m
        return isinstance(origin, type) and issubclass(origin, kinds)

    out: list[Any] = []
    if not any(dataclasses.is_dataclass(m) or takes(m, (Mapping, BaseModel)) for m in members):
        out.append({"not": "valid"})
    if str not in members and not any(takes(m, (dt.date,)) for m in members):
        out.append("x?")
    elif not any(takes(m, (list, tuple)) or m is str for m in members):
        out.append(["a", "list"])
    return out


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, annotation)`` of every field, recursing into nested sections."""
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        nested = _model(info.annotation)
        if nested is not None:
            yield from _leaves(nested, path)
        else:
            yield path, info.annotation


def _sections(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every (nested) section, the root included."""
    yield prefix
    for name, info in model.model_fields.items():
        nested = _model(info.annotation)
        if nested is not None:
            yield from _sections(nested, (*prefix, name))


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(path):
        out = {key: out}
    return out


def _cases() -> list[Any]:
    cases = []
    for label, model in MODELS.items():
        for path, annotation in _leaves(model):
            for value in _wrong(annotation):
                dotted = ".".join(path)
                cases.append(pytest.param(model, path, value, id=f"{label}-{dotted}-{type(value).__name__}"))
    return cases


@pytest.mark.parametrize(("model", "path", "value"), _cases())
def test_every_field_with_a_wrong_type_is_one_config_error_naming_it(
    model: type[BaseModel], path: tuple[str, ...], value: Any
) -> None:
    dotted = ".".join(path)
    with pytest.raises(ConfigError) as err:
        parse_config(model, _nest(path, value), where="run.yaml")
    message = str(err.value)
    assert message.startswith("run.yaml: ") and "\n" not in message
    assert f"field '{dotted}" in message, message


@pytest.mark.parametrize(
    ("model", "section"),
    [pytest.param(m, s, id=f"{label}-{'.'.join(s) or 'root'}") for label, m in MODELS.items() for s in _sections(m)],
)
def test_every_section_refuses_an_unknown_key_by_its_path(model: type[BaseModel], section: tuple[str, ...]) -> None:
    dotted = ".".join((*section, "no_such_key"))
    with pytest.raises(ConfigError) as err:  # (a section with required fields also names those)
        parse_config(model, _nest((*section, "no_such_key"), 1), where="run.yaml")
    message = str(err.value)
    assert message.startswith("run.yaml: ") and "\n" not in message
    assert f"run.yaml: field '{dotted}': Extra inputs are not permitted (got 1)" in message, message


def test_the_walk_covers_the_configs() -> None:
    """The cases above are not vacuous: every config has dozens of fields and every leaf gets a wrong value."""
    counts = {label: sum(1 for _ in _leaves(m)) for label, m in MODELS.items()}
    assert counts["backtest"] >= 40 and counts["hedge_training"] >= 60, counts
    assert all(_wrong(a) for m in MODELS.values() for _, a in _leaves(m) if a is not Any and "params" not in str(a))


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"network": {"name": "markowitz", "params": {"settings": {"max_iter": "ten"}}}},
         "network.params.settings.max_iter", "Input should be a valid integer"),
        ({"network": {"params": {"allocator": "convex", "allocator_params": {"settings": {"max_itr": 3}}}}},
         "network.params.allocator_params.settings.max_itr", "Unexpected keyword argument"),
        ({"network": {"params": {"allocator": "convex", "allocator_params": {"settings": {"max_iter": "ten"}}}}},
         "network.params.allocator_params.settings.max_iter", "Input should be a valid integer"),
        ({"network": {"params": {"allocator": "convex",
                                 "allocator_params": {"constraints": {"groups": [{"assets": [0, 1], "upper": "x"}]}}}}},
         "network.params.allocator_params.constraints.groups.0.upper", "Input should be a valid number"),
        ({"network": {"params": {"allocator": "convex", "allocator_params": {"constraints": {"max_weight": -1}}}}},
         "network.params.allocator_params.constraints", "PortfolioConstraints.max_weight=-1.0 must be a finite"),
        ({"network": {"params": {"hidden": {"a": 1}}}}, "network.params.hidden", "Input should be"),
        ({"network": {"loss_params": {"eps": "small"}}}, "network.loss_params.eps", "Input should be a valid number"),
        ({"network": {"loss": "cvar", "loss_params": {"level": [1]}}}, "network.loss_params.level", "Input should be"),
        ({"benchmarks": ["hrp"], "benchmark_params": {"hrp": {"linkage": 3}}}, "benchmark_params.hrp.linkage", "Input"),
        ({"benchmark_params": {"min_variance": {"covariance": {"x": 1}}}},
         "benchmark_params.min_variance.covariance", "Input should be a valid string or Input should be callable"),
    ],
)
def test_registry_backed_keys_fail_with_their_full_path(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BacktestConfig, data, where="run.yaml")
    text = str(err.value)
    assert text.startswith(f"run.yaml: {path}: {message}"), text
    assert "\n" not in text and "AttributeError" not in text and "TypeError" not in text


def test_sweep_overrides_are_checked_when_the_file_is_read() -> None:
    with pytest.raises(ConfigError, match=r"^run.yaml: sweep experiment 'e', setting 's': override 'env.nope'"):
        parse_config(SweepConfig, {"experiments": {"e": {"s": {"env.nope": 1}}}}, where="run.yaml")
    with pytest.raises(ConfigError, match=r"^run.yaml: sweep experiment 'e', setting 's': field 'env.cost'"):
        parse_config(SweepConfig, {"experiments": {"e": {"s": {"env.cost": "high"}}}}, where="run.yaml")
