"""CPCV and walk-forward folds against skfolio's CombinatorialPurgedCV and WalkForward."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skfolio.model_selection import CombinatorialPurgedCV as SkCPCV
from skfolio.model_selection import WalkForward

from gradfolio import ConfigError, DataError
from gradfolio.data.cv import CombinatorialPurgedCV, WalkForwardCV, purge_embargo


@pytest.mark.parametrize("n_folds,n_test,purge,embargo,T", [(6, 2, 3, 5, 103), (7, 3, 0, 4, 250), (5, 2, 4, 1, 61),
                                                          (8, 5, 2, 7, 400)])
def test_cpcv_equals_skfolio(n_folds: int, n_test: int, purge: int, embargo: int, T: int) -> None:
    ours = CombinatorialPurgedCV(n_folds, n_test, purge, embargo)
    ref = SkCPCV(n_folds, n_test, purged_size=purge, embargo_size=embargo)
    splits = list(ours.split(T))
    ref_splits = list(ref.split(np.zeros((T, 3))))
    assert len(splits) == len(ref_splits) == ours.n_splits == math.comb(n_folds, n_test)
    for (train, test), (rtrain, rtests) in zip(splits, ref_splits):
        assert np.array_equal(train, rtrain)
        assert np.array_equal(test, np.concatenate(rtests))
        assert not np.intersect1d(train, test).size
    assert ours.n_paths == ref.n_test_paths == math.comb(n_folds, n_test) * n_test // n_folds
    assert np.array_equal(ours.paths(), ref.recombined_paths)
    assert np.array_equal(ours.path_ids(), ref.get_path_ids())


def test_cpcv_purge_embargo_rows_and_paths_cover_every_row() -> None:
    cv = CombinatorialPurgedCV(n_folds=5, n_test_folds=2, purge=2, embargo=3)
    train, test = next(cv.split(50))  # groups of 10; the first split tests groups 0 and 1 (rows 0..19)
    assert test.tolist() == list(range(20))
    assert train[0] == 20 + 2 + 3 and train[-1] == 49
    train, _ = list(cv.split(50))[cv.test_groups.tolist().index([1, 3])]
    removed = sorted(set(range(50)) - set(train))
    assert removed == [8, 9] + list(range(10, 20)) + [20, 21, 22, 23, 24] + [28, 29] + list(range(30, 40)) + \
        [40, 41, 42, 43, 44]
    for path in cv.path_indices(50):
        rows = np.concatenate([r for _, r in path])
        assert rows.tolist() == list(range(50))
        for split, r in path:  # each piece is tested in the split that provides it
            assert np.isin(r, list(cv.split(50))[split][1]).all()


@pytest.mark.parametrize("train,test,purge,expanding,keep_last", [(30, 7, 3, False, False), (25, 9, 0, True, True),
                                                                  (40, 11, 5, True, False)])
def test_walk_forward_equals_skfolio(train: int, test: int, purge: int, expanding: bool, keep_last: bool) -> None:
    ours = list(WalkForwardCV(train, test, purge, expanding, keep_last).split(131))
    ref = list(WalkForward(test, train, expand_train=expanding, reduce_test=keep_last, purged_size=purge)
               .split(np.zeros((131, 2))))
    assert len(ours) == len(ref) > 3
    for (a, b), (c, d) in zip(ours, ref):
        assert np.array_equal(a, c) and np.array_equal(b, d)


def test_purge_embargo_from_window_geometry() -> None:
    assert purge_embargo(60, gap=2, horizon=5) == (7, 59)
    assert purge_embargo(60, gap=2, horizon=5, step=3) == (2, 20)  # ceil(67 / 3) - 1 = 22 rows after a block
    assert purge_embargo(1, gap=0, horizon=1) == (1, 0)
    # the rule's promise on the day grid: with purge rows removed, the last train label ends by the test date
    lookback, gap, horizon, step = 20, 3, 4, 2
    purge, embargo = purge_embargo(lookback, gap, horizon, step)
    d_test = 100
    d_train = d_test - (purge + 1) * step
    assert d_train + gap + horizon <= d_test
    d_after = d_test + (purge + embargo + 1) * step  # first train window after a one-row block at d_test
    assert d_after - lookback + 1 > d_test + gap + horizon
    d_closer = d_after - step
    assert d_closer - lookback + 1 <= d_test + gap + horizon  # one fewer row would overlap


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="n_test_folds"):
        CombinatorialPurgedCV(4, 4)
    with pytest.raises(ConfigError, match="n_folds"):
        CombinatorialPurgedCV(2, 1)
    with pytest.raises(ConfigError, match="purge"):
        CombinatorialPurgedCV(6, 2, purge=-1)
    with pytest.raises(DataError, match="too short"):
        list(CombinatorialPurgedCV(6, 2, purge=3, embargo=4).split(48))
    with pytest.raises(DataError, match="no fold"):
        list(WalkForwardCV(100, 10, 5).split(110))
    with pytest.raises(ConfigError, match="lookback"):
        purge_embargo(0)
