"""The replay buffer: wrap-around, sampling, state dict round trip and errors."""

from __future__ import annotations

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.rl.replay import Batch, ReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DT = torch.float64


def _batch(n, f=3, start=0.0):
    s = torch.arange(n * f, dtype=DT).reshape(n, f) + start
    a = torch.arange(n, dtype=DT) + start
    return Batch(s, a, -a, s + 1, torch.zeros(n, dtype=DT))


def test_replay_buffer_wraps_and_round_trips():
    buf = ReplayBuffer(5, 3, dtype=DT)
    buf.add(_batch(3))
    buf.add(_batch(4, start=100.0))
    assert len(buf) == 5 and buf.position == 2
    # slots 0-1 overwritten by the last two of the second batch, 2 by its... order: 3,4,0,1
    assert buf.action.tolist() == [102.0, 103.0, 2.0, 100.0, 101.0]
    assert torch.equal(buf.next_state, buf.state + 1)
    gen = torch.Generator().manual_seed(0)
    batch = buf.sample(64, gen)
    assert set(batch.action.tolist()) == {102.0, 103.0, 2.0, 100.0, 101.0}
    assert torch.equal(batch.reward, -batch.action)
    copy_ = ReplayBuffer(5, 3, dtype=DT)
    copy_.load_state_dict(buf.state_dict())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(x, y) for x, y in zip(buf.sample(8, g1), copy_.sample(8, g2), strict=True))


def test_replay_buffer_errors():
    buf = ReplayBuffer(4, 3, dtype=DT)
    with pytest.raises(ConfigError, match="empty"):
        buf.sample(2, torch.Generator())
    with pytest.raises(ConfigError, match="capacity"):
        buf.add(_batch(5))
    with pytest.raises(ConfigError, match="n_features"):
        buf.add(_batch(2, f=4))
    with pytest.raises(ConfigError, match="capacity"):
        ReplayBuffer(0, 3)


# -- n-step transitions (Cao et al.'s 5-step targets) ---------------------------------------------

def _day(t: int, rewards: list[float], done: bool) -> Batch:
    """Day ``t`` of 2 paths: state (t, path), action t / 10, next state (t + 1, path)."""
    dt = torch.float64
    state = torch.tensor([[t, 0.0], [t, 1.0]], dtype=dt)
    next_state = torch.tensor([[t + 1, 0.0], [t + 1, 1.0]], dtype=dt)
    return Batch(state, torch.full((2,), t / 10, dtype=dt), torch.tensor(rewards, dtype=dt), next_state,
                 torch.full((2,), float(done), dtype=dt))


def test_n_step_returns_discount_and_done_by_hand():
    """n = 3, gamma = 0.5, a 4-day episode with rewards r_t = (1, 2, 4, 8) on path 0 and (-1, 3, 5, 7) on path 1."""
    from gradfolio.hedging.rl.replay import NStepAccumulator

    acc = NStepAccumulator(3, 0.5)
    r = [[1.0, -1.0], [2.0, 3.0], [4.0, 5.0], [8.0, 7.0]]
    out = [acc.push(_day(t, r[t], done=t == 3)) for t in range(4)]
    assert [len(o) for o in out] == [0, 0, 1, 3]
    windows = out[2] + out[3]  # starting on days 0, 1, 2, 3
    expected_reward = [
        [1 + 0.5 * 2 + 0.25 * 4, -1 + 0.5 * 3 + 0.25 * 5],  # day 0: full window, not done
        [2 + 0.5 * 4 + 0.25 * 8, 3 + 0.5 * 5 + 0.25 * 7],  # day 1: full window ending on the last day: done
        [4 + 0.5 * 8, 5 + 0.5 * 7],  # day 2: cut by the end of the episode
        [8.0, 7.0],  # day 3
    ]
    for t, (w, rew) in enumerate(zip(windows, expected_reward, strict=True)):
        assert w.reward.tolist() == pytest.approx(rew, rel=1e-15), t
        assert w.state[:, 0].tolist() == [t, t] and w.action.tolist() == [t / 10, t / 10]
        assert w.next_state[:, 0].tolist() == [min(t + 3, 4)] * 2  # s_{t+n}, or the terminal state
        assert w.done.tolist() == ([0.0, 0.0] if t == 0 else [1.0, 1.0])
    assert acc.pending == []  # nothing leaks into the next episode
    assert [len(acc.push(_day(t, [1.0, 1.0], done=False))) for t in range(3)] == [0, 0, 1]


def test_n_step_stops_at_a_path_s_own_done():
    """A path done mid-window keeps the reward and next state of its last step; the other runs on."""
    from gradfolio.hedging.rl.replay import NStepAccumulator

    acc = NStepAccumulator(2, 0.9)
    first = _day(0, [1.0, 2.0], done=False)
    second = _day(1, [10.0, 20.0], done=False)
    first = first._replace(done=torch.tensor([1.0, 0.0], dtype=torch.float64))  # path 0 ends on day 0
    [w] = [*acc.push(first), *acc.push(second)]
    assert w.reward.tolist() == pytest.approx([1.0, 2.0 + 0.9 * 20.0], rel=1e-15)
    assert w.next_state[:, 0].tolist() == [1.0, 2.0]
    assert w.done.tolist() == [1.0, 0.0]


def test_one_step_accumulator_passes_batches_through_and_n_is_checked():
    from gradfolio.hedging.rl.replay import NStepAccumulator

    day = _day(0, [1.0, 2.0], done=False)
    [same] = NStepAccumulator(1, 0.5).push(day)
    assert same is day
    with pytest.raises(ConfigError, match="n=0"):
        NStepAccumulator(0, 1.0)
