"""One constructor for the optimizers that gradfolio's trainers offer by name (``"adam"``, ``"ana"``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch

from gradfolio.errors import ConfigError
from gradfolio.optim.ana import ANA

OptimizerName = Literal["adam", "ana"]
ANA_OPTIONS = ("betas", "eps", "weight_decay", "restart")


def make_optimizer(
    name: str, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float, *, where: str = "optimizer",
    **ana_options: Any,
) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or :class:`~gradfolio.optim.ANA` over ``params`` with step size ``lr``.

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
        An unknown ``name``, ``lr <= 0``, an unknown option, or ANA options given with ``"adam"``.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = make_optimizer("ana", model.parameters(), 1e-3, restart="none")
    """
    if not lr > 0.0:
        raise ConfigError(f"{where}: lr={lr} must be > 0; pass a positive step size such as 1e-3.")
    unknown = sorted(set(ana_options) - set(ANA_OPTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown ANA option(s) {', '.join(unknown)}; use {', '.join(ANA_OPTIONS)}.")
    if name == "ana":
        return ANA(params, lr=lr, **ana_options)
    if name == "adam":
        if ana_options:
            raise ConfigError(
                f"{where}='adam' takes no ANA option ({', '.join(sorted(ana_options))}); drop them or use 'ana'."
            )
        return torch.optim.Adam(params, lr=lr)
    raise ConfigError(f"{where}={name!r} is unknown; use 'adam' or 'ana'.")


__all__ = ["ANA_OPTIONS", "OptimizerName", "make_optimizer"]
