"""Seeds, generators, devices and dtypes: one place that turns user arguments into torch objects."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import PlainValidator

from gradfolio.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return a ``torch.device`` (CPU by default); raise :class:`ConfigError` for an unknown or absent one."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda' (or 'cuda:0').") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} was asked for but CUDA is not available here; use device='cpu'.")
    return dev


def make_generator(seed: int | torch.Generator | None, device: str | torch.device | None = None) -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed``.

    Parameters
    ----------
    seed
        An integer seed, an existing generator (returned unchanged), or ``None`` for a seed drawn
        from the operating system (a non-reproducible run).
    device
        Where random numbers are drawn; the same seed gives the same numbers on the same device.
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=resolve_device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A floating-point ``torch.dtype`` from itself or its name (``"float32"``, ``"torch.float64"``, ``"double"``).

    Raises
    ------
    ConfigError
        Not a floating-point dtype or the name of one.
    """
    value = getattr(torch, dtype.removeprefix("torch."), None) if isinstance(dtype, str) else dtype
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ConfigError(f"dtype={dtype!r} is not a floating-point torch dtype; use 'float32' or 'float64'.")
    return value


def _validate_dtype(value: Any) -> torch.dtype:
    """pydantic hook of :data:`TorchDType`: a ``ValueError`` (reported with the key's path) if not a dtype."""
    if not isinstance(value, (str, torch.dtype)):
        kind = type(value).__name__
        raise ValueError(f"expected a floating-point torch dtype or its name such as 'float32', got {kind}")
    return resolve_dtype(value)


TorchDType = Annotated[torch.dtype, PlainValidator(_validate_dtype)]
"""A floating-point ``torch.dtype`` in a typed signature or dataclass: a config may give its name
(``"float32"``, ``"float64"``; YAML ``null`` where the annotation is ``TorchDType | None``)."""


__all__ = ["resolve_device", "make_generator", "resolve_dtype", "TorchDType"]
