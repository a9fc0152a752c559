"""The read snapshot of a local lake: one Arrow file holding every partition of a timeframe.

Reading thousands of one-symbol partitions costs per-file work (open, footer, one small
chunk each) that dominates a whole-universe read: 5,000 daily partitions × 2,520 bars,
four columns, ≈ 0.9 s, against ≈ 0.07 s for the same columns of one consolidated Parquet
file — and nothing at all for an uncompressed Arrow IPC file (Feather v2) mapped into
memory: its columns are used where they lie in the page cache, with no copy and no decode.
The snapshot is that consolidated file, kept next to the partitions::

    bars/timeframe=1d/_snapshot.arrow     every symbol's bars, sorted by (symbol, date)

The partitions stay the truth; the snapshot is a cache of them in the format that reads
fastest. Its schema metadata carries a manifest: for each symbol,
its row count and the identity of the partition file it was copied from (size and
modification time in ns; the lake moves a partition's time forward on every rewrite, even
where the filesystem's clock is coarse, so any rewrite changes the identity). A read
stats the partitions it needs — as it does anyway to find them — and takes a symbol from
the snapshot only when its partition is the very file the snapshot copied; changed or new
symbols come from their partitions, deleted ones are not read. A stale snapshot is
therefore never wrong, only slower.

:meth:`Snapshots.refresh` (run after a fetch, or ``breadthflow data snapshot``) rewrites the
snapshot from the old one plus the changed partitions, aside and renamed into place, so a
crash leaves the old snapshot or the new one, and either is checked before use; a file
being read stays mapped as it was (replacing it makes a new file, it never rewrites one in
place — nor should anything else: a file cut short under a mapping would crash the reader,
so never edit the snapshot by hand). Identities
are taken before the partitions are read: a partition rewritten during a refresh keeps an
identity the snapshot does not record, and is read from its partition.

Only daily bars get a snapshot (intraday partitions are large and read with their date
filter pushed down), and only a read that needs many of the snapshot's symbols uses it:
for a few symbols, their partitions are cheaper than the whole file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
from filelock import FileLock, Timeout

from breadthflow.core.errors import BackendUnavailableError, DataError
from breadthflow.core.models import Timeframe, bar_schema
from breadthflow.data.lake._base import TMP_PREFIX, remove_stale_tmp, short_reason

log = logging.getLogger(__name__)
_LOCAL_FS = pafs.LocalFileSystem()

SNAPSHOT_FILE = "_snapshot.arrow"
LEGACY_FILES = ("_snapshot.parquet",)  # earlier versions' snapshots, removed by a refresh
MANIFEST_KEY = "breadthflow.snapshot"
FORMAT_VERSION = 3  # 2: partition identities are (size, mtime_ns); 3: Arrow IPC
# Polars' newest Arrow layout: strings as views, which Polars then uses without a copy.
ARROW_LEVEL = pl.CompatLevel.newest()
# A read uses the snapshot when its fresh symbols number at least ``min_symbols`` and make
# at least this share of the snapshot's rows: reading the whole file for a small slice of
# it costs more than the few partitions.
MIN_SHARE = 0.25
# Uncompressed and memory-mapped: a read of any columns is a view of the file in the page
# cache (≈ 0.3 ms for symbol, date, close, volume of 5,000 × 2,520 bars, against ≈ 0.07 s
# for the same columns of an uncompressed Parquet file), for about twice the disk (strings
# are stored as views: 16 bytes a bar for the symbol) — the snapshot exists for speed.
# Rows per record batch (the "row group" of the settings): a read gets one chunk per
# batch, and the engine's compiled loops need contiguous columns, so a universe that spans
# several batches is copied once after reading (≈ 0.04 s for 12.6 M bars). A refresh
# buffers a whole batch, so by default a batch holds as many bars as a refresh can buffer
# in a quarter of the machine's memory, between these two bounds
# (``lake_snapshot_row_group_rows`` sets it instead).
ROW_GROUP_ROWS = 1 << 24
MIN_ROW_GROUP_ROWS = 1 << 20
REFRESH_BYTES_PER_ROW = 240  # a refresh's peak memory per buffered bar (measured)
MEMORY_SHARE = 0.25
LOCK_TIMEOUT_SECONDS = 600.0
# A refresh whose partitions keep changing row counts under it gives up after this many.
REFRESH_ATTEMPTS = 3
# Partition stats are split across two threads from twice this many files.
STAT_SPLIT = 1000
# Changed partitions are counted this many at a time before a refresh copies them.
COUNT_GROUP = 500

#: What tells two versions of a file apart: (size, modification time in ns) for a partition
#: — the local lake makes every rewrite of a partition move its time forward (see
#: ``LocalLake._commit``), however coarse the filesystem's clock — and (inode, size, time)
#: for the snapshot file itself.
Identity = tuple[int, ...]
#: ``{symbol: (partition path, identity)}`` in symbol order.
Entries = Mapping[str, tuple[str, Identity]]
#: Reads whole partitions (in the given order) → their bars, sorted by (symbol, date).
PartitionReader = Callable[[list[str], list[str]], pl.DataFrame]
#: Scans whole partitions (in the given order), every column, lazily.
PartitionScanner = Callable[[list[str]], pl.LazyFrame]


def partition_identities(paths: list[str]) -> list[Identity | None]:
    """The identities of the partition files at ``paths`` (None: no such file), in one call
    that runs without the GIL: thousands of ``os.stat`` calls from Python would each wait
    for the GIL, which a thread loading the scan's kernels holds for long stretches."""
    if len(paths) >= 2 * STAT_SPLIT:  # two threads, each stat'ing half (≈ 6 ms of 12 saved)
        half = len(paths) // 2
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(_LOCAL_FS.get_file_info, paths[half:])
            infos = _LOCAL_FS.get_file_info(paths[:half]) + second.result()
    else:
        infos = _LOCAL_FS.get_file_info(paths)
    return [(info.size, info.mtime_ns) if info.is_file else None for info in infos]


def auto_row_group_rows(memory: int | None = None) -> int:
    """Bars per snapshot record batch for a machine with ``memory`` bytes (default: this one's):
    what a refresh can buffer in :data:`MEMORY_SHARE` of it, within
    :data:`MIN_ROW_GROUP_ROWS` … :data:`ROW_GROUP_ROWS`.

    >>> auto_row_group_rows(24 << 30) == ROW_GROUP_ROWS, auto_row_group_rows(8 << 30)
    (True, 8947848)
    """
    if memory is None:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not a POSIX system
            return MIN_ROW_GROUP_ROWS
    rows = int(memory * MEMORY_SHARE) // REFRESH_BYTES_PER_ROW
    return max(MIN_ROW_GROUP_ROWS, min(ROW_GROUP_ROWS, rows))


def identity(path: str | os.PathLike[str]) -> Identity | None:
    """The identity of the regular file at ``path`` (the snapshot), or None."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Manifest:
    """What a snapshot file holds: symbols in order, their rows and source identities."""

    file: Identity  # the snapshot file this was read from
    symbols: tuple[str, ...]
    offsets: np.ndarray  # int64, len(symbols) + 1: the rows of symbol k are offsets[k:k+2]
    sources: tuple[Identity, ...]
    built_at: str
    index: dict[str, int]

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])


@dataclass(frozen=True)
class SnapshotReport:
    """What :meth:`Snapshots.refresh` did."""

    timeframe: str
    status: str  # "written", "unchanged", "removed", "skipped"
    symbols: int = 0
    rows: int = 0
    reused: int = 0  # symbols copied from the previous snapshot
    reread: int = 0  # symbols read from their partitions
    bytes: int = 0
    seconds: float = 0.0
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Snapshots:
    """The snapshots of one local lake (see the module docstring)."""

    def __init__(
        self,
        bars_dir: Path,
        locks_dir: Path,
        min_symbols: int,
        row_group_rows: int | None = None,
    ) -> None:
        """``row_group_rows``: bars per record batch; None or 0: :func:`auto_row_group_rows`."""
        self._bars = bars_dir
        self._locks = locks_dir
        self.min_symbols = max(1, min_symbols)
        self.row_group_rows = max(1, row_group_rows or auto_row_group_rows())
        self._cache: dict[Path, Manifest] = {}
        self._cache_lock = threading.Lock()
        self._warned: set[tuple[Path, Identity]] = set()

    def path(self, timeframe: Timeframe) -> Path:
        return self._bars / f"timeframe={timeframe.value}" / SNAPSHOT_FILE

    # --- reading ---------------------------------------------------------------------------

    def manifest(self, timeframe: Timeframe) -> Manifest | None:
        """The current snapshot's manifest (cached per file), or None: no usable snapshot."""
        path = self.path(timeframe)
        current = identity(path)
        if current is None:
            return None
        with self._cache_lock:
            cached = self._cache.get(path)
        if cached is not None and cached.file == current:
            return cached
        try:
            found = _read_manifest(path, current)
        except Exception as exc:  # a damaged or foreign file: read the partitions instead
            self._warn(path, current, exc)
            return None
        with self._cache_lock:
            self._cache[path] = found
        return found

    def read(
        self,
        timeframe: Timeframe,
        entries: Entries,
        columns: list[str],
        read_partitions: PartitionReader,
    ) -> pl.DataFrame | None:
        """The bars of ``entries`` (``columns``, sorted by (symbol, date)), the fresh symbols
        taken from the snapshot; None when the snapshot is not worth using (or changed while
        being read twice in a row) — then the caller reads the partitions."""
        if timeframe.is_intraday or len(entries) < self.min_symbols:
            return None
        for _ in range(2):
            manifest = self.manifest(timeframe)
            if manifest is None:
                return None
            plan = _Plan.make(manifest, entries)
            if plan.fresh < self.min_symbols or plan.fresh_rows < MIN_SHARE * manifest.rows:
                return None
            try:
                frame = _assemble(self.path(timeframe), manifest, plan, entries, columns,
                                  read_partitions, timeframe)  # fmt: skip
            except _Unreadable as exc:  # removed meanwhile, or damaged past its footer
                if identity(self.path(timeframe)) == manifest.file:
                    self._warn(self.path(timeframe), manifest.file, exc.__cause__ or exc)
                    return None
                continue  # replaced by a refresh while we read: try the new one
            if identity(self.path(timeframe)) == manifest.file:
                return frame
            # Replaced by a refresh while we read: the rows may not be the manifest's.
        return None

    def _warn(self, path: Path, file: Identity, problem: object) -> None:
        if (path, file) not in self._warned:
            self._warned.add((path, file))
            log.warning("ignoring the lake snapshot %s: %s", path, problem)

    # --- writing ---------------------------------------------------------------------------

    def refresh(
        self,
        timeframe: Timeframe,
        list_entries: Callable[[], Entries],
        read_partitions: PartitionReader,
        scan_partitions: PartitionScanner,
    ) -> SnapshotReport:
        """Bring the snapshot up to date with the stored partitions.

        ``list_entries`` lists every partition of the timeframe with its identity (taken
        before anything here reads it); ``read_partitions`` reads some columns of given
        partitions, ``scan_partitions`` scans all of them lazily. The new file is streamed
        to disk (memory stays bounded by Polars' streaming engine, not by the lake's size),
        then checked against its manifest before it replaces the old one.
        """
        began = time.perf_counter()
        tf = timeframe.value
        path = self.path(timeframe)
        if timeframe.is_intraday:
            return SnapshotReport(tf, "skipped", reason="intraday bars have no snapshot")
        lock = FileLock(self._locks / f"snapshot-{tf}.lock")
        try:
            self._locks.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
        except Timeout:
            raise BackendUnavailableError(
                f"lake snapshot {path} is being rewritten by another process for over "
                f"{LOCK_TIMEOUT_SECONDS:.0f} s — is it stuck?"
            ) from None
        try:
            for attempt in range(1, REFRESH_ATTEMPTS + 1):
                entries = list_entries()
                if len(entries) < self.min_symbols:
                    removed = path.exists()
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    return SnapshotReport(
                        tf, "removed" if removed else "skipped",
                        reason=f"{len(entries)} partition(s), fewer than {self.min_symbols}",
                    )  # fmt: skip
                manifest = self.manifest(timeframe)
                plan = _Plan.make(manifest, entries) if manifest is not None else None
                if manifest is not None and plan is not None:
                    if plan.fresh == len(entries) == len(manifest.symbols):
                        return SnapshotReport(tf, "unchanged", len(entries), manifest.rows,
                                              reused=len(entries),
                                              seconds=time.perf_counter() - began)  # fmt: skip
                else:
                    plan = _Plan.all_partitions(entries)
                written = self._write(path, timeframe, manifest, plan, entries,
                                      read_partitions, scan_partitions)  # fmt: skip
                if written is not None:
                    rows, size = written
                    return SnapshotReport(
                        tf, "written", len(entries), rows, plan.fresh,
                        len(entries) - plan.fresh, size, time.perf_counter() - began,
                    )  # fmt: skip
                log.info("lake snapshot %s: partitions changed while it was written "
                         "(attempt %d), starting again", tf, attempt)  # fmt: skip
            raise BackendUnavailableError(
                f"lake snapshot {path} could not be written: partitions kept changing while "
                f"it was ({REFRESH_ATTEMPTS} attempts) — run `breadthflow data snapshot` "
                "when the writers are done"
            )
        finally:
            lock.release()

    def _write(
        self,
        path: Path,
        timeframe: Timeframe,
        manifest: Manifest | None,
        plan: _Plan,
        entries: Entries,
        read_partitions: PartitionReader,
        scan_partitions: PartitionScanner,
    ) -> tuple[int, int] | None:
        """Stream the planned rows into a new snapshot and put it in place; (rows, bytes),
        or None when a partition changed its row count meanwhile (nothing replaced)."""
        symbols = list(entries)
        paths = [p for p, _ in entries.values()]
        stale = [i for fresh, a, b in plan.runs if not fresh for i in range(a, b)]
        counts: dict[str, int] = {}
        # What the changed partitions hold, read ahead of the copy (in groups, so memory
        # stays small): every symbol's rows, and the check that each partition is one symbol
        # in date order, as the offsets assume.
        for group in range(0, len(stale), COUNT_GROUP):
            chosen = stale[group : group + COUNT_GROUP]
            keys = read_partitions([paths[i] for i in chosen], ["symbol", "date"])
            if not _in_storage_order(keys):
                raise DataError(
                    f"lake snapshot {path} not written: a partition's bars are not in date "
                    "order or hold another symbol's bars — check the files under "
                    f"{path.parent}"
                )
            runs = keys.get_column("symbol").rle()
            found = dict(zip(runs.struct.field("value").to_list(),
                             runs.struct.field("len").to_list(), strict=True))  # fmt: skip
            if not found.keys() <= {symbols[i] for i in chosen}:
                raise DataError(
                    f"lake snapshot {path} not written: a partition holds bars of a symbol "
                    f"other than its own — check the files under {path.parent}"
                )
            counts |= found
        columns = list(bar_schema(timeframe))
        names: list[str] = []
        lengths: list[int] = []
        pieces: list[pl.LazyFrame] = []
        for fresh, first, last in plan.runs:
            if fresh:
                assert manifest is not None
                pieces.append(_read_rows(path, columns, first, last - first).lazy())
                # Rows first … last are whole symbols k … of the old manifest.
                offsets = manifest.offsets
                for k in range(int(np.searchsorted(offsets, first)),
                               int(np.searchsorted(offsets, last))):  # fmt: skip
                    names.append(manifest.symbols[k])
                    lengths.append(int(manifest.offsets[k + 1] - manifest.offsets[k]))
            else:
                group = [i for i in range(first, last) if counts.get(symbols[i])]
                if group:
                    pieces.append(scan_partitions([paths[i] for i in group]))
                    names += [symbols[i] for i in group]
                    lengths += [counts[symbols[i]] for i in group]
        if not pieces:
            return 0, 0
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        document = {
            "version": FORMAT_VERSION,
            "timeframe": timeframe.value,
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "symbols": names,
            "offsets": offsets.tolist(),
            "sources": [list(entries[name][1]) for name in names],
        }
        folder = path.parent
        remove_stale_tmp(folder)
        tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}{SNAPSHOT_FILE}"
        try:
            try:
                _write_batches(
                    pl.concat(pieces, how="vertical").select(columns), tmp,
                    self.row_group_rows, json.dumps(document, separators=(",", ":")),
                )  # fmt: skip
            except pl.exceptions.PolarsError as exc:  # an unreadable partition, most likely
                raise DataError(f"lake snapshot {path} not written: {short_reason(exc)}") from exc
            # A partition rewritten between the count and the copy may have changed its
            # number of rows, which would shift every later symbol: check before use.
            written = _read_rows(tmp, ["symbol"], 0, None).get_column("symbol").rle()
            if (written.struct.field("value").to_list() != names
                    or written.struct.field("len").to_list() != lengths):  # fmt: skip
                tmp.unlink()
                return None
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # on disk before the rename, like a partition
            finally:
                os.close(fd)
            size = tmp.stat().st_size
            os.replace(tmp, path)
            for legacy in LEGACY_FILES:  # an earlier version's snapshot, now unused
                with contextlib.suppress(FileNotFoundError):
                    (folder / legacy).unlink()
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return int(offsets[-1]), size

    def status(self, timeframe: Timeframe, entries: Entries) -> dict[str, object]:
        """How the snapshot stands against the stored partitions (``data snapshot --status``)."""
        manifest = self.manifest(timeframe)
        if manifest is None:
            return {"timeframe": timeframe.value, "exists": self.path(timeframe).exists(),
                    "usable": False}  # fmt: skip
        plan = _Plan.make(manifest, entries)
        return {
            "timeframe": timeframe.value,
            "exists": True,
            "usable": True,
            "built_at": manifest.built_at,
            "symbols": len(manifest.symbols),
            "rows": manifest.rows,
            "fresh": plan.fresh,
            "stale": len(entries) - plan.fresh,
            "bytes": manifest.file[1],
        }


@dataclass(frozen=True)
class _Plan:
    """Where each wanted symbol comes from, in symbol order: runs of consecutive snapshot
    rows, and runs of symbols read from their partitions."""

    runs: list[tuple[bool, int, int]]  # (from snapshot, first, last) — rows or entry indices
    fresh: int  # symbols from the snapshot
    fresh_rows: int

    @staticmethod
    def make(manifest: Manifest, entries: Entries) -> _Plan:
        if (len(entries) == len(manifest.symbols)
                and [k for _, k in entries.values()] == list(manifest.sources)
                and list(entries) == list(manifest.symbols)):  # fmt: skip
            # Every partition unchanged since the refresh: the whole file, in one run.
            return _Plan([(True, 0, manifest.rows)], len(entries), manifest.rows)
        runs: list[tuple[bool, int, int]] = []
        fresh = fresh_rows = 0
        index, sources, offsets = manifest.index, manifest.sources, manifest.offsets
        for position, (symbol, (_, source)) in enumerate(entries.items()):
            k = index.get(symbol)
            if k is not None and sources[k] == source:
                first, last = int(offsets[k]), int(offsets[k + 1])
                fresh += 1
                fresh_rows += last - first
                if runs and runs[-1][0] and runs[-1][2] == first:
                    runs[-1] = (True, runs[-1][1], last)
                else:
                    runs.append((True, first, last))
            elif runs and not runs[-1][0]:
                runs[-1] = (False, runs[-1][1], position + 1)
            else:
                runs.append((False, position, position + 1))
        return _Plan(runs, fresh, fresh_rows)

    @staticmethod
    def all_partitions(entries: Entries) -> _Plan:
        return _Plan([(False, 0, len(entries))] if entries else [], 0, 0)


def _assemble(
    path: Path,
    manifest: Manifest | None,
    plan: _Plan,
    entries: Entries,
    columns: list[str],
    read_partitions: PartitionReader,
    timeframe: Timeframe,
) -> pl.DataFrame:
    """The planned rows in symbol order: snapshot slices and partition reads interleaved."""
    paths = [p for p, _ in entries.values()]
    stale = [i for fresh, a, b in plan.runs if not fresh for i in range(a, b)]
    snapshot = None
    base = 0  # the snapshot's row number of the first row read
    if plan.fresh:
        assert manifest is not None
        # Only the rows from the first to the last wanted symbol: the reader skips the row
        # groups outside (a universe scanned in chunks reads each part once).
        spans = [(first, last) for fresh, first, last in plan.runs if fresh]
        base, end = spans[0][0], spans[-1][1]
        try:
            snapshot = _read_rows(path, columns, base, end - base)
        except (OSError, pa.ArrowException, pl.exceptions.PolarsError) as exc:
            raise _Unreadable(str(exc)) from exc
        if snapshot.height != end - base:
            raise _Unreadable(f"{snapshot.height} rows where its manifest says {end - base}")
    parts = read_partitions([paths[i] for i in stale], columns) if stale else None
    part_rows: dict[str, tuple[int, int]] = {}
    if parts is not None and parts.height:
        runs = parts.get_column("symbol").rle()
        at = 0
        for name, length in zip(runs.struct.field("value").to_list(),
                                runs.struct.field("len").to_list(), strict=True):  # fmt: skip
            part_rows[name] = (at, length)
            at += length
    symbols = list(entries)
    pieces: list[pl.DataFrame] = []
    for fresh, first, last in plan.runs:
        if fresh:
            assert snapshot is not None
            pieces.append(snapshot.slice(first - base, last - first))
            continue
        for i in range(first, last):
            found = part_rows.get(symbols[i])
            if found is not None:
                assert parts is not None
                pieces.append(parts.slice(*found))
    if not pieces:
        schema = bar_schema(timeframe)
        return pl.DataFrame(schema={c: schema[c] for c in columns})
    return pl.concat(pieces, how="vertical", rechunk=False) if len(pieces) > 1 else pieces[0]


def _open(path: Path) -> ipc.RecordBatchFileReader:
    """The snapshot file, memory-mapped: what is read from it are views of the mapping,
    which stays alive (also after the file is replaced) while any of them is."""
    return ipc.open_file(pa.memory_map(str(path), "r"))


def _read_rows(path: Path, columns: list[str], first: int, count: int | None) -> pl.DataFrame:
    """Rows ``first … first + count`` (None: to the end) of the snapshot file: views of the
    mapped file, no copy (a chunk per record batch)."""
    table = _open(path).read_all().select(columns).slice(first, count)
    return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]


def _write_batches(frame: pl.LazyFrame, path: Path, batch_rows: int, manifest: str) -> None:
    """Stream ``frame`` into an uncompressed Arrow IPC file at ``path`` in record batches of
    ``batch_rows`` (the last one shorter), the manifest in its schema metadata. Memory holds
    about one batch."""
    writer: ipc.RecordBatchFileWriter | None = None
    held: list[pl.DataFrame] = []
    count = 0

    def write(rows: int) -> None:
        nonlocal writer, held, count
        whole = pl.concat(held, how="vertical", rechunk=True) if len(held) > 1 else held[0]
        table = whole.head(rows).rechunk().to_arrow(compat_level=ARROW_LEVEL)
        if writer is None:
            schema = table.schema.with_metadata({MANIFEST_KEY: manifest})
            writer = ipc.new_file(str(path), schema)
        writer.write_table(table, max_chunksize=max(rows, 1))
        rest = whole.slice(rows)
        held, count = ([rest] if rest.height else []), rest.height

    try:
        for piece in frame.collect_batches(maintain_order=True):
            if piece.height:
                held.append(piece)
                count += piece.height
            while count >= batch_rows:
                write(batch_rows)
        if count or writer is None:
            if not held:
                held = [frame.clear().collect()]
            write(count)
    finally:
        if writer is not None:
            writer.close()


class _Unreadable(Exception):
    """The snapshot file could not be read (its partitions still can)."""


def _read_manifest(path: Path, file: Identity) -> Manifest:
    reader = _open(path)
    raw = (reader.schema.metadata or {}).get(MANIFEST_KEY.encode())
    if raw is None:
        raise ValueError("no manifest in its schema")
    data = json.loads(raw)
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"manifest version {data.get('version')!r}, expected {FORMAT_VERSION}")
    symbols = tuple(str(s) for s in data["symbols"])
    offsets = np.asarray(data["offsets"], dtype=np.int64)
    sources = tuple((int(size), int(mtime)) for size, mtime in data["sources"])
    if not (len(offsets) == len(symbols) + 1 == len(sources) + 1):
        raise ValueError("manifest lists differ in length")
    if offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] != reader.count_rows():
        raise ValueError("manifest offsets do not match the file's rows")
    if any(a >= b for a, b in itertools.pairwise(symbols)):
        raise ValueError("manifest symbols are not in order")
    return Manifest(file, symbols, offsets, sources, str(data.get("built_at", "")),
                    {s: k for k, s in enumerate(symbols)})  # fmt: skip


def _in_storage_order(keys: pl.DataFrame) -> bool:
    """Whether ``symbol, date`` rows are sorted by symbol, then strictly by date."""
    if keys.height <= 1:
        return True
    symbol, date = keys.get_column("symbol"), keys.get_column("date")
    if not symbol.is_sorted():
        return False
    same = symbol.slice(1) == symbol.slice(0, keys.height - 1)
    ahead = date.slice(1) > date.slice(0, keys.height - 1)
    return bool((~same | ahead).all())
