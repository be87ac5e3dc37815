"""Gamma/vega hedging of an options book on a SABR market (ANADDH / Cao et al. 2023 setup).

Modules: :mod:`~gradfolio.hedging.sabr` (paths, Hagan implied vol),
:mod:`~gradfolio.hedging.blackscholes` (prices and greeks), :mod:`~gradfolio.hedging.book`
(batched option positions, client orders), :mod:`~gradfolio.hedging.env` (the vectorized
environment), :mod:`~gradfolio.hedging.baselines` (delta, delta-gamma, delta-vega hedging)
and :mod:`~gradfolio.hedging.evaluation` (episodes -> P&L metrics table); the subpackage
:mod:`~gradfolio.hedging.rl` holds the distributional RL agents (losses, replay, networks, agent,
training); :mod:`~gradfolio.hedging.deep` and :mod:`~gradfolio.hedging.deep_training` hold deep
hedging through the differentiable simulator (imported from there, not re-exported).

Exported here besides the market: the baselines (:data:`~gradfolio.hedging.config.BASELINES`,
:class:`~gradfolio.hedging.baselines.GreekHedge`, :func:`~gradfolio.hedging.baselines.baseline_policies`)
and the RL half (:class:`~gradfolio.hedging.rl.agent.AgentConfig`,
:class:`~gradfolio.hedging.rl.agent.DistributionalAgent`,
:class:`~gradfolio.hedging.rl.replay.ReplayBuffer`). The hedging ``Trainer`` stays in
:mod:`gradfolio.hedging.rl` so that ``from gradfolio.hedging import *`` never shadows
:class:`gradfolio.allocation.Trainer`; its file-level settings (``TrainerConfig``) live in
:mod:`gradfolio.experiments.hedging.config`.
"""

from gradfolio.hedging.baselines import BASELINES, HEDGES, GreekHedge, baseline_policies
from gradfolio.hedging.blackscholes import Greeks, bs_delta, bs_gamma, bs_greeks, bs_price, bs_vega
from gradfolio.hedging.book import OptionBook, draw_client_orders
from gradfolio.hedging.config import EnvConfig, MarketConfig
from gradfolio.hedging.env import Episode, HedgingEnv, Market, Policy
from gradfolio.hedging.rl import AgentConfig, DistributionalAgent, ReplayBuffer
from gradfolio.hedging.sabr import SabrPaths, hagan_implied_vol, simulate_sabr

__all__ = [
    "Greeks", "bs_greeks", "bs_price", "bs_delta", "bs_gamma", "bs_vega",
    "OptionBook", "draw_client_orders",
    "EnvConfig", "MarketConfig",
    "Episode", "HedgingEnv", "Market", "Policy",
    "SabrPaths", "hagan_implied_vol", "simulate_sabr",
    "BASELINES", "HEDGES", "GreekHedge", "baseline_policies",
    "AgentConfig", "DistributionalAgent", "ReplayBuffer",
]
