"""ANA: the update equals eqs. (23)-(27) by hand, beats Adam to a tolerance on ill-conditioned
problems, restarts on uphill steps, and resumes exactly from a state_dict."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from gradfolio.errors import ConfigError
from gradfolio.optim import ANA, next_t

DT = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscribing the 2 CI cores (pytest -n 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _quadratic(n: int, cond: float, seed: int):
    """f(x) = x'Ax/2 - b'x with a rotated (non-diagonal) spectrum in [1, cond]; returns (f, f*)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DT))
    a = q @ torch.diag(torch.logspace(0, math.log10(cond), n, dtype=DT)) @ q.T
    b = torch.randn(n, generator=gen, dtype=DT)
    x_star = torch.linalg.solve(a, b)
    return (lambda x: 0.5 * x @ a @ x - b @ x), float(-0.5 * b @ x_star)


def _logistic(seed: int, n: int = 500, d: int = 20, lam: float = 1e-2):
    """L2-regularised logistic regression on badly scaled features; f* from SciPy's L-BFGS-B."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=DT) * torch.logspace(0, 1.5, d, dtype=DT)
    w = torch.randn(d, generator=gen, dtype=DT)
    y = (torch.rand(n, generator=gen, dtype=DT) < torch.sigmoid(x @ w / 5)).to(DT)

    def f(theta: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(x @ theta, y) + 0.5 * lam * theta @ theta

    def f_np(theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(theta, requires_grad=True)
        loss = f(t)
        loss.backward()
        return loss.item(), t.grad.numpy()

    res = scipy.optimize.minimize(f_np, np.zeros(d), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000})
    return f, float(res.fun), d


def _steps_to_tol(make_opt, f, f_star: float, n: int, tol: float = 1e-6, max_steps: int = 4000) -> int:
    """Full-batch steps until f(iterate) - f* < tol * max(1, |f*|); ``max_steps`` if never."""
    x = torch.zeros(n, dtype=DT, requires_grad=True)
    opt = make_opt([x])
    for k in range(max_steps):
        opt.zero_grad()
        f(x).backward()
        opt.step()
        current = opt.iterates()[0] if isinstance(opt, ANA) else x.detach()
        if f(current) - f_star < tol * max(1.0, abs(f_star)):
            return k + 1
    return max_steps


LRS = (0.1, 0.03, 0.01, 0.003)


def _best_steps(make, f, f_star, n):
    return min(_steps_to_tol(lambda p, lr=lr: make(p, lr), f, f_star, n) for lr in LRS)


def test_t_sequence_closed_form():
    assert next_t(1.0) == pytest.approx((1 + math.sqrt(5)) / 2)
    t = 1.0
    for _ in range(50):
        t_next = next_t(t)
        assert t_next**2 - t_next == pytest.approx(t**2, rel=1e-12)  # paper eq. (72)
        t = t_next
    assert t > 25.0  # t_r ~ (r + 1) / 2


def test_update_matches_equations_by_hand():
    """Three steps on f(x) = sum(c * x^2) against a NumPy transcription of eqs. (23)-(27)."""
    c = np.array([1.0, 10.0, 0.1])
    x0 = np.array([1.0, -2.0, 3.0])
    lr, (b1, b2), eps = 0.05, (0.9, 0.999), 1e-8
    x = torch.tensor(x0, requires_grad=True)
    opt = ANA([x], lr=lr, betas=(b1, b2), eps=eps, restart="none")
    theta_prev, theta, t, m, v = x0.copy(), x0.copy(), 1.0, np.zeros(3), np.zeros(3)
    for r in range(1, 4):
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = theta + (t - 1) / t_next * (theta - theta_prev)
        np.testing.assert_allclose(x.detach().numpy(), y, rtol=1e-14)  # parameters hold y_r
        g = 2 * c * y
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta_prev, theta = theta, y - lr * math.sqrt(1 - b2**r) / (1 - b1**r) * m / np.sqrt(v + eps)
        t = t_next
        opt.zero_grad()
        (torch.tensor(c) * x**2).sum().backward()
        opt.step()
        np.testing.assert_allclose(opt.iterates()[0].numpy(), theta, rtol=1e-14)
    opt.iterate_()
    np.testing.assert_allclose(x.detach().numpy(), theta, rtol=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
def test_faster_than_adam_on_ill_conditioned_quadratic(seed):
    f, f_star = _quadratic(50, 1e4, seed)
    ana = _best_steps(lambda p, lr: ANA(p, lr=lr), f, f_star, 50)
    adam = _best_steps(lambda p, lr: torch.optim.Adam(p, lr=lr), f, f_star, 50)
    assert ana < 4000 and ana < 0.75 * adam, (ana, adam)


@pytest.mark.parametrize("seed", [0, 1])
def test_faster_than_adam_on_logistic_regression(seed):
    f, f_star, d = _logistic(seed)
    ana = _best_steps(lambda p, lr: ANA(p, lr=lr), f, f_star, d)
    adam = _best_steps(lambda p, lr: torch.optim.Adam(p, lr=lr), f, f_star, d)
    assert ana < 0.75 * adam, (ana, adam)


def test_without_restart_momentum_overshoots():
    """Eq. (23) alone drives the momentum weight to 1: on the quadratic the run stalls; restart fixes it."""
    f, f_star = _quadratic(20, 1e3, 0)
    plain = _steps_to_tol(lambda p: ANA(p, lr=0.01, restart="none"), f, f_star, 20)
    restarted = _steps_to_tol(lambda p: ANA(p, lr=0.01, restart="gradient"), f, f_star, 20)
    assert plain == 4000 and restarted < 1000


def test_gradient_restart_resets_t_on_uphill_step():
    """On f = x^2 from x = 1 the momentum carries the iterate past 0; the next step then goes
    uphill (g(y) . (theta^{r+1} - theta^r) > 0), t restarts at 1 and y equals the iterate."""
    x = torch.tensor([1.0], dtype=DT, requires_grad=True)
    opt = ANA([x], lr=0.1, restart="gradient")
    restarts, t_prev = 0, 1.0
    for _ in range(25):
        theta_before = opt.iterates()[0].clone()
        opt.zero_grad()
        (x**2).sum().backward()
        grad = x.grad.clone()
        opt.step()
        theta_after, t = opt.iterates()[0], opt.state[x]["t"]
        uphill = float(grad @ (theta_after - theta_before)) > 0
        if uphill:
            restarts += 1
            assert t == 1.0 and torch.equal(x.detach(), theta_after)
        else:
            assert t == pytest.approx(next_t(t_prev))
        t_prev = t
    assert restarts >= 3
    assert abs(float(opt.iterates()[0])) < 1e-3


def _train(model, opt, steps, gen_seed=0):
    gen = torch.Generator().manual_seed(gen_seed)
    for _ in range(steps):
        xb = torch.randn(16, 4, generator=gen)
        opt.zero_grad()
        ((model(xb) - xb.sum(1, keepdim=True)) ** 2).mean().backward()
        opt.step()


def test_state_dict_round_trip_resumes_bitwise():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    twin.load_state_dict(model.state_dict())
    opt = ANA(model.parameters(), lr=1e-2)
    _train(model, opt, 20)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _train(model, opt, 15, gen_seed=1)

    opt_twin = ANA(twin.parameters(), lr=1e-2)
    twin.load_state_dict(saved_model)
    opt_twin.load_state_dict(saved_opt)
    _train(twin, opt_twin, 15, gen_seed=1)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(opt.iterates(), opt_twin.iterates(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": 0.0}, {"betas": (1.0, 0.9)}, {"eps": 0.0}, {"weight_decay": -1.0}, {"restart": "always"}],
)
def test_bad_hyperparameters_raise(kwargs):
    with pytest.raises(ConfigError, match="ANA"):
        ANA([torch.zeros(2, requires_grad=True)], **kwargs)
