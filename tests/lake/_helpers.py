"""Bars and store inspection shared by the lake tests."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from breadthflow.core.config import Settings
from breadthflow.core.models import Timeframe, bar_schema
from breadthflow.data.lake import Lake, open_lake

INGESTED = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)


def bar_times(timeframe: Timeframe, count: int, start: dt.date = dt.date(2024, 1, 2)) -> list:
    """``count`` consecutive bar keys: weekdays for daily bars (so weekends are gaps),
    and for intraday bars the 14:30–21:00 UTC session of each weekday."""
    out: list = []
    day = start
    while len(out) < count:
        if day.weekday() < 5:
            if not timeframe.is_intraday:
                out.append(day)
            else:
                t = dt.datetime.combine(day, dt.time(14, 30), tzinfo=dt.UTC)
                close = dt.datetime.combine(day, dt.time(21, 0), tzinfo=dt.UTC)
                while t < close and len(out) < count:
                    out.append(t)
                    t += dt.timedelta(minutes=timeframe.minutes)
        day += dt.timedelta(days=1)
    return out


def make_bars(
    symbols: Sequence[str],
    timeframe: Timeframe = Timeframe.D1,
    count: int = 30,
    *,
    seed: int = 0,
    start: dt.date = dt.date(2024, 1, 2),
    times: Sequence | None = None,
    source: str = "test",
) -> pl.DataFrame:
    """Random but valid bars in storage order (symbol, date), with the exact bar schema."""
    keys = list(times) if times is not None else bar_times(timeframe, count, start)
    rng = np.random.default_rng(seed)
    n = len(keys) * len(symbols)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), 4)
    return pl.DataFrame(
        {
            "symbol": [s for s in symbols for _ in keys],
            "date": keys * len(symbols),
            "open": np.round(close * (1 + rng.normal(0, 0.003, n)), 4),
            "high": np.round(close * 1.01, 4),
            "low": np.round(close * 0.99, 4),
            "close": close,
            "volume": rng.integers(1_000, 1_000_000, n).astype(float),
            "adj_factor": np.ones(n),
            "source": [source] * n,
            "ingested_at": [INGESTED] * n,
        },
        schema=bar_schema(timeframe),
    )


@dataclass
class Store:
    """A lake under test plus ways to look at its storage directly."""

    kind: str  # "local" or "s3"
    url: str
    settings: Settings
    version: Callable[[Timeframe, str], object]  # changes whenever a partition is rewritten
    listing: Callable[[], list[str]]  # every file/object under the root, relative

    def open(self) -> Lake:
        """A new Lake on the same storage (as another process would open it)."""
        return open_lake(self.url, self.settings)


def local_store(root: Path, settings: Settings) -> Store:
    def version(timeframe: Timeframe, symbol: str) -> object:
        path = root / "bars" / f"timeframe={timeframe.value}" / f"symbol={symbol}"
        stat = (path / "part-0.parquet").stat()
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def listing() -> list[str]:
        found = []
        for folder, _, files in os.walk(root):
            for name in files:
                rel = Path(folder, name).relative_to(root).as_posix()
                if not rel.startswith("_locks/"):
                    found.append(rel)
        return sorted(found)

    return Store("local", root.as_uri(), settings, version, listing)


def s3_store(client, bucket: str, prefix: str, settings: Settings) -> Store:
    def version(timeframe: Timeframe, symbol: str) -> object:
        key = f"{prefix}/bars/timeframe={timeframe.value}/symbol={symbol}/part-0.parquet"
        head = client.head_object(Bucket=bucket, Key=key)
        return (head["VersionId"], head["ETag"])

    def listing() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        # pyarrow keeps empty "folder/" marker objects; they are not data or garbage.
        return sorted(k[len(prefix) + 1 :] for k in keys if not k.endswith("/"))

    return Store("s3", f"s3://{bucket}/{prefix}", settings, version, listing)


def upsert_days_in_a_process(url: str, symbol: str, days: list[str], start: object) -> None:
    """Child-process body for the cross-process locking test: one upsert per day, begun
    together with the other process (``start`` is a multiprocessing Barrier)."""
    from breadthflow.core.config import load_settings

    lake = open_lake(url, load_settings())
    start.wait(timeout=60)  # type: ignore[attr-defined]
    for day in days:
        lake.upsert(make_bars([symbol], times=[dt.date.fromisoformat(day)]), Timeframe.D1)
