"""Training loop on the real environment: learning signal, checkpoint/resume bitwise identical to
an uninterrupted run, config mismatch refused, ANA validated and saved at its iterates."""

from __future__ import annotations

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, load_agent, train_agent
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.rl.agent import AgentConfig
from gradfolio.hedging.rl.training import Trainer, TrainerConfig, validation_score

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
    full = Trainer(tiny_hedge.env, agent_cfg, tiny_hedge.trainer(), tmp_path / "full")
    full.train()

    killed = Trainer(tiny_hedge.env, agent_cfg, tiny_hedge.trainer(), tmp_path / "run",
                     tracker=recording_tracker(kill_at=4))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    assert killed.episode == 4  # episode 4 ran but its checkpoint was never written

    resumed = Trainer(tiny_hedge.env, agent_cfg, tiny_hedge.trainer(), tmp_path / "run")
    resumed.load()
    assert resumed.episode == 3
    resumed.train()
    _same_state(full, resumed)
    assert resumed.episode == 6 and resumed.updates == full.updates > 0


def test_resume_refuses_other_settings(tmp_path, tiny_hedge):
    Trainer(tiny_hedge.env, tiny_hedge.agent, tiny_hedge.trainer(n_episodes=2), tmp_path).train()
    other = Trainer(tiny_hedge.env, tiny_hedge.agent.model_copy(update={"n_quantiles": 8}),
                    tiny_hedge.trainer(n_episodes=2), tmp_path)
    with pytest.raises(ConfigError, match="different settings"):
        other.load()
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(tiny_hedge.env, tiny_hedge.agent, tiny_hedge.trainer(), tmp_path / "empty").load()


def test_trainer_collects_every_path_and_validates(tiny_hedge):
    tr = Trainer(tiny_hedge.env, tiny_hedge.agent, tiny_hedge.trainer(n_episodes=4, buffer_capacity=1000))
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
    tr = Trainer(tiny_hedge.env, agent_cfg, cfg.trainer, tmp_path / "run")
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
    tr = Trainer(env_cfg, AgentConfig(optimizer="ana"), cfg)
    tr.train()
    delta = pnl_metrics(tr.val_env.run_episode(GreekHedge(tr.val_env, "delta"), VAL_SEED).total_pnl)
    best = min(row["val_cvar_95"] for row in tr.history if "val_cvar_95" in row)
    assert best < 0.8 * delta["cvar_95"], (best, delta["cvar_95"])
