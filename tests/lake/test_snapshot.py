"""The local lake's read snapshot: reads through it equal reads of the partitions, always.

The reference is a ``LocalLake`` on the same folder with no snapshot, which reads every
partition; the lake under test keeps a snapshot for as few as ``MIN`` symbols. Which files
a read opens is seen by wrapping ``LocalLake._scan`` (the partition reader).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from breadthflow.core.errors import DataError
from breadthflow.core.models import Timeframe
from breadthflow.data.lake import _snapshot
from breadthflow.data.lake.local import LocalLake
from tests.lake._helpers import make_bars

MIN = 4
SYMBOLS = [f"S{i:02d}" for i in range(12)]


class Spy(LocalLake):
    """A snapshotting lake that records the partition files each read opened."""

    def __init__(self, root: Path, min_symbols: int = MIN) -> None:
        super().__init__(root, snapshot_min_symbols=min_symbols)
        self.opened: list[str] = []

    def _scan(self, paths, timeframe, columns, lo, hi):  # type: ignore[no-untyped-def]
        self.opened.extend(Path(p).parent.name.removeprefix("symbol=") for p in paths)
        return super()._scan(paths, timeframe, columns, lo, hi)

    def read_opening(self, *args, **kwargs) -> tuple[pl.DataFrame, list[str]]:  # type: ignore[no-untyped-def]
        self.opened = []
        frame = self.read(*args, **kwargs)
        return frame, sorted(self.opened)


@pytest.fixture
def lakes(tmp_path: Path) -> tuple[Spy, LocalLake]:
    root = tmp_path / "lake"
    lake = Spy(root)
    lake.upsert(make_bars(SYMBOLS, count=40, seed=1), Timeframe.D1)
    return lake, LocalLake(root)


def snapshot_file(lake: LocalLake) -> Path:
    return lake.path / "bars" / "timeframe=1d" / _snapshot.SNAPSHOT_FILE


def assert_same_reads(lake: LocalLake, plain: LocalLake, **read: object) -> None:
    assert_frame_equal(lake.read(**read), plain.read(**read))  # type: ignore[arg-type]


def test_a_fresh_snapshot_serves_whole_universe_reads_without_opening_partitions(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, plain = lakes
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and report.status == "written"
    assert (report.symbols, report.rows, report.reread) == (12, 480, 12)
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == []
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))
    frame, opened = lake.read_opening(SYMBOLS[2:9], Timeframe.D1, columns=["close", "date"])
    assert opened == []
    assert_frame_equal(frame, plain.read(SYMBOLS[2:9], Timeframe.D1, columns=["close", "date"]))


def test_a_date_range_read_through_the_snapshot_keeps_only_that_range(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    start, end = dt.date(2024, 1, 10), dt.date(2024, 2, 5)
    frame, opened = lake.read_opening(None, Timeframe.D1, start, end)
    assert opened == [] and frame.height > 0
    assert frame["date"].min() >= start and frame["date"].max() <= end
    assert_frame_equal(frame, plain.read(None, Timeframe.D1, start, end))


def test_symbols_changed_added_or_deleted_after_the_snapshot_are_read_from_their_partitions(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    changed = make_bars(["S03", "S07"], count=40, seed=99)  # same dates, other prices
    lake.upsert(changed, Timeframe.D1)
    lake.upsert(make_bars(["S05A"], count=10, seed=3), Timeframe.D1)  # sorts between S05, S06
    lake.delete("S10", Timeframe.D1)
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == ["S03", "S05A", "S07"]
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))
    assert "S10" not in frame["symbol"].to_list()
    assert_frame_equal(
        frame.filter(pl.col("symbol") == "S07"), changed.filter(pl.col("symbol") == "S07")
    )


def test_a_refresh_copies_unchanged_symbols_and_rereads_only_the_changed_ones(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    lake.upsert(make_bars(["S01"], count=41, seed=5), Timeframe.D1)
    lake.delete("S11", Timeframe.D1)
    lake.opened = []
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None
    assert (report.status, report.symbols, report.reused, report.reread) == ("written", 11, 10, 1)
    assert lake.opened == ["S01"]
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == []
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))


def test_a_refresh_with_nothing_changed_leaves_the_file_alone(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, _ = lakes
    lake.refresh_snapshot(Timeframe.D1)
    before = _snapshot.identity(snapshot_file(lake))
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and report.status == "unchanged" and report.reused == 12
    assert _snapshot.identity(snapshot_file(lake)) == before


def test_reads_of_a_few_symbols_open_their_partitions(lakes: tuple[Spy, LocalLake]) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    few = ["S00", "S04", "S08"]  # fewer than MIN: the snapshot is not worth decoding
    frame, opened = lake.read_opening(few, Timeframe.D1)
    assert opened == few
    assert_frame_equal(frame, plain.read(few, Timeframe.D1))


def test_a_damaged_snapshot_is_ignored_with_a_warning_and_rebuilt(
    lakes: tuple[Spy, LocalLake], caplog: pytest.LogCaptureFixture
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    snapshot_file(lake).write_bytes(b"PAR1 not really parquet PAR1")
    with caplog.at_level(logging.WARNING, logger=_snapshot.__name__):
        frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == SYMBOLS
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))
    assert "ignoring the lake snapshot" in caplog.text
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and (report.status, report.reread) == ("written", 12)
    assert lake.read_opening(None, Timeframe.D1)[1] == []


def test_a_snapshot_without_our_manifest_is_not_used(lakes: tuple[Spy, LocalLake]) -> None:
    lake, plain = lakes
    plain.read(None, Timeframe.D1).write_ipc(snapshot_file(lake))  # right rows, no manifest
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == SYMBOLS
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))


def test_a_refresh_that_fails_while_writing_keeps_the_old_snapshot(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    before = snapshot_file(lake).read_bytes()
    lake.upsert(make_bars(["S02"], count=40, seed=8), Timeframe.D1)

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_snapshot.os, "replace", crash)
    with pytest.raises(Exception, match="disk full"):
        lake.refresh_snapshot(Timeframe.D1)
    monkeypatch.undo()
    assert snapshot_file(lake).read_bytes() == before
    leftovers = [p.name for p in snapshot_file(lake).parent.iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == ["S02"]  # the old snapshot serves the rest
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))


def test_a_snapshot_replaced_while_it_is_read_is_read_again(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    original = _snapshot._assemble
    calls = []

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        frame = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # another process rewrites a partition and refreshes meanwhile
            other = LocalLake(lake.path, snapshot_min_symbols=MIN)
            other.upsert(make_bars(["S06"], count=40, seed=77), Timeframe.D1)
            other.refresh_snapshot(Timeframe.D1)
        return frame

    monkeypatch.setattr(_snapshot, "_assemble", racing)
    frame = lake.read(None, Timeframe.D1)
    assert len(calls) == 2  # the first read, then the read again
    monkeypatch.undo()
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))
    assert_frame_equal(
        frame.filter(pl.col("symbol") == "S06"),
        make_bars(["S06"], count=40, seed=77),
    )


def test_small_lakes_keep_no_snapshot_and_a_shrunk_lake_drops_it(tmp_path: Path) -> None:
    lake = Spy(tmp_path / "lake")
    lake.upsert(make_bars(SYMBOLS[:3], count=5), Timeframe.D1)
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and report.status == "skipped"
    assert not snapshot_file(lake).exists()
    lake.upsert(make_bars(SYMBOLS[3:6], count=5), Timeframe.D1)
    assert lake.refresh_snapshot(Timeframe.D1).status == "written"  # type: ignore[union-attr]
    for symbol in SYMBOLS[:3]:
        lake.delete(symbol, Timeframe.D1)
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and report.status == "removed"
    assert not snapshot_file(lake).exists()
    assert lake.read(None, Timeframe.D1)["symbol"].unique().sort().to_list() == SYMBOLS[3:6]


def test_intraday_bars_have_no_snapshot(tmp_path: Path) -> None:
    lake = Spy(tmp_path / "lake")
    lake.upsert(make_bars(SYMBOLS, Timeframe.M5, count=20), Timeframe.M5)
    report = lake.refresh_snapshot(Timeframe.M5)
    assert report is not None and report.status == "skipped"
    assert lake.snapshot_status(Timeframe.M5) is None
    frame, opened = lake.read_opening(None, Timeframe.M5)
    assert opened == SYMBOLS and frame.height == 240


def test_status_counts_fresh_and_stale_symbols(lakes: tuple[Spy, LocalLake]) -> None:
    lake, _ = lakes
    assert lake.snapshot_status(Timeframe.D1) == {"timeframe": "1d", "exists": False,
                                                  "usable": False}  # fmt: skip
    lake.refresh_snapshot(Timeframe.D1)
    lake.upsert(make_bars(["S00"], count=40, seed=4), Timeframe.D1)
    status = lake.snapshot_status(Timeframe.D1)
    assert status is not None
    assert (status["symbols"], status["rows"], status["fresh"], status["stale"]) == (12, 480, 11, 1)


def test_a_lake_without_snapshots_never_writes_one(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    lake.upsert(make_bars(SYMBOLS, count=5), Timeframe.D1)
    assert lake.refresh_snapshot(Timeframe.D1) is None
    assert not snapshot_file(lake).exists()


def test_writers_during_a_refresh_never_make_reads_wrong(tmp_path: Path) -> None:
    """Partitions rewritten while a refresh runs are recorded under identities they no
    longer have, so every later read takes them from their partitions."""
    root = tmp_path / "lake"
    lake = Spy(root)
    lake.upsert(make_bars(SYMBOLS, count=60, seed=1), Timeframe.D1)
    plain = LocalLake(root)
    stop = threading.Event()

    def writer() -> None:
        seed = 100
        while not stop.is_set():
            seed += 1
            LocalLake(root).upsert(make_bars(SYMBOLS[seed % 12 :: 5], count=60, seed=seed),
                                   Timeframe.D1)  # fmt: skip

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(6):
            lake.refresh_snapshot(Timeframe.D1)
    finally:
        stop.set()
        thread.join()
    assert_same_reads(lake, plain, symbols=None, timeframe=Timeframe.D1)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple]:
    ops = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["upsert", "upsert", "delete", "refresh"]))
        if kind == "upsert":
            chosen = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=6, unique=True))
            count = draw(st.integers(1, 12))
            start = dt.date(2024, 1, 2) + dt.timedelta(days=draw(st.integers(0, 20)))
            ops.append(("upsert", sorted(chosen), count, start, draw(st.integers(0, 999))))
        elif kind == "delete":
            ops.append(("delete", draw(st.sampled_from(SYMBOLS))))
        else:
            ops.append(("refresh",))
    return ops


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=operations(),
    wanted=st.none() | st.lists(st.sampled_from([*SYMBOLS, "NOPE"]), min_size=1, max_size=12),
    start=st.none() | st.integers(0, 30),
    span=st.none() | st.integers(0, 30),
    columns=st.none() | st.lists(st.sampled_from(["close", "volume", "source"]), min_size=1,
                                 unique=True),
)  # fmt: skip
def test_any_history_of_writes_and_refreshes_reads_like_the_partitions(
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple],
    wanted: list[str] | None,
    start: int | None,
    span: int | None,
    columns: list[str] | None,
) -> None:
    root = tmp_path_factory.mktemp("lake")
    lake = LocalLake(root, snapshot_min_symbols=2)
    lake.upsert(make_bars(SYMBOLS, count=15, seed=0), Timeframe.D1)
    lake.refresh_snapshot(Timeframe.D1)
    for op in ops:
        if op[0] == "upsert":
            _, chosen, count, first, seed = op
            lake.upsert(make_bars(chosen, count=count, start=first, seed=seed), Timeframe.D1)
        elif op[0] == "delete":
            lake.delete(op[1], Timeframe.D1)
        else:
            lake.refresh_snapshot(Timeframe.D1)
    lo = None if start is None else dt.date(2024, 1, 2) + dt.timedelta(days=start)
    hi = None if span is None else (lo or dt.date(2024, 1, 2)) + dt.timedelta(days=span)
    read = dict(symbols=wanted, timeframe=Timeframe.D1, start=lo, end=hi, columns=columns)
    assert_same_reads(lake, LocalLake(root), **read)


def test_the_snapshot_is_an_ordinary_arrow_file_other_tools_can_read(
    lakes: tuple[Spy, LocalLake],
) -> None:
    import pyarrow.feather as feather

    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    assert snapshot_file(lake).name == "_snapshot.arrow"
    assert_frame_equal(pl.read_ipc(snapshot_file(lake)), plain.read(None, Timeframe.D1))
    table = feather.read_table(snapshot_file(lake))  # Feather v2 is Arrow IPC
    assert table.num_rows == 480
    assert table.column_names == plain.read(None, Timeframe.D1).columns


def test_a_refresh_removes_an_earlier_versions_parquet_snapshot(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, plain = lakes
    legacy = snapshot_file(lake).with_name("_snapshot.parquet")
    plain.read(None, Timeframe.D1).write_parquet(legacy)
    lake.refresh_snapshot(Timeframe.D1)
    assert not legacy.exists() and snapshot_file(lake).exists()
    assert lake.read_opening(None, Timeframe.D1)[1] == []


def test_a_frame_read_from_the_snapshot_outlives_the_files_replacement(
    lakes: tuple[Spy, LocalLake],
) -> None:
    """Reads are views of the mapped file: a refresh replaces the file with a new one, and
    the frames read before keep the rows they had."""
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    before = lake.read(None, Timeframe.D1)
    kept = before.clone()
    lake.upsert(make_bars(SYMBOLS[:6], count=40, seed=77), Timeframe.D1)
    assert lake.refresh_snapshot(Timeframe.D1).status == "written"  # type: ignore[union-attr]
    assert_frame_equal(before, kept)
    assert_frame_equal(lake.read(None, Timeframe.D1), plain.read(None, Timeframe.D1))
    assert not before.equals(lake.read(None, Timeframe.D1))


def test_a_partition_whose_row_count_changes_during_a_refresh_is_caught_before_use(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are counted, then copied: a partition that grew in between would shift every
    later symbol's offsets. The written file is checked against its manifest and the
    refresh starts again."""
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    lake.upsert(make_bars(["S01"], count=40, seed=2), Timeframe.D1)
    original = _snapshot._in_storage_order
    grown = []

    def then_grow(keys: pl.DataFrame) -> bool:
        if not grown:  # counted; now another writer adds bars to S01
            LocalLake(lake.path).upsert(make_bars(["S01"], count=55, seed=2), Timeframe.D1)
            grown.append(1)
        return original(keys)

    monkeypatch.setattr(_snapshot, "_in_storage_order", then_grow)
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and report.status == "written" and report.rows == 480 + 15
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == []
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))


def test_a_partition_out_of_date_order_stops_the_refresh_with_one_line(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, plain = lakes
    part = lake.path / "bars" / "timeframe=1d" / "symbol=S04" / "part-0.parquet"
    pl.read_parquet(part).sort("date", descending=True).write_parquet(part)  # not ours
    with pytest.raises(DataError, match="not in date order"):
        lake.refresh_snapshot(Timeframe.D1)
    assert not snapshot_file(lake).exists()
    assert_same_reads(lake, plain, symbols=None, timeframe=Timeframe.D1)


def test_a_snapshot_that_fails_to_read_falls_back_to_the_partitions(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    expected = plain.read(None, Timeframe.D1)

    def unreadable(*args: object) -> pl.DataFrame:
        raise OSError("input/output error")

    monkeypatch.setattr(_snapshot, "_read_rows", unreadable)
    with caplog.at_level(logging.WARNING, logger=_snapshot.__name__):
        frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == SYMBOLS
    assert_frame_equal(frame, expected)
    assert "input/output error" in caplog.text


def test_a_read_of_part_of_the_universe_decodes_only_that_part_of_the_snapshot(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    spans = []
    original = _snapshot._read_rows

    def spy(path: Path, columns: list[str], first: int, count: int) -> pl.DataFrame:
        spans.append((first, count))
        return original(path, columns, first, count)

    monkeypatch.setattr(_snapshot, "_read_rows", spy)
    wanted = SYMBOLS[3:9]
    frame, opened = lake.read_opening(wanted, Timeframe.D1, columns=["close"])
    assert opened == [] and spans == [(3 * 40, 6 * 40)]
    assert_frame_equal(frame, plain.read(wanted, Timeframe.D1, columns=["close"]))


def test_every_rewrite_of_a_partition_moves_its_time_forward_even_on_a_coarse_clock(
    lakes: tuple[Spy, LocalLake],
) -> None:
    """Partition versions are told apart by (size, mtime): a rewrite landing in the same
    clock tick as the version before (or behind it) still gets a later time."""
    lake, plain = lakes
    lake.refresh_snapshot(Timeframe.D1)
    part = lake.path / "bars" / "timeframe=1d" / "symbol=S05" / "part-0.parquet"
    ahead = part.stat().st_mtime_ns + 3_600 * 10**9  # the previous version "an hour later"
    os.utime(part, ns=(ahead, ahead))
    lake.refresh_snapshot(Timeframe.D1)  # records that identity
    lake.upsert(make_bars(["S05"], count=40, seed=55), Timeframe.D1)
    assert part.stat().st_mtime_ns == ahead + 1
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == ["S05"]
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))


def test_an_unreadable_partition_stops_the_refresh_with_one_line_and_keeps_the_old_snapshot(
    lakes: tuple[Spy, LocalLake],
) -> None:
    lake, _ = lakes
    lake.refresh_snapshot(Timeframe.D1)
    before = snapshot_file(lake).read_bytes()
    part = lake.path / "bars" / "timeframe=1d" / "symbol=S09" / "part-0.parquet"
    part.write_bytes(b"PAR1 garbage PAR1")
    with pytest.raises(DataError) as caught:
        lake.refresh_snapshot(Timeframe.D1)
    assert "\n" not in str(caught.value)
    assert snapshot_file(lake).read_bytes() == before


def test_a_refresh_counting_partitions_in_small_groups_writes_the_same_snapshot(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, plain = lakes
    monkeypatch.setattr(_snapshot, "COUNT_GROUP", 5)  # 12 partitions: groups of 5, 5, 2
    report = lake.refresh_snapshot(Timeframe.D1)
    assert report is not None and (report.status, report.rows) == ("written", 480)
    frame, opened = lake.read_opening(None, Timeframe.D1)
    assert opened == []
    assert_frame_equal(frame, plain.read(None, Timeframe.D1))


def test_row_groups_hold_what_a_refresh_can_buffer_in_a_quarter_of_the_memory() -> None:
    auto = _snapshot.auto_row_group_rows
    per_row = _snapshot.REFRESH_BYTES_PER_ROW
    assert auto(8 << 30) == (8 << 30) // 4 // per_row  # an 8 GB laptop: ≈ 8.9 M bars
    assert auto(64 << 30) == _snapshot.ROW_GROUP_ROWS  # capped
    assert auto(256 << 20) == _snapshot.MIN_ROW_GROUP_ROWS  # floored
    assert auto() >= _snapshot.MIN_ROW_GROUP_ROWS  # this machine's memory is found


def test_a_bad_row_group_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    from breadthflow.core.config import load_settings
    from breadthflow.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lake_snapshot_row_group_rows.*at least 1024"):
        load_settings(home=tmp_path, lake_snapshot_row_group_rows=100)
    assert load_settings(home=tmp_path).lake_snapshot_row_group_rows == 0  # auto


def test_a_snapshot_is_one_contiguous_row_group_up_to_its_configured_size(
    tmp_path: Path,
) -> None:
    """By default a lake this size is one uncompressed record batch, so a read gives
    contiguous columns (no copy before the scan engine's loops) that are views of the mapped
    file; a smaller ``row_group_rows`` splits it (bounding a refresh's memory) and reads stay
    the same."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    root = tmp_path / "lake"
    LocalLake(root).upsert(make_bars(SYMBOLS, count=40, seed=3), Timeframe.D1)
    plain = LocalLake(root)
    whole = LocalLake(root, snapshot_min_symbols=MIN)
    whole.refresh_snapshot(Timeframe.D1)
    reader = ipc.open_file(pa.memory_map(str(snapshot_file(whole))))
    assert reader.num_record_batches == 1
    frame = whole.read(None, Timeframe.D1, columns=["close", "volume"])
    assert frame.n_chunks("all") == [1, 1]
    assert_frame_equal(frame, plain.read(None, Timeframe.D1, columns=["close", "volume"]))

    snapshot_file(whole).unlink()
    split = LocalLake(root, snapshot_min_symbols=MIN, snapshot_row_group_rows=100)
    split.refresh_snapshot(Timeframe.D1)
    reader = ipc.open_file(pa.memory_map(str(snapshot_file(split))))
    assert [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)] == [
        100, 100, 100, 100, 80,
    ]  # fmt: skip
    assert_frame_equal(split.read(None, Timeframe.D1), plain.read(None, Timeframe.D1))
    wanted = SYMBOLS[1:11]  # a span that starts and ends inside row groups
    assert_frame_equal(
        split.read(wanted, Timeframe.D1, columns=["date", "close"]),
        plain.read(wanted, Timeframe.D1, columns=["date", "close"]),
    )


def test_partition_identities_split_across_threads_match_os_stat(
    lakes: tuple[Spy, LocalLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, _ = lakes
    folder = lake.path / "bars" / "timeframe=1d"
    paths = [f"{folder}/symbol={s}/part-0.parquet" for s in SYMBOLS]
    paths.insert(5, f"{folder}/symbol=NOPE/part-0.parquet")
    monkeypatch.setattr(_snapshot, "STAT_SPLIT", 2)  # 13 paths: two halves on two threads
    found = _snapshot.partition_identities(paths)
    expected = [
        (info.st_size, info.st_mtime_ns) if (info := os.stat(p)) else None
        for p in paths[:5] + paths[6:]
    ]
    assert found[5] is None
    assert found[:5] + found[6:] == expected
