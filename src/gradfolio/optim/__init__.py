"""Optimizers shared by every gradfolio trainer."""

from gradfolio.optim.ana import ANA, Restart, at_iterates, next_t
from gradfolio.optim.factory import ANA_OPTIONS, OPTIMIZERS, OptimizerName, make_optimizer

__all__ = ["ANA", "ANA_OPTIONS", "OPTIMIZERS", "OptimizerName", "Restart", "at_iterates", "make_optimizer", "next_t"]
