"""Cross-validation folds for time series: combinatorial purged CV and walk-forward folds.

:class:`CombinatorialPurgedCV` is the combinatorial purged cross-validation of Lopez de Prado
("Advances in Financial Machine Learning", 2018, ch. 12): the ``T`` samples are cut into
``n_folds`` contiguous groups (``T // n_folds`` rows each, the last group takes the remainder);
each of the ``C(n_folds, n_test_folds)`` splits tests on ``n_test_folds`` groups and trains on
the rest, less ``purge`` rows before every test block and ``purge + embargo`` rows after it.
Every group is tested in ``phi = C(n_folds, n_test_folds) * n_test_folds / n_folds`` splits, so
the test blocks recombine into ``phi`` complete backtest paths: path ``p`` takes group ``g``
from the ``p``-th split (in split order) that tests ``g``. The fold structure, purge, embargo and
path assignment are those of ``skfolio.model_selection.CombinatorialPurgedCV``.

:class:`WalkForwardCV` gives plain walk-forward folds (rolling or expanding training window,
then ``purge`` rows, then the test window), as ``skfolio.model_selection.WalkForward`` with
integer sizes.

Purge and embargo are in rows (samples, e.g. windows of :func:`gradfolio.data.make_windows`);
:func:`purge_embargo` derives them from the window geometry ``lookback, gap, horizon, step``.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterator

import numpy as np

from gradfolio.errors import ConfigError, DataError


def _int(value: object, name: str, low: int, owner: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < low:
        raise ConfigError(f"{owner}: {name}={value!r} must be an integer >= {low}.")
    return int(value)


def purge_embargo(lookback: int, gap: int = 0, horizon: int = 1, step: int = 1) -> tuple[int, int]:
    """Purge and embargo in rows for windows of the given geometry (days; one row every ``step`` days).

    A window decided on day ``d`` sees days ``d - lookback + 1 .. d`` and is judged on days
    ``d + gap + 1 .. d + gap + horizon``.

    - ``purge = (gap + horizon) // step``: every training window before a test block has its
      label end on or before the first test decision date (the purge of ``time_split``).
    - ``embargo``: with ``purge + embargo`` rows removed after a test block, the first training
      window after it sees no day of the block's labels: ``purge + embargo =
      ceil((lookback + gap + horizon) / step) - 1`` (at least 0).

    Returns
    -------
    ``(purge, embargo)``, non-negative integers.
    """
    owner = "purge_embargo"
    lookback, gap = _int(lookback, "lookback", 1, owner), _int(gap, "gap", 0, owner)
    horizon, step = _int(horizon, "horizon", 1, owner), _int(step, "step", 1, owner)
    purge = (gap + horizon) // step
    after = math.ceil((lookback + gap + horizon) / step) - 1
    return purge, max(0, after - purge)


class CombinatorialPurgedCV:
    """Combinatorial purged cross-validation (CPCV).

    Parameters
    ----------
    n_folds
        Groups ``N >= 3``.
    n_test_folds
        Test groups per split, ``2 <= k < N``.
    purge
        Training rows removed just before each test block (and, with ``embargo``, after it).
    embargo
        Further training rows removed after each test block.

    Attributes
    ----------
    n_splits
        ``C(N, k)``.
    n_paths
        ``phi = C(N, k) k / N`` backtest paths.
    test_groups
        ``(n_splits, k)`` groups tested in each split (lexicographic combinations).
    """

    def __init__(self, n_folds: int = 6, n_test_folds: int = 2, purge: int = 0, embargo: int = 0) -> None:
        owner = "CombinatorialPurgedCV"
        self.n_folds = _int(n_folds, "n_folds", 3, owner)
        self.n_test_folds = _int(n_test_folds, "n_test_folds", 2, owner)
        if self.n_test_folds >= self.n_folds:
            raise ConfigError(
                f"{owner}: n_test_folds={n_test_folds} must be smaller than n_folds={n_folds} (some groups must train)."
            )
        self.purge = _int(purge, "purge", 0, owner)
        self.embargo = _int(embargo, "embargo", 0, owner)
        self.n_splits = math.comb(self.n_folds, self.n_test_folds)
        self.n_paths = self.n_splits * self.n_test_folds // self.n_folds
        self.test_groups = np.array(list(itertools.combinations(range(self.n_folds), self.n_test_folds)))

    def groups(self, n_samples: int) -> np.ndarray:
        """Group of every row, ``(n_samples,)``; raise :class:`DataError` when the groups are too short."""
        n_samples = _int(n_samples, "n_samples", 1, "CombinatorialPurgedCV.split")
        size = n_samples // self.n_folds
        if self.purge + self.embargo >= size - 1:
            raise DataError(
                f"CombinatorialPurgedCV: {n_samples} samples give groups of {size} rows, too short for purge + "
                f"embargo = {self.purge} + {self.embargo}; use fewer folds, a smaller purge/embargo or more samples "
                "(purge + embargo must be below the group size - 1)."
            )
        return np.minimum(np.arange(n_samples) // size, self.n_folds - 1)

    def masks(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Boolean ``train (n_splits, T)`` and ``test (n_splits, T)`` masks of all splits."""
        group = self.groups(n_samples)
        test = (group[None, :, None] == self.test_groups[:, None, :]).any(axis=2)
        removed = test.copy()
        step = np.diff(test.astype(np.int8), axis=1)
        for s, start in zip(*np.nonzero(step == 1)):  # block starts at start + 1; purge rows before it
            removed[s, max(0, start - self.purge + 1): start + 1] = True
        for s, end in zip(*np.nonzero(step == -1)):  # block ends at row end; purge + embargo after it
            removed[s, end + 1: min(n_samples, end + 1 + self.purge + self.embargo)] = True
        return ~removed, test

    def split(self, n_samples: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` (sorted int arrays) for each of the ``n_splits`` splits."""
        train, test = self.masks(n_samples)
        for s in range(self.n_splits):
            yield np.flatnonzero(train[s]), np.flatnonzero(test[s])

    def paths(self) -> np.ndarray:
        """``(n_folds, n_paths)``: the split whose test block on group ``g`` forms path ``p``."""
        tested = np.zeros((self.n_folds, self.n_splits), dtype=bool)
        tested[self.test_groups, np.arange(self.n_splits)[:, None]] = True
        return np.stack([np.flatnonzero(tested[g]) for g in range(self.n_folds)])

    def path_ids(self) -> np.ndarray:
        """``(n_splits, n_test_folds)``: the path each test group of each split belongs to."""
        paths = self.paths()
        out = np.empty((self.n_splits, self.n_test_folds), dtype=np.int64)
        for s in range(self.n_splits):
            for j, g in enumerate(self.test_groups[s]):
                out[s, j] = int(np.flatnonzero(paths[g] == s)[0])
        return out

    def path_indices(self, n_samples: int) -> list[list[tuple[int, np.ndarray]]]:
        """For each path, its ``(split, rows)`` pieces in time order (the rows of every group once)."""
        group = self.groups(n_samples)
        paths = self.paths()
        return [[(int(paths[g, p]), np.flatnonzero(group == g)) for g in range(self.n_folds)]
                for p in range(self.n_paths)]


class WalkForwardCV:
    """Walk-forward folds: train on ``train_size`` rows, skip ``purge`` rows, test on the next ``test_size``.

    Parameters
    ----------
    train_size, test_size
        Rows in each training (before expansion) and test window, ``>= 1``.
    purge
        Rows skipped between a training window and its test window.
    expanding
        Training always starts at row 0 (else a rolling window of ``train_size`` rows).
    keep_last
        Keep a last, shorter test window at the end of the data.
    """

    def __init__(self, train_size: int, test_size: int, purge: int = 0, expanding: bool = False,
                 keep_last: bool = False) -> None:
        owner = "WalkForwardCV"
        self.train_size = _int(train_size, "train_size", 1, owner)
        self.test_size = _int(test_size, "test_size", 1, owner)
        self.purge = _int(purge, "purge", 0, owner)
        self.expanding = bool(expanding)
        self.keep_last = bool(keep_last)

    def split(self, n_samples: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` in time order; raise :class:`DataError` when not one fold fits."""
        n_samples = _int(n_samples, "n_samples", 1, "WalkForwardCV.split")
        first = self.train_size + self.purge
        if first + (1 if self.keep_last else self.test_size) > n_samples:
            raise DataError(
                f"WalkForwardCV: {n_samples} samples hold no fold of train_size + purge + test_size = "
                f"{self.train_size} + {self.purge} + {self.test_size}; shorten the windows or pass more samples."
            )
        for start in range(first, n_samples, self.test_size):
            stop = start + self.test_size
            if stop > n_samples and not self.keep_last:
                return
            train_end = start - self.purge
            train_start = 0 if self.expanding else train_end - self.train_size
            yield np.arange(train_start, train_end), np.arange(start, min(stop, n_samples))


__all__ = ["purge_embargo", "CombinatorialPurgedCV", "WalkForwardCV"]
