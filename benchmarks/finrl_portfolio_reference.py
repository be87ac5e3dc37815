"""A faithful port of FinRL's ``StockPortfolioEnv`` (``finrl/meta/env_portfolio_allocation/env_portfolio.py``),
the peer of ``bench_portfolio_env.py``.

FinRL itself is not a dependency (it pulls in data vendors and brokers); this file keeps the parts
of its environment that run at every step, line for line: the long pandas frame indexed by day
number (one row per ticker and day, a ``cov_list`` column holding each day's covariance matrix and
one column per technical indicator), ``df.loc[day, :]`` to read a day, the state rebuilt as the
covariance matrix with the indicator rows appended, the softmax of the action, the portfolio
return ``sum((close_{d+1} / close_d - 1) * weights)``, and the memories appended at every step.
Left out: the plots and prints of the terminal step (file output once per episode) and
``get_sb_env``. As in FinRL, ``transaction_cost_pct`` is stored and never used: costs are ignored,
and the reward is the portfolio value, not a return.

:func:`make_finrl_frame` builds the frame FinRL's examples build (``FeatureEngineer`` + a rolling
covariance over ``lookback`` days) from a table of closes, with given indicator values.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

INDICATORS = ["macd", "boll_ub", "boll_lb", "rsi_30", "cci_30", "dx_30", "close_30_sma", "close_60_sma"]
"""FinRL's default ``INDICATORS`` (finrl/config.py)."""


def make_finrl_frame(close: pd.DataFrame, lookback: int, seed: int = 0) -> pd.DataFrame:
    """FinRL's portfolio frame from closes ``(T, N)``: days ``lookback..T-1``, index = day number.

    The indicator columns hold seeded random numbers (their values do not change the work of a step).
    """
    rng = np.random.default_rng(seed)
    rets = close.pct_change()
    rows = []
    for d in range(lookback, len(close)):
        cov = rets.iloc[d - lookback + 1 : d + 1].cov().to_numpy()
        for j, tic in enumerate(close.columns):
            row = {"date": close.index[d], "tic": tic, "close": float(close.iloc[d, j]), "cov_list": cov}
            row.update({name: float(rng.normal()) for name in INDICATORS})
            rows.append(row)
    df = pd.DataFrame(rows).sort_values(["date", "tic"], ignore_index=True)
    df.index = df.date.factorize()[0]
    return df


class StockPortfolioEnv(gym.Env):
    """FinRL's portfolio environment (see the module docstring); arguments as in FinRL."""

    metadata = {"render.modes": ["human"]}

    def __init__(self, df, stock_dim, hmax, initial_amount, transaction_cost_pct, reward_scaling, state_space,
                 action_space, tech_indicator_list, turbulence_threshold=None, lookback=252, day=0):
        self.day = day
        self.lookback = lookback
        self.df = df
        self.stock_dim = stock_dim
        self.hmax = hmax
        self.initial_amount = initial_amount
        self.transaction_cost_pct = transaction_cost_pct
        self.reward_scaling = reward_scaling
        self.state_space = state_space
        self.action_space = action_space
        self.tech_indicator_list = tech_indicator_list
        self.action_space = spaces.Box(low=0, high=1, shape=(self.action_space,))
        self.observation_space = spaces.Box(
            low=-np.inf, high=np.inf, shape=(self.state_space + len(self.tech_indicator_list), self.state_space)
        )
        self.data = self.df.loc[self.day, :]
        self.covs = self.data["cov_list"].values[0]
        self.state = np.append(
            np.array(self.covs), [self.data[tech].values.tolist() for tech in self.tech_indicator_list], axis=0
        )
        self.terminal = False
        self.turbulence_threshold = turbulence_threshold
        self.portfolio_value = self.initial_amount
        self.asset_memory = [self.initial_amount]
        self.portfolio_return_memory = [0]
        self.actions_memory = [[1 / self.stock_dim] * self.stock_dim]
        self.date_memory = [self.data.date.unique()[0]]

    def step(self, actions):
        self.terminal = self.day >= len(self.df.index.unique()) - 1
        if self.terminal:  # FinRL plots, prints the Sharpe ratio and returns here (output left out)
            return self.state, self.reward, self.terminal, False, {}
        weights = self.softmax_normalization(actions)
        self.actions_memory.append(weights)
        last_day_memory = self.data
        self.day += 1
        self.data = self.df.loc[self.day, :]
        self.covs = self.data["cov_list"].values[0]
        self.state = np.append(
            np.array(self.covs), [self.data[tech].values.tolist() for tech in self.tech_indicator_list], axis=0
        )
        portfolio_return = sum(((self.data.close.values / last_day_memory.close.values) - 1) * weights)
        new_portfolio_value = self.portfolio_value * (1 + portfolio_return)
        self.portfolio_value = new_portfolio_value
        self.portfolio_return_memory.append(portfolio_return)
        self.date_memory.append(self.data.date.unique()[0])
        self.asset_memory.append(new_portfolio_value)
        self.reward = new_portfolio_value
        return self.state, self.reward, self.terminal, False, {}

    def reset(self, *, seed=None, options=None):
        self.asset_memory = [self.initial_amount]
        self.day = 0
        self.data = self.df.loc[self.day, :]
        self.covs = self.data["cov_list"].values[0]
        self.state = np.append(
            np.array(self.covs), [self.data[tech].values.tolist() for tech in self.tech_indicator_list], axis=0
        )
        self.portfolio_value = self.initial_amount
        self.terminal = False
        self.portfolio_return_memory = [0]
        self.actions_memory = [[1 / self.stock_dim] * self.stock_dim]
        self.date_memory = [self.data.date.unique()[0]]
        return self.state, {}

    def softmax_normalization(self, actions):
        numerator = np.exp(actions)
        denominator = np.sum(np.exp(actions))
        return numerator / denominator


def make_env(df: pd.DataFrame, n_assets: int, cost: float = 0.001) -> StockPortfolioEnv:
    """The environment with the arguments of FinRL's portfolio-allocation tutorial."""
    return StockPortfolioEnv(
        df=df, stock_dim=n_assets, hmax=100, initial_amount=1_000_000, transaction_cost_pct=cost, reward_scaling=1e-4,
        state_space=n_assets, action_space=n_assets, tech_indicator_list=INDICATORS,
    )
