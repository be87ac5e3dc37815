"""The defaults of the environment are unchanged (to rounding) by the client-book options of issue 18.

``data/env_golden.pt`` was written by this file (run as a script) with the code before ``client_maturity_days``
lists, ``client_moneyness``, ``market.rate`` and ``market.dividend`` existed: every baseline's P&L,
reward, cost and contracts, and the states and P&L of a fixed random policy, on five environments
(the default, per-option vols, Cao et al.'s SABR and GBM markets, the vega-fraction map with the
absolute reward) x float64/float32 x per-slot/fused valuation, plus a draw of client orders.

Rebuild the file (only when the default behaviour is meant to change) with
``PYTHONPATH=src python tests/hedging/test_env_golden.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.book import draw_client_orders
from gradfolio.hedging.config import BASELINES, EnvConfig, MarketConfig
from gradfolio.hedging.env import HedgingEnv

GOLDEN = Path(__file__).parent / "data" / "env_golden.pt"

CASES: dict[str, dict] = {
    "default": {},
    "per_option": {"implied_vol": "per_option", "client_maturity_days": 20, "hedge_maturity_days": 9},
    "cao_sabr90": {"market": MarketConfig(beta=1.0, rho=-0.7), "cost": 0.01, "hedge_maturity_days": 90, "time_to_go": True},
    "gbm_gamma": {"market": MarketConfig(beta=1.0, rho=-0.7, nu=0.0), "action_map": "gamma", "arrival_rate": 1.7},
    "vega_abs": {"action_map": "vega_fraction", "a_max": 1.3, "reward": "abs_pnl", "initial_contracts": 2.0},
}
N_PATHS, SEED = 12, 7


def build() -> dict[str, torch.Tensor]:
    """Every case x dtype x fused: the P&L, reward, cost and contracts of each baseline and of a random policy."""
    out: dict[str, torch.Tensor] = {}
    for name, fields in CASES.items():
        cfg = EnvConfig(**fields)
        for dtype in (torch.float64, torch.float32):
            for fused in (False, True):
                env = HedgingEnv(cfg, N_PATHS, seed=SEED, dtype=dtype, fused=fused)
                key = f"{name}/{str(dtype)[6:]}/{'fused' if fused else 'slots'}"
                for strategy, policy in baseline_policies(env, list(BASELINES)).items():
                    ep = env.run_episode(policy, SEED)
                    for field in ("pnl", "reward", "cost", "contracts"):
                        out[f"{key}/{strategy}/{field}"] = getattr(ep, field)
                gen = torch.Generator().manual_seed(SEED + 1)
                actions = torch.rand(cfg.n_days, N_PATHS, generator=gen, dtype=torch.float64).to(dtype) * env.action_high
                state = env.reset(SEED + 2)
                states, pnls = [state], []
                for a in actions:
                    state, _, _, info = env.step(a)
                    states.append(state)
                    pnls.append(info["pnl"])
                out[f"{key}/random/states"] = torch.stack(states)
                out[f"{key}/random/pnl"] = torch.stack(pnls)
    out["orders"] = draw_client_orders(N_PATHS, 30, 1.3, torch.Generator().manual_seed(SEED), torch.device("cpu"), torch.float64)
    return out



#: Largest difference allowed, as a fraction of ``max(1, max |reference|)`` of the tensor. The file was
#: written on one machine; another CPU's kernels (MKL's AVX-512 or AVX2 path, ATen's vectorised
#: math) round differently: float64 results then differ by ~2e-11 of their scale, float32 ones by up
#: to ~1.2e-2 (the delta-gamma ratio of a small gamma amplifies float32 rounding). A changed default
#: moves the P&L by far more (a different client book, market or action map: order 1 and up).
TOLERANCE = {torch.float64: 1e-9, torch.float32: 5e-2}


def test_default_environment_and_baselines_are_unchanged():
    """Every tensor equals the recorded one to rounding (bit for bit on the machine that wrote the file)."""
    reference = torch.load(GOLDEN, weights_only=True)
    now = build()
    assert set(now) == set(reference)
    for key, value in reference.items():
        assert now[key].dtype == value.dtype, key
        scale = max(1.0, float(value.double().abs().max()))
        err = float((now[key].double() - value.double()).abs().max())
        assert err <= TOLERANCE.get(value.dtype, 0.0) * scale, f"{key}: max difference {err:.3g} (scale {scale:.3g})"


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build(), GOLDEN)
