"""One checkpoint helper for every trainer: atomic, fingerprinted, and never executing code.

A :class:`Checkpoint` is one file. :meth:`Checkpoint.save` writes a state dictionary together
with a *fingerprint* (the settings a resumed run must share) to a temporary file and renames
it over the target, so a kill leaves the old checkpoint or the new one. :meth:`Checkpoint.load`
reads it with ``torch.load(weights_only=True)``: only tensors, numbers, strings, ``None`` and
lists / tuples / dicts of them are accepted, so a crafted file cannot run code (a pickle that
asks for anything else is refused with a :class:`~gradfolio.errors.ConfigError`), and checks
the fingerprint, naming every setting that differs.

States must therefore be made of those types: dataclasses go in as dictionaries
(``dataclasses.asdict``), RNG states as tensors, settings as JSON-like values.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gradfolio.errors import ConfigError
from gradfolio.io import atomic_write

FINGERPRINT = "fingerprint"


def _canonical(value: Any) -> Any:
    """``value`` as plain JSON data (tuples become lists, keys strings), for comparing fingerprints."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def save_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (temporary file, fsync, rename)."""
    return atomic_write(path, lambda fh: torch.save(dict(state), fh))


def load_state(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", owner: str = "checkpoint"
) -> dict[str, Any]:
    """Read a file written by :func:`save_state` with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path
        The file.
    map_location
        Where tensors are put.
    owner
        Who reads it, for messages (``"Trainer"``, ``"hedge evaluate"``).

    Raises
    ------
    ConfigError
        Missing, truncated or foreign file, or one that holds anything but tensors and plain data
        (which ``weights_only`` refuses to unpickle: a crafted file cannot execute code).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{owner}: no checkpoint at {p}; check the path or train first.")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # "Unsupported global: GLOBAL m.f", or "unsupported GLOBAL m.f whose module m is blocked" (os, posix...)
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle at all (text, a truncated file)
            raise ConfigError(
                f"{owner}: cannot read {p} (not a torch checkpoint); the file is truncated or not a gradfolio "
                "checkpoint: delete it to start afresh."
            ) from None
        raise ConfigError(
            f"{owner}: {p} asks to load {found.group(1)}, which is not plain data, and was refused unread "
            "(loading it could run code); use a checkpoint gradfolio wrote, or delete it."
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a truncated or foreign file
        raise ConfigError(
            f"{owner}: cannot read {p} ({type(exc).__name__}: {str(exc)[:200]}); the file is truncated or not a "
            "gradfolio checkpoint: delete it to start afresh."
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(f"{owner}: {p} is not a gradfolio checkpoint (a {type(state).__name__}); delete it.")
    return state


class Checkpoint:
    """A fingerprinted checkpoint file.

    Parameters
    ----------
    path
        The file (its folder is created on the first save).
    fingerprint
        JSON-like settings a resumed run must share with the one that wrote the file.
    owner
        Who owns it, for messages.
    fix
        What the user can do when the checkpoint cannot be resumed (appended to messages).
    """

    def __init__(
        self, path: str | os.PathLike[str], fingerprint: Mapping[str, Any], owner: str = "checkpoint", fix: str = ""
    ) -> None:
        self.path = Path(path)
        self.fingerprint = _canonical(dict(fingerprint))
        self.owner = owner
        self.fix = fix or f"delete {self.path} (or use another folder) to start afresh"

    def exists(self) -> bool:
        """Whether the file exists."""
        return self.path.is_file()

    def save(self, state: Mapping[str, Any]) -> Path:
        """Write ``state`` and the fingerprint atomically; returns the path."""
        if FINGERPRINT in state:
            raise ConfigError(f"{self.owner}: the state may not use the reserved key {FINGERPRINT!r}.")
        return save_state(self.path, {FINGERPRINT: self.fingerprint, **state})

    def load(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The saved state (without the fingerprint), checked to match this run's settings.

        Raises
        ------
        ConfigError
            Unreadable or unsafe file (see :func:`load_state`), no fingerprint, or settings that
            differ (each named with the saved and the current value).
        """
        state = load_state(self.path, map_location, self.owner)
        if FINGERPRINT not in state:
            raise ConfigError(f"{self.owner}: {self.path} is not a checkpoint of this kind (no settings); {self.fix}.")
        saved = _canonical(state.pop(FINGERPRINT))
        changed = diff(saved, self.fingerprint)
        if changed:
            raise ConfigError(
                f"{self.owner}: the checkpoint {self.path} was written with other settings ({'; '.join(changed)}); "
                f"resume with the checkpoint's settings, or {self.fix}."
            )
        return state


def diff(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like trees differ: ``["lr: checkpoint 0.001, now 0.01", ...]``."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in list(now) + [k for k in saved if k not in now]:
            out += diff(saved.get(key, "<absent>"), now.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    if saved != now:
        return [f"{prefix.rstrip('.') or '<root>'}: checkpoint {saved!r}, now {now!r}"]
    return []


__all__ = ["Checkpoint", "save_state", "load_state", "diff", "FINGERPRINT"]
