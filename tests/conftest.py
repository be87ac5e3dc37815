"""Test helpers shared across the test folders (given as fixtures: test modules cannot import
conftest under ``--import-mode=importlib``)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from pydantic import BaseModel

from gradfolio.registry import Registry
from gradfolio.tracking import NullTracker


class RecordingTracker(NullTracker):
    """A tracker that keeps what it is told, and can stop a run like a kill: it raises
    ``KeyboardInterrupt`` when the metrics of step ``kill_at`` are logged."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at = kill_at
        self.params: dict = {}
        self.metrics: dict = {}
        self.steps: list = []
        self.artifacts: list[Path] = []

    def log_params(self, params):
        self.params.update(params)

    def log_metrics(self, metrics, step=None):
        self.steps.append(step)
        self.metrics.update(metrics)
        if self.kill_at is not None and step == self.kill_at:
            raise KeyboardInterrupt

    def log_artifact(self, path):
        self.artifacts.append(Path(path))


@pytest.fixture
def recording_tracker() -> type[RecordingTracker]:
    """The :class:`RecordingTracker` class (``recording_tracker(kill_at=2)`` builds one)."""
    return RecordingTracker


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for the test (tiny tensors: more threads only oversubscribe the CI cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_hedge() -> SimpleNamespace:
    """Hedging settings that train in seconds, shared by the RL, CLI and sweep tests.

    ``env``: a 5-day market with the time to go in the state; ``agent``: ANA, one hidden layer of 8,
    4 quantiles; ``trainer(**overrides)``: a :class:`~gradfolio.experiments.hedging.config.TrainerConfig`
    of 6 episodes of 8 paths, validated every 2, a checkpoint after every update and a 64-transition
    buffer; ``run``: a :class:`~gradfolio.experiments.hedging.train.HedgeTrainingConfig` of these
    with 2 episodes, no validation and 20 test paths; ``build(agent, trainer, run_dir=None, **kw)``:
    the :class:`~gradfolio.hedging.rl.Trainer` that
    :func:`~gradfolio.experiments.hedging.train.build_trainer` makes of ``env`` and these settings.
    """
    from gradfolio.experiments.hedging.config import EvaluationConfig, TrainerConfig
    from gradfolio.experiments.hedging.train import HedgeTrainingConfig, build_trainer
    from gradfolio.hedging.config import EnvConfig
    from gradfolio.hedging.rl import AgentConfig

    env = EnvConfig(n_days=5, time_to_go=True)
    agent = AgentConfig(hidden=(8,), n_quantiles=4, optimizer="ana")

    def trainer(**overrides: object) -> TrainerConfig:
        base = dict(n_paths=8, n_episodes=6, warmup_episodes=1, batch_size=16, eval_every=2, val_paths=8,
                    checkpoint_every=1, buffer_capacity=64, trajectory_length=2)
        return TrainerConfig(**{**base, **overrides})

    def build(agent_cfg: AgentConfig, trainer_cfg: TrainerConfig, run_dir: Path | None = None, **kwargs: object):
        cfg = HedgeTrainingConfig(env=env, agent=agent_cfg, trainer=trainer_cfg)
        return build_trainer(cfg, run_dir, **kwargs)

    run = HedgeTrainingConfig(env=env, agent=agent, trainer=trainer(n_episodes=2, eval_every=0),
                              evaluation=EvaluationConfig(n_paths=20))
    return SimpleNamespace(env=env, agent=agent, trainer=trainer, run=run, build=build)


# -- registry cases: a wrong value for every parameter of every entry -----------------------------

def _members(annotation: Any) -> list[Any]:
    """The alternatives of an annotation (``Annotated`` and unions unwrapped)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


class Untyped:
    """The wrong value of a parameter that has no type: nothing rejects it, so its test fails."""

    def __repr__(self) -> str:
        return "<a value no check rejects: give the parameter a type>"


def wrong_values(annotation: Any) -> list[Any]:
    """Values of a wrong type for a parameter annotated ``annotation``.

    A mapping where no mapping (dict, dataclass, pydantic model) is accepted, and a string that
    is no number, bool, dtype or literal choice where ``str`` itself is not accepted. An
    unannotated parameter (``Any``) gets none: the test of its entry then fails, asking for a type.
    """
    members = _members(annotation)
    if Any in members:
        return []

    def takes_mapping(m: Any) -> bool:
        origin = typing.get_origin(m) or m
        return dataclasses.is_dataclass(m) or (isinstance(origin, type) and issubclass(origin, (Mapping, BaseModel)))

    out: list[Any] = []
    if not any(takes_mapping(m) for m in members):
        out.append({"not": "valid"})
    if str not in members:
        out.append("x?")
    return out


def registry_cases(target: Registry[Any] | type, skip: tuple[str, ...] = ()) -> list[Any]:
    """``(entry name, parameter, wrong value)`` for every entry of a registry (or fields of a dataclass)."""
    if isinstance(target, Registry):
        models = {name: target.params_model(name) for name in target}
        schemas = {name: {k: f.annotation for k, f in m.model_fields.items()} for name, m in models.items()}
    else:
        hints = typing.get_type_hints(target, include_extras=True)
        schemas = {target.__name__: {f.name: hints[f.name] for f in dataclasses.fields(target)}}
    cases = []
    for name, fields in schemas.items():
        for param, annotation in fields.items():
            if param in skip:
                continue
            # an untyped parameter accepts anything: its case passes an arbitrary object and fails
            values = wrong_values(annotation) or [Untyped()]
            cases += [pytest.param(name, param, v, id=f"{name}-{param}-{type(v).__name__}") for v in values]
    return cases


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "registry_cases(target=..., skip=()): parametrize ``registry_case`` with (entry, parameter, wrong value) for "
        "every parameter of every entry of a Registry (or every field of a dataclass)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("registry_cases")
    if marker is not None and "registry_case" in metafunc.fixturenames:
        cases = registry_cases(*marker.args, **marker.kwargs)
        metafunc.parametrize("registry_case", [pytest.param(c.values, id=c.id) for c in cases])
