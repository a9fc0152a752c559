"""The one lake implementation: Parquet partitions on any :class:`pyarrow.fs.FileSystem`.

Local disk and S3 differ in the filesystem object, in how a finished file is put in
place atomically (:meth:`ParquetLake._commit`) and in locking (a per-partition file lock
on disk, none on S3); the local lake also swaps in Polars' reader for bulk reads, which
is faster on local files. Everything else — validation, merging, listing, reading,
coverage — lives here.

Layout under the root::

    bars/timeframe=1d/symbol=AAPL/part-0.parquet     one file per (timeframe, symbol)
    bars/timeframe=1d/symbol=AAPL/.tmp-…            a write in progress (ignored by readers)
    _locks/…                                         per-partition lock files (local only)

Names starting with ``.`` or ``_`` are never data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import posixpath
import re
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from breadthflow.core.errors import (
    BackendUnavailableError,
    BreadthFlowError,
    DataError,
    InvalidInputError,
)
from breadthflow.core.models import Timeframe, bar_schema, date_dtype, normalize_symbol
from breadthflow.data.lake import Lake, UpsertResult
from breadthflow.data.lake._frames import conform_bars, merge_partition, split_by_symbol
from breadthflow.data.lake._tables import TableStore

PART_FILE = "part-0.parquet"
TMP_PREFIX = ".tmp-"
# A temp file this old belongs to a writer that died; the next write to the partition
# removes it. An hour is far longer than any single partition write takes.
STALE_TMP_SECONDS = 3600
# Daily partitions (≈250 rows a year) always fit one row group; long intraday histories
# get several, so a date-range read can skip row groups by their statistics.
ROW_GROUP_ROWS = 128 * 1024

_TIMEFRAME_DIR = re.compile(r"^timeframe=(?P<value>[0-9a-z]+)$")
# Same alphabet as core.models.normalize_symbol: never '.', '..', '/' or a hidden name.
_SYMBOL_DIR = re.compile(r"^symbol=(?P<symbol>[A-Z0-9^][A-Z0-9.\-=^]{0,19})$")

T = TypeVar("T")
R = TypeVar("R")


def arrow_schema(timeframe: Timeframe) -> pa.Schema:
    """The Arrow schema of stored bars (the Parquet twin of ``bar_schema``)."""
    date_type = pa.timestamp("us", tz="UTC") if timeframe.is_intraday else pa.date32()
    return pa.schema(
        [
            pa.field("symbol", pa.large_string(), nullable=False),
            pa.field("date", date_type, nullable=False),
            pa.field("open", pa.float64()),
            pa.field("high", pa.float64()),
            pa.field("low", pa.float64()),
            pa.field("close", pa.float64()),
            pa.field("volume", pa.float64()),
            pa.field("adj_factor", pa.float64()),
            pa.field("source", pa.large_string()),
            pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def encode_parquet(table: pa.Table) -> pa.Buffer:
    """Serialise one partition to Parquet bytes in memory (zstd, with statistics).

    Encoding completes before any byte reaches the store, so a failure here can never
    leave a partial file or object behind.
    """
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        # Dictionary-encode only the repetitive strings: trying it on every float column
        # (pyarrow's default) triples the encoding time and then falls back anyway.
        use_dictionary=["symbol", "source"],
        write_statistics=True,
        row_group_size=ROW_GROUP_ROWS,
        # Files are sorted by (symbol, date); say so for engines that use it.
        sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)],
    )
    return sink.getvalue()


def remove_stale_tmp(folder: str | os.PathLike[str], keep: str | None = None) -> None:
    """Delete the temp files (``.tmp-…``) in a folder on local disk that writers which died
    more than :data:`STALE_TMP_SECONDS` ago left behind (``keep``: one's own)."""
    cutoff = time.time() - STALE_TMP_SECONDS
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(TMP_PREFIX) or entry.path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)


def short_reason(exc: BaseException, limit: int = 240) -> str:
    """One line describing ``exc``, without request ids, for a user-facing message."""
    text = str(exc).strip() or type(exc).__name__
    text = " ".join(text.split())  # newlines and runs of spaces → one line
    text = re.sub(r"\s*\(Request ID: [^)]*\)", "", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ParquetLake(TableStore, Lake):
    """A lake of one Parquet file per ``(timeframe, symbol)`` under ``root`` on ``filesystem``.

    Subclasses implement :meth:`_commit` (put a finished partition in place atomically)
    and may override :meth:`_lock`, :meth:`_prepare_root`, :meth:`_root_problem`,
    :meth:`_existing`, :meth:`_scan` and :meth:`_describe`.
    """

    def __init__(
        self,
        url: str,
        filesystem: pafs.FileSystem,
        root: str,
        *,
        workers: int = 4,
        metadata_workers: int = 8,
    ) -> None:
        self.url = url
        self._fs = filesystem
        self._root = root.rstrip("/")
        self._workers = max(1, workers)  # partitions written at once
        self._metadata_workers = max(1, metadata_workers)  # footers read at once

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # --- paths ------------------------------------------------------------------------

    def _bars_dir(self) -> str:
        return f"{self._root}/bars"

    def _timeframe_dir(self, timeframe: Timeframe) -> str:
        return f"{self._bars_dir()}/timeframe={timeframe.value}"

    def _partition_path(self, timeframe: Timeframe, symbol: str) -> str:
        return f"{self._timeframe_dir(timeframe)}/symbol={symbol}/{PART_FILE}"

    # --- hooks for the implementations ------------------------------------------------

    @abstractmethod
    def _commit(self, path: str, table: pa.Table) -> None:
        """Replace the file at ``path`` with ``table`` so readers see old or new, never half."""

    def _lock(self, timeframe: Timeframe, symbol: str) -> contextlib.AbstractContextManager[Any]:
        """Exclusive access to one partition across processes (none by default)."""
        return contextlib.nullcontext()

    def _prepare_root(self) -> None:
        """Make sure the root exists (called by :meth:`check`)."""
        self._fs.create_dir(self._root, recursive=True)

    def _root_problem(self) -> str | None:
        """Why the store itself is unusable (a missing bucket), or None.

        A local lake that was never written is simply empty; a missing bucket is not.
        """
        return None

    def _verify_root(self) -> None:
        """Raise if the store itself is missing (called when a read finds no files)."""
        problem = self._root_problem()
        if problem is not None:
            raise BackendUnavailableError(f"lake {self.url} is unavailable: {problem}")

    def _existing(self, timeframe: Timeframe, paths: Mapping[str, str]) -> dict[str, str]:
        """The subset of ``{symbol: path}`` whose partition file exists."""
        infos = self._fs.get_file_info(list(paths.values()))
        return {
            symbol: info.path
            for symbol, info in zip(paths, infos, strict=True)
            if info.type == pafs.FileType.File
        }

    def _describe(self, exc: BaseException) -> str:
        """A short, one-line reason for a backend failure."""
        return short_reason(exc)

    @contextlib.contextmanager
    def _backend_errors(self) -> Iterator[None]:
        """Turn I/O failures into one-line BackendUnavailableErrors naming the lake."""
        try:
            yield
        except BreadthFlowError:
            raise
        except OSError as exc:
            raise BackendUnavailableError(
                f"lake {self.url} is unavailable: {self._describe(exc)}"
            ) from exc

    # --- writing ----------------------------------------------------------------------

    def upsert(self, bars: pl.DataFrame, timeframe: Timeframe) -> UpsertResult:
        """Insert or replace bars keyed by (symbol, timeframe, date); atomic per symbol.

        ``bars`` must have the columns of ``bar_schema(timeframe)``; dtypes are cast where
        that loses nothing, symbols are upper-cased. The whole input is validated before
        any partition is touched. Per partition, a bar whose values (all columns except
        ``ingested_at``) equal the stored ones counts as unchanged and keeps its stored
        row; a partition with nothing new is not rewritten. Partitions are written in
        parallel; if one fails the others may already be committed (each one is whole).

        >>> lake.upsert(bars, Timeframe.D1)  # doctest: +SKIP
        UpsertResult(inserted=2520, updated=0, unchanged=0, partitions=1)
        """
        tf = Timeframe.parse(timeframe)
        frame = conform_bars(bars, tf)
        parts, contiguous = split_by_symbol(frame)
        if not parts:
            return UpsertResult()
        tables: list[pa.Table | None] = [None] * len(parts)
        if contiguous:
            # One Arrow conversion of the whole input, sliced per partition without
            # copying, costs far less than thousands of small conversions.
            whole = frame.to_arrow().cast(arrow_schema(tf))
            offset = 0
            for index, (_, part) in enumerate(parts):
                tables[index] = whole.slice(offset, part.height)
                offset += part.height
        jobs = [(symbol, part, table) for (symbol, part), table in zip(parts, tables, strict=True)]
        results = self._run_all(lambda job: self._upsert_partition(tf, *job), jobs, self._workers)
        return sum(results, UpsertResult())

    def _upsert_partition(
        self, timeframe: Timeframe, symbol: str, new: pl.DataFrame, new_table: pa.Table | None
    ) -> UpsertResult:
        """Merge ``new`` (one symbol's bars; ``new_table`` the same rows as Arrow, if at
        hand) into the stored partition under its lock, and commit if anything changed."""
        path = self._partition_path(timeframe, symbol)
        with self._backend_errors(), self._lock(timeframe, symbol):
            stored = self._read_partition(path, timeframe)
            merged, inserted, updated, unchanged = merge_partition(stored, new, timeframe)
            if merged is not None:
                # merge_partition hands back ``new`` itself when it is the whole result
                # (a new partition already in date order): reuse its Arrow form then.
                if merged is new and new_table is not None:
                    table = new_table
                else:
                    table = merged.to_arrow().cast(arrow_schema(timeframe))
                self._commit(path, table)
        return UpsertResult(inserted, updated, unchanged, 1)

    def _read_partition(self, path: str, timeframe: Timeframe) -> pl.DataFrame | None:
        """The stored bars of one partition, or None if it does not exist."""
        schema = bar_schema(timeframe)
        try:
            with self._fs.open_input_file(path) as file:
                # Polars' reader on the fetched bytes beats pyarrow + conversion here.
                frame = pl.read_parquet(file, columns=list(schema))
        except FileNotFoundError:
            return None
        except pl.exceptions.ComputeError as exc:
            raise DataError(f"lake file {path} is not valid Parquet: {short_reason(exc)}") from exc
        if frame.schema != pl.Schema(schema):  # a file not written by this code
            frame = frame.cast(schema)  # type: ignore[arg-type]
        return frame

    def delete(self, symbol: str, timeframe: Timeframe = Timeframe.D1) -> bool:
        """Remove one partition (and any leftover temp files); True if it existed."""
        tf = Timeframe.parse(timeframe)
        sym = normalize_symbol(symbol)
        path = self._partition_path(tf, sym)
        with self._backend_errors(), self._lock(tf, sym):
            if self._fs.get_file_info(path).type != pafs.FileType.File:
                return False
            self._fs.delete_dir(posixpath.dirname(path))
        return True

    def check(self) -> None:
        """Create the root if needed and write then delete a probe object.

        Raises ``BackendUnavailableError("lake <url> is not writable: <reason>")``.
        """
        try:
            problem = self._root_problem()
            if problem is not None:
                raise BackendUnavailableError(f"lake {self.url} is not writable: {problem}")
            self._prepare_root()
            probe = f"{self._root}/_probe-{uuid.uuid4().hex}"
            with self._fs.open_output_stream(probe) as stream:
                stream.write(b"breadthflow lake probe\n")
            self._fs.delete_file(probe)
        except BackendUnavailableError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise BackendUnavailableError(
                f"lake {self.url} is not writable: {self._describe(exc)}"
            ) from exc

    # --- reading ----------------------------------------------------------------------

    def read(
        self,
        symbols: Sequence[str] | None = None,
        timeframe: Timeframe = Timeframe.D1,
        start: dt.date | dt.datetime | None = None,
        end: dt.date | dt.datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Bars for ``symbols`` (all when None) with start <= date <= end, sorted by
        (symbol, date); only ``columns`` (in that order) when given.

        Bounds are inclusive and optional. For intraday timeframes a ``date`` bound means
        the whole UTC day and a naive ``datetime`` is taken as UTC; for daily bars a
        ``datetime`` bound is reduced to its date. Unknown symbols give no rows; the
        result always has the ``bar_schema`` dtypes, even when empty.

        >>> lake.read(["AAPL"], "1d", dt.date(2024, 1, 2), dt.date(2024, 3, 28))  # doctest: +SKIP
        """
        tf = Timeframe.parse(timeframe)
        schema = bar_schema(tf)
        wanted = self._check_columns(columns, schema)
        lo, hi = _bound(start, tf, end=False), _bound(end, tf, end=True)
        empty = pl.DataFrame(schema={name: schema[name] for name in wanted})
        if lo is not None and hi is not None and lo > hi:
            return empty
        # symbol and date are always read: they define the order of the result.
        read_columns = list(dict.fromkeys(["symbol", "date", *wanted]))
        with self._backend_errors():
            found = self._read_bars(tf, symbols, read_columns, lo, hi)
            if found is None:
                self._verify_root()
                return empty
        frame, ordered = found
        if not ordered:
            frame = _sorted_by_symbol_date(frame)
        return frame.select(wanted)

    def _read_bars(
        self,
        timeframe: Timeframe,
        symbols: Sequence[str] | None,
        columns: list[str],
        lo: dt.date | dt.datetime | None,
        hi: dt.date | dt.datetime | None,
    ) -> tuple[pl.DataFrame, bool] | None:
        """The stored bars of ``symbols`` (all when None) with ``columns``, and whether
        they are known to be sorted by (symbol, date); None when no partition is stored."""
        paths = self._locate(timeframe, symbols)
        if not paths:
            return None
        return self._scan(list(paths.values()), timeframe, columns, lo, hi), False

    def _scan(
        self,
        paths: list[str],
        timeframe: Timeframe,
        columns: list[str],
        lo: dt.date | dt.datetime | None,
        hi: dt.date | dt.datetime | None,
    ) -> pl.DataFrame:
        """Read ``columns`` of the given files (in path order) with the date filter pushed down.

        One Arrow dataset over explicit paths (no directory discovery, no per-file schema
        inspection): Arrow decodes the files on its own thread pools — which matters on
        S3, where each file costs a round trip — and skips row groups whose date
        statistics fall outside the range.
        """
        schema = arrow_schema(timeframe)
        dataset = pads.FileSystemDataset.from_paths(
            paths, schema=schema, format=pads.ParquetFileFormat(), filesystem=self._fs
        )
        date = pads.field("date")
        date_type = schema.field("date").type
        condition = None
        if lo is not None:
            condition = date >= pa.scalar(lo, type=date_type)
        if hi is not None:
            upper = date <= pa.scalar(hi, type=date_type)
            condition = upper if condition is None else condition & upper
        try:
            table = dataset.to_table(columns=columns, filter=condition, use_threads=True)
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"lake {self.url} holds an unreadable file: {short_reason(exc)}"
            ) from exc
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _locate(self, timeframe: Timeframe, symbols: Sequence[str] | None) -> dict[str, str]:
        """``{symbol: path}`` of the partitions to read, in symbol order."""
        if symbols is None:
            return self._list(timeframe).get(timeframe, {})
        if isinstance(symbols, str):  # a lone "AAPL" is one symbol, not four
            symbols = [symbols]
        wanted = sorted({normalize_symbol(s) for s in symbols})
        if not wanted:
            return {}
        return self._existing(timeframe, {s: self._partition_path(timeframe, s) for s in wanted})

    def _list(self, timeframe: Timeframe | None = None) -> dict[Timeframe, dict[str, str]]:
        """Stored partitions from one (recursive) listing: ``{timeframe: {symbol: path}}``.

        Only ``timeframe=…/symbol=…/part-0.parquet`` counts; folders without a partition
        file (an S3 folder marker left by a delete, a crashed writer's temp file) do not.
        """
        base = self._bars_dir() if timeframe is None else self._timeframe_dir(timeframe)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        found: dict[Timeframe, dict[str, str]] = {}
        prefix = self._bars_dir() + "/"
        infos = self._fs.get_file_info(selector)
        if not infos:  # an empty lake, or (allow_not_found hides it) a missing bucket
            self._verify_root()
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.startswith(prefix):
                continue
            parts = info.path[len(prefix) :].split("/")
            if len(parts) != 3 or parts[2] != PART_FILE:
                continue
            tf_match, sym_match = _TIMEFRAME_DIR.match(parts[0]), _SYMBOL_DIR.match(parts[1])
            if tf_match is None or sym_match is None:
                continue
            try:
                tf = Timeframe(tf_match["value"])
            except ValueError:
                continue
            found.setdefault(tf, {})[sym_match["symbol"]] = info.path
        return {tf: dict(sorted(paths.items())) for tf, paths in found.items()}

    def symbols(self, timeframe: Timeframe = Timeframe.D1) -> list[str]:
        """Sorted symbols that have a stored partition for the timeframe."""
        tf = Timeframe.parse(timeframe)
        with self._backend_errors():
            return list(self._list(tf).get(tf, {}))

    def timeframes(self) -> list[Timeframe]:
        """Timeframes with at least one stored partition, shortest first."""
        with self._backend_errors():
            stored = self._list()
        return sorted(stored, key=lambda tf: tf.minutes)

    def coverage(
        self, timeframe: Timeframe = Timeframe.D1, symbols: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """One row per stored symbol: ``symbol, rows, first_date, last_date``.

        Read from the Parquet footers only (row counts and the min/max statistics of
        ``date``), so it is cheap even for thousands of partitions.
        """
        tf = Timeframe.parse(timeframe)
        dtype = date_dtype(tf)
        schema = {
            "symbol": pl.String(),
            "rows": pl.Int64(),
            "first_date": dtype,
            "last_date": dtype,
        }
        with self._backend_errors():
            paths = self._locate(tf, symbols)
            if not paths:
                self._verify_root()
                return pl.DataFrame(schema=schema)
            footers = self._run_all(
                lambda p: self._footer(p, tf), list(paths.values()), self._metadata_workers
            )
        rows, firsts, lasts = zip(*footers, strict=True)
        return pl.DataFrame(
            {"symbol": list(paths), "rows": rows, "first_date": firsts, "last_date": lasts},
            schema=schema,
        )

    def _footer(self, path: str, timeframe: Timeframe) -> tuple[int, Any, Any]:
        """(rows, first date, last date) of one partition from its footer."""
        try:
            with self._fs.open_input_file(path) as file:
                meta = pq.read_metadata(file)
        except pa.ArrowInvalid as exc:
            raise DataError(f"lake file {path} is not valid Parquet: {short_reason(exc)}") from exc
        index = meta.schema.names.index("date")
        first = last = None
        for group in range(meta.num_row_groups):
            if meta.row_group(group).num_rows == 0:
                continue
            stats = meta.row_group(group).column(index).statistics
            if stats is None or not stats.has_min_max:
                # Written without statistics (not by us): fall back to the column itself.
                return self._footer_from_data(path, timeframe, meta.num_rows)
            first = stats.min if first is None else min(first, stats.min)
            last = stats.max if last is None else max(last, stats.max)
        return meta.num_rows, _stat_value(first, timeframe), _stat_value(last, timeframe)

    def _footer_from_data(self, path: str, timeframe: Timeframe, rows: int) -> tuple[int, Any, Any]:
        with self._fs.open_input_file(path) as file:
            dates = pq.read_table(file, columns=["date"]).column("date")
        bounds = pc.min_max(dates).as_py()
        return rows, _stat_value(bounds["min"], timeframe), _stat_value(bounds["max"], timeframe)

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _check_columns(columns: Sequence[str] | None, schema: Mapping[str, Any]) -> list[str]:
        if columns is None:
            return list(schema)
        if isinstance(columns, str):
            columns = [columns]
        unknown = [c for c in columns if c not in schema]
        if unknown:
            raise InvalidInputError(
                f"unknown column{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(c) for c in unknown)} — known: {', '.join(schema)}"
            )
        return list(dict.fromkeys(columns))

    def _run_all(self, fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
        """``[fn(item) for item in items]`` on a thread pool, results in input order.

        Arrow and the filesystem release the GIL, so partitions really run in parallel.
        On the first failure, work not yet started is cancelled (a dead endpoint should
        not be retried once per partition) and that failure is raised.
        """
        if len(items) <= 1 or workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            futures: list[Future[R]] = [pool.submit(fn, item) for item in items]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is not None:
                for future in futures:
                    future.cancel()
                wait(futures)  # let running partitions finish before reporting
                raise failed.exception()  # type: ignore[misc]
            return [f.result() for f in futures]


def _bound(
    value: dt.date | dt.datetime | None, timeframe: Timeframe, *, end: bool
) -> dt.date | dt.datetime | None:
    """A read bound in the type of the ``date`` column (see :meth:`ParquetLake.read`)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if not timeframe.is_intraday:
            return value.date()
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        if not timeframe.is_intraday:
            return value
        # A date bound on intraday bars covers that whole UTC day, end inclusive.
        return dt.datetime.combine(value, dt.time.max if end else dt.time.min, tzinfo=dt.UTC)
    raise InvalidInputError(
        f"invalid {'end' if end else 'start'} {value!r} — expected a date or a datetime"
    )


def _stat_value(value: Any, timeframe: Timeframe) -> Any:
    """Normalise a Parquet min/max statistic to a date (daily) or a UTC datetime."""
    if value is None:
        return None
    if timeframe.is_intraday:
        if isinstance(value, dt.datetime):
            return (
                value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
            )
        return value
    return value.date() if isinstance(value, dt.datetime) else value


def _sorted_by_symbol_date(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by (symbol, date) unless already so — the usual case, as files are read in
    symbol order and each is sorted by date.

    The check never compares neighbouring symbols row by row: the symbol column must be
    sorted (one pass), and wherever the date fails to increase — a handful of rows, where
    one file ends and the next begins — the symbol must change. About 0.1 s for
    12.6 M rows; a sort takes ~3 s.
    """
    if frame.height <= 1:
        return frame
    symbols = frame.get_column("symbol")
    if symbols.is_sorted():
        back = pl.Series(_date_steps_back(frame.get_column("date")))
        if (symbols.gather(back) != symbols.gather(back - 1)).all():
            return frame
    return frame.sort("symbol", "date")


# Rows checked at once by _date_steps_back: NumPy asks for huge pages for arrays of
# 4 MiB and more, and first-touching those costs more than the comparison itself.
_CHECK_ROWS = 1 << 19


def _date_steps_back(dates: pl.Series) -> np.ndarray:
    """The rows whose date is not after the previous row's date."""
    found = [np.zeros(0, dtype=np.int64)]
    for first in range(0, dates.len() - 1, _CHECK_ROWS):
        block = dates.slice(first, _CHECK_ROWS + 1).to_physical().to_numpy()
        found.append(np.flatnonzero(block[1:] <= block[:-1]) + (first + 1))
    return np.concatenate(found)
