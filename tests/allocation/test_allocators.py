"""ALLOCATORS: names, parameters validated by each class's typed signature, typed nested settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio.allocation import (
    ALLOCATORS,
    ConvexAllocator,
    NormalizedTanhAllocator,
    SoftmaxAllocator,
    SparsemaxAllocator,
    make_allocator,
)
from gradfolio.allocation.allocators import TopKAllocator
from gradfolio.errors import ConfigError, InfeasibleError, SolverError
from gradfolio.solvers import Group, PortfolioConstraints, QPSettings

torch.set_num_threads(1)


D = torch.float64


def _scores(seed: int = 0, B: int = 3, N: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, generator=g, dtype=D), torch.randn(B, 12, N, generator=g, dtype=D)


def test_the_registered_names() -> None:
    assert ALLOCATORS.names() == ["softmax", "tanh", "sparsemax", "convex", "topk"]
    assert ALLOCATORS.get("convex") is ConvexAllocator and ALLOCATORS.get("tanh") is NormalizedTanhAllocator


@pytest.mark.registry_cases(target=ALLOCATORS, skip=("n_assets",))
def test_every_parameter_of_every_allocator_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    name, param, value = registry_case
    with pytest.raises(ConfigError) as err:
        make_allocator(name, n_assets=5, where="network.params.allocator_params", **{param: value})
    assert str(err.value).startswith(f"network.params.allocator_params.{param}"), str(err.value)


@pytest.mark.parametrize("name", ALLOCATORS.names())
def test_every_allocator_rejects_an_unknown_key(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^allocator.max_wieght: Extra inputs are not permitted \(got 0.3\)"):
        make_allocator(name, n_assets=5, max_wieght=0.3)


@pytest.mark.registry_cases(target=QPSettings)
def test_every_qp_setting_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    _, field, value = registry_case
    with pytest.raises(ConfigError) as err:
        make_allocator("convex", n_assets=5, settings={field: value})
    assert str(err.value).startswith(f"allocator.settings.{field}"), str(err.value)


@pytest.mark.registry_cases(target=PortfolioConstraints)
def test_every_constraint_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    _, field, value = registry_case
    with pytest.raises(ConfigError) as err:
        make_allocator("convex", n_assets=5, constraints={field: value})
    assert str(err.value).startswith(f"allocator.constraints.{field}"), str(err.value)


@pytest.mark.registry_cases(target=Group)
def test_every_group_field_rejects_a_wrong_type(registry_case: tuple[str, str, Any]) -> None:
    _, field, value = registry_case
    group = {"assets": [0, 1], field: value}
    with pytest.raises(ConfigError) as err:
        make_allocator("convex", n_assets=5, constraints={"groups": [{"assets": [3]}, group]})
    assert str(err.value).startswith(f"allocator.constraints.groups.1.{field}"), str(err.value)


@pytest.mark.parametrize(("params", "path"), [
    ({"settings": {"max_itr": 5}}, "allocator.settings.max_itr: Unexpected keyword argument"),
    ({"constraints": {"long_ony": True}}, "allocator.constraints.long_ony: Unexpected keyword argument"),
    ({"constraints": {"groups": [{"assets": [0], "uper": 0.2}]}}, "allocator.constraints.groups.0.uper: Unexpected"),
    ({"constraints": {"max_weight": -0.1}}, "allocator.constraints: PortfolioConstraints.max_weight="),
    ({"settings": {"compute_dtype": "int64"}}, "allocator.settings.compute_dtype: dtype='int64'"),
])
def test_unknown_nested_keys_and_bad_values_are_named_with_their_path(params: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_allocator("convex", n_assets=5, **params)
    assert str(err.value).startswith(path), str(err.value)


def test_builds_by_name_equal_direct_construction() -> None:
    z, F = _scores()
    pairs = [
        (make_allocator("softmax", temperature=0.4), SoftmaxAllocator(0.4)),
        (make_allocator("tanh"), NormalizedTanhAllocator()),
        (make_allocator("sparsemax", max_weight="0.35", iterations=40), SparsemaxAllocator(0.35, iterations=40)),
    ]
    for by_name, direct in pairs:
        assert type(by_name) is type(direct)
        assert torch.equal(by_name(z), direct(z))
    assert pairs[2][0].iterations == 40 and pairs[2][0].max_weight == 0.35
    spec = {"long_only": True, "max_weight": 0.4, "groups": [{"assets": [0, 1], "upper": 0.5, "name": "tech"}]}
    layer = ALLOCATORS.build("convex", context={"n_assets": 5}, constraints=spec, gamma=2, alpha="0.25",
                             settings={"max_iter": 70, "active_set_iter": 9})
    constraints = PortfolioConstraints(long_only=True, max_weight=0.4, groups=(Group([0, 1], upper=0.5, name="tech"),))
    direct = ConvexAllocator(5, constraints, gamma=2.0, alpha=0.25, settings=QPSettings(max_iter=70, active_set_iter=9))
    assert layer.problem.constraints.groups[0] == Group([0, 1], None, 0.5, "tech")
    assert layer.problem.settings == QPSettings(max_iter=70, active_set_iter=9)
    w = layer(z, factor=F)
    assert torch.equal(w, direct(z, factor=F))
    assert float(w[:, :2].sum(-1).max()) <= 0.5 + 1e-9 and float(w.max()) <= 0.4 + 1e-9


def test_a_mapping_of_settings_builds_qp_settings_that_the_solver_uses() -> None:
    z, F = _scores()
    spec = {"long_only": True, "max_weight": 0.4}
    starved = make_allocator("convex", n_assets=5, constraints=spec, settings={"active_set_iter": 0, "max_iter": 1})
    assert isinstance(starved.problem.settings, QPSettings) and starved.problem.settings.max_iter == 1
    with pytest.raises(SolverError, match="did not converge in 1 iterations"):
        starved(z, factor=F)  # the interior point alone cannot finish in one iteration
    enough = make_allocator("convex", n_assets=5, constraints=spec, settings={"active_set_iter": 0, "max_iter": 40})
    reference = make_allocator("convex", n_assets=5, constraints=spec)(z, factor=F)
    torch.testing.assert_close(enough(z, factor=F), reference, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("given", "expected"), [("float32", torch.float32), ("float64", torch.float64), (None, None),
                                                 (torch.float32, torch.float32)])
def test_compute_dtype_from_a_yaml_name_null_or_a_torch_dtype(given: Any, expected: torch.dtype | None) -> None:
    layer = make_allocator("convex", n_assets=5, settings={"compute_dtype": given})
    assert layer.problem.settings.compute_dtype is expected


# -- allocators -----------------------------------------------------------------------------------

DTYPES = st.sampled_from([torch.float32, torch.float64])
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _batches(elements):
    """``(B, N)`` score matrices with B in 1..4, N in 2..12."""
    rows = st.integers(2, 12).map(lambda n: st.lists(elements, min_size=n, max_size=n))
    return rows.flatmap(lambda row: st.lists(row, min_size=1, max_size=4))


scores = _batches(st.floats(-5, 5))


@settings(max_examples=60, deadline=None)
@given(scores, st.floats(0.05, 5), DTYPES)
def test_softmax_long_only_budget(z, temp, dtype):
    w = SoftmaxAllocator(temp)(torch.tensor(z, dtype=dtype))
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(len(z), dtype=dtype), rtol=0, atol=TOL[dtype])


@settings(max_examples=100, deadline=None)
@given(_batches(st.floats(-5, 5, width=32, allow_subnormal=False) | st.sampled_from([0.0, 1e-30, -1e-8])), DTYPES)
def test_tanh_gross_exposure_one_also_for_zero_and_tiny_scores(z, dtype):
    zt = torch.tensor(z, dtype=dtype)
    w = NormalizedTanhAllocator()(zt)
    torch.testing.assert_close(w.abs().sum(-1), torch.ones(len(z), dtype=dtype), rtol=0, atol=TOL[dtype])
    zero_rows = (zt == 0).all(-1)
    torch.testing.assert_close(w[zero_rows], torch.full_like(w[zero_rows], 1 / zt.shape[-1]))  # 1/N fallback
    rest = w[~zero_rows]
    assert torch.all(torch.sign(rest) == torch.sign(zt[~zero_rows]))  # same side, 0 only for a zero score


def test_tanh_falls_back_to_equal_weights_on_subnormal_scores_and_has_fd_gradient():
    w = NormalizedTanhAllocator()(torch.tensor([[1e-40, -1e-41, 0.0]], dtype=torch.float32))  # subnormal float32
    torch.testing.assert_close(w, torch.full((1, 3), 1 / 3))
    z = torch.tensor([[0.3, -1.2, 0.05, 2.0], [-0.4, 0.7, 1.1, -0.2]], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(NormalizedTanhAllocator(), (z,))


@settings(max_examples=80, deadline=None)
@given(scores, st.floats(0.1, 1.0), DTYPES)
def test_sparsemax_is_the_capped_simplex_projection(z, cap, dtype):
    n = len(z[0])
    cap = max(cap, 1.0 / n)
    tol = 10 * TOL[dtype]
    W = SparsemaxAllocator(cap)(torch.tensor(z, dtype=dtype)).double().numpy()
    for w, zb in zip(W, np.asarray(z)):
        assert abs(w.sum() - 1) < tol and w.min() >= 0 and w.max() <= cap + tol
        # KKT of the projection: w_i = clip(z_i - tau) with a common tau
        free = (w > tol) & (w < cap - tol)
        if free.any():
            taus = zb[free] - w[free]
            assert np.ptp(taus) < tol
            tau = taus[0]
            assert np.all(zb[w <= tol] <= tau + tol)
            assert np.all(zb[w >= cap - tol] >= tau + cap - tol)


def test_sparsemax_against_cvxpy_and_gradient():
    cp = pytest.importorskip("cvxpy")
    z = torch.tensor([[0.3, -0.2, 0.9, 0.45, 0.05]], dtype=D)  # tau = 0.075, w = (.225, 0, .4, .375, 0)
    cap = 0.4
    v = cp.Variable(5)
    cp.Problem(cp.Minimize(cp.sum_squares(v - z[0].numpy())), [cp.sum(v) == 1, v >= 0, v <= cap]).solve(
        solver=cp.CLARABEL)
    w = SparsemaxAllocator(cap)(z)
    np.testing.assert_allclose(w[0].numpy(), v.value, atol=1e-6)
    np.testing.assert_allclose(w[0].numpy(), [0.225, 0, 0.4, 0.375, 0], atol=1e-12)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: SparsemaxAllocator(cap)(s), (z,))
    with pytest.raises(InfeasibleError, match="max_weight"):
        SparsemaxAllocator(0.1)(z)


def test_make_allocator_by_name_with_params_and_errors():
    z = torch.tensor([[0.3, -0.2, 0.9, 0.45, 0.05]], dtype=D)
    torch.testing.assert_close(make_allocator("sparsemax", max_weight=0.4)(z), SparsemaxAllocator(0.4)(z))
    torch.testing.assert_close(make_allocator("softmax", temperature=0.5)(z), torch.softmax(z / 0.5, -1))
    layer = make_allocator("convex", n_assets=5, constraints={"long_only": True}, alpha=0.3)
    assert isinstance(layer, ConvexAllocator) and layer.n_assets == 5 and layer.problem.constraints.long_only
    module = SoftmaxAllocator()
    assert make_allocator(module) is module
    with pytest.raises(ConfigError, match="max_weight"):
        make_allocator("sparsemax", max_weight=2.0)
    with pytest.raises(ConfigError, match=r"^allocator.cap: Extra inputs are not permitted"):
        make_allocator("sparsemax", cap=0.3)
    with pytest.raises(ConfigError, match="n_assets"):
        make_allocator("convex")
    with pytest.raises(ConfigError, match="module"):
        make_allocator(module, temperature=2.0)
    with pytest.raises(ConfigError, match="unknown"):
        make_allocator("argmax")


# --- TopKAllocator: the differentiable cardinality / minimum-position relaxation -------------------


def _brute_force_projection(z: np.ndarray, k: int, x: float) -> np.ndarray:
    """Projection onto {simplex, at most k names, each >= x} by enumerating every support (cvxpy + Clarabel)."""
    import itertools

    import cvxpy as cp

    best, best_w = np.inf, None
    N = z.shape[0]
    for m in range(1, k + 1):
        if m * x > 1 + 1e-12:
            break
        for S in itertools.combinations(range(N), m):
            idx = list(S)
            w = cp.Variable(m)
            prob = cp.Problem(cp.Minimize(cp.sum_squares(w - z[idx])), [cp.sum(w) == 1, w >= x])
            prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
            value = prob.value + float((np.delete(z, idx) ** 2).sum())
            if value < best - 1e-12:
                best, best_w = value, np.zeros(N)
                best_w[idx] = w.value
    return best_w


@pytest.mark.parametrize(("k", "x"), [(3, 0.0), (3, 0.2), (2, 0.45), (4, 0.3)])
def test_topk_is_the_projection_found_by_enumeration(k: int, x: float) -> None:
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(12, 7, generator=gen, dtype=torch.float64) * 0.6
    w = make_allocator("topk", k=k, min_weight=x)(z)
    for b in range(12):
        np.testing.assert_allclose(w[b].numpy(), _brute_force_projection(z[b].numpy(), k, x), atol=1e-8)
        held = w[b] > 0
        assert int(held.sum()) <= k and float(w[b][held].min()) >= x - 1e-12
    torch.testing.assert_close(w.sum(-1), torch.ones(12, dtype=w.dtype))


def test_topk_without_a_bound_is_sparsemax_and_has_exact_gradients() -> None:
    gen = torch.Generator().manual_seed(8)
    z = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(make_allocator("topk", k=9)(z), make_allocator("sparsemax")(z), rtol=0, atol=1e-12)
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(TopKAllocator(k=3, min_weight=0.1), (zz,), eps=1e-7, atol=1e-6)
    with pytest.raises(ConfigError, match="k=0"):
        TopKAllocator(k=0)
    with pytest.raises(ConfigError, match="min_weight=1.5"):
        TopKAllocator(min_weight=1.5)
