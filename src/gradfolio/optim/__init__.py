"""Optimizers shared by every gradfolio trainer."""

from gradfolio.optim.ana import ANA, next_t

__all__ = ["ANA", "next_t"]
