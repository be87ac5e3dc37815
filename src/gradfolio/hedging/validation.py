"""Input coercion and domain checks shared by the hedging market modules.

:func:`as_tensors` turns the mixed float / tensor arguments of :mod:`~gradfolio.hedging.blackscholes`
and :mod:`~gradfolio.hedging.sabr` into tensors of one dtype and device; :func:`check_positive`
refuses values outside a positive domain with a :class:`~gradfolio.errors.ConfigError` that names
the function, the argument and the fix. :class:`~gradfolio.hedging.env.HedgingEnv` uses the same
check on a user-supplied market.
"""

from __future__ import annotations

import torch

from gradfolio.errors import ConfigError

Scalar = float | torch.Tensor


def as_tensors(*values: Scalar) -> list[torch.Tensor]:
    """The arguments as tensors, each keeping its own shape (broadcasting is left to the caller).

    Tensors pass through unchanged. Python numbers take the dtype and device of the first tensor
    argument (the default float dtype if that tensor is not floating point), or float64 on the CPU
    when no argument is a tensor.
    """
    ref = next((v for v in values if isinstance(v, torch.Tensor)), None)
    if ref is None:
        return [torch.as_tensor(v, dtype=torch.float64) for v in values]
    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    return [v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=dtype, device=ref.device) for v in values]


def check_positive(where: str, name: str, value: torch.Tensor, fix: str, *, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless every element of ``value`` is ``> 0`` (``>= 0`` with ``allow_zero``); NaN fails.

    The message reads ``"{where}: {name} must be > 0, got {first bad value} ({count} of {numel}
    values); {fix}."``; ``value`` has any shape.
    """
    ok = value >= 0 if allow_zero else value > 0
    if not bool(ok.all()):
        bad = value.detach()[~ok]
        raise ConfigError(
            f"{where}: {name} must be {'>= 0' if allow_zero else '> 0'}, got {float(bad.flatten()[0])} "
            f"({bad.numel()} of {value.numel()} values); {fix}."
        )


__all__ = ["Scalar", "as_tensors", "check_positive"]
