"""Scanner benchmark: one formula over a synthetic 5,000-symbol × 2,520-day universe.

    .venv/bin/python benchmarks/scan.py                           # full size, 3 runs per case
    .venv/bin/python benchmarks/scan.py --symbols 500 --repeat 1   # quick look

Formula: ``close > sma(close, 200) and volume > 2 * sma(volume, 20)`` over the whole range.
The lake is the one benchmarks/breadth.py writes (cached under benchmarks/.data/breadth/).
Cases, each in a fresh child process (imports and opening the lake before the clock):

- ``bf_scan``    ``services.scan.run_scan`` (not stored): compile, read bars from the lake,
                 evaluate over the whole universe at once, collect the matches
- ``bf_eval``    the formula's evaluation alone, on bars already in memory
- ``pandas``     baseline: a sequential per-symbol loop — read the symbol's bars with
                 pandas, ``rolling(200).mean()`` / ``rolling(20).mean()``, the condition,
                 collect the matching dates — what a user would write

The match sets of bf_scan and pandas are checked to be identical.
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

HERE = Path(__file__).resolve().parent
FORMULA = "close > sma(close, 200) and volume > 2 * sma(volume, 20)"
COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]


def run_case(case: str, work: Path, symbols: int, days: int) -> dict:
    import polars as pl

    from breadthflow.core.config import load_settings

    lake = lake_dir(work, symbols, days)
    settings = load_settings(home=work / "home", lake_url=lake.as_uri(), log_json=False)
    out = work / f"scan-{case}-{symbols}x{days}.parquet"
    if case == "bf_scan":
        from breadthflow.core.models import DateRange
        from breadthflow.services.context import AppContext
        from breadthflow.services.scan import run_scan

        ctx = AppContext(settings)
        ctx.lake  # noqa: B018 - open the lake outside the timing
        period = DateRange.parse(START, end_date(days))
        began = time.perf_counter()
        outcome = run_scan(ctx, FORMULA, period, universe=f"synthetic-{symbols}", store=False)
        seconds = time.perf_counter() - began
        outcome.matches.select("symbol", "date").write_parquet(out)
        rows = outcome.matches.height
    elif case == "bf_eval":
        from breadthflow.core.models import Timeframe
        from breadthflow.data.lake import open_lake
        from breadthflow.scan.formula import compile_formula

        bars = open_lake(lake.as_uri(), settings).read(None, Timeframe.D1, columns=COLUMNS)
        formula = compile_formula(FORMULA)
        began = time.perf_counter()
        result = formula.evaluate(bars).filter(pl.col("match"))
        seconds = time.perf_counter() - began
        rows = result.height
    elif case == "pandas":
        import pandas as pd

        files = sorted((lake / "bars" / "timeframe=1d").glob("symbol=*/part-0.parquet"))
        began = time.perf_counter()
        found = []
        for path in files:
            df = pd.read_parquet(path, columns=["date", "close", "volume"])
            condition = (df["close"] > df["close"].rolling(200).mean()) & (
                df["volume"] > 2 * df["volume"].rolling(20).mean()
            )
            symbol = path.parent.name.removeprefix("symbol=")
            found.append(pd.DataFrame({"symbol": symbol, "date": df.loc[condition, "date"]}))
        matches = pd.concat(found, ignore_index=True)
        seconds = time.perf_counter() - began
        matches.to_parquet(out)
        rows = len(matches)
    else:
        raise SystemExit(f"unknown case {case}")
    return {"case": case, "seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb()}


def check_agreement(work: Path, symbols: int, days: int) -> str:
    import polars as pl

    ours = pl.read_parquet(work / f"scan-bf_scan-{symbols}x{days}.parquet")
    theirs = pl.read_parquet(work / f"scan-pandas-{symbols}x{days}.parquet").with_columns(
        pl.col("date").cast(pl.Date)
    )
    a = set(ours.select("symbol", "date").iter_rows())
    b = set(theirs.select("symbol", "date").iter_rows())
    assert a == b, (len(a - b), len(b - a))
    return f"match sets agree: {len(a):,} (symbol, date) matches"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "breadth")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="bf_scan,bf_eval,pandas")
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
    if {"bf_scan", "pandas"} <= set(cases):
        print(check_agreement(args.work, args.symbols, args.days), file=sys.stderr)

    med = {c: statistics.median(r["seconds"] for r in rs) for c, rs in results.items()}
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.symbols:,} symbols × {args.days:,} days, "
        f"median of {args.repeat}\n"
    )
    print("| case | median s | runs s | peak RSS MB (median / max) | matches | speed vs pandas |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, runs in results.items():
        peaks = [r["peak_mb"] for r in runs]
        ratio = f"{med['pandas'] / med[case]:.1f}×" if "pandas" in med else "—"
        each = ", ".join(f"{r['seconds']:.3f}" for r in runs)
        print(
            f"| `{case}` | {med[case]:.3f} | {each} | "
            f"{statistics.median(peaks):,.0f} / {max(peaks):,.0f} | {runs[-1]['rows']:,} | "
            f"{ratio} |"
        )


if __name__ == "__main__":
    main()
