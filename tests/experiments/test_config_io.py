"""Typed configs from YAML/TOML with one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from gradfolio import ConfigError
from gradfolio.experiments.config_io import dump_config, load_config


class Train(BaseModel):
    lr: float = Field(1e-3, gt=0)
    epochs: int = 10


class Example(BaseModel):
    name: str = "run"
    train: Train = Train()


def test_yaml_toml_and_round_trip(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: x\ntrain:\n  lr: 0.5\n")
    (tmp_path / "a.toml").write_text('name = "x"\n[train]\nlr = 0.5\n')
    a = load_config(Example, tmp_path / "a.yaml")
    b = load_config(Example, tmp_path / "a.toml")
    assert a == b == Example(name="x", train=Train(lr=0.5))
    dump_config(a, tmp_path / "out.yaml")
    assert load_config(Example, tmp_path / "out.yaml") == a


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("bad.yaml", "train:\n  lr: -1\n", r"bad.yaml: field 'train.lr': Input should be greater than 0 \(got -1\)"),
        ("bad.yaml", "train: [1, 2\n", r"bad.yaml: cannot parse the file"),
        ("bad.toml", "train = \n", r"bad.toml: cannot parse the file"),
        ("bad.yaml", "- 1\n- 2\n", r"top level must be a mapping"),
        ("bad.json", "{}", r"unknown config format '.json'"),
    ],
)
def test_config_errors(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(Example, path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Example, tmp_path / "missing.yaml")
