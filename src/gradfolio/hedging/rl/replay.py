"""Transitions and the replay buffer of the distributional agent.

:class:`Batch` holds ``B`` transitions ``(s, a, r, s', done)``; :class:`ReplayBuffer` keeps the last
``capacity`` of them in preallocated tensors on the agent's device, samples minibatches with a
seeded generator and saves / restores its filled part for checkpoints.
:class:`NStepAccumulator` turns the one-day transitions of a batch of paths into ``n``-step ones
``(s_t, a_t, sum_k gamma^k r_{t+k}, s_{t+n}, done)`` before they enter the buffer (the n-step
targets of Cao et al.'s D4PG agent).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from gradfolio.errors import ConfigError


class Batch(NamedTuple):
    """Transitions ``(s, a, r, s', done)``: ``(B, F)``, ``(B,)``, ``(B,)``, ``(B, F)``, ``(B,)`` (float 0/1)."""

    state: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_state: torch.Tensor
    done: torch.Tensor


class NStepAccumulator:
    """Builds ``n``-step transitions from the one-step transitions of ``P`` paths played in lockstep.

    :meth:`push` takes one day's transitions of every path (a :class:`Batch` of ``P`` rows, the
    same paths in the same order each day) and returns the ``n``-step transitions that are
    complete: the one that started ``n - 1`` days earlier, with

    - ``reward = sum_{k < m} gamma^k r_{t+k}``, where ``m <= n`` stops at the first ``done`` of the path;
    - ``next_state = s_{t+m}`` (the state after that last step);
    - ``done = 1`` if the episode ended inside the window, else 0.

    The critic's target is then ``reward + gamma^n (1 - done) Z'(next_state)``: a window cut by
    ``done`` never bootstraps, so its length ``m`` needs no discount of its own. When every path
    is done the shorter windows of the episode's last ``n - 1`` days are returned as well and the
    accumulator is empty again (an episode's transitions never mix with the next one's).
    With ``n = 1`` every batch is returned unchanged.

    Parameters
    ----------
    n
        Steps per transition (``>= 1``).
    gamma
        Discount of the rewards inside a window.
    """

    def __init__(self, n: int, gamma: float) -> None:
        if n < 1:
            raise ConfigError(f"NStepAccumulator: n={n} must be >= 1; pass agent n_step >= 1.")
        self.n, self.gamma = int(n), float(gamma)
        self.pending: list[Batch] = []

    def _window(self, days: list[Batch]) -> Batch:
        """The transition starting at ``days[0]`` over ``days`` (each ``(P, ...)``), cut at the first done."""
        first = days[0]
        reward = torch.zeros_like(first.reward)
        alive = torch.ones_like(first.done)  # 1 while no done was seen before this step
        next_state = first.next_state.clone()
        for k, day in enumerate(days):
            reward = reward + alive * (self.gamma**k) * day.reward
            next_state = torch.where(alive[:, None] > 0, day.next_state, next_state)
            alive = alive * (1.0 - day.done)
        return Batch(first.state, first.action, reward, next_state, 1.0 - alive)

    def push(self, batch: Batch) -> list[Batch]:
        """Add one day's transitions ``(P, ...)``; return the completed ``n``-step transitions (maybe none)."""
        if self.n == 1:
            return [batch]
        self.pending.append(batch)
        out: list[Batch] = []
        if len(self.pending) == self.n:
            out.append(self._window(self.pending))
            self.pending.pop(0)
        if bool((batch.done > 0).all()):
            while self.pending:
                out.append(self._window(self.pending))
                self.pending.pop(0)
        return out


class ReplayBuffer:
    """Circular replay buffer of transitions stored in preallocated tensors.

    Parameters
    ----------
    capacity
        Number of transitions kept; the oldest are overwritten first.
    n_features
        Width of the state.
    device, dtype
        Placement and precision of the storage.
    """

    def __init__(
        self, capacity: int, n_features: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"buffer capacity={capacity} must be >= 1; pass e.g. buffer_capacity=200000.")
        self.capacity, self.n_features = int(capacity), int(n_features)
        self.state = torch.zeros(capacity, n_features, device=device, dtype=dtype)
        self.next_state = torch.zeros_like(self.state)
        self.action = torch.zeros(capacity, device=device, dtype=dtype)
        self.reward = torch.zeros_like(self.action)
        self.done = torch.zeros_like(self.action)
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Batch) -> None:
        """Append ``B`` transitions (shapes of :class:`Batch`), wrapping around at ``capacity``."""
        n = batch.action.shape[0]
        if batch.state.shape != (n, self.n_features) or batch.next_state.shape != (n, self.n_features):
            raise ConfigError(
                f"replay buffer: states of shape {tuple(batch.state.shape)} / {tuple(batch.next_state.shape)} "
                f"do not match ({n}, {self.n_features}); pass (batch, n_features) states."
            )
        if n > self.capacity:
            raise ConfigError(f"replay buffer: {n} transitions exceed capacity {self.capacity}; raise the capacity.")
        idx = (self.position + torch.arange(n, device=self.action.device)) % self.capacity
        for store, values in zip(
            (self.state, self.action, self.reward, self.next_state, self.done), batch, strict=True
        ):
            store[idx] = values.to(store.dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ConfigError("replay buffer is empty; add transitions before sampling.")
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=self.action.device)
        return Batch(self.state[idx], self.action[idx], self.reward[idx], self.next_state[idx], self.done[idx])

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the storage and the write position (for checkpoints)."""
        n = self.size
        return {
            "capacity": self.capacity, "position": self.position, "size": n,
            "state": self.state[:n].clone(), "action": self.action[:n].clone(), "reward": self.reward[:n].clone(),
            "next_state": self.next_state[:n].clone(), "done": self.done[:n].clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the capacity must match)."""
        if state["capacity"] != self.capacity:
            raise ConfigError(f"checkpoint buffer capacity {state['capacity']} != configured {self.capacity}.")
        n = state["size"]
        for name in ("state", "action", "reward", "next_state", "done"):
            getattr(self, name)[:n] = state[name].to(getattr(self, name).device)
        self.position, self.size = state["position"], n


__all__ = ["Batch", "NStepAccumulator", "ReplayBuffer"]
