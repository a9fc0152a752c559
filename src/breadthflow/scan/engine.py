"""Run a scan formula over a batch of symbols: chunked, isolated per symbol, timed, reported.

:class:`ProcessingEngine` is domain code: it never opens the lake or the database. The
caller hands it a *bar loader* (``load_bars(symbols, start, end) -> long bars``) and, for
formulas that use market breadth, a *breadth loader* (``load_breadth(start, end)``).
:meth:`ProcessingEngine.process_batch` turns a :class:`ProcessingJob` into one
:class:`ProcessingResult` per symbol, in the job's symbol order, always: a symbol that fails
records its error and the batch goes on. Only mistakes in the job itself raise — a formula
that does not compile (:class:`~breadthflow.scan.formula.FormulaError`), invalid parameters,
a breadth formula without a breadth loader (:class:`~breadthflow.core.errors.InvalidInputError`).

**Columnar execution.** :meth:`ProcessingEngine.process_batch_frame` is the engine proper
and :meth:`~ProcessingEngine.process_batch` a view of it. A chunk of symbols is loaded with
one loader call, checked in one pass over its bars (:func:`check_bars`: the symbols' bars
are contiguous segments of the frame sorted by ``(symbol, date)``; per-segment counts come
from one compiled loop, not from Python per symbol), and evaluated once over the whole
chunk (:meth:`Formula.matches <breadthflow.scan.formula.Formula.matches>`: per-symbol
windows in one pass that restarts at each symbol). What comes out is a Polars frame of the
matches (``symbol, date`` and the formula's values) plus a ``{symbol: error}`` map — a
:class:`BatchOutcome`. ``process_batch`` turns that into one ``ProcessingResult`` per
symbol (one ``to_dicts`` over the match frame, split by the symbols' run lengths); scan
services use the frame directly. A symbol's values never depend on the other symbols
scanned with it (cross-sections aside), so chunking, modes and isolation give identical
numbers.

**Warm-up.** Bars are loaded from ``start - warmup_days(formula.warmup_bars)`` so the
formula's windows are full on the first day of the range: a match on the first day of a
short scan is the same match, with the same values, as that date in a longer scan. Matches
are reported only inside the job's (inclusive) date range.

**Bad data.** Before evaluating, each symbol's bars are checked (:func:`check_bars`). A
symbol with no bar inside the range gets ``"no 1d bars between <start> and <end>"``; one
with a missing, non-finite or non-positive price, a missing/non-finite/negative volume,
``high < low`` or two bars on one date gets an error naming the first bad date and is left
out of the evaluation (so it does not take part in a cross-section either). The loader
needs to return only ``symbol``, ``date`` and the fields the formula reads
(:attr:`Formula.fields <breadthflow.scan.formula.Formula.fields>`); the checks cover the
bar columns it returns.

**Modes** (``parameters["mode"]``):

- ``"vectorized"`` (default): symbols are taken in chunks of ``chunk_size`` (engine default
  10,000, or ``parameters["chunk_size"]``); each chunk is loaded with one loader call and
  evaluated with one Polars evaluation, so memory is bounded by a chunk. If evaluating a
  chunk raises, its symbols are evaluated one by one, which isolates the culprit.
- ``"per_symbol"``: one load and one evaluation per symbol — for isolation and debugging,
  and the only mode with a per-symbol timeout. Cross-sectional formulas are refused.
- ``"processes"``: chunks are loaded in this process (so any loader works, closures and
  open connections included) and evaluated in a :class:`~concurrent.futures.ProcessPoolExecutor`
  of ``workers`` processes started with ``spawn`` (forking a process that runs Polars
  threads can deadlock). Each chunk's bars are pickled to the worker, which compiles the
  formula text itself; at most ``workers + 1`` chunks are in flight. Polars already uses
  every core inside one evaluation, so this mode pays off mostly for many chunks whose
  loading overlaps the evaluation, or to keep a crashing evaluation out of this process
  (a dead worker turns into errors for its chunk's symbols). Workers import
  ``breadthflow``, so the entry script must be importable (``if __name__ == "__main__"``).

**Cross-sectional formulas** (ranks, percentiles across symbols) must see every symbol of a
date together, so chunking would change their answer. They are evaluated in one piece over
the whole job: the bars are still *loaded* in ``chunk_size`` pieces (bounded loader calls),
then concatenated and evaluated once, in every mode except ``per_symbol``. Memory then
grows with the universe, so jobs above :data:`MAX_CROSS_SECTION` symbols are refused with a
message suggesting a smaller universe. If that single evaluation raises, each symbol is
evaluated alone to find the ones that fail; they get their error and the others are
evaluated together again.

**Timeouts** (seconds):

- ``symbol_timeout`` (``per_symbol`` mode only; other modes refuse it): each symbol's load
  and evaluation run in a daemon worker thread awaited with ``future.result(timeout)``; a
  symbol over the limit gets ``"timed out after <X>s"`` and the batch goes on. A thread
  cannot be killed: the timed-out computation keeps running in the background until it
  finishes, and its result is dropped (so the loader must be thread-safe). The compiled
  kernels are loaded (once per process) before the first symbol's clock starts.
- ``batch_timeout`` (every mode): once the batch has run that long, every symbol not yet
  done — including those of the chunk or symbol in progress — gets
  ``"batch timed out after <X>s"``; results are still returned for every symbol. In-thread
  work finishes in the background as above; in ``processes`` mode the worker processes are
  terminated.

**Selection**: ``latest=True`` keeps only each symbol's last match in the range;
``limit=N`` keeps at most ``N`` matches over the whole batch, the newest ones (ties on a
date go to the symbol that comes first in the job). Results stay one per symbol in job
order and each symbol's matches stay in date order; ``latest`` is applied before ``limit``.

**Progress**: ``progress_callback(completed, total)`` is called after each symbol
(``per_symbol``) or after each chunk (other modes), with ``completed`` counting symbols
exactly; the last call is ``(total, total)``. It runs in the thread that runs the batch —
for :meth:`~ProcessingEngine.process_batch_async`, a worker thread, so an asyncio caller
should hand it to the loop with ``loop.call_soon_threadsafe``.

**Timing**: ``processing_time_ms`` is a symbol's own load + evaluation time in ``per_symbol``
mode; in the chunked modes it is the symbol's equal share of its chunk's time, so summing
it over a batch gives the time spent scanning.

**Logging** (logger ``breadthflow.scan``): info when a job starts (id, symbols, range,
formula, mode) and when it ends — the summary line ``processed=… errors=… matches=…
symbols_matched=… total_time_ms=… wall_time_ms=…``; a warning per symbol error; debug per
symbol.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import math
import multiprocessing
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl

from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.core.models import Timeframe
from breadthflow.scan._rolling import POS, Segments, load_kernels, segments
from breadthflow.scan.formula import FIELDS, Formula, compile_formula

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CROSS_SECTION",
    "MODES",
    "PARAMETERS",
    "BarLoader",
    "BatchOutcome",
    "BreadthLoader",
    "ProcessingEngine",
    "ProcessingJob",
    "ProcessingResult",
    "check_bars",
    "warmup_days",
]

LOGGER_NAME = "breadthflow.scan"
DEFAULT_CHUNK_SIZE = 10_000
# Errors logged one warning each; past this, one line says so and the rest go to debug (a
# universe scanned before its bars are fetched would otherwise flood a server's log).
MAX_ERROR_WARNINGS = 20
# A cross-sectional formula is evaluated over the whole job at once; above this many symbols
# that is refused rather than risking memory (≈ 30 kB per symbol and year of daily bars).
MAX_CROSS_SECTION = 50_000
MODES = ("vectorized", "per_symbol", "processes")
Mode = Literal["vectorized", "per_symbol", "processes"]
PARAMETERS = ("latest", "limit", "symbol_timeout", "batch_timeout", "chunk_size", "mode")
BAR_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
_PRICES = ("open", "high", "low", "close")
_EPOCH = dt.date(1970, 1, 1)
# Calendar days per trading day, holidays included (365.25 / 252 ≈ 1.45, a bit above 7/5).
_CALENDAR_PER_TRADING_DAY = 365.25 / 252
_WARMUP_SLACK_DAYS = 10

BarLoader = Callable[[Sequence[str], dt.date, dt.date], pl.DataFrame]
BreadthLoader = Callable[[dt.date, dt.date], pl.DataFrame] | None
ProgressCallback = Callable[[int, int], None]
#: ``(formula, bars, breadth) -> formula.evaluate(bars, breadth)`` on another compute engine.
Evaluator = Callable[["Formula", pl.DataFrame, pl.DataFrame | None], pl.DataFrame]
_T = TypeVar("_T")


@dataclass(frozen=True)
class ProcessingJob:
    """One scan: ``formula`` over ``symbols``, matches reported inside ``date_range``.

    ``date_range`` is inclusive. ``parameters`` may hold ``latest`` (bool), ``limit`` (int),
    ``symbol_timeout`` and ``batch_timeout`` (seconds), ``chunk_size`` (int) and ``mode``
    (one of :data:`MODES`); any other key is refused. The job is checked when it is built.
    """

    id: str
    symbols: tuple[str, ...]
    timeframe: str
    date_range: tuple[dt.date, dt.date]
    formula: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        symbols = tuple(self.symbols)
        for symbol in symbols:
            if not isinstance(symbol, str) or not symbol.strip():
                raise InvalidInputError(f"scan {self.id}: invalid symbol {symbol!r}")
        repeated = sorted(s for s, n in Counter(symbols).items() if n > 1)
        if repeated:
            raise InvalidInputError(
                f"scan {self.id}: symbols listed more than once: {', '.join(repeated)}"
            )
        timeframe = Timeframe.parse(self.timeframe)
        if timeframe is not Timeframe.D1:
            raise InvalidInputError(
                f"scan {self.id}: scans run on daily bars (timeframe '1d'), not '{timeframe.value}'"
            )
        if len(self.date_range) != 2:
            raise InvalidInputError(f"scan {self.id}: date_range must be (start, end)")
        start, end = (_as_date(day) for day in self.date_range)
        if start > end:
            raise InvalidInputError(f"scan {self.id}: start {start} is after end {end}")
        _Options.parse(self.parameters)
        object.__setattr__(self, "symbols", symbols)
        object.__setattr__(self, "timeframe", timeframe.value)
        object.__setattr__(self, "date_range", (start, end))
        object.__setattr__(self, "parameters", dict(self.parameters))


@dataclass(frozen=True)
class ProcessingResult:
    """One symbol's outcome: its matches (date order), or the error that stopped it."""

    symbol: str
    matches: list[dict[str, Any]]  # [{"date": dt.date, <value name>: float | None, ...}]
    error: str | None
    processing_time_ms: float


@dataclass(frozen=True)
class BatchOutcome:
    """A batch's outcome in columnar form (what :meth:`ProcessingEngine.process_batch_frame`
    returns).

    - ``matches``: one row per match — ``symbol, date`` and the formula's value columns
      (Float64, finite or null); each symbol's rows together, in date order. Symbols with
      an error have none.
    - ``errors``: ``{symbol: message}`` for the symbols that failed.
    - ``times_ms``: every symbol's ``processing_time_ms``.
    """

    symbols: tuple[str, ...]
    matches: pl.DataFrame
    errors: dict[str, str]
    times_ms: dict[str, float]
    _summary: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def results(self) -> list[ProcessingResult]:
        """One :class:`ProcessingResult` per symbol, in the job's order."""
        found: dict[str, list[dict[str, Any]]] = {}
        if self.matches.height:
            names = self.matches.get_column("symbol")
            runs = names.rle()
            rows = self.matches.drop("symbol").to_dicts()
            at = 0
            for symbol, length in zip(
                runs.struct.field("value").to_list(), runs.struct.field("len").to_list(),
                strict=True,
            ):  # fmt: skip
                found[symbol] = rows[at : at + length]
                at += length
        return [
            ProcessingResult(
                symbol=s,
                matches=[] if s in self.errors else found.get(s, []),
                error=self.errors.get(s),
                processing_time_ms=round(self.times_ms.get(s, 0.0), 3),
            )
            for s in self.symbols
        ]

    def summary(self) -> dict[str, Any]:
        """``processed, errors, matches, symbols_matched, total_time_ms`` — the same as
        :meth:`ProcessingEngine.summary` of :meth:`results`. Computed once (a copy each
        call)."""
        if self._summary is None:
            matched = self.matches.get_column("symbol").n_unique() if self.matches.height else 0
            total = round(sum(round(t, 3) for t in self.times_ms.values()), 3)
            object.__setattr__(self, "_summary", {
                "processed": len(self.symbols),
                "errors": len(self.errors),
                "matches": self.matches.height,
                "symbols_matched": matched,
                "total_time_ms": total,
            })  # fmt: skip
        assert self._summary is not None
        return dict(self._summary)


def warmup_days(warmup_bars: int) -> int:
    """Calendar days to load before the range so ``warmup_bars`` trading days precede it."""
    if warmup_bars <= 0:
        return 0
    return math.ceil(warmup_bars * _CALENDAR_PER_TRADING_DAY) + _WARMUP_SLACK_DAYS


class ProcessingEngine:
    """Evaluates scan formulas over batches of symbols; see the module docstring."""

    def __init__(
        self,
        load_bars: BarLoader,
        load_breadth: BreadthLoader = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        workers: int = 2,
        logger: logging.Logger | None = None,
        evaluate: Evaluator | None = None,
    ) -> None:
        if not _is_count(chunk_size):
            raise InvalidInputError(f"invalid chunk_size {chunk_size!r} — expected 1 or more")
        if not _is_count(workers):
            raise InvalidInputError(f"invalid workers {workers!r} — expected 1 or more")
        self._load_bars = load_bars
        self._load_breadth = load_breadth
        self._chunk_size = chunk_size
        self._workers = workers
        self._log = logger or logging.getLogger(LOGGER_NAME)
        # Another compute engine's Formula.evaluate (Spark: symbols split across workers).
        self._evaluate = evaluate

    # -- public API ---------------------------------------------------------------------------

    def process_batch(
        self, job: ProcessingJob, progress_callback: ProgressCallback | None = None
    ) -> list[ProcessingResult]:
        """Scan every symbol of ``job``; one result per symbol, in the job's order."""
        return self.process_batch_frame(job, progress_callback).results()

    def process_batch_frame(
        self, job: ProcessingJob, progress_callback: ProgressCallback | None = None
    ) -> BatchOutcome:
        """Scan every symbol of ``job``; the matches as one frame, errors by symbol.

        Same work, progress, logging and selection (``latest``, ``limit``) as
        :meth:`process_batch`, without building Python objects per match.
        """
        began = time.perf_counter()
        options = _Options.parse(job.parameters)
        formula = compile_formula(job.formula)
        chunk_size = options.chunk_size or self._chunk_size
        self._refuse_impossible(job, formula, options)
        if job.symbols and options.mode != "processes":
            load_kernels()  # while the bars load
        start, end = job.date_range
        window = _Window(
            load_start=start - dt.timedelta(days=warmup_days(formula.warmup_bars)),
            start=start,
            end=end,
            timeframe=job.timeframe,
            evaluate=self._evaluate,
        )
        self._log.info(
            "scan %s started: %d symbols, %s → %s, formula %r, mode %s",
            job.id, len(job.symbols), start, end, formula.text, options.mode,
        )  # fmt: skip
        batch = _Batch(job, self._log, progress_callback, options.batch_timeout, began)

        breadth: pl.DataFrame | None = None
        if formula.needs_breadth and job.symbols:
            try:
                breadth = batch.call(
                    lambda: self._load_breadth(window.load_start, window.end),  # type: ignore[misc]
                )
            except _BatchExpired:
                batch.expire()
            except Exception as exc:
                batch.fail_all(f"loading breadth failed: {_describe(exc)}")

        if not batch.finished:
            if formula.cross_sectional:
                groups = [job.symbols] if job.symbols else []
            else:
                groups = [
                    job.symbols[i : i + chunk_size] for i in range(0, len(job.symbols), chunk_size)
                ]
            if options.mode == "per_symbol":
                self._run_per_symbol(batch, formula, breadth, window, options.symbol_timeout)
            elif options.mode == "processes":
                self._run_processes(batch, formula, breadth, window, groups, chunk_size)
            else:
                self._run_vectorized(batch, formula, breadth, window, groups, chunk_size)

        outcome = batch.outcome(formula, options.latest, options.limit)
        summary = outcome.summary()
        self._log.info(
            "scan %s finished: processed=%d errors=%d matches=%d symbols_matched=%d "
            "total_time_ms=%.1f wall_time_ms=%.1f",
            job.id, summary["processed"], summary["errors"], summary["matches"],
            summary["symbols_matched"], summary["total_time_ms"],
            (time.perf_counter() - began) * 1000,
            extra={"scan_summary": {"job_id": job.id, **summary}},
        )  # fmt: skip
        return outcome

    async def process_batch_async(
        self, job: ProcessingJob, progress_callback: ProgressCallback | None = None
    ) -> list[ProcessingResult]:
        """:meth:`process_batch` in a worker thread: the event loop keeps running meanwhile.

        ``progress_callback`` is called from that worker thread.
        """
        return await asyncio.to_thread(self.process_batch, job, progress_callback)

    @staticmethod
    def summary(results: Sequence[ProcessingResult]) -> dict[str, Any]:
        """``processed, errors, matches, symbols_matched, total_time_ms`` of a batch's results.

        ``total_time_ms`` is the sum of the symbols' ``processing_time_ms``.
        """
        return {
            "processed": len(results),
            "errors": sum(1 for r in results if r.error is not None),
            "matches": sum(len(r.matches) for r in results),
            "symbols_matched": sum(1 for r in results if r.matches),
            "total_time_ms": round(sum(r.processing_time_ms for r in results), 3),
        }

    # -- modes --------------------------------------------------------------------------------

    def _refuse_impossible(self, job: ProcessingJob, formula: Formula, options: _Options) -> None:
        if formula.needs_breadth and self._load_breadth is None:
            raise InvalidInputError(
                f"scan {job.id}: the formula uses market breadth but the engine was given "
                "no breadth loader"
            )
        if options.symbol_timeout is not None and options.mode != "per_symbol":
            raise InvalidInputError(
                f"scan {job.id}: symbol_timeout needs mode 'per_symbol' (mode "
                f"'{options.mode}' evaluates whole chunks; bound it with batch_timeout)"
            )
        if formula.cross_sectional and options.mode == "per_symbol":
            raise InvalidInputError(
                f"scan {job.id}: the formula compares symbols with each other (rank or "
                "percentile), so it cannot run in mode 'per_symbol' — use 'vectorized'"
            )
        if formula.cross_sectional and len(job.symbols) > MAX_CROSS_SECTION:
            raise InvalidInputError(
                f"scan {job.id}: the formula compares symbols with each other, so all "
                f"{len(job.symbols)} symbols would be evaluated at once; at most "
                f"{MAX_CROSS_SECTION} are allowed — scan a smaller universe"
            )

    def _run_per_symbol(
        self,
        batch: _Batch,
        formula: Formula,
        breadth: pl.DataFrame | None,
        window: _Window,
        symbol_timeout: float | None,
    ) -> None:
        if symbol_timeout is not None:
            # Loading the compiled kernels is a once-per-process cost, not the first symbol's.
            try:
                batch.call(lambda: load_kernels(wait=True))
            except _BatchExpired:
                batch.expire()
                return
        for symbol in batch.job.symbols:
            began = time.perf_counter()
            try:
                part = batch.call(
                    lambda s=symbol: self._scan_group((s,), formula, breadth, window, 1),
                    symbol_timeout,
                )
            except _BatchExpired:
                batch.expire()
                return
            except _SymbolTimedOut:
                part = _Part(None, {symbol: f"timed out after {symbol_timeout:g}s"})
            except Exception as exc:
                part = _Part(None, {symbol: _describe(exc)})
            batch.record((symbol,), part, (time.perf_counter() - began) * 1000)

    def _run_vectorized(
        self,
        batch: _Batch,
        formula: Formula,
        breadth: pl.DataFrame | None,
        window: _Window,
        groups: list[tuple[str, ...]],
        chunk_size: int,
    ) -> None:
        for group in groups:
            began = time.perf_counter()
            try:
                part = batch.call(
                    lambda g=group: self._scan_group(g, formula, breadth, window, chunk_size)
                )
            except _BatchExpired:
                batch.expire()
                return
            except Exception as exc:
                part = _Part(None, dict.fromkeys(group, _describe(exc)))
            batch.record(group, part, (time.perf_counter() - began) * 1000)

    def _run_processes(
        self,
        batch: _Batch,
        formula: Formula,
        breadth: pl.DataFrame | None,
        window: _Window,
        groups: list[tuple[str, ...]],
        chunk_size: int,
    ) -> None:
        if not groups:
            return
        executor = ProcessPoolExecutor(
            max_workers=min(self._workers, len(groups)),
            mp_context=multiprocessing.get_context("spawn"),
        )
        waiting = deque(groups)
        pending: dict[Future[tuple[_Part, float]], _InFlight] = {}
        expired = False
        try:
            while (waiting or pending) and not expired:
                while waiting and len(pending) <= self._workers:
                    group = waiting.popleft()
                    began = time.perf_counter()
                    try:
                        bars, failed = batch.call(lambda g=group: self._load(g, window, chunk_size))
                    except _BatchExpired:
                        expired = True
                        break
                    except Exception as exc:
                        bars, failed = None, {s: _describe(exc) for s in group}
                    rest = tuple(s for s in group if s not in failed)
                    flight = _InFlight(group, failed, (time.perf_counter() - began) * 1000)
                    if not rest:
                        self._land(batch, flight, _Part(None, {}), 0.0)
                        continue
                    try:
                        future = executor.submit(
                            _scan_in_process, formula.text, bars, breadth, rest, window
                        )
                    except Exception as exc:  # a broken pool refuses new work
                        self._land(batch, flight, _worker_failed(rest, exc), 0.0)
                    else:
                        pending[future] = flight
                if expired or not pending:
                    continue
                remaining = batch.remaining()
                done, _ = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
                if not done:
                    expired = True
                for future in done:
                    flight = pending.pop(future)
                    try:
                        part, eval_ms = future.result()
                    except Exception as exc:
                        rest = tuple(s for s in flight.group if s not in flight.failed)
                        part, eval_ms = _worker_failed(rest, exc), 0.0
                    self._land(batch, flight, part, eval_ms)
        finally:
            if pending or expired:
                _terminate_workers(executor)
            executor.shutdown(wait=not (pending or expired), cancel_futures=True)
        if expired:
            batch.expire()

    @staticmethod
    def _land(batch: _Batch, flight: _InFlight, part: _Part, eval_ms: float) -> None:
        part = _Part(part.matches, {**part.errors, **flight.failed})
        batch.record(flight.group, part, flight.load_ms + eval_ms)

    # -- one group: load, check, evaluate ------------------------------------------------------

    def _scan_group(
        self,
        group: tuple[str, ...],
        formula: Formula,
        breadth: pl.DataFrame | None,
        window: _Window,
        chunk_size: int,
    ) -> _Part:
        bars, failed = self._load(group, window, chunk_size)
        rest = tuple(s for s in group if s not in failed)
        part = _scan_frame(formula, bars, breadth, rest, window) if rest else _Part(None, {})
        return _Part(part.matches, {**part.errors, **failed})

    def _load(
        self, group: tuple[str, ...], window: _Window, chunk_size: int
    ) -> tuple[pl.DataFrame | None, dict[str, str]]:
        """The group's bars, ``chunk_size`` symbols per loader call; failures per symbol.

        A loader call that raises for several symbols is retried one symbol at a time, so a
        symbol the loader chokes on does not take its chunk down with it.
        """
        frames: list[pl.DataFrame] = []
        failed: dict[str, str] = {}
        for part in _pieces(group, chunk_size):
            try:
                frames.append(self._call_loader(part, window))
            except Exception as exc:
                if len(part) == 1:
                    failed[part[0]] = f"loading bars failed: {_describe(exc)}"
                    continue
                for symbol in part:
                    try:
                        frames.append(self._call_loader((symbol,), window))
                    except Exception as one_exc:
                        failed[symbol] = f"loading bars failed: {_describe(one_exc)}"
        frames = [f for f in frames if f.width]
        bars = pl.concat(frames, how="diagonal_relaxed") if frames else None
        return bars, failed

    def _call_loader(self, symbols: tuple[str, ...], window: _Window) -> pl.DataFrame:
        frame = self._load_bars(list(symbols), window.load_start, window.end)
        if frame is None:
            return pl.DataFrame()
        if not isinstance(frame, pl.DataFrame):
            raise TypeError(f"the bar loader returned {type(frame).__name__}, not a DataFrame")
        return frame


# -- pure evaluation (also run in worker processes) ----------------------------------------------


@dataclass(frozen=True)
class _Window:
    load_start: dt.date
    start: dt.date
    end: dt.date
    timeframe: str
    #: Another engine's ``Formula.evaluate``; None: evaluate here with Polars.
    evaluate: Evaluator | None = None


@dataclass(frozen=True)
class _Part:
    """What scanning a group gave: its good symbols' matches, the others' errors."""

    matches: pl.DataFrame | None  # symbol, date, <values>; sorted by (symbol, date)
    errors: dict[str, str]


def check_bars(
    bars: pl.DataFrame | None,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    timeframe: str = "1d",
    since: dt.date | None = None,
    fields: Sequence[str] | None = None,
    positions: bool = False,
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Split loaded bars into usable ones and a problem per unusable symbol.

    ``bars`` need ``symbol``, ``date`` and ``fields`` (default: all of open, high, low,
    close, volume). Returns the bars of the symbols without problems — only ``symbols``,
    dated ``since`` … ``end``, sorted by symbol and date, with ``symbol, date`` and the bar
    columns present (prices and volume as Float64) — and ``{symbol: message}`` for the
    others: no bar between ``start`` and ``end``; two bars on one date; among the columns
    present, a missing, non-finite or non-positive price, a missing, non-finite or negative
    volume, or ``high < low``.

    One pass over the sorted bars (each symbol a contiguous segment): a sort only when the
    bars are not sorted yet, and per-symbol counts from compiled loops (see
    :func:`~breadthflow.scan._rolling.segments`). ``positions``
    adds the :data:`~breadthflow.scan._rolling.POS` column (each bar's index inside its
    symbol), which :meth:`Formula.matches <breadthflow.scan.formula.Formula.matches>` then
    uses instead of finding the symbols' segments again.
    """
    wanted = list(dict.fromkeys(symbols))
    needed = tuple(FIELDS if fields is None else fields)
    present = [c for c in (*_PRICES, "volume") if bars is not None and c in bars.columns]
    columns = ["symbol", "date", *present]
    none = f"no {timeframe} bars between {start} and {end}"
    if bars is None or bars.height == 0:
        return _empty_bars(present), dict.fromkeys(wanted, none)
    missing = [c for c in ("symbol", "date", *needed) if c not in bars.columns]
    if missing:
        raise InvalidInputError(f"the loaded bars lack column(s) {', '.join(missing)}")
    frame = bars.select(
        pl.col("symbol").cast(pl.String),
        pl.col("date").cast(pl.Date),
        *(pl.col(c).cast(pl.Float64) for c in present),
    )
    # A lake read gives a chunk per file or row group; the compiled loops need contiguous
    # columns and Polars is faster on them (a select would align the chunks anyway).
    frame = frame.rechunk()
    first, last = frame.select(pl.col("date").min(), pl.col("date").max().alias("last")).row(0)
    dates = frame.get_column("date")
    if first is None or dates.null_count() or (since and first < since) or last > end:
        frame = frame.filter(pl.col("date").is_between(since or dt.date.min, end))
    dated = ((start - _EPOCH).days, (end - _EPOCH).days)

    def find() -> Segments | None:
        values = {c: frame.get_column(c).to_numpy() for c in present}  # nulls become NaN
        return segments(frame.get_column("symbol"), frame.get_column("date"), dated, values)

    found = find()
    if found is None:
        frame = frame.sort("symbol", "date")
        found = find()
        assert found is not None
    names = found.names.to_list()
    if not set(names) <= set(wanted):  # the loader gave more than asked for (or nulls)
        frame = frame.filter(pl.col("symbol").is_in(wanted))
        found = find()
        assert found is not None
        names = found.names.to_list()
    repeats = found.first_repeat
    in_range, n_bad, first_bad = found.in_range, found.n_bad, found.first_bad
    assert in_range is not None and n_bad is not None and first_bad is not None  # asked for
    dates = frame.get_column("date")
    problems: dict[str, str] = {}
    for k in np.flatnonzero((in_range == 0) | (repeats >= 0) | (n_bad > 0)):
        symbol = names[k]
        if in_range[k] == 0:
            problems[symbol] = none
        elif repeats[k] >= 0:
            problems[symbol] = f"bad {timeframe} bars: two bars on {dates[int(repeats[k])]}"
        else:
            problems[symbol] = (
                f"bad {timeframe} bars: {n_bad[k]} bar(s) with a missing, non-finite or "
                f"non-positive price, a missing or negative volume, or high < low "
                f"(first on {dates[int(first_bad[k])]})"
            )
    seen = set(names)
    for symbol in wanted:
        if symbol not in seen:
            problems[symbol] = none
    if positions:
        frame = frame.with_columns(pl.Series(POS, found.pos))
        columns.append(POS)
    if problems:
        keep = np.repeat(np.array([n not in problems for n in names], dtype=np.bool_),
                         found.lengths)  # fmt: skip
        frame = frame.filter(pl.Series(keep))
    return frame.select(pl.col("symbol").set_sorted(), *columns[1:]), problems


def _scan_frame(
    formula: Formula,
    bars: pl.DataFrame | None,
    breadth: pl.DataFrame | None,
    symbols: Sequence[str],
    window: _Window,
) -> _Part:
    """Check ``bars`` and evaluate ``formula`` on the good symbols, isolating failures."""
    good, problems = check_bars(
        bars, symbols, window.start, window.end, window.timeframe,
        since=window.load_start, fields=formula.fields, positions=True,
    )  # fmt: skip
    names = [s for s in symbols if s not in problems]
    if not names:
        return _Part(None, problems)
    try:
        found = _evaluate(formula, good, breadth, window)
    except Exception as exc:
        found, failed = _evaluate_isolated(formula, good, breadth, window, names, exc)
        problems = {**problems, **failed}
    return _Part(found, problems)


def _evaluate(
    formula: Formula, bars: pl.DataFrame, breadth: pl.DataFrame | None, window: _Window
) -> pl.DataFrame:
    if window.evaluate is None:
        return formula.matches(bars, breadth, window.start, window.end)
    every = window.evaluate(formula, bars, breadth)
    inside = pl.col("match") & pl.col("date").is_between(window.start, window.end)
    return every.filter(inside).drop("match")


def _evaluate_isolated(
    formula: Formula,
    bars: pl.DataFrame,
    breadth: pl.DataFrame | None,
    window: _Window,
    names: list[str],
    first_error: Exception,
) -> tuple[pl.DataFrame | None, dict[str, str]]:
    """After a group's evaluation raised: evaluate each symbol alone to find the culprits.

    Cross-sectional formulas are then evaluated once more over the symbols that passed,
    because a symbol's rank depends on the others.
    """
    parts = {key[0]: part for key, part in bars.partition_by("symbol", as_dict=True).items()}
    found: list[pl.DataFrame] = []
    failed: dict[str, str] = {}
    for symbol in names:
        try:
            found.append(_evaluate(formula, parts[symbol], breadth, window))
        except Exception as exc:
            failed[symbol] = f"evaluation failed: {_describe(exc)}"
    if not formula.cross_sectional:
        return (pl.concat(found) if found else None), failed
    passed = [s for s in names if s not in failed]
    if not passed:
        return None, failed
    if not failed:  # no single symbol is to blame: the group fails as a whole
        message = f"evaluation failed: {_describe(first_error)}"
        return None, dict.fromkeys(names, message)
    rest = bars.filter(pl.col("symbol").is_in(passed))
    try:
        return _evaluate(formula, rest, breadth, window), failed
    except Exception as exc:
        message = f"evaluation failed: {_describe(exc)}"
        return None, failed | dict.fromkeys(passed, message)


def _scan_in_process(
    text: str,
    bars: pl.DataFrame | None,
    breadth: pl.DataFrame | None,
    symbols: tuple[str, ...],
    window: _Window,
) -> tuple[_Part, float]:
    """A worker process's task: evaluate one loaded chunk (the formula compiled here,
    where :func:`compile_formula` caches it for the worker's later chunks)."""
    began = time.perf_counter()
    part = _scan_frame(compile_formula(text), bars, breadth, symbols, window)
    return part, (time.perf_counter() - began) * 1000


# -- batch bookkeeping ----------------------------------------------------------------------------


class _BatchExpired(Exception):
    pass


class _SymbolTimedOut(Exception):
    pass


@dataclass
class _InFlight:
    group: tuple[str, ...]
    failed: dict[str, str]
    load_ms: float


@dataclass
class _Options:
    latest: bool = False
    limit: int | None = None
    symbol_timeout: float | None = None
    batch_timeout: float | None = None
    chunk_size: int | None = None
    mode: Mode = "vectorized"

    @classmethod
    def parse(cls, parameters: Mapping[str, Any]) -> _Options:
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise InvalidInputError(
                f"unknown scan parameter(s) {', '.join(map(repr, unknown))} — known: "
                + ", ".join(PARAMETERS)
            )
        options = cls()
        latest = parameters.get("latest")
        if latest is not None:
            if not isinstance(latest, bool):
                raise InvalidInputError(f"invalid latest {latest!r} — expected true or false")
            options.latest = latest
        for name in ("limit", "chunk_size"):
            value = parameters.get(name)
            if value is not None and not _is_count(value):
                raise InvalidInputError(f"invalid {name} {value!r} — expected 1 or more")
            setattr(options, name, value)
        for name in ("symbol_timeout", "batch_timeout"):
            value = parameters.get(name)
            if value is not None:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise InvalidInputError(
                        f"invalid {name} {value!r} — expected a number of seconds above 0"
                    )
                value = float(value)
            setattr(options, name, value)
        mode = parameters.get("mode")
        if mode is not None:
            if mode not in MODES:
                raise InvalidInputError(f"invalid mode {mode!r} — expected one of {MODES}")
            options.mode = mode
        return options


class _Batch:
    """Outcomes recorded so far, progress, logging and the batch deadline."""

    def __init__(
        self,
        job: ProcessingJob,
        log: logging.Logger,
        callback: ProgressCallback | None,
        batch_timeout: float | None,
        began: float,
    ) -> None:
        self.job = job
        self.total = len(job.symbols)
        self._log = log
        self._callback = callback
        self._timeout = batch_timeout
        self._deadline = None if batch_timeout is None else began + batch_timeout
        self._parts: list[pl.DataFrame] = []
        self._errors: dict[str, str] = {}
        self._times: dict[str, float] = {}
        self._done = 0
        self._reported = 0

    @property
    def finished(self) -> bool:
        return self._done == self.total

    def remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.perf_counter())

    def call(self, fn: Callable[[], _T], timeout: float | None = None) -> _T:
        """``fn()``, bounded by ``timeout`` and by the batch deadline.

        Raises :class:`_BatchExpired` when the deadline passes first (or has passed), and
        :class:`_SymbolTimedOut` when ``timeout`` does.
        """
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise _BatchExpired
        if remaining is None and timeout is None:
            return fn()
        limit = min(t for t in (remaining, timeout) if t is not None)
        try:
            return _call_with_timeout(fn, limit)
        except _TimedOut:
            if remaining is not None and (timeout is None or remaining <= timeout):
                raise _BatchExpired from None
            raise _SymbolTimedOut from None

    def record(self, group: Sequence[str], part: _Part, elapsed_ms: float) -> None:
        """Record a group's outcome; its time is shared equally among its symbols."""
        share = elapsed_ms / len(group) if group else 0.0
        self._times.update(dict.fromkeys(group, share))
        counts: dict[str, int] = {}
        debug = self._log.isEnabledFor(logging.DEBUG)
        if part.matches is not None and part.matches.height:
            self._parts.append(part.matches)
            if debug:
                runs = part.matches.get_column("symbol").rle()
                counts = dict(
                    zip(runs.struct.field("value").to_list(), runs.struct.field("len").to_list(),
                        strict=True)
                )  # fmt: skip
        # Without debug logging only the failed symbols need a look (5,000 symbols: ≈ 4 ms).
        for symbol in group if debug else [s for s in group if s in part.errors]:
            error = part.errors.get(symbol)
            if error is not None:
                self._errors[symbol] = error
                if len(self._errors) <= MAX_ERROR_WARNINGS:
                    self._log.warning("scan %s: %s: %s", self.job.id, symbol, error)
                else:
                    if len(self._errors) == MAX_ERROR_WARNINGS + 1:
                        self._log.warning(
                            "scan %s: more than %d symbols failed — the rest are logged at "
                            "debug level; the scan's result lists every error",
                            self.job.id, MAX_ERROR_WARNINGS,
                        )  # fmt: skip
                    self._log.debug("scan %s: %s: %s", self.job.id, symbol, error)
            else:
                self._log.debug(
                    "scan %s: %s: %d matches in %.1f ms",
                    self.job.id, symbol, counts.get(symbol, 0), share,
                )  # fmt: skip
        self._done += len(group)
        self.advance()

    def advance(self) -> None:
        if self._callback is not None and self._done > self._reported:
            self._reported = self._done
            self._callback(self._done, self.total)

    def _fail_rest(self, message: str) -> None:
        recorded = set(self._times)
        for symbol in self.job.symbols:
            if symbol not in recorded:
                self._errors[symbol] = message
                self._times[symbol] = 0.0
        self._done = self.total
        self.advance()

    def fail_all(self, message: str) -> None:
        self._log.warning("scan %s: %s", self.job.id, message)
        self._fail_rest(message)

    def expire(self) -> None:
        left = self.total - self._done
        message = f"batch timed out after {self._timeout:g}s"
        self._log.warning("scan %s: %s; %d symbols not scanned", self.job.id, message, left)
        self._fail_rest(message)

    def outcome(self, formula: Formula, latest: bool, limit: int | None) -> BatchOutcome:
        schema: dict[str, Any] = {"symbol": pl.String, "date": pl.Date}
        schema |= dict.fromkeys(formula.value_names, pl.Float64)
        # Parts hold only the good symbols of recorded groups, so no symbol has both.
        matches = pl.concat(self._parts) if self._parts else pl.DataFrame(schema=schema)
        matches = _select(matches, self.job.symbols, latest, limit)
        return BatchOutcome(self.job.symbols, matches, dict(self._errors), dict(self._times))


class _TimedOut(Exception):
    pass


def _call_with_timeout(fn: Callable[[], _T], timeout: float) -> _T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds for it.

    On timeout :class:`_TimedOut` is raised and the thread is left to finish on its own (a
    thread cannot be stopped); being a daemon it does not hold up interpreter exit. The
    caller's context variables (the log's run id) are carried into the thread.
    """
    future: Future[_T] = Future()
    context = contextvars.copy_context()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(context.run(fn))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name="breadthflow-scan", daemon=True).start()
    try:
        return future.result(timeout)
    except TimeoutError:
        if future.done():  # fn itself raised TimeoutError
            raise
        raise _TimedOut from None


def _worker_failed(symbols: Sequence[str], exc: BaseException) -> _Part:
    return _Part(None, dict.fromkeys(symbols, f"worker process failed: {_describe(exc)}"))


def _terminate_workers(executor: ProcessPoolExecutor) -> None:
    """Stop worker processes still busy with chunks nobody waits for any more."""
    terminate = getattr(executor, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()


# -- helpers --------------------------------------------------------------------------------------


def _select(
    matches: pl.DataFrame, symbols: Sequence[str], latest: bool, limit: int | None
) -> pl.DataFrame:
    """``latest``: each symbol's last match; ``limit``: the ``limit`` newest matches over
    the batch, ties on a date going to the symbol that comes first in the job."""
    if latest and matches.height:
        matches = matches.filter(pl.col("symbol") != pl.col("symbol").shift(-1, fill_value=""))
    if limit is None or matches.height <= limit:
        return matches
    order = pl.DataFrame(
        {"symbol": list(symbols), "__order": range(len(symbols))},
        schema={"symbol": pl.String, "__order": pl.Int64},
    )
    ranked = matches.with_row_index("__row").join(order, on="symbol", how="left")
    keep = ranked.sort(["date", "__order"], descending=[True, False]).head(limit)
    return matches.filter(pl.int_range(pl.len()).is_in(keep.get_column("__row").implode()))


def _pieces(items: tuple[str, ...], size: int) -> Iterator[tuple[str, ...]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _empty_bars(columns: Sequence[str]) -> pl.DataFrame:
    schema: dict[str, Any] = {"symbol": pl.String, "date": pl.Date}
    schema |= dict.fromkeys(columns, pl.Float64)
    return pl.DataFrame(schema=schema)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BreadthFlowError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise InvalidInputError(f"invalid date {value!r} in date_range")
