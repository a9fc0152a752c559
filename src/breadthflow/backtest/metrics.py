"""The statistics of a backtest: an equity curve and a trade list in, one flat dict out.

Pure NumPy/Polars, no I/O. Every key, its formula and where it agrees or differs with
backtesting.py's ``stats`` table is written down in docs/backtest-metrics.md; the comments
here only say why a choice was made.

A value that is undefined for the given inputs (no trades, no losing trade, zero volatility,
no drawdown, a single equity row, no benchmark, …) is ``None`` — never ``inf`` or ``NaN`` —
so the dict can go to JSON, a DB column or an optimiser's ranking as is.

>>> import datetime as dt
>>> equity = pl.DataFrame({
...     "date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)],
...     "equity": [100.0, 110.0, 99.0]})
>>> stats = compute_stats(equity, pl.DataFrame())
>>> round(stats["total_return_pct"], 6), round(stats["max_drawdown_pct"], 6)
(-1.0, -10.0)
>>> stats["n_trades"], stats["sqn"], stats["max_drawdown_duration_days"]
(0, None, 1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from breadthflow.core.errors import InvalidInputError

__all__ = ["STAT_KEYS", "compute_stats"]

Stat = float | int | str | None

TRADING_DAYS = 252
DAYS_PER_YEAR = 365.25  # calendar years for the CAGR, as backtesting.py
# A standard deviation (or downside deviation, or drawdown) this small is treated as zero:
# a constant-growth curve has return noise of ~1e-17 that would otherwise give a Sharpe of 1e15.
ZERO_TOLERANCE = 1e-12

STAT_KEYS: tuple[str, ...] = (
    # period and exposure
    "start", "end", "duration_days", "n_days", "exposure_time_pct", "avg_exposure_pct",
    # equity and returns
    "equity_final", "equity_peak", "total_return_pct", "buy_hold_return_pct",
    "return_ann_pct", "volatility_ann_pct", "cagr_pct",
    # risk-adjusted
    "sharpe", "sortino", "calmar", "omega", "alpha_pct", "beta",
    # drawdowns
    "max_drawdown_pct", "avg_drawdown_pct", "max_drawdown_duration_days",
    "avg_drawdown_duration_days",
    # closed trades
    "n_trades", "n_winning_trades", "n_losing_trades", "win_rate_pct", "best_trade_pct",
    "worst_trade_pct", "avg_trade_pct", "avg_winning_trade_pct", "avg_losing_trade_pct",
    "max_trade_duration_bars", "avg_trade_duration_bars", "profit_factor", "payoff_ratio",
    "expectancy", "expectancy_pct", "sqn", "kelly",
    # all trades
    "total_fees", "n_open_trades", "open_pnl",
)  # fmt: skip


def compute_stats(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    benchmark: pl.DataFrame | None = None,
    exposure: pl.Series | None = None,
    risk_free: float = 0.0,
    periods_per_year: int = TRADING_DAYS,
) -> dict[str, Stat]:
    """Statistics of one backtest, keyed by :data:`STAT_KEYS` (snake_case, JSON-safe).

    - ``equity``: ``date, equity`` — the account value at each close, one row per trading day.
    - ``trades``: the engine's trade frame (``pnl``, ``return_pct`` in percent, ``fees``,
      ``bars_held``, ``is_open``, ``entry_date``, ``exit_date``, …). Trade statistics use the
      closed trades only; open trades are counted in ``n_open_trades`` / ``open_pnl``.
    - ``benchmark``: ``date, close`` (e.g. buy & hold of the universe), aligned on the equity
      dates; gives ``buy_hold_return_pct``, ``alpha_pct`` and ``beta``.
    - ``exposure``: per equity row, gross position value / equity. Without it, a day counts
      as exposed when a trade is held at its close (``entry_date <= day < exit_date``).
    - ``risk_free``: annual rate (0.02 = 2 %), for Sharpe, Sortino and alpha.
    """
    if periods_per_year <= 0:
        raise InvalidInputError(
            f"periods_per_year={periods_per_year} — expected a positive number of bars a year"
        )
    if not -1.0 < risk_free < 1.0:
        raise InvalidInputError(f"risk_free={risk_free} — expected an annual rate like 0.02")
    days, values = _equity_arrays(equity)
    closed, open_ = _split_trades(trades)
    # The daily rate that compounds to the annual one over a year of bars.
    rf_daily = (1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0

    stats: dict[str, Any] = dict.fromkeys(STAT_KEYS)
    with np.errstate(all="ignore"):  # undefined results become None in _json_safe
        stats.update(_period_stats(days, values, closed, open_, exposure))
        stats.update(_return_stats(days, values, rf_daily, periods_per_year))
        stats.update(_drawdown_stats(days, values))
        if stats["return_ann_pct"] is not None and stats["max_drawdown_pct"] is not None:
            max_dd = abs(stats["max_drawdown_pct"])
            if max_dd > ZERO_TOLERANCE:
                stats["calmar"] = stats["return_ann_pct"] / max_dd
        if benchmark is not None:
            stats.update(_benchmark_stats(days, values, benchmark, rf_daily, periods_per_year))
        stats.update(_trade_stats(closed))
        stats.update(_all_trade_stats(closed, open_))
    return {key: _json_safe(stats[key]) for key in STAT_KEYS}


# --- inputs ---------------------------------------------------------------------------------


def _day_numbers(column: pl.Series, what: str) -> np.ndarray:
    """Dates (or datetimes) as whole days since 1970-01-01."""
    if column.dtype == pl.Date or isinstance(column.dtype, pl.Datetime):
        return column.cast(pl.Date).cast(pl.Int64).to_numpy()
    raise InvalidInputError(
        f"{what} column '{column.name}' has type {column.dtype} — expected a Date"
    )


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{what} frame lacks column(s) {', '.join(missing)} — expected {', '.join(columns)}"
            f" (got {', '.join(frame.columns) or 'none'})"
        )


def _equity_arrays(equity: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    _require(equity, ("date", "equity"), "equity")
    frame = equity.select("date", pl.col("equity").cast(pl.Float64)).sort("date")
    if frame["date"].null_count() or frame["equity"].null_count() or frame["equity"].is_nan().any():
        raise InvalidInputError("equity frame has missing dates or values — expected one per row")
    if frame["date"].is_duplicated().any():
        raise InvalidInputError("equity frame has duplicate dates — expected one row per day")
    return _day_numbers(frame["date"], "equity"), frame["equity"].to_numpy()


def _split_trades(trades: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(closed, open) trades. A trade is open when ``is_open`` says so or, without that
    column, when it has no ``exit_date``."""
    if trades.height == 0:
        empty = pl.DataFrame()
        return empty, empty
    _require(trades, ("pnl", "return_pct"), "trades")
    if "is_open" in trades.columns:
        is_open = pl.col("is_open").fill_null(False)
    elif "exit_date" in trades.columns:
        is_open = pl.col("exit_date").is_null()
    else:
        is_open = pl.lit(False)
    flagged = trades.with_columns(is_open.alias("_open"))
    return (
        flagged.filter(~pl.col("_open")).drop("_open"),
        flagged.filter(pl.col("_open")).drop("_open"),
    )


def _floats(frame: pl.DataFrame, column: str) -> np.ndarray:
    if frame.height == 0 or column not in frame.columns:
        return np.array([], dtype=np.float64)
    return frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()


# --- period, exposure ------------------------------------------------------------------------


def _period_stats(
    days: np.ndarray,
    values: np.ndarray,
    closed: pl.DataFrame,
    open_: pl.DataFrame,
    exposure: pl.Series | None,
) -> dict[str, Any]:
    n = len(days)
    if n == 0:
        return {"n_days": 0}
    out: dict[str, Any] = {
        "start": _iso(days[0]),
        "end": _iso(days[-1]),
        "duration_days": int(days[-1] - days[0]),
        "n_days": n,
        "equity_final": values[-1],
        "equity_peak": values.max(),
    }
    if exposure is not None:
        if len(exposure) != n:
            raise InvalidInputError(
                f"exposure has {len(exposure)} values — expected one per equity row ({n})"
            )
        gross = exposure.cast(pl.Float64).fill_nan(None).fill_null(0.0).to_numpy()
        out["exposure_time_pct"] = (gross > 0).mean() * 100.0
        out["avg_exposure_pct"] = gross.mean() * 100.0
    else:
        out["exposure_time_pct"] = _held_days(days, closed, open_).mean() * 100.0
    return out


def _held_days(days: np.ndarray, closed: pl.DataFrame, open_: pl.DataFrame) -> np.ndarray:
    """True on each day at whose close some trade is held: ``entry_date <= day < exit_date``,
    or ``entry_date <= day`` for an open trade. Whether fills are at the open or the close,
    the position exists at the entry day's close and is gone at the exit day's close."""
    # +1 where a holding starts, -1 where it ends; a running sum > 0 means "held".
    steps = np.zeros(len(days) + 1, dtype=np.int64)
    for frame, still_open in ((closed, False), (open_, True)):
        if frame.height == 0 or "entry_date" not in frame.columns:
            continue
        np.add.at(steps, np.searchsorted(days, _day_numbers(frame["entry_date"], "trades")), 1)
        if still_open or "exit_date" not in frame.columns:
            continue
        exits = frame["exit_date"].cast(pl.Date).cast(pl.Int64)
        ends = np.searchsorted(days, exits.drop_nulls().to_numpy())
        np.add.at(steps, np.concatenate([ends, np.full(exits.null_count(), len(days))]), -1)
    return np.cumsum(steps)[:-1] > 0


# --- returns ---------------------------------------------------------------------------------


def _daily_returns(values: np.ndarray) -> np.ndarray:
    return values[1:] / values[:-1] - 1.0


def _return_stats(
    days: np.ndarray, values: np.ndarray, rf_daily: float, periods_per_year: int
) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {}
    out: dict[str, Any] = {}
    first, final = values[0], values[-1]
    growth = final / first if first > 0 else math.nan
    out["total_return_pct"] = (growth - 1.0) * 100.0
    n_returns = n - 1
    if n_returns >= 1 and growth >= 0:
        # Geometric: the constant per-bar rate that turns the first value into the last,
        # compounded over a year of bars — equals backtesting.py's "Return (Ann.)".
        out["return_ann_pct"] = (growth ** (periods_per_year / n_returns) - 1.0) * 100.0
        years = (days[-1] - days[0]) / DAYS_PER_YEAR
        if years > 0:
            out["cagr_pct"] = (growth ** (1.0 / years) - 1.0) * 100.0
    r = _daily_returns(values)
    if len(r) == 0 or not np.isfinite(r).all():
        return out
    scale = math.sqrt(periods_per_year)
    excess = r - rf_daily
    if len(r) >= 2:
        std = r.std(ddof=1)
        out["volatility_ann_pct"] = std * scale * 100.0
        if std > ZERO_TOLERANCE:
            out["sharpe"] = excess.mean() / std * scale
    # Downside deviation below the risk-free rate, over all bars (Sortino & Price 1994).
    downside = math.sqrt(np.mean(np.minimum(excess, 0.0) ** 2))
    if downside > ZERO_TOLERANCE:
        out["sortino"] = excess.mean() / downside * scale
    losses = np.maximum(-r, 0.0).sum()
    if losses > ZERO_TOLERANCE:
        out["omega"] = np.maximum(r, 0.0).sum() / losses
    return out


def _benchmark_stats(
    days: np.ndarray,
    values: np.ndarray,
    benchmark: pl.DataFrame,
    rf_daily: float,
    periods_per_year: int,
) -> dict[str, Any]:
    _require(benchmark, ("date", "close"), "benchmark")
    bench = benchmark.select("date", pl.col("close").cast(pl.Float64)).drop_nulls()
    bench_days = _day_numbers(bench["date"], "benchmark")
    if len(np.unique(bench_days)) != len(bench_days):
        raise InvalidInputError("benchmark frame has duplicate dates — expected one row per day")
    # Only the dates both series have, so that both returns cover the same interval.
    _, in_equity, in_bench = np.intersect1d(days, bench_days, return_indices=True)
    if len(in_equity) == 0:
        return {}
    strategy, close = values[in_equity], bench["close"].to_numpy()[in_bench]
    out: dict[str, Any] = {}
    if close[0] > 0:
        out["buy_hold_return_pct"] = (close[-1] / close[0] - 1.0) * 100.0
    if len(close) < 3:  # a regression needs two returns at least
        return out
    y = _daily_returns(strategy) - rf_daily
    x = _daily_returns(close) - rf_daily
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return out
    var_x = x.var(ddof=1)
    if var_x > ZERO_TOLERANCE**2:
        # OLS y = alpha + beta·x on excess returns (Jensen's alpha), alpha annualised simply.
        beta = np.cov(y, x, ddof=1)[0, 1] / var_x
        out["beta"] = beta
        out["alpha_pct"] = (y.mean() - beta * x.mean()) * periods_per_year * 100.0
    return out


# --- drawdowns -------------------------------------------------------------------------------


def _drawdown_stats(days: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {}
    peak = np.maximum.accumulate(values)
    drawdown = values / peak - 1.0
    if not np.isfinite(drawdown).all() or (peak <= 0).any():
        return {}
    # A drawdown period is a run of bars under the running peak: it starts at the peak (the
    # bar before the run) and ends on the bar that regains the peak, or on the last bar.
    under = np.concatenate(([0], (drawdown < 0).astype(np.int8), [0]))
    edges = np.diff(under)
    starts = np.flatnonzero(edges == 1)  # first bar under water (never bar 0)
    stops = np.flatnonzero(edges == -1)  # the recovery bar, or n when never recovered
    if len(starts) == 0:
        return {"max_drawdown_pct": 0.0, "max_drawdown_duration_days": 0}
    depths = np.array([drawdown[a:b].min() for a, b in zip(starts, stops, strict=True)])
    durations = days[np.minimum(stops, n - 1)] - days[starts - 1]
    return {
        "max_drawdown_pct": drawdown.min() * 100.0,
        "avg_drawdown_pct": depths.mean() * 100.0,
        "max_drawdown_duration_days": int(durations.max()),
        "avg_drawdown_duration_days": durations.mean(),
    }


# --- trades ----------------------------------------------------------------------------------


def _trade_stats(closed: pl.DataFrame) -> dict[str, Any]:
    """Statistics of the closed trades."""
    n = closed.height
    if n == 0:
        return {"n_trades": 0, "n_winning_trades": 0, "n_losing_trades": 0}
    pnl = _floats(closed, "pnl")
    pct = _floats(closed, "return_pct")
    wins, losses = pnl > 0, pnl < 0
    out: dict[str, Any] = {
        "n_trades": n,
        "n_winning_trades": int(wins.sum()),
        "n_losing_trades": int(losses.sum()),
        "win_rate_pct": wins.mean() * 100.0,
        "best_trade_pct": pct.max(),
        "worst_trade_pct": pct.min(),
        "expectancy": pnl.mean(),
        "expectancy_pct": pct.mean(),
    }
    growth = 1.0 + pct / 100.0
    if (growth > 0).all():
        # Geometric mean, as backtesting.py's "Avg. Trade"; the arithmetic one is expectancy_pct.
        out["avg_trade_pct"] = (math.exp(np.log(growth).mean()) - 1.0) * 100.0
    if wins.any():
        out["avg_winning_trade_pct"] = pct[wins].mean()
    if losses.any():
        out["avg_losing_trade_pct"] = pct[losses].mean()
        out["profit_factor"] = pnl[wins].sum() / abs(pnl[losses].sum())
    if wins.any() and losses.any():
        payoff = pnl[wins].mean() / abs(pnl[losses].mean())
        win_rate = wins.mean()
        out["payoff_ratio"] = payoff
        out["kelly"] = win_rate - (1.0 - win_rate) / payoff
    if n >= 2:
        std = pnl.std(ddof=1)
        if std > ZERO_TOLERANCE:
            out["sqn"] = math.sqrt(n) * pnl.mean() / std  # Van Tharp's System Quality Number
    if "bars_held" in closed.columns and closed["bars_held"].null_count() == 0:
        bars = closed["bars_held"].cast(pl.Int64).to_numpy()
        out["max_trade_duration_bars"] = int(bars.max())
        out["avg_trade_duration_bars"] = bars.mean()
    return out


def _all_trade_stats(closed: pl.DataFrame, open_: pl.DataFrame) -> dict[str, Any]:
    fees = np.concatenate([_floats(closed, "fees"), _floats(open_, "fees")])
    return {
        "total_fees": np.nansum(fees) if len(fees) else 0.0,
        "n_open_trades": open_.height,
        "open_pnl": _floats(open_, "pnl").sum(),
    }


# --- output ----------------------------------------------------------------------------------


def _iso(day: np.integer) -> str:
    return str(np.datetime64(int(day), "D"))


def _json_safe(value: Any) -> Stat:
    """Plain Python numbers; ``None`` for anything undefined (NaN, ±inf)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    return number + 0.0 if math.isfinite(number) else None  # + 0.0 turns -0.0 into 0.0
