"""Layers of gradfolio.allocation.layers: time convolution, recurrent layers shared by assets, Maxout, time collapse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradfolio.allocation.layers import Maxout, TimeCollapse, TimeConv, TimeRNN
from gradfolio.errors import ConfigError

torch.set_num_threads(1)
D = torch.float64


def _xy(B=4, L=12, H=6, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.01 * torch.randn(B, 1, L, N, generator=g, dtype=D), 0.01 * torch.randn(B, 1, H, N, generator=g, dtype=D)


# -- layers ---------------------------------------------------------------------------------------

def test_time_conv_is_eq6_and_never_mixes_assets():
    conv = TimeConv(1, 2, kernel_size=3).double()
    x, _ = _xy()
    out = conv(x)
    K, b = conv.conv.weight[:, 0, :, 0], conv.conv.bias  # (2, 3)
    pad = torch.nn.functional.pad(x, (0, 0, 1, 1))
    i, j = 5, 3
    expected = b + (K * pad[0, 0, i:i + 3, j]).sum(-1)
    torch.testing.assert_close(out[0, :, i, j], expected)
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(conv(x[..., perm]), out[..., perm])


def test_time_rnn_shares_weights_across_assets_and_matches_per_asset_lstm():
    torch.manual_seed(0)
    layer = TimeRNN(1, hidden=3).double()
    x, _ = _xy()
    out = layer(x)  # (B, 3, L, N)
    ref, _ = layer.rnn(x[:, :, :, 2].transpose(1, 2))  # asset 2 alone: (B, L, 1)
    torch.testing.assert_close(out[:, :, :, 2], ref.transpose(1, 2))


def test_maxout_against_hand_computed_values():
    layer = Maxout(2, 2, pieces=3).double()
    with torch.no_grad():  # unit 0: pieces x0, x1 + 0.5, -x0 - x1; unit 1: x0 + x1, 2 x0, 1 - 3 x1
        layer.linear.weight.copy_(torch.tensor([[1, 0], [0, 1], [-1, -1], [1, 1], [2, 0], [0, -3]], dtype=D))
        layer.linear.bias.copy_(torch.tensor([0, 0.5, 0, 0, 0, 1], dtype=D))
    x = torch.tensor([[2.0, 1.0], [-1.0, -2.0], [0.0, 0.0]], dtype=D)
    # (2, 1): max(2, 1.5, -3) = 2, max(3, 4, -2) = 4; (-1, -2): max(-1, -1.5, 3) = 3, max(-3, -2, 7) = 7;
    # (0, 0): max(0, 0.5, 0) = 0.5, max(0, 0, 1) = 1
    torch.testing.assert_close(layer(x), torch.tensor([[2.0, 4.0], [3.0, 7.0], [0.5, 1.0]], dtype=D))
    with pytest.raises(ConfigError, match="pieces"):
        Maxout(2, 2, pieces=0)


@pytest.mark.parametrize("mode", ["last", "average"])
def test_time_collapse_last_and_average(mode):
    x, _ = _xy()
    out = TimeCollapse(mode).double()(x)
    torch.testing.assert_close(out, x[:, :, -1] if mode == "last" else x.mean(2))


def test_attention_collapse_against_a_loop_reference():
    torch.manual_seed(0)
    C = 3
    layer = TimeCollapse("attention", channels=C).double()
    x = torch.randn(2, C, 4, 3, dtype=D)
    out = layer(x).detach()
    assert out.shape == (2, C, 3)
    A, a, v = layer.affine.weight.tolist(), layer.affine.bias.tolist(), layer.context.tolist()
    for b in range(2):
        for n in range(3):
            hs = [x[b, :, t, n].tolist() for t in range(4)]
            s = [sum(math.tanh(sum(A[i][j] * h[j] for j in range(C)) + a[i]) * v[i] for i in range(C)) for h in hs]
            e = [math.exp(si) for si in s]
            attn = [ei / sum(e) for ei in e]
            expected = [sum(attn[t] * hs[t][c] for t in range(4)) for c in range(C)]
            np.testing.assert_allclose(out[b, :, n].numpy(), expected, rtol=1e-12)
    with torch.no_grad():
        layer.context.zero_()  # equal scores: uniform attention = the average
    torch.testing.assert_close(layer(x), x.mean(2))
