"""SPA and MCS wrappers give arch's results on the same data and seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import MCS, SPA
from arch.bootstrap import optimal_block_length as arch_block_length

from gradfolio import ConfigError, DataError
from gradfolio.stats import model_confidence_set, spa_test


def _returns(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(0.0003, 0.01, (700, 5)), columns=["one_over_n", "a", "b", "c", "d"])
    df["a"] += 0.0015
    df["d"] -= 0.0012
    return df


def test_spa_equals_arch() -> None:
    df = _returns()
    res = spa_test(df, "one_over_n", size=0.1, n_resamples=300, bootstrap="circular", block_length=4,
                   studentize=False, seed=9)
    ref = SPA(-df["one_over_n"], -df[["a", "b", "c", "d"]], block_size=4, reps=300, bootstrap="circular",
              studentize=False, seed=9)
    ref.compute()
    assert res.pvalues.to_numpy() == pytest.approx(ref.pvalues.to_numpy(), abs=0)
    assert list(res.pvalues.index) == ["lower", "consistent", "upper"]
    better = [["a", "b", "c", "d"][i] for i in ref.better_models(0.1, "consistent")]
    assert res.strategies.index[res.strategies["better"]].tolist() == better == ["a"]
    assert res.strategies.loc["d", "mean_loss_diff"] == pytest.approx((df["d"] - df["one_over_n"]).mean())
    assert res.block_length == 4


def test_spa_auto_block_and_user_loss() -> None:
    df = _returns(5)
    loss = lambda r: r**2  # noqa: E731  a volatility loss: the lowest variance wins
    res = spa_test(df, "a", loss=loss, n_resamples=200, seed=3)
    block = int(np.ceil(arch_block_length((df**2).to_numpy())["stationary"].mean()))
    ref = SPA((df**2)["a"], (df**2).drop(columns="a"), block_size=block, reps=200, seed=3)
    ref.compute()
    assert res.block_length == block
    assert res.pvalues.to_numpy() == pytest.approx(ref.pvalues.to_numpy(), abs=0)


@pytest.mark.parametrize("method", ["R", "max"])
def test_mcs_equals_arch(method: str) -> None:
    df = _returns(3)
    res = model_confidence_set(df, size=0.2, n_resamples=250, method=method, bootstrap="circular",  # type: ignore[arg-type]
                               block_length=3, seed=8)
    ref = MCS(-df, 0.2, reps=250, block_size=3, method=method, bootstrap="circular", seed=8)
    ref.compute()
    assert res["pvalue"].to_numpy() == pytest.approx(ref.pvalues["Pvalue"].reindex(df.columns).to_numpy(), abs=0)
    assert res.index[res["included"]].tolist() == sorted(ref.included, key=list(df.columns).index)
    assert "a" in res.index[res["included"]] and "d" not in res.index[res["included"]]


def test_bad_input() -> None:
    df = _returns()
    with pytest.raises(ConfigError, match="benchmark='equal_weight' is not a column"):
        spa_test(df)
    with pytest.raises(ConfigError, match="size"):
        spa_test(df, "a", size=1.2)
    with pytest.raises(ConfigError, match="same shape"):
        model_confidence_set(df, loss=lambda r: r.iloc[:, :2])
    with pytest.raises(DataError, match="NaN"):
        model_confidence_set(df, loss=lambda r: r.where(r > 0))
    with pytest.raises(ConfigError, match="two strategy"):
        model_confidence_set(df[["a"]])
    with pytest.raises(ConfigError, match="block_length"):
        model_confidence_set(df, block_length=0)
