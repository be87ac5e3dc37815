"""Loading and validating price tables: the bundled data and every error path."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skfolio.datasets import load_sp500_dataset

from gradfolio import ConfigError, DataError, GradfolioError
from gradfolio.data import load_prices, validate_prices


def write_csv(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def small_frame(n: int = 4) -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.bdate_range("2020-01-01", periods=n), name="date")
    return pd.DataFrame({"A": np.arange(1.0, n + 1), "B": np.arange(10.0, 10 + n)}, index=idx)


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
    pq_path = tmp_path / "p.parquet"
    frame.to_parquet(pq_path)
    pd.testing.assert_frame_equal(load_prices(csv), frame, check_freq=False, check_index_type=False)
    pd.testing.assert_frame_equal(load_prices(pq_path), frame, check_freq=False, check_index_type=False)


def test_forward_fill_within_limit(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,,3\n2020-01-03,,4\n2020-01-06,2,5\n")
    prices = load_prices(path, ffill_limit=2)
    assert prices["A"].tolist() == [1.0, 1.0, 1.0, 2.0]
    assert prices.attrs["filled"] == {"A": 2, "B": 0}


@pytest.mark.parametrize(
    ("text", "ffill_limit", "match"),
    [
        ("date,A,B\n2020-01-01,1,2\nnot-a-date,1,2\n", 5, r"column 'date', row 3: cannot parse date 'not-a-date'"),
        ("date,A,B\n2020-01-01,1,2\n,1,2\n", 5, r"column 'date', row 3: the date is missing"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-01,1,2\n", 5, r"duplicate date 2020-01-01 at row 3"),
        ("date,A,B\n2020-01-02,1,2\n2020-01-01,1,2\n", 5, r"not sorted: 2020-01-01 at row 3.*sort the rows"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,abc,2\n", 5, r"column 'A', row 3 \(2020-01-02\): 'abc' is not a number"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,1,-2\n", 5, r"column 'B', row 3.*price -2.0 is not a finite positive"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,1,0\n", 5, r"column 'B', row 3.*price 0.0 is not a finite positive"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,inf,2\n", 5, r"column 'A', row 3.*price inf is not a finite positive"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,1,1e400\n", 5, r"column 'B', row 3.*price inf is not a finite"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,-inf,2\n", 5, r"column 'A', row 3.*price -inf is not a finite"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,,2\n2020-01-03,,2\n2020-01-06,1,2\n", 1,
         r"column 'A', rows 3-4.*2 consecutive missing prices exceed ffill_limit=1"),
        ("date,A,B\n2020-01-01,,2\n2020-01-02,1,2\n", 5, r"column 'A', row 2.*first price is missing"),
        ("date,A\n2020-01-01,1\n2020-01-02,1\n", 5, r"found 1 asset column\(s\).*at least 2"),
        ("A,B\n1,2\n1,2\n", 5, r"no date column; name the first column 'date'"),
        ("date,A,A\n2020-01-01,1,2\n2020-01-02,1,2\n", 5, r"columns 2 and 3 are both named 'A'; give every column"),
        ("date,A,B,date\n2020-01-01,1,2,x\n", 5, r"columns 1 and 4 are both named 'date'"),
        ("date,A,B\n2020-01-01,x,1,2\n2020-01-02,x,1,2\n", 5, r"rows have more cells than the 3 names"),
        ("date,A,B\n2020-01-01,1,2\n2020-01-02,1,2,3,4\n", 5, r"cannot read the file as CSV \(.*line 3, saw 5\)"),
        ("date,A,B\n20200101,1,2\n20201301,1,2\n", 5, r"column 'date', row 3: cannot parse date '20201301'"),
        ("date,A,B\n43831,1,2\n43832,1,2\n", 5, r"column 'date', row 2: cannot parse date '43831'.*YYYYMMDD"),
        ("date,A,B\n2020-01-01T00:00+01:00,1,2\n2020-01-02T00:00+02:00,1,2\n", 5,
         r"column 'date', row 3: date '2020-01-02T00:00\+02:00' has another time-zone offset than "
         r"'2020-01-01T00:00\+01:00' \(row 2\); write every date in one time zone"),
        ("date,A,B\nnope,1,2\n2020-01-01,1,2\n2020-01-02T00:00Z,1,2\n", 5,
         r"row 4: date '2020-01-02T00:00Z' has another time-zone offset than '2020-01-01' \(row 3\)"),
    ],
)
def test_bad_csv_raises_data_error_naming_place_and_fix(tmp_path: Path, text: str, ffill_limit: int, match: str) -> None:
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError, match=match) as info:
        load_prices(path, ffill_limit=ffill_limit)
    assert str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value, GradfolioError)


def test_numeric_dates_are_read_as_yyyymmdd(tmp_path: Path) -> None:
    # 20200102 is 2020-01-02, not 20,200,102 nanoseconds after 1970-01-01
    path = write_csv(tmp_path, "date,A,B\n20200102,1,2\n20200103,1,\n20200106,2,3\n")
    prices = load_prices(path)
    assert list(prices.index) == list(pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"]))
    frame = pd.DataFrame({"date": [20200102.0, 20200103.0], "A": [1.0, 2.0], "B": [3.0, 4.0]})  # floats, as with a gap
    assert list(validate_prices(frame).index) == list(pd.to_datetime(["2020-01-02", "2020-01-03"]))
    with pytest.raises(DataError, match=r"position 1: cannot parse date '20200103.5'"):
        validate_prices(frame.assign(date=[20200102.0, 20200103.5]))


def test_single_time_zone_keeps_the_local_dates(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01T00:00+01:00,1,2\n2020-01-02T00:00+01:00,1,2\n")
    assert list(load_prices(path).index) == list(pd.to_datetime(["2020-01-01", "2020-01-02"]))


def test_row_numbers_follow_each_format(tmp_path: Path) -> None:
    # CSV: as a spreadsheet shows the file (header row 1); Parquet and DataFrame: 0-based frame.iloc position
    frame = small_frame().assign(B=[10.0, 11.0, -1.0, 13.0])
    csv = tmp_path / "p.csv"
    frame.to_csv(csv)
    parquet = tmp_path / "p.parquet"
    frame.to_parquet(parquet)
    with pytest.raises(DataError, match=r"column 'B', row 4 \(2020-01-03\)"):
        load_prices(csv)
    with pytest.raises(DataError, match=r"column 'B', position 2 \(2020-01-03\)"):
        load_prices(parquet)
    with pytest.raises(DataError, match=r"column 'B', position 2 \(2020-01-03\)"):
        validate_prices(frame)
    assert csv.read_text().splitlines()[4 - 1].endswith(",-1.0")  # line 4 of the file holds the bad price
    assert frame.iloc[2]["B"] == -1.0
    gap = small_frame().assign(A=[1.0, np.nan, np.nan, 4.0])
    with pytest.raises(DataError, match=r"column 'A', positions 1-2 \(2020-01-02 on\)"):
        validate_prices(gap, ffill_limit=1)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 30), st.data())
def test_reported_row_locates_the_bad_price_in_every_format(tmp_path_factory: pytest.TempPathFactory, n: int, data: st.DataObject) -> None:
    bad = data.draw(st.integers(0, n - 1))
    value = data.draw(st.sampled_from([0.0, -2.5, np.inf]))
    frame = small_frame(n)
    frame.iloc[bad, 1] = value
    folder = tmp_path_factory.mktemp("rows")
    frame.to_csv(folder / "p.csv")
    frame.to_parquet(folder / "p.parquet")
    lines = (folder / "p.csv").read_text().splitlines()
    for source, word in ((folder / "p.csv", "row"), (folder / "p.parquet", "position"), (frame, "position")):
        with pytest.raises(DataError) as info:
            load_prices(source) if isinstance(source, Path) else validate_prices(source)
        number = int(re.search(rf"column 'B', {word} (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
        if word == "row":
            assert float(lines[number - 1].split(",")[2]) == value  # spreadsheet row = line of the file
        else:
            assert frame.iloc[number]["B"] == value


def test_parquet_date_index_problems(tmp_path: Path) -> None:
    for where in (1, 2):  # a NaT in the middle used to read "comes after NaT", at the end an IndexError
        dates = list(small_frame(3).index)
        dates[where] = pd.NaT
        path = tmp_path / f"nat{where}.parquet"
        small_frame(3).set_axis(pd.DatetimeIndex(dates, name="date")).to_parquet(path)
        with pytest.raises(DataError, match=rf"{re.escape(str(path))}: the date index, position {where}: the date is missing"):
            load_prices(path)
    strings = small_frame(3).set_axis(pd.Index(["2020-01-01", "2020-01-02", "2020-01-03"], name="date"))
    strings.to_parquet(tmp_path / "strings.parquet")
    loaded = load_prices(tmp_path / "strings.parquet")
    assert list(loaded.index) == list(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]))
    np.testing.assert_array_equal(loaded.to_numpy(), strings.to_numpy())
    names = [pa.array(["2020-01-01", "2020-01-02"]), pa.array([1.0, 2.0]), pa.array([1.0, 2.0])]
    pq.write_table(pa.table(names, names=["date", "A", "A"]), tmp_path / "dup.parquet")
    with pytest.raises(DataError, match=r"dup.parquet: columns 2 and 3 are both named 'A'"):
        load_prices(tmp_path / "dup.parquet")


def test_dataframe_checks() -> None:
    idx = pd.date_range("2021-01-01", periods=3, tz="UTC")
    out = validate_prices(pd.DataFrame({"A": [1, 2, 3], "B": [3, 2, 1]}, index=idx))
    assert out.index.tz is None and out.dtypes.tolist() == [np.float64, np.float64]
    same_name = pd.DataFrame([[1.0, 2.0, 3.0]], columns=[1, "1", "B"], index=idx[:1])
    with pytest.raises(DataError, match=r"<DataFrame>: columns 1 and 2 are both named '1'"):
        validate_prices(same_name)
    nat = pd.DataFrame({"A": [1.0, 2.0], "B": [1.0, 2.0]}, index=pd.DatetimeIndex(["2021-01-01", None]))
    with pytest.raises(DataError, match=r"the date index, position 1: the date is missing"):
        validate_prices(nat)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_ffill_limit_must_be_a_non_negative_integer(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"ffill_limit={re.escape(repr(bad))} must be an integer >= 0"):
        load_prices(tmp_path / "not-even-read.csv", ffill_limit=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ffill_limit"):
        validate_prices(small_frame(), ffill_limit=bad)  # type: ignore[arg-type]
    assert load_prices("sp500", ffill_limit=np.int64(0)).shape == (8313, 20)


def test_too_few_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,1,2\n")
    with pytest.raises(DataError, match=r"2 row\(s\) of prices, but at least 10 are needed \(min_rows=10\)"):
        load_prices(path, min_rows=10)
    one = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n", name="one.csv")
    with pytest.raises(DataError, match=r"1 row\(s\) of prices, but at least 2 are needed \(two prices make one return\)"):
        load_prices(one)
    with pytest.raises(ConfigError, match=r"min_rows=1 must be an integer >= 2"):
        load_prices(path, min_rows=1)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_prices(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="a folder, not a file"):
        load_prices(tmp_path)
    with pytest.raises(DataError, match=r"unknown file type '.xlsx'"):
        load_prices(write_csv(tmp_path, "x", name="prices.xlsx"))
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        load_prices(write_csv(tmp_path, "", name="empty.csv"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("date,Ä,B\n2020-01-01,1,2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv: byte b'\\xc4' is not UTF-8 text; save the file as UTF-8"):
        load_prices(latin)
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"broken.parquet: cannot read the file as Parquet \(.+\); write it with"):
        load_prices(garbage)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(b"date,A,B\n" + b"2020-01-01,1,2\n" * 200)[:40])
    with pytest.raises(DataError, match=r"cut.csv.gz: cannot read the file as CSV"):
        load_prices(truncated)


# --- dates are never guessed; messages say what is really wrong -----------------------------


def _monthly(first_is_day: bool, sep: str = "/") -> str:
    rows = [f"{'01' if first_is_day else f'{m:02d}'}{sep}{f'{m:02d}' if first_is_day else '01'}{sep}2020,{m},{2 * m}"
            for m in range(1, 13)]
    return "date,A,B\n" + "\n".join(rows) + "\n"


def test_ambiguous_day_first_dates_are_refused_naming_both_readings(tmp_path: Path) -> None:
    path = write_csv(tmp_path, _monthly(first_is_day=True))  # 01/01/2020 .. 01/12/2020: monthly, day first
    with pytest.raises(DataError) as info:
        load_prices(path)
    assert str(info.value) == (
        f"{path}: column 'date': dates such as '01/01/2020' (row 2) are ambiguous: no day or month field is above 12, "
        "so they read day-first as 2020-01-01 .. 2020-12-01 or month-first as 2020-01-01 .. 2020-01-12; pass "
        "dayfirst=True (or date_format='%d/%m/%Y') for day-first dates, dayfirst=False (or "
        "date_format='%m/%d/%Y') for month-first dates."
    )
    monthly = pd.DatetimeIndex([f"2020-{m:02d}-01" for m in range(1, 13)], name="date")
    assert list(load_prices(path, dayfirst=True).index) == list(monthly)
    assert list(load_prices(path, date_format="%d/%m/%Y").index) == list(monthly)
    assert list(load_prices(path, dayfirst=False).index) == list(pd.date_range("2020-01-01", "2020-01-12"))
    dotted = write_csv(tmp_path, _monthly(first_is_day=True, sep="."), name="dotted.csv")
    with pytest.raises(DataError, match=r"pass dayfirst=True \(or date_format='%d\.%m\.%Y'\)"):
        load_prices(dotted)
    frame = pd.read_csv(path)
    with pytest.raises(DataError, match=r"^<DataFrame>: column 'date': dates such as '01/01/2020' \(position 0\)"):
        validate_prices(frame)
    assert list(validate_prices(frame, dayfirst=True).index) == list(monthly)


def test_unambiguous_day_first_and_month_first_files_are_read_correctly(tmp_path: Path) -> None:
    day_first = write_csv(tmp_path, "date,A,B\n05/01/2020,1,2\n13/01/2020,1,2\n03/02/2020,1,2\n", name="d.csv")
    assert list(load_prices(day_first).index) == list(pd.to_datetime(["2020-01-05", "2020-01-13", "2020-02-03"]))
    month_first = write_csv(tmp_path, "date,A,B\n01/05/2020,1,2\n01/13/2020,1,2\n02/03/2020,1,2\n", name="m.csv")
    assert list(load_prices(month_first).index) == list(pd.to_datetime(["2020-01-05", "2020-01-13", "2020-02-03"]))
    # an explicit order that a date contradicts is an unparsable date, not a silent swap
    with pytest.raises(DataError, match=r"d.csv: column 'date', row 3: cannot parse date '13/01/2020'"):
        load_prices(day_first, dayfirst=False)
    with pytest.raises(DataError, match=r"cannot parse date '13/01/2020'; write every date as date_format='%m/%d/%Y'"):
        load_prices(day_first, date_format="%m/%d/%Y")


def test_mixed_day_first_and_month_first_dates_are_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n13/01/2020,1,2\n01/14/2020,1,2\n")
    with pytest.raises(DataError) as info:
        load_prices(path)
    assert str(info.value) == (
        f"{path}: column 'date': '13/01/2020' (row 2) is day-first but '01/14/2020' (row 3) is month-first; write "
        "every date the same way, preferably as YYYY-MM-DD."
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dayfirst": "yes"}, r"dayfirst='yes' must be True, False or None"),
        ({"date_format": "dd/mm/yyyy"}, r"date_format='dd/mm/yyyy' must be a strftime format such as '%d/%m/%Y'"),
        ({"date_format": "%d/%m/%Y", "dayfirst": True}, r"both say how to read dates; pass only one"),
        ({"duplicates": "first"}, r"duplicates='first' must be 'error' .* or 'last'"),
        ({"sep": ""}, r"sep='' must be a delimiter"),
    ],
)
def test_date_and_reading_options_are_checked(tmp_path: Path, options: dict[str, object], match: str) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,1,2\n")
    with pytest.raises(ConfigError, match=match):
        load_prices(path, **options)  # type: ignore[arg-type]


def test_two_rows_on_one_day_are_refused_or_the_last_kept(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "date,A,B\n2020-01-01 16:00,1,2\n2020-01-02 09:00,3,4\n2020-01-02 16:00,5,6\n2020-01-03 16:00,7,8\n"
    )
    with pytest.raises(DataError) as info:
        load_prices(path)
    assert str(info.value) == (
        f"{path}: duplicate date 2020-01-02 at row 4 (the same day as row 3 at 09:00:00 and 16:00:00); keep one row "
        "per date, or pass duplicates='last' to keep the last row of each day."
    )
    prices = load_prices(path, duplicates="last")
    assert prices["A"].tolist() == [1.0, 5.0, 7.0] and prices["B"].tolist() == [2.0, 6.0, 8.0]
    assert list(prices.index) == list(pd.to_datetime(["2020-01-01 16:00", "2020-01-02 16:00", "2020-01-03 16:00"]))
    # rows after the dropped one keep their own numbers
    bad = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-01,3,4\n2020-01-02,x,6\n", name="bad.csv")
    with pytest.raises(DataError, match=r"bad.csv: column 'A', row 4 \(2020-01-02\): 'x' is not a number"):
        load_prices(bad, duplicates="last")
    frame = pd.DataFrame({"date": ["2020-01-01", "2020-01-01", "2020-01-02"], "A": [1.0, 3.0, 5.0], "B": [2.0, 4.0, 6.0]})
    assert validate_prices(frame, duplicates="last")["A"].tolist() == [3.0, 5.0]
    with pytest.raises(DataError, match=r"duplicate date 2020-01-01 at position 1 \(the same day as position 0\); keep"):
        validate_prices(frame)


def test_semicolon_and_tab_delimited_files_are_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date;A;B\n2020-01-01;1,5;2\n2020-01-02;1,25;3\n")
    with pytest.raises(DataError) as info:
        load_prices(path)
    assert str(info.value) == (
        f"{path}: the file is semicolon-delimited (header 'date;A;B'); pass sep=';' (and decimal=',' if prices are "
        "written 1,5) or save it comma-separated."
    )
    assert load_prices(path, sep=";", decimal=",")["A"].tolist() == [1.5, 1.25]
    tabbed = write_csv(tmp_path, "date\tA\tB\n2020-01-01\t1\t2\n2020-01-02\t1\t3\n", name="tab.csv")
    with pytest.raises(DataError, match=r"tab.csv: the file is tab-delimited \(header 'date\\tA\\tB'\); pass sep='\\t'"):
        load_prices(tabbed)
    assert load_prices(tabbed, sep="\t")["B"].tolist() == [2.0, 3.0]


def test_content_that_does_not_match_the_name_is_named(tmp_path: Path) -> None:
    text = b"date,A,B\n2020-01-01,1,2\n2020-01-02,1,3\n"
    gz = tmp_path / "prices.csv"
    gz.write_bytes(gzip.compress(text))
    with pytest.raises(DataError) as info:
        load_prices(gz)
    assert str(info.value) == (
        f"{gz}: the file holds gzip-compressed data, not CSV text; rename it to prices.csv.gz (or decompress it)."
    )
    parquet = tmp_path / "table.csv"
    small_frame().to_parquet(parquet)
    with pytest.raises(DataError) as info:
        load_prices(parquet)
    assert str(info.value) == f"{parquet}: the file holds Parquet data, not CSV text; rename it to table.parquet."
    gz.rename(tmp_path / "prices.csv.gz")  # the right name reads the same content
    assert load_prices(tmp_path / "prices.csv.gz")["B"].tolist() == [2.0, 3.0]


def test_permission_denied_is_not_csv_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradfolio.data.prices as prices_module

    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,1,3\n")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(prices_module, "open", denied, raising=False)
    with pytest.raises(DataError) as info:
        load_prices(path)
    assert str(info.value) == (
        f"{path}: permission denied: this user may not read the file; change its permissions (chmod u+r) or copy it "
        "to a readable place."
    )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may read any file")
def test_unreadable_file_permission_bits(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,1,3\n")
    path.chmod(0)
    try:
        with pytest.raises(DataError, match=r"prices.csv: permission denied: this user may not read the file"):
            load_prices(path)
    finally:
        path.chmod(0o600)


def test_rows_after_blank_lines_are_named_by_their_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n\n2020-01-02,1,2\n\n\n2020-01-03,abc,2\n")
    with pytest.raises(DataError) as info:
        load_prices(path)
    assert str(info.value).startswith(f"{path}: column 'A', row 7 (2020-01-03): 'abc' is not a number")
    assert path.read_text().splitlines()[7 - 1].startswith("2020-01-03,abc")
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b"date,A,B\r\n\r\n2020-01-01,1,2\r\n2020-01-02,1,-2\r\n")
    with pytest.raises(DataError, match=r"crlf.csv: column 'B', row 4 \(2020-01-02\): price -2.0"):
        load_prices(crlf)
    gz = tmp_path / "gap.csv.gz"
    gz.write_bytes(gzip.compress(b"date,A,B\n\n2020-01-01,1,2\n2020-01-01,1,2\n"))
    with pytest.raises(DataError, match=r"duplicate date 2020-01-01 at row 4 \(the same day as row 3\)"):
        load_prices(gz)


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_csv(tmp_path, "date,A,B\n2020-01-01,1,2\n2020-01-02,1,3\n")
    assert load_prices("~/prices.csv")["B"].tolist() == [2.0, 3.0]
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'nope.csv'))}: file not found"):
        load_prices("~/nope.csv")
