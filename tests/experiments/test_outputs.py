"""The shared report helpers: markdown tables, the HTML page shell, PNG figures and table files."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradfolio.experiments import outputs
from gradfolio.experiments.outputs import (
    PAGE_STYLE,
    html_page,
    markdown_table,
    pyplot,
    save_figure,
    write_csv,
    write_parquet,
)


def _table() -> pd.DataFrame:
    frame = pd.DataFrame({"mean": [1.23456, -0.5], "cvar_95": [2.0, 0.125]}, index=["delta", "gvdh"])
    frame.index.name = "strategy"
    return frame


def test_markdown_table_rows_digits_and_header() -> None:
    assert markdown_table(_table()) == (
        "| strategy | mean | cvar_95 |\n|---|---|---|\n| delta | 1.235 | 2.000 |\n| gvdh | -0.500 | 0.125 |\n"
    )
    unnamed = _table().rename_axis(None)
    assert markdown_table(unnamed, digits=1).splitlines()[:3] == ["|  | mean | cvar_95 |", "|---|---|---|",
                                                                  "| delta | 1.2 | 2.0 |"]


def test_markdown_table_text_booleans_and_index_levels() -> None:
    table = pd.DataFrame(
        {"diff": [0.1234, -2.0], "ci": ["0.5 ± 0.1", "x"], "significant": [True, np.False_], "n": [3, 7]},
        index=pd.MultiIndex.from_tuples([("net", "sharpe"), ("ew", "ret")], names=["strategy", None]),
    )
    text = markdown_table(table, digits=2)
    assert text.splitlines() == [
        "| strategy |  | diff | ci | significant | n |",
        "|---|---|---|---|---|---|",
        "| net | sharpe | 0.12 | 0.5 ± 0.1 | True | 3.00 |",
        "| ew | ret | -2.00 | x | False | 7.00 |",
    ]


def test_html_page_escapes_the_title_and_places_head_and_body() -> None:
    page = html_page("P&L <of> \"books\"", "<p>body</p>", head="<script>x=1</script>")
    title = html.escape("P&L <of> \"books\"")
    assert page == (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{PAGE_STYLE}</style>"
        f"<script>x=1</script></head><body><h1>{title}</h1><p>body</p></body></html>"
    )
    assert "<of>" not in page and "&lt;of&gt;" in page
    assert html_page("t", "").endswith("</style></head><body><h1>t</h1></body></html>")


@pytest.mark.parametrize("dpi", [50, 130])
def test_save_figure_writes_a_png_at_the_dpi_and_closes_the_figure(tmp_path: Path, dpi: int) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.0, 1.0))
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "f.png", dpi=dpi)
    data = path.read_bytes()
    assert path == tmp_path / "f.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (2 * dpi, dpi)
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"], "no temporary file left behind"


def test_pyplot_is_the_agg_backend() -> None:
    import matplotlib

    assert pyplot() is __import__("matplotlib.pyplot").pyplot
    assert matplotlib.get_backend().lower() == "agg"


def test_table_writers_round_trip(tmp_path: Path) -> None:
    frame = _table()
    write_csv(frame, tmp_path / "a.csv")
    assert pd.read_csv(tmp_path / "a.csv").columns.tolist() == ["mean", "cvar_95"]
    write_csv(frame, tmp_path / "b.csv", index=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b.csv", index_col="strategy"), frame)
    write_parquet(frame, tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), frame.reset_index(drop=True))
    write_parquet(frame, tmp_path / "b.parquet", index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.parquet", "b.csv", "b.parquet"]


def test_both_pillars_reports_use_the_one_page_shell() -> None:
    from gradfolio.experiments.backtest import report as backtest_report
    from gradfolio.experiments.hedging import report as hedging_report

    for module in (backtest_report, hedging_report):
        assert module.html_page is outputs.html_page and module.save_figure is outputs.save_figure
        assert "<!doctype" not in Path(module.__file__).read_text()
