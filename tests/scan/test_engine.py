"""ProcessingEngine: batches of symbols, progress, per-symbol errors, chunks, modes, timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl
import pytest

import breadthflow.scan.engine as engine_module
from breadthflow.core.errors import InvalidInputError
from breadthflow.data.providers.sample import load_sample
from breadthflow.indicators.breadth import breadth_table
from breadthflow.scan._rolling import load_kernels
from breadthflow.scan.engine import (
    ProcessingEngine,
    ProcessingJob,
    ProcessingResult,
    warmup_days,
)
from breadthflow.scan.formula import FormulaError, compile_formula

FIRST_DAY = dt.date(2024, 1, 1)  # a Monday
SMA3 = "close > sma(close, 3)"
SAMPLE_SYMBOLS = ("AAPL", "MSFT", "XOM", "C", "GE", "IBM")
PERIOD = (dt.date(2010, 2, 1), dt.date(2010, 4, 30))  # inside the sample's year


# -- inputs ---------------------------------------------------------------------------------------


def weekdays(start: dt.date, count: int) -> list[dt.date]:
    days, day = [], start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def make_bars(closes: dict[str, Sequence[float]], start: dt.date = FIRST_DAY) -> pl.DataFrame:
    """Long daily bars on consecutive weekdays; open = close, high/low ±1, volume 1000."""
    rows = []
    for symbol, values in closes.items():
        for day, close in zip(weekdays(start, len(values)), values, strict=True):
            rows.append((symbol, day, close, close + 1, close - 1, close, 1000.0))
    return pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String,
            "date": pl.Date,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        },
        orient="row",
    )


# Ten weekdays, 2024-01-01 … 2024-01-12; five different paths.
CLOSES: dict[str, list[float]] = {
    "A": [10, 11, 12, 11, 13, 14, 12, 15, 16, 14],
    "B": [20, 19, 18, 19, 17, 16, 18, 15, 14, 16],
    "C": [30, 30, 31, 29, 32, 33, 33, 31, 34, 35],
    "D": [40, 42, 41, 43, 40, 44, 45, 42, 46, 47],
    "E": [50, 48, 49, 47, 51, 46, 52, 53, 45, 55],
}
DAYS = weekdays(FIRST_DAY, 10)
RANGE = (DAYS[0], DAYS[-1])


def expected_sma3_dates(closes: Sequence[float]) -> list[dt.date]:
    """Dates where close > mean of the last 3 closes (the window must be full)."""
    return [
        DAYS[i] for i in range(2, len(closes)) if closes[i] > sum(closes[i - 2 : i + 1]) / 3 + 1e-12
    ]


class FrameLoader:
    """A bar loader over an in-memory frame that remembers its calls; optionally slow."""

    def __init__(
        self, bars: pl.DataFrame, delay: float = 0.0, slow: Sequence[str] = (), delay_all=False
    ) -> None:
        self.bars = bars
        self.delay = delay
        self.slow = set(slow)
        self.delay_all = delay_all
        self.calls: list[tuple[tuple[str, ...], dt.date, dt.date]] = []
        self._lock = threading.Lock()

    def __call__(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pl.DataFrame:
        with self._lock:
            self.calls.append((tuple(symbols), start, end))
        if self.delay and (self.delay_all or self.slow & set(symbols)):
            time.sleep(self.delay)
        return self.bars.filter(
            pl.col("symbol").is_in(list(symbols)) & pl.col("date").is_between(start, end)
        )


def job(
    symbols: Sequence[str],
    formula: str = SMA3,
    date_range: tuple[dt.date, dt.date] = RANGE,
    **parameters: Any,
) -> ProcessingJob:
    return ProcessingJob(
        id="test-job",
        symbols=tuple(symbols),
        timeframe="1d",
        date_range=date_range,
        formula=formula,
        parameters=parameters,
    )


def engine_for(bars: pl.DataFrame, **kwargs: Any) -> ProcessingEngine:
    return ProcessingEngine(FrameLoader(bars), **kwargs)


def dates_of(result: ProcessingResult) -> list[dt.date]:
    return [m["date"] for m in result.matches]


def comparable(results: Sequence[ProcessingResult]) -> list[tuple[str, Any, str | None]]:
    """Results without their timings, for comparing two runs."""
    return [(r.symbol, r.matches, r.error) for r in results]


@dataclasses.dataclass(frozen=True)
class FailingFormula:
    """A real formula whose evaluation raises whenever ``symbol`` is among the bars."""

    inner: Any
    symbol: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _check(self, bars: pl.DataFrame) -> None:
        if self.symbol in bars["symbol"].to_list():
            raise ZeroDivisionError(f"boom in {self.symbol}")

    def evaluate(self, bars: pl.DataFrame, breadth: pl.DataFrame | None = None) -> pl.DataFrame:
        self._check(bars)
        return self.inner.evaluate(bars, breadth)

    def matches(self, bars: pl.DataFrame, *args: Any) -> pl.DataFrame:
        self._check(bars)
        return self.inner.matches(bars, *args)


@pytest.fixture
def scan_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture ``breadthflow.scan`` even when configure_logging stopped propagation."""
    logger = logging.getLogger("breadthflow.scan")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return load_sample().filter(pl.col("symbol").is_in(SAMPLE_SYMBOLS))


# -- the four acceptance scenarios --------------------------------------------------------------


def test_three_symbols_all_succeed() -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABC"})
    results = engine_for(bars).process_batch(job("ABC"))

    assert [r.symbol for r in results] == ["A", "B", "C"]
    for result in results:
        assert result.error is None
        assert dates_of(result) == expected_sma3_dates(CLOSES[result.symbol])
        assert result.processing_time_ms >= 0
    assert all(r.matches for r in results)
    value_names = compile_formula(SMA3).value_names
    for match in results[0].matches:
        assert set(match) == {"date", *value_names}


def test_progress_is_reported_after_each_symbol() -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABCD"})
    calls: list[tuple[int, int]] = []
    engine_for(bars).process_batch(job("ABCD", mode="per_symbol"), lambda *c: calls.append(c))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("chunk_size", [None, 1, 2, 3])
def test_progress_in_vectorized_mode_counts_symbols_up_to_the_total(chunk_size) -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABCD"})
    calls: list[tuple[int, int]] = []
    engine_for(bars).process_batch(job("ABCD", chunk_size=chunk_size), lambda *c: calls.append(c))
    assert calls[-1] == (4, 4)
    assert all(total == 4 for _, total in calls)
    done = [completed for completed, _ in calls]
    assert done == sorted(set(done))
    if chunk_size == 3:
        assert calls == [(3, 4), (4, 4)]


BAD_B = {
    "nan_price": lambda bars: bars.with_columns(
        pl.when((pl.col("symbol") == "B") & (pl.col("date") == DAYS[4]))
        .then(float("nan"))
        .otherwise(pl.col("close"))
        .alias("close")
    ),
    "negative_price": lambda bars: bars.with_columns(
        pl.when(pl.col("symbol") == "B").then(-pl.col("low")).otherwise(pl.col("low")).alias("low")
    ),
    "no_bars": lambda bars: bars.filter(pl.col("symbol") != "B"),
    "evaluation_raises": lambda bars: bars,  # see FailingFormula below
}
BAD_B_ERROR = {
    "nan_price": f"bad 1d bars: 1 bar(s) with a missing, non-finite or non-positive price, "
    f"a missing or negative volume, or high < low (first on {DAYS[4]})",
    "negative_price": "bad 1d bars: 10 bar(s)",
    "no_bars": f"no 1d bars between {DAYS[0]} and {DAYS[-1]}",
    "evaluation_raises": "evaluation failed: ZeroDivisionError: boom in B",
}


@pytest.mark.parametrize("mode", ["vectorized", "per_symbol"])
@pytest.mark.parametrize("failure", list(BAD_B))
def test_batch_continues_when_one_symbol_fails(
    mode: str, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make_bars({s: CLOSES[s] for s in "ABC"})
    reference = {r.symbol: r for r in engine_for(good).process_batch(job("ABC"))}
    if failure == "evaluation_raises":
        real = engine_module.compile_formula
        monkeypatch.setattr(
            engine_module, "compile_formula", lambda text: FailingFormula(real(text), "B")
        )
    calls: list[tuple[int, int]] = []
    results = engine_for(BAD_B[failure](good)).process_batch(
        job("ABC", mode=mode), lambda *c: calls.append(c)
    )

    assert [r.symbol for r in results] == ["A", "B", "C"]
    a, b, c = results
    assert b.error is not None and b.error.startswith(BAD_B_ERROR[failure])
    assert b.matches == []
    for result in (a, c):
        assert result.error is None
        assert result.matches == reference[result.symbol].matches
    assert calls[-1] == (3, 3)


def test_summary_is_logged_at_the_end(scan_log: pytest.LogCaptureFixture) -> None:
    bars = make_bars(CLOSES).filter(pl.col("symbol") != "E")
    engine = engine_for(bars)
    results = engine.process_batch(job("ABCDE"))
    summary = engine.summary(results)
    assert summary["processed"] == 5
    assert summary["errors"] == 1
    assert summary["matches"] == sum(len(expected_sma3_dates(CLOSES[s])) for s in "ABCD")
    assert summary["symbols_matched"] == 4

    records = [r for r in scan_log.records if r.name == "breadthflow.scan"]
    start, end = records[0], records[-1]
    assert start.levelno == logging.INFO
    assert "test-job" in start.getMessage() and SMA3 in start.getMessage()
    assert end.levelno == logging.INFO
    line = end.getMessage()
    assert "processed=5" in line and "errors=1" in line
    assert f"matches={summary['matches']}" in line
    assert "total_time_ms=" in line and "wall_time_ms=" in line
    assert end.scan_summary["processed"] == 5  # type: ignore[attr-defined]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "E: no 1d bars" in warnings[0].getMessage()
    debug = [r for r in records if r.levelno == logging.DEBUG]
    assert len(debug) == 4


def test_many_failing_symbols_log_a_bounded_number_of_warnings(
    scan_log: pytest.LogCaptureFixture,
) -> None:
    """A universe scanned before its bars are fetched: every error is in the result, but the
    log gets MAX_ERROR_WARNINGS warnings and one line saying the rest went to debug."""
    from breadthflow.scan.engine import MAX_ERROR_WARNINGS

    missing = [f"M{i:03d}" for i in range(MAX_ERROR_WARNINGS + 15)]
    engine = engine_for(make_bars({"A": CLOSES["A"]}))
    results = engine.process_batch(job(["A", *missing]))
    assert [r.symbol for r in results if r.error] == missing
    records = [r for r in scan_log.records if r.name == "breadthflow.scan"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == MAX_ERROR_WARNINGS + 1
    assert all("no 1d bars" in w for w in warnings[:MAX_ERROR_WARNINGS])
    assert f"more than {MAX_ERROR_WARNINGS} symbols failed" in warnings[-1]
    quiet = [r.getMessage() for r in records if r.levelno == logging.DEBUG and "no 1d" in
             r.getMessage()]  # fmt: skip
    assert len(quiet) == 15


# -- warm-up, selection, chunking -----------------------------------------------------------------


def test_a_match_on_the_first_day_equals_the_longer_scans(sample: pl.DataFrame) -> None:
    formula = "close > sma(close, 50)"
    long_range = (dt.date(2010, 3, 1), dt.date(2010, 6, 30))
    loader = FrameLoader(sample)
    engine = ProcessingEngine(loader)
    long = engine.process_batch(job(SAMPLE_SYMBOLS, formula, long_range))
    by_date: dict[dt.date, dict[str, dict[str, Any]]] = {}
    for result in long:
        for match in result.matches:
            by_date.setdefault(match["date"], {})[result.symbol] = match
    # A day in the middle of the long range on which several symbols match.
    day = max((d for d in by_date if d > dt.date(2010, 5, 1)), key=lambda d: (len(by_date[d]), d))
    assert len(by_date[day]) >= 2

    loader.calls.clear()
    short = engine.process_batch(job(SAMPLE_SYMBOLS, formula, (day, day)))
    # Same matches, same values — up to the last bits of a rolling sum started elsewhere.
    found = {r.symbol: r.matches for r in short if r.matches}
    assert {s: [m["date"] for m in ms] for s, ms in found.items()} == {
        s: [day] for s in by_date[day]
    }
    for symbol, (match,) in found.items():
        values = {k: v for k, v in match.items() if k != "date"}
        expected = {k: v for k, v in by_date[day][symbol].items() if k != "date"}
        assert values == pytest.approx(expected, rel=1e-12, nan_ok=True)
    warmup = compile_formula(formula).warmup_bars
    assert loader.calls[0][1] == day - dt.timedelta(days=warmup_days(warmup))


def test_warmup_days_cover_the_bars_with_holidays() -> None:
    assert warmup_days(0) == 0
    assert warmup_days(50) >= 50 * 7 / 5 + 10
    assert warmup_days(252) >= 365 + 10


def test_latest_keeps_each_symbols_last_match() -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABC"})
    results = engine_for(bars).process_batch(job("ABC", latest=True))
    for result in results:
        assert dates_of(result) == expected_sma3_dates(CLOSES[result.symbol])[-1:]


def test_limit_keeps_the_newest_matches_across_symbols() -> None:
    bars = make_bars(CLOSES)
    full = engine_for(bars).process_batch(job("ABCDE"))
    limited = engine_for(bars).process_batch(job("ABCDE", limit=4))

    everything = sorted(
        ((m["date"], "ABCDE".index(r.symbol), r.symbol, m) for r in full for m in r.matches),
        key=lambda x: (-x[0].toordinal(), x[1]),
    )
    kept = {(s, m["date"]) for _, _, s, m in everything[:4]}
    assert sum(len(r.matches) for r in limited) == 4
    assert [r.symbol for r in limited] == list("ABCDE")
    for result in limited:
        assert {(result.symbol, d) for d in dates_of(result)} == {
            k for k in kept if k[0] == result.symbol
        }
        assert dates_of(result) == sorted(dates_of(result))

    latest_one = engine_for(bars).process_batch(job("ABCDE", latest=True, limit=1))
    assert sum(len(r.matches) for r in latest_one) == 1


def test_chunks_give_the_same_results_as_one_chunk() -> None:
    bars = make_bars(CLOSES)
    whole = engine_for(bars).process_batch(job("ABCDE"))
    loader = FrameLoader(bars)
    chunked = ProcessingEngine(loader, chunk_size=2).process_batch(job("ABCDE"))
    assert comparable(chunked) == comparable(whole)
    assert [c[0] for c in loader.calls] == [("A", "B"), ("C", "D"), ("E",)]
    # The job's chunk_size overrides the engine's.
    loader.calls.clear()
    ProcessingEngine(loader).process_batch(job("ABCDE", chunk_size=3))
    assert [c[0] for c in loader.calls] == [("A", "B", "C"), ("D", "E")]


def test_a_loader_failing_for_one_symbol_is_isolated() -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABC"})
    inner = FrameLoader(bars)

    def loader(symbols: Sequence[str], start: dt.date, end: dt.date) -> pl.DataFrame:
        if "B" in symbols:
            raise OSError("disk on fire")
        return inner(symbols, start, end)

    results = ProcessingEngine(loader).process_batch(job("ABC"))
    assert results[1].error == "loading bars failed: OSError: disk on fire"
    assert [dates_of(results[i]) for i in (0, 2)] == [
        expected_sma3_dates(CLOSES["A"]),
        expected_sma3_dates(CLOSES["C"]),
    ]


# -- timeouts -------------------------------------------------------------------------------------


def test_a_slow_symbol_times_out_and_the_batch_goes_on() -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABC"})
    loader = FrameLoader(bars, delay=3.0, slow=["B"])
    load_kernels(wait=True)  # compiling them (a fresh checkout has no numba cache) is not timed
    began = time.perf_counter()
    results = ProcessingEngine(loader).process_batch(
        job("ABC", mode="per_symbol", symbol_timeout=0.3)
    )
    assert time.perf_counter() - began < 2.0
    assert results[1].error == "timed out after 0.3s"
    assert results[0].error is None and results[2].error is None
    assert dates_of(results[2]) == expected_sma3_dates(CLOSES["C"])


@pytest.mark.parametrize("mode", ["per_symbol", "vectorized"])
def test_batch_timeout_marks_the_remaining_symbols(mode: str) -> None:
    bars = make_bars(CLOSES)
    loader = FrameLoader(bars, delay=0.3, delay_all=True)
    calls: list[tuple[int, int]] = []
    load_kernels(wait=True)  # not what is timed here
    began = time.perf_counter()
    results = ProcessingEngine(loader, chunk_size=1).process_batch(
        job("ABCDE", mode=mode, batch_timeout=1.0), lambda *c: calls.append(c)
    )
    assert time.perf_counter() - began < 2.0
    assert [r.symbol for r in results] == list("ABCDE")
    assert [r.error is None for r in results[:2]] == [True, True]
    # A and B load by 0.6 s, C by 0.9 s (if the machine keeps up); D is cut at 1 s.
    assert all(r.error == "batch timed out after 1s" for r in results[3:])
    assert calls[-1] == (5, 5)
    assert dates_of(results[0]) == expected_sma3_dates(CLOSES["A"])


# -- modes ----------------------------------------------------------------------------------------


def test_process_batch_async_does_not_block_the_event_loop() -> None:
    bars = make_bars(CLOSES)
    loader = FrameLoader(bars, delay=0.1, delay_all=True)
    engine = ProcessingEngine(loader)

    async def main() -> tuple[list[ProcessingResult], int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        results = await engine.process_batch_async(job("ABCDE", mode="per_symbol"))
        stop.set()
        await task
        return results, ticks

    results, ticks = asyncio.run(main())
    assert ticks >= 20  # ~0.5 s of loading: the loop kept ticking meanwhile
    assert comparable(results) == comparable(engine_for(bars).process_batch(job("ABCDE")))


def test_process_mode_gives_the_same_results_as_vectorized(sample: pl.DataFrame) -> None:
    formula, period = "close > sma(close, 20)", PERIOD
    symbols = (*SAMPLE_SYMBOLS, "NOPE")
    vectorized = ProcessingEngine(FrameLoader(sample)).process_batch(job(symbols, formula, period))
    calls: list[tuple[int, int]] = []
    processes = ProcessingEngine(FrameLoader(sample), chunk_size=3, workers=2).process_batch(
        job(symbols, formula, period, mode="processes"), lambda *c: calls.append(c)
    )
    assert comparable(processes) == comparable(vectorized)
    assert sum(len(r.matches) for r in processes) > 0
    assert processes[-1].error is not None and processes[-1].error.startswith("no 1d bars")
    assert calls[-1] == (7, 7)


def test_batch_timeout_in_process_mode_stops_the_workers(sample: pl.DataFrame) -> None:
    # Starting a spawned worker alone takes longer than the whole batch may.
    began = time.perf_counter()
    results = ProcessingEngine(FrameLoader(sample), chunk_size=2).process_batch(
        job(SAMPLE_SYMBOLS, "close > sma(close, 20)", PERIOD, mode="processes", batch_timeout=0.05)
    )
    assert time.perf_counter() - began < 5
    assert [r.symbol for r in results] == list(SAMPLE_SYMBOLS)
    assert all(r.error == "batch timed out after 0.05s" for r in results)


def test_per_symbol_mode_matches_vectorized(sample: pl.DataFrame) -> None:
    formula, period = "close > sma(close, 20)", PERIOD
    engine = ProcessingEngine(FrameLoader(sample))
    one_by_one = engine.process_batch(job(SAMPLE_SYMBOLS, formula, period, mode="per_symbol"))
    assert comparable(one_by_one) == comparable(
        engine.process_batch(job(SAMPLE_SYMBOLS, formula, period))
    )


def test_a_cross_section_is_never_split_by_chunks(sample: pl.DataFrame) -> None:
    formula = "rank(roc(close, 5)) <= 2"
    assert compile_formula(formula).cross_sectional
    whole = ProcessingEngine(FrameLoader(sample)).process_batch(
        job(SAMPLE_SYMBOLS, formula, PERIOD)
    )
    loader = FrameLoader(sample)
    calls: list[tuple[int, int]] = []
    chunked = ProcessingEngine(loader, chunk_size=2).process_batch(
        job(SAMPLE_SYMBOLS, formula, PERIOD), lambda *c: calls.append(c)
    )
    assert comparable(chunked) == comparable(whole)
    # Loaded two symbols at a time, evaluated all together: two symbols match on each date.
    assert [len(c[0]) for c in loader.calls] == [2, 2, 2]
    assert calls == [(6, 6)]
    per_date: dict[dt.date, int] = {}
    for result in chunked:
        for match in result.matches:
            per_date[match["date"]] = per_date.get(match["date"], 0) + 1
    assert per_date and set(per_date.values()) == {2}
    with pytest.raises(InvalidInputError, match="per_symbol"):
        ProcessingEngine(loader).process_batch(job(SAMPLE_SYMBOLS, formula, mode="per_symbol"))


def test_a_cross_section_leaves_out_a_bad_symbol(sample: pl.DataFrame) -> None:
    formula = "rank(close) <= 2"
    broken = sample.with_columns(
        pl.when(pl.col("symbol") == "GE").then(0.0).otherwise(pl.col("close")).alias("close")
    )
    results = ProcessingEngine(FrameLoader(broken), chunk_size=2).process_batch(
        job(SAMPLE_SYMBOLS, formula, PERIOD)
    )
    others = [s for s in SAMPLE_SYMBOLS if s != "GE"]
    reference = ProcessingEngine(FrameLoader(sample)).process_batch(job(others, formula, PERIOD))
    by_symbol = {r.symbol: r for r in results}
    assert by_symbol["GE"].error is not None and by_symbol["GE"].error.startswith("bad 1d bars")
    assert comparable([by_symbol[s] for s in others]) == comparable(reference)


def test_breadth_formulas_get_the_breadth_table(sample: pl.DataFrame) -> None:
    formula = "pct_above_sma20 > 50 and close > sma(close, 20)"
    bars = sample.select("symbol", "date", "open", "high", "low", "close", "volume")
    breadth = breadth_table(bars, hl_window=50)
    breadth_calls: list[tuple[dt.date, dt.date]] = []

    def load_breadth(start: dt.date, end: dt.date) -> pl.DataFrame:
        breadth_calls.append((start, end))
        return breadth.filter(pl.col("date").is_between(start, end))

    compiled = compile_formula(formula)
    expected = (
        compiled.evaluate(bars, breadth)
        .filter(pl.col("match") & pl.col("date").is_between(*PERIOD))
        .group_by("symbol")
        .agg(pl.col("date").sort())
    )
    results = ProcessingEngine(FrameLoader(sample), load_breadth, chunk_size=4).process_batch(
        job(SAMPLE_SYMBOLS, formula, PERIOD)
    )
    assert len(breadth_calls) == 1  # once per job, not per chunk
    assert {r.symbol: dates_of(r) for r in results if r.matches} == dict(expected.iter_rows())
    with pytest.raises(InvalidInputError, match="breadth loader"):
        ProcessingEngine(FrameLoader(sample)).process_batch(job(SAMPLE_SYMBOLS, formula, PERIOD))


# -- job-level mistakes raise -------------------------------------------------------------------


def test_a_bad_formula_raises_for_the_whole_job() -> None:
    with pytest.raises(FormulaError):
        engine_for(make_bars(CLOSES)).process_batch(job("ABC", formula="close > > 3"))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"lates": True}, "unknown scan parameter"),
        ({"limit": 0}, "invalid limit"),
        ({"chunk_size": True}, "invalid chunk_size"),
        ({"batch_timeout": -1}, "invalid batch_timeout"),
        ({"mode": "threads"}, "invalid mode"),
        ({"latest": "yes"}, "invalid latest"),
    ],
)
def test_invalid_parameters_are_refused(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        job("ABC", **parameters)


def test_invalid_jobs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="more than once"):
        job("ABA")
    with pytest.raises(InvalidInputError, match="after end"):
        job("AB", date_range=(DAYS[3], DAYS[1]))
    with pytest.raises(InvalidInputError, match="daily bars"):
        ProcessingJob("j", ("A",), "1h", RANGE, SMA3)


def test_symbol_timeout_needs_per_symbol_mode() -> None:
    with pytest.raises(InvalidInputError, match="per_symbol"):
        engine_for(make_bars(CLOSES)).process_batch(job("AB", symbol_timeout=1))


def test_empty_job_returns_no_results() -> None:
    calls: list[tuple[int, int]] = []
    assert engine_for(make_bars(CLOSES)).process_batch(job(""), lambda *c: calls.append(c)) == []
    assert calls == []


def test_matches_hold_plain_floats_or_none() -> None:
    bars = make_bars({"A": CLOSES["A"]})
    (result,) = engine_for(bars).process_batch(job("A"))
    for match in result.matches:
        for name, value in match.items():
            if name != "date":
                assert value is None or (isinstance(value, float) and math.isfinite(value))


# -- the columnar outcome -------------------------------------------------------------------------


def test_the_frame_outcome_holds_the_same_matches_as_the_results(sample: pl.DataFrame) -> None:
    engine = ProcessingEngine(FrameLoader(sample), chunk_size=4)
    scan = job((*SAMPLE_SYMBOLS, "NOPE"), "close > sma(close, 20) and volume > 0", PERIOD)
    outcome = engine.process_batch_frame(scan)
    results = engine.process_batch(scan)

    assert comparable(outcome.results()) == comparable(results)
    rows = [(r.symbol, m["date"], m["close"], m["sma(close, 20)"]) for r in results
            for m in r.matches]  # fmt: skip
    assert outcome.matches.columns == ["symbol", "date", "close", "sma(close, 20)", "volume"]
    assert sorted(outcome.matches.select(pl.exclude("volume")).rows()) == sorted(rows)
    assert len(rows) > 0
    assert outcome.errors == {"NOPE": f"no 1d bars between {PERIOD[0]} and {PERIOD[1]}"}
    without_time = {k: v for k, v in outcome.summary().items() if k != "total_time_ms"}
    assert without_time == {k: v for k, v in engine.summary(results).items()
                            if k != "total_time_ms"}  # fmt: skip
    assert set(outcome.times_ms) == set(scan.symbols)


def test_a_loader_may_return_only_the_fields_the_formula_reads(sample: pl.DataFrame) -> None:
    formula = "close > sma(close, 20)"
    assert compile_formula(formula).fields == ("close",)
    # A broken low price is not read, so it does not matter here; a broken close does.
    broken = sample.with_columns(
        pl.when(pl.col("symbol") == "GE").then(-1.0).otherwise(pl.col("low")).alias("low"),
        pl.when(pl.col("symbol") == "XOM").then(None).otherwise(pl.col("close")).alias("close"),
    )
    slim = broken.select("symbol", "date", "close")
    full_results = ProcessingEngine(FrameLoader(sample)).process_batch(
        job(SAMPLE_SYMBOLS, formula, PERIOD)
    )
    results = ProcessingEngine(FrameLoader(slim)).process_batch(
        job(SAMPLE_SYMBOLS, formula, PERIOD)
    )
    by_symbol = {r.symbol: r for r in results}
    assert by_symbol["XOM"].error is not None and by_symbol["XOM"].error.startswith("bad 1d bars")
    assert by_symbol["GE"].error is None
    assert comparable([r for r in results if r.symbol != "XOM"]) == comparable(
        [r for r in full_results if r.symbol != "XOM"]
    )
    missing = ProcessingEngine(FrameLoader(slim)).process_batch(
        job(SAMPLE_SYMBOLS, "volume > 0", PERIOD)
    )
    assert all(r.error == "the loaded bars lack column(s) volume" for r in missing)


def test_check_bars_sorts_and_reports_each_symbols_first_problem() -> None:
    bars = make_bars({s: CLOSES[s] for s in "ABCD"})
    repeated = bars.filter((pl.col("symbol") == "C") & (pl.col("date") == DAYS[3]))
    shuffled = pl.concat([bars, repeated]).sample(fraction=1.0, shuffle=True, seed=1)
    shuffled = shuffled.with_columns(
        pl.when((pl.col("symbol") == "B") & (pl.col("date") >= DAYS[6]))
        .then(0.0)
        .otherwise(pl.col("open"))
        .alias("open")
    )
    good, problems = engine_module.check_bars(shuffled, ["A", "B", "C", "D", "Z"], DAYS[2], DAYS[8])
    assert problems == {
        # bars after the end are left out: three bad ones remain
        "B": "bad 1d bars: 3 bar(s) with a missing, non-finite or non-positive price, a missing "
        f"or negative volume, or high < low (first on {DAYS[6]})",
        "C": f"bad 1d bars: two bars on {DAYS[3]}",
        "Z": f"no 1d bars between {DAYS[2]} and {DAYS[8]}",
    }
    assert good.select("symbol", "date").rows() == [(s, d) for s in "AD" for d in DAYS[:9]]
