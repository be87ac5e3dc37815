"""The one registry idiom: names -> factories, parameters validated by the typed signature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pytest
import torch
from pydantic import BeforeValidator

from gradfolio.errors import ConfigError
from gradfolio.progress import no_progress, prefixed
from gradfolio.registry import Registry


@dataclass(frozen=True)
class Inner:
    max_iter: int = 50
    tol: float | None = None


class Head:
    def __init__(self, n_assets: int, scale: float = 1.0, mode: Literal["a", "b"] = "a", inner: Inner | None = None):
        self.n_assets, self.scale, self.mode, self.inner = n_assets, scale, mode, inner


class Net:
    def __init__(self, n_assets: int, hidden: tuple[int, ...] = (4,), head: str = "head",
                 head_params: dict[str, Any] | None = None, module: torch.nn.Module | None = None):
        self.n_assets, self.hidden, self.head, self.head_params, self.module = n_assets, hidden, head, head_params, module


HEADS: Registry[Head] = Registry("head")
HEADS.register("head", Head)
HEADS.register("scaled", Head, defaults={"scale": 3.5})
NETS: Registry[Net] = Registry("network")
NETS.register("net", Net, nested={"head_params": ("head", HEADS)})


def test_build_converts_to_annotated_types_and_passes_context() -> None:
    net = NETS.build("net", context={"n_assets": 7, "lookback": 60}, hidden=[8, 2])
    assert net.n_assets == 7 and net.hidden == (8, 2)  # list -> tuple; lookback not taken, not passed
    head = HEADS.build("head", context={"n_assets": 3}, inner={"max_iter": 9}, scale=2)
    assert head.inner == Inner(max_iter=9) and head.scale == 2.0 and isinstance(head.scale, float)


def test_defaults_of_the_entry_apply_and_user_values_win() -> None:
    assert HEADS.build("scaled", n_assets=2).scale == 3.5
    assert HEADS.build("scaled", n_assets=2, scale=0.25).scale == 0.25


def test_nested_parameters_are_validated_with_their_full_path() -> None:
    with pytest.raises(ConfigError) as err:
        NETS.build("net", where="network.params", context={"n_assets": 3},
                   head_params={"inner": {"max_iter": "ten"}})
    assert str(err.value).startswith("network.params.head_params.inner.max_iter: Input should be a valid integer")
    with pytest.raises(ConfigError, match=r"network.params.head_params.inner.bogus: Unexpected keyword"):
        NETS.build("net", where="network.params", context={"n_assets": 3}, head_params={"inner": {"bogus": 1}})
    # the nested registry is chosen by the selector parameter
    with pytest.raises(ConfigError, match="network.params.head_params: unknown head 'nope'"):
        NETS.validate("net", {"head": "nope", "head_params": {}}, "network.params", provided={"n_assets"})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"scale": "x"}, r"^head.scale: Input should be a valid number.*\(got 'x'\)"),
        ({"mode": "c"}, r"^head.mode: Input should be 'a' or 'b'"),
        ({"typo": 1}, r"^head.typo: Extra inputs are not permitted"),
        ({"inner": [1, 2]}, r"^head.inner"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HEADS.build("head", n_assets=2, **params)


def test_unknown_name_missing_parameter_and_non_mapping() -> None:
    with pytest.raises(ConfigError, match=r"network.name: unknown head 'x'; choose one of \['head', 'scaled'\]"):
        HEADS.build("x", where="network.name")
    with pytest.raises(ConfigError, match=r"head: missing parameter\(s\) \['n_assets'\]"):
        HEADS.build("head")
    with pytest.raises(ConfigError, match="parameters must be a mapping"):
        HEADS.validate("head", [1, 2], "head")  # type: ignore[arg-type]


def test_arbitrary_types_are_checked_by_isinstance() -> None:
    lin = torch.nn.Linear(2, 2)
    assert NETS.build("net", n_assets=2, module=lin).module is lin  # identity kept
    with pytest.raises(ConfigError, match="network.module: Input should be an instance of Module"):
        NETS.build("net", n_assets=2, module="linear")


def test_register_twice_and_decorator_form() -> None:
    reg: Registry[Any] = Registry("thing")

    @reg.register("f")
    def make(a: int = 1, **extra: float) -> tuple[int, dict[str, float]]:
        return a, extra

    assert make(2) == (2, {})  # the decorator returns the function unchanged
    assert reg.build("f", a="3", b=0.5) == (3, {"b": 0.5})  # **kwargs let unknown keys through
    assert reg.names() == ["f"] and "f" in reg and len(reg) == 1 and list(reg) == ["f"]
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register("f", make)


def test_factory_type_error_becomes_config_error() -> None:
    reg: Registry[Any] = Registry("thing")

    def picky(a: int = 1) -> int:
        if a > 1:
            raise TypeError("a > 1 needs b")
        return a

    reg.register("p", picky)
    with pytest.raises(ConfigError, match="thing.p: a > 1 needs b|thing: a > 1 needs b"):
        reg.build("p", where="thing.p", a=2)


def test_prefixed_progress_and_no_progress() -> None:
    seen: list[tuple[str, int, int, str]] = []
    report = prefixed(lambda task, done, total, info="": seen.append((task, done, total, info)), "refit ")
    report("2020-01-03", 2, 5, "loss 0.1")
    report("x", 1, 1)
    assert seen == [("refit 2020-01-03", 2, 5, "loss 0.1"), ("refit x", 1, 1, "")]
    assert prefixed(None, "p") is no_progress and no_progress("t", 1, 2) is None


class Base:
    def __init__(self, *, channel: int = 0, kind: Literal["simple", "log"] = "simple") -> None:
        self.channel, self.kind = channel, kind


class Child(Base):
    def __init__(self, beta: float = 0.95, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.beta = beta


class Plain:  # no __init__ of its own: object's, which takes nothing
    pass


def test_a_class_kwargs_stand_for_its_base_parameters() -> None:
    reg: Registry[Any] = Registry("portfolio")
    reg.register("child", Child)
    reg.register("plain", Plain)
    built = reg.build("child", beta="0.5", channel=2, kind="log")
    assert (built.beta, built.channel, built.kind) == (0.5, 2, "log")
    assert list(reg.params_model("child").model_fields) == ["beta", "channel", "kind"]
    with pytest.raises(ConfigError, match=r"^portfolio.bogus: Extra inputs are not permitted"):
        reg.build("child", bogus=1)
    with pytest.raises(ConfigError, match=r"^portfolio.channel: Input should be a valid integer"):
        reg.build("child", channel="two")
    with pytest.raises(ConfigError, match=r"^portfolio.x: Extra inputs are not permitted"):
        reg.build("plain", x=1)
    assert isinstance(reg.build("plain"), Plain)


def _length(value: Any) -> Any:
    return len(value) if isinstance(value, str) else value


def annotated(n: Annotated[int, BeforeValidator(_length)] = 0, lower: float | list[float] | None = None) -> Any:
    return n, lower


def test_annotated_validators_apply_and_union_tags_are_not_in_the_path() -> None:
    reg: Registry[Any] = Registry("thing")
    reg.register("f", annotated)
    assert reg.build("f", n="abcd") == (4, None)  # the BeforeValidator ran
    with pytest.raises(ConfigError) as err:
        reg.build("f", lower="x?")
    clauses = str(err.value).split("; ")
    # one clause for the two union members (no "thing.lower.list[float]", no "thing.lower.float"), then the "see"
    assert len(clauses) == 2 and all("[" not in c.split(":")[0] for c in clauses)
    assert clauses[0] == ("thing.lower: Input should be a valid number, unable to parse string as a number or "
                          "Input should be a valid list (got 'x?')")


def test_nested_validation_knows_what_the_caller_provides() -> None:
    reg: Registry[Any] = Registry("network")

    def net(n_assets: int, head: str = "head", head_params: dict[str, Any] | None = None) -> Any:
        return HEADS.build(head, context={"n_assets": n_assets}, **(head_params or {}))

    reg.register("net", net, nested={"head_params": ("head", HEADS)})
    # Head requires n_assets: the network's context supplies it, so it is not missing in head_params
    head = reg.build("net", context={"n_assets": 6}, head_params={"scale": 0.5})
    assert head.n_assets == 6 and head.scale == 0.5
    with pytest.raises(ConfigError, match=r"missing parameter\(s\) \['n_assets'\]"):
        reg.validate("net", {"n_assets": 6, "head_params": {"scale": 0.5}})  # not provided by the caller


def test_bind_validates_options_and_leaves_call_time_arguments() -> None:
    reg: Registry[Any] = Registry("covariance")

    def scaled(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return x * scale

    reg.register("scaled", scaled)
    reg.register("double", scaled, defaults={"scale": 2.0})
    assert reg.bind("scaled") is scaled
    x = torch.tensor([1.5, -2.0])
    assert torch.equal(reg.bind("scaled", scale="3")(x), x * 3.0)
    assert torch.equal(reg.bind("double")(x), x * 2.0)
    with pytest.raises(ConfigError, match=r"^covariance.scale: Input should be a valid number"):
        reg.bind("scaled", scale={"a": 1})
    with pytest.raises(ConfigError, match=r"^cov.span: Extra inputs"):
        reg.bind("scaled", where="cov", span=3)


def test_a_value_the_factory_refuses_is_prefixed_with_where_once() -> None:
    reg: Registry[Any] = Registry("thing")

    def positive(a: float = 1.0) -> float:
        if a <= 0:
            raise ConfigError(f"Positive: a={a} must be > 0.")
        return a

    reg.register("p", positive)
    with pytest.raises(ConfigError, match=r"^benchmark_params.p: Positive: a=-1.0 must be > 0.$"):
        reg.build("p", where="benchmark_params.p", a=-1)
    with pytest.raises(ConfigError, match=r"^Positive: a=-2.0"):  # no where: the factory's own message
        reg.build("p", a=-2)
