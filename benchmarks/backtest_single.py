"""One SMA-cross backtest (fast 10, slow 30) of one symbol × 2,520 days, vs backtesting.py.

    .venv/bin/python benchmarks/backtest_single.py                  # 3 runs per case, ≈ 2 min
    .venv/bin/python benchmarks/backtest_single.py --repeat 1 --inner 3   # quick look

Both sides trade the same rules: fills at the signal bar's close, 0.1 % commission on the
traded value of every fill, no slippage, all-in, whole shares (backtesting.py sizes in whole
units; we set ``integer_shares=True``), $10,000. ``--direction longshort`` (default) is
backtesting.py's canonical ``SmaCross`` — ``buy()`` on the cross up, ``sell()`` on the cross
down, ``exclusive_orders=True`` reversing the position; ``--direction long`` closes instead of
selling short. The bars (the ``synthetic`` provider's first symbol, 2011-01-03 + 2,520
weekdays) are generated once and cached under benchmarks/.data/backtest_single/; the numba
cache is warmed there too. Cases, each in a fresh child process (so peak RSS is the case's
own), interleaved run by run (so a change in machine load hits every case alike); imports,
loading the bars and one untimed warm-up call happen before the clock starts (their times
are reported apart), then ``--inner`` timed loops of ``--iters`` backtests (``--bt-iters``
for backtesting.py), per-backtest time = loop time / iterations, both wall-clock and the
process's CPU time (the CPU time is what other processes on a loaded machine disturb least):

- ``btpy``       backtesting.py 0.6: ``Backtest(df, SmaCross, …)`` + ``run()``. ``run()``
                 computes its indicators (``self.I`` of a pandas rolling mean, twice), steps
                 through the bars calling ``next()`` (``crossover`` from
                 ``backtesting.lib``), fills the orders, and computes its stats table: a
                 Series of 32 statistics plus the ``_equity_curve`` frame (equity, drawdown
                 %, drawdown duration) and the ``_trades`` frame. tqdm disabled.
- ``bf_e2e``     the same work on our side, what a user writes: ``PriceMatrix.from_bars(bars)``
                 (validation, one symbol: no pivot) + SMAs and crosses
                 (``sweep.sma_cross_signals``, compiled; equal to the NumPy ``sma_crosses``
                 below, checked) +
                 ``run_backtest`` (simulation and the ``equity``, ``symbol_equity`` and
                 ``trades`` frames) + ``result.stats(benchmark=bars)`` (all 43 statistics,
                 buy & hold of the symbol as benchmark, from the engine's arrays).
- ``bf_e2e_before`` (with ``--before-src``) ``bf_e2e`` as it was written for, and run on, an
                 earlier version of the package: the before/after of a change, in one run.
- ``bf_e2e_frames`` as ``bf_e2e`` but the statistics through ``compute_stats`` on the result
                 frames (the general path: frames read back) — same numbers, checked below.
- ``bf_engine``  ``run_backtest`` alone, on precomputed entry/exit arrays
- ``bf_kernel``  the compiled simulation alone (``_kernels.simulate_accounts``, internal;
                 shows how much of ``bf_engine`` is building the result frames)
- ``bf_cold``    ``bf_e2e``'s first call with an empty numba cache: import + compile + one
                 backtest (seconds, reported apart)

Then checks that the two agree — same trades (count, sizes, prices), final equity to 1e-6
relative — for both directions, with whole shares and with fractional shares
(``backtesting.lib.FractionalBacktest``, unit 1e-8, against our default fractional sizing);
that the statistics backtesting.py defines the same way agree with its table; and that
``bf_e2e``'s stats dict equals ``bf_e2e_frames``'s exactly. Prints a Markdown table (median
per-backtest time, peak RSS, speed vs backtesting.py).
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
FAST, SLOW = 10, 30
CASH = 10_000.0
FEES = 0.001
TIE = 1e-9  # breadthflow's SMA tie tolerance (relative), as in sma_cross_sweep


def bars_file(work: Path, days: int) -> Path:
    return work / f"bars-1x{days}.parquet"


def prepare(work: Path, days: int) -> None:
    """Generate the bars once; compile our kernels once into the numba cache."""
    import numpy as np
    import polars as pl

    from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols

    work.mkdir(parents=True, exist_ok=True)
    target = bars_file(work, days)
    if not target.exists():
        end = str(np.busday_offset(np.datetime64(START), days - 1, roll="forward"))
        frame = generate_bars(synthetic_symbols(1), START, end)
        frame.select("symbol", "date", "open", "high", "low", "close", "volume").write_parquet(
            target
        )
        print(f"wrote {frame.height:,} bars to {target}", file=sys.stderr)
    our_backtest(pl.read_parquet(target), config("longshort"))


# --- our side --------------------------------------------------------------------------------


def config(direction: str, integer_shares: bool = True):
    from breadthflow.backtest.config import BacktestConfig

    return BacktestConfig(
        cash=CASH, fees=FEES, slippage=0.0, execution="close", direction=direction,
        integer_shares=integer_shares,
    )  # fmt: skip


def sma(x, n: int):
    """Simple moving average of a 1-D array (NaN for the first ``n - 1`` values)."""
    import numpy as np

    sums = np.cumsum(np.concatenate(([0.0], x)))
    out = np.full(len(x), np.nan)
    out[n - 1 :] = (sums[n:] - sums[:-n]) / n
    return out


def sma_crosses(close, fast: int = FAST, slow: int = SLOW):
    """Entries/exits ``(T, 1)``: SMA(fast) crosses above / below SMA(slow) — above now, not
    above on the previous bar, both defined; within 1e-9 relative is a tie (the rule of
    ``sma_cross_sweep``)."""
    import numpy as np

    f, s = sma(close, fast), sma(close, slow)
    with np.errstate(invalid="ignore"):
        above = f - s > TIE * np.abs(s)
        below = s - f > TIE * np.abs(f)
    defined = ~np.isnan(s)
    both = np.zeros(len(close), dtype=bool)
    both[1:] = defined[1:] & defined[:-1]
    entries = both.copy()
    exits = both
    entries[1:] &= above[1:] & ~above[:-1]
    exits[1:] &= below[1:] & ~below[:-1]
    return entries[:, None], exits[:, None]


def our_backtest(bars, cfg):
    """The user's path, end to end: bars → price matrix → SMA crosses → backtest (equity,
    per-symbol equity and trade frames) → the full stats dict with buy & hold of the symbol
    as benchmark. ``from_bars`` takes its single-symbol route (no pivot) and
    ``BacktestResult.stats`` reads the engine's arrays instead of the frames."""
    from breadthflow.backtest.engine import run_backtest
    from breadthflow.backtest.prices import PriceMatrix
    from breadthflow.backtest.sweep import sma_cross_signals

    prices = PriceMatrix.from_bars(bars)
    entries, exits = sma_cross_signals(prices, FAST, SLOW)
    result = run_backtest(prices, entries, exits, cfg)
    return result, result.stats(benchmark=bars)


def our_backtest_before(bars, cfg):
    """``bf_e2e`` as this benchmark wrote it before the single-symbol fast paths (run on the
    ``--before-src`` package): NumPy crosses, ``compute_stats`` on the result frames."""
    from breadthflow.backtest.engine import run_backtest
    from breadthflow.backtest.metrics import compute_stats
    from breadthflow.backtest.prices import PriceMatrix

    prices = PriceMatrix.from_bars(bars)
    entries, exits = sma_crosses(prices.close[:, 0])
    result = run_backtest(prices, entries, exits, cfg)
    stats = compute_stats(
        result.equity,
        result.trades,
        benchmark=bars.select("date", "close"),
        exposure=result.equity["exposure"],
    )
    return result, stats


def our_backtest_frames(bars, cfg):
    """The same through the general entry points: ``compute_stats`` on the result frames."""
    from breadthflow.backtest.engine import run_backtest
    from breadthflow.backtest.metrics import compute_stats
    from breadthflow.backtest.prices import PriceMatrix
    from breadthflow.backtest.sweep import sma_cross_signals

    prices = PriceMatrix.from_bars(bars)
    entries, exits = sma_cross_signals(prices, FAST, SLOW)
    result = run_backtest(prices, entries, exits, cfg)
    stats = compute_stats(
        result.equity.select("date", "equity"),
        result.trades,
        benchmark=bars.select("date", "close"),
        exposure=result.equity["exposure"],
    )
    return result, stats


# --- backtesting.py ------------------------------------------------------------------------


def btpy_frame(bars):
    import pandas as pd

    df = bars.select("date", "open", "high", "low", "close", "volume").to_pandas()
    df = df.set_index(pd.DatetimeIndex(df.pop("date")))
    df.columns = ["Open", "High", "Low", "Close", "Volume"]
    return df


def btpy_strategy(long_only: bool):
    import pandas as pd
    from backtesting import Strategy
    from backtesting.lib import crossover

    def sma_indicator(values, n):
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):
        n1 = FAST
        n2 = SLOW

        def init(self):
            self.ma1 = self.I(sma_indicator, self.data.Close, self.n1)
            self.ma2 = self.I(sma_indicator, self.data.Close, self.n2)

        def next(self):
            if crossover(self.ma1, self.ma2):
                self.buy()
            elif crossover(self.ma2, self.ma1):
                if long_only:
                    self.position.close()
                else:
                    self.sell()

    return SmaCross


def btpy_run(df, strategy, fractional: bool = False):
    from backtesting import Backtest
    from backtesting.lib import FractionalBacktest

    kwargs = {"cash": CASH, "commission": FEES, "trade_on_close": True, "exclusive_orders": True}
    if fractional:
        return FractionalBacktest(df, strategy, fractional_unit=1e-8, **kwargs).run()
    return Backtest(df, strategy, **kwargs).run()


# --- cases -----------------------------------------------------------------------------------


def timed(fn, iters: int, inner: int) -> list[tuple[float, float]]:
    """Per-call ``(wall, cpu)`` seconds of ``inner`` loops of ``iters`` calls each."""
    out = []
    for _ in range(inner):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(iters):
            fn()
        out.append(((time.perf_counter() - wall) / iters, (time.process_time() - cpu) / iters))
    return out


def run_case(case: str, work: Path, days: int, direction: str, iters: int, inner: int) -> dict:
    """Runs inside the child process."""
    if case == "bf_e2e_before":
        # Another checkout's package (``--before-src``) ahead of ours on the path.
        sys.path.insert(0, os.environ["BF_BEFORE_SRC"])
    if case == "bf_cold":
        import tempfile

        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="bf-numba-")
    if case == "btpy":
        os.environ["TQDM_DISABLE"] = "1"  # its progress bar: off, for the strongest baseline
    began = time.perf_counter()
    if case == "btpy":
        import backtesting  # noqa: F401
        import pandas  # noqa: F401
    else:
        import numpy as np

        from breadthflow.backtest import _kernels as nb
        from breadthflow.backtest.engine import kernel_args, run_backtest, stop_args
        from breadthflow.backtest.prices import PriceMatrix

        if case != "bf_e2e_before":
            from breadthflow.backtest.sweep import sma_cross_signals
    import polars as pl

    import_s = time.perf_counter() - began
    bars = pl.read_parquet(bars_file(work, days))
    cfg = None if case == "btpy" else config(direction)
    extra: dict = {}

    if case in ("bf_e2e", "bf_cold"):

        def call():
            return our_backtest(bars, cfg)

    elif case == "bf_e2e_before":

        def call():
            return our_backtest_before(bars, cfg)

    elif case == "bf_e2e_frames":

        def call():
            return our_backtest_frames(bars, cfg)

    elif case in ("bf_engine", "bf_kernel"):
        prices = PriceMatrix.from_bars(bars)
        entries, exits = sma_crosses(prices.close[:, 0])
        if case == "bf_engine":

            def call():
                return run_backtest(prices, entries, exits, cfg)

        else:
            t, n = prices.shape
            fields = [np.ascontiguousarray(a.T) for a in (prices.open, prices.high,
                                                          prices.low, prices.close)]  # fmt: skip
            signals = (np.ascontiguousarray(entries.T), np.ascontiguousarray(exits.T))
            capacity = int(np.count_nonzero(entries | exits)) + n

            def call():
                per = np.empty((3, n, t))
                ints = np.zeros((capacity, nb.TRADE_INTS), dtype=np.int64)
                floats = np.zeros((capacity, nb.TRADE_FLOATS))
                return nb.simulate_accounts(
                    *fields, *signals, *kernel_args(cfg), *stop_args(cfg),
                    per[0], per[1], per[2], ints, floats, True,
                )  # fmt: skip

    elif case == "btpy":
        df = btpy_frame(bars)
        strategy = btpy_strategy(long_only=direction == "long")

        def call():
            return btpy_run(df, strategy)

    else:
        raise SystemExit(f"unknown case {case}")

    began = time.perf_counter()
    call()  # warm-up: loads (bf_cold: compiles) the kernels; not in the per-backtest times
    first_s = time.perf_counter() - began
    if case == "bf_cold":
        import shutil

        shutil.rmtree(os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)
        return {"case": case, "seconds": import_s + first_s, "import_s": import_s,
                "first_s": first_s, "peak_mb": peak_rss_mb()}  # fmt: skip

    began = time.perf_counter()
    loops = timed(call, iters, inner)
    seconds = time.perf_counter() - began
    per = [wall for wall, _ in loops]
    extra["cpu_median"] = statistics.median(cpu for _, cpu in loops)
    if case == "bf_e2e":  # where the time goes
        prices = PriceMatrix.from_bars(bars)
        entries, exits = sma_cross_signals(prices, FAST, SLOW)
        result = run_backtest(prices, entries, exits, cfg)
        stages = {
            "from_bars": lambda: PriceMatrix.from_bars(bars),
            "signals": lambda: sma_cross_signals(prices, FAST, SLOW),
            "run_backtest": lambda: run_backtest(prices, entries, exits, cfg),
            "stats": lambda: result.stats(benchmark=bars),
        }
        extra["split"] = {
            k: statistics.median(cpu for _, cpu in timed(f, iters, inner))
            for k, f in stages.items()
        }
    return {
        "case": case, "seconds": seconds, "per_backtest": per,
        "median": statistics.median(per), "import_s": import_s, "first_s": first_s,
        "iters": iters, "peak_mb": peak_rss_mb(), **extra,
    }  # fmt: skip


# --- agreement ----------------------------------------------------------------------------


# Statistics both sides define the same way (docs/backtest-metrics.md lists the others).
SHARED_STATS = (
    ("equity_final", "Equity Final [$]"), ("equity_peak", "Equity Peak [$]"),
    ("total_return_pct", "Return [%]"), ("return_ann_pct", "Return (Ann.) [%]"),
    ("cagr_pct", "CAGR [%]"), ("max_drawdown_pct", "Max. Drawdown [%]"),
    ("avg_drawdown_pct", "Avg. Drawdown [%]"), ("calmar", "Calmar Ratio"),
    ("n_trades", "# Trades"), ("win_rate_pct", "Win Rate [%]"), ("sqn", "SQN"),
    ("kelly", "Kelly Criterion"),
)  # fmt: skip
# A trade's return: ours is P&L over the entry cost *with* its fee (docs/backtesting.md),
# theirs over the entry value without it — with fees f, ours × (1 + f) is theirs. (Their
# geometric "Avg. Trade" is not linear in that; tests/backtest/test_metrics.py compares it
# without fees.)
TRADE_RETURN_STATS = (
    ("best_trade_pct", "Best Trade [%]"), ("worst_trade_pct", "Worst Trade [%]"),
    ("expectancy_pct", "Expectancy [%]"),
)  # fmt: skip


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def cfg_of(direction: str, fractional: bool):
    return config(direction, integer_shares=not fractional)


def check_agreement(work: Path, days: int) -> list[str]:
    """Our end-to-end path vs backtesting.py: trades and final equity, both directions,
    whole and fractional shares."""
    import warnings

    import numpy as np
    import polars as pl

    from breadthflow.backtest.prices import PriceMatrix
    from breadthflow.backtest.sweep import sma_cross_signals

    os.environ["TQDM_DISABLE"] = "1"
    bars = pl.read_parquet(bars_file(work, days))
    df = btpy_frame(bars)
    prices = PriceMatrix.from_bars(bars)
    for ours, plain in zip(sma_cross_signals(prices, FAST, SLOW), sma_crosses(prices.close[:, 0]),
                           strict=True):  # fmt: skip
        assert (ours == plain).all(), "compiled crosses differ from the NumPy ones"
    lines = []
    for direction in ("longshort", "long"):
        for fractional in (False, True):
            ours, stats = our_backtest(bars, cfg_of(direction, fractional))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = btpy_run(df, btpy_strategy(direction == "long"), fractional)
            mine = ours.trades
            closed = mine.filter(~pl.col("is_open"))
            their_trades = theirs["_trades"]
            n_open = len(theirs["_strategy"].trades)
            assert closed.height == theirs["# Trades"] == len(their_trades), (
                closed.height, theirs["# Trades"])  # fmt: skip
            assert stats["n_trades"] == closed.height
            assert mine.height - closed.height == n_open, (mine.height, n_open)
            sizes = np.abs(their_trades["Size"].to_numpy())
            np.testing.assert_allclose(closed["shares"].to_numpy(), sizes, rtol=1e-6)
            for ours_col, their_col in (("entry_price", "EntryPrice"), ("exit_price", "ExitPrice")):
                np.testing.assert_allclose(
                    closed[ours_col].to_numpy(), their_trades[their_col].to_numpy(), rtol=1e-12
                )
            pnl_diff = np.abs(closed["pnl"].to_numpy() - their_trades["PnL"].to_numpy()).max()
            a, b = ours.final_equity, float(theirs["Equity Final [$]"])
            rel = abs(a - b) / abs(b)
            assert rel <= 1e-6, (direction, fractional, a, b)
            same_stats = stats == our_backtest_frames(bars, cfg_of(direction, fractional))[1]
            assert same_stats, "result.stats() differs from compute_stats on the frames"
            worst = max(rel_diff(stats[k], float(theirs[their_k])) for k, their_k in SHARED_STATS)
            scaled = max(
                rel_diff(stats[k] * (1 + FEES), float(theirs[their_k]))
                for k, their_k in TRADE_RETURN_STATS
            )
            worst = max(worst, scaled)
            assert worst <= 1e-6, (direction, fractional, worst)
            shares = "fractional (FractionalBacktest 1e-8)" if fractional else "whole shares"
            lines.append(
                f"{direction}, {shares}: {closed.height} closed + {n_open} open trades, same "
                f"sizes and prices; final equity {a:,.6f} vs {b:,.6f} (rel diff {rel:.1e}); "
                f"largest trade P&L diff ${pnl_diff:.1e}; "
                f"{len(SHARED_STATS) + len(TRADE_RETURN_STATS)} shared statistics "
                f"within {worst:.1e} relative; stats from arrays == stats from frames"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--direction", choices=("longshort", "long"), default="longshort")
    parser.add_argument("--repeat", type=int, default=3, help="child processes per case")
    parser.add_argument("--inner", type=int, default=5, help="timed loops per child")
    parser.add_argument("--iters", type=int, default=200, help="our backtests per loop")
    parser.add_argument("--bt-iters", type=int, default=20, help="backtesting.py runs per loop")
    parser.add_argument("--work", type=Path, default=HERE / ".data" / "backtest_single")
    parser.add_argument(
        "--before-src",
        type=Path,
        help="a src/ directory of an earlier version (git archive REF src/breadthflow | tar -x "
        "-C DIR; pass DIR/src): adds case bf_e2e_before, that version's bf_e2e",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="btpy,bf_e2e,bf_e2e_frames,bf_engine,bf_kernel,bf_cold")
    args = parser.parse_args()
    args.work = args.work.resolve()
    if args.case:
        iters = args.bt_iters if args.case == "btpy" else args.iters
        result = run_case(args.case, args.work, args.days, args.direction, iters, args.inner)
        print(json.dumps(result))
        return

    prepare(args.work, args.days)
    child_args = ["--work", str(args.work), "--days", str(args.days), "--direction",
                  args.direction, "--inner", str(args.inner), "--iters", str(args.iters),
                  "--bt-iters", str(args.bt_iters)]  # fmt: skip
    cases = args.cases.split(",")
    if args.before_src:
        os.environ["BF_BEFORE_SRC"] = str(args.before_src.resolve())
        cases.insert(cases.index("bf_e2e") + 1 if "bf_e2e" in cases else 0, "bf_e2e_before")
    results = run_cases(__file__, cases, args.repeat, child_args)
    for line in check_agreement(args.work, args.days):
        print(f"agree: {line}", file=sys.stderr)

    import numba

    timed_cases = {c: rs for c, rs in results.items() if c != "bf_cold"}
    med = {c: statistics.median(r["median"] for r in rs) for c, rs in timed_cases.items()}
    cpu = {c: statistics.median(r["cpu_median"] for r in rs) for c, rs in timed_cases.items()}
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numba {numba.__version__}; 1 symbol × {args.days:,} days, "
        f"SMA {FAST}/{SLOW}, {args.direction}; median of {args.repeat} runs, each the median "
        f"of {args.inner} loops of {args.iters} backtests ({args.bt_iters} for btpy); load "
        f"average at the end {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| case | wall ms / backtest | runs ms | CPU ms / backtest | peak RSS MB (median / max) "
        "| vs btpy (wall) | vs btpy (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, rs in timed_cases.items():
        ratio = f"{med['btpy'] / med[case]:.1f}×" if "btpy" in med else ""
        cpu_ratio = f"{cpu['btpy'] / cpu[case]:.1f}×" if "btpy" in cpu else ""
        runs = ", ".join(f"{r['median'] * 1e3:.3f}" for r in rs)
        peaks = [r["peak_mb"] for r in rs]
        peak = f"{statistics.median(peaks):,.0f} / {max(peaks):,.0f}"
        print(
            f"| {case} | {med[case] * 1e3:.3f} | {runs} | {cpu[case] * 1e3:.3f} | {peak} "
            f"| {ratio} | {cpu_ratio} |"
        )
    print()
    for case, rs in results.items():
        imp = statistics.median(r["import_s"] for r in rs)
        first = statistics.median(r["first_s"] for r in rs)
        what = "compile + first backtest" if case == "bf_cold" else "first call"
        print(f"{case}: imports {imp:.2f} s, {what} {first:.3f} s (median, not in the table)")
    if "bf_e2e" in results:
        split = {
            k: statistics.median(r["split"][k] for r in results["bf_e2e"])
            for k in results["bf_e2e"][0]["split"]
        }
        parts = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in split.items())
        print(f"\nbf_e2e split (median CPU time): {parts}")


if __name__ == "__main__":
    main()
