"""HedgingConfig files and run_baselines: run folder, tracking calls, defaults of the paper."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import flatten_params, load_config
from gradfolio.experiments.hedging.baselines import run_baselines
from gradfolio.experiments.hedging.config import HedgingConfig
from gradfolio.hedging.blackscholes import bs_price


def test_defaults_are_the_papers_setup():
    cfg = HedgingConfig()
    m, e = cfg.env.market, cfg.env
    assert (m.s0, m.mu, m.beta, m.rho, m.nu, m.days_per_year) == (10.0, 0.0, 0.5, 0.2, 0.3, 250)
    assert (e.n_days, e.initial_contracts, e.client_maturity_days, e.arrival_rate, e.contract_size) == (30, -1.0, 60, 1.0, 100.0)
    assert (e.hedge_maturity_days, e.cost, e.implied_vol, e.action_map, e.reward) == (30, 0.005, "per_day", "gamma_vega", "pnl")
    # "each option valued at approximately $60": the lognormal reading of sigma0 = 30%.
    assert m.alpha0 == pytest.approx(0.3 * math.sqrt(10))
    assert 100 * float(bs_price(10.0, 10.0, 60 / 250, m.alpha0 * 10 ** (m.beta - 1))) == pytest.approx(58.58, abs=0.01)


def test_toml_config_and_bad_field(tmp_path: Path):
    good = tmp_path / "h.toml"
    good.write_text('[env]\nhedge_maturity_days = 90\n[env.market]\nnu = 0.8\n[evaluation]\nn_paths = 100\n')
    cfg = load_config(HedgingConfig, good)
    assert cfg.env.hedge_maturity_days == 90 and cfg.env.market.nu == 0.8 and cfg.evaluation.n_paths == 100
    bad = tmp_path / "bad.yaml"
    bad.write_text("env:\n  market: {sigma0: -0.3}\n  implied_vol: sometimes\n")
    with pytest.raises(ConfigError) as err:
        load_config(HedgingConfig, bad)
    assert "env.market.sigma0" in str(err.value) and "env.implied_vol" in str(err.value)


def test_run_baselines_writes_folder_and_tracks(tmp_path: Path, recording_tracker):
    cfg = HedgingConfig.model_validate({"env": {"n_days": 4}, "evaluation": {"n_paths": 200, "n_episodes": 2, "strategies": ["delta", "delta_vega"]}})
    tracker = recording_tracker()
    table, run_dir = run_baselines(cfg, tmp_path / "run", tracker)
    assert list(table.index) == ["delta", "delta_vega"] and run_dir == tmp_path / "run"
    assert json.loads((run_dir / "metrics.json").read_text())["delta_vega"]["std"] == pytest.approx(table.loc["delta_vega", "std"])
    assert tracker.params["env.n_days"] == 4 and tracker.params["evaluation.n_paths"] == 200
    assert tracker.metrics["delta.cvar_95"] == pytest.approx(table.loc["delta", "cvar_95"])
    assert tracker.artifacts == [run_dir]


def test_flatten_params_gives_dotted_leaves():
    tree = {"a": 1, "b": {"c": [1, 2], "d": {"e": None}}, "f": {}}
    assert flatten_params(tree) == {"a": 1, "b.c": [1, 2], "b.d.e": None}
    flat = flatten_params(HedgingConfig().model_dump(mode="json"))
    assert flat["env.market.nu"] == 0.3 and flat["evaluation.strategies"] == ["delta", "delta_gamma", "delta_vega"]


def test_unknown_strategy_in_config_is_rejected(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluation:\n  strategies: [delta, gamma_only]\n")
    with pytest.raises(ConfigError, match="evaluation.strategies"):
        load_config(HedgingConfig, bad)


def test_client_book_options_in_a_yaml_file_and_bad_values(tmp_path: Path):
    good = tmp_path / "h.yaml"
    good.write_text("env:\n  market: {rate: 0.03, dividend: 0.012}\n  client_maturity_days: [20, 40, 60]\n"
                    "  client_moneyness: [0.95, 1.05]\n")
    cfg = load_config(HedgingConfig, good)
    e = cfg.env
    assert (e.market.rate, e.market.dividend, e.client_maturity_days, e.client_moneyness) == (0.03, 0.012, [20, 40, 60], [0.95, 1.05])
    assert len(e.client_types) == 6
    single = tmp_path / "single.yaml"
    single.write_text("env:\n  client_maturity_days: 45\n  client_moneyness: 1.1\n")
    e = load_config(HedgingConfig, single).env
    assert (e.client_maturity_days, e.client_moneyness, e.client_types) == (45, 1.1, [(45, 1.1)])
    for text, field in [
        ("env:\n  client_maturity_days: -10\n", "env.client_maturity_days"),
        ("env:\n  client_maturity_days: [30, 0]\n", "env.client_maturity_days"),
        ("env:\n  client_moneyness: 0\n", "env.client_moneyness"),
        ("env:\n  client_moneyness: [1.0, -1.2]\n", "env.client_moneyness"),
        ("env:\n  market: {rate: 3.0}\n", "env.market.rate"),
        ("env:\n  market: {dividend: .nan}\n", "env.market.dividend"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config(HedgingConfig, bad)
    # The defaults dump as before (one maturity, ATM, no rate or dividend).
    dumped = HedgingConfig().model_dump(mode="json")["env"]
    assert (dumped["client_maturity_days"], dumped["client_moneyness"], dumped["market"]["rate"], dumped["market"]["dividend"]) == (60, 1.0, 0.0, 0.0)


def test_evaluation_valuation_compiled_and_fused_agree_with_slots(tmp_path: Path):
    """``evaluation.valuation`` picks the env's overnight valuation; the three give the same table to
    rounding (float64), and a misspelt one is refused naming the field."""
    tables = {}
    for valuation in ("slots", "fused", "compiled"):
        cfg = HedgingConfig.model_validate({"env": {"n_days": 6}, "evaluation": {"n_paths": 300, "valuation": valuation}})
        env = cfg.evaluation.make_env(cfg.env)
        assert (env.fused, env.compiled) == (valuation == "fused", valuation == "compiled") and env.n_paths == 300
        tables[valuation], _ = run_baselines(cfg, tmp_path / valuation)
    for valuation in ("fused", "compiled"):
        diff = (tables[valuation] - tables["slots"]).abs().to_numpy().max()
        assert diff < 1e-9, (valuation, diff)
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluation:\n  valuation: numba\n")
    with pytest.raises(ConfigError, match="evaluation.valuation"):
        load_config(HedgingConfig, bad)
    bad.write_text("evaluation:\n  valuation: compiled\n  device: cuda:0\n")  # refused when loaded, not after a run
    with pytest.raises(ConfigError, match="evaluation.*compiled.*runs on the CPU.*fused"):
        load_config(HedgingConfig, bad)
