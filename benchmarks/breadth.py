"""Breadth-table benchmark: a synthetic 5,000-symbol × 2,520-day universe in a local lake.

    .venv/bin/python benchmarks/breadth.py                       # full size, 3 runs per case
    .venv/bin/python benchmarks/breadth.py --symbols 500 --repeat 1   # quick look

Imports and opening the lake happen before the clock starts in every case.
The lake is written once and cached under benchmarks/.data/breadth/ (keyed by size).
Cases, each in a fresh child process (so peak RSS is the case's own):

- ``bf_breadth``  ``compute_breadth``: lake read of ``symbol, date, close, volume`` (1d) +
                  ``breadth_table`` — every column, hl_window 252
- ``bf_read``     the lake read alone (to show where the time goes)
- ``bf_table``    ``breadth_table`` alone, on the frame of that read (read before the clock)
- ``pandas``      baseline: a straightforward pandas implementation of the same columns
                  (``read_parquet`` of the lake's files, ``groupby("symbol")`` shift /
                  rolling, ``groupby("date")`` sums, ``ewm``) — what a user would write

The two tables are checked to agree (counts exactly, floats to 1e-6 relative).
Prints a Markdown table (median seconds, peak RSS, ratio to the baseline).
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
HL_WINDOW = 252
COLUMNS = ["symbol", "date", "close", "volume"]


def end_date(days: int) -> str:
    import numpy as np

    # ``days`` weekdays from START: the synthetic provider's calendar is Mon–Fri.
    return str(np.busday_offset(np.datetime64(START), days - 1, roll="forward"))


def lake_dir(work: Path, symbols: int, days: int) -> Path:
    return work / f"lake-{symbols}x{days}"


def prepare(work: Path, symbols: int, days: int) -> None:
    """Write the synthetic universe to a local lake once; later runs reuse it."""
    import datetime as dt

    import polars as pl

    from breadthflow.core.config import load_settings
    from breadthflow.core.models import Timeframe
    from breadthflow.data.lake import open_lake
    from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols

    target = lake_dir(work, symbols, days)
    done = target / "COMPLETE"
    settings = load_settings(home=work / "home", log_json=False)
    if done.exists():
        _refresh_snapshot(target, settings)
        return
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    began = time.perf_counter()
    frame = generate_bars(synthetic_symbols(symbols), START, end_date(days), timeframe=Timeframe.D1)
    frame = frame.with_columns(
        pl.lit("synthetic").alias("source"),
        pl.lit(dt.datetime.now(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )
    lake = open_lake(target.as_uri(), settings)
    lake.upsert(frame, Timeframe.D1)
    done.write_text(f"{frame.height}\n")
    print(
        f"wrote {frame.height:,} bars ({symbols:,} symbols × {days:,} days) to {target} "
        f"in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    _refresh_snapshot(target, settings)


def _refresh_snapshot(target: Path, settings) -> None:
    """What a fetch does after writing: bring the lake's read snapshot up to date."""
    from breadthflow.core.models import Timeframe
    from breadthflow.data.lake import open_lake

    report = open_lake(target.as_uri(), settings).refresh_snapshot(Timeframe.D1)
    if report is not None and report.status == "written":
        print(
            f"read snapshot: {report.rows:,} bars, {report.bytes / 2**20:,.0f} MB "
            f"in {report.seconds:.1f} s",
            file=sys.stderr,
        )


# --- the pandas baseline ---------------------------------------------------------------------


def pandas_breadth(bars, hl_window: int = HL_WINDOW):
    """The breadth table the straightforward pandas way (same definitions as docs/breadth.md)."""
    import numpy as np
    import pandas as pd

    df = bars.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    g = df.groupby("symbol", sort=False)["close"]
    close = df["close"]
    prev = g.shift(1)
    has_prev = prev.notna()
    df["adv"] = has_prev & (close > prev)
    df["dec"] = has_prev & (close < prev)
    df["unch"] = has_prev & (close == prev)
    df["cmp"] = has_prev
    df["adv_vol"] = df["volume"].where(df["adv"], 0.0)
    df["dec_vol"] = df["volume"].where(df["dec"], 0.0)
    for n in (20, 50, 200):
        sma = g.rolling(n).mean().droplevel(0)
        df[f"full{n}"] = sma.notna()
        df[f"above{n}"] = (close - sma) > 1e-9 * close.abs()
    prior_max = g.rolling(hl_window).max().droplevel(0).groupby(df["symbol"]).shift(1)
    prior_min = g.rolling(hl_window).min().droplevel(0).groupby(df["symbol"]).shift(1)
    df["full_hl"] = prior_max.notna()
    df["nh"] = close > prior_max
    df["nl"] = close < prior_min

    daily = df.groupby("date").sum(numeric_only=True)
    out = pd.DataFrame(index=daily.index)
    none = daily["cmp"] == 0
    for name, col in (("advances", "adv"), ("declines", "dec"), ("unchanged", "unch")):
        out[name] = daily[col].astype("float64").mask(none)
    out["adv_volume"] = daily["adv_vol"].mask(none)
    out["dec_volume"] = daily["dec_vol"].mask(none)
    a, d = out["advances"], out["declines"]

    def div(x, y):
        return (x / y).replace([np.inf, -np.inf], np.nan).mask(y == 0)

    def ema(x, span):
        return x.ewm(span=span, adjust=False, ignore_na=True).mean().mask(x.isna())

    out["net_advances"] = a - d
    out["ad_line"] = out["net_advances"].cumsum()
    net = out["net_advances"]
    out["mcclellan_osc"] = ema(net, 19) - ema(net, 39)
    ratio = div((a - d) * 1000.0, a + d)
    out["mcclellan_osc_ratio"] = ema(ratio, 19) - ema(ratio, 39)
    out["mcclellan_sum"] = out["mcclellan_osc"].cumsum()
    for n in (20, 50, 200):
        out[f"pct_above_sma{n}"] = div(daily[f"above{n}"] * 100.0, daily[f"full{n}"])
    no_hl = daily["full_hl"] == 0
    out["new_highs"] = daily["nh"].astype("float64").mask(no_hl)
    out["new_lows"] = daily["nl"].astype("float64").mask(no_hl)
    pct = div(out["new_highs"] * 100.0, out["new_highs"] + out["new_lows"])
    hl = pct.rolling(10, min_periods=1).mean()
    first = pct.notna().to_numpy().argmax() if pct.notna().any() else len(pct)
    hl.iloc[: first + 9] = np.nan
    out["hl_index"] = hl
    out["trin"] = div(div(a, d), div(out["adv_volume"], out["dec_volume"]))
    out["zbt"] = ema(div(a, a + d), 10)
    low = (out["zbt"] < 0.40).astype(float).rolling(10, min_periods=1).max().shift(1)
    out["zbt_thrust"] = ((out["zbt"] > 0.615) & (low == 1)).mask(out["zbt"].isna())
    return out.reset_index()


# --- cases -----------------------------------------------------------------------------------


def run_case(case: str, work: Path, symbols: int, days: int) -> dict:
    """Runs inside the child process."""
    from breadthflow.core.config import load_settings

    lake = lake_dir(work, symbols, days)
    settings = load_settings(home=work / "home", lake_url=lake.as_uri(), log_json=False)
    out = work / f"{case}-{symbols}x{days}.parquet"
    if case == "bf_breadth":
        from breadthflow.services.breadth import compute_breadth
        from breadthflow.services.context import AppContext

        ctx = AppContext(settings)
        ctx.lake  # noqa: B018 - open the lake (imports, root check) outside the timing
        began = time.perf_counter()
        table = compute_breadth(
            ctx, START, end_date(days), universe=f"synthetic-{symbols}", hl_window=HL_WINDOW
        )
        seconds = time.perf_counter() - began
        table.write_parquet(out)
        rows = table.height
    elif case == "bf_read":
        from breadthflow.core.models import Timeframe
        from breadthflow.data.lake import open_lake

        opened = open_lake(lake.as_uri(), settings)
        began = time.perf_counter()
        frame = opened.read(None, Timeframe.D1, columns=COLUMNS)
        seconds = time.perf_counter() - began
        rows = frame.height
    elif case == "bf_table":
        from breadthflow.core.models import Timeframe
        from breadthflow.data.lake import open_lake
        from breadthflow.indicators.breadth import breadth_table

        frame = open_lake(lake.as_uri(), settings).read(None, Timeframe.D1, columns=COLUMNS)
        began = time.perf_counter()
        table = breadth_table(frame, hl_window=HL_WINDOW)
        seconds = time.perf_counter() - began
        rows = table.height
    elif case == "pandas":
        import pandas as pd
        import pyarrow.dataset  # noqa: F401 - imported outside the timing, as for the lake

        began = time.perf_counter()
        bars = pd.read_parquet(lake / "bars" / "timeframe=1d", columns=COLUMNS, partitioning=None)
        table = pandas_breadth(bars)
        seconds = time.perf_counter() - began
        table.to_parquet(out)
        rows = len(table)
    else:
        raise SystemExit(f"unknown case {case}")
    return {"case": case, "seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb()}


def check_agreement(work: Path, symbols: int, days: int) -> str:
    """Compare the two tables written by the last bf_breadth and pandas runs."""
    import math

    import polars as pl

    ours = pl.read_parquet(work / f"bf_breadth-{symbols}x{days}.parquet")
    theirs = pl.read_parquet(work / f"pandas-{symbols}x{days}.parquet")
    theirs = theirs.with_columns(pl.col("date").cast(pl.Date))
    assert ours.height == theirs.height, (ours.height, theirs.height)
    worst = 0.0
    for name in ours.columns:
        a, b = ours[name].to_list(), theirs[name].to_list()
        for x, y in zip(a, b, strict=True):
            if x is None or y is None or (isinstance(y, float) and math.isnan(y)):
                assert x is None and (y is None or math.isnan(y)), (name, x, y)
            elif isinstance(x, float):
                assert math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9), (name, x, y)
                worst = max(worst, abs(x - y) / max(abs(y), 1e-12))
            else:
                assert x == y, (name, x, y)
    return f"tables agree: {ours.height:,} dates × {ours.width} columns, worst rel diff {worst:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "breadth")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="bf_breadth,bf_read,bf_table,pandas")
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
    if {"bf_breadth", "pandas"} <= set(cases):
        print(check_agreement(args.work, args.symbols, args.days), file=sys.stderr)

    med = {c: statistics.median(r["seconds"] for r in rs) for c, rs in results.items()}
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.symbols:,} symbols × {args.days:,} days, "
        f"median of {args.repeat}\n"
    )
    print("| case | median s | runs s | peak RSS MB (median / max) | speed vs pandas |")
    print("|---|---:|---:|---:|---:|")
    for case, rs in results.items():
        ratio = f"{med['pandas'] / med[case]:.1f}×" if "pandas" in med else ""
        runs = ", ".join(f"{r['seconds']:.2f}" for r in rs)
        peaks = [r["peak_mb"] for r in rs]
        peak = f"{statistics.median(peaks):,.0f} / {max(peaks):,.0f}"
        print(f"| {case} | {med[case]:.2f} | {runs} | {peak} | {ratio} |")


if __name__ == "__main__":
    main()
