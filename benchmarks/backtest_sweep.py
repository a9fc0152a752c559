"""SMA-cross sweep benchmark: 500 synthetic symbols × 2,520 days × 100 (fast, slow) pairs.

    .venv/bin/python benchmarks/backtest_sweep.py                          # full size, 3 runs
    .venv/bin/python benchmarks/backtest_sweep.py --symbols 50 --repeat 1  # quick look

Pairs: fast 5, 10, …, 50 × slow 60, 80, …, 240 (100 pairs); fees 0.1 %, no slippage, fills
at the close (vectorbt's ``from_signals`` model), all-in long, one account per (pair,
symbol) — 50,000 backtests of 2,520 bars. The bars are generated once and cached under
benchmarks/.data/backtest_sweep/ (keyed by size); the numba cache is warmed there too.
Cases, each in a fresh child process (so peak RSS is the case's own); loading the bars and
imports happen before the clock starts:

- ``bf_sweep``       ``sma_cross_sweep`` (fused numba kernel, compiled code from the cache;
                     loading it is timed apart, as ``load_s``)
- ``bf_sweep_cold``  the same with an empty numba cache (``load_s`` is the compile time)
- ``vbt``            vectorbt 1.2: ``MA.run`` × 2 + ``ma_crossed_above/below`` +
                     ``Portfolio.from_signals(size=inf)`` + ``total_return`` — the usual way

Prints a Markdown table (median seconds, peak RSS) and how many of the 50,000 total
returns agree between bf_sweep and vbt (to 1e-9; crosses decided by a float tie can differ:
vectorbt's rolling mean is a plain running sum and it has no tie tolerance).
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

HERE = Path(__file__).resolve().parent
START = "2011-01-03"
FAST = list(range(5, 55, 5))
SLOW = list(range(60, 260, 20))
FEES = 0.001
CASH = 10_000.0


def pairs() -> tuple[list[int], list[int]]:
    grid = [(f, s) for f in FAST for s in SLOW]
    return [f for f, _ in grid], [s for _, s in grid]


def bars_file(work: Path, symbols: int, days: int) -> Path:
    return work / f"bars-{symbols}x{days}.parquet"


def prepare(work: Path, symbols: int, days: int) -> None:
    """Generate the universe once; compile our kernels once into the numba cache."""
    import numpy as np

    from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols

    work.mkdir(parents=True, exist_ok=True)
    target = bars_file(work, symbols, days)
    if not target.exists():
        end = str(np.busday_offset(np.datetime64(START), days - 1, roll="forward"))
        frame = generate_bars(synthetic_symbols(symbols), START, end)
        frame.select("symbol", "date", "open", "high", "low", "close").write_parquet(target)
        print(f"wrote {frame.height:,} bars to {target}", file=sys.stderr)
    prices = load_prices(work, symbols, days)
    from breadthflow.backtest.config import BacktestConfig
    from breadthflow.backtest.sweep import sma_cross_sweep

    sma_cross_sweep(prices.select(prices.symbols[:2]), [5], [60], BacktestConfig())


def load_prices(work: Path, symbols: int, days: int):
    import polars as pl

    from breadthflow.backtest.prices import PriceMatrix

    return PriceMatrix.from_bars(pl.read_parquet(bars_file(work, symbols, days)))


def run_case(case: str, work: Path, symbols: int, days: int) -> dict:
    """Runs inside the child process."""
    if case == "bf_sweep_cold":
        import tempfile

        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="bf-numba-")
    import numpy as np
    import polars as pl

    prices = load_prices(work, symbols, days)
    fast, slow = pairs()
    out = work / f"{case}-{symbols}x{days}.parquet"
    extra: dict = {}
    if case in ("bf_sweep", "bf_sweep_cold"):
        from breadthflow.backtest.config import BacktestConfig
        from breadthflow.backtest.sweep import sma_cross_sweep

        cfg = BacktestConfig(cash=CASH, fees=FEES, slippage=0.0, execution="close")
        # Load the compiled kernels (or, cold, compile them) outside the sweep's timing;
        # reported as load_s.
        began = time.perf_counter()
        sma_cross_sweep(prices.select(prices.symbols[:1]), [5], [60], cfg)
        extra = {"load_s": time.perf_counter() - began}
        began = time.perf_counter()
        table = sma_cross_sweep(prices, fast, slow, cfg)
        seconds = time.perf_counter() - began
        table.select("fast", "slow", "symbol", "total_return_pct").write_parquet(out)
        rows = table.height
    elif case == "vbt":
        import pandas as pd
        import vectorbt as vbt

        close = pd.DataFrame(
            prices.close, index=pd.DatetimeIndex(prices.dates), columns=list(prices.symbols)
        )
        began = time.perf_counter()
        fast_ma = vbt.MA.run(close, fast, short_name="fast")
        slow_ma = vbt.MA.run(close, slow, short_name="slow")
        entries = fast_ma.ma_crossed_above(slow_ma)
        exits = fast_ma.ma_crossed_below(slow_ma)
        signals_done = time.perf_counter()
        portfolio = vbt.Portfolio.from_signals(
            close, entries, exits, fees=FEES, init_cash=CASH, size=np.inf,
            direction="longonly", freq="1D",
        )  # fmt: skip
        total = portfolio.total_return()
        seconds = time.perf_counter() - began
        extra = {"signals_s": signals_done - began, "portfolio_s": seconds - (signals_done - began)}
        frame = total.reset_index()
        frame.columns = ["fast", "slow", "symbol", "total_return"]
        pl.from_pandas(frame).write_parquet(out)
        rows = len(frame)
    else:
        raise SystemExit(f"unknown case {case}")
    return {"case": case, "seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb(), **extra}


def check_agreement(work: Path, symbols: int, days: int) -> str:
    import polars as pl

    ours = pl.read_parquet(work / f"bf_sweep-{symbols}x{days}.parquet")
    theirs = pl.read_parquet(work / f"vbt-{symbols}x{days}.parquet").with_columns(
        pl.col("fast").cast(pl.Int64), pl.col("slow").cast(pl.Int64)
    )
    both = ours.join(theirs, on=["fast", "slow", "symbol"])
    assert both.height == ours.height == theirs.height, (both.height, ours.height)
    ours_r = both["total_return_pct"].to_numpy() / 100
    theirs_r = both["total_return"].to_numpy()
    import numpy as np

    diff = np.abs(ours_r - theirs_r) / np.maximum(1.0, np.abs(theirs_r))
    same = int((diff <= 1e-9).sum())
    return (
        f"total returns agree (1e-9) for {same:,} of {both.height:,} backtests; "
        f"largest difference {diff.max():.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "backtest_sweep")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="bf_sweep,bf_sweep_cold,vbt")
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
    if {"bf_sweep", "vbt"} <= set(cases):
        print(check_agreement(args.work, args.symbols, args.days), file=sys.stderr)

    med = {c: statistics.median(r["seconds"] for r in rs) for c, rs in results.items()}
    n_pairs = len(FAST) * len(SLOW)
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.symbols:,} symbols × {args.days:,} days × "
        f"{n_pairs} pairs, median of {args.repeat}\n"
    )
    print("| case | median s | runs s | peak RSS MB (median / max) | speed vs vbt |")
    print("|---|---:|---:|---:|---:|")
    for case, rs in results.items():
        ratio = f"{med['vbt'] / med[case]:.1f}×" if "vbt" in med else ""
        runs = ", ".join(f"{r['seconds']:.2f}" for r in rs)
        peaks = [r["peak_mb"] for r in rs]
        peak = f"{statistics.median(peaks):,.0f} / {max(peaks):,.0f}"
        print(f"| {case} | {med[case]:.2f} | {runs} | {peak} | {ratio} |")
    for case in ("bf_sweep", "bf_sweep_cold"):
        if case in results:
            load = statistics.median(r["load_s"] for r in results[case])
            print(f"\n{case}: kernels loaded/compiled in {load:.1f} s (median, not in the table)")
    if "vbt" in results:
        signals = statistics.median(r["signals_s"] for r in results["vbt"])
        rest = statistics.median(r["portfolio_s"] for r in results["vbt"])
        print(
            f"\nvbt split (median): signals {signals:.1f} s, portfolio + total_return {rest:.1f} s"
        )


if __name__ == "__main__":
    main()
