"""Classical baselines: delta, delta-gamma and delta-vega hedging as environment policies.

The environment always re-hedges the stock to delta neutral, so the baselines differ only in how
many contracts of the day's hedging option they trade:

- ``delta``: none;
- ``delta_gamma``: ``n_gamma = -portfolio_gamma / hedge_gamma``, leaving the book gamma neutral;
- ``delta_vega``: ``n_vega = -portfolio_vega / hedge_vega``, leaving the book vega neutral.

Each policy maps a state ``(paths, features)`` to the action that trades exactly that amount
under the environment's action map (:meth:`HedgingEnv.contracts_to_action`). With the default
``"gamma_vega"`` map all three are reachable; under ``"gamma"`` or ``"vega_fraction"`` an
amount outside the action range is clipped to the nearest reachable one.

They are built by name through :data:`HEDGES` (the one registry idiom of gradfolio:
``HEDGES.build("delta_gamma", context={"env": env})``); a new strategy is added with
``HEDGES.register("name", factory)`` where ``factory(env, ...)`` returns a policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.config import BASELINES, BaselineName
from gradfolio.hedging.env import HedgingEnv, Policy
from gradfolio.registry import Registry


class GreekHedge:
    """Baseline policy that neutralizes one greek with the day's hedging option.

    Parameters
    ----------
    env
        The environment whose action map the actions are for.
    target
        ``"delta"`` (trade no option), ``"delta_gamma"`` or ``"delta_vega"``.
    """

    def __init__(self, env: HedgingEnv, target: BaselineName) -> None:
        if target not in BASELINES:
            raise ConfigError(f"strategy {target!r} is unknown; use one of {', '.join(BASELINES)}.")
        self.env = env
        self.target = target

    def contracts(self, state: torch.Tensor) -> torch.Tensor:
        """Contracts ``(paths,)`` this strategy trades in ``state``."""
        if self.target == "delta":
            return torch.zeros_like(state[:, 0])
        n_gamma, n_vega = self.env.neutral_contracts(state)
        return n_gamma if self.target == "delta_gamma" else n_vega

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        """Action ``(paths,)`` that trades :meth:`contracts`."""
        return self.env.contracts_to_action(state, self.contracts(state))


HEDGES: Registry[Policy] = Registry("hedging strategy")
"""Hedging strategies by name; each factory takes the environment (given as ``context``)."""
for _name in BASELINES:
    HEDGES.register(_name, GreekHedge, defaults={"target": _name})


def baseline_policies(
    env: HedgingEnv, names: Sequence[str] = BASELINES, where: str = "evaluation.strategies"
) -> dict[str, Policy]:
    """The named strategies of :data:`HEDGES` as ``{name: policy}`` for
    :func:`gradfolio.hedging.evaluation.evaluate_policies`; an unknown name is a
    :class:`~gradfolio.errors.ConfigError` naming ``where`` and the choices."""
    return {name: HEDGES.build(name, where=f"{where}[{i}]", context={"env": env}) for i, name in enumerate(names)}


__all__ = ["BASELINES", "BaselineName", "GreekHedge", "HEDGES", "baseline_policies"]
