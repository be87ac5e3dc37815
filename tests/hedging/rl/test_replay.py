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
