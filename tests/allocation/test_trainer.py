"""The allocation Trainer: training, early stopping, seeding, checkpoints and resume, progress."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.allocation import (
    CalmarLoss,
    MeanReturnLoss,
    SharpeLoss,
    SortinoLoss,
    Trainer,
    TurnoverLoss,
    make_network,
)
from gradfolio.data import make_windows, time_split
from gradfolio.errors import ConfigError, DataError

torch.set_num_threads(1)
D = torch.float64


# -- trainer --------------------------------------------------------------------------------------

def _planted_market(n_days=700, n_assets=4, seed=0):
    """Asset 0 earns a positive drift only after a positive day (a signal visible in X)."""
    rng = np.random.default_rng(seed)
    R = 0.01 * rng.standard_normal((n_days, n_assets))
    R[1:, 0] += 0.006 * np.sign(R[:-1, 0])
    idx = pd.date_range("2000-01-03", periods=n_days, freq="B", name="date")
    return pd.DataFrame(R, index=idx, columns=[f"a{i}" for i in range(n_assets)])


def _split(horizon=5):
    w = make_windows(_planted_market(), lookback=10, horizon=horizon)
    return time_split(w, 0.2, 0.05)[:2]


def test_training_lowers_the_loss_on_a_planted_signal():
    train, val = _split(horizon=1)
    net = make_network("lstm", 4, 10, hidden=8, collapse="last", seed=0)
    trainer = Trainer(net, MeanReturnLoss(), lr=3e-2, max_epochs=20, patience=20, seed=0)
    before = trainer.evaluate(val)
    hist = trainer.fit(train, val)
    after = trainer.evaluate(val)
    assert after == pytest.approx(hist.best_val_loss)
    assert after < before - 0.0005  # >= 0.05 %/day better; perfect timing of asset 0 earns ~0.3 %/day
    assert hist.train_loss[-1] < hist.train_loss[0]


@pytest.mark.parametrize("loss", [SortinoLoss(), CalmarLoss()])
def test_sortino_and_calmar_train_at_a_short_horizon(loss):
    train, val = _split(horizon=5)  # many 5-day windows have no downside / no drawdown
    trainer = Trainer(make_network("dense", 4, 10, hidden=(16,), seed=0), loss, lr=1e-2, max_epochs=10, patience=10)
    before = trainer.evaluate(val)
    hist = trainer.fit(train, val)
    assert all(math.isfinite(v) for v in hist.train_loss + hist.val_loss)
    assert hist.train_loss[-1] < hist.train_loss[0] and hist.best_val_loss < before


def test_early_stopping_restores_the_best_weights():
    train, val = _split()
    net = make_network("dense", 4, 10, hidden=(16,), seed=0)
    hist = Trainer(net, SharpeLoss(), lr=5e-2, max_epochs=40, patience=2, seed=0).fit(train, val)
    assert hist.stopped_early and hist.epochs == hist.best_epoch + 3
    assert Trainer(net, SharpeLoss()).evaluate(val) == pytest.approx(hist.best_val_loss, rel=1e-6)


def test_fit_is_seeded_and_leaves_the_global_rng_alone():
    train, val = _split()

    def run():
        net = make_network("lstm", 4, 10, hidden=4, dropout=0.3, seed=0)
        return Trainer(net, SharpeLoss(), lr=1e-2, max_epochs=2, seed=5).fit(train, val).train_loss

    state = torch.get_rng_state()
    first = run()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # another global state: same result
    assert run() == first


def test_previous_weights_are_eval_mode_without_grad_and_keep_the_mode():
    net = make_network("dense", 4, 10, hidden=(16,), dropout=0.5, seed=0).double()
    trainer = Trainer(net, TurnoverLoss(), dtype=D)
    train, _ = _split()
    X = train.X.double()
    idx = torch.tensor([0, 5, 6])
    net.train()
    w_prev = trainer._previous_weights(X, idx)
    assert net.training and not w_prev.requires_grad
    with torch.no_grad():
        expected = net.eval()(X[[0, 4, 5]])  # window 0 is its own predecessor
    torch.testing.assert_close(w_prev, expected)


@pytest.mark.parametrize("optimizer", ["adam", "ana"])
def test_resume_after_kill_is_bitwise_identical(tmp_path, optimizer, recording_tracker):
    train, val = _split()
    loss = SharpeLoss() + 0.01 * TurnoverLoss()

    def build(init_seed, tracker=None, ckpt=None):
        net = make_network("lstm", 4, 10, hidden=4, dropout=0.2, seed=init_seed)
        return Trainer(net, loss, optimizer=optimizer, lr=1e-2, max_epochs=5, patience=15, seed=3,
                       checkpoint_dir=ckpt, tracker=tracker)

    ref = build(1)
    h_ref = ref.fit(train, val)
    killed = recording_tracker(kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        build(1, killed, tmp_path).fit(train, val)
    # another initialisation: only the checkpoint can bring the resumed run back onto the reference
    recorder = recording_tracker()
    resumed = build(99, recorder, tmp_path)
    h = resumed.fit(train, val, resume=True)
    assert recorder.steps == [3, 4]  # only the epochs after the checkpoint are trained
    # both tracked runs carry the parameters; the resumed one says where it started
    assert killed.params["start_epoch"] == 0 and recorder.params["start_epoch"] == 3
    assert {k: v for k, v in recorder.params.items() if k != "start_epoch"} == {
        k: v for k, v in killed.params.items() if k != "start_epoch"}
    assert h.val_loss == h_ref.val_loss and h.train_loss == h_ref.train_loss
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_checks_the_checkpoint(tmp_path):
    train, val = _split()

    def build(ckpt=tmp_path, hidden=(8,), lr=1e-2, loss=SharpeLoss()):
        return Trainer(make_network("dense", 4, 10, hidden=hidden, seed=0), loss, lr=lr, max_epochs=1,
                       checkpoint_dir=ckpt)

    with pytest.raises(ConfigError, match="checkpoint_dir"):
        build(ckpt=None).fit(train, val, resume=True)
    build().fit(train, val)
    for changed, named in (({"lr": 1e-3}, "lr: checkpoint 0.01, now 0.001"), ({"hidden": (4,)}, "parameters"),
                           ({"loss": SortinoLoss()}, "loss")):
        with pytest.raises(ConfigError, match=named):
            build(**changed).fit(train, val, resume=True)
    (tmp_path / "trainer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"Trainer: cannot read .*trainer\.pt.*delete"):
        build().fit(train, val, resume=True)


def test_l1_l2_penalty_value_and_effect():
    net = make_network("dense", 4, 10, hidden=(8,), seed=0)
    trainer = Trainer(net, SharpeLoss(), l1=0.01, l2=0.1)
    matrices = [net.body[2].weight, net.body[5].weight]  # the two Linear layers' weights (no biases)
    assert len([p for p in net.parameters() if p.ndim > 1]) == len(matrices)
    expected = sum(0.01 * m.abs().sum() + 0.1 * m.pow(2).sum() for m in matrices)
    torch.testing.assert_close(trainer._penalty(), expected)

    train, val = _split()

    def weight_norm(l1):
        model = make_network("dense", 4, 10, hidden=(8,), seed=0)
        Trainer(model, SharpeLoss(), lr=1e-2, l1=l1, max_epochs=5, patience=5).fit(train, val)
        return sum(p.detach().abs().sum().item() for p in model.parameters() if p.ndim > 1)

    assert weight_norm(0.01) < 0.5 * weight_norm(0.0)


def test_progress_callback_reports_every_epoch(capsys):
    train, val = _split()
    calls = []
    hist = Trainer(make_network("dense", 4, 10, hidden=(4,), seed=0), SharpeLoss(), max_epochs=3, patience=5,
                   progress=lambda *args: calls.append(args)).fit(train, val)
    assert [c[:3] for c in calls] == [("training", 1, 3), ("training", 2, 3), ("training", 3, 3)]
    assert calls[-1][3] == (f"train {hist.train_loss[-1]:.4f}  val {hist.val_loss[-1]:.4f}  "
                            f"best {hist.best_val_loss:.4f}")
    assert capsys.readouterr().out == ""  # the library draws nothing itself


def test_trainer_validates_arguments():
    net = make_network("dense", 4, 10)
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(net, SharpeLoss(), batch_size=0)
    with pytest.raises(ConfigError, match="optimizer"):
        Trainer(net, SharpeLoss(), optimizer="lbfgs")
    train, val = _split(horizon=1)
    with pytest.raises(ConfigError, match="horizon"):
        Trainer(net, SharpeLoss(), max_epochs=1).fit(train, val)
    y = train.y.clone()
    y[7, 0, 0, 1] = math.nan
    with pytest.raises(DataError, match=r"loss is nan at epoch 0 .* dated \d{4}-\d\d-\d\d to .*NaN"):
        Trainer(net, MeanReturnLoss(), max_epochs=1).fit(dataclasses.replace(train, y=y), val)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_network_loss_and_trainer_step_on_cuda():
    train, val = _split()
    cpu = make_network("lstm", 4, 10, hidden=8, seed=0).double()
    gpu = make_network("lstm", 4, 10, hidden=8, seed=0).double().cuda()
    x, y = train.X[:16].double(), train.y[:16].double()
    w = gpu(x.cuda())
    assert w.device.type == "cuda"
    torch.testing.assert_close(w.cpu(), cpu(x))
    torch.testing.assert_close(SharpeLoss()(w, y.cuda()).cpu(), SharpeLoss()(cpu(x), y))
    before = [p.detach().clone() for p in gpu.parameters()]
    hist = Trainer(gpu, SharpeLoss() + 0.01 * TurnoverLoss(), max_epochs=1, device="cuda", dtype=D).fit(train, val)
    assert math.isfinite(hist.train_loss[0]) and all(p.device.type == "cuda" for p in gpu.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, gpu.parameters()))
