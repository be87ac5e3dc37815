"""Optimizers by name (``"adam"``, ``"ana"``) for the trainers: :data:`OPTIMIZERS` and :func:`make_optimizer`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch

from gradfolio.errors import ConfigError
from gradfolio.optim.ana import ANA
from gradfolio.registry import Registry

OptimizerName = Literal["adam", "ana"]
ANA_OPTIONS = ("betas", "eps", "weight_decay", "restart")

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")
"""Optimizers by name; the model's parameters are passed as context, the rest is validated by the
typed signature (``lr`` and, for ANA, ``betas``, ``eps``, ``weight_decay``, ``restart``)."""


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3) -> torch.optim.Adam:
    """PyTorch's Adam with its defaults ``betas=(0.9, 0.999)``, ``eps=1e-8`` and step size ``lr``."""
    return torch.optim.Adam(params, lr=lr)


OPTIMIZERS.register("ana", ANA)


def make_optimizer(
    name: str, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float, *, where: str = "optimizer",
    **ana_options: Any,
) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or :class:`~gradfolio.optim.ANA` over ``params`` with step ``lr`` (``OPTIMIZERS.build``).

    Parameters
    ----------
    name
        ``"adam"`` (PyTorch's Adam with its defaults ``betas=(0.9, 0.999)``, ``eps=1e-8``) or
        ``"ana"`` (ANA with its defaults, or ``ana_options``).
    params
        Parameters or parameter groups.
    lr
        Learning rate, > 0.
    where
        The caller's name for the setting, used in error messages (e.g. ``"agent.optimizer"``).
    **ana_options
        ``betas``, ``eps``, ``weight_decay``, ``restart`` of :class:`~gradfolio.optim.ANA`; only with ``"ana"``.

    Raises
    ------
    ConfigError
        An unknown ``name``, ``lr <= 0``, an unknown option, ANA options given with ``"adam"``, or
        an option of the wrong type (``agent.optimizer.betas: Input should be a valid tuple ...``).

    Examples
    --------
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = make_optimizer("ana", model.parameters(), 1e-3, restart="none")
    """
    if name not in OPTIMIZERS:
        choices = " or ".join(repr(n) for n in OPTIMIZERS.names())
        raise ConfigError(f"{where}={name!r} is unknown; use {choices}.")
    unknown = sorted(set(ana_options) - set(ANA_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown ANA option(s) {', '.join(unknown)}; use {', '.join(ANA_OPTIONS)}."
        )
    if name == "adam" and ana_options:
        given = sorted(ana_options)
        raise ConfigError(
            f"{where}.{given[0]}: {where}='adam' takes no ANA option ({', '.join(given)}); drop them or use 'ana'."
        )
    options = OPTIMIZERS.validate(name, {"lr": lr, **ana_options}, where, provided={"params"})
    if not options["lr"] > 0.0:
        raise ConfigError(f"{where}: lr={lr} must be > 0; pass a positive step size such as 1e-3.")
    return OPTIMIZERS.build(name, where=where, context={"params": params}, **options)


__all__ = ["ANA_OPTIONS", "OPTIMIZERS", "OptimizerName", "make_optimizer"]
