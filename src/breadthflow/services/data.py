"""Data services: fetch bars into the lake, summarise what is stored, export, universes.

One implementation for every interface: the CLI, the API and the pipelines call these.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from breadthflow.core.errors import (
    BreadthFlowError,
    InvalidInputError,
    NotFoundError,
    unknown_name,
)
from breadthflow.core.logging import get_logger, run_context
from breadthflow.core.models import (
    EXPORT_COLUMNS,
    DateRange,
    FetchReport,
    SymbolFailure,
    Timeframe,
    bar_schema,
    normalize_symbol,
    parse_symbols,
)
from breadthflow.data import universes
from breadthflow.data.providers import Provider, ProviderBars, get_provider
from breadthflow.data.quality import validate_bars
from breadthflow.services.context import AppContext
from breadthflow.store.ingestions import IngestionRepository
from breadthflow.store.universes import UniverseRepository

log = get_logger(__name__)

# Symbols validated and written to the lake together; bounds memory and makes progress
# (and a kill) land on partition boundaries every few hundred symbols.
WRITE_BATCH = 250

Progress = Callable[[int, int, str], None]


# --- symbols and universes ---------------------------------------------------------------


def resolve_symbols(
    ctx: AppContext, symbols: str | Sequence[str] | None = None, universe: str | None = None
) -> list[str]:
    """Exactly one of ``symbols`` (comma-separated or a list) or ``universe``."""
    if bool(symbols) == bool(universe):
        raise InvalidInputError("give either --symbols A,B,… or --universe NAME (exactly one)")
    if symbols:
        return parse_symbols(symbols if isinstance(symbols, str) else list(symbols))
    assert universe is not None
    if universes.is_builtin(universe.strip()):
        return universes.resolve_universe(universe)
    repo = UniverseRepository(ctx.db)
    return universes.resolve_universe(
        universe, lookup=repo.get, user_names=[u.name for u in repo.list()]
    )


def shown_symbols(symbols: Sequence[str], limit: int = 5) -> str:
    """The first few symbols for a message: ``"A, B, C, D, E and 12 more"``."""
    more = f" and {len(symbols) - limit} more" if len(symbols) > limit else ""
    return ", ".join(symbols[:limit]) + more


def list_universes(ctx: AppContext) -> list[dict[str, Any]]:
    rows = [
        {"name": u.name, "kind": u.kind, "symbols": u.size, "description": u.description}
        for u in universes.builtin_infos()
    ]
    for u in UniverseRepository(ctx.db).list():
        rows.append(
            {"name": u.name, "kind": "user", "symbols": u.size, "description": u.description}
        )
    return rows


def create_universe(
    ctx: AppContext,
    name: str,
    symbols: str | Sequence[str],
    description: str = "",
    replace: bool = False,
) -> list[str]:
    """Store a user universe. Symbols are validated; duplicates are rejected, not merged."""
    if universes.is_builtin(name):
        raise InvalidInputError(f"'{name}' is a built-in universe — choose another name")
    items = [symbols] if isinstance(symbols, str) else list(symbols)
    parts = [part for item in items for part in re.split(r"[,\s]+", item) if part]
    if not parts:
        raise InvalidInputError("no symbols given — expected e.g. --symbols AAPL,MSFT")
    checked = [normalize_symbol(part) for part in parts]
    UniverseRepository(ctx.db).create(name, checked, description=description, replace=replace)
    return checked


def delete_universe(ctx: AppContext, name: str) -> None:
    if universes.is_builtin(name):
        raise InvalidInputError(f"'{name}' is a built-in universe and cannot be deleted")
    if not UniverseRepository(ctx.db).delete(name):
        raise NotFoundError(f"no user universe named '{name}'")


# --- fetch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchRequest:
    provider: str
    start: str | dt.date
    end: str | dt.date
    symbols: str | Sequence[str] | None = None
    universe: str | None = None
    timeframe: str | Timeframe = Timeframe.D1
    options: Mapping[str, str] | None = None


def fetch_bars(
    ctx: AppContext, request: FetchRequest, progress: Progress | None = None
) -> FetchReport:
    """Fetch bars from a provider, validate them and upsert them into the lake.

    Everything is checked before anything is written (provider, timeframe, dates,
    symbols, lake writable). One symbol failing is recorded and the batch goes on; the
    report says what was stored, what failed and which problems were fixed. The
    ingestion is recorded in the DB (a killed fetch leaves a visible 'running' row,
    and every partition already written is complete).
    """
    timeframe = Timeframe.parse(request.timeframe)
    provider = get_provider(request.provider, ctx.settings, request.options)
    provider.check_timeframe(timeframe)
    period = DateRange.parse(request.start, request.end)
    symbols = resolve_symbols(ctx, request.symbols, request.universe)
    _check_known(provider, symbols)
    ctx.lake.check()

    ingestions = IngestionRepository(ctx.db)
    ingestion_id = ingestions.start(
        provider.name, timeframe.value, period.start, period.end, len(symbols)
    )
    report = FetchReport(
        ingestion_id=ingestion_id,
        provider=provider.name,
        timeframe=timeframe,
        start=period.start,
        end=period.end,
        symbols_requested=len(symbols),
    )
    began = time.perf_counter()
    try:
        with run_context(f"ingest-{ingestion_id}"):
            log.info(
                "fetch started: provider=%s symbols=%d timeframe=%s range=%s..%s",
                provider.name, len(symbols), timeframe.value, period.start, period.end,
            )  # fmt: skip
            _fetch_into_lake(ctx, provider, symbols, timeframe, period, report, progress)
            if report.rows_inserted or report.rows_updated:
                refresh_snapshot(ctx, timeframe)
            report.issues.extend(provider.dataset_issues(timeframe, period.start, period.end))
            report.seconds = time.perf_counter() - began
            ingestions.finish(ingestion_id, report)
            log.info(
                "fetch finished: stored=%d failed=%d inserted=%d updated=%d unchanged=%d "
                "issues=%d in %.2fs",
                report.symbols_stored, len(report.failures), report.rows_inserted,
                report.rows_updated, report.rows_unchanged, len(report.issues), report.seconds,
            )  # fmt: skip
    except BaseException as exc:
        # Lake unwritable mid-way, Ctrl-C, SIGTERM: the partitions written so far are
        # complete; record why the ingestion stopped, then let the error through.
        reason = str(exc) if isinstance(exc, BreadthFlowError) else f"{type(exc).__name__}: {exc}"
        try:
            ingestions.fail(ingestion_id, reason or type(exc).__name__)
        except Exception:  # the DB itself may be what failed
            log.debug("could not mark ingestion %s failed", ingestion_id, exc_info=True)
        raise
    return report


def _check_known(provider: Provider, symbols: list[str]) -> None:
    known = provider.known_symbols()
    if known is None:
        return
    known_set = set(known)
    unknown = [s for s in symbols if s not in known_set]
    if unknown:
        raise NotFoundError(
            f"unknown symbol{'s' if len(unknown) > 1 else ''} for provider "
            f"'{provider.name}': {shown_symbols(unknown)} — `breadthflow data universes` "
            "lists known lists"
        )


def _fetch_one(
    provider: Provider, symbol: str, timeframe: Timeframe, period: DateRange
) -> tuple[str, ProviderBars | None, str | None]:
    try:
        return symbol, provider.fetch(symbol, timeframe, period.start, period.end), None
    except BreadthFlowError as exc:
        return symbol, None, str(exc)
    except Exception as exc:  # a provider bug must not stop the batch; keep it visible
        log.debug("fetch of %s raised", symbol, exc_info=True)
        return symbol, None, f"{type(exc).__name__}: {exc}"


def _fetched(
    provider: Provider, symbols: list[str], timeframe: Timeframe, period: DateRange, workers: int
) -> Iterator[tuple[str, ProviderBars | None, str | None]]:
    if provider.io_bound and workers > 1 and len(symbols) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            yield from pool.map(lambda s: _fetch_one(provider, s, timeframe, period), symbols)
    else:
        for symbol in symbols:
            yield _fetch_one(provider, symbol, timeframe, period)


def _fetch_into_lake(
    ctx: AppContext,
    provider: Provider,
    symbols: list[str],
    timeframe: Timeframe,
    period: DateRange,
    report: FetchReport,
    progress: Progress | None,
) -> None:
    schema = bar_schema(timeframe)
    pending: list[pl.DataFrame] = []
    pending_symbols: list[str] = []

    def flush() -> None:
        """Validate a batch of symbols in one pass, then upsert it."""
        if not pending:
            return
        clean, problems = validate_bars(
            pl.concat(pending, how="vertical"), timeframe, provider.name
        )
        report.issues.extend(problems)
        kept = set(clean["symbol"].unique().to_list())
        for symbol in pending_symbols:
            if symbol not in kept:
                report.failures.append(
                    SymbolFailure(
                        symbol=symbol,
                        error=f"no usable bars between {period.start} and {period.end}",
                    )
                )
        if clean.height:
            first, last = clean["date"].min(), clean["date"].max()
            first_d = first.date() if isinstance(first, dt.datetime) else first
            last_d = last.date() if isinstance(last, dt.datetime) else last
            report.first_date = min(filter(None, [report.first_date, first_d]))
            report.last_date = max(filter(None, [report.last_date, last_d]))
            report.rows_received += clean.height
            stamped = clean.with_columns(
                pl.lit(provider.name).alias("source"),
                pl.lit(dt.datetime.now(dt.UTC), dtype=schema["ingested_at"]).alias("ingested_at"),
            ).select([pl.col(c).cast(t) for c, t in schema.items()])
            result = ctx.lake.upsert(stamped, timeframe)
            report.rows_inserted += result.inserted
            report.rows_updated += result.updated
            report.rows_unchanged += result.unchanged
            report.symbols_stored += len(kept)
        pending.clear()
        pending_symbols.clear()

    fetched = _fetched(provider, symbols, timeframe, period, ctx.settings.fetch_workers)
    for done, (symbol, bars, error) in enumerate(fetched, start=1):
        if error is not None or bars is None:
            report.failures.append(SymbolFailure(symbol=symbol, error=error or "no data"))
            log.warning("fetch failed for %s: %s", symbol, error)
        elif bars.frame.height == 0:
            report.issues.extend(bars.issues)
            report.failures.append(
                SymbolFailure(
                    symbol=symbol, error=f"no bars between {period.start} and {period.end}"
                )
            )
        else:
            report.issues.extend(bars.issues)
            pending.append(bars.frame)
            pending_symbols.append(symbol)
            log.debug("fetched %s: %d bars", symbol, bars.frame.height)
        if len(pending_symbols) >= WRITE_BATCH:
            flush()
        if progress is not None:
            progress(done, len(symbols), symbol)
    flush()


def fetch_symbol(
    ctx: AppContext,
    provider: Provider,
    symbol: str,
    start: dt.date,
    end: dt.date,
    timeframe: Timeframe = Timeframe.D1,
) -> dict[str, Any]:
    """Fetch, validate and upsert one symbol's bars (no ingestion record: pipelines record
    their own steps). Returns the counts; a provider failure raises its own error."""
    bars = provider.fetch(symbol, timeframe, start, end)
    if bars.frame.height == 0:
        return {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0}
    clean, _ = validate_bars(bars.frame, timeframe, provider.name)
    schema = bar_schema(timeframe)
    stamped = clean.with_columns(
        pl.lit(provider.name).alias("source"),
        pl.lit(dt.datetime.now(dt.UTC), dtype=schema["ingested_at"]).alias("ingested_at"),
    ).select([pl.col(c).cast(t) for c, t in schema.items()])
    result = ctx.lake.upsert(stamped, timeframe)
    return {
        "received": clean.height,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
    }


# --- the lake's read snapshot --------------------------------------------------------------


def refresh_snapshot(
    ctx: AppContext, timeframe: str | Timeframe = Timeframe.D1, *, strict: bool = False
) -> dict[str, Any] | None:
    """Bring the lake's read snapshot of ``timeframe`` up to date after bars were written
    (docs/data.md, "Read snapshot"); None when the lake keeps none.

    Reads are right whether or not the snapshot is fresh (stale symbols come from their
    partitions), so after a fetch a failure here is logged, not raised, unless ``strict``.
    """
    tf = Timeframe.parse(timeframe)
    try:
        report = ctx.lake.refresh_snapshot(tf)
    except BreadthFlowError as exc:
        if strict:
            raise
        log.warning("lake snapshot %s not refreshed: %s", tf.value, exc)
        return None
    if report is None:
        return None
    found = report.as_dict()
    log.info(
        "lake snapshot %s %s: %d symbols, %d rows (%d reused, %d re-read) in %.2fs",
        tf.value, found["status"], found["symbols"], found["rows"], found["reused"],
        found["reread"], found["seconds"],
    )  # fmt: skip
    return found


def snapshot_status(ctx: AppContext, timeframe: str | Timeframe = Timeframe.D1) -> dict[str, Any]:
    """The read snapshot of ``timeframe`` against the stored partitions."""
    tf = Timeframe.parse(timeframe)
    status = ctx.lake.snapshot_status(tf)
    if status is None:
        return {"timeframe": tf.value, "exists": False, "usable": False,
                "reason": "this lake keeps no read snapshot for this timeframe"}  # fmt: skip
    return status


# --- summary and export ------------------------------------------------------------------


def data_summary(ctx: AppContext) -> dict[str, Any]:
    """What is stored, per timeframe, and the most recent fetches with their problems."""
    lake = ctx.lake
    timeframes = []
    for timeframe in lake.timeframes():
        cov = lake.coverage(timeframe)
        if cov.height == 0:
            continue
        snapshot = lake.snapshot_status(timeframe)
        timeframes.append(
            {
                "timeframe": timeframe.value,
                "symbols": cov.height,
                "rows": int(cov["rows"].sum()),
                "first_date": _iso(cov["first_date"].min()),
                "last_date": _iso(cov["last_date"].max()),
                # The read snapshot (docs/data.md): how many symbols it serves as stored.
                "snapshot": None
                if snapshot is None or not snapshot.get("usable")
                else {k: snapshot[k] for k in ("symbols", "fresh", "stale", "built_at")},
            }
        )
    repo = IngestionRepository(ctx.db)
    recent = repo.recent(limit=5)
    return {
        "lake": ctx.settings.resolved_lake_url,
        "timeframes": timeframes,
        "recent_fetches": [_plain(r) for r in recent],
    }


def fetch_issues(
    ctx: AppContext, ingestion_id: int | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """Problems recorded by a fetch (the latest when no id is given)."""
    repo = IngestionRepository(ctx.db)
    if ingestion_id is None:
        recent = repo.recent(limit=1)
        if not recent:
            raise NotFoundError("no fetch recorded yet — run `breadthflow data fetch` first")
        ingestion_id = recent[0].id
    if kind is not None:
        from breadthflow.core.models import IssueKind

        try:
            IssueKind(kind)
        except ValueError:
            raise unknown_name("issue kind", kind, [k.value for k in IssueKind]) from None
    return [_plain(issue) for issue in repo.issues(ingestion_id, kind=kind)]


def coverage(ctx: AppContext, timeframe: str | Timeframe = Timeframe.D1) -> pl.DataFrame:
    return ctx.lake.coverage(Timeframe.parse(timeframe))


EXPORT_FORMATS = (".csv", ".parquet")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    symbols: int


def check_output_path(output: str | Path) -> Path:
    """An output file path ending in .csv or .parquet whose folder exists."""
    path = Path(output)
    if path.suffix.lower() not in EXPORT_FORMATS:
        raise InvalidInputError(
            f"cannot export to '{path.name}' — expected a file ending in .csv or .parquet"
        )
    if not path.parent.exists():
        raise InvalidInputError(f"folder {path.parent} does not exist")
    return path


def write_frame_atomically(frame: pl.DataFrame, path: Path) -> None:
    """Write CSV or Parquet (by suffix) so the file appears complete or not at all."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if path.suffix.lower() == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_bars(
    ctx: AppContext,
    output: str | Path,
    start: str | dt.date,
    end: str | dt.date,
    symbols: str | Sequence[str] | None = None,
    universe: str | None = None,
    timeframe: str | Timeframe = Timeframe.D1,
) -> ExportResult:
    """Write stored bars (``symbol,date,open,high,low,close,volume``) to CSV or Parquet.

    The file appears complete or not at all (written aside, then renamed).
    """
    path = check_output_path(output)
    tf = Timeframe.parse(timeframe)
    period = DateRange.parse(start, end)
    wanted = resolve_symbols(ctx, symbols, universe)
    frame = ctx.lake.read(wanted, tf, period.start, period.end, columns=list(EXPORT_COLUMNS))
    if frame.height == 0:
        raise NotFoundError(
            f"no {tf.value} bars stored for those symbols between {period.start} and "
            f"{period.end} — fetch them first with `breadthflow data fetch`"
        )
    frame = frame.select(EXPORT_COLUMNS)
    write_frame_atomically(frame, path)
    return ExportResult(path=path, rows=frame.height, symbols=frame["symbol"].n_unique())


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _plain(record: Any) -> dict[str, Any]:
    data = record.model_dump() if hasattr(record, "model_dump") else dict(vars(record))
    return {k: _iso(v) if isinstance(v, dt.date | dt.datetime) else v for k, v in data.items()}
