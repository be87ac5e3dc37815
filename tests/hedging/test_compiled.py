"""The compiled overnight revaluation (``HedgingEnv(compiled=True)``): the polynomial normal CDF and
density against mpmath, the kernel against the torch revaluation of the same book, thread splits
bit for bit, and whole episodes against the default environment (with client types, a rate and a
dividend in both vol modes: ``tests/hedging/test_env.py``)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio.errors import ConfigError
from gradfolio.hedging import EnvConfig, HedgingEnv
from gradfolio.hedging import _book_kernels, _normal
from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.book import OptionBook

f64, f32 = torch.float64, torch.float32
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def evaluators():
    """Compiled maps of ``N`` and ``phi`` over an array (the kernels' inline functions)."""
    from numba import njit

    @njit
    def both(cdf, pdf, x, n_out, p_out, n_alone, p_alone):
        for i in range(x.shape[0]):
            n_out[i], p_out[i] = _normal.ndtr_npdf(cdf, pdf, x[i])
            n_alone[i] = _normal.ndtr(cdf, x[i])
            p_alone[i] = _normal.npdf(pdf, x[i])

    def run(x):
        x = np.asarray(x, dtype=np.float64)
        outs = [np.empty_like(x) for _ in range(4)]
        both(*_normal.tables(), x, *outs)
        return outs

    return run


def test_normal_tables_match_mpmath_on_the_whole_line(evaluators):
    """|N error| <= 3e-16 and |phi error| <= 5e-16 from -40 to 40 (tails clamped at |x| = 9), and the
    fused and separate evaluations are the same numbers; a wrong interval index or coefficient order
    would be off by far more."""
    x = np.concatenate([np.linspace(-40.0, 40.0, 4001), np.linspace(-9.5, 9.5, 7919), [0.0, -0.0, 9.0, -9.0, 1e-300]])
    n, p, n_alone, p_alone = evaluators(x)
    ref_n = np.array([float(mpmath.ncdf(mpmath.mpf(v))) for v in x])
    ref_p = np.array([float(mpmath.npdf(mpmath.mpf(v))) for v in x])
    assert np.abs(n - ref_n).max() <= 3e-16
    assert np.abs(p - ref_p).max() <= 5e-16
    assert np.array_equal(n, n_alone) and np.array_equal(p, p_alone)
    assert abs(n[-5] - 0.5) <= 1.2e-16 and n[-3] == 1.0 and n[-2] < 1e-18


@settings(max_examples=60, deadline=None)
@given(st.floats(-12.0, 12.0, allow_nan=False))
def test_normal_tables_symmetry_and_monotone_neighbourhood(evaluators, x):
    """``N(x) + N(-x) = 1`` to rounding, ``phi`` even, and ``N`` increasing over a step of 1e-3."""
    n, p, _, _ = evaluators([x, -x, x + 1e-3])
    assert abs(n[0] + n[1] - 1.0) <= 2.3e-16
    assert p[0] == p[1]
    assert n[2] >= n[0]


def test_tables_are_interpolants_of_the_right_functions():
    """Row ``i`` at ``t = -1`` and ``t = 1`` is the function at the interval's ends (a table built on
    the wrong interval or from the wrong function fails here)."""
    cdf, pdf = _normal.tables()
    assert cdf.shape == pdf.shape == (_normal.PIECES, _normal.DEGREE + 1)
    for i in (0, 17, _normal.PIECES - 1):
        a = -_normal.L + i * _normal.WIDTH
        for t, x in ((-1.0, a), (1.0, a + _normal.WIDTH)):
            assert abs(np.polyval(cdf[i], t) - 0.5 * math.erfc(-x / math.sqrt(2.0))) < 3e-16
            assert abs(np.polyval(pdf[i], t) - math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)) < 3e-16


def _book(carry, n_paths=11, n_slots=9, maturity=4, dtype=f64, seed=5):
    gen = torch.Generator().manual_seed(seed)
    book = OptionBook(n_paths=n_paths, n_slots=n_slots, maturity_days=maturity, contract_size=100, days_per_year=250,
                      device=CPU, dtype=dtype, rate=carry[0], dividend=carry[1])
    spots = (10.0 * torch.exp(0.05 * torch.randn(n_paths, n_slots, generator=gen, dtype=f64))).to(dtype)
    for day in range(n_slots - 2):
        book.open(day, torch.randint(-3, 4, (n_paths,), generator=gen).to(dtype), spots[:, day])
    vol_path = (0.2 + 0.1 * torch.rand(n_paths, n_slots, generator=gen, dtype=f64)).to(dtype)
    return book, spots, vol_path


@pytest.mark.parametrize("carry", [(0.0, 0.0), (0.03, 0.012), (-0.01, 0.0), (0.0, 0.025)])
@pytest.mark.parametrize("per_slot_vol", [False, True])
def test_revalue_into_matches_the_torch_revaluation(carry, per_slot_vol):
    """Every day (expiring slots included) and both vol modes: the five sums equal
    :meth:`OptionBook.revalue`'s to 1e-13 relative, and ``accumulate`` adds a second book on top."""
    book, spots, vol_path = _book(carry)
    other, _, _ = _book(carry, seed=8)
    spot_np, log_np = spots.numpy(), np.log(spots.numpy())
    for day in (1, 3, 4, 5, 7):  # from day 4 on, slot day - 4 expires
        col = vol_path[:, day : day + 1]

        def vol(strike, tau, col=col):
            return col * (1.0 + 0.3 * (strike / 10.0 - 1.0) + tau) if per_slot_vol else col

        day_vol = None if per_slot_vol else np.ascontiguousarray(vol_path.numpy())
        out = np.full((5, 11), np.nan)
        book.revalue_into(day, spot_np, log_np, vol, out, False, day_vol)
        held, now = book.revalue(day, spots[:, day], torch.log(spots[:, day]), vol)
        want = torch.stack([held, *now])
        torch.testing.assert_close(torch.from_numpy(out), want, rtol=1e-13, atol=1e-11)
        other.revalue_into(day, spot_np, log_np, vol, out, True, day_vol)
        held2, now2 = other.revalue(day, spots[:, day], torch.log(spots[:, day]), vol)
        torch.testing.assert_close(torch.from_numpy(out), want + torch.stack([held2, *now2]), rtol=1e-13, atol=1e-11)


def test_thread_split_gives_the_same_bits(monkeypatch):
    """Paths split among 3 threads (parts of 5 paths): every path's sums are the one-thread ones, bit for bit."""
    book, spots, vol_path = _book((0.02, 0.01), n_paths=17)
    args = (spots.numpy(), np.log(spots.numpy()), None)
    one, three = np.empty((5, 17)), np.empty((5, 17))
    day_vol = np.ascontiguousarray(vol_path.numpy())
    book.revalue_into(5, *args[:2], None, one, False, day_vol, threads=1)
    monkeypatch.setattr(_book_kernels, "_MIN_ROWS", 5)
    book.revalue_into(5, *args[:2], None, three, False, day_vol, threads=3)
    assert np.array_equal(one, three) and np.isfinite(one).all()


def test_float32_book_is_valued_in_float64_arithmetic():
    """A float32 book: its sums are those of the float64 valuation of the same (float32) numbers, rounded
    to float32 (the kernel computes in float64 whatever the book's dtype)."""
    book32, spots32, vol32 = _book((0.0, 0.0), dtype=f32)
    book64 = OptionBook(n_paths=11, n_slots=9, maturity_days=4, contract_size=100, days_per_year=250, device=CPU, dtype=f64)
    book64.quantity, book64.strike, book64.log_strike = book32.quantity.double(), book32.strike.double(), book32.log_strike.double()
    out32, out64 = np.empty((5, 11), np.float32), np.empty((5, 11))
    s32 = spots32.numpy()
    book32.revalue_into(5, s32, np.log(s32), None, out32, False, np.ascontiguousarray(vol32.numpy()))
    book64.revalue_into(5, s32.astype(np.float64), np.log(s32).astype(np.float64), None, out64, False,
                        np.ascontiguousarray(vol32.numpy()).astype(np.float64))
    np.testing.assert_allclose(out32, out64.astype(np.float32), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("reward", ["pnl", "abs_pnl"])
def test_compiled_episodes_agree_with_the_default_environment(reward):
    """Baselines' P&L, reward, cost and contracts over whole episodes: the compiled env equals the
    default one to 1e-10 (float64); it is opt-in and the default is untouched."""
    cfg = EnvConfig(arrival_rate=1.7, cost=0.003, reward=reward)
    plain = HedgingEnv(cfg, 64, seed=3, dtype=f64)
    fast = HedgingEnv(cfg, 64, seed=3, dtype=f64, compiled=True)
    assert not plain.compiled and fast.compiled
    for name in ("delta_gamma", "delta_vega", "delta"):
        a = plain.run_episode(baseline_policies(plain, [name])[name], 11)
        b = fast.run_episode(baseline_policies(fast, [name])[name], 11)
        for got, want in zip(b, a, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-9)


def test_compiled_float32_env_is_as_accurate_as_the_default_float32_one():
    """The agents' dtype. Float32 episodes drift from float64 on a few paths by up to ~0.2 whatever the
    valuation (the greek-neutral hedge divides by small gammas); the compiled float32 env stays within
    5e-3 of the default float32 env on every path, and its mean error against float64 is no larger."""
    cfg = EnvConfig()
    ref = HedgingEnv(cfg, 256, seed=0, dtype=f64)
    want = ref.run_episode(baseline_policies(ref, ["delta_gamma"])["delta_gamma"], seed=5).total_pnl
    totals = []
    for compiled in (False, True):
        env = HedgingEnv(cfg, 256, seed=0, dtype=f32, compiled=compiled)
        episode = env.run_episode(baseline_policies(env, ["delta_gamma"])["delta_gamma"], market=ref.market)
        assert episode.pnl.dtype == f32
        totals.append(episode.total_pnl.double())
    default, compiled = totals
    torch.testing.assert_close(compiled, default, rtol=0, atol=5e-3)
    assert (compiled - want).abs().mean() <= 1.05 * (default - want).abs().mean()


def test_compiled_two_threads_equal_one_thread_bit_for_bit(monkeypatch):
    """The episode does not depend on how many threads value the books, and the caller's thread count is restored."""
    monkeypatch.setattr(_book_kernels, "_MIN_ROWS", 16)
    episodes = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            env = HedgingEnv(EnvConfig(), 50, seed=0, dtype=f64, compiled=True)
            episodes.append(env.run_episode(baseline_policies(env, ["delta_gamma"])["delta_gamma"], seed=9))
            # step() runs torch's part on one thread and gives the caller's count back; the kernels took it
            assert torch.get_num_threads() == threads and env._threads == threads
        finally:
            torch.set_num_threads(previous)
    for got, want in zip(*episodes, strict=True):
        assert torch.equal(got, want)


def test_compiled_refuses_other_devices_and_gradients():
    with pytest.raises(ConfigError, match="compiled=True.*runs on the CPU.*fused=True"):
        HedgingEnv(EnvConfig(), 4, device="meta", compiled=True)
    env = HedgingEnv(EnvConfig(), 4, seed=0, dtype=f64, compiled=True)
    env.reset(seed=1)
    with pytest.raises(ConfigError, match="require grad.*compiled=False"):
        env.step(torch.full((4,), 0.5, dtype=f64, requires_grad=True))
    with torch.no_grad():  # without gradients the same action is fine
        env.step(torch.full((4,), 0.5, dtype=f64, requires_grad=True))


@pytest.mark.parametrize("carry", [(0.0, 0.0), (0.03, 0.012), (-0.01, 0.04)])
def test_atm_call_matches_black_scholes(carry):
    """The day's hedging option (strike = spot) against :func:`bs_greeks`, read at a column of a ``(P, D)`` spot array."""
    from gradfolio.hedging.blackscholes import bs_greeks

    gen = torch.Generator().manual_seed(3)
    spot = 10.0 * torch.exp(0.1 * torch.randn(7, 4, generator=gen, dtype=f64))
    vol = 0.1 + 0.5 * torch.rand(7, generator=gen, dtype=f64)
    out = np.empty((4, 7))
    _book_kernels.atm_call(spot.numpy(), 2, vol.numpy(), 0.12, *carry, *_normal.tables(), out, 0, 7)
    want = bs_greeks(spot[:, 2], spot[:, 2], 0.12, vol, *carry)
    torch.testing.assert_close(torch.from_numpy(out), torch.stack(list(want)), rtol=1e-13, atol=1e-13)


def _split_in_child(queue, book, spot, day_vol):
    out = np.empty((5, spot.shape[0]))
    book.revalue_into(5, spot, np.log(spot), None, out, False, day_vol, threads=2)
    queue.put(out)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_thread_split_works_in_a_forked_child(monkeypatch):
    """A child forked after the parent's pool started (Ray's and multiprocessing's workers) gets its own
    pool instead of waiting forever on the parent's threads, which it does not inherit."""
    import multiprocessing

    monkeypatch.setattr(_book_kernels, "_MIN_ROWS", 5)
    book, spots, vol_path = _book((0.0, 0.0), n_paths=17)
    spot, day_vol = spots.numpy(), np.ascontiguousarray(vol_path.numpy())
    parent = np.empty((5, 17))
    book.revalue_into(5, spot, np.log(spot), None, parent, False, day_vol, threads=2)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_split_in_child, args=(queue, book, spot, day_vol))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert np.array_equal(got, parent)


@pytest.mark.parametrize("per_slot_vol", [False, True])
def test_opening_in_the_kernel_pass_equals_open_then_revalue(per_slot_vol):
    """``opening=(slot, qty, strike)`` books the positions in the same pass: quantities, strikes and
    log-strikes as :meth:`OptionBook.open` leaves them, and the same sums as opening first."""
    book, spots, vol_path = _book((0.03, 0.01), n_slots=9)
    twin, _, _ = _book((0.03, 0.01), n_slots=9)
    gen = torch.Generator().manual_seed(7)
    qty = torch.randint(-4, 5, (11,), generator=gen).to(f64)
    strike = 1.13 * spots[:, 7]
    spot_np = spots.numpy()
    day_vol = None if per_slot_vol else np.ascontiguousarray(vol_path.numpy())

    def vol(strike_, tau):
        return vol_path[:, 7:8] * (1.0 + 0.2 * (strike_ / 10.0 - 1.0) + tau)

    one, two = np.empty((5, 11)), np.empty((5, 11))
    book.revalue_into(7, spot_np, np.log(spot_np), vol, one, False, day_vol, opening=(7, qty, strike))
    twin.open(7, qty, strike)
    twin.revalue_into(7, spot_np, np.log(spot_np), vol, two, False, day_vol)
    np.testing.assert_array_equal(one, two)
    assert torch.equal(book.quantity, twin.quantity) and torch.equal(book.strike, twin.strike)
    torch.testing.assert_close(book.log_strike, twin.log_strike, rtol=2.3e-16, atol=0)


def test_nan_and_infinite_arguments(evaluators):
    """NaN gives NaN (and never reads outside the table); +-inf give the limits."""
    n, p, n_alone, p_alone = evaluators([np.nan, np.inf, -np.inf])
    assert np.isnan(n[0]) and np.isnan(p[0]) and np.isnan(n_alone[0]) and np.isnan(p_alone[0])
    assert n[1] == 1.0 and 0.0 <= n[2] < 1e-18 and 0.0 <= p[1] < 1e-17


def test_zero_vol_gives_nan_like_torch_not_an_exception():
    """A zero vol on one path: NaN/inf on that path (torch's answer), the other paths' sums unchanged."""
    book, spots, vol_path = _book((0.0, 0.0))
    vol_path[0, :] = 0.0
    spot_np = spots.numpy()
    out = np.empty((5, 11))
    book.revalue_into(5, spot_np, np.log(spot_np), None, out, False, np.ascontiguousarray(vol_path.numpy()))
    held, now = book.revalue(5, spots[:, 5], torch.log(spots[:, 5]), lambda strike, tau: vol_path[:, 5:6])
    want = torch.stack([held, *now])
    assert not np.isfinite(out[:, 0]).all() and not torch.isfinite(want[:, 0]).all()
    torch.testing.assert_close(torch.from_numpy(out[:, 1:]), want[:, 1:], rtol=1e-13, atol=1e-11)


def test_run_waits_for_every_part_and_raises_a_workers_error(monkeypatch):
    """A part that fails raises in the caller, after every other part has finished (none writes on later)."""
    import threading
    import time

    done, lock = [], threading.Lock()

    def kernel(tag, p0, p1):
        if p0 > 0:
            time.sleep(0.05)
        with lock:
            done.append((p0, p1))
        if p0 == 4:
            raise FloatingPointError(f"part {tag}")

    monkeypatch.setattr(_book_kernels, "_MIN_ROWS", 2)
    with pytest.raises(FloatingPointError, match="part x"):
        _book_kernels.run(("x",), 8, 4, kernel)
    assert sorted(done) == [(0, 2), (2, 4), (4, 6), (6, 8)]


@pytest.mark.parametrize("slot, maturity", [(6, 4), (4, 4), (7, 1)])
def test_openings_of_earlier_and_expiring_slots(slot, maturity):
    """The hedges' case (slot ``day - 1``, inside yesterday's held value), a slot opened days ago, and
    a maturity-1 book whose opened slot expires that very night (worth its payoff): the same numbers
    as opening with :meth:`OptionBook.open` first."""
    book, spots, vol_path = _book((0.02, 0.0), maturity=maturity, n_slots=9)
    twin, _, _ = _book((0.02, 0.0), maturity=maturity, n_slots=9)
    qty = torch.arange(11, dtype=f64) - 4.5
    strike = 0.97 * spots[:, slot]
    spot_np, day_vol = spots.numpy(), np.ascontiguousarray(vol_path.numpy())
    one, two = np.empty((5, 11)), np.empty((5, 11))
    book.revalue_into(7, spot_np, np.log(spot_np), None, one, False, day_vol, opening=(slot, qty, strike))
    twin.open(slot, qty, strike)
    twin.revalue_into(7, spot_np, np.log(spot_np), None, two, False, day_vol)
    np.testing.assert_allclose(one, two, rtol=1e-15, atol=1e-12)
    held, now = twin.revalue(7, spots[:, 7], torch.log(spots[:, 7]), lambda k, tau: vol_path[:, 7:8])
    torch.testing.assert_close(torch.from_numpy(one), torch.stack([held, *now]), rtol=1e-13, atol=1e-11)
    assert torch.equal(book.quantity, twin.quantity)


def test_compiled_takes_precedence_over_fused():
    """``fused=True, compiled=True`` is the compiled env, bit for bit."""
    cfg = EnvConfig(n_days=6)
    both = HedgingEnv(cfg, 30, seed=0, dtype=f64, fused=True, compiled=True)
    compiled = HedgingEnv(cfg, 30, seed=0, dtype=f64, compiled=True)
    fused = HedgingEnv(cfg, 30, seed=0, dtype=f64, fused=True)
    runs = [env.run_episode(baseline_policies(env, ["delta_gamma"])["delta_gamma"], seed=4).pnl for env in (both, compiled, fused)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_compiled_refuses_a_market_replayed_with_gradients():
    """Gradients can also come from a replayed market: refused with the fix, fine under no_grad."""
    cfg = EnvConfig(n_days=4)
    source = HedgingEnv(cfg, 5, seed=0, dtype=f64)
    source.reset(seed=1)
    spot = source.market.spot.clone().requires_grad_(True)
    env = HedgingEnv(cfg, 5, seed=0, dtype=f64, compiled=True)
    env.reset(market=source.market._replace(spot=spot))
    with pytest.raises(ConfigError, match="require grad.*market.*compiled=False"):
        env.step(torch.full((5,), 0.5, dtype=f64))
    with torch.no_grad():
        env.reset(market=source.market._replace(spot=spot))
        env.step(torch.full((5,), 0.5, dtype=f64))
