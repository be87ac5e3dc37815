"""OSBL training of EIIE: sampler law, reward and its gradient, PVM, learning, resume, divergence."""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.allocation.rl.eiie import EIIE, commission_factor
from gradfolio.allocation.rl.osbl import (
    CHECKPOINT,
    OSBLTrainer,
    geometric_probabilities,
    geometric_start,
    period_relatives,
)
from gradfolio.checkpoint import load_state
from gradfolio.data import make_windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.seeding import make_generator

torch.set_num_threads(1)
D = torch.float64


def _market(n_days: int = 160, n_assets: int = 3, drift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    R = rng.normal(0.0, 0.01, (n_days, n_assets))
    R[:, 1] += drift
    idx = pd.bdate_range("2019-01-01", periods=n_days)
    return pd.DataFrame(R, index=idx, columns=[f"a{i}" for i in range(n_assets)])


def _windows(returns: pd.DataFrame, lookback: int = 8, horizon: int = 1):
    return make_windows(returns, lookback, horizon=horizon, step=horizon, dtype=D)


def _model(n_assets: int = 3, lookback: int = 8, seed: int = 0, **kw: object) -> EIIE:
    torch.manual_seed(seed)
    return EIIE(n_assets, lookback, **kw)  # type: ignore[arg-type]


def test_geometric_start_law_is_seeded_and_favours_recent_batches() -> None:
    n, beta = 7, 0.3
    p = geometric_probabilities(n, beta)
    expected = np.array([beta * (1 - beta) ** (n - 1 - s) for s in range(n)])
    np.testing.assert_allclose(p.numpy(), expected / expected.sum(), rtol=1e-14)
    g = make_generator(11)
    draws = [geometric_start(n, beta, g) for _ in range(40000)]
    freq = np.array([Counter(draws)[s] for s in range(n)]) / len(draws)
    # binomial standard error of each frequency: 5 sigma
    np.testing.assert_array_less(np.abs(freq - p.numpy()), 5 * np.sqrt(p.numpy() * (1 - p.numpy()) / len(draws)))
    assert freq[-1] > freq[0] * 5  # recent batches much more often (beta = 0.3: 0.7^-6 = 8.5)
    g1, g2 = make_generator(5), make_generator(5)
    assert [geometric_start(30, 0.05, g1) for _ in range(50)] == [geometric_start(30, 0.05, g2) for _ in range(50)]
    assert geometric_start(1, 0.5, g1) == 0


def test_reward_matches_an_explicit_computation() -> None:
    rng = np.random.default_rng(1)
    w = torch.tensor(rng.dirichlet(np.ones(4), 5))
    y = torch.tensor(np.hstack([np.ones((5, 1)), 1 + rng.normal(0, 0.03, (5, 3))]))
    w0 = torch.tensor(rng.dirichlet(np.ones(4)))
    y0 = torch.tensor(np.r_[1.0, 1 + rng.normal(0, 0.03, 3)])
    trainer = OSBLTrainer(_model(), commission=0.004, dtype=D)
    got = trainer.reward(w, y, w0, y0)
    total = 0.0
    prev, prev_y = w0.numpy(), y0.numpy()
    for t in range(5):
        drifted = prev * prev_y / (prev * prev_y).sum()
        mu = commission_factor(torch.tensor(drifted)[None], w[t : t + 1], 0.004).item()
        total += np.log(mu * (y[t].numpy() @ w[t].numpy()))
        prev, prev_y = w[t].numpy(), y[t].numpy()
    assert got.item() == pytest.approx(total / 5, rel=1e-12)
    approx = OSBLTrainer(_model(), commission=0.004, method="approx", dtype=D).reward(w, y, w0, y0)
    assert approx.item() != pytest.approx(got.item(), rel=1e-9, abs=0)
    assert approx.item() == pytest.approx(got.item(), abs=1e-4)


def test_reward_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(2)
    y = torch.tensor(np.hstack([np.ones((4, 1)), 1 + rng.normal(0, 0.05, (4, 3))]))
    w0 = torch.tensor(rng.dirichlet(np.ones(4)))
    y0 = torch.tensor(np.r_[1.0, 1 + rng.normal(0, 0.05, 3)])
    trainer = OSBLTrainer(_model(), commission=0.03, dtype=D)
    logits = torch.tensor(rng.normal(0, 1, (4, 4)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: trainer.reward(torch.softmax(z, -1), y, w0, y0), (logits,), eps=1e-7,
                                    atol=1e-8, rtol=1e-6)


def test_one_step_writes_exactly_the_batch_outputs_into_the_pvm() -> None:
    windows = _windows(_market())
    model = _model()
    start = copy.deepcopy(model).double()
    trainer = OSBLTrainer(model, commission=0.002, steps=1, batch_size=9, beta=0.4, seed=3, dtype=D)
    history = trainer.fit(windows)
    s = history.starts[0]
    assert trainer.pvm is not None and trainer.pvm.shape == (len(windows), 4)
    previous = torch.zeros(9, 3, dtype=D)  # the PVM starts all cash
    expected = start.portfolio(windows.X[s : s + 9], previous).detach()
    assert torch.equal(trainer.pvm[s : s + 9], expected)
    others = torch.cat([trainer.pvm[:s], trainer.pvm[s + 9 :]])
    assert torch.equal(others, torch.tensor([[1.0, 0, 0, 0]], dtype=D).expand_as(others))
    # the step's reward is the reward of those outputs
    y = period_relatives(windows)
    w_before = torch.tensor([1.0, 0, 0, 0], dtype=D)  # the PVM entry before the batch: cash
    y_before = y[s - 1] if s > 0 else torch.ones(4, dtype=D)
    assert history.reward[0] == pytest.approx(float(trainer.reward(expected, y[s : s + 9], w_before, y_before)), rel=1e-12)


def test_later_steps_feed_pvm_entries_as_previous_weights() -> None:
    windows = _windows(_market())
    model = _model()
    seen: list[torch.Tensor] = []
    memory: list[torch.Tensor] = []
    model.vote.register_forward_hook(lambda m, args, out: seen.append(args[0][:, -1, 0, :].detach().clone()))
    trainer = OSBLTrainer(model, commission=0.002, steps=3, batch_size=6, beta=0.3, seed=4, dtype=D,
                          checkpoint_every=1, progress=lambda *a: memory.append(trainer.pvm.clone()))
    history = trainer.fit(windows)
    cash = torch.tensor([[1.0, 0, 0, 0]], dtype=D)
    for k in (1, 2):
        s, pvm = history.starts[k], memory[k - 1]  # the memory after step k - 1
        before = pvm[s - 1 : s] if s > 0 else cash
        expected = torch.cat([before, pvm[s : s + 5]])[:, 1:]
        assert torch.equal(seen[k], expected)
    assert torch.equal(memory[-1], trainer.pvm)


def test_training_concentrates_on_the_planted_asset() -> None:
    returns = _market(n_days=260, drift=0.03, seed=4)
    windows = _windows(returns)
    train, val = windows.subset(0, 180), windows.subset(185, len(windows))
    model = _model(seed=1)
    trainer = OSBLTrainer(model, commission=0.001, steps=250, batch_size=20, beta=0.05, lr=3e-2, seed=2, dtype=D)
    before = trainer.evaluate(val)
    history = trainer.fit(train, val)
    assert history.val_reward is not None and history.val_reward > before + 0.01
    assert np.mean(history.reward[-20:]) > np.mean(history.reward[:20]) + 0.01
    previous, held = torch.zeros(1, 3, dtype=D), []
    with torch.no_grad():  # walk the validation periods from cash, as walk_forward does
        for t in range(len(val)):
            previous = model(val.X[t : t + 1], None, previous)
            held.append(previous[0])
    w = torch.stack(held)
    assert float(w[1:, 1].min()) > 0.9  # asset a1, the planted drift


def test_interrupt_and_resume_gives_the_same_weights(tmp_path) -> None:
    windows = _windows(_market())
    kw = {"commission": 0.003, "batch_size": 7, "beta": 0.2, "lr": 1e-2, "l2": 1e-3, "seed": 9, "dtype": D}
    full = OSBLTrainer(_model(seed=5), steps=14, **kw)
    h_full = full.fit(windows)
    first = OSBLTrainer(_model(seed=5), steps=6, checkpoint_dir=tmp_path, checkpoint_every=3, **kw)
    first.fit(windows)
    assert load_state(tmp_path / CHECKPOINT)["step"] == 5
    second = OSBLTrainer(_model(seed=77), steps=14, checkpoint_dir=tmp_path, checkpoint_every=3, **kw)
    h_res = second.fit(windows, resume=True)
    for (name, a), b in zip(full.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(full.pvm, second.pvm)
    assert h_res.reward == h_full.reward and h_res.starts == h_full.starts
    with torch.no_grad():
        X, prev = windows.X[-3:], torch.zeros(3, 3, dtype=D)
        assert torch.equal(full.model(X, None, prev), second.model(X, None, prev))
    other = OSBLTrainer(_model(seed=5), steps=14, checkpoint_dir=tmp_path, **{**kw, "beta": 0.3})
    with pytest.raises(ConfigError, match="beta: checkpoint 0.2, now 0.3"):
        other.fit(windows, resume=True)


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    windows = _windows(_market())
    model = _model()
    calls = {"n": 0}

    def poison(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return out * float("nan") if calls["n"] > 5 else out

    model.vote.register_forward_hook(poison)
    trainer = OSBLTrainer(model, commission=0.002, steps=10, batch_size=5, seed=1, dtype=D,
                          checkpoint_dir=tmp_path, checkpoint_every=2)
    with pytest.raises(DataError, match=r"reward is nan at step 5 .*diverged; the checkpoint of the last good step stays"):
        trainer.fit(windows)
    state = load_state(tmp_path / CHECKPOINT)
    assert state["step"] == 3 and len(state["history"]["reward"]) == 4
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values())
    assert bool(torch.isfinite(state["pvm"]).all())


def test_bad_settings_and_data() -> None:
    windows = _windows(_market())
    with pytest.raises(ConfigError, match="OSBL trains an EIIE"):
        OSBLTrainer(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    for kw, match in [({"commission": 1.0}, "commission=1.0"), ({"beta": 0.0}, "beta=0.0"),
                      ({"method": "exact"}, "method='exact'"), ({"steps": 0}, "steps=0"),
                      ({"batch_size": 2.5}, "batch_size=2.5"), ({"lr": 0.0}, "lr=0.0")]:
        with pytest.raises(ConfigError, match=match):
            OSBLTrainer(_model(), **kw)
    overlapping = make_windows(_market(), 8, horizon=5, step=1, dtype=D)
    with pytest.raises(ConfigError, match="step=1 and horizon=5"):
        OSBLTrainer(_model(), dtype=D).fit(overlapping)
    with pytest.raises(ConfigError, match="batch_size below"):
        OSBLTrainer(_model(), batch_size=len(windows), dtype=D).fit(windows)
    with pytest.raises(ConfigError, match="resume=True needs a checkpoint_dir"):
        OSBLTrainer(_model(), batch_size=5, dtype=D).fit(windows, resume=True)
    X = windows.X.clone()
    X[30, 0, 2, 1] = float("nan")
    nan = dataclasses.replace(windows, X=X)
    with pytest.raises(DataError, match="OSBLTrainer.fit: the windows hold NaN"):
        OSBLTrainer(_model(), batch_size=5, dtype=D).fit(nan)


def test_defaults_come_from_the_model_and_horizon_periods() -> None:
    model = _model(beta=0.3, commission_method="approx")
    trainer = OSBLTrainer(model, dtype=D)
    assert trainer.beta == 0.3 and trainer.method == "approx"
    assert OSBLTrainer(_model(beta=0.3), beta=0.6, method="iterative").beta == 0.6
    windows = _windows(_market(), horizon=3)
    y = period_relatives(windows)
    np.testing.assert_allclose(y[:, 1:].numpy(), np.prod(1 + windows.y[:, 0].numpy(), axis=1))
    assert bool((y[:, 0] == 1).all())


def test_evaluate_walks_from_cash() -> None:
    windows = _windows(_market(), horizon=2)
    model = _model().double()
    trainer = OSBLTrainer(model, commission=0.01, dtype=D)
    got = trainer.evaluate(windows)
    y = period_relatives(windows)
    prev, prev_y, logs = torch.tensor([1.0, 0, 0, 0], dtype=D), torch.ones(4, dtype=D), []
    with torch.no_grad():
        for t in range(len(windows)):
            w = model.portfolio(windows.X[t : t + 1], prev[None, 1:])[0]
            d = prev * prev_y / (prev * prev_y).sum()
            logs.append(np.log(commission_factor(d[None], w[None], 0.01).item() * float(y[t] @ w)))
            prev, prev_y = w, y[t]
    assert got == pytest.approx(float(np.mean(logs)), rel=1e-12)


def test_tracker_seed_and_l2_penalty() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.params: dict = {}
            self.metrics: list[tuple[dict, int | None]] = []

        def log_params(self, params: dict) -> None:
            self.params.update(params)

        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            self.metrics.append((dict(metrics), step))

    windows = _windows(_market())
    tracker = Recorder()
    trainer = OSBLTrainer(_model(), commission=0.006, steps=6, batch_size=5, beta=0.25, lr=2e-3, l2=0.5, seed=8,
                          dtype=D, checkpoint_every=4, tracker=tracker)  # type: ignore[arg-type]
    history = trainer.fit(windows)
    assert tracker.params["commission"] == 0.006 and tracker.params["beta"] == 0.25 and tracker.params["l2"] == 0.5
    assert tracker.params["steps"] == 6 and tracker.params["start_step"] == 0 and tracker.params["seed"] == 8
    assert [s for _, s in tracker.metrics] == [3, 5]
    assert tracker.metrics[0][0]["reward"] == pytest.approx(np.mean(history.reward[:4]), rel=1e-12)
    assert tracker.metrics[1][0]["reward"] == pytest.approx(np.mean(history.reward[4:]), rel=1e-12)
    # l2 on the convolution kernels only (not the biases, not the cash bias)
    m = trainer.model
    kernels = sum(float((p.detach() ** 2).sum()) for p in (m.conv1.weight, m.conv2.weight, m.vote.weight))
    assert float(trainer._penalty().detach()) == pytest.approx(0.5 * kernels, rel=1e-12)
    # the seed decides the batches
    again = OSBLTrainer(_model(), steps=6, batch_size=5, beta=0.25, seed=8, dtype=D).fit(windows)
    other = OSBLTrainer(_model(), steps=6, batch_size=5, beta=0.25, seed=9, dtype=D).fit(windows)
    assert again.starts == history.starts and other.starts != history.starts


def test_commission_factor_stopping_rule() -> None:
    from gradfolio.allocation.rl.eiie import commission_factor as cf

    d = torch.tensor([[0.1, 0.5, 0.4]], dtype=D)
    t = torch.tensor([[0.3, 0.1, 0.6]], dtype=D)
    c = 0.05
    k = 2 * c - c * c
    first = (1 - c * 0.1 - k * torch.relu(d[:, 1:] - (1 - k) * t[:, 1:]).sum(-1)) / (1 - c * 0.3)
    torch.testing.assert_close(cf(d, t, c, max_iter=1), first, rtol=0, atol=0)
    assert cf(d, t, c, tol=10.0).item() == first.item()  # stops after the first update
    assert abs(cf(d, t, c).item() - first.item()) > 1e-6


def test_trains_on_close_high_low_price_windows() -> None:
    from gradfolio.allocation.rl.eiie import price_windows

    rng = np.random.default_rng(6)
    idx = pd.bdate_range("2021-01-04", periods=90)
    close = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 0.01, (90, 3)), axis=0)), index=idx, columns=list("abc"))
    high, low = close * 1.01, close * 0.985
    windows = price_windows(close, 10, high=high, low=low, horizon=2)
    model = _model(lookback=10, n_channels=3, inputs="prices", kernel_size=4)
    trainer = OSBLTrainer(model, commission=0.002, steps=3, batch_size=6, seed=1, dtype=D)
    history = trainer.fit(windows, windows)
    assert trainer.pvm is not None and trainer.pvm.shape == (len(windows), 4) and history.steps == 3
    assert history.val_reward == pytest.approx(trainer.evaluate(windows), rel=1e-12)
    y = period_relatives(windows)[:, 1:]
    rows = [idx.get_loc(d) for d in windows.dates]
    np.testing.assert_allclose(y.numpy(), close.to_numpy()[[r + 2 for r in rows]] / close.to_numpy()[rows], rtol=1e-12)
