"""Lake ingest/read benchmark: a synthetic 5,000-symbol × 2,520-day universe (12.6M bars).

    .venv/bin/python benchmarks/lake_ingest.py            # full size, 3 runs per case
    .venv/bin/python benchmarks/lake_ingest.py --symbols 500 --repeat 1   # quick look

Cases, each in a fresh child process (so peak RSS is the case's own):

- ``bf_upsert``      BreadthFlow ``Lake.upsert`` of the whole frame into an empty local lake
- ``bf_reupsert``    the same upsert again (idempotent: nothing rewritten)
- ``bf_read``        ``Lake.read`` of every symbol and date back into one Polars frame
- ``bf_fetch``       ``breadthflow data fetch --provider synthetic`` end to end (generate,
                     validate, upsert, record in the DB) — the user-facing ingest rate
- ``pandas_write``   baseline: ``DataFrame.to_parquet(partition_cols=["symbol"])``
- ``pandas_read``    baseline: ``pandas.read_parquet`` of that dataset

Prints a Markdown table (median seconds, rows/s, peak RSS, ratio to the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

from _harness import peak_rss_mb, run_cases

HERE = Path(__file__).resolve().parent
START = "2011-01-03"


def end_date(days: int) -> str:
    import numpy as np

    # ``days`` weekdays from START: the synthetic provider's calendar is Mon–Fri.
    end = np.busday_offset(np.datetime64(START), days - 1, roll="forward")
    return str(end)


def run_case(case: str, work: Path, symbols: int, days: int) -> dict:
    """Runs inside the child process."""
    import polars as pl

    from breadthflow.core.config import load_settings
    from breadthflow.core.models import Timeframe
    from breadthflow.data.lake import open_lake

    source = work / "source.parquet"
    lake_dir = work / "lake"
    settings = load_settings(home=work / "home")
    rows = symbols * days
    if case in {"bf_upsert", "bf_reupsert"}:
        frame = pl.read_parquet(source)
        rows = frame.height
        if case == "bf_upsert" and lake_dir.exists():
            shutil.rmtree(lake_dir)
        lake = open_lake(lake_dir.as_uri(), settings)
        began = time.perf_counter()
        result = lake.upsert(frame, Timeframe.D1)
        seconds = time.perf_counter() - began
        extra = {"inserted": result.inserted, "unchanged": result.unchanged}
    elif case == "bf_read":
        lake = open_lake(lake_dir.as_uri(), settings)
        began = time.perf_counter()
        frame = lake.read(None, Timeframe.D1)
        seconds = time.perf_counter() - began
        rows = frame.height
        extra = {}
    elif case == "bf_fetch":
        from breadthflow.services.context import AppContext
        from breadthflow.services.data import FetchRequest, fetch_bars

        home = work / "fetch-home"
        shutil.rmtree(home, ignore_errors=True)
        ctx = AppContext(load_settings(home=home, log_json=False))
        began = time.perf_counter()
        report = fetch_bars(
            ctx,
            FetchRequest("synthetic", START, end_date(days), universe=f"synthetic-{symbols}"),
        )
        seconds = time.perf_counter() - began
        rows = report.rows_inserted
        extra = {"failures": len(report.failures)}
    elif case == "pandas_write":
        import pandas as pd

        frame = pd.read_parquet(source)
        out = work / "pandas"
        shutil.rmtree(out, ignore_errors=True)
        began = time.perf_counter()
        frame.to_parquet(out, partition_cols=["symbol"], compression="zstd")
        seconds = time.perf_counter() - began
        extra = {}
    elif case == "pandas_read":
        import pandas as pd

        began = time.perf_counter()
        frame = pd.read_parquet(work / "pandas")
        seconds = time.perf_counter() - began
        rows = len(frame)
        extra = {}
    else:
        raise SystemExit(f"unknown case {case}")
    return {"case": case, "seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb(), **extra}


def prepare(work: Path, symbols: int, days: int) -> None:
    from breadthflow.core.models import Timeframe
    from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols

    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    frame = generate_bars(synthetic_symbols(symbols), START, end_date(days), timeframe=Timeframe.D1)
    import datetime as dt

    import polars as pl

    frame = frame.with_columns(
        pl.lit("synthetic").alias("source"),
        pl.lit(dt.datetime.now(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )
    frame.write_parquet(work / "source.parquet")
    print(
        f"generated {frame.height:,} bars ({symbols:,} symbols × {days:,} days) "
        f"in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "lake_ingest")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument(
        "--cases",
        default="bf_upsert,bf_reupsert,bf_read,bf_fetch,pandas_write,pandas_read",
    )
    args = parser.parse_args()
    args.work = args.work.resolve()
    if args.case:
        print(json.dumps(run_case(args.case, args.work, args.symbols, args.days)))
        return

    prepare(args.work, args.symbols, args.days)
    child_args = ["--work", str(args.work), "--symbols", str(args.symbols),
                  "--days", str(args.days)]  # fmt: skip
    results = run_cases(__file__, args.cases.split(","), args.repeat, child_args)

    baseline = {"bf_upsert": "pandas_write", "bf_fetch": "pandas_write", "bf_read": "pandas_read"}
    med = {c: statistics.median(r["seconds"] for r in rs) for c, rs in results.items()}
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.symbols:,} symbols × {args.days:,} days, "
        f"median of {args.repeat}\n"
    )
    print(
        "| case | median s | rows/s | peak RSS MB (median / max) "
        "| speed vs baseline (baseline s ÷ ours) |"
    )
    print("|---|---:|---:|---:|---:|")
    for case, rs in results.items():
        rows = rs[0]["rows"]
        ratio = ""
        if case in baseline and baseline[case] in med:
            ratio = f"{med[baseline[case]] / med[case]:.2f}× {baseline[case]}"
        peaks = [r["peak_mb"] for r in rs]
        peak = f"{statistics.median(peaks):,.0f} / {max(peaks):,.0f}"
        print(f"| {case} | {med[case]:.2f} | {rows / med[case]:,.0f} | {peak} | {ratio} |")


if __name__ == "__main__":
    main()
