"""Training throughput of gradfolio's LSTM allocation networks vs DeepDow's BachelierNet.

Shapes of the brief: 20 assets, lookback 40, horizon 20, batch 32, one input channel.
One step = forward + Sharpe loss + backward + Adam step; samples/second are timed side by
side in this process with ``torch.set_num_threads(threads)``. Rows:

- ``deepdow BachelierNet`` — DeepDow 0.2.3's own network (bidirectional LSTM looped over assets
  in Python, attention collapse, cvxpylayers Markowitz allocator), DeepDow's SharpeRatio loss.
- ``deepdow LSTM + softmax`` — DeepDow's layers (RNN, AttentionCollapse, SoftmaxAllocator):
  the same model as gradfolio's row below, for an allocator-neutral comparison.
- ``gradfolio lstm + softmax`` — :class:`gradfolio.allocation.RecurrentNet`.
- ``gradfolio markowitz`` — :class:`gradfolio.allocation.MarkowitzNet` (BachelierNet's design
  and constraints: long-only, fully invested; batched torch QP allocator).
- ``gradfolio dense`` / ``gradfolio conv`` — :func:`gradfolio.allocation.make_network` ``"dense"`` and
  ``"conv"`` (softmax), the non-recurrent designs, for scale.
- ``torch nn.LSTM alone`` — the recurrent layer of these networks by itself (oneDNN forward +
  backward on the ``B N`` series, output summed): the ceiling of any network built on it.

Before anything runs, glibc is told to keep freed memory (:mod:`benchutil`), for every row alike.

Usage: ``python benchmarks/bench_allocation.py [--device cpu|cuda] [--dtype float32|float64]``.
Rows are timed in interleaved rounds and the best round counts (the machine may be shared).
Writes ``benchmarks/results/allocation.json``. Needs ``pip install --no-deps deepdow``
(done by ``make bench``); without it only the gradfolio rows run.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchutil import best_of_rounds, device_arg, keep_freed_memory
from gradfolio.allocation import MarkowitzNet, RecurrentNet, SharpeLoss, make_network
from gradfolio.io import atomic_write_json
from gradfolio.solvers import PortfolioConstraints

N_ASSETS, LOOKBACK, HORIZON, BATCH, HIDDEN = 20, 40, 20, 32, 32
RESULTS = Path(__file__).resolve().parent / "results" / "allocation.json"


def deepdow_models() -> dict[str, tuple[nn.Module, Callable]]:
    """DeepDow's BachelierNet and a DeepDow LSTM + softmax network with DeepDow's Sharpe loss."""
    from deepdow.layers import AttentionCollapse, RNN, SoftmaxAllocator
    from deepdow.losses import SharpeRatio
    from deepdow.nn import BachelierNet

    class DeepDowLSTMSoftmax(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.InstanceNorm2d(1, affine=True)
            self.rnn = RNN(1, hidden_size=HIDDEN, cell_type="LSTM", bidirectional=False)
            self.collapse = AttentionCollapse(n_channels=HIDDEN)
            self.head = nn.Linear(HIDDEN, 1)
            self.allocate = SoftmaxAllocator(temperature=1.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.collapse(self.rnn(self.norm(x)))  # (B, hidden, N)
            return self.allocate(self.head(h.transpose(1, 2)).squeeze(-1))

    def dd_loss(w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return SharpeRatio(returns_channel=0, input_type="simple", output_type="simple")(w, y).mean()

    return {
        "deepdow BachelierNet (cvxpylayers)": (BachelierNet(1, N_ASSETS, hidden_size=HIDDEN), dd_loss),
        "deepdow LSTM + softmax": (DeepDowLSTMSoftmax(), dd_loss),
    }


def gradfolio_models() -> dict[str, tuple[nn.Module, Callable]]:
    """gradfolio's RecurrentNet (softmax) and MarkowitzNet with gradfolio's SharpeLoss."""
    loss = SharpeLoss()

    def gf_loss(w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(w, y, reduction="mean")

    class BareLSTM(nn.Module):
        """Only the shared LSTM over the ``B N`` asset series; the 'loss' is the output's sum."""

        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(1, HIDDEN, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x.permute(0, 3, 2, 1).reshape(-1, LOOKBACK, 1))[0]

    long_only = PortfolioConstraints(long_only=True)
    return {
        "gradfolio lstm + softmax": (RecurrentNet(1, hidden=HIDDEN, collapse="attention"), gf_loss),
        "gradfolio markowitz (torch QP)": (MarkowitzNet(N_ASSETS, long_only, hidden=HIDDEN), gf_loss),
        "gradfolio dense + softmax": (make_network("dense", N_ASSETS, LOOKBACK), gf_loss),
        "gradfolio conv + softmax": (make_network("conv", N_ASSETS, LOOKBACK), gf_loss),
        "torch nn.LSTM alone (ceiling)": (BareLSTM(), lambda out, y: out.sum()),
    }


def throughput(model: nn.Module, loss: Callable, device: torch.device, dtype: torch.dtype, seconds: float) -> float:
    """Samples per second of forward + loss + backward + Adam step (after 3 warm-up steps)."""
    model = model.to(device=device, dtype=dtype).train()
    g = torch.Generator().manual_seed(0)
    X = (0.01 * torch.randn(BATCH, 1, LOOKBACK, N_ASSETS, generator=g)).to(device, dtype)
    y = (0.01 * torch.randn(BATCH, 1, HORIZON, N_ASSETS, generator=g)).to(device, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss(model(X), y).backward()
        opt.step()

    for _ in range(3):
        step()
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and steps >= 5:
            return steps * BATCH / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per row and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    args = parser.parse_args()
    kept = keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device, dtype = device_arg(args.device), getattr(torch, args.dtype)
    try:
        models = deepdow_models()
        deepdow_note = "deepdow 0.2.3 imported"
    except ImportError as exc:
        models, deepdow_note = {}, f"deepdow not importable ({exc}); pip install --no-deps deepdow"
    models.update(gradfolio_models())
    measures = {
        name: lambda m=model, f=loss: (throughput(m, f, device, dtype, args.seconds), None)
        for name, (model, loss) in models.items()
    }
    rows = {name: sps for name, (sps, _) in best_of_rounds(measures, args.rounds, best=max).items()}
    ref = rows.get("deepdow BachelierNet (cvxpylayers)", float("nan"))
    print(f"\n{N_ASSETS} assets, lookback {LOOKBACK}, horizon {HORIZON}, batch {BATCH}, hidden {HIDDEN}, "
          f"{args.device} {args.dtype}, {args.threads} threads ({deepdow_note})")
    print(f"{'network':38s} {'samples/s':>12s} {'vs BachelierNet':>16s}")
    for name, sps in rows.items():
        print(f"{name:38s} {sps:12.1f} {sps / ref:15.1f}x")
    atomic_write_json(RESULTS, {
        "shapes": {"assets": N_ASSETS, "lookback": LOOKBACK, "horizon": HORIZON, "batch": BATCH, "hidden": HIDDEN},
        "device": args.device, "dtype": args.dtype, "threads": args.threads, "rounds": args.rounds, "note": deepdow_note,
        "platform": platform.processor() or platform.machine(), "torch": torch.__version__,
        "malloc_keeps_freed_memory": kept,
        "samples_per_second": rows, "ratio_vs_bachelier": {k: v / ref for k, v in rows.items()},
    })
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
