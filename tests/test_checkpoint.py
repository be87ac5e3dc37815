"""The one checkpoint helper: atomic, fingerprinted, and refusing files that could run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from gradfolio.checkpoint import Checkpoint, diff, load_state, save_state
from gradfolio.errors import ConfigError


def test_round_trip_keeps_tensors_rng_and_plain_data(tmp_path: Path) -> None:
    state = {
        "model": {"w": torch.arange(6.0).reshape(2, 3)},
        "rng": torch.get_rng_state(),
        "history": {"train_loss": [0.5, 0.25], "best_epoch": 1},
        "best": (0.75, {"b": torch.tensor([1.5, -2.0])}),
    }
    ckpt = Checkpoint(tmp_path / "sub" / "c.pt", {"lr": 1e-3, "hidden": (8, 4)}, owner="T")
    ckpt.save(state)
    back = Checkpoint(tmp_path / "sub" / "c.pt", {"lr": 1e-3, "hidden": [8, 4]}, owner="T").load()
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert torch.equal(back["rng"], state["rng"])
    assert back["history"] == {"train_loss": [0.5, 0.25], "best_epoch": 1}
    assert back["best"][0] == 0.75 and torch.equal(back["best"][1]["b"], torch.tensor([1.5, -2.0]))
    assert "fingerprint" not in back
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.pt"]  # no temporary file left


def test_changed_settings_are_named(tmp_path: Path) -> None:
    Checkpoint(tmp_path / "c.pt", {"lr": 1e-3, "net": {"hidden": 8, "act": "relu"}}).save({"x": 1})
    with pytest.raises(ConfigError) as err:
        Checkpoint(tmp_path / "c.pt", {"lr": 2e-3, "net": {"hidden": 8, "act": "tanh"}}, owner="Trainer").load()
    msg = str(err.value)
    assert msg.startswith("Trainer: ")
    assert "lr: checkpoint 0.001, now 0.002" in msg and "net.act: checkpoint 'relu', now 'tanh'" in msg
    assert "hidden" not in msg


def test_diff_reports_absent_keys_both_ways() -> None:
    assert diff({"a": 1, "old": 2}, {"a": 1, "new": 3}) == [
        "new: checkpoint '<absent>', now 3", "old: checkpoint 2, now '<absent>'"]


class _Evil:
    def __reduce__(self):  # what a crafted checkpoint does: run a command on unpickling
        return (Path.touch, (Path(self.target),))

    def __init__(self, target: Path) -> None:
        self.target = str(target)


def test_crafted_pickle_is_refused_unexecuted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "trainer.pt"
    torch.save({"fingerprint": {}, "payload": _Evil(marker)}, path)
    with pytest.raises(ConfigError, match="asks to load .* refused unread"):
        load_state(path, owner="Trainer")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # and torch itself refuses it the same way
        torch.load(path, weights_only=True)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_truncated_or_foreign_files_are_one_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="cannot read .*delete it"):
        Checkpoint(path, {}).load()


def test_missing_file_and_non_dict_and_no_fingerprint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no checkpoint at"):
        load_state(tmp_path / "absent.pt")
    save_state(tmp_path / "list.pt", {"a": 1})
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="not a gradfolio checkpoint"):
        load_state(tmp_path / "list.pt")
    save_state(tmp_path / "plain.pt", {"a": 1})
    with pytest.raises(ConfigError, match="no settings"):
        Checkpoint(tmp_path / "plain.pt", {"a": 1}).load()


def test_reserved_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reserved key"):
        Checkpoint(tmp_path / "c.pt", {}).save({"fingerprint": 1})


def test_save_state_round_trip_with_rng_state(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    state = {"weights": torch.randn(3, 4, generator=gen), "rng": gen.get_state(), "epoch": 7}
    save_state(tmp_path / "ckpt.pt", state)
    back = load_state(tmp_path / "ckpt.pt")
    assert back["epoch"] == 7
    torch.testing.assert_close(back["weights"], state["weights"])
    restored = torch.Generator()
    restored.set_state(back["rng"])
    assert torch.equal(torch.rand(5, generator=restored), torch.rand(5, generator=gen))
