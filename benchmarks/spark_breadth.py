"""Spark vs Polars on the synthetic breadth benchmark (the lake of benchmarks/breadth.py).

    .venv/bin/python benchmarks/spark_breadth.py --symbols 500 --repeat 1     # quick look
    .venv/bin/python benchmarks/spark_breadth.py --symbols 5000 --cores 2      # full size

Cases, each in a fresh child process (imports, opening the lake and starting Spark — JVM
and one warm-up job — happen before the clock):

- ``polars``      ``compute_breadth`` with ``engine=polars``: lake read + ``breadth_table``
- ``spark``       ``compute_breadth`` with ``engine=spark-local[N]``: the same lake read on
                  the driver, then the bars go to Spark (Arrow), ``breadth_counts`` per symbol
                  group in Spark's Python workers, counts summed per date by Spark,
                  ``breadth_from_counts`` on the driver
- ``spark_lake``  what a cluster does: Spark reads the lake's Parquet itself
                  (``engine.spark.read_lake_bars``), then the same distributed breadth — no
                  bars pass through the driver

The tables are checked to be identical to the Polars one. Peak RSS is the driver's Python
process only (Spark's JVM and its Python workers are other processes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _harness import peak_rss_mb, run_cases
from breadth import HL_WINDOW, START, end_date, lake_dir, prepare

HERE = Path(__file__).resolve().parent


def run_case(case: str, work: Path, symbols: int, days: int, cores: int) -> dict:
    """Runs inside the child process."""
    from breadthflow.core.config import load_settings
    from breadthflow.services.breadth import compute_breadth
    from breadthflow.services.context import AppContext

    lake = lake_dir(work, symbols, days)
    engine = "polars" if case == "polars" else f"spark-local[{cores}]"
    settings = load_settings(
        home=work / "home", lake_url=lake.as_uri(), engine=engine, log_json=False
    )
    ctx = AppContext(settings)
    ctx.lake  # noqa: B018 - open the lake outside the timing
    out = work / f"spark-{case}-{symbols}x{days}.parquet"
    if case != "polars":
        from breadthflow.engine import open_engine

        spark = open_engine(engine).session  # type: ignore[attr-defined]
        spark.sparkContext.setLogLevel("ERROR")
        from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols
        from breadthflow.engine import spark as sp

        # warm-up job: JVM code paths and Python workers started before the clock
        tiny = generate_bars(synthetic_symbols(4), START, end_date(30))
        sp.breadth_table(spark, tiny.select(sp.BREADTH_INPUT), hl_window=5)
    began = time.perf_counter()
    if case in ("polars", "spark"):
        table = compute_breadth(
            ctx, START, end_date(days), universe=f"synthetic-{symbols}", hl_window=HL_WINDOW
        )
    elif case == "spark_lake":
        bars = sp.read_lake_bars(spark, settings, "1d")
        table = sp.breadth_table(spark, bars, hl_window=HL_WINDOW)
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - began
    table.write_parquet(out)
    return {"case": case, "seconds": seconds, "rows": table.height, "peak_mb": peak_rss_mb()}


def check_agreement(work: Path, symbols: int, days: int, cases: list[str]) -> str:
    import polars as pl
    from polars.testing import assert_frame_equal

    reference = pl.read_parquet(work / f"spark-polars-{symbols}x{days}.parquet")
    for case in cases:
        if case != "polars":
            got = pl.read_parquet(work / f"spark-{case}-{symbols}x{days}.parquet")
            assert_frame_equal(got, reference)
    return "identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--cores", type=int, default=2, help="N of spark-local[N]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "breadth")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="polars,spark,spark_lake")
    args = parser.parse_args()
    if args.case:
        result = run_case(args.case, args.work, args.symbols, args.days, args.cores)
        print(json.dumps(result))
        return
    prepare(args.work, args.symbols, args.days)
    cases = args.cases.split(",")
    child_args = ["--symbols", str(args.symbols), "--days", str(args.days),
                  "--cores", str(args.cores), "--work", str(args.work)]  # fmt: skip
    results = run_cases(__file__, cases, args.repeat, child_args)
    agreement = check_agreement(args.work, args.symbols, args.days, cases)
    base = statistics.median(r["seconds"] for r in results["polars"]) if "polars" in results else 0
    print(f"\n{args.symbols:,} symbols × {args.days:,} days, spark-local[{args.cores}], "
          f"tables {agreement}\n")  # fmt: skip
    print("| case | median s | peak RSS MB (driver) | × polars |")
    print("|---|---:|---:|---:|")
    for case, runs in results.items():
        median = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        ratio = f"{median / base:.1f}" if base else "-"
        print(f"| {case} | {median:.2f} | {peak:,.0f} | {ratio} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
