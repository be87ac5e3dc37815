"""train_agent / evaluate_agent: training and test metrics logged to MLflow."""

from __future__ import annotations

import pytest

from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, train_agent

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_and_test_metrics_go_to_mlflow(tmp_path, monkeypatch, tiny_hedge):
    import mlflow

    from gradfolio.experiments.hedging.train import evaluate_agent
    from gradfolio.tracking import MlflowTracker

    monkeypatch.chdir(tmp_path)  # MLflow's artifact store (./mlruns) goes to the test folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = HedgeTrainingConfig(env=tiny_hedge.env, agent=tiny_hedge.agent,
                              trainer=tiny_hedge.trainer(n_episodes=4),
                              evaluation=EvaluationConfig(n_paths=20))
    with MlflowTracker("test-hedge", run_name="anaddh", tracking_uri=uri) as tracker:
        agent, run_dir = train_agent(cfg, tmp_path / "run", tracker=tracker)
        table, _ = evaluate_agent(agent, cfg, run_dir, tracker)
        run_id = tracker.run_id
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["agent_name"] == "anaddh" and run.data.params["agent.optimizer"] == "ana"
    assert [m.step for m in client.get_metric_history(run_id, "critic_loss")] == [2, 3, 4]
    assert [m.step for m in client.get_metric_history(run_id, "val_cvar_95")] == [2, 4]
    assert run.data.metrics["test.anaddh.cvar_95"] == pytest.approx(table.loc["anaddh", "cvar_95"])


def test_build_trainer_turns_the_config_into_objects(tmp_path, tiny_hedge):
    import torch

    from gradfolio.experiments.hedging.train import build_trainer

    trainer_cfg = tiny_hedge.trainer(n_paths=12, val_paths=6, dtype="float64", seed=5, noise_std=0.35)
    cfg = HedgeTrainingConfig(env=tiny_hedge.env, agent=tiny_hedge.agent, trainer=trainer_cfg)
    tr = build_trainer(cfg, tmp_path)
    assert (tr.env.n_paths, tr.val_env.n_paths, tr.env.dtype, tr.agent.dtype) == (12, 6, torch.float64, torch.float64)
    assert tr.env.config == tr.val_env.config == tiny_hedge.env and tr.agent.config == tiny_hedge.agent
    assert tr.settings() == trainer_cfg.trainer_kwargs() and tr.noise_std == 0.35 and tr.seed == 5
    assert tr.checkpoint_path == tmp_path / "checkpoint.pt"


class _Payload:
    """Pickles as ``open(marker, "w")``: loading it with plain pickle would create the marker file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_agent_file_is_refused_without_running_its_code(tmp_path, tiny_hedge):
    import torch

    from gradfolio.errors import ConfigError
    from gradfolio.experiments.hedging.train import load_agent

    _, run_dir = train_agent(tiny_hedge.run, tmp_path / "run")
    agent, config = load_agent(run_dir)  # the genuine file loads
    assert config == tiny_hedge.run
    marker = tmp_path / "payload-ran"
    torch.save({"config": tiny_hedge.run.model_dump(mode="json"), "agent": _Payload(marker)}, tmp_path / "crafted.pt")
    torch.load(tmp_path / "crafted.pt", weights_only=False)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    (tmp_path / "crafted.pt").replace(run_dir / "agent.pt")
    with pytest.raises(ConfigError, match=r"load_agent: .*agent.pt asks to load \S*open, which is not plain data"):
        load_agent(run_dir)
    assert not marker.exists()


def test_truncated_or_foreign_agent_file_is_one_config_error_line(tmp_path, tiny_hedge):
    import torch

    from gradfolio.checkpoint import save_state
    from gradfolio.errors import ConfigError
    from gradfolio.experiments.hedging.train import load_agent

    _, run_dir = train_agent(tiny_hedge.run, tmp_path / "run")
    path = run_dir / "agent.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ConfigError) as err:
        load_agent(run_dir)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"load_agent: cannot read {path}")
    save_state(path, {"weights": torch.zeros(3)})
    with pytest.raises(ConfigError, match="is not an agent file"):
        load_agent(run_dir)


def test_cao_preset_key_fills_agent_and_trainer_and_file_fields_override(tmp_path):
    from gradfolio.errors import ConfigError
    from gradfolio.experiments.config_io import load_config
    from gradfolio.hedging.rl.agent import AgentConfig

    path = tmp_path / "cao.yaml"
    path.write_text("preset: cao\nagent: {n_step: 3}\ntrainer: {n_episodes: 7, noise_std_end: 0.1}\n")
    cfg = load_config(HedgeTrainingConfig, path)
    assert cfg.agent == AgentConfig.cao(n_step=3)
    assert (cfg.trainer.noise_std, cfg.trainer.noise_std_end, cfg.trainer.transitions_per_update) == (0.3, 0.1, 8)
    assert cfg.trainer.n_episodes == 7 and cfg.agent_name == "cao"
    assert HedgeTrainingConfig.model_validate(cfg.model_dump(mode="json")) == cfg  # config.yaml round trip
    short = tmp_path / "short.yaml"
    short.write_text("agent: cao\n")
    assert load_config(HedgeTrainingConfig, short).agent == AgentConfig.cao()
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: hull\n")
    with pytest.raises(ConfigError, match="preset"):
        load_config(HedgeTrainingConfig, bad)
    plain = HedgeTrainingConfig()
    assert plain.preset is None and plain.agent == AgentConfig() and plain.trainer.transitions_per_update is None
