"""Adaptive Nesterov Acceleration (ANA), the optimizer of ANADDH (Zhao, Cai & Lu, eqs. 23-32).

Each step evaluates the gradient at a Nesterov auxiliary point and moves from there with an
Adam-style, bias-corrected adaptive step:

.. math::

    t_{r+1} &= \\tfrac{1}{2}\\bigl(1 + \\sqrt{1 + 4 t_r^2}\\bigr), \\quad t_1 = 1            && (23)\\\\
    y_r &= \\theta^r + \\tfrac{t_r - 1}{t_{r+1}} (\\theta^r - \\theta^{r-1})                  && (24)\\\\
    m_r &= \\beta_1 m_{r-1} + (1 - \\beta_1)\\, g(y_r), \\quad
    v_r = \\beta_2 v_{r-1} + (1 - \\beta_2)\\, g(y_r)^2                                      && (25, 26)\\\\
    \\theta^{r+1} &= y_r - \\mathrm{lr} \\cdot \\frac{\\sqrt{1 - \\beta_2^r}}{1 - \\beta_1^r}
        \\frac{m_r}{\\sqrt{v_r + \\epsilon}}                                                   && (27)

The paper's eqs. (28)-(32) give the same rule for the actor; there eq. (32) multiplies the
adaptive step (30) by the gradient once more, which would square the gradient's units, so
both networks use eq. (27) here. The paper's eq. (27) has no learning rate (``lr = 1``);
``lr`` scales the step as in Adam. ``eps`` sits under the square root as in eq. (27).

**Where the parameters live.** Like Sutskever's formulation of Nesterov momentum in
``torch.optim.SGD``, the model's parameters hold the auxiliary point ``y_r`` (where
``backward()`` computes the gradient); the iterate ``theta^r`` is kept in the optimizer state.
Evaluate, snapshot and save a model at ``theta^r``: :func:`at_iterates` puts the iterates into
the parameters for the duration of a ``with`` block (validation, best-model snapshots),
:meth:`ANA.iterate_` puts them there for good (the end of training), :meth:`ANA.iterates`
returns copies.

**Restart.** ``t_r`` grows without bound, so the momentum weight ``(t_r - 1) / t_{r+1}``
tends to 1. With ``restart="gradient"`` (O'Donoghue & Candes, 2015) the sequence is reset to
``t = 1`` (no momentum on the next step) whenever the step goes uphill, i.e. when
``g(y_r) . (theta^{r+1} - theta^r) > 0`` summed over a parameter group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch.optim import Optimizer

from gradfolio.errors import ConfigError

Restart = Literal["none", "gradient"]


def next_t(t: float) -> float:
    """Nesterov's sequence, eq. (23): ``t_{r+1} = (1 + sqrt(1 + 4 t_r^2)) / 2``."""
    return 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))


class ANA(Optimizer):
    """Adaptive Nesterov Acceleration optimizer.

    Parameters
    ----------
    params
        Parameters or parameter groups, as for any ``torch.optim.Optimizer``.
    lr
        Step size multiplying the bias-corrected adaptive direction of eq. (27).
    betas
        Decay rates ``(beta_1, beta_2)`` of the first and second moments, eqs. (25)-(26).
    eps
        Added to the second moment under the square root, eq. (27).
    weight_decay
        L2 penalty coefficient added to the gradient (``g + weight_decay * y``).
    restart
        ``"none"`` follows eq. (23) for ever; ``"gradient"`` resets ``t`` to 1 whenever a step
        goes uphill (adaptive restart).

    Examples
    --------
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = ANA(model.parameters(), lr=1e-2, restart="gradient")
    >>> loss = model(torch.ones(4, 3)).pow(2).mean()
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        restart: Restart = "gradient",
    ) -> None:
        if not lr > 0.0:
            raise ConfigError(f"ANA: lr={lr} must be > 0; pass a positive step size such as 1e-3.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ConfigError(f"ANA: betas={betas} must both lie in [0, 1); e.g. (0.9, 0.999).")
        if not eps > 0.0:
            raise ConfigError(f"ANA: eps={eps} must be > 0 (it keeps sqrt(v + eps) away from zero).")
        if weight_decay < 0.0:
            raise ConfigError(f"ANA: weight_decay={weight_decay} must be >= 0.")
        if restart not in ("none", "gradient"):
            raise ConfigError(f"ANA: restart={restart!r} is unknown; use 'none' or 'gradient'.")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "restart": restart}
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["t"] = 1.0  # t_r of the auxiliary point held in p (t_1 = 1)
            state["iterate"] = p.detach().clone()  # theta^r
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """Take one ANA step with the gradients stored in ``.grad`` (computed at ``y_r``).

        Parameters
        ----------
        closure
            Optional callable that re-evaluates the model and returns the loss.

        Returns
        -------
        The loss returned by ``closure``, or ``None``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._step_group(group, params)
        return loss

    def _step_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        """Eqs. (24)-(27) for one parameter group, with ``torch._foreach`` ops over its tensors."""
        beta1, beta2 = group["betas"]
        if any(p.grad.is_sparse for p in params):
            raise ConfigError(
                "ANA does not support sparse gradients; use dense parameters (e.g. nn.Embedding(..., sparse=False))."
            )
        states = [self._init_state(p) for p in params]
        for state in states:
            state["step"] += 1
        grads = [p.grad for p in params]
        if group["weight_decay"] != 0.0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        m = [st["exp_avg"] for st in states]
        v = [st["exp_avg_sq"] for st in states]
        iterates = [st["iterate"] for st in states]
        torch._foreach_lerp_(m, grads, 1.0 - beta1)  # eq. (25): beta1 m + (1 - beta1) g
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)  # eq. (26)
        denom = torch._foreach_add(v, group["eps"])
        torch._foreach_sqrt_(denom)
        step = torch._foreach_div(m, denom)
        r = [st["step"] for st in states]
        torch._foreach_mul_(step, [-group["lr"] * math.sqrt(1.0 - beta2**k) / (1.0 - beta1**k) for k in r])
        theta_next = torch._foreach_add(params, step)  # eq. (27)
        delta = torch._foreach_sub(theta_next, iterates)  # theta^{r+1} - theta^r
        restart = group["restart"] == "gradient" and bool(
            sum((g * d).sum(dtype=torch.float64) for g, d in zip(grads, delta, strict=True)) > 0
        )
        momentum = []
        for state in states:
            state["t"] = 1.0 if restart else next_t(state["t"])  # t_{r+1}
            momentum.append((state["t"] - 1.0) / next_t(state["t"]))  # (t_{r+1} - 1) / t_{r+2}
        # eq. (24) for the next auxiliary point: y_{r+1} = theta^{r+1} + momentum (theta^{r+1} - theta^r)
        torch._foreach_mul_(delta, momentum)
        torch._foreach_copy_(params, torch._foreach_add(theta_next, delta))
        torch._foreach_copy_(iterates, theta_next)

    def _iterate(self, p: torch.Tensor) -> torch.Tensor:
        """The iterate ``theta^r`` of parameter ``p`` (``p`` itself before its first step)."""
        state = self.state.get(p)
        return state["iterate"] if state else p

    @torch.no_grad()
    def iterates(self) -> list[torch.Tensor]:
        """Copies of the current iterates ``theta^r`` of every parameter, in parameter-group order."""
        return [self._iterate(p).detach().clone() for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def iterate_(self) -> None:
        """Copy the iterates ``theta^r`` into the parameters (replacing the auxiliary points ``y_r``).

        The moments and ``t`` are kept; a following :meth:`step` takes its gradient at
        ``theta^r`` instead of the look-ahead point ``y_r`` (the extrapolation is skipped once).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    p.copy_(self._iterate(p))


@contextmanager
def at_iterates(*optimizers: Optimizer) -> Iterator[None]:
    """Within the ``with`` block the parameters of every :class:`ANA` among ``optimizers`` hold its iterates.

    The look-ahead points ``y_r`` are restored on exit, so training continues unchanged.
    Optimizers of other types (Adam, whose parameters are the iterates) are left alone, so
    trainers can use it whatever optimizer they were given.

    Parameters
    ----------
    optimizers
        Any ``torch.optim.Optimizer`` instances.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = ANA(model.parameters(), lr=1e-2)
    >>> with at_iterates(opt):
    ...     validation_loss = model(torch.ones(4, 3)).pow(2).mean()  # at theta^r, not y_r
    """
    anas = [opt for opt in optimizers if isinstance(opt, ANA)]
    pairs = [(p, opt._iterate(p)) for opt in anas for group in opt.param_groups for p in group["params"]]
    with torch.no_grad():
        saved = [p.detach().clone() for p, _ in pairs]
        for p, theta in pairs:
            p.copy_(theta)
    try:
        yield
    finally:
        with torch.no_grad():
            for (p, _), y in zip(pairs, saved, strict=True):
                p.copy_(y)


__all__ = ["ANA", "Restart", "at_iterates", "next_t"]
