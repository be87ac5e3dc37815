"""Loading and validating price tables: the bundled data and every error path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skfolio.datasets import load_sp500_dataset

from gradfolio import DataError, GradfolioError
from gradfolio.data import load_prices, validate_prices


def write_csv(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bundled_sp500_equals_skfolio() -> None:
    ours = load_prices("sp500")
    ref = load_sp500_dataset()
    assert ours.shape == (8313, 20)
    assert list(ours.columns) == list(ref.columns)
    np.testing.assert_array_equal(ours.index.values.astype("datetime64[D]"), ref.index.values.astype("datetime64[D]"))
    np.testing.assert_array_equal(ours.to_numpy(), ref.to_numpy())
    assert ours.index.name == "date" and ours.attrs["filled"] == {c: 0 for c in ref.columns}


def test_csv_and_parquet_round_trip(tmp_path: Path) -> None:
    frame = load_prices("sp500").iloc[:50, :3]
    csv = tmp_path / "p.csv"
    frame.to_csv(csv)
    pq = tmp_path / "p.parquet"
    frame.to_parquet(pq)
    pd.testing.assert_frame_equal(load_prices(csv), frame, check_freq=False, check_index_type=False)
    pd.testing.assert_frame_equal(load_prices(pq), frame, check_freq=False, check_index_type=False)


def test_forward_fill_within_limit(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,,3\n2020-01-03,,4\n2020-01-06,2,5\n")
    prices = load_prices(path, ffill_limit=2)
    assert prices["A"].tolist() == [1.0, 1.0, 1.0, 2.0]
    assert prices.attrs["filled"] == {"A": 2, "B": 0}


@pytest.mark.parametrize(
    ("text", "ffill_limit", "match"),
    [
        ("date,A,B\n2020-01-01,1,2\nnot-a-date,1,2\n", 5, r"column 'date', row 3.*cannot parse date 'not-a-date'"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-01,1,2\n", 5, r"duplicate date 2020-01-01 at row 3"),
        ("date,A,B\n2020-01-02,1,2\n2020-01-01,1,2\n", 5, r"not sorted: 2020-01-01 at row 3.*sort the rows"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,abc,2\n", 5, r"column 'A', row 3 \(2020-01-02\): 'abc' is not a number"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,1,-2\n", 5, r"column 'B', row 3.*not positive"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,1,0\n", 5, r"column 'B', row 3.*not positive"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,,2\n2020-01-03,,2\n2020-01-06,1,2\n", 1,
         r"column 'A', rows 3-4.*2 consecutive missing prices exceed ffill_limit=1"),
        ("date,A,B\n2020-01-01,,2\n2020-01-02,1,2\n", 5, r"column 'A', row 2.*first price is missing"),
        ("date,A\n2020-01-01,1\n2020-01-02,1\n", 5, r"found 1 asset column\(s\).*at least 2"),
        ("A,B\n1,2\n1,2\n", 5, r"no date column; name the first column 'date'"),
    ],
)
def test_bad_csv_raises_data_error_naming_place_and_fix(tmp_path: Path, text: str, ffill_limit: int, match: str) -> None:
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError, match=match) as info:
        load_prices(path, ffill_limit=ffill_limit)
    assert str(path) in str(info.value)
    assert isinstance(info.value, GradfolioError)


def test_too_few_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,1,2\n")
    with pytest.raises(DataError, match=r"2 rows of prices, but at least 10 are needed"):
        load_prices(path, min_rows=10)


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_prices(tmp_path / "nope.csv")
    odd = write_csv(tmp_path, "x", name="prices.xlsx")
    with pytest.raises(DataError, match="unknown file type"):
        load_prices(odd)
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read the file"):
        load_prices(garbage)


def test_validate_frame_with_datetime_index() -> None:
    idx = pd.date_range("2021-01-01", periods=3, tz="UTC")
    frame = pd.DataFrame({"A": [1, 2, 3], "B": [3, 2, 1]}, index=idx)
    out = validate_prices(frame)
    assert out.index.tz is None and out.dtypes.tolist() == [np.float64, np.float64]
