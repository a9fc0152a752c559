"""The sample provider: the real S&P 500 file, cleaned (volume, splits, corporate actions,
missing sessions), checked against the raw file."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from breadthflow.core.config import get_settings
from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import IssueKind, Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS, ProviderBars, get_provider
from breadthflow.data.providers.sample import (
    CORPORATE_ACTIONS,
    SAMPLE_END,
    SAMPLE_START,
    load_sample,
    raw_sample,
    sample_sectors,
)
from breadthflow.data.quality import provider_schema, validate_bars

SPLITS = {a.symbol: a for a in CORPORATE_ACTIONS if a.kind == "split"}
GAPS = {a.symbol: a for a in CORPORATE_ACTIONS if a.kind == "gap"}


def fetch(symbol: str, start: dt.date = SAMPLE_START, end: dt.date = SAMPLE_END) -> ProviderBars:
    return get_provider("sample", get_settings()).fetch(symbol, Timeframe.D1, start, end)


def raw(symbol: str) -> pl.DataFrame:
    return raw_sample().filter(pl.col("Symbol") == symbol).sort("Date")


def joined(symbol: str) -> pl.DataFrame:
    """Cleaned bars next to the file's raw values, by date."""
    return fetch(symbol).frame.join(raw(symbol), left_on="date", right_on="Date")


def day_moves(frame: pl.DataFrame) -> pl.Series:
    return (frame["close"] / frame["close"].shift(1)).drop_nulls()


# --- the file and its symbols ------------------------------------------------------------


def test_known_symbols_are_the_524_of_the_file_sorted() -> None:
    symbols = get_provider("sample", get_settings()).known_symbols()
    assert symbols is not None
    assert len(symbols) == 524
    assert symbols == sorted(symbols)
    assert {"AAPL", "DHR", "ETFC", "ETFCD", "XOM"} <= set(symbols)


def test_the_raw_file_is_the_expected_one() -> None:
    data = raw_sample()
    assert data.height == 122_574
    assert data["Date"].n_unique() == 245
    assert (data["Date"].min(), data["Date"].max()) == (SAMPLE_START, SAMPLE_END)


def test_bars_have_the_provider_columns_and_dtypes_sorted_by_date() -> None:
    frame = fetch("AAPL").frame
    assert tuple(frame.columns) == PROVIDER_COLUMNS
    assert frame.schema == pl.Schema(provider_schema(Timeframe.D1))
    assert frame["date"].is_sorted()
    assert frame["symbol"].unique().to_list() == ["AAPL"]


def test_volume_is_converted_from_hundreds_to_shares() -> None:
    both = joined("AAPL")
    assert (both["volume"] == both["Volume"] * 100).all()
    day = both.filter(pl.col("date") == dt.date(2010, 8, 20)).row(0, named=True)
    assert day["volume"] == day["Volume"] * 100 > 10_000_000


def test_unadjusted_symbols_keep_the_file_prices() -> None:
    both = joined("AAPL")
    for column in ("open", "high", "low", "close"):
        assert (both[column] == both[column.title()]).all()
    assert both["adj_factor"].unique().to_list() == [1.0]


# --- splits ------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["DHR", "ESRX", "GIS"])
def test_two_for_one_split_is_adjusted(symbol: str) -> None:
    action = SPLITS[symbol]
    bars = fetch(symbol)
    both = joined(symbol)
    before = both.filter(pl.col("date") < action.ex_date)
    after = both.filter(pl.col("date") >= action.ex_date)

    assert before["close"].to_list() == pytest.approx((before["Close"] * 0.5).to_list())
    assert before["volume"].to_list() == pytest.approx((before["Volume"] * 200).to_list())
    assert before["adj_factor"].unique().to_list() == [0.5]
    assert (after["close"] == after["Close"]).all()
    assert after["adj_factor"].unique().to_list() == [1.0]
    june = bars.frame.filter(pl.col("date").is_between(dt.date(2010, 5, 15), dt.date(2010, 7, 15)))
    assert day_moves(june).is_between(0.85, 1.15).all()
    (issue,) = [i for i in bars.issues if i.kind is IssueKind.SPLIT_ADJUSTED]
    assert issue.date == action.ex_date
    assert issue.rows == before.height
    assert issue.detail == f"2:1 split on {action.ex_date}: {before.height} earlier bars × 0.5"


def test_dhr_split_dates_and_counts() -> None:
    (issue,) = [i for i in fetch("DHR").issues if i.kind is IssueKind.SPLIT_ADJUSTED]
    assert issue.detail == "2:1 split on 2010-06-14: 197 earlier bars × 0.5"
    file = raw("DHR")
    last_before = file.filter(pl.col("Date") < dt.date(2010, 6, 14))["Close"][-1]
    first_after = file.filter(pl.col("Date") == dt.date(2010, 6, 14))["Close"][0]
    assert first_after / last_before == pytest.approx(0.504, abs=0.001)


def test_etfc_reverse_split_is_adjusted_by_ten() -> None:
    action = SPLITS["ETFC"]
    bars = fetch("ETFC")
    both = joined("ETFC")
    before = both.filter(pl.col("date") < action.ex_date)
    after = both.filter(pl.col("date") >= action.ex_date)

    assert before["close"].to_list() == pytest.approx((before["Close"] * 10).to_list())
    assert before["volume"].to_list() == pytest.approx((before["Volume"] * 10).to_list())
    assert before["adj_factor"].unique().to_list() == [10.0]
    assert (after["close"] == after["Close"]).all()
    assert after["date"].min() == dt.date(2010, 6, 30)  # the file's first ETFC bar after
    (issue,) = [i for i in bars.issues if i.kind is IssueKind.SPLIT_ADJUSTED]
    assert issue.rows == before.height
    assert issue.detail.startswith(f"1:10 reverse split on 2010-06-02: {before.height} ")
    # No jump left: the adjusted pre-split close meets the post-split ticker ETFCD's
    # first open, and ETFCD's last close meets ETFC's first open after the gap.
    etfcd = fetch("ETFCD").frame
    assert etfcd["open"][0] / before["close"][-1] == pytest.approx(1.0, abs=0.05)
    assert after["open"][0] / etfcd["close"][-1] == pytest.approx(1.0, abs=0.05)
    assert day_moves(bars.frame).is_between(0.75, 1.33).all()


# --- spin-off and special dividend -------------------------------------------------------


@pytest.mark.parametrize(("symbol", "factor"), [("STR", 15.31 / 45.49), ("WY", 15.72 / 41.83)])
def test_corporate_action_gap_is_back_adjusted_by_the_gap_factor(
    symbol: str, factor: float
) -> None:
    action = GAPS[symbol]
    bars = fetch(symbol)
    both = joined(symbol)
    before = both.filter(pl.col("date") < action.ex_date)
    after = both.filter(pl.col("date") >= action.ex_date)

    assert before["close"].to_list() == pytest.approx((before["Close"] * factor).to_list())
    assert before["adj_factor"].to_list() == pytest.approx([factor] * before.height)
    # No share-count change: volume is only converted to shares.
    assert (before["volume"] == before["Volume"] * 100).all()
    assert (after["close"] == after["Close"]).all()
    # The ex-date's own move (open → close) is kept as a real return.
    ex = both.filter(pl.col("date") == action.ex_date).row(0, named=True)
    prev_close = before["close"][-1]
    assert ex["open"] == pytest.approx(prev_close)
    (issue,) = [i for i in bars.issues if i.kind is IssueKind.CORPORATE_ACTION_ADJUSTED]
    assert issue.date == action.ex_date
    assert issue.rows == before.height
    assert f"{factor:.4f}" in issue.detail


def test_the_table_lists_every_jump_in_the_file() -> None:
    """Every close-to-close move beyond -40 %/+60 % in the raw file is in the table, and
    none is left in the cleaned data."""
    moves = (
        raw_sample()
        .sort("Symbol", "Date")
        .with_columns((pl.col("Close") / pl.col("Close").shift(1).over("Symbol")).alias("m"))
        .filter((pl.col("m") < 0.6) | (pl.col("m") > 1.6))
    )
    # ETFC's jump shows on its first bar after the ETFCD weeks, 2010-06-30.
    found = {(r["Symbol"], r["Date"]) for r in moves.iter_rows(named=True)}
    expected = {
        (a.symbol, a.ex_date if a.symbol != "ETFC" else dt.date(2010, 6, 30))
        for a in CORPORATE_ACTIONS
    }
    assert found == expected
    clean = load_sample().with_columns(
        (pl.col("close") / pl.col("close").shift(1).over("symbol")).alias("m")
    )
    assert clean.filter((pl.col("m") < 0.6) | (pl.col("m") > 1.6)).height == 0


def test_adjustment_does_not_depend_on_the_requested_range() -> None:
    whole = fetch("DHR").frame
    september = (dt.date(2009, 9, 1), dt.date(2009, 9, 30))
    early = fetch("DHR", *september)
    assert early.frame.equals(whole.filter(pl.col("date").is_between(*september)))
    (issue,) = early.issues
    assert issue.kind is IssueKind.SPLIT_ADJUSTED and issue.rows == early.frame.height
    late = fetch("DHR", dt.date(2010, 7, 1), SAMPLE_END)
    assert late.issues == []
    assert late.frame["adj_factor"].unique().to_list() == [1.0]


# --- open outside the range: left to validate_bars ---------------------------------------


def test_validate_bars_repairs_the_78_opens_outside_the_range() -> None:
    bars = load_sample()
    outside = (pl.col("open") < pl.col("low")) | (pl.col("open") > pl.col("high"))
    assert bars.filter(outside).height == 78

    clean, issues = validate_bars(bars, Timeframe.D1, "sample")

    assert clean.filter(outside).height == 0
    assert clean.height == bars.height
    kinds = [i.kind for i in issues]
    assert kinds.count(IssueKind.OPEN_REPAIRED) == 78
    assert len(issues) == 78  # nothing else is wrong with the file


def test_the_provider_does_not_report_open_repairs_itself() -> None:
    issues = [i for s in ("AAPL", "DHR", "XOM") for i in fetch(s).issues]
    assert IssueKind.OPEN_REPAIRED not in {i.kind for i in issues}


# --- missing sessions and bars -----------------------------------------------------------


def test_dataset_issues_are_the_seven_missing_nyse_sessions() -> None:
    provider = get_provider("sample", get_settings())
    issues = provider.dataset_issues(Timeframe.D1, dt.date(2009, 1, 1), dt.date(2011, 1, 1))
    assert [str(i.date) for i in issues] == [
        "2009-09-08", "2009-10-29", "2009-10-30", "2009-11-02",
        "2009-11-03", "2009-11-04", "2010-08-18",
    ]  # fmt: skip
    assert {i.kind for i in issues} == {IssueKind.MISSING_SESSION}
    assert {i.symbol for i in issues} == {None}


def test_dataset_issues_are_clipped_to_the_requested_range() -> None:
    provider = get_provider("sample", get_settings())
    within = provider.dataset_issues(Timeframe.D1, dt.date(2010, 1, 1), dt.date(2010, 12, 31))
    assert [str(i.date) for i in within] == ["2010-08-18"]
    assert provider.dataset_issues(Timeframe.D1, dt.date(2011, 1, 1), dt.date(2011, 2, 1)) == []


def test_etfc_reports_its_missing_bars() -> None:
    (issue,) = [i for i in fetch("ETFC").issues if i.kind is IssueKind.MISSING_BARS]
    assert issue.rows == 25
    assert issue.date == dt.date(2009, 11, 12)
    assert "2009-11-12, 2010-05-24, 2010-06-02" in issue.detail
    assert "ETFCD" in issue.detail
    june = fetch("ETFC", dt.date(2010, 6, 1), dt.date(2010, 6, 30))
    (gap,) = [i for i in june.issues if i.kind is IssueKind.MISSING_BARS]
    assert gap.rows == 20  # 2010-06-02 … 2010-06-29


def test_a_symbol_with_every_session_has_no_missing_bars() -> None:
    assert [i for i in fetch("XOM").issues if i.kind is IssueKind.MISSING_BARS] == []


# --- errors and edges --------------------------------------------------------------------


def test_unknown_symbol_is_not_found_with_a_clear_message() -> None:
    with pytest.raises(NotFoundError) as caught:
        fetch("ZZZZ")
    assert str(caught.value) == (
        "symbol 'ZZZZ' is not in the sample data (524 S&P 500 symbols, 2009-08-21 → 2010-08-20)"
    )


def test_range_outside_the_file_is_empty_not_an_error() -> None:
    bars = fetch("AAPL", dt.date(2015, 1, 1), dt.date(2015, 12, 31))
    assert bars.frame.height == 0
    assert bars.frame.schema == pl.Schema(provider_schema(Timeframe.D1))
    assert bars.issues == []


def test_intraday_is_refused() -> None:
    provider = get_provider("sample", get_settings())
    with pytest.raises(InvalidInputError, match="no 5m bars"):
        provider.fetch("AAPL", Timeframe.M5, SAMPLE_START, SAMPLE_END)


def test_sectors_come_from_the_package_list() -> None:
    sectors = sample_sectors()
    assert sectors["AAPL"] == "Information Technology"
    assert sectors["XOM"] == "Energy"
    assert len(sectors) == 442
    assert set(sectors) <= set(load_sample()["symbol"].unique().to_list())
    assert len(set(sectors.values())) == 10
