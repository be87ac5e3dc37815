"""Typed configs from YAML/TOML with one-line errors naming file and field."""

from __future__ import annotations

import datetime as dt
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


class Dated(BaseModel):
    start: dt.date | None = None


@pytest.mark.parametrize(
    ("name", "text", "token", "reason"),
    [
        ("bad.yaml", "# a run\nstart: 2020-13-01\n", "2020-13-01", "month must be in 1..12"),
        ("bad.yaml", "start: 2020-02-30\n", "2020-02-30", "day is out of range for month"),
        ("bad.toml", "# a run\nstart = 2020-13-01\n", "2020-13-01", "month must be in 1..12"),
        ("bad.toml", "start = 2020-02-30\n", "2020-02-30", "day is out of range for month"),
        ("bad.toml", "start = 2020-2-03\n", "2020-2-03", "month and day need two digits"),
    ],
)
def test_invalid_dates_name_file_line_value_and_form(
    tmp_path: Path, name: str, text: str, token: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    line = text.count("\n", 0, text.index(token)) + 1
    with pytest.raises(ConfigError) as info:
        load_config(Dated, path)
    expected = f"{path}: line {line}: invalid date '{token}' ({reason}); write dates as YYYY-MM-DD"
    assert str(info.value).startswith(expected)
    # a valid leap day parses to the date
    path.write_text(text.replace(token, "2020-02-29"))
    assert load_config(Dated, path).start == dt.date(2020, 2, 29)


def test_other_parse_errors_are_not_blamed_on_dates(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('start = 2020-01-31\nname = "unclosed\n')
    with pytest.raises(ConfigError, match=r"bad.toml: cannot parse the file \(.*line 2"):
        load_config(Dated, path)
