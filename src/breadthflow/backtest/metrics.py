"""The statistics of a backtest: an equity curve and a trade list in, one flat dict out.

Pure, no I/O. Every key, its formula and where it agrees or differs with backtesting.py's
``stats`` table is written down in docs/backtest-metrics.md. :func:`compute_stats` takes
frames; :func:`stats_from_arrays` takes arrays (what :meth:`BacktestResult.stats
<breadthflow.backtest.engine.BacktestResult.stats>` hands it straight from the engine).
Both end in the same compiled loops (:mod:`breadthflow.backtest._metric_kernels`), so the
same inputs give the same numbers whichever way they come in.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from breadthflow.backtest import _metric_kernels as mk
from breadthflow.core.errors import InvalidInputError

__all__ = [
    "STAT_KEYS",
    "TradeArrays",
    "benchmark_arrays",
    "compute_stats",
    "stats_from_arrays",
    "trade_arrays",
]

Stat = float | int | str | None

TRADING_DAYS = 252
DAYS_PER_YEAR = mk.DAYS_PER_YEAR  # calendar years for the CAGR, as backtesting.py
ZERO_TOLERANCE = mk.ZERO_TOLERANCE  # a deviation or drawdown this small counts as zero

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


@dataclass(slots=True)
class TradeArrays:
    """A trade list as arrays, one element per trade, closed and open trades together.

    ``pnl``, ``return_pct`` (percent) and ``fees`` are ``float64`` with NaN where a value is
    unknown; ``is_open`` is ``bool``. The optional ones are ``None`` when the trade list has
    no such column: ``bars_held`` (``float64``, NaN where unknown), ``entry_day`` and
    ``exit_day`` (whole days since 1970-01-01; ``exit_known`` is False where a trade has no
    exit date). Only ``exposure_time_pct`` without an exposure series reads the days.
    """

    pnl: np.ndarray
    return_pct: np.ndarray
    fees: np.ndarray
    is_open: np.ndarray
    bars_held: np.ndarray | None = None
    entry_day: np.ndarray | None = None
    exit_day: np.ndarray | None = None
    exit_known: np.ndarray | None = None

    @classmethod
    def empty(cls) -> TradeArrays:
        none = np.empty(0)
        return cls(none, none, none, np.empty(0, dtype=bool))


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

    The frames are turned into arrays and handed to :func:`stats_from_arrays`, which is
    also what :meth:`~breadthflow.backtest.engine.BacktestResult.stats` calls on the
    engine's own arrays — one set of formulas, so both give the same numbers.
    """
    _check_rates(risk_free, periods_per_year)
    days, values = _equity_arrays(equity)
    gross = None
    if exposure is not None:
        if len(exposure) != len(days):
            raise InvalidInputError(
                f"exposure has {len(exposure)} values — expected one per equity row ({len(days)})"
            )
        # Null or NaN: no exposure (the compiled loops count a NaN as 0).
        gross = _floats(exposure.to_frame("exposure"), "exposure")
    bench = None if benchmark is None else benchmark_arrays(benchmark)
    return stats_from_arrays(
        days,
        values,
        trade_arrays(trades),
        benchmark=bench,
        exposure=gross,
        risk_free=risk_free,
        periods_per_year=periods_per_year,
    )


def stats_from_arrays(
    days: np.ndarray,
    values: np.ndarray,
    trades: TradeArrays | None = None,
    *,
    benchmark: tuple[np.ndarray, np.ndarray] | None = None,
    exposure: np.ndarray | None = None,
    drawdown: np.ndarray | None = None,
    risk_free: float = 0.0,
    periods_per_year: int = TRADING_DAYS,
) -> dict[str, Stat]:
    """:func:`compute_stats` on arrays — no frame is built or read.

    - ``days``: ``int64`` whole days since 1970-01-01, strictly increasing; ``values``: the
      equity at each day's close (``float64``, no NaN).
    - ``trades``: :class:`TradeArrays` (``None``: no trades).
    - ``benchmark``: ``(days, close)`` — ``int64`` days without duplicates and their closes;
      aligned on ``days`` by date.
    - ``exposure``: gross position value / equity per day (a NaN counts as 0).
    - ``drawdown``: ``values / running peak - 1`` if the caller already has it (the engine
      does); computed otherwise.

    >>> days = np.array([19724, 19725, 19726])  # 2024-01-02 … 2024-01-04
    >>> stats = stats_from_arrays(days, np.array([100.0, 110.0, 99.0]))
    >>> round(stats["max_drawdown_pct"], 6), stats["end"]
    (-10.0, '2024-01-04')
    """
    _check_rates(risk_free, periods_per_year)
    days = np.ascontiguousarray(days, dtype=np.int64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    n = len(days)
    if len(values) != n:
        raise InvalidInputError(f"{len(values)} equity values for {n} days — expected one per day")
    if n > 1 and not (days[1:] > days[:-1]).all():
        raise InvalidInputError("equity days must be strictly increasing (sorted, no duplicates)")
    if np.isnan(values).any():
        raise InvalidInputError("equity frame has missing dates or values — expected one per row")
    if exposure is not None:
        exposure = np.ascontiguousarray(exposure, dtype=np.float64)
        if len(exposure) != n:
            raise InvalidInputError(
                f"exposure has {len(exposure)} values — expected one per equity row ({n})"
            )
    if drawdown is not None:
        drawdown = np.ascontiguousarray(drawdown, dtype=np.float64)
    if trades is not None:
        trades = TradeArrays(
            *(
                np.ascontiguousarray(a, dtype=np.float64)
                for a in (trades.pnl, trades.return_pct, trades.fees)
            ),
            np.ascontiguousarray(trades.is_open, dtype=np.bool_),
            None if trades.bars_held is None else np.ascontiguousarray(trades.bars_held, float),
            trades.entry_day,
            trades.exit_day,
            trades.exit_known,
        )
    return _stats(days, values, trades, benchmark, exposure, drawdown, risk_free, periods_per_year)


def _stats(
    days: np.ndarray,
    values: np.ndarray,
    trades: TradeArrays | None,
    benchmark: tuple[np.ndarray, np.ndarray] | None,
    exposure: np.ndarray | None,
    drawdown: np.ndarray | None,
    risk_free: float,
    periods_per_year: int,
) -> dict[str, Stat]:
    """:func:`stats_from_arrays` on arrays already checked (contiguous, right dtypes and
    lengths) — what :meth:`BacktestResult.stats` calls on the engine's own arrays."""
    _check_rates(risk_free, periods_per_year)
    if trades is None:
        trades = TradeArrays.empty()
    n = len(days)
    stats: dict[str, Any] = dict.fromkeys(STAT_KEYS)
    if n:
        stats["start"] = _iso(days[0])
        stats["end"] = _iso(days[-1])
        stats["duration_days"] = int(days[-1] - days[0])
        # The daily rate that compounds to the annual one over a year of bars.
        rf_daily = (1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0
        curve = np.empty(mk.CURVE_FIELDS)
        mk.curve_stats(
            days,
            values,
            _NONE if drawdown is None else drawdown,
            _NONE if exposure is None else exposure,
            *_aligned(days, values, benchmark),
            rf_daily,
            periods_per_year,
            curve,
        )
        _put(stats, _CURVE_NAMES, curve.tolist())
        _put(stats, ("equity_final", "equity_peak"), [float(values[-1]), float(values.max())])
        if exposure is None:
            stats["exposure_time_pct"] = _finite(_held_days(days, trades).mean() * 100.0)
    stats["n_days"] = n
    counts = np.empty(mk.TRADE_FIELDS)
    bars_held = _NONE if trades.bars_held is None else trades.bars_held
    mk.trade_stats(trades.pnl, trades.return_pct, bars_held, trades.fees, trades.is_open, counts)
    _put(stats, _TRADE_NAMES, counts.tolist())
    for key in _INT_KEYS:
        if stats[key] is not None:
            stats[key] = int(stats[key])
    return stats


def _put(stats: dict[str, Any], keys: tuple[str, ...], values: list[float]) -> None:
    """``stats[keys[i]] = values[i]`` as plain JSON-safe numbers: ``None`` for NaN or ±inf
    (``v - v`` is 0 only for a finite ``v``), ``-0.0`` as ``0.0``."""
    stats.update(zip(keys, [v + 0.0 if v - v == 0.0 else None for v in values], strict=True))


def _finite(value: float) -> float | None:
    value = float(value)
    return value + 0.0 if math.isfinite(value) else None  # + 0.0 turns -0.0 into 0.0


_NONE = np.empty(0)
_CURVE_KEYS = (  # (name, slot)
    ("total_return_pct", mk.C_TOTAL), ("return_ann_pct", mk.C_ANN), ("cagr_pct", mk.C_CAGR),
    ("volatility_ann_pct", mk.C_VOL), ("sharpe", mk.C_SHARPE), ("sortino", mk.C_SORTINO),
    ("omega", mk.C_OMEGA), ("max_drawdown_pct", mk.C_MAX_DD),
    ("avg_drawdown_pct", mk.C_AVG_DD), ("max_drawdown_duration_days", mk.C_MAX_DD_DAYS),
    ("avg_drawdown_duration_days", mk.C_AVG_DD_DAYS), ("calmar", mk.C_CALMAR),
    ("exposure_time_pct", mk.C_EXPOSED), ("avg_exposure_pct", mk.C_AVG_EXPOSURE),
    ("buy_hold_return_pct", mk.C_BUY_HOLD), ("alpha_pct", mk.C_ALPHA), ("beta", mk.C_BETA),
)  # fmt: skip
_TRADE_KEYS = (  # (name, slot)
    ("n_trades", mk.T_N), ("n_winning_trades", mk.T_WINS), ("n_losing_trades", mk.T_LOSSES),
    ("win_rate_pct", mk.T_WIN_RATE), ("best_trade_pct", mk.T_BEST),
    ("worst_trade_pct", mk.T_WORST), ("avg_trade_pct", mk.T_AVG),
    ("avg_winning_trade_pct", mk.T_AVG_WIN), ("avg_losing_trade_pct", mk.T_AVG_LOSS),
    ("max_trade_duration_bars", mk.T_MAX_BARS), ("avg_trade_duration_bars", mk.T_AVG_BARS),
    ("profit_factor", mk.T_PROFIT_FACTOR), ("payoff_ratio", mk.T_PAYOFF),
    ("expectancy", mk.T_EXPECTANCY), ("expectancy_pct", mk.T_EXPECTANCY_PCT),
    ("sqn", mk.T_SQN), ("kelly", mk.T_KELLY), ("total_fees", mk.T_FEES),
    ("n_open_trades", mk.T_OPEN), ("open_pnl", mk.T_OPEN_PNL),
)  # fmt: skip
_CURVE_NAMES = tuple(name for name, _ in sorted(_CURVE_KEYS, key=lambda k: k[1]))
_TRADE_NAMES = tuple(name for name, _ in sorted(_TRADE_KEYS, key=lambda k: k[1]))
assert len(_CURVE_NAMES) == mk.CURVE_FIELDS and len(_TRADE_NAMES) == mk.TRADE_FIELDS
_INT_KEYS = (
    "n_trades", "n_winning_trades", "n_losing_trades", "max_trade_duration_bars",
    "n_open_trades", "max_drawdown_duration_days",
)  # fmt: skip


def _aligned(
    days: np.ndarray, values: np.ndarray, benchmark: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The equity and the benchmark close on the dates both have (empty without one), so
    that both returns cover the same intervals."""
    if benchmark is None:
        return _NONE, _NONE
    bench_days, close = benchmark
    close = np.asarray(close, dtype=np.float64)
    if len(bench_days) == len(days) and np.array_equal(bench_days, days):
        return values, np.ascontiguousarray(close)
    _, in_equity, in_bench = np.intersect1d(days, bench_days, return_indices=True)
    return values[in_equity], close[in_bench]


# --- inputs ---------------------------------------------------------------------------------


def _check_rates(risk_free: float, periods_per_year: int) -> None:
    if periods_per_year <= 0:
        raise InvalidInputError(
            f"periods_per_year={periods_per_year} — expected a positive number of bars a year"
        )
    if not -1.0 < risk_free < 1.0:
        raise InvalidInputError(f"risk_free={risk_free} — expected an annual rate like 0.02")


def _day_numbers(column: pl.Series, what: str) -> np.ndarray:
    """Dates (or datetimes) as whole days since 1970-01-01."""
    if column.dtype == pl.Date and not column.null_count():
        return column.to_numpy().view(np.int64)  # datetime64[D]: days since the epoch
    if column.dtype == pl.Date or isinstance(column.dtype, pl.Datetime):
        return column.cast(pl.Date).cast(pl.Int64).to_numpy()
    raise InvalidInputError(
        f"{what} column '{column.name}' has type {column.dtype} — expected a Date"
    )


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    present = set(frame.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise InvalidInputError(
            f"{what} frame lacks column(s) {', '.join(missing)} — expected {', '.join(columns)}"
            f" (got {', '.join(frame.columns) or 'none'})"
        )


def _equity_arrays(equity: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    _require(equity, ("date", "equity"), "equity")
    date, value = equity.get_column("date"), equity.get_column("equity")
    if value.dtype != pl.Float64:
        value = value.cast(pl.Float64)
    if date.null_count() or value.null_count():
        raise InvalidInputError("equity frame has missing dates or values — expected one per row")
    days, values = _day_numbers(date, "equity"), value.to_numpy()
    if np.isnan(values).any():
        raise InvalidInputError("equity frame has missing dates or values — expected one per row")
    if len(days) > 1 and not (days[1:] > days[:-1]).all():  # not in date order: sort
        order = np.argsort(days, kind="stable")
        days, values = days[order], values[order]
        if not (days[1:] > days[:-1]).all():
            raise InvalidInputError("equity frame has duplicate dates — expected one row per day")
    return days, values


def benchmark_arrays(benchmark: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A ``date, close`` frame (other columns ignored) as ``(days, close)`` for
    :func:`stats_from_arrays`: rows with a null dropped; duplicate dates refused."""
    _require(benchmark, ("date", "close"), "benchmark")
    date, close = benchmark.get_column("date"), benchmark.get_column("close")
    if date.null_count() or close.null_count():
        keep = date.is_not_null() & close.is_not_null()
        date, close = date.filter(keep), close.filter(keep)
    days = _day_numbers(date, "benchmark")
    if len(days) > 1 and not (days[1:] > days[:-1]).all() and len(np.unique(days)) != len(days):
        raise InvalidInputError("benchmark frame has duplicate dates — expected one row per day")
    if close.dtype != pl.Float64:
        close = close.cast(pl.Float64)
    return days, close.to_numpy()


def trade_arrays(trades: pl.DataFrame) -> TradeArrays:
    """The arrays :func:`stats_from_arrays` reads from a trade frame. A trade is open when
    ``is_open`` says so or, without that column, when it has no ``exit_date``."""
    if trades.height == 0:
        return TradeArrays.empty()
    _require(trades, ("pnl", "return_pct"), "trades")
    columns = set(trades.columns)
    exit_day = exit_known = None
    if "exit_date" in columns:
        exit_day, exit_known = _optional_days(trades.get_column("exit_date"))
    if "is_open" in columns:
        flag = trades.get_column("is_open")
        is_open = (flag.fill_null(False) if flag.null_count() else flag).to_numpy()
    elif exit_known is not None:
        is_open = ~exit_known
    else:
        is_open = np.zeros(trades.height, dtype=bool)
    return TradeArrays(
        pnl=_floats(trades, "pnl"),
        return_pct=_floats(trades, "return_pct"),
        fees=_floats(trades, "fees"),
        is_open=np.asarray(is_open, dtype=bool),
        bars_held=_bars_held(trades) if "bars_held" in columns else None,
        entry_day=(
            _day_numbers(trades.get_column("entry_date"), "trades")
            if "entry_date" in columns
            else None
        ),
        exit_day=exit_day,
        exit_known=exit_known,
    )


def _bars_held(trades: pl.DataFrame) -> np.ndarray:
    """Whole bars as ``float64`` (NaN where null)."""
    held = trades.get_column("bars_held")
    if held.dtype != pl.Int64:
        held = held.cast(pl.Int64)
    return held.cast(pl.Float64).to_numpy()


def _optional_days(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Whole days since 1970-01-01 (0 where missing) and where a date is present."""
    if column.dtype != pl.Date:
        column = column.cast(pl.Date)
    if not column.null_count():
        return column.to_numpy().view(np.int64), np.ones(len(column), dtype=bool)
    days = column.cast(pl.Int64).cast(pl.Float64).to_numpy()  # nulls: NaN
    known = ~np.isnan(days)
    return np.where(known, days, 0.0).astype(np.int64), known


def _floats(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A column as ``float64``, NaN where null (and for a missing column)."""
    if column not in frame.columns:
        return np.full(frame.height, np.nan)
    values = frame.get_column(column)
    if values.dtype != pl.Float64:
        values = values.cast(pl.Float64)
    return values.to_numpy()


# --- exposure from trade dates ----------------------------------------------------------------


def _held_days(days: np.ndarray, trades: TradeArrays) -> np.ndarray:
    """True on each day at whose close some trade is held: ``entry_date <= day < exit_date``,
    or ``entry_date <= day`` for an open trade. Whether fills are at the open or the close,
    the position exists at the entry day's close and is gone at the exit day's close."""
    # +1 where a holding starts, -1 where it ends; a running sum > 0 means "held".
    steps = np.zeros(len(days) + 1, dtype=np.int64)
    if trades.entry_day is not None and len(trades.entry_day):
        np.add.at(steps, np.searchsorted(days, trades.entry_day), 1)
        if trades.exit_day is not None and trades.exit_known is not None:
            closed = ~trades.is_open
            ends = np.where(
                trades.exit_known[closed],
                np.searchsorted(days, trades.exit_day[closed]),
                len(days),
            )
            np.add.at(steps, ends, -1)
    return np.cumsum(steps)[:-1] > 0


# --- output ----------------------------------------------------------------------------------


def _iso(day: np.integer) -> str:
    return str(np.datetime64(int(day), "D"))
