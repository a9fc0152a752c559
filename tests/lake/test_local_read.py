"""The local lake's bulk read (grouped concurrent scans, scandir listing) against references.

Two references that share no reading code with ``LocalLake``: the generic Arrow-dataset
path of ``ParquetLake`` (what the S3 lake uses) and a plain oracle that reads each file
with ``pyarrow.parquet`` and filters and sorts in Polars.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.errors import DataError
from breadthflow.core.models import Timeframe, bar_schema
from breadthflow.data.lake import _base, local
from breadthflow.data.lake.local import LocalLake, _split
from tests.lake._helpers import bar_times, make_bars

COLUMNS = list(bar_schema(Timeframe.D1))


class GenericLake(LocalLake):
    """The same files read through the generic Arrow-dataset path and Arrow listing."""

    _scan = _base.ParquetLake._scan
    _list = _base.ParquetLake._list


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split reads of a few files into several concurrent groups, as 5,000 files would be."""
    monkeypatch.setattr(local, "READ_GROUPS", 4)
    monkeypatch.setattr(local, "MIN_GROUP_FILES", 3)


def oracle(
    root: Path,
    timeframe: Timeframe,
    symbols: list[str] | None,
    lo: dt.date | dt.datetime | None,
    hi: dt.date | dt.datetime | None,
    columns: list[str],
) -> pl.DataFrame:
    schema = bar_schema(timeframe)
    files = sorted((root / "bars" / f"timeframe={timeframe.value}").glob("symbol=*/part-0.parquet"))
    frames = [pl.from_arrow(pq.read_table(f)).cast(schema) for f in files]  # type: ignore[union-attr]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    if symbols is not None:
        frame = frame.filter(pl.col("symbol").is_in(symbols))
    if lo is not None:
        frame = frame.filter(pl.col("date") >= lo)
    if hi is not None:
        frame = frame.filter(pl.col("date") <= hi)
    return frame.sort("symbol", "date").select(columns)


@pytest.fixture
def daily_lake(tmp_path: Path) -> tuple[LocalLake, list[str], list[dt.date]]:
    """40 symbols (some long, one of 13+ characters) with different spans and gaps."""
    lake = LocalLake(tmp_path / "lake")
    days = bar_times(Timeframe.D1, 120)
    rng = random.Random(7)
    symbols = [f"S{i:02d}" for i in range(37)] + ["BRK.B", "LONGSYMBOL123", "^GSPC"]
    frames = []
    for index, symbol in enumerate(symbols):
        first = rng.randrange(0, 90)
        last = rng.randrange(first + 1, 121)
        keep = [d for d in days[first:last] if rng.random() > 0.1] or [days[first]]
        frames.append(make_bars([symbol], times=keep, seed=index))
    lake.upsert(pl.concat(frames), Timeframe.D1)
    return lake, symbols, days


def test_split_keeps_order_and_sizes(small_groups: None) -> None:
    items = [str(i) for i in range(23)]
    for groups, minimum in [(4, 3), (6, 128), (1, 1), (8, 2), (3, 30)]:
        runs = _split(items, groups, minimum)
        assert [x for run in runs for x in run] == items
        assert 1 <= len(runs) <= groups
        assert max(map(len, runs)) - min(map(len, runs)) <= 1
        assert len(runs) == 1 or min(map(len, runs)) >= minimum
    assert _split([], 4, 3) == [[]]


def test_random_reads_equal_the_generic_path_and_a_plain_oracle(
    small_groups: None, daily_lake: tuple[LocalLake, list[str], list[dt.date]]
) -> None:
    lake, symbols, days = daily_lake
    generic = GenericLake(lake.path)
    rng = random.Random(11)
    before, after = days[0] - dt.timedelta(days=30), days[-1] + dt.timedelta(days=30)
    for trial in range(80):
        wanted = None
        if trial % 5:
            wanted = rng.sample(symbols, rng.randrange(1, len(symbols)))
            if trial % 3 == 0:
                wanted.append("NOPE")  # unknown symbols give no rows
            if trial % 7 == 0:
                wanted = [s.lower() for s in wanted]  # normalised like every read
        lo = rng.choice([None, before, *days])
        hi = rng.choice([None, after, *days])
        if trial % 11 == 0:
            lo, hi = after, None  # a range after every bar: the empty result
        columns = None if trial % 4 == 0 else rng.sample(COLUMNS, rng.randrange(1, len(COLUMNS)))
        got = lake.read(wanted, Timeframe.D1, lo, hi, columns=columns)
        expected = oracle(
            lake.path,
            Timeframe.D1,
            None if wanted is None else [s.upper() for s in wanted],
            lo,
            hi,
            columns or COLUMNS,
        )
        if lo is not None and hi is not None and lo > hi:
            expected = expected.clear()
        assert_frame_equal(got, expected)
        assert_frame_equal(got, generic.read(wanted, Timeframe.D1, lo, hi, columns=columns))


def test_a_full_read_uses_several_groups_and_matches_one_scan(
    small_groups: None,
    daily_lake: tuple[LocalLake, list[str], list[dt.date]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake, symbols, _ = daily_lake
    calls: list[int] = []
    real = lake._run_all

    def spy(fn, items, workers):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return real(fn, items, workers)

    monkeypatch.setattr(lake, "_run_all", spy)
    grouped = lake.read(columns=["symbol", "date", "close", "volume"])
    assert calls == [4]
    monkeypatch.setattr(local, "READ_GROUPS", 1)
    single = lake.read(columns=["symbol", "date", "close", "volume"])
    assert calls == [4, 1]
    assert_frame_equal(grouped, single)
    assert grouped.get_column("symbol").unique(maintain_order=True).to_list() == sorted(symbols)
    # The groups come back in file order, so read() has nothing to sort (a sort would
    # hide a wrong order in the result but cost seconds on a big lake).
    monkeypatch.setattr(local, "READ_GROUPS", 4)
    paths = list(lake._locate(Timeframe.D1, None).values())
    scanned = lake._scan(paths, Timeframe.D1, ["symbol", "date"], None, None)
    assert_frame_equal(scanned, scanned.sort("symbol", "date"))


def test_a_daily_read_of_symbols_without_bars_in_range_has_the_schema(
    small_groups: None, daily_lake: tuple[LocalLake, list[str], list[dt.date]]
) -> None:
    lake, symbols, days = daily_lake
    late = lake.read(symbols, Timeframe.D1, days[-1] + dt.timedelta(days=1), None)
    assert late.height == 0
    assert late.schema == pl.Schema(bar_schema(Timeframe.D1))
    assert lake.read(["NOPE", "ALSO.NOT"], columns=["date", "close"]).schema == pl.Schema(
        {"date": pl.Date(), "close": pl.Float64()}
    )


def test_intraday_reads_push_the_range_into_every_group(small_groups: None, tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    symbols = [f"M{i:02d}" for i in range(9)]
    bars = make_bars(symbols, Timeframe.M5, count=200)
    lake.upsert(bars, Timeframe.M5)
    generic = GenericLake(lake.path)
    times = bar_times(Timeframe.M5, 200)
    rng = random.Random(3)
    for _ in range(20):
        lo, hi = sorted(rng.sample(times, 2))
        wanted = rng.sample(symbols, rng.randrange(1, 10))
        got = lake.read(wanted, Timeframe.M5, lo, hi, columns=["symbol", "date", "close"])
        expected = bars.filter(
            pl.col("symbol").is_in(wanted), pl.col("date").is_between(lo, hi)
        ).select("symbol", "date", "close")
        assert_frame_equal(got, expected)
        assert_frame_equal(
            got, generic.read(wanted, Timeframe.M5, lo, hi, ["symbol", "date", "close"])
        )
    whole_days = lake.read(None, Timeframe.M5, times[0].date(), times[0].date())
    assert_frame_equal(whole_days, bars.filter(pl.col("date").dt.date() == times[0].date()))


def test_listing_matches_the_generic_listing_and_ignores_what_is_not_a_partition(
    tmp_path: Path,
) -> None:
    lake = LocalLake(tmp_path / "lake")
    assert lake._list() == {} and lake.symbols() == [] and lake.timeframes() == []
    lake.upsert(make_bars(["AAPL", "MSFT", "BRK.B"], count=5), Timeframe.D1)
    lake.upsert(make_bars(["AAPL"], Timeframe.H1, count=5), Timeframe.H1)
    bars = tmp_path / "lake" / "bars"
    # Junk a reader must skip: a crashed first write (temp file, no part file), names that
    # are not partitions, an unknown timeframe, a file where a folder should be.
    crashed = bars / "timeframe=1d" / "symbol=CRASH"
    crashed.mkdir()
    (crashed / ".tmp-0123.parquet").write_bytes(b"half")
    (bars / "timeframe=1d" / "symbol=lower").mkdir()
    (bars / "timeframe=1d" / "symbol=lower" / "part-0.parquet").write_bytes(b"x")
    (bars / "timeframe=1d" / "notes.txt").write_text("x")
    (bars / "timeframe=1d" / "symbol=FILE").write_text("x")
    (bars / "timeframe=2d" / "symbol=AAPL").mkdir(parents=True)
    (bars / "timeframe=2d" / "symbol=AAPL" / "part-0.parquet").write_bytes(b"x")
    (bars / "timeframe=1d" / "symbol=MSFT" / "part-1.parquet").write_bytes(b"x")
    (bars / "README").write_text("x")

    generic = GenericLake(lake.path)
    assert lake._list() == generic._list()
    for tf in (Timeframe.D1, Timeframe.H1, Timeframe.M5):
        assert lake._list(tf) == generic._list(tf)
    assert lake.symbols() == ["AAPL", "BRK.B", "MSFT"]
    assert lake.timeframes() == [Timeframe.H1, Timeframe.D1]
    assert lake.read().height == 15


def test_an_unreadable_file_in_any_group_fails_the_read_with_one_line(
    small_groups: None, daily_lake: tuple[LocalLake, list[str], list[dt.date]]
) -> None:
    lake, symbols, _ = daily_lake
    last = sorted(symbols)[-1]
    path = lake.path / "bars" / "timeframe=1d" / f"symbol={last}" / "part-0.parquet"
    path.write_bytes(b"PAR1 not really parquet PAR1")
    with pytest.raises(DataError, match=r"holds an unreadable file"):
        lake.read(columns=["symbol", "date", "close"])
