"""Seeds, generators and devices: one place that turns user arguments into torch objects."""

from __future__ import annotations

import torch

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


__all__ = ["resolve_device", "make_generator"]
