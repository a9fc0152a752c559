"""The single-symbol fast path gives exactly what the general path gives.

- ``PriceMatrix.from_bars`` on one clean symbol skips the pivot; ``from_arrays`` builds the
  matrix from NumPy: both equal the pivoted matrix, errors included.
- ``BacktestResult.stats`` reads the engine's arrays; ``compute_stats`` reads the frames:
  the two dicts are equal, value for value (``==``, not approximately), on single-symbol
  and multi-symbol runs, per-symbol accounts and one portfolio, with and without trades,
  with a position open at the end or none.
- The compiled statistics agree with a plain NumPy reference on random curves and trade
  lists (including the cases that must give ``None``).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.engine import BacktestResult, run_backtest
from breadthflow.backtest.metrics import (
    STAT_KEYS,
    TradeArrays,
    compute_stats,
    stats_from_arrays,
    trade_arrays,
)
from breadthflow.backtest.prices import PRICE_FIELDS, PriceMatrix
from breadthflow.core.errors import InvalidInputError


def general_stats(result: BacktestResult, benchmark: pl.DataFrame | None = None, **kw) -> dict:
    """The general path: frames in, frames read back."""
    return compute_stats(
        result.equity.select("date", "equity"),
        result.trades,
        benchmark=benchmark,
        exposure=result.equity["exposure"],
        **kw,
    )


def assert_same_matrix(a: PriceMatrix, b: PriceMatrix) -> None:
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.dates, b.dates)
    assert a.dates.dtype == b.dates.dtype == np.dtype("datetime64[D]")
    for name in PRICE_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).flags.writeable


@pytest.fixture(scope="module")
def aapl(stock_bars: pl.DataFrame) -> pl.DataFrame:
    return stock_bars.filter(pl.col("symbol") == "AAPL").sort("date")


# --- price matrix ------------------------------------------------------------------------------


def test_single_symbol_from_bars_equals_the_pivot(aapl: pl.DataFrame, stock_prices) -> None:
    fast = PriceMatrix.from_bars(aapl)
    # A categorical symbol column takes the general (pivoting) path.
    general = PriceMatrix.from_bars(aapl.with_columns(pl.col("symbol").cast(pl.Categorical)))
    assert_same_matrix(fast, general)
    assert_same_matrix(fast, stock_prices.select(["AAPL"]))


def test_unsorted_single_symbol_bars_are_sorted_like_the_general_path(aapl) -> None:
    shuffled = aapl.sample(fraction=1.0, shuffle=True, seed=7)
    assert not shuffled["date"].is_sorted()
    assert_same_matrix(PriceMatrix.from_bars(shuffled), PriceMatrix.from_bars(aapl))


def test_from_arrays_equals_from_bars(aapl: pl.DataFrame) -> None:
    arrays = [aapl[c].to_numpy() for c in PRICE_FIELDS]
    made = PriceMatrix.from_arrays("AAPL", aapl["date"].to_numpy(), *arrays)
    assert_same_matrix(made, PriceMatrix.from_bars(aapl))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(None)
                                  .otherwise(pl.col("low")).alias("low")),
         "bar AAPL 2010-01-11 lacks a price"),
        (lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(float("nan"))
                                  .otherwise(pl.col("close")).alias("close")),
         "bar AAPL 2010-01-11 lacks a price"),
        (lambda f: pl.concat([f, f.slice(3, 1)]), "duplicate bar AAPL 2010-01-07"),
    ],
    ids=["null", "nan", "duplicate"],
)  # fmt: skip
def test_single_symbol_errors_are_the_general_paths(aapl, edit, message) -> None:
    bad = edit(aapl)
    with pytest.raises(InvalidInputError, match=message):
        PriceMatrix.from_bars(bad)
    with pytest.raises(InvalidInputError, match=message):
        PriceMatrix.from_bars(bad.with_columns(pl.col("symbol").cast(pl.Categorical)))


def test_from_arrays_refuses_bad_input(aapl: pl.DataFrame) -> None:
    days = aapl["date"].to_numpy()
    close = aapl["close"].to_numpy().copy()
    ok = [close] * 4
    with pytest.raises(InvalidInputError, match="open has 3 values for"):
        PriceMatrix.from_arrays("AAPL", days, close[:3], *ok[1:])
    holed = close.copy()
    holed[2] = np.nan
    with pytest.raises(InvalidInputError, match="bar AAPL 2010-01-06 lacks a price"):
        PriceMatrix.from_arrays("AAPL", days, *ok[:3], holed)
    twice = days.copy()
    twice[4] = twice[3]
    with pytest.raises(InvalidInputError, match="duplicate bar AAPL 2010-01-07"):
        PriceMatrix.from_arrays("AAPL", twice, *ok)
    with pytest.raises(InvalidInputError, match="not sorted by date"):
        PriceMatrix.from_arrays("AAPL", days[::-1], *ok)


# --- stats: engine arrays vs frames --------------------------------------------------------------


CONFIGS = {
    "long_close": BacktestConfig(execution="close", fees=0.001, slippage=0.0),
    "longshort_open_stops": BacktestConfig(
        direction="longshort", stop_loss=0.05, trailing_stop=0.1, fees=0.002
    ),
    "integer_fraction": BacktestConfig(integer_shares=True, sizing="fixed_fraction", fraction=0.5),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("symbols", [["AAPL"], ["AAPL", "GOOG", "MSFT"]], ids=["one", "three"])
@pytest.mark.parametrize("portfolio", [False, True], ids=["accounts", "portfolio"])
def test_engine_stats_equal_frame_stats(
    name: str, symbols: list[str], portfolio: bool, stock_bars, stock_prices, sma_signals
) -> None:
    config = CONFIGS[name].model_copy(update={"portfolio": portfolio})
    columns = [stock_prices.symbols.index(s) for s in symbols]
    prices = stock_prices.select(symbols)
    entries, exits = (a[:, columns] for a in sma_signals(10, 30))
    result = run_backtest(prices, entries, exits, config)
    assert result.trades.height > 3
    bench = stock_bars.filter(pl.col("symbol") == symbols[0]).select("date", "close")
    for kw in ({}, {"benchmark": bench}, {"benchmark": bench, "risk_free": 0.03}):
        assert result.stats(**kw) == general_stats(result, **kw)
    assert result.stats(periods_per_year=52) == general_stats(result, periods_per_year=52)


def test_no_trades_open_at_the_end_and_none(stock_prices, sma_signals) -> None:
    prices = stock_prices.select(["MSFT"])
    entries, exits = (a[:, [stock_prices.symbols.index("MSFT")]] for a in sma_signals(10, 30))
    config = BacktestConfig(execution="close")
    cases = {}
    cases["none"] = run_backtest(prices, np.zeros_like(entries), np.zeros_like(exits), config)
    cases["open"] = run_backtest(prices, entries, exits, config)
    closing = exits.copy()
    closing[-1] = True
    cases["closed"] = run_backtest(prices, entries, closing, config)
    assert cases["none"].trades.height == 0
    assert cases["open"].trades["is_open"][-1]
    assert not cases["closed"].trades["is_open"].any()
    for name, result in cases.items():
        mine = result.stats()
        assert mine == general_stats(result), name
    assert cases["none"].stats()["n_trades"] == 0
    assert cases["none"].stats()["avg_drawdown_pct"] is None
    assert cases["open"].stats()["n_open_trades"] == 1
    assert cases["closed"].stats()["n_open_trades"] == 0


def test_single_symbol_run_equals_that_symbol_in_a_multi_symbol_matrix(
    stock_bars, stock_prices, sma_signals
) -> None:
    """Fast path end to end (one-symbol bars, no pivot) vs the same symbol cut out of the
    pivoted three-symbol matrix: same frames, same stats."""
    config = BacktestConfig(direction="longshort", execution="close")
    col = [stock_prices.symbols.index("GOOG")]
    entries, exits = (a[:, col] for a in sma_signals(20, 50))
    goog = stock_bars.filter(pl.col("symbol") == "GOOG")
    fast = run_backtest(PriceMatrix.from_bars(goog), entries, exits, config)
    general = run_backtest(stock_prices.select(["GOOG"]), entries, exits, config)
    assert_frame_equal(fast.equity, general.equity)
    assert_frame_equal(fast.symbol_equity, general.symbol_equity)
    assert_frame_equal(fast.trades, general.trades)
    assert fast.stats(benchmark=goog) == general_stats(general, goog.select("date", "close"))


def test_a_one_symbol_portfolio_has_the_stats_of_its_account(stock_prices, sma_signals) -> None:
    col = [stock_prices.symbols.index("AAPL")]
    prices = stock_prices.select(["AAPL"])
    entries, exits = (a[:, col] for a in sma_signals(10, 30))
    accounts = run_backtest(prices, entries, exits, BacktestConfig())
    portfolio = run_backtest(prices, entries, exits, BacktestConfig(portfolio=True))
    assert accounts.trades.height > 3
    a, b = accounts.stats(), portfolio.stats()
    assert a.keys() == b.keys()
    for key in STAT_KEYS:
        if isinstance(a[key], float):
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-9), key
        else:
            assert b[key] == a[key], key


def test_trades_frame_is_sorted_by_entry_date_then_symbol(stock_prices, sma_signals) -> None:
    result = run_backtest(stock_prices, *sma_signals(5, 20), BacktestConfig())
    trades = result.trades
    assert trades["symbol"].n_unique() == 3
    assert_frame_equal(trades, trades.sort("entry_date", "symbol", maintain_order=True))
    arrays = result.arrays
    assert arrays is not None
    np.testing.assert_array_equal(arrays.trades.pnl, trades["pnl"].to_numpy())
    np.testing.assert_array_equal(arrays.trades.is_open, trades["is_open"].to_numpy())


# --- compiled statistics vs a plain NumPy reference ------------------------------------------


def reference(values: np.ndarray, pnl: np.ndarray, pct: np.ndarray, is_open: np.ndarray) -> dict:
    """The definitions of docs/backtest-metrics.md, one NumPy expression each."""
    out: dict[str, float | None] = {}
    r = values[1:] / values[:-1] - 1
    growth = values[-1] / values[0]
    out["total_return_pct"] = (growth - 1) * 100
    out["return_ann_pct"] = (growth ** (252 / len(r)) - 1) * 100
    std = r.std(ddof=1) if len(r) >= 2 else None
    out["volatility_ann_pct"] = None if std is None else std * math.sqrt(252) * 100
    out["sharpe"] = r.mean() / std * math.sqrt(252) if std and std > 1e-12 else None
    down = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    out["sortino"] = r.mean() / down * math.sqrt(252) if down > 1e-12 else None
    loss = np.maximum(-r, 0).sum()
    out["omega"] = np.maximum(r, 0).sum() / loss if loss > 1e-12 else None
    dd = values / np.maximum.accumulate(values) - 1
    out["max_drawdown_pct"] = dd.min() * 100
    closed = ~is_open
    p, q = pnl[closed], pct[closed]
    out["n_trades"] = int(closed.sum())
    if len(p):
        out["win_rate_pct"] = (p > 0).mean() * 100
        out["expectancy"] = p.mean()
        out["best_trade_pct"] = q.max()
        out["avg_trade_pct"] = (np.exp(np.log1p(q / 100).mean()) - 1) * 100
        wins, losses = p[p > 0].sum(), p[p < 0].sum()
        out["profit_factor"] = wins / -losses if (p < 0).any() else None
        sd = p.std(ddof=1) if len(p) >= 2 else 0.0
        out["sqn"] = math.sqrt(len(p)) * p.mean() / sd if sd > 1e-12 else None
    out["open_pnl"] = pnl[is_open].sum()
    # Undefined (inf, NaN) is None in the stats dict.
    return {k: None if v is None or not math.isfinite(v) else v for k, v in out.items()}


curves = st.lists(
    st.floats(-0.2, 0.2, allow_nan=False).map(lambda x: round(x, 3)), min_size=1, max_size=60
)
trade_lists = st.lists(
    # Cents and 0.001 %: a spread is 0 or well above the 1e-12 "zero" (no borderline cases).
    st.tuples(
        st.floats(-500, 500).map(lambda x: round(x, 2)),
        st.floats(-50, 80).map(lambda x: round(x, 3)),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(curves, trade_lists)
def test_compiled_stats_match_a_numpy_reference(steps: list[float], trades: list) -> None:
    values = 100.0 * np.cumprod(1.0 + np.array([0.0, *steps]))
    days = np.arange(19_000, 19_000 + len(values))
    pnl = np.array([t[0] for t in trades], dtype=float)
    pct = np.array([t[1] for t in trades], dtype=float)
    is_open = np.array([t[2] for t in trades], dtype=bool)
    fees = np.full(len(trades), 0.5)
    stats = stats_from_arrays(days, values, TradeArrays(pnl, pct, fees, is_open))
    with np.errstate(all="ignore"):
        want = reference(values, pnl, pct, is_open)
    for key, expected in want.items():
        got = stats[key]
        if expected is None:
            assert got is None, key
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), key
    assert stats["total_fees"] == pytest.approx(0.5 * len(trades))
    assert stats["n_open_trades"] == int(is_open.sum())


def test_trade_arrays_of_a_frame_without_optional_columns() -> None:
    frame = pl.DataFrame(
        {
            "pnl": [10.0, -5.0, 3.0],
            "return_pct": [1.0, -0.5, None],
            "exit_date": [dt.date(2024, 1, 3), dt.date(2024, 1, 5), None],
        }
    )
    arrays = trade_arrays(frame)
    assert arrays.is_open.tolist() == [False, False, True]
    assert arrays.bars_held is None
    assert math.isnan(arrays.return_pct[2])
    assert np.isnan(arrays.fees).all()
    days = np.arange(19_725, 19_730)  # 2024-01-03 … 2024-01-07
    stats = stats_from_arrays(days, np.full(5, 100.0), arrays)
    assert stats["total_fees"] == 0.0
    assert stats["open_pnl"] == 3.0
    assert stats["max_trade_duration_bars"] is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-50, 500), st.just(0.0), st.just(float("nan"))),
        min_size=1,
        max_size=40,
    )
)
def test_engine_curve_columns_are_the_numpy_expressions(values: list[float]) -> None:
    """The equity frame's exposure and drawdown, computed in one compiled pass, are
    bit-for-bit ``where(equity > 0, gross / equity, NaN)`` and
    ``equity / maximum.accumulate(equity) - 1`` (NaN, zero and negative equity included)."""
    from breadthflow.backtest import _kernels as nb

    equity = np.array(values)
    gross = np.abs(equity) * 0.5 + 1.0
    exposure, drawdown = np.empty(len(equity)), np.empty(len(equity))
    nb.curve_columns(equity, gross, exposure, drawdown)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(exposure, np.where(equity > 0, gross / equity, np.nan))
        np.testing.assert_array_equal(drawdown, equity / np.maximum.accumulate(equity) - 1.0)


# --- Series built straight from NumPy ---------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        np.array([1.5, np.nan, -0.0, np.inf]),
        np.arange(5, dtype=np.int64),
        np.array([19_000, -3], dtype=np.int32),
        np.array([True, False, True]),
        np.empty(0),
        np.arange(10.0)[::2],  # not contiguous: the public path
    ],
    ids=["float", "int64", "int32", "bool", "empty", "strided"],
)
@pytest.mark.parametrize("nan_to_null", [False, True])
def test_direct_series_equal_pl_series(values: np.ndarray, nan_to_null: bool) -> None:
    from breadthflow.backtest import _frames

    got = _frames.series("x", values, nan_to_null)
    want = pl.Series("x", values, nan_to_null=nan_to_null)
    assert got.dtype == want.dtype
    assert got.name == "x"
    assert got.null_count() == want.null_count()
    assert got.equals(want)


def test_direct_strings_and_frame_equal_the_public_ones() -> None:
    from breadthflow.backtest import _frames

    for values in (["long", "short"], [], ["é", ""]):
        assert_series_equal(_frames.strings("s", values), pl.Series("s", values, dtype=pl.String))
    columns = [pl.Series("a", [1.0, None]), pl.Series("b", ["x", "y"])]
    assert_frame_equal(_frames.frame(columns), pl.DataFrame(columns))
