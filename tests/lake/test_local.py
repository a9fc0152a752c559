"""Behaviour specific to the local-folder lake: temp files, locking, URLs, permissions."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.config import load_settings
from breadthflow.core.errors import BackendUnavailableError, ConfigError
from breadthflow.core.models import Timeframe, bar_schema
from breadthflow.data.lake import open_lake
from breadthflow.data.lake.local import LocalLake, local_path
from tests.lake._helpers import make_bars, upsert_days_in_a_process


def partition_dir(root: Path, symbol: str, timeframe: str = "1d") -> Path:
    return root / "bars" / f"timeframe={timeframe}" / f"symbol={symbol}"


def test_temp_files_are_invisible_and_stale_ones_are_removed_on_the_next_write(
    tmp_path: Path,
) -> None:
    lake = LocalLake(tmp_path / "lake")
    bars = make_bars(["AAPL"], count=5)
    lake.upsert(bars, Timeframe.D1)
    folder = partition_dir(tmp_path / "lake", "AAPL")
    stale, fresh = folder / ".tmp-dead.parquet", folder / ".tmp-busy.parquet"
    for leftover in (stale, fresh):
        leftover.write_bytes(b"half a parquet file")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    # A crashed writer's folder of a symbol that never got a partition file.
    (partition_dir(tmp_path / "lake", "ZZZ") / ".tmp-x.parquet").parent.mkdir()
    (partition_dir(tmp_path / "lake", "ZZZ") / ".tmp-x.parquet").write_bytes(b"x")

    assert lake.symbols() == ["AAPL"]
    assert_frame_equal(lake.read(), bars)
    assert lake.coverage().height == 1

    lake.upsert(make_bars(["AAPL"], count=6, seed=1), Timeframe.D1)

    assert not stale.exists()
    assert fresh.exists()  # might belong to a live writer: only old ones go
    assert lake.read().height == 6


def test_concurrent_upserts_of_one_symbol_from_two_threads_both_survive(tmp_path: Path) -> None:
    url = (tmp_path / "lake").as_uri()
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(40)]
    errors: list[BaseException] = []

    def writer(my_days: list[dt.date]) -> None:
        lake = open_lake(url, load_settings())  # each thread its own lake, like a process
        try:
            for day in my_days:
                lake.upsert(make_bars(["AAPL"], times=[day]), Timeframe.D1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(days[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = open_lake(url, load_settings()).read(["AAPL"])
    assert stored.get_column("date").to_list() == days


def test_concurrent_upserts_of_one_symbol_from_two_processes_both_survive(tmp_path: Path) -> None:
    url = (tmp_path / "lake").as_uri()
    days = [(dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(60)]
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    workers = [
        spawn.Process(target=upsert_days_in_a_process, args=(url, "AAPL", days[i::2], start))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    stored = open_lake(url, load_settings()).read(["AAPL"])
    assert [d.isoformat() for d in stored.get_column("date").to_list()] == days


def test_check_on_an_unwritable_folder_fails_with_one_line(tmp_path: Path) -> None:
    # Tests run as root, so permissions cannot make a folder unwritable; a path below a
    # regular file cannot be created by anyone.
    (tmp_path / "afile").write_text("not a folder")
    lake = LocalLake(tmp_path / "afile" / "lake")

    with pytest.raises(BackendUnavailableError) as caught:
        lake.check()

    message = str(caught.value)
    assert message.startswith(f"lake {lake.url} is not writable: ")
    assert "\n" not in message


def test_writing_to_an_unwritable_folder_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    lake = LocalLake(tmp_path / "afile" / "lake")

    with pytest.raises(BackendUnavailableError) as caught:
        lake.upsert(make_bars(["AAPL"]), Timeframe.D1)

    assert str(caught.value).startswith(f"lake {lake.url} is unavailable: ")
    assert "\n" not in str(caught.value)
    assert lake.read().height == 0  # reading a lake that cannot exist is just empty


@pytest.mark.parametrize("timeframe", list(Timeframe))
def test_every_timeframe_round_trips(tmp_path: Path, timeframe: Timeframe) -> None:
    lake = LocalLake(tmp_path / "lake")
    bars = make_bars(["SPY", "QQQ"], timeframe, 100)

    lake.upsert(bars, timeframe)

    assert_frame_equal(lake.read(timeframe=timeframe), bars.sort("symbol", "date"))
    assert lake.timeframes() == [timeframe]


def test_partition_files_are_plain_sorted_zstd_parquet_with_statistics(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    bars = make_bars(["AAPL"], count=30)
    lake.upsert(bars.reverse(), Timeframe.D1)
    path = partition_dir(tmp_path / "lake", "AAPL") / "part-0.parquet"

    table = pq.read_table(path)
    meta = pq.read_metadata(path)

    assert_frame_equal(pl.from_arrow(table), bars)  # symbol inside the file, date order
    assert pl.from_arrow(table).schema == pl.Schema(bar_schema(Timeframe.D1))
    column = meta.row_group(0).column(1)
    assert column.compression == "ZSTD"
    assert column.statistics.min == dt.date(2024, 1, 2)
    assert path.stat().st_mode & 0o077 == 0o666 & ~_umask() & 0o077  # umask, not 0600


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# --- URLs -----------------------------------------------------------------------------


def test_open_lake_accepts_file_urls_and_plain_paths(tmp_path: Path, monkeypatch) -> None:
    settings = load_settings()
    monkeypatch.chdir(tmp_path)
    cases = {
        (tmp_path / "a b").as_uri(): tmp_path / "a b",  # percent-encoded space
        f"file://localhost{tmp_path}/c": tmp_path / "c",
        str(tmp_path / "d"): tmp_path / "d",
        "relative/lake": tmp_path / "relative" / "lake",
    }
    for url, folder in cases.items():
        lake = open_lake(url, settings)
        assert isinstance(lake, LocalLake)
        assert lake.path == folder.resolve()
        assert lake.url == folder.resolve().as_uri()


def test_the_default_lake_lives_under_the_home_folder(isolated_home: Path) -> None:
    settings = load_settings()
    lake = open_lake(settings.resolved_lake_url, settings)
    lake.check()
    assert isinstance(lake, LocalLake)
    assert lake.path == (isolated_home / "lake").resolve()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x/lake", "unsupported lake URL 'ftp://x/lake'"),
        ("file://server/share/lake", "cannot name a host"),
        ("file://", "names no folder"),
    ],
)
def test_bad_lake_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_lake(url, load_settings())


def test_local_path_expands_the_home_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert local_path("~/lake") == (tmp_path / "lake").resolve()


def test_a_partition_written_out_of_order_by_another_tool_is_still_read_in_order(
    tmp_path: Path,
) -> None:
    lake = LocalLake(tmp_path / "lake")
    bars = make_bars(["AAPL", "MSFT"], count=10)
    lake.upsert(bars, Timeframe.D1)
    path = partition_dir(tmp_path / "lake", "AAPL") / "part-0.parquet"
    pq.write_table(pq.read_table(path).take(list(range(9, -1, -1))), path)

    assert_frame_equal(lake.read(), bars)
    assert_frame_equal(lake.read(["AAPL"], start=dt.date(2024, 1, 10)), bars.slice(6, 4))
