"""Training loop on the real environment: learning signal, checkpoint/resume bitwise identical to
an uninterrupted run, config mismatch refused, ANA validated and saved at its iterates."""

from __future__ import annotations

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, load_agent, train_agent
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.rl.agent import AgentConfig
from gradfolio.experiments.hedging.config import TrainerConfig
from gradfolio.experiments.hedging.train import build_trainer
from gradfolio.hedging.rl.training import Trainer, validation_score

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = a.agent.full_state_dict(), b.agent.full_state_dict()
    for key in sa["modules"]:
        assert torch.equal(sa["modules"][key], sb["modules"][key]), key
    for opt in ("actor_opt", "critic_opt"):
        for pid, st in sa[opt]["state"].items():
            for name, value in st.items():
                other = sb[opt]["state"][pid][name]
                assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert a.history == b.history
    assert a.updates == b.updates
    assert torch.equal(a.buffer.state, b.buffer.state)


@pytest.mark.parametrize("optimizer", ["ana", "adam"])
def test_resume_after_kill_is_bitwise_identical(tmp_path, optimizer, recording_tracker, tiny_hedge):
    agent_cfg = tiny_hedge.agent.model_copy(update={"optimizer": optimizer})
    # buffer smaller than the transitions collected: the wrap-around is checkpointed too
    full = tiny_hedge.build(agent_cfg, tiny_hedge.trainer(), tmp_path / "full")
    full.train()

    killed = tiny_hedge.build(agent_cfg, tiny_hedge.trainer(), tmp_path / "run",
                             tracker=recording_tracker(kill_at=4))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    assert killed.episode == 4  # episode 4 ran but its checkpoint was never written

    resumed = tiny_hedge.build(agent_cfg, tiny_hedge.trainer(), tmp_path / "run")
    resumed.load()
    assert resumed.episode == 3
    resumed.train()
    _same_state(full, resumed)
    assert resumed.episode == 6 and resumed.updates == full.updates > 0


def test_resume_refuses_other_settings(tmp_path, tiny_hedge):
    tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=2), tmp_path).train()
    other = tiny_hedge.build(tiny_hedge.agent.model_copy(update={"n_quantiles": 8}),
                             tiny_hedge.trainer(n_episodes=2), tmp_path)
    with pytest.raises(ConfigError, match="different settings"):
        other.load()
    with pytest.raises(ConfigError, match="no checkpoint"):
        tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(), tmp_path / "empty").load()


def test_trainer_collects_every_path_and_validates(tiny_hedge):
    tr = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=4, buffer_capacity=1000))
    tr.train()
    assert len(tr.buffer) == 4 * 8 * 5  # episodes x paths x days
    # 3 training episodes x 5 days = 15 days; update phases every 2 days (7 of them), 2 updates per day
    assert tr.updates == 7 * 2 * 2 and tr.pending_days == 1
    assert "val_cvar_95" in tr.history[1] and "val_cvar_95" in tr.history[3]
    assert tr.best is not None
    # the scaler was fitted on the warm-up states: standardised features have mean ~0 there
    feats = tr.agent.features(tr.buffer.state[: 8 * 5])
    assert feats.mean(dim=0).abs().max() < 1e-5


def test_ana_agent_is_validated_and_saved_at_its_iterates(tmp_path, tiny_hedge):
    """Without restart ANA's look-ahead point y_r differs from the iterate theta^r after every
    step. One validation (episode 4, so it is also the keep_best snapshot): its score is that of
    the actor at theta^r (a manual swap), not at y_r; agent.pt holds theta^r for both networks."""
    agent_cfg = tiny_hedge.agent.model_copy(update={"ana_restart": "none"})
    cfg = HedgeTrainingConfig(env=tiny_hedge.env, agent=agent_cfg,
                              trainer=tiny_hedge.trainer(n_episodes=4, eval_every=4))
    train_agent(cfg, tmp_path / "run")
    # the last checkpoint holds the run as training left it: y_r in the networks
    tr = build_trainer(cfg, tmp_path / "run")
    tr.load()
    (row,) = [r for r in tr.history if "val_score" in r]
    y_critic = [p.detach().clone() for p in tr.agent.critic.parameters()]
    score_y = validation_score(tr.agent, tr.val_env)[0]
    with torch.no_grad():
        for p, theta in zip(tr.agent.actor.parameters(), tr.agent.actor_opt.iterates(), strict=True):
            p.copy_(theta)
    assert validation_score(tr.agent, tr.val_env)[0] == row["val_score"] != score_y
    assert all(torch.equal(tr.best[1][k], v) for k, v in tr.agent.actor.state_dict().items())

    saved, _ = load_agent(tmp_path / "run")
    for net, opt in ((saved.actor, saved.actor_opt), (saved.critic, saved.critic_opt)):
        assert all(torch.equal(p, theta) for p, theta in zip(net.parameters(), opt.iterates(), strict=True))
    assert not any(torch.equal(p, y) for p, y in zip(saved.critic.parameters(), y_critic, strict=True))


def test_agent_learns_to_hedge_better_than_no_option_trades():
    """On the default 30-day market (short runs, 64 paths), training lowers the validation
    CVaR95 below that of delta hedging (which trades no option)."""
    from gradfolio.hedging.baselines import GreekHedge
    from gradfolio.hedging.evaluation import pnl_metrics
    from gradfolio.hedging.rl.training import VAL_SEED

    env_cfg = EnvConfig(time_to_go=True)
    cfg = TrainerConfig(n_paths=64, n_episodes=12, warmup_episodes=2, eval_every=2, val_paths=1000,
                        updates_per_step=1, batch_size=128, checkpoint_every=0)
    tr = build_trainer(HedgeTrainingConfig(env=env_cfg, agent=AgentConfig(optimizer="ana"), trainer=cfg))
    tr.train()
    delta = pnl_metrics(tr.val_env.run_episode(GreekHedge(tr.val_env, "delta"), VAL_SEED).total_pnl)
    best = min(row["val_cvar_95"] for row in tr.history if "val_cvar_95" in row)
    assert best < 0.8 * delta["cvar_95"], (best, delta["cvar_95"])


class _Payload:
    """Pickles as ``open(marker, "w")``: loading it with plain pickle would create the marker file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_checkpoint_is_refused_without_running_its_code(tmp_path, tiny_hedge):
    tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=2), tmp_path).train()
    marker = tmp_path / "payload-ran"
    torch.save({"agent": _Payload(marker)}, tmp_path / "crafted.pt")
    torch.load(tmp_path / "crafted.pt", weights_only=False)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    (tmp_path / "crafted.pt").replace(tmp_path / "checkpoint.pt")
    resumed = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=3), tmp_path)
    with pytest.raises(ConfigError, match=r"asks to load \S*open, which is not plain data, and was refused unread"):
        resumed.load()
    assert not marker.exists()
    assert resumed.episode == 0 and resumed.history == []


def test_truncated_checkpoint_is_one_config_error_line(tmp_path, tiny_hedge):
    tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=2), tmp_path).train()
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConfigError) as err:
        tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=3), tmp_path).load()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"Trainer: cannot read {path}") and "truncated" in message


def test_resume_names_every_changed_setting_and_allows_more_episodes(tmp_path, tiny_hedge):
    tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=2), tmp_path).train()
    # n_episodes and checkpoint_every may change
    more = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=5, checkpoint_every=3), tmp_path)
    more.load()
    assert more.episode == 2 and more.n_episodes == 5
    other = tiny_hedge.build(tiny_hedge.agent.model_copy(update={"lr_critic": 3e-4}),
                             tiny_hedge.trainer(n_episodes=5, batch_size=32, val_paths=12, noise_std=0.3), tmp_path)
    with pytest.raises(ConfigError) as err:
        other.load()
    message = str(err.value)
    assert "trainer.batch_size: checkpoint 16, now 32" in message
    assert "trainer.noise_std: checkpoint 0.2, now 0.3" in message
    assert "val_paths: checkpoint 8, now 12" in message
    assert "agent.lr_critic: checkpoint" in message and "now 0.0003" in message
    assert "n_episodes:" not in message and "\n" not in message


def test_trainer_reports_progress_after_every_episode_and_logs_its_parameters(tmp_path, recording_tracker, tiny_hedge):
    from gradfolio.hedging.rl.training import describe

    calls: list[tuple] = []
    tracker = recording_tracker()
    tr = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=4), tmp_path,
                          tracker=tracker, progress=lambda *args: calls.append(args))
    tr.train()
    assert [c[:3] for c in calls] == [("training", 1, 4), ("training", 2, 4), ("training", 3, 4), ("training", 4, 4)]
    assert [c[3] for c in calls] == [describe(row) for row in tr.history]
    assert calls[0][3] == "upd 0" and calls[-1][3].startswith(f"upd {tr.updates}  critic_loss ")
    assert f"val_score {tr.history[-1]['val_score']:.3f}" in calls[-1][3]
    assert tracker.params["batch_size"] == 16 and tracker.params["n_episodes"] == 4
    assert tracker.params["trajectory_length"] == 2 and tracker.params["start_episode"] == 0
    # a resumed run reports from where it stands
    calls.clear()
    resumed = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=6), tmp_path,
                               tracker=tracker, progress=lambda *args: calls.append(args))
    resumed.load()
    resumed.train()
    assert [c[1:3] for c in calls] == [(5, 6), (6, 6)] and tracker.params["start_episode"] == 4


def _objects(n_paths: int = 8, val_paths: int = 8, dtype: torch.dtype = torch.float32):
    from gradfolio.hedging.rl.training import make_agent, make_env

    env_cfg = EnvConfig(n_days=5, time_to_go=True)
    env = make_env(env_cfg, n_paths, "cpu", dtype)
    return make_agent(env, AgentConfig(hidden=(8,), n_quantiles=4), seed=3), env, make_env(env_cfg, val_paths, "cpu", dtype)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"n_episodes": 3, "warmup_episodes": 3}, ["warmup_episodes=3 leaves no training episode out of n_episodes=3"]),
        ({"noise_std": -0.1}, ["noise_std=-0.1 (must be >= 0)"]),
        ({"noise_std_end": float("nan")}, ["noise_std_end=nan (must be >= 0)"]),
        ({"batch_size": 0, "buffer_capacity": -5}, ["batch_size=0 (must be >= 1)", "buffer_capacity=-5 (must be >= 1)"]),
        ({"trajectory_length": 0, "updates_per_step": 0}, ["trajectory_length=0", "updates_per_step=0"]),
        ({"eval_every": -1, "checkpoint_every": -2, "seed": -3}, ["eval_every=-1", "checkpoint_every=-2", "seed=-3"]),
        ({"warmup_episodes": 0}, ["warmup_episodes=0 (must be >= 1)"]),
    ],
)
def test_trainer_validates_its_parameters_naming_them(kwargs, named):
    agent, env, val_env = _objects()
    with pytest.raises(ConfigError) as err:
        Trainer(agent, env, val_env, **kwargs)
    message = str(err.value)
    assert message.startswith("Trainer: ") and "\n" not in message
    for part in named:
        assert part in message, (part, message)


def test_trainer_checks_that_agent_and_validation_env_fit_env():
    agent, env, val_env = _objects()
    with pytest.raises(ConfigError, match="eval_every=10 needs a val_env"):
        Trainer(agent, env)
    assert Trainer(agent, env, eval_every=0).val_env is None
    with pytest.raises(ConfigError, match="val_env has 1 path"):
        Trainer(agent, env, _objects(val_paths=1)[2])
    assert env.n_features == 6  # 5 market features and the time to go
    with pytest.raises(ConfigError, match=r"val_env \(state width 6, torch.float64, cpu\) differs from env "
                                          r"\(state width 6, torch.float32, cpu\)"):
        Trainer(agent, env, _objects(dtype=torch.float64)[2])
    with pytest.raises(ConfigError, match=r"agent \(state width 6, torch.float64, cpu\) does not fit env"):
        Trainer(_objects(dtype=torch.float64)[0], env, val_env)
    from gradfolio.hedging.rl.training import make_env

    narrow = make_env(EnvConfig(n_days=5, time_to_go=False), 8, "cpu", torch.float32)
    with pytest.raises(ConfigError, match=r"agent \(state width 6, torch.float32, cpu\) does not fit env "
                                          r"\(state width 5, torch.float32, cpu\)"):
        Trainer(agent, narrow, eval_every=0)


def test_trainer_without_validation_trains_on_built_objects():
    """Built objects in, explicit parameters: 3 episodes of 8 paths x 5 days, no validation, no checkpoint."""
    agent, env, _ = _objects()
    tr = Trainer(agent, env, n_episodes=3, warmup_episodes=1, eval_every=0, batch_size=16, buffer_capacity=500,
                 trajectory_length=5, updates_per_step=3, seed=7)
    assert tr.train() is agent
    assert len(tr.buffer) == 3 * 8 * 5 and tr.updates == 2 * 5 * 3 and tr.best is None
    assert all("val_score" not in row for row in tr.history)


# -- Cao et al.'s trainer settings: one update per k transitions, n-step transitions ---------------

def _tiny_cao(tiny_hedge) -> AgentConfig:
    """Cao et al.'s options (3-step, hard copies every 4 updates, clipping, mean loss, LayerNorm, explicit
    levels) on networks small enough for a test."""
    return AgentConfig.cao(hidden=(8,), actor_hidden=(8,), critic_hidden=(8, 8), n_quantiles=3,
                           taus=(0.1, 0.5, 0.9), n_step=3, target_period=4)


def test_transitions_per_update_carries_the_remainder(tiny_hedge):
    tr = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer(n_episodes=4, buffer_capacity=1000,
                                                               transitions_per_update=3, eval_every=0))
    tr.train()
    # 15 training days of 8 paths, an update phase every 2 days (7 phases of 16 transitions):
    # 16 // 3 = 5 (1 left), 17 // 3 = 5 (2 left), 18 // 3 = 6 (0 left), ... -> 5 + 5 + 6 + 5 + 5 + 6 + 5
    assert tr.updates == 37 == (7 * 16) // 3 and tr.spare_transitions == (7 * 16) % 3
    assert tr.settings()["transitions_per_update"] == 3
    assert "transitions_per_update" not in tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer()).settings()
    with pytest.raises(ConfigError, match="transitions_per_update=0"):
        Trainer(tr.agent, tr.env, None, n_episodes=3, eval_every=0, transitions_per_update=0)


def test_n_step_transitions_in_the_buffer_match_a_replay_of_the_episode(tiny_hedge):
    from gradfolio.hedging.rl.training import TRAIN_SEED_OFFSET

    tr = tiny_hedge.build(_tiny_cao(tiny_hedge), tiny_hedge.trainer(n_episodes=2, buffer_capacity=1000,
                                                                   eval_every=0, dtype="float64"))
    tr.run_episode()  # the warm-up episode: random actions, 5 days x 8 paths
    assert len(tr.buffer) == 40 and tr.n_step.pending == []
    actions = tr.buffer.action[:40].reshape(5, 8)  # window t starts on day t: rows 8 t .. 8 t + 7
    env = tr.env
    env.reset(TRAIN_SEED_OFFSET + 100_000 * tr.seed + 0)
    rewards, states = [], []
    for t in range(5):
        states.append(env.state.clone())
        rewards.append(env.step(actions[t])[1])
    states.append(env.state.clone())
    r = torch.stack(rewards, dim=1)  # (8, 5)
    for t in range(5):
        rows = slice(8 * t, 8 * t + 8)
        end = min(t + 3, 5)
        assert torch.allclose(tr.buffer.reward[rows], r[:, t:end].sum(dim=1), rtol=1e-12, atol=1e-12)  # gamma = 1
        assert torch.equal(tr.buffer.state[rows], states[t])
        assert torch.equal(tr.buffer.next_state[rows], states[end])
        assert tr.buffer.done[rows].tolist() == [float(t + 3 >= 5)] * 8


def test_cao_agent_resume_is_bitwise_identical(tmp_path, recording_tracker, tiny_hedge):
    agent_cfg = _tiny_cao(tiny_hedge)
    trainer = tiny_hedge.trainer(transitions_per_update=5, noise_std=0.3, noise_std_end=0.3)
    full = tiny_hedge.build(agent_cfg, trainer, tmp_path / "full")
    full.train()
    killed = tiny_hedge.build(agent_cfg, trainer, tmp_path / "run", tracker=recording_tracker(kill_at=4))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = tiny_hedge.build(agent_cfg, trainer, tmp_path / "run")
    resumed.load()
    resumed.train()
    _same_state(full, resumed)
    assert resumed.agent.n_updates == full.agent.n_updates == full.updates > 4
    assert resumed.spare_transitions == full.spare_transitions
    assert all(row["noise"] == 0.3 for row in full.history)


def test_fingerprint_leaves_the_new_agent_options_out_at_their_defaults(tiny_hedge):
    """Checkpoints written before Cao et al.'s options existed hold none of them: a default agent's
    fingerprint must not either (so they still resume), and a non-default option must be in it."""
    plain = tiny_hedge.build(tiny_hedge.agent, tiny_hedge.trainer()).fingerprint()["agent"]
    before = {"hidden", "n_quantiles", "kappa", "gamma", "polyak", "optimizer", "lr_actor", "lr_critic", "ana_betas",
              "ana_eps", "ana_restart", "objective", "risk_aversion", "level", "greek_features"}
    assert set(plain) == before
    cao = tiny_hedge.build(_tiny_cao(tiny_hedge), tiny_hedge.trainer()).fingerprint()["agent"]
    assert cao["n_step"] == 3 and cao["target_update"] == "hard" and cao["taus"] == [0.1, 0.5, 0.9]
