"""validate_bars: each rejection and repair rule, then properties over random frames."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breadthflow.core.errors import DataError
from breadthflow.core.models import IssueKind, Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS
from breadthflow.data.quality import provider_schema, validate_bars

D0 = dt.date(2024, 1, 2)


def bar(day: int = 0, **values: Any) -> dict[str, Any]:
    row = {
        "symbol": "AAA",
        "date": D0 + dt.timedelta(days=day),
        "open": 10.0,
        "high": 11.0,
        "low": 9.0,
        "close": 10.5,
        "volume": 1000.0,
        "adj_factor": 1.0,
    }
    row.update(values)
    return row


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=provider_schema(Timeframe.D1))


def test_clean_bars_pass_unchanged() -> None:
    bars = frame(bar(0), bar(1), bar(2))
    clean, issues = validate_bars(bars, Timeframe.D1, "test")
    assert issues == []
    assert clean.equals(bars)


@pytest.mark.parametrize(
    ("values", "detail"),
    [
        ({"symbol": None}, "symbol is missing"),
        ({"date": None}, "date is missing"),
        ({"open": None}, "open is missing"),
        ({"close": math.nan}, "close NaN is not a finite number"),
        ({"high": math.inf}, "high inf is not a finite number"),
        ({"low": 0.0}, "low 0.0 is not positive"),
        ({"close": -1.5}, "close -1.5 is not positive"),
        ({"high": 8.0, "open": 8.5, "close": 8.5}, "high 8.0 is below low 9.0"),
        ({"volume": None}, "volume is missing"),
        ({"volume": -5.0}, "volume -5.0 is negative"),
        ({"volume": math.inf}, "volume inf is not a finite number"),
        ({"adj_factor": 0.0}, "adj_factor 0.0 is not a positive number"),
    ],
)
def test_unusable_row_is_rejected_and_reported(values: dict[str, Any], detail: str) -> None:
    bars = frame(bar(0), bar(1, **values), bar(2))

    clean, issues = validate_bars(bars, Timeframe.D1, "test")

    assert clean.height == 2
    (issue,) = issues
    assert issue.kind is IssueKind.ROW_REJECTED
    assert issue.detail == detail
    assert issue.rows == 1
    if values.get("date", D0) is not None:
        assert issue.date == D0 + dt.timedelta(days=1)


def test_zero_volume_is_kept() -> None:
    clean, issues = validate_bars(frame(bar(0, volume=0.0)), Timeframe.D1, "test")
    assert clean.height == 1 and issues == []


def test_duplicate_dates_keep_the_last_row() -> None:
    bars = frame(bar(0, close=10.1), bar(1), bar(0, close=10.2), bar(0, close=10.3))

    clean, issues = validate_bars(bars, Timeframe.D1, "test")

    assert clean["date"].to_list() == [D0, D0 + dt.timedelta(days=1)]
    assert clean["close"][0] == 10.3
    (issue,) = issues
    assert issue.kind is IssueKind.DUPLICATE_DROPPED
    assert (issue.date, issue.rows) == (D0, 2)
    assert "3 rows" in issue.detail and "kept the last" in issue.detail


def test_a_rejected_duplicate_does_not_shadow_the_good_row() -> None:
    clean, issues = validate_bars(
        frame(bar(0, close=10.2), bar(0, close=None)), Timeframe.D1, "test"
    )
    assert clean["close"].to_list() == [10.2]
    assert [i.kind for i in issues] == [IssueKind.ROW_REJECTED]


@pytest.mark.parametrize(
    ("column", "value", "fixed", "kind"),
    [
        ("open", 11.5, 11.0, IssueKind.OPEN_REPAIRED),
        ("open", 8.25, 9.0, IssueKind.OPEN_REPAIRED),
        ("close", 12.0, 11.0, IssueKind.CLOSE_REPAIRED),
        ("close", 8.0, 9.0, IssueKind.CLOSE_REPAIRED),
    ],
)
def test_open_or_close_outside_the_range_is_clamped_and_reported(
    column: str, value: float, fixed: float, kind: IssueKind
) -> None:
    clean, issues = validate_bars(frame(bar(0, **{column: value})), Timeframe.D1, "test")

    assert clean[column].to_list() == [fixed]
    (issue,) = issues
    assert issue.kind is kind
    assert issue.detail == (f"{column} {value} outside low–high [9.0, 11.0]; set to {fixed}")


def test_output_is_sorted_and_cast_to_the_schema() -> None:
    bars = pl.DataFrame(
        {
            "symbol": ["BBB", "AAA", "AAA"],
            "date": [D0, D0 + dt.timedelta(days=1), D0],
            "open": [10, 10, 10],
            "high": [11, 11, 11],
            "low": [9, 9, 9],
            "close": [10, 10, 10],
            "volume": [100, 100, 100],
        }
    )  # integers and no adj_factor column, as a careless provider might send

    clean, issues = validate_bars(bars, Timeframe.D1, "test")

    assert issues == []
    assert tuple(clean.columns) == PROVIDER_COLUMNS
    assert clean.schema == pl.Schema(provider_schema(Timeframe.D1))
    assert clean.select("symbol", "date").rows() == [
        ("AAA", D0), ("AAA", D0 + dt.timedelta(days=1)), ("BBB", D0),
    ]  # fmt: skip
    assert clean["adj_factor"].to_list() == [1.0, 1.0, 1.0]


def test_intraday_timestamps_become_utc_and_issues_name_the_bar() -> None:
    stamp = dt.datetime(2024, 1, 2, 14, 35)
    bars = pl.DataFrame([bar(0, date=stamp, open=12.0)]).with_columns(
        pl.col("date").cast(pl.Datetime("ns"))
    )

    clean, issues = validate_bars(bars, Timeframe.M5, "test")

    assert clean.schema["date"] == pl.Datetime("us", "UTC")
    assert clean["date"][0] == stamp.replace(tzinfo=dt.UTC)
    (issue,) = issues
    assert issue.date == D0
    assert issue.detail.startswith("bar 2024-01-02 14:35 UTC: open 12.0 outside")


def test_daily_bars_given_as_timestamps_become_dates() -> None:
    bars = pl.DataFrame([bar(0, date=dt.datetime(2024, 1, 2, 0, 0))])
    clean, _ = validate_bars(bars, Timeframe.D1, "test")
    assert clean["date"].to_list() == [D0]


def test_missing_column_is_a_data_error_naming_it() -> None:
    with pytest.raises(DataError, match="yahoo: bars lack the column"):
        validate_bars(frame(bar(0)).drop("volume"), Timeframe.D1, "yahoo")


def test_empty_input_gives_an_empty_typed_frame() -> None:
    clean, issues = validate_bars(frame(), Timeframe.M1, "test")
    assert clean.height == 0 and issues == []
    assert clean.schema == pl.Schema(provider_schema(Timeframe.M1))


def test_input_frame_is_not_modified() -> None:
    bars = frame(bar(0, open=20.0), bar(0), bar(1, close=None))
    before = bars.clone()
    validate_bars(bars, Timeframe.D1, "test")
    assert bars.equals(before)


# --- properties ---------------------------------------------------------------------------

prices = st.one_of(
    st.floats(min_value=0.01, max_value=1000, allow_nan=False),
    st.floats(min_value=0.01, max_value=1000, allow_nan=False),  # weight towards valid
    st.sampled_from([None, math.nan, math.inf, -math.inf, 0.0, -1.0]),
)
volumes = st.one_of(
    st.floats(min_value=0, max_value=1e9, allow_nan=False),
    st.sampled_from([None, math.nan, -1.0, 0.0]),
)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "day": st.integers(0, 6),  # few distinct dates: duplicates are common
            "open": prices,
            "high": prices,
            "low": prices,
            "close": prices,
            "volume": volumes,
        }
    ),
    max_size=25,
)


def _frame(generated: list[dict[str, Any]]) -> pl.DataFrame:
    return frame(*[bar(r.pop("day"), **r) for r in [dict(g) for g in generated]])


def _usable(row: dict[str, Any]) -> bool:
    """Reference rule, written row by row: what validate_bars must keep."""
    values = [row[c] for c in ("open", "high", "low", "close")]
    if any(v is None or not math.isfinite(v) or v <= 0 for v in values):
        return False
    if row["high"] < row["low"]:
        return False
    volume = row["volume"]
    return volume is not None and math.isfinite(volume) and volume >= 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_output_always_satisfies_the_bar_invariants(generated: list[dict[str, Any]]) -> None:
    clean, _ = validate_bars(_frame(generated), Timeframe.D1, "test")

    for row in clean.iter_rows(named=True):
        for column in ("open", "high", "low", "close"):
            assert math.isfinite(row[column]) and row[column] > 0
        assert row["low"] <= row["open"] <= row["high"]
        assert row["low"] <= row["close"] <= row["high"]
        assert math.isfinite(row["volume"]) and row["volume"] >= 0
    dates = clean["date"].to_list()
    assert dates == sorted(set(dates))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_every_removed_or_changed_row_is_reported(generated: list[dict[str, Any]]) -> None:
    bars = _frame(generated)
    clean, issues = validate_bars(bars, Timeframe.D1, "test")
    counts = Counter()
    for issue in issues:
        counts[issue.kind] += issue.rows

    # Row accounting: everything that went in is either out or reported.
    assert bars.height == (
        clean.height + counts[IssueKind.ROW_REJECTED] + counts[IssueKind.DUPLICATE_DROPPED]
    )
    # The same decisions as the row-by-row reference.
    kept: dict[dt.date, dict[str, Any]] = {}
    rejected = 0
    for row in bars.iter_rows(named=True):
        if _usable(row):
            kept[row["date"]] = row  # the last usable row of a date wins
        else:
            rejected += 1
    assert counts[IssueKind.ROW_REJECTED] == rejected
    assert clean["date"].to_list() == sorted(kept)
    repaired = {(i.kind, i.date) for i in issues}
    for out in clean.iter_rows(named=True):
        source = kept[out["date"]]
        assert (out["high"], out["low"], out["volume"]) == (
            source["high"], source["low"], source["volume"],
        )  # fmt: skip
        for column, kind in (
            ("open", IssueKind.OPEN_REPAIRED),
            ("close", IssueKind.CLOSE_REPAIRED),
        ):
            changed = out[column] != source[column]
            assert changed == ((kind, out["date"]) in repaired)
            if changed:
                assert out[column] in (source["low"], source["high"])
