"""The lake contract: every implementation (local folder, S3) behaves the same.

Each test here runs once per store (see ``conftest.store``); the intraday cases use 5-minute
bars, whose ``date`` is a UTC timestamp rather than a calendar date.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, bar_schema
from breadthflow.data.lake import UpsertResult
from tests.lake._helpers import Store, bar_times, make_bars

DAILY_AND_INTRADAY = [Timeframe.D1, Timeframe.M5]
UTC = dt.UTC


def by_key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("symbol", "date")


# --- round trip and idempotence ---------------------------------------------------------


@pytest.mark.parametrize("timeframe", DAILY_AND_INTRADAY)
def test_round_trip_returns_exactly_the_bars_written(store: Store, timeframe: Timeframe) -> None:
    lake = store.open()
    bars = make_bars(["MSFT", "AAPL", "BRK.B"], timeframe, 40)

    result = lake.upsert(bars, timeframe)

    assert result == UpsertResult(inserted=120, updated=0, unchanged=0, partitions=3)
    assert_frame_equal(lake.read(timeframe=timeframe), by_key(bars))
    assert_frame_equal(store.open().read(timeframe=timeframe), by_key(bars))


@pytest.mark.parametrize("timeframe", DAILY_AND_INTRADAY)
def test_upserting_the_same_bars_again_changes_nothing(store: Store, timeframe: Timeframe) -> None:
    lake = store.open()
    bars = make_bars(["AAPL", "MSFT"], timeframe, 25)
    lake.upsert(bars, timeframe)
    before = {s: store.version(timeframe, s) for s in ("AAPL", "MSFT")}

    result = lake.upsert(bars, timeframe)

    assert result == UpsertResult(inserted=0, updated=0, unchanged=50, partitions=2)
    assert lake.read(timeframe=timeframe).height == 50
    assert {s: store.version(timeframe, s) for s in ("AAPL", "MSFT")} == before


def test_bars_differing_only_in_ingested_at_are_unchanged_and_keep_the_stored_stamp(
    store: Store,
) -> None:
    lake = store.open()
    bars = make_bars(["AAPL"], Timeframe.D1, 10)
    lake.upsert(bars, Timeframe.D1)
    before = store.version(Timeframe.D1, "AAPL")
    later = bars.with_columns(ingested_at=pl.lit(dt.datetime(2025, 6, 1, tzinfo=UTC)))

    result = lake.upsert(later, Timeframe.D1)

    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 10)
    assert store.version(Timeframe.D1, "AAPL") == before
    assert_frame_equal(lake.read(["AAPL"]), bars)


@pytest.mark.parametrize("timeframe", DAILY_AND_INTRADAY)
def test_overlapping_upsert_updates_changed_bars_and_inserts_new_ones(
    store: Store, timeframe: Timeframe
) -> None:
    lake = store.open()
    keys = bar_times(timeframe, 30)
    first = make_bars(["AAPL", "MSFT"], timeframe, times=keys[:20])
    lake.upsert(first, timeframe)
    msft_before = store.version(timeframe, "MSFT")
    # AAPL: re-send bars 10..19 with 4 of them changed, plus 10 new bars 20..29.
    resent = first.filter(pl.col("symbol") == "AAPL").slice(10, 10)
    changed_dates = resent.get_column("date").gather([1, 3, 5, 7])
    stamp = dt.datetime(2024, 6, 1, tzinfo=UTC)
    resent = resent.with_columns(
        close=pl.when(pl.col("date").is_in(changed_dates.implode()))
        .then(pl.col("close") + 1.0)
        .otherwise(pl.col("close")),
        ingested_at=pl.lit(stamp, dtype=pl.Datetime("us", "UTC")),
    )
    fresh = make_bars(["AAPL"], timeframe, times=keys[20:], seed=9)
    # MSFT: the same 5 bars again, unchanged.
    same = first.filter(pl.col("symbol") == "MSFT").head(5)

    result = lake.upsert(pl.concat([resent, fresh, same]), timeframe)

    assert result == UpsertResult(inserted=10, updated=4, unchanged=11, partitions=2)
    stored = lake.read(["AAPL"], timeframe)
    assert stored.height == 30
    updated = stored.filter(pl.col("date").is_in(changed_dates.implode()))
    assert updated.get_column("ingested_at").unique().to_list() == [stamp]
    assert_frame_equal(
        updated.drop("ingested_at"),
        resent.filter(pl.col("date").is_in(changed_dates.implode())).drop("ingested_at"),
    )
    # Unchanged re-sent bars keep their stored row; new bars are stored as sent.
    not_changed = ~pl.col("date").is_in(changed_dates.implode())
    assert_frame_equal(
        stored.head(20).filter(not_changed),
        first.filter(pl.col("symbol") == "AAPL").filter(not_changed),
    )
    assert_frame_equal(stored.tail(10), fresh)
    assert store.version(timeframe, "MSFT") == msft_before


@pytest.mark.parametrize("timeframe", DAILY_AND_INTRADAY)
def test_appending_and_backfilling_extend_the_partition(store: Store, timeframe: Timeframe) -> None:
    lake = store.open()
    keys = bar_times(timeframe, 20)
    everything = make_bars(["AAPL"], timeframe, times=keys)
    lake.upsert(everything.slice(5, 10), timeframe)

    appended = lake.upsert(everything.slice(15, 5), timeframe)
    backfilled = lake.upsert(everything.slice(0, 5).reverse(), timeframe)

    assert (appended.inserted, appended.updated, appended.unchanged) == (5, 0, 0)
    assert (backfilled.inserted, backfilled.updated, backfilled.unchanged) == (5, 0, 0)
    assert_frame_equal(lake.read(["AAPL"], timeframe), everything)


def test_bars_with_missing_values_round_trip_and_compare_equal(store: Store) -> None:
    lake = store.open()
    bars = make_bars(["AAPL"], Timeframe.D1, 6).with_columns(
        volume=pl.when(pl.col("date").dt.day() % 2 == 0).then(None).otherwise(pl.col("volume")),
        open=pl.when(pl.col("date").dt.day() == 3).then(float("nan")).otherwise(pl.col("open")),
        source=pl.lit(None, pl.String),
        ingested_at=pl.lit(None, pl.Datetime("us", "UTC")),
    )
    lake.upsert(bars, Timeframe.D1)
    version = store.version(Timeframe.D1, "AAPL")

    again = lake.upsert(bars, Timeframe.D1)

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 6)
    assert store.version(Timeframe.D1, "AAPL") == version
    assert_frame_equal(lake.read(), bars)
    filled = lake.upsert(bars.with_columns(pl.col("volume").fill_null(5.0)), Timeframe.D1)
    assert (filled.updated, filled.unchanged) == (3, 3)


def test_symbols_in_any_order_and_case_are_grouped_and_upper_cased(store: Store) -> None:
    lake = store.open()
    bars = make_bars(["AAPL", "MSFT"], Timeframe.D1, 8)
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=3).with_columns(
        pl.col("symbol").str.to_lowercase()
    )

    result = lake.upsert(shuffled, Timeframe.D1)

    assert result.inserted == 16
    assert lake.symbols() == ["AAPL", "MSFT"]
    assert_frame_equal(lake.read(["aapl", "MSFT"]), by_key(bars))


def test_an_empty_upsert_writes_nothing(store: Store) -> None:
    lake = store.open()
    assert lake.upsert(make_bars(["AAPL"]).head(0), Timeframe.D1) == UpsertResult()
    assert lake.symbols() == []


# --- reading ranges -------------------------------------------------------------------


def _daily_ranges() -> list[tuple[object, object, list[dt.date]]]:
    # Bars on the weekdays from Tue 2024-01-02; Sat 6 and Sun 7 Jan are gaps.
    d = dt.date
    return [
        (d(2024, 1, 3), d(2024, 1, 3), [d(2024, 1, 3)]),  # one day
        (d(2024, 1, 6), d(2024, 1, 7), []),  # a weekend, between two bars
        (d(2024, 1, 5), d(2024, 1, 8), [d(2024, 1, 5), d(2024, 1, 8)]),  # across it
        (d(2024, 1, 9), d(2024, 1, 4), []),  # reversed
        (None, d(2024, 1, 3), [d(2024, 1, 2), d(2024, 1, 3)]),  # open start
        (d(2024, 1, 12), None, [d(2024, 1, 12)]),  # open end (last bar)
        (d(2023, 1, 1), d(2023, 12, 31), []),  # before everything
        (
            dt.datetime(2024, 1, 4, 23, 0),
            dt.datetime(2024, 1, 5, 1, 0),
            [d(2024, 1, 4), d(2024, 1, 5)],
        ),
    ]


@pytest.mark.parametrize(("start", "end", "expected"), _daily_ranges())
def test_reading_a_daily_range_returns_exactly_the_bars_inside_it(
    store: Store, start: object, end: object, expected: list[dt.date]
) -> None:
    lake = store.open()
    bars = make_bars(["AAPL", "MSFT"], Timeframe.D1, 9)  # 2024-01-02 .. 2024-01-12
    lake.upsert(bars, Timeframe.D1)

    got = lake.read(["AAPL", "MSFT"], Timeframe.D1, start, end)

    want = bars.filter(pl.col("date").is_in(expected))
    assert_frame_equal(got, by_key(want))


def _intraday_ranges() -> list[tuple[object, object, int]]:
    t = dt.datetime
    d = dt.date
    return [
        # 5-minute bars 14:30 .. 20:55 UTC on 2024-01-02 and 2024-01-03 (78 a day).
        (t(2024, 1, 2, 14, 31, tzinfo=UTC), t(2024, 1, 2, 14, 34, tzinfo=UTC), 0),  # between
        (t(2024, 1, 2, 14, 35, tzinfo=UTC), t(2024, 1, 2, 14, 35, tzinfo=UTC), 1),  # one bar
        (t(2024, 1, 2, 14, 35, tzinfo=UTC), t(2024, 1, 2, 14, 50, tzinfo=UTC), 4),  # inclusive
        (t(2024, 1, 2, 15, 0), t(2024, 1, 2, 15, 10), 3),  # naive datetimes are UTC
        (t(2024, 1, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), None, 72 + 78),
        (d(2024, 1, 3), d(2024, 1, 3), 78),  # a date means the whole UTC day
        (d(2024, 1, 2), d(2024, 1, 2), 78),
        (d(2024, 1, 4), d(2024, 1, 1), 0),  # reversed
        (t(2024, 1, 3, 20, 56, tzinfo=UTC), None, 0),  # after the last bar
    ]


@pytest.mark.parametrize(("start", "end", "count"), _intraday_ranges())
def test_reading_an_intraday_range_returns_exactly_the_bars_inside_it(
    store: Store, start: object, end: object, count: int
) -> None:
    lake = store.open()
    bars = make_bars(["SPY"], Timeframe.M5, 156)
    lake.upsert(bars, Timeframe.M5)

    got = lake.read(["SPY"], Timeframe.M5, start, end)

    lo = _as_utc(start, end=False)
    hi = _as_utc(end, end=True)
    want = bars.filter(
        (pl.col("date") >= lo if lo else pl.lit(True))
        & (pl.col("date") <= hi if hi else pl.lit(True))
    )
    assert want.height == count
    assert_frame_equal(got, want)


def _as_utc(value: object, *, end: bool) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    assert isinstance(value, dt.date)
    return dt.datetime.combine(value, dt.time.max if end else dt.time.min, tzinfo=UTC)


def test_a_date_bound_on_intraday_bars_reaches_the_last_microsecond_of_the_day(
    store: Store,
) -> None:
    lake = store.open()
    times = [
        dt.datetime(2024, 1, 2, 0, 0, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 23, 59, 59, 999_999, tzinfo=UTC),
        dt.datetime(2024, 1, 3, 0, 0, tzinfo=UTC),
    ]
    lake.upsert(make_bars(["SPY"], Timeframe.M1, times=times), Timeframe.M1)

    got = lake.read(["SPY"], Timeframe.M1, dt.date(2024, 1, 2), dt.date(2024, 1, 2))

    assert got.get_column("date").to_list() == times[:2]


def test_reading_selected_columns_keeps_their_order_and_dtypes(store: Store) -> None:
    lake = store.open()
    bars = make_bars(["AAPL", "MSFT"], Timeframe.D1, 5)
    lake.upsert(bars, Timeframe.D1)

    got = lake.read(None, Timeframe.D1, columns=["close", "date"])

    assert_frame_equal(got, by_key(bars).select("close", "date"))
    with pytest.raises(InvalidInputError, match="unknown column 'price'"):
        lake.read(columns=["close", "price"])


# --- listing and coverage -------------------------------------------------------------


def test_symbols_timeframes_and_coverage_describe_what_is_stored(store: Store) -> None:
    lake = store.open()
    assert (lake.symbols(), lake.timeframes()) == ([], [])
    lake.upsert(make_bars(["MSFT", "AAPL"], Timeframe.D1, 12), Timeframe.D1)
    lake.upsert(make_bars(["BRK.B"], Timeframe.D1, 3, start=dt.date(2024, 2, 1)), Timeframe.D1)
    intraday = make_bars(["SPY"], Timeframe.M5, 100)
    lake.upsert(intraday, Timeframe.M5)

    assert lake.symbols() == ["AAPL", "BRK.B", "MSFT"]
    assert lake.symbols(Timeframe.M5) == ["SPY"]
    assert lake.symbols(Timeframe.H1) == []
    assert lake.timeframes() == [Timeframe.M5, Timeframe.D1]
    assert_frame_equal(
        lake.coverage(),
        pl.DataFrame(
            {
                "symbol": ["AAPL", "BRK.B", "MSFT"],
                "rows": [12, 3, 12],
                "first_date": [dt.date(2024, 1, 2), dt.date(2024, 2, 1), dt.date(2024, 1, 2)],
                "last_date": [dt.date(2024, 1, 17), dt.date(2024, 2, 5), dt.date(2024, 1, 17)],
            },
            schema={
                "symbol": pl.String,
                "rows": pl.Int64,
                "first_date": pl.Date,
                "last_date": pl.Date,
            },
        ),
    )
    coverage = lake.coverage(Timeframe.M5)
    assert coverage.schema["first_date"] == pl.Datetime("us", "UTC")
    assert coverage.row(0) == (
        "SPY",
        100,
        intraday.get_column("date").min(),
        intraday.get_column("date").max(),
    )
    assert lake.coverage(symbols=["msft", "NOPE"]).get_column("symbol").to_list() == ["MSFT"]


def test_an_unknown_symbol_reads_as_an_empty_frame_with_the_schema(store: Store) -> None:
    lake = store.open()
    for timeframe in DAILY_AND_INTRADAY:
        empty = lake.read(["NOPE"], timeframe)
        assert empty.height == 0
        assert empty.schema == pl.Schema(bar_schema(timeframe))
    lake.upsert(make_bars(["AAPL"]), Timeframe.D1)

    assert lake.read(["NOPE"]).schema == pl.Schema(bar_schema(Timeframe.D1))
    assert lake.read(["NOPE"]).height == 0
    assert lake.read(["AAPL", "NOPE"]).get_column("symbol").unique().to_list() == ["AAPL"]
    assert lake.read(["NOPE"], columns=["date", "close"]).schema == pl.Schema(
        {"date": pl.Date, "close": pl.Float64}
    )
    assert lake.coverage(symbols=["NOPE"]).height == 0


def test_many_symbols_are_found_by_listing(store: Store) -> None:
    lake = store.open()
    symbols = [f"S{i:02d}" for i in range(40)]
    bars = make_bars(symbols, Timeframe.D1, 3)
    lake.upsert(bars, Timeframe.D1)

    got = lake.read([*symbols, "NOPE1", "NOPE2"])

    assert_frame_equal(got, by_key(bars))
    assert lake.coverage(symbols=symbols).height == 40


def test_delete_removes_one_partition(store: Store) -> None:
    lake = store.open()
    lake.upsert(make_bars(["AAPL", "MSFT"], Timeframe.D1, 5), Timeframe.D1)

    assert lake.delete("aapl", Timeframe.D1) is True
    assert lake.delete("AAPL", Timeframe.D1) is False

    assert lake.symbols() == ["MSFT"]
    assert lake.read(["AAPL"]).height == 0
    assert lake.upsert(make_bars(["AAPL"], Timeframe.D1, 2), Timeframe.D1).inserted == 2


# --- rejected input -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "A;B", "", "a/b", "..", ".hidden", "_locks"])
def test_malformed_symbols_are_rejected_before_anything_is_written(store: Store, bad: str) -> None:
    lake = store.open()
    bars = pl.concat([make_bars(["AAPL"], count=3), make_bars([bad], count=3)])

    with pytest.raises(InvalidInputError, match="invalid symbol"):
        lake.upsert(bars, Timeframe.D1)

    assert lake.symbols() == []
    assert store.listing() == []
    with pytest.raises(InvalidInputError, match="invalid symbol"):
        lake.read([bad])
    with pytest.raises(InvalidInputError, match="invalid symbol"):
        lake.delete(bad)


def test_a_missing_column_is_rejected_naming_it(store: Store) -> None:
    lake = store.open()
    with pytest.raises(InvalidInputError, match="missing column 'close'"):
        lake.upsert(make_bars(["AAPL"]).drop("close"), Timeframe.D1)
    with pytest.raises(InvalidInputError, match="unexpected column 'vwap'"):
        lake.upsert(make_bars(["AAPL"]).with_columns(vwap=pl.lit(1.0)), Timeframe.D1)
    assert store.listing() == []


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("close", pl.lit("12.5"), "column 'close' has dtype String"),
        ("volume", pl.lit(True), "column 'volume' has dtype Boolean"),
        ("date", pl.lit("2024-01-02"), "column 'date' has dtype String"),
        ("date", pl.lit(dt.datetime(2024, 1, 2, 9, 30)), "daily bars need midnight"),
    ],
)
def test_a_column_of_the_wrong_dtype_is_rejected_naming_it(
    store: Store, column: str, value: pl.Expr, message: str
) -> None:
    lake = store.open()
    with pytest.raises(InvalidInputError, match=message):
        lake.upsert(make_bars(["AAPL"], count=2).with_columns(value.alias(column)), Timeframe.D1)
    assert store.listing() == []


def test_null_keys_and_duplicate_bars_are_rejected(store: Store) -> None:
    lake = store.open()
    bars = make_bars(["AAPL"], count=3)
    with pytest.raises(InvalidInputError, match="null 'symbol'"):
        lake.upsert(bars.with_columns(symbol=pl.lit(None, pl.String)), Timeframe.D1)
    with pytest.raises(InvalidInputError, match="null 'date'"):
        lake.upsert(bars.with_columns(date=pl.lit(None, pl.Date)), Timeframe.D1)
    with pytest.raises(InvalidInputError, match=r"repeats? a \(symbol, date\).*AAPL 2024-01-03"):
        lake.upsert(pl.concat([bars, bars.slice(1, 1)]), Timeframe.D1)
    with pytest.raises(InvalidInputError, match="AAPL 2024-01-02"):  # same after upper-casing
        lake.upsert(pl.concat([bars, bars.head(1).with_columns(symbol=pl.lit("aapl"))]), "1d")
    assert store.listing() == []


def test_lossless_dtype_differences_are_cast(store: Store) -> None:
    lake = store.open()
    bars = make_bars(["SPY"], Timeframe.M5, 4)
    loose = bars.with_columns(
        pl.col("date").dt.convert_time_zone("America/New_York").dt.cast_time_unit("ns"),
        pl.col("volume").cast(pl.Int64),
        pl.col("open").cast(pl.Float32).cast(pl.Float64).cast(pl.Float32),
        pl.col("source").cast(pl.Categorical),
    )

    lake.upsert(loose, Timeframe.M5)

    got = lake.read(["SPY"], Timeframe.M5)
    assert got.schema == pl.Schema(bar_schema(Timeframe.M5))
    assert_frame_equal(got.drop("open"), bars.drop("open"))
    naive = bars.with_columns(pl.col("date").dt.replace_time_zone(None))
    with pytest.raises(InvalidInputError, match="without a time zone"):
        lake.upsert(naive, Timeframe.M5)


# --- crashes --------------------------------------------------------------------------


def _write_v1_then_change(store: Store) -> tuple[pl.DataFrame, pl.DataFrame, object]:
    lake = store.open()
    v1 = make_bars(["AAPL", "MSFT"], Timeframe.D1, 20)
    lake.upsert(v1, Timeframe.D1)
    v2 = make_bars(["AAPL"], Timeframe.D1, 25, seed=7)
    return v1, v2, store.version(Timeframe.D1, "AAPL")


def _assert_v1_intact(store: Store, v1: pl.DataFrame, version: object, files: list[str]) -> None:
    lake = store.open()
    assert store.version(Timeframe.D1, "AAPL") == version
    assert_frame_equal(lake.read(), by_key(v1))
    assert lake.symbols() == ["AAPL", "MSFT"]
    assert lake.coverage().get_column("rows").to_list() == [20, 20]
    assert store.listing() == files  # no temp file, no partial object left behind


def test_a_crash_while_encoding_leaves_the_previous_partition_intact(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2, version = _write_v1_then_change(store)
    files = store.listing()
    real_write_table = pq.write_table

    def write_half_then_crash(table: pa.Table, where: object, **kwargs: object) -> None:
        sink = pa.BufferOutputStream()
        real_write_table(table, sink, **kwargs)
        data = sink.getvalue()
        where.write(data[: data.size // 2])  # type: ignore[attr-defined]
        raise RuntimeError("simulated crash while encoding")

    monkeypatch.setattr(pq, "write_table", write_half_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.open().upsert(v2, Timeframe.D1)
    monkeypatch.undo()

    _assert_v1_intact(store, v1, version, files)


@pytest.mark.parametrize("size", ["one-put", "multipart"])
def test_a_crash_while_writing_the_file_leaves_the_previous_partition_intact(
    store: Store, monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    from breadthflow.data.lake import local, s3

    v1, v2, version = _write_v1_then_change(store)
    files = store.listing()

    def write_half_then_crash(stream: object, data: pa.Buffer) -> None:
        stream.write(data[: data.size // 2])  # type: ignore[attr-defined]
        raise OSError("simulated crash: disk full")

    if size == "multipart":
        # S3 objects too big for one PutObject go through a temp key: force that path.
        # (The local lake has one path; it simply runs twice.)
        monkeypatch.setattr(s3, "SINGLE_PUT_LIMIT", 0)
    monkeypatch.setattr(local, "_write_bytes", write_half_then_crash)
    monkeypatch.setattr(s3, "_write_bytes", write_half_then_crash)

    with pytest.raises(Exception, match="simulated crash"):
        store.open().upsert(v2, Timeframe.D1)
    monkeypatch.undo()

    _assert_v1_intact(store, v1, version, files)
    # And the lake still works: the next write goes through.
    assert store.open().upsert(v2, Timeframe.D1).inserted == 5


def test_partitions_larger_than_one_put_go_through_a_temp_object(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breadthflow.data.lake import s3

    monkeypatch.setattr(s3, "SINGLE_PUT_LIMIT", 0)  # no effect on the local lake
    lake = store.open()
    bars = make_bars(["AAPL"], Timeframe.D1, 50)

    lake.upsert(bars, Timeframe.D1)
    lake.upsert(make_bars(["AAPL"], Timeframe.D1, 60, seed=1), Timeframe.D1)

    assert lake.read().height == 60
    assert store.listing() == ["bars/timeframe=1d/symbol=AAPL/part-0.parquet"]


# --- health check ---------------------------------------------------------------------


def test_check_passes_on_a_writable_lake_and_leaves_nothing_behind(store: Store) -> None:
    lake = store.open()
    lake.check()
    lake.check()
    assert store.listing() == []
    assert lake.symbols() == []
