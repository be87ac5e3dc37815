"""The Gymnasium and Stable-Baselines3 faces of the environment."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("stable_baselines3")
from gymnasium.utils.env_checker import check_env  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402

from gradfolio.allocation.rl import PortfolioEnv  # noqa: E402
from gradfolio.allocation.rl.adapters import PortfolioGymEnv, PortfolioVecEnv, PortfolioVectorEnv  # noqa: E402
from gradfolio.errors import ConfigError, DataError  # noqa: E402


def test_single_env_passes_the_checkers(market: pd.DataFrame) -> None:
    env = PortfolioGymEnv(PortfolioEnv(market, 5, episode_length=6, cost=0.001, reward="differential_sharpe"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice on infinite observation bounds
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == (5 * 3 + 3,) and info == {}
    twin = PortfolioEnv(market, 5, episode_length=6, cost=0.001, reward="differential_sharpe", seed=3)
    twin.reset()
    truncated, steps = False, 0
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0, -1.0], dtype=np.float32))
        _, r, _, _ = twin.step(torch.tensor([[5.0, 0.0, -5.0]], dtype=torch.float64))
        assert reward == float(r[0]) and not terminated
        steps += 1
    assert steps == 6
    w = torch.softmax(torch.tensor([5.0, 0.0, -5.0], dtype=torch.float64), -1).numpy()  # action_scale 5
    np.testing.assert_allclose(info["weights"], w, rtol=0, atol=1e-15)
    with pytest.raises(DataError, match="step 0.*action of shape"):
        env.reset(seed=3)
        env.step(np.zeros(4, dtype=np.float32))
    with pytest.raises(ConfigError, match="n_envs=2"):
        PortfolioGymEnv(PortfolioEnv(market, 5, episode_length=6, n_envs=2))
    with pytest.raises(ConfigError, match="action_scale"):
        PortfolioGymEnv(PortfolioEnv(market, 5, episode_length=6), action_scale=0.0)


def test_vec_env_restarts_finished_paths(market: pd.DataFrame) -> None:
    core = PortfolioEnv(market, 5, episode_length=3, n_envs=4, seed=11, cost=0.002)
    vec = PortfolioVecEnv(core, action_scale=2.0)
    vec.seed(21)
    obs = vec.reset()
    reference = PortfolioEnv(market, 5, episode_length=3, n_envs=4, seed=21, cost=0.002)
    reference.reset()
    np.testing.assert_array_equal(obs, reference.flat_observation().to(torch.float32).numpy())
    actions = np.tile(np.array([[0.5, -0.5, 0.25]], dtype=np.float32), (4, 1))
    for step in range(3):
        vec.step_async(actions)
        obs, rewards, dones, infos = vec.step_wait()
        (_, _), r, _, _ = reference.step(2.0 * torch.as_tensor(actions, dtype=torch.float64))
        np.testing.assert_array_equal(rewards, r.to(torch.float32).numpy())
    assert dones.all() and all(i["TimeLimit.truncated"] for i in infos)
    np.testing.assert_array_equal(np.stack([i["terminal_observation"] for i in infos]),
                                  reference.flat_observation().to(torch.float32).numpy())
    assert (core.steps == 0).all() and np.array_equal(obs[:, -3:], np.zeros((4, 3), dtype=np.float32))  # restarted in cash
    assert vec.get_attr("N") == [3] * 4 and vec.env_is_wrapped(object, indices=[0, 1]) == [False, False]


def test_gymnasium_vector_env_equals_the_sb3_vec_env(market: pd.DataFrame) -> None:
    def core() -> PortfolioEnv:
        return PortfolioEnv(market, 5, episode_length=2, n_envs=3, seed=0, cost=[0.001, 0.004, 0.0])

    gym_vec, sb3_vec = PortfolioVectorEnv(core(), action_scale=4.0), PortfolioVecEnv(core(), action_scale=4.0)
    sb3_vec.seed(8)
    obs, info = gym_vec.reset(seed=8)
    np.testing.assert_array_equal(obs, sb3_vec.reset())
    assert info == {} and gym_vec.observation_space.shape == (3, 5 * 3 + 3) and gym_vec.action_space.shape == (3, 3)
    rng = np.random.default_rng(1)
    for step in range(5):
        a = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
        obs, rewards, terminations, truncations, infos = gym_vec.step(a)
        sb3_vec.step_async(a)
        obs2, rewards2, dones2, infos2 = sb3_vec.step_wait()
        np.testing.assert_array_equal(obs, obs2)
        np.testing.assert_array_equal(rewards, rewards2)
        np.testing.assert_array_equal(truncations, dones2)
        assert not terminations.any() and truncations.all() == (step % 2 == 1)
        if truncations.any():
            assert infos["_final_obs"].all()
            np.testing.assert_array_equal(infos["final_obs"], np.stack([i["terminal_observation"] for i in infos2]))
