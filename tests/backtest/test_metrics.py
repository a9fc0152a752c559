"""compute_stats: every key against hand-computed values or a plain Python loop, the edge
cases that must give None, and a cross-check with backtesting.py 0.6.6 (and vectorbt) on a
real SMA-cross run over AAPL 2010-2012."""

from __future__ import annotations

import datetime as dt
import doctest
import json
import math
import statistics
import warnings
from pathlib import Path

import polars as pl
import pytest

from breadthflow.backtest import metrics
from breadthflow.backtest.metrics import STAT_KEYS, compute_stats
from breadthflow.core.errors import InvalidInputError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "bokeh_stocks" / "daily.csv"

REQUIRED_KEYS = {
    "start", "end", "duration_days", "exposure_time_pct", "equity_final", "equity_peak",
    "total_return_pct", "buy_hold_return_pct", "return_ann_pct", "volatility_ann_pct",
    "cagr_pct", "sharpe", "sortino", "calmar", "omega", "alpha_pct", "beta",
    "max_drawdown_pct", "avg_drawdown_pct", "max_drawdown_duration_days",
    "avg_drawdown_duration_days", "n_trades", "win_rate_pct", "best_trade_pct",
    "worst_trade_pct", "avg_trade_pct", "avg_winning_trade_pct", "avg_losing_trade_pct",
    "max_trade_duration_bars", "avg_trade_duration_bars", "profit_factor", "expectancy",
    "expectancy_pct", "sqn", "kelly", "total_fees", "n_open_trades",
}  # fmt: skip
TRADE_KEYS = (
    "win_rate_pct", "best_trade_pct", "worst_trade_pct", "avg_trade_pct",
    "avg_winning_trade_pct", "avg_losing_trade_pct", "max_trade_duration_bars",
    "avg_trade_duration_bars", "profit_factor", "payoff_ratio", "expectancy", "expectancy_pct",
    "sqn", "kelly",
)  # fmt: skip

# A week and a half with a weekend gap: three drawdowns, the last one unrecovered.
DAYS = [dt.date(2024, 1, d) for d in (1, 2, 3, 4, 5, 8, 9, 10)]
VALUES = [100.0, 110.0, 99.0, 105.0, 115.0, 103.5, 120.0, 118.0]
BENCH = [50.0, 51.0, 50.5, 52.0, 53.0, 52.0, 54.0, 55.0]


def curve(values: list[float], days: list[dt.date] | None = None) -> pl.DataFrame:
    if days is None:
        days = [dt.date(2024, 1, 1) + dt.timedelta(i) for i in range(len(values))]
    return pl.DataFrame(
        {"date": days, "equity": values}, schema={"date": pl.Date, "equity": pl.Float64}
    )


def trade_frame(rows: list[dict]) -> pl.DataFrame:
    base = {
        "symbol": "AAA", "direction": "long", "entry_price": 10.0, "exit_price": 11.0,
        "shares": 1.0, "fees": 0.0, "bars_held": 1, "exit_reason": "signal",
    }  # fmt: skip
    full = [base | {"is_open": r.get("exit_date") is None} | r for r in rows]
    return pl.DataFrame(full, infer_schema_length=None)


def loop_returns(values: list[float]) -> list[float]:
    return [values[i] / values[i - 1] - 1 for i in range(1, len(values))]


def loop_std(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def no_trades() -> pl.DataFrame:
    return pl.DataFrame()


# --- keys and JSON ----------------------------------------------------------------------------


def test_returns_every_required_key_in_a_fixed_order():
    stats = compute_stats(curve(VALUES, DAYS), no_trades())
    assert set(stats) >= REQUIRED_KEYS
    assert tuple(stats) == STAT_KEYS


def test_module_example_runs():
    assert doctest.testmod(metrics).failed == 0


# --- period and equity ----------------------------------------------------------------------


def test_period_and_equity_keys():
    stats = compute_stats(curve(VALUES, DAYS), no_trades())
    assert stats["start"] == "2024-01-01"
    assert stats["end"] == "2024-01-10"
    assert stats["duration_days"] == 9
    assert stats["n_days"] == 8
    assert stats["equity_final"] == 118.0
    assert stats["equity_peak"] == 120.0
    assert stats["total_return_pct"] == pytest.approx(18.0)


def test_return_ann_is_geometric_per_bar_and_cagr_per_calendar_year():
    stats = compute_stats(curve(VALUES, DAYS), no_trades())
    # 7 daily returns compound to 1.18: per bar 1.18**(1/7), a year of bars is 252 of them.
    assert stats["return_ann_pct"] == pytest.approx((1.18 ** (252 / 7) - 1) * 100)
    # 9 calendar days are 9/365.25 of a year.
    assert stats["cagr_pct"] == pytest.approx((1.18 ** (365.25 / 9) - 1) * 100)


def test_volatility_sharpe_sortino_omega_match_a_plain_loop():
    rf = 0.05
    stats = compute_stats(curve(VALUES, DAYS), no_trades(), risk_free=rf)
    r = loop_returns(VALUES)
    rf_d = (1 + rf) ** (1 / 252) - 1
    mean = sum(r) / len(r)
    assert stats["volatility_ann_pct"] == pytest.approx(loop_std(r) * math.sqrt(252) * 100)
    assert stats["sharpe"] == pytest.approx((mean - rf_d) / loop_std(r) * math.sqrt(252))
    downside = math.sqrt(sum(min(x - rf_d, 0.0) ** 2 for x in r) / len(r))
    assert stats["sortino"] == pytest.approx((mean - rf_d) / downside * math.sqrt(252))
    gains = sum(x for x in r if x > 0)
    losses = sum(-x for x in r if x < 0)
    assert stats["omega"] == pytest.approx(gains / losses)


def test_risk_free_rate_lowers_sharpe_but_not_volatility():
    plain = compute_stats(curve(VALUES, DAYS), no_trades())
    with_rf = compute_stats(curve(VALUES, DAYS), no_trades(), risk_free=0.05)
    assert with_rf["sharpe"] < plain["sharpe"]
    assert with_rf["volatility_ann_pct"] == plain["volatility_ann_pct"]


def test_periods_per_year_changes_annualisation():
    weekly = compute_stats(curve(VALUES, DAYS), no_trades(), periods_per_year=52)
    assert weekly["return_ann_pct"] == pytest.approx((1.18 ** (52 / 7) - 1) * 100)
    r = loop_returns(VALUES)
    assert weekly["volatility_ann_pct"] == pytest.approx(loop_std(r) * math.sqrt(52) * 100)


# --- drawdowns ------------------------------------------------------------------------------


def test_drawdowns_depths_and_calendar_durations():
    stats = compute_stats(curve(VALUES, DAYS), no_trades())
    # Peaks 110 (Jan 2) -> 99 -> regained Jan 5; 115 (Jan 5) -> 103.5 -> regained Jan 9;
    # 120 (Jan 9) -> 118, still under water on Jan 10 (runs to the end).
    depths = [-10.0, -10.0, (118 / 120 - 1) * 100]
    assert stats["max_drawdown_pct"] == pytest.approx(-10.0)
    assert stats["avg_drawdown_pct"] == pytest.approx(sum(depths) / 3)
    assert stats["max_drawdown_duration_days"] == 4  # Jan 5 -> Jan 9 over the weekend
    assert stats["avg_drawdown_duration_days"] == pytest.approx((3 + 4 + 1) / 3)
    return_ann = (1.18 ** (252 / 7) - 1) * 100
    assert stats["calmar"] == pytest.approx(return_ann / 10.0)


def test_drawdown_that_never_recovers_runs_to_the_last_day():
    stats = compute_stats(curve([100.0, 90.0, 80.0, 95.0]), no_trades())
    assert stats["max_drawdown_pct"] == pytest.approx(-20.0)
    assert stats["avg_drawdown_pct"] == pytest.approx(-20.0)
    assert stats["max_drawdown_duration_days"] == 3


def test_touching_the_old_peak_ends_a_drawdown():
    stats = compute_stats(curve([100.0, 95.0, 100.0, 90.0, 100.0]), no_trades())
    assert stats["avg_drawdown_pct"] == pytest.approx((-5.0 - 10.0) / 2)
    assert stats["max_drawdown_duration_days"] == 2
    assert stats["avg_drawdown_duration_days"] == pytest.approx(2.0)


# --- benchmark ------------------------------------------------------------------------------


def test_buy_hold_alpha_beta_by_ols_of_daily_returns():
    bench = pl.DataFrame({"date": DAYS, "close": BENCH})
    stats = compute_stats(curve(VALUES, DAYS), no_trades(), benchmark=bench)
    assert stats["buy_hold_return_pct"] == pytest.approx(10.0)
    slope, intercept = statistics.linear_regression(loop_returns(BENCH), loop_returns(VALUES))
    assert stats["beta"] == pytest.approx(slope)
    assert stats["alpha_pct"] == pytest.approx(intercept * 252 * 100)


def test_alpha_uses_excess_returns_when_a_risk_free_rate_is_given():
    bench = pl.DataFrame({"date": DAYS, "close": BENCH})
    stats = compute_stats(curve(VALUES, DAYS), no_trades(), benchmark=bench, risk_free=0.05)
    rf_d = 1.05 ** (1 / 252) - 1
    y = [x - rf_d for x in loop_returns(VALUES)]
    x = [b - rf_d for b in loop_returns(BENCH)]
    slope, intercept = statistics.linear_regression(x, y)
    assert stats["beta"] == pytest.approx(slope)
    assert stats["alpha_pct"] == pytest.approx(intercept * 252 * 100)


def test_benchmark_is_aligned_on_the_equity_dates():
    # Extra benchmark dates are ignored; a missing one drops that date from both series.
    extra = [dt.date(2023, 12, 29), *DAYS[:3], *DAYS[4:], dt.date(2024, 1, 11)]
    closes = [40.0, *BENCH[:3], *BENCH[4:], 99.0]
    bench = pl.DataFrame({"date": extra, "close": closes}).reverse()
    stats = compute_stats(curve(VALUES, DAYS), no_trades(), benchmark=bench)
    assert stats["buy_hold_return_pct"] == pytest.approx(10.0)
    kept = VALUES[:3] + VALUES[4:]
    slope, _ = statistics.linear_regression(loop_returns(BENCH[:3] + BENCH[4:]), loop_returns(kept))
    assert stats["beta"] == pytest.approx(slope)


# --- exposure -------------------------------------------------------------------------------


def test_exposure_series_gives_time_in_market_and_average_exposure():
    exposure = pl.Series([0.0, 0.5, 1.0, 1.0, 0.0, None, 0.25, 0.0])
    stats = compute_stats(curve(VALUES, DAYS), no_trades(), exposure=exposure)
    assert stats["exposure_time_pct"] == pytest.approx(4 / 8 * 100)
    assert stats["avg_exposure_pct"] == pytest.approx((0.5 + 1 + 1 + 0.25) / 8 * 100)


def test_exposure_without_series_comes_from_the_trades_dates():
    trades = trade_frame(
        [
            {"entry_date": DAYS[1], "exit_date": DAYS[3], "pnl": 1.0, "return_pct": 1.0},
            {"entry_date": DAYS[2], "exit_date": DAYS[4], "pnl": 1.0, "return_pct": 1.0},
            {"entry_date": DAYS[6], "exit_date": None, "pnl": 1.0, "return_pct": 1.0},
        ]
    )
    stats = compute_stats(curve(VALUES, DAYS), trades)
    # Held at the close of days 1, 2, 3 (second trade until day 4) and 6, 7 (open to the end).
    assert stats["exposure_time_pct"] == pytest.approx(5 / 8 * 100)
    assert stats["avg_exposure_pct"] is None


def test_exposure_time_is_zero_without_trades():
    assert compute_stats(curve(VALUES, DAYS), no_trades())["exposure_time_pct"] == 0.0


# --- trades ---------------------------------------------------------------------------------

CLOSED = [
    {"pnl": 100.0, "return_pct": 10.0, "fees": 1.0, "bars_held": 3},
    {"pnl": -50.0, "return_pct": -5.0, "fees": 1.0, "bars_held": 2},
    {"pnl": 200.0, "return_pct": 20.0, "fees": 2.0, "bars_held": 5},
    {"pnl": -25.0, "return_pct": -2.5, "fees": 0.5, "bars_held": 1},
    {"pnl": 0.0, "return_pct": 0.0, "fees": 0.5, "bars_held": 4},
]
OPEN = {"pnl": 30.0, "return_pct": 3.0, "fees": 1.0, "bars_held": 2}


def sample_trades() -> pl.DataFrame:
    rows = [
        t | {"entry_date": DAYS[0], "exit_date": DAYS[1 + i % 5]} for i, t in enumerate(CLOSED)
    ] + [OPEN | {"entry_date": DAYS[5], "exit_date": None}]
    return trade_frame(rows)


def test_trade_stats_count_closed_trades_only():
    stats = compute_stats(curve(VALUES, DAYS), sample_trades())
    assert stats["n_trades"] == 5
    assert stats["n_open_trades"] == 1
    assert stats["open_pnl"] == pytest.approx(30.0)
    assert stats["n_winning_trades"] == 2
    assert stats["n_losing_trades"] == 2
    assert stats["win_rate_pct"] == pytest.approx(40.0)  # the break-even trade is no win
    assert stats["best_trade_pct"] == pytest.approx(20.0)
    assert stats["worst_trade_pct"] == pytest.approx(-5.0)
    assert stats["avg_winning_trade_pct"] == pytest.approx(15.0)
    assert stats["avg_losing_trade_pct"] == pytest.approx(-3.75)
    assert stats["max_trade_duration_bars"] == 5
    assert stats["avg_trade_duration_bars"] == pytest.approx(3.0)


def test_avg_trade_is_geometric_and_expectancy_arithmetic():
    stats = compute_stats(curve(VALUES, DAYS), sample_trades())
    product = 1.0
    for t in CLOSED:
        product *= 1 + t["return_pct"] / 100
    assert stats["avg_trade_pct"] == pytest.approx((product ** (1 / 5) - 1) * 100)
    assert stats["expectancy"] == pytest.approx(225.0 / 5)
    assert stats["expectancy_pct"] == pytest.approx(22.5 / 5)


def test_profit_factor_payoff_kelly_sqn_fees():
    stats = compute_stats(curve(VALUES, DAYS), sample_trades())
    assert stats["profit_factor"] == pytest.approx(300.0 / 75.0)
    assert stats["payoff_ratio"] == pytest.approx(150.0 / 37.5)
    assert stats["kelly"] == pytest.approx(0.4 - 0.6 / 4.0)
    pnl = [t["pnl"] for t in CLOSED]
    assert stats["sqn"] == pytest.approx(math.sqrt(5) * (sum(pnl) / 5) / loop_std(pnl))
    assert stats["total_fees"] == pytest.approx(6.0)  # the open trade's fees count too


def test_trades_without_is_open_column_are_open_when_they_have_no_exit_date():
    trades = sample_trades().drop("is_open")
    stats = compute_stats(curve(VALUES, DAYS), trades)
    assert (stats["n_trades"], stats["n_open_trades"]) == (5, 1)


# --- edge cases: None, never inf/NaN or an exception ----------------------------------------


@pytest.mark.parametrize("trades", [pl.DataFrame(), sample_trades().clear()], ids=["bare", "empty"])
def test_no_trades_gives_none_for_every_trade_statistic(trades):
    stats = compute_stats(curve(VALUES, DAYS), trades)
    assert all(stats[k] is None for k in TRADE_KEYS)
    assert (stats["n_trades"], stats["n_open_trades"], stats["total_fees"]) == (0, 0, 0.0)


def test_only_open_trades_count_as_no_closed_trades():
    trades = trade_frame([OPEN | {"entry_date": DAYS[0], "exit_date": None}])
    stats = compute_stats(curve(VALUES, DAYS), trades)
    assert stats["n_trades"] == 0
    assert stats["n_open_trades"] == 1
    assert all(stats[k] is None for k in TRADE_KEYS)


def test_no_losing_trade_gives_no_profit_factor_kelly_or_avg_loss():
    rows = [
        {"entry_date": DAYS[0], "exit_date": DAYS[1], "pnl": 5.0, "return_pct": 5.0},
        {"entry_date": DAYS[1], "exit_date": DAYS[2], "pnl": 7.0, "return_pct": 7.0},
    ]
    stats = compute_stats(curve(VALUES, DAYS), trade_frame(rows))
    assert stats["profit_factor"] is None
    assert stats["kelly"] is None
    assert stats["payoff_ratio"] is None
    assert stats["avg_losing_trade_pct"] is None
    assert stats["win_rate_pct"] == 100.0


def test_no_winning_trade_gives_zero_profit_factor():
    rows = [{"entry_date": DAYS[0], "exit_date": DAYS[1], "pnl": -5.0, "return_pct": -5.0}] * 2
    stats = compute_stats(curve(VALUES, DAYS), trade_frame(rows))
    assert stats["profit_factor"] == 0.0
    assert stats["kelly"] is None
    assert stats["sqn"] is None  # identical P&L: zero spread


def test_single_trade_gives_no_sqn():
    rows = [{"entry_date": DAYS[0], "exit_date": DAYS[1], "pnl": 5.0, "return_pct": 5.0}]
    stats = compute_stats(curve(VALUES, DAYS), trade_frame(rows))
    assert stats["sqn"] is None
    assert stats["expectancy"] == 5.0


def test_flat_equity_gives_no_ratios():
    stats = compute_stats(curve([100.0] * 5), no_trades())
    assert stats["volatility_ann_pct"] == 0.0
    assert stats["max_drawdown_pct"] == 0.0
    assert stats["max_drawdown_duration_days"] == 0
    for key in ("sharpe", "sortino", "calmar", "omega", "avg_drawdown_pct",
                "avg_drawdown_duration_days"):  # fmt: skip
        assert stats[key] is None, key


def test_steady_growth_has_zero_volatility_and_no_drawdown():
    stats = compute_stats(curve([100.0 * 1.01**i for i in range(30)]), no_trades())
    assert stats["sharpe"] is None  # the returns' spread is float noise, not risk
    assert stats["sortino"] is None
    assert stats["calmar"] is None
    assert stats["omega"] is None
    assert stats["return_ann_pct"] == pytest.approx((1.01**252 - 1) * 100)


def test_single_equity_row():
    bench = pl.DataFrame({"date": [dt.date(2024, 1, 1)], "close": [10.0]})
    stats = compute_stats(curve([100.0]), no_trades(), benchmark=bench)
    assert stats["duration_days"] == 0
    assert stats["total_return_pct"] == 0.0
    assert stats["buy_hold_return_pct"] == 0.0
    for key in ("return_ann_pct", "cagr_pct", "volatility_ann_pct", "sharpe", "sortino",
                "omega", "calmar", "alpha_pct", "beta", "avg_drawdown_pct"):  # fmt: skip
        assert stats[key] is None, key


def test_empty_equity_gives_none_not_an_error():
    stats = compute_stats(curve([]), sample_trades())
    assert stats["start"] is None
    assert stats["equity_final"] is None
    assert stats["n_trades"] == 5


def test_no_benchmark_or_a_flat_one_gives_no_alpha_beta():
    stats = compute_stats(curve(VALUES, DAYS), no_trades())
    assert (stats["buy_hold_return_pct"], stats["alpha_pct"], stats["beta"]) == (None, None, None)
    flat = pl.DataFrame({"date": DAYS, "close": [10.0] * len(DAYS)})
    stats = compute_stats(curve(VALUES, DAYS), no_trades(), benchmark=flat)
    assert stats["buy_hold_return_pct"] == 0.0
    assert (stats["alpha_pct"], stats["beta"]) == (None, None)


@pytest.mark.parametrize(
    "values",
    [[100.0, 0.0, 0.0], [100.0, 50.0, -10.0], [0.0, 10.0, 20.0], [100.0, 1e-300, 100.0]],
    ids=["wiped-out", "negative", "zero-start", "tiny"],
)
def test_degenerate_curves_never_give_inf_or_nan(values):
    stats = compute_stats(curve(values), sample_trades().head(1))
    json.dumps(stats, allow_nan=False)
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in stats.values())


def test_every_value_is_a_plain_json_type():
    bench = pl.DataFrame({"date": DAYS, "close": BENCH})
    stats = compute_stats(curve(VALUES, DAYS), sample_trades(), benchmark=bench)
    assert all(type(v) in (int, float, str, type(None)) for v in stats.values())
    json.dumps(stats, allow_nan=False)


# --- bad input ------------------------------------------------------------------------------


def test_missing_columns_are_named():
    with pytest.raises(InvalidInputError, match="equity"):
        compute_stats(pl.DataFrame({"date": DAYS}), no_trades())
    with pytest.raises(InvalidInputError, match="pnl"):
        compute_stats(curve(VALUES, DAYS), pl.DataFrame({"return_pct": [1.0]}))
    with pytest.raises(InvalidInputError, match="close"):
        compute_stats(curve(VALUES, DAYS), no_trades(), benchmark=pl.DataFrame({"date": DAYS}))


def test_exposure_of_the_wrong_length_is_refused():
    with pytest.raises(InvalidInputError, match="one per equity row"):
        compute_stats(curve(VALUES, DAYS), no_trades(), exposure=pl.Series([0.0, 1.0]))


def test_duplicate_equity_dates_are_refused():
    with pytest.raises(InvalidInputError, match="duplicate"):
        compute_stats(curve([1.0, 2.0], [DAYS[0], DAYS[0]]), no_trades())


# --- cross-check with backtesting.py 0.6.6 --------------------------------------------------


@pytest.fixture(scope="module")
def bt_run():
    """backtesting.py's SmaCross example on AAPL 2010-2012 (no costs, fills at the close,
    a crossover reverses the position), its stats and ours on the same equity and trades."""
    pd = pytest.importorskip("pandas")
    backtesting = pytest.importorskip("backtesting")
    from backtesting.lib import crossover

    bars = pl.read_csv(FIXTURE, try_parse_dates=True).filter(pl.col("symbol") == "AAPL")
    frame = bars.select("date", "open", "high", "low", "close", "volume").to_pandas()
    frame = frame.set_index(pd.DatetimeIndex(frame.pop("date")))
    frame.columns = [c.capitalize() for c in frame.columns]

    def sma(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(backtesting.Strategy):
        n1, n2 = 10, 20

        def init(self):
            self.fast = self.I(sma, self.data.Close, self.n1)
            self.slow = self.I(sma, self.data.Close, self.n2)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.sell()

    bt = backtesting.Backtest(
        frame, SmaCross, cash=10_000, commission=0.0, trade_on_close=True, exclusive_orders=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open" — we report them apart
        theirs = bt.run()

    curve_ = theirs["_equity_curve"]
    equity = pl.DataFrame(
        {"date": [d.date() for d in curve_.index], "equity": curve_["Equity"].to_numpy()}
    )
    t = theirs["_trades"]
    closed = pl.DataFrame(
        {
            "symbol": "AAPL",
            "direction": ["long" if s > 0 else "short" for s in t["Size"]],
            "entry_date": [d.date() for d in t["EntryTime"]],
            "entry_price": t["EntryPrice"].to_numpy(),
            "exit_date": [d.date() for d in t["ExitTime"]],
            "exit_price": t["ExitPrice"].to_numpy(),
            "shares": t["Size"].abs().astype(float).to_numpy(),
            "pnl": t["PnL"].to_numpy(),
            "return_pct": t["ReturnPct"].to_numpy() * 100,
            "fees": t["Commission"].to_numpy(),
            "bars_held": (t["ExitBar"] - t["EntryBar"]).to_numpy(),
            "is_open": False,
            "exit_reason": "signal",
        }
    )
    last_bar = len(frame) - 1
    still_open = pl.DataFrame(
        [
            {
                "symbol": "AAPL",
                "direction": "long" if o.size > 0 else "short",
                "entry_date": o.entry_time.date(),
                "entry_price": o.entry_price,
                "exit_date": None,
                "exit_price": float(frame["Close"].iloc[-1]),
                "shares": float(abs(o.size)),
                "pnl": o.pl,
                "return_pct": o.pl_pct * 100,
                "fees": 0.0,
                "bars_held": last_bar - o.entry_bar,
                "is_open": True,
                "exit_reason": "end",
            }
            for o in theirs["_strategy"].trades
        ],
        schema=closed.schema,
    )
    trades = pl.concat([closed, still_open])
    benchmark = bars.select("date", "close")
    ours = compute_stats(equity, trades, benchmark=benchmark)
    return theirs, ours, equity, trades, frame


def test_backtesting_py_run_is_not_trivial(bt_run):
    theirs, ours, _, trades, _ = bt_run
    assert theirs["# Trades"] > 20
    assert ours["n_open_trades"] == 1
    assert trades.filter(pl.col("direction") == "short").height > 10


@pytest.mark.parametrize(
    ("key", "their_key"),
    [
        ("equity_final", "Equity Final [$]"),
        ("equity_peak", "Equity Peak [$]"),
        ("total_return_pct", "Return [%]"),
        ("return_ann_pct", "Return (Ann.) [%]"),
        ("cagr_pct", "CAGR [%]"),
        ("calmar", "Calmar Ratio"),
        ("max_drawdown_pct", "Max. Drawdown [%]"),
        ("avg_drawdown_pct", "Avg. Drawdown [%]"),
        ("n_trades", "# Trades"),
        ("win_rate_pct", "Win Rate [%]"),
        ("best_trade_pct", "Best Trade [%]"),
        ("worst_trade_pct", "Worst Trade [%]"),
        ("avg_trade_pct", "Avg. Trade [%]"),
        ("expectancy_pct", "Expectancy [%]"),
        ("sqn", "SQN"),
        ("kelly", "Kelly Criterion"),
    ],
)
def test_agrees_with_backtesting_py(bt_run, key, their_key):
    theirs, ours, *_ = bt_run
    assert ours[key] == pytest.approx(float(theirs[their_key]), rel=1e-9)


def test_period_and_drawdown_durations_agree_with_backtesting_py(bt_run):
    theirs, ours, *_ = bt_run
    assert ours["start"] == theirs["Start"].date().isoformat()
    assert ours["end"] == theirs["End"].date().isoformat()
    assert ours["duration_days"] == theirs["Duration"].days
    assert ours["max_drawdown_duration_days"] == theirs["Max. Drawdown Duration"].days
    # backtesting.py rounds the mean duration up to whole days
    assert math.ceil(ours["avg_drawdown_duration_days"]) == theirs["Avg. Drawdown Duration"].days


def test_trade_durations_agree_with_backtesting_py_in_bars(bt_run):
    theirs, ours, *_ = bt_run
    t = theirs["_trades"]
    bars = (t["ExitBar"] - t["EntryBar"]).tolist()
    assert ours["max_trade_duration_bars"] == max(bars)
    assert ours["avg_trade_duration_bars"] == pytest.approx(sum(bars) / len(bars))


def test_profit_factor_is_on_pnl_where_backtesting_py_uses_returns(bt_run):
    theirs, ours, *_ = bt_run
    pnl = theirs["_trades"]["PnL"].tolist()
    returns = theirs["_trades"]["ReturnPct"].tolist()
    gross_loss = -sum(p for p in pnl if p < 0)
    assert ours["profit_factor"] == pytest.approx(sum(p for p in pnl if p > 0) / gross_loss)
    by_returns = sum(r for r in returns if r > 0) / -sum(r for r in returns if r < 0)
    assert float(theirs["Profit Factor"]) == pytest.approx(by_returns)
    assert ours["profit_factor"] != pytest.approx(by_returns, rel=1e-3)


def test_volatility_and_sharpe_are_the_simple_definitions_not_backtesting_pys(bt_run):
    theirs, ours, equity, *_ = bt_run
    r = loop_returns(equity["equity"].to_list())
    sd = statistics.stdev(r)
    assert ours["volatility_ann_pct"] == pytest.approx(sd * math.sqrt(252) * 100)
    assert ours["sharpe"] == pytest.approx(statistics.fmean(r) / sd * math.sqrt(252))
    # backtesting.py compounds the variance and divides the geometric annual return by it
    assert ours["volatility_ann_pct"] != pytest.approx(theirs["Volatility (Ann.) [%]"], rel=1e-3)
    assert ours["sharpe"] != pytest.approx(theirs["Sharpe Ratio"], rel=1e-3)


def test_buy_hold_agrees_with_backtesting_py_from_its_first_trading_bar(bt_run):
    theirs, ours, equity, trades, frame = bt_run
    close = frame["Close"].tolist()
    assert ours["buy_hold_return_pct"] == pytest.approx((close[-1] / close[0] - 1) * 100)
    # backtesting.py starts buy & hold after the indicators' warm-up (the 20-day SMA's
    # first value, bar 19); a benchmark starting there gives the same number.
    dates = equity["date"].to_list()
    late = pl.DataFrame({"date": dates[19:], "close": close[19:]})
    aligned = compute_stats(equity, trades, benchmark=late)
    assert aligned["buy_hold_return_pct"] == pytest.approx(theirs["Buy & Hold Return [%]"])


def test_alpha_beta_by_simple_return_ols_on_the_real_run(bt_run):
    _, ours, equity, _, frame = bt_run
    slope, intercept = statistics.linear_regression(
        loop_returns(frame["Close"].tolist()), loop_returns(equity["equity"].to_list())
    )
    assert ours["beta"] == pytest.approx(slope)
    assert ours["alpha_pct"] == pytest.approx(intercept * 252 * 100)


def test_exposure_time_counts_days_held_at_the_close(bt_run):
    theirs, ours, equity, trades, _ = bt_run
    dates = equity["date"].to_list()
    held = 0
    for day in dates:
        for t in trades.iter_rows(named=True):
            if t["entry_date"] <= day and (t["is_open"] or day < t["exit_date"]):
                held += 1
                break
    assert ours["exposure_time_pct"] == pytest.approx(held / len(dates) * 100)
    # backtesting.py also counts each closed trade's exit bar and leaves out the open trade
    assert ours["exposure_time_pct"] != pytest.approx(theirs["Exposure Time [%]"], rel=1e-3)


@pytest.mark.slow
def test_return_ratios_agree_with_vectorbt(bt_run):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("vectorbt")
    _, ours, equity, *_ = bt_run
    index = pd.DatetimeIndex(equity["date"].to_list())
    returns = pd.Series(equity["equity"].to_numpy(), index=index).pct_change().iloc[1:]
    acc = returns.vbt.returns(freq="D", year_freq=pd.Timedelta(days=252))
    assert ours["sharpe"] == pytest.approx(acc.sharpe_ratio())
    assert ours["sortino"] == pytest.approx(acc.sortino_ratio())
    assert ours["omega"] == pytest.approx(acc.omega_ratio())
    assert ours["calmar"] == pytest.approx(acc.calmar_ratio())
    assert ours["volatility_ann_pct"] == pytest.approx(acc.annualized_volatility() * 100)
    assert ours["return_ann_pct"] == pytest.approx(acc.annualized() * 100)
    assert ours["max_drawdown_pct"] == pytest.approx(acc.max_drawdown() * 100)
