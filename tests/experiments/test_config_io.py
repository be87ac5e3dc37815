"""Typed configs from YAML/TOML with one-line errors naming file and field."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from gradfolio import ConfigError
from gradfolio.experiments.config_io import (
    MAX_CONFIG_BYTES,
    MAX_EXCERPT,
    MAX_YAML_NODES,
    dump_config,
    excerpt,
    load_config,
    read_mapping,
)


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


# --- bounded reading: size, aliases, duplicate keys, excerpts --------------------------------

_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
)


def test_alias_bomb_fails_fast_with_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_BOMB)
    assert len(_BOMB.encode()) < 400  # 9**8 = 43 million strings once expanded; line 6 (f) alone holds 9**6
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(Example, path)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert message == (
        f"{path}: line 6: its aliases expand to more than {MAX_YAML_NODES:,} values (nested aliases multiply); "
        "write the values out instead of nesting aliases."
    )
    assert "\n" not in message and len(message) < 300


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("name: x\nloop: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=r"loop.yaml: line 2: an alias refers to a collection that contains it"):
        read_mapping(path)


def test_legitimate_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "defaults: &d {lr: 0.25, epochs: 3}\n"
        "train:\n  <<: *d\n  epochs: 7\n"  # a merge key, then one key overridden: not a duplicate
        "copy: *d\n"  # the anchor reused once more
    )
    assert read_mapping(path) == {
        "defaults": {"lr": 0.25, "epochs": 3},
        "train": {"lr": 0.25, "epochs": 7},
        "copy": {"lr": 0.25, "epochs": 3},
    }
    path.write_text("d: &d {lr: 0.25, epochs: 3}\ntrain: *d\n")
    assert load_config(Example, path.with_name("ok.yaml")) == Example(train=Train(lr=0.25, epochs=3))
    # nested aliases that stay under the limit (9**4 = 6,561 values) are expanded
    path.write_text("".join(_BOMB.splitlines(keepends=True)[:4]))
    assert len(read_mapping(path)["d"]) == 9 and read_mapping(path)["d"][8][8][8] == ["lol"] * 9


def test_node_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradfolio.experiments.config_io as config_io

    monkeypatch.setattr(config_io, "MAX_YAML_NODES", 10)
    path = tmp_path / "limit.yaml"
    path.write_text("a: &a [1, 2]\nb: *a\n")  # mapping, 2 keys, 2 lists of 2 = 1 + 2 + 2 * 3 = 9 nodes
    assert read_mapping(path) == {"a": [1, 2], "b": [1, 2]}
    path.write_text("a: &a [1, 2]\nb: *a\nc: 3\n")  # + 2 nodes = 11
    with pytest.raises(ConfigError, match=r"limit.yaml: line 1: its aliases expand to more than 10 values"):
        read_mapping(path)


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("name: a\ntrain:\n  lr: 0.1\nname: b\n", "'name'", 4, 1),
        ("name: a\ntrain:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n", "'lr'", 5, 3),
        ("1: a\n2: b\n1: c\n", "1", 3, 1),
    ],
)
def test_duplicate_yaml_key_names_the_key_and_its_lines(
    tmp_path: Path, text: str, key: str, line: int, first: int
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_mapping(path)
    assert str(info.value) == f"{path}: duplicate key {key} on line {line} (first on line {first}); keep one of the two."


def test_duplicate_toml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.toml"
    path.write_text('name = "a"\nname = "b"\n')
    with pytest.raises(ConfigError, match=r"dup.toml: cannot parse the file \(Cannot overwrite a value \(at line 2"):
        read_mapping(path)


def test_file_larger_than_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "#" * MAX_CONFIG_BYTES)
    size = path.stat().st_size
    with pytest.raises(ConfigError) as info:
        read_mapping(path)
    assert str(info.value) == (
        f"{path}: the file is {size:,} bytes, more than the 1,048,576 bytes (1 MiB) a config may have; "
        "pass a config file, not a data file (configs name their data files by path)."
    )
    path.write_text("name: x\n" + "#" * (MAX_CONFIG_BYTES - 9) + "\n")  # exactly the limit
    assert read_mapping(path) == {"name": "x"}


@pytest.mark.parametrize("depth", [999, 50_000])
def test_deeply_nested_file_is_one_config_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError, match=r"deep.yaml: (the file is nested too deeply|cannot parse the file \(while increasing flow level exceeded maximum nesting depth)"):
        read_mapping(path)


def test_huge_got_value_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "got.yaml"
    path.write_text("name: [" + ", ".join(["xxxxx"] * 50_000) + "]\ntrain:\n  lr: '" + "9" * 5000 + "z'\n")
    with pytest.raises(ConfigError) as info:
        load_config(Example, path)
    message = str(info.value)
    parts = message.split("; ")
    assert parts[0] == f"{path}: field 'name': Input should be a valid string (got {excerpt(['xxxxx'] * 50_000)})"
    assert parts[0].endswith("(got ['xxxxx', 'xxxxx', 'xxxxx', 'xxxxx', 'xxxxx', 'xxxxx', 'xxxxx', 'xxxxx', ...])")
    got = parts[1].split(" (got ", 1)[1][:-1]
    assert len(got) == MAX_EXCERPT and got.startswith("'999") and "..." in got and got.endswith("999z'")  # head and tail
    assert len(message) < 1000  # uncut: 450,000 characters


def test_excerpt_keeps_short_values_whole() -> None:
    assert excerpt(-1) == "-1"
    assert excerpt("abc") == "'abc'"
    assert excerpt({"a": [1, 2]}) == "{'a': [1, 2]}"
    assert len(excerpt("y" * 1000, limit=20)) <= 20


def test_unreadable_and_tilde_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cfg.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"cfg.yaml: a folder, not a file; pass the path of an existing"):
        read_mapping(folder)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "home.yaml").write_text("name: h\n")
    assert read_mapping("~/home.yaml") == {"name": "h"}
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin.yaml: byte b'\\xe9' at offset 9 is not UTF-8 text; save the file as UTF-8"):
        read_mapping(bad)
