"""Scanner benchmark: one formula over a synthetic 5,000-symbol × 2,520-day universe.

    .venv/bin/python benchmarks/scan.py                           # full size, 3 runs per case
    .venv/bin/python benchmarks/scan.py --symbols 500 --repeat 1   # quick look

Formula: ``close > sma(close, 200) and volume > 2 * sma(volume, 20)`` over the whole range.
The lake is the one benchmarks/breadth.py writes (cached under benchmarks/.data/breadth/).
Cases, each in a fresh child process (imports and opening the lake before the clock); each
reports wall time and the CPU time of its process (all threads), which a busy machine
disturbs much less:

- ``bf_scan``       ``services.scan.run_scan`` (not stored), the first scan of the process
                    — what one CLI call does: compile, read the formula's columns from the
                    lake with warm-up, check the bars, evaluate over the whole universe, the
                    match frame. Includes loading the compiled (numba) kernels, ≈ 0.3–0.8 s
                    once per process.
- ``bf_scan_warm``  the same, as the second scan of the process: kernels loaded, same work
                    otherwise; the process still grows into its memory.
- ``bf_scan_steady`` a long-lived process (API server, pipeline worker, dashboard): two scans
                    first, then the median of the next five (wall and CPU time).
- ``bf_scan_paused``  a long-lived process that scans again after a pause (the dashboard
                    with a user thinking, a scheduled pipeline): two scans, a 15 s pause —
                    past the ten seconds its freed memory stays in use — then one scan.
- ``bf_scan_partitions``  ``bf_scan_warm`` with the lake's read snapshot turned off
                    (``lake_snapshot = false``): every partition file is opened.
- ``bf_eval``       the engine alone on bars already in memory:
                    ``ProcessingEngine.process_batch_frame`` — per-symbol checks, the
                    formula over the universe, the match frame (kernels loaded before).
- ``pandas``        baseline: a sequential per-symbol loop — read the symbol's bars with
                    pandas, ``rolling(200).mean()`` / ``rolling(20).mean()``, the condition,
                    collect the matching dates — what a user would write
- ``pandas_eval``   the same loop over bars already in memory (one DataFrame per symbol,
                    split before the clock): evaluation against evaluation.

The match sets of bf_scan, bf_eval and pandas are checked to be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from _harness import peak_rss_mb, run_cases
from breadth import START, end_date, lake_dir, prepare

import breadthflow  # noqa: F401  (before Polars, as in every entry point: it tunes the allocator)

HERE = Path(__file__).resolve().parent
FORMULA = "close > sma(close, 200) and volume > 2 * sma(volume, 20)"
COLUMNS = ["symbol", "date", "close", "volume"]
CASES = (
    "bf_scan",
    "bf_scan_warm",
    "bf_scan_steady",
    "bf_scan_paused",
    "bf_scan_partitions",
    "bf_eval",
    "pandas",
    "pandas_eval",
)
SCANS = ("bf_scan", "bf_scan_warm", "bf_scan_steady", "bf_scan_paused", "bf_scan_partitions")
STEADY_RUNS = 5
PAUSE_SECONDS = 15.0


def pandas_matches(df, symbol: str):
    """The baseline's per-symbol evaluation: the formula by hand with pandas."""
    import pandas as pd

    condition = (df["close"] > df["close"].rolling(200).mean()) & (
        df["volume"] > 2 * df["volume"].rolling(20).mean()
    )
    return pd.DataFrame({"symbol": symbol, "date": df.loc[condition, "date"]})


def run_case(case: str, work: Path, symbols: int, days: int) -> dict:
    import polars as pl

    from breadthflow.core.config import load_settings
    from breadthflow.core.models import DateRange, Timeframe

    lake = lake_dir(work, symbols, days)
    settings = load_settings(
        home=work / "home",
        lake_url=lake.as_uri(),
        log_json=False,
        lake_snapshot=case != "bf_scan_partitions",
    )
    out = work / f"scan-{case}-{symbols}x{days}.parquet"
    period = DateRange.parse(START, end_date(days))
    if case in SCANS:
        from breadthflow.services.context import AppContext
        from breadthflow.services.scan import run_scan

        ctx = AppContext(settings)
        ctx.lake  # noqa: B018 - open the lake outside the timing
        universe = f"synthetic-{symbols}"
        for _ in range({"bf_scan": 0, "bf_scan_steady": 2, "bf_scan_paused": 2}.get(case, 1)):
            run_scan(ctx, FORMULA, period, universe=universe, store=False)
        if case == "bf_scan_paused":
            time.sleep(PAUSE_SECONDS)
        times = []
        for _ in range(STEADY_RUNS if case == "bf_scan_steady" else 1):
            began, cpu = time.perf_counter(), time.process_time()
            outcome = run_scan(ctx, FORMULA, period, universe=universe, store=False)
            times.append((time.perf_counter() - began, time.process_time() - cpu))
        seconds = statistics.median(t for t, _ in times)
        cpu = statistics.median(c for _, c in times)
        outcome.matches.select("symbol", "date").write_parquet(out)
        rows = outcome.matches.height
    elif case == "bf_eval":
        from breadthflow.data.lake import open_lake
        from breadthflow.scan.engine import ProcessingEngine, ProcessingJob

        bars = open_lake(lake.as_uri(), settings).read(None, Timeframe.D1, columns=COLUMNS)
        names = tuple(bars.get_column("symbol").unique(maintain_order=True).to_list())
        engine = ProcessingEngine(lambda chosen, a, b: bars)

        def job(chosen: tuple[str, ...]) -> ProcessingJob:
            return ProcessingJob("bench", chosen, "1d", (period.start, period.end), FORMULA)

        first = bars.filter(pl.col("symbol") == names[0])
        ProcessingEngine(lambda chosen, a, b: first).process_batch_frame(job(names[:1]))
        began, cpu = time.perf_counter(), time.process_time()
        outcome = engine.process_batch_frame(job(names))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        outcome.matches.select("symbol", "date").write_parquet(out)
        rows = outcome.matches.height
    elif case in ("pandas", "pandas_eval"):
        import pandas as pd

        files = sorted((lake / "bars" / "timeframe=1d").glob("symbol=*/part-0.parquet"))
        found = []
        if case == "pandas":
            began, cpu = time.perf_counter(), time.process_time()
            for path in files:
                df = pd.read_parquet(path, columns=["date", "close", "volume"])
                found.append(pandas_matches(df, path.parent.name.removeprefix("symbol=")))
        else:
            frames = {
                path.parent.name.removeprefix("symbol="): pd.read_parquet(
                    path, columns=["date", "close", "volume"]
                )
                for path in files
            }
            began, cpu = time.perf_counter(), time.process_time()
            for symbol, df in frames.items():
                found.append(pandas_matches(df, symbol))
        matches = pd.concat(found, ignore_index=True)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        matches.to_parquet(out)
        rows = len(matches)
    else:
        raise SystemExit(f"unknown case {case}")
    return {"case": case, "seconds": seconds, "cpu": cpu, "rows": rows, "peak_mb": peak_rss_mb()}


def check_agreement(work: Path, symbols: int, days: int, cases: list[str]) -> str:
    """The (symbol, date) match sets of every case that ran agree."""
    import polars as pl

    sets = {}
    for case in cases:
        frame = pl.read_parquet(work / f"scan-{case}-{symbols}x{days}.parquet")
        frame = frame.with_columns(pl.col("date").cast(pl.Date))
        sets[case] = set(frame.select("symbol", "date").iter_rows())
    first, reference = next(iter(sets.items()))
    for case, found in sets.items():
        assert found == reference, (first, case, len(reference - found), len(found - reference))
    return f"match sets agree ({', '.join(sets)}): {len(reference):,} (symbol, date) matches"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "breadth")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    args.work = args.work.resolve()
    if args.case:
        print(json.dumps(run_case(args.case, args.work, args.symbols, args.days)))
        return

    prepare(args.work, args.symbols, args.days)
    child_args = ["--work", str(args.work), "--symbols", str(args.symbols),
                  "--days", str(args.days)]  # fmt: skip
    cases = args.cases.split(",")
    results = run_cases(__file__, cases, args.repeat, child_args)
    print(check_agreement(args.work, args.symbols, args.days, cases), file=sys.stderr)

    med = {c: statistics.median(r["seconds"] for r in rs) for c, rs in results.items()}
    cpu = {c: statistics.median(r["cpu"] for r in rs) for c, rs in results.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.symbols:,} symbols × {args.days:,} days, "
        f"median of {args.repeat}, load average at the end {load:.1f}\n"
    )
    print(
        "| case | median s | runs s | CPU s (median) | peak RSS MB (median / max) | matches "
        "| vs `pandas` | vs `pandas_eval` |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, runs in results.items():
        peaks = [r["peak_mb"] for r in runs]
        ratios = [
            f"{med[base] / med[case]:.1f}×" if base in med else "—"
            for base in ("pandas", "pandas_eval")
        ]
        each = ", ".join(f"{r['seconds']:.3f}" for r in runs)
        print(
            f"| `{case}` | {med[case]:.3f} | {each} | {cpu[case]:.3f} | "
            f"{statistics.median(peaks):,.0f} / {max(peaks):,.0f} | {runs[-1]['rows']:,} | "
            f"{' | '.join(ratios)} |"
        )


if __name__ == "__main__":
    main()
