"""The breadth table against a plain-Python reference, on real and hand-made bars.

The reference (`reference_breadth`) is written straight from docs/breadth.md: a dict of
symbol → bars and a loop over dates, independent of the NumPy kernels it checks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.errors import InvalidInputError
from breadthflow.data.providers.sample import load_sample
from breadthflow.indicators.breadth import BREADTH_COLUMNS, breadth_table


# --- the reference ---------------------------------------------------------------------
def _ema(values: list[float | None], span: int) -> list[float | None]:
    alpha = 2 / (span + 1)
    out: list[float | None] = []
    state = None
    for x in values:
        if x is None:
            out.append(None)
            continue
        state = x if state is None else state + alpha * (x - state)
        out.append(state)
    return out


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _running_total(values: list[float | None]) -> list[float | None]:
    total = 0.0
    out: list[float | None] = []
    for x in values:
        if x is None:
            out.append(None)
        else:
            total += x
            out.append(total)
    return out


def reference_breadth(bars: pl.DataFrame, hl_window: int = 252) -> list[dict]:
    series: dict[str, list[tuple]] = defaultdict(list)
    dates = set()
    for row in bars.sort("symbol", "date").iter_rows(named=True):
        dates.add(row["date"])
        if row["close"] is not None:
            series[row["symbol"]].append((row["date"], row["close"], row["volume"] or 0.0))
    where = {s: {d: i for i, (d, _, _) in enumerate(rows)} for s, rows in series.items()}

    out: list[dict] = []
    for day in sorted(dates):
        adv = dec = unch = 0
        adv_vol = dec_vol = 0.0
        compared = 0
        above = dict.fromkeys((20, 50, 200), 0)
        full = dict.fromkeys((20, 50, 200), 0)
        highs = lows = eligible_hl = 0
        for symbol, rows in series.items():
            i = where[symbol].get(day)
            if i is None:
                continue
            closes = [c for _, c, _ in rows]
            close, volume = closes[i], rows[i][2]
            if i >= 1:  # previous bar of this symbol, wherever it is
                compared += 1
                if close > closes[i - 1]:
                    adv, adv_vol = adv + 1, adv_vol + volume
                elif close < closes[i - 1]:
                    dec, dec_vol = dec + 1, dec_vol + volume
                else:
                    unch += 1
            for n in (20, 50, 200):
                if i >= n - 1:
                    full[n] += 1
                    # a tie within 1e-9 (relative) is not "above" (docs/breadth.md)
                    above[n] += close - sum(closes[i - n + 1 : i + 1]) / n > 1e-9 * abs(close)
            if i >= hl_window:
                eligible_hl += 1
                prior = closes[i - hl_window : i]
                highs += close > max(prior)
                lows += close < min(prior)
        has = compared > 0
        row = {
            "date": day,
            "advances": adv if has else None,
            "declines": dec if has else None,
            "unchanged": unch if has else None,
            "adv_volume": adv_vol if has else None,
            "dec_volume": dec_vol if has else None,
            "net_advances": adv - dec if has else None,
        }
        for n in (20, 50, 200):
            row[f"pct_above_sma{n}"] = _div(100.0 * above[n], full[n])
        row["new_highs"] = highs if eligible_hl else None
        row["new_lows"] = lows if eligible_hl else None
        out.append(row)

    net = [r["net_advances"] for r in out]
    ratio = [
        _div(None if r["advances"] is None else 1000.0 * (r["advances"] - r["declines"]),
             None if r["advances"] is None else r["advances"] + r["declines"])
        for r in out
    ]  # fmt: skip
    osc = [None if a is None else a - b for a, b in zip(_ema(net, 19), _ema(net, 39), strict=True)]
    osc_ratio = [
        None if a is None else a - b for a, b in zip(_ema(ratio, 19), _ema(ratio, 39), strict=True)
    ]
    ad_line = _running_total(net)
    summation = _running_total(osc)
    hl_pct = [
        _div(None if r["new_highs"] is None else 100.0 * r["new_highs"],
             None if r["new_highs"] is None else r["new_highs"] + r["new_lows"])
        for r in out
    ]  # fmt: skip
    first_valid = next((i for i, v in enumerate(hl_pct) if v is not None), None)
    zbt = _ema(
        [
            _div(r["advances"], None if r["advances"] is None else r["advances"] + r["declines"])
            for r in out
        ],
        10,
    )
    for t, r in enumerate(out):
        r["ad_line"] = ad_line[t]
        r["mcclellan_osc"] = osc[t]
        r["mcclellan_osc_ratio"] = osc_ratio[t]
        r["mcclellan_sum"] = summation[t]
        window = [v for v in hl_pct[max(0, t - 9) : t + 1] if v is not None]
        started = first_valid is not None and t >= first_valid + 9
        r["hl_index"] = sum(window) / len(window) if started and window else None
        r["trin"] = _div(_div(r["advances"], r["declines"]), _div(r["adv_volume"], r["dec_volume"]))
        r["zbt"] = zbt[t]
        if zbt[t] is None:
            r["zbt_thrust"] = None
        else:
            before = [z for z in zbt[max(0, t - 10) : t] if z is not None]
            r["zbt_thrust"] = zbt[t] > 0.615 and any(z < 0.40 for z in before)
    return out


def assert_matches_reference(table: pl.DataFrame, expected: list[dict]) -> None:
    """Every column of every row equal (floats to 1e-9 relative), nulls in the same places."""
    rows = table.to_dicts()
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        for column, value in want.items():
            actual = got[column]
            where = f"{column} on {want['date']}: got {actual!r}, expected {value!r}"
            if value is None or actual is None:
                assert actual is None and value is None, where
            elif isinstance(value, float) or isinstance(actual, float):
                assert math.isclose(actual, value, rel_tol=1e-9, abs_tol=1e-9), where
            else:
                assert actual == value, where


# --- helpers ---------------------------------------------------------------------------

DAY0 = dt.date(2024, 1, 1)


def bars_from(closes: dict[str, list[float | None]], volume: float = 1000.0) -> pl.DataFrame:
    """Bars from symbol → closes on consecutive days; None = no bar that day."""
    rows = [
        {"symbol": s, "date": DAY0 + dt.timedelta(days=i), "close": c, "volume": volume}
        for s, values in closes.items()
        for i, c in enumerate(values)
        if c is not None
    ]
    return pl.DataFrame(
        rows,
        schema={"symbol": pl.String, "date": pl.Date, "close": pl.Float64, "volume": pl.Float64},
    )


@pytest.fixture(scope="module")
def sample_bars() -> pl.DataFrame:
    bars = load_sample().select("symbol", "date", "close", "volume")
    symbols = sorted(bars["symbol"].unique().to_list())[::13][:40]
    return bars.filter(pl.col("symbol").is_in(symbols))


def random_bars(seed: int, symbols: int = 12, days: int = 90) -> pl.DataFrame:
    """Late starters, early leavers, gaps and many unchanged closes (prices on a coarse grid)."""
    rng = np.random.default_rng(seed)
    closes: dict[str, list[float | None]] = {}
    for k in range(symbols):
        start, stop = sorted(rng.integers(0, days, size=2))
        start = 0 if k < 3 else start  # a few symbols span the whole range
        path = np.round(50 + np.cumsum(rng.integers(-2, 3, size=days)) * 0.5, 1)
        closes[f"S{k:02d}"] = [
            float(path[i]) if start <= i <= max(stop, start + 5) and rng.random() > 0.1 else None
            for i in range(days)
        ]
    bars = bars_from(closes)
    return bars.with_columns(
        pl.Series("volume", rng.integers(0, 5, size=bars.height) * 100.0)
    )  # zero volumes too


# --- every column against the reference ------------------------------------------------


def test_sample_data_matches_reference_in_every_column(sample_bars):
    table = breadth_table(sample_bars, hl_window=50)
    assert table.height == sample_bars["date"].n_unique() == 245
    assert_matches_reference(table, reference_breadth(sample_bars, hl_window=50))


@pytest.mark.parametrize(("seed", "hl_window"), [(1, 2), (2, 7), (3, 20), (4, 64), (5, 100)])
def test_random_bars_with_gaps_and_ties_match_reference(seed, hl_window):
    bars = random_bars(seed)
    assert_matches_reference(
        breadth_table(bars, hl_window=hl_window), reference_breadth(bars, hl_window=hl_window)
    )


def test_columns_are_exactly_the_documented_ones_in_order(sample_bars):
    table = breadth_table(sample_bars, hl_window=50)
    assert table.columns == list(BREADTH_COLUMNS) == [
        "date", "advances", "declines", "unchanged", "adv_volume", "dec_volume",
        "net_advances", "ad_line", "mcclellan_osc", "mcclellan_osc_ratio", "mcclellan_sum",
        "pct_above_sma20", "pct_above_sma50", "pct_above_sma200", "new_highs", "new_lows",
        "hl_index", "trin", "zbt", "zbt_thrust",
    ]  # fmt: skip
    assert table["date"].is_sorted() and table["date"].is_unique().all()
    assert table.schema["advances"] == pl.Int64 and table.schema["zbt_thrust"] == pl.Boolean


def test_empty_bars_give_an_empty_table_with_the_columns():
    table = breadth_table(bars_from({}))
    assert table.height == 0 and table.columns == list(BREADTH_COLUMNS)


def test_dates_whose_bars_all_lack_a_close_still_get_a_row():
    bars = bars_from({"A": [1.0, 2.0, 3.0]}).with_columns(close=pl.lit(None, pl.Float64))
    table = breadth_table(bars)
    assert table.height == 3 and table.drop("date").null_count().row(0) == (3,) * 19


# --- nulls and division by zero --------------------------------------------------------


def _no_inf_or_nan(table: pl.DataFrame) -> None:
    for name, dtype in table.schema.items():
        if dtype == pl.Float64:
            col = table[name]
            assert not col.is_nan().any() and not col.is_infinite().any(), name


def test_first_date_has_no_advances_and_nothing_derived():
    table = breadth_table(bars_from({"A": [10, 11, 12], "B": [10, 9, 9]}))
    first = table.row(0, named=True)
    for name in ("advances", "declines", "unchanged", "adv_volume", "dec_volume",
                 "net_advances", "ad_line", "mcclellan_osc", "mcclellan_osc_ratio",
                 "mcclellan_sum", "trin", "zbt", "zbt_thrust"):  # fmt: skip
        assert first[name] is None, name
    second = table.row(1, named=True)
    assert (second["advances"], second["declines"], second["unchanged"]) == (1, 1, 0)
    # EMAs are seeded with their first value: the oscillator starts at 0.
    assert second["ad_line"] == 0 and second["mcclellan_osc"] == 0.0
    assert second["zbt"] == 0.5


def test_division_by_zero_gives_null_never_inf_or_nan():
    table = breadth_table(
        pl.concat(
            [
                # day 1: everything unchanged; day 2: no declines; day 3: advancers traded 0
                bars_from({"A": [10, 10, 11, 12], "B": [5, 5, 6, 4]}),
                bars_from({"C": [7, 7, 8, 9]}, volume=0.0),
            ]
        )
    )
    _no_inf_or_nan(table)
    flat, no_declines, zero_adv_volume = table.rows(named=True)[1:]
    assert (flat["advances"], flat["declines"], flat["unchanged"]) == (0, 0, 3)
    assert flat["trin"] is None and flat["zbt"] is None
    assert flat["mcclellan_osc_ratio"] is None and flat["mcclellan_osc"] == 0.0
    assert no_declines["declines"] == 0 and no_declines["trin"] is None
    assert no_declines["zbt"] == 1.0  # seeded with the first non-null ratio
    assert zero_adv_volume["adv_volume"] == 1000.0  # A advanced; C (volume 0) too
    single = breadth_table(bars_from({"A": [1, 2, 3]}, volume=0.0))
    assert single["trin"].null_count() == 3
    _no_inf_or_nan(single)


def test_zero_advancer_volume_makes_trin_null():
    table = breadth_table(
        pl.concat([bars_from({"A": [10, 11]}, volume=0.0), bars_from({"B": [10, 9]})])
    )
    last = table.row(1, named=True)
    assert last["adv_volume"] == 0.0 and last["dec_volume"] == 1000.0 and last["trin"] is None


def test_pct_above_sma_is_null_until_a_symbol_has_a_full_window():
    table = breadth_table(bars_from({"A": list(range(1, 31)), "B": list(range(60, 30, -1))}))
    pct = table["pct_above_sma20"].to_list()
    assert pct[:19] == [None] * 19
    assert pct[19:] == [50.0] * 11  # A rising (above its SMA), B falling (below)
    assert table["pct_above_sma50"].null_count() == 30


def test_a_flat_series_is_not_above_its_sma():
    table = breadth_table(bars_from({"A": [0.1] * 25, "B": [3.3] * 25}))
    assert table["pct_above_sma20"].drop_nulls().to_list() == [0.0] * 6


# --- symbols that start late or skip sessions ------------------------------------------


def test_symbol_starting_late_counts_from_its_second_bar():
    bars = bars_from({"A": [10, 11, 12, 13], "B": [None, None, 50, 40]})
    table = breadth_table(bars)
    assert table["advances"].to_list() == [None, 1, 1, 1]
    assert table["declines"].to_list() == [None, 0, 0, 1]  # B's first bar is not compared
    assert_matches_reference(table, reference_breadth(bars))


def test_symbol_with_a_gap_compares_with_its_last_bar():
    # B has no bar on day 2: on day 3 it is compared with day 1 (20 → 19 is a decline).
    bars = bars_from({"A": [10, 11, 12, 13], "B": [20, 25, None, 19]})
    table = breadth_table(bars)
    assert table["declines"].to_list() == [None, 0, 0, 1]
    assert table["advances"].to_list() == [None, 2, 1, 1]
    assert_matches_reference(table, reference_breadth(bars))


def test_date_with_only_new_symbols_has_null_counts_and_keeps_the_row():
    bars = bars_from({"A": [10, None, None], "B": [None, 5, 6]})
    table = breadth_table(bars)
    assert table["date"].to_list() == [DAY0 + dt.timedelta(days=i) for i in range(3)]
    assert table["advances"].to_list() == [None, None, 1]
    assert table["ad_line"].to_list() == [None, None, 1]


def test_row_order_and_lazy_input_do_not_matter(sample_bars):
    expected = breadth_table(sample_bars, hl_window=50)
    shuffled = sample_bars.sample(fraction=1.0, shuffle=True, seed=7)
    assert_frame_equal(breadth_table(shuffled, hl_window=50), expected)
    assert_frame_equal(breadth_table(sample_bars.lazy(), hl_window=50), expected)


def test_result_does_not_depend_on_how_symbols_are_chunked(sample_bars, monkeypatch):
    expected = breadth_table(sample_bars, hl_window=50)
    # Chunks of ~2 symbols (the default holds ~100 symbols of 10 years each).
    monkeypatch.setattr("breadthflow.indicators.breadth.CHUNK_ROWS", 500)
    assert_frame_equal(breadth_table(sample_bars, hl_window=50), expected)


def test_duplicate_symbol_date_rows_are_refused():
    bars = bars_from({"A": [1, 2], "B": [1, 2]})
    with pytest.raises(InvalidInputError, match="more than one row for A"):
        breadth_table(pl.concat([bars, bars.head(1)]))


# --- causality and parameters ----------------------------------------------------------


def test_table_of_truncated_bars_equals_the_full_table_up_to_that_date(sample_bars):
    full = breadth_table(sample_bars, hl_window=50)
    dates = full["date"].to_list()
    for cut in (dates[0], dates[1], dates[30], dates[60], dates[150], dates[-2]):
        truncated = breadth_table(sample_bars.filter(pl.col("date") <= cut), hl_window=50)
        assert_frame_equal(truncated, full.filter(pl.col("date") <= cut))


def test_hl_window_is_respected():
    # A's 20 on day 1 blocks a new high while it is among the previous hl_window closes:
    # with 3, until day 5; with 5, until day 7.
    bars = bars_from({"A": [10, 20, 11, 12, 13, 14, 15, 16], "B": [9, 8, 7, 6, 5, 4, 3, 2]})
    three = breadth_table(bars, hl_window=3)
    assert three["new_highs"].to_list() == [None] * 3 + [0, 0, 1, 1, 1]
    assert three["new_lows"].to_list() == [None] * 3 + [1, 1, 1, 1, 1]
    five = breadth_table(bars, hl_window=5)
    assert five["new_highs"].to_list() == [None] * 5 + [0, 0, 1]
    assert five["new_lows"].to_list() == [None] * 5 + [1, 1, 1]
    assert breadth_table(bars, hl_window=8)["new_highs"].null_count() == 8


@pytest.mark.parametrize("bad", [0, 1, -5, 2.5, True])
def test_hl_window_below_two_is_refused(bad):
    with pytest.raises(InvalidInputError, match="hl_window"):
        breadth_table(bars_from({"A": [1, 2]}), hl_window=bad)


# --- Zweig breadth thrust --------------------------------------------------------------


def _universe_with_advancing_share(shares: list[float], size: int = 100) -> pl.DataFrame:
    """``size`` symbols; on day t the first round(shares[t] * size) advance, the rest decline."""
    closes: dict[str, list[float | None]] = {}
    for k in range(size):
        price, path = 100.0, [100.0]
        for share in shares:
            price *= 1.01 if k < round(share * size) else 0.99
            path.append(price)
        closes[f"Z{k:03d}"] = path
    return bars_from(closes)


def test_zbt_thrust_fires_on_a_quick_swing_from_oversold():
    bars = _universe_with_advancing_share([0.2] * 15 + [0.95] * 8 + [0.5] * 10)
    table = breadth_table(bars)
    zbt, thrust = table["zbt"].to_list(), table["zbt_thrust"].to_list()
    fired = [i for i, t in enumerate(thrust) if t]
    assert fired, zbt
    first = fired[0]
    assert zbt[first] > 0.615 and zbt[first - 1] <= 0.615
    assert min(zbt[first - 10 : first]) < 0.40
    assert_matches_reference(table, reference_breadth(bars))


def test_zbt_thrust_does_not_fire_on_a_slow_climb_or_a_flat_market():
    slow = _universe_with_advancing_share([0.2] * 15 + [0.2 + 0.01 * i for i in range(70)])
    table = breadth_table(slow)
    zbt = table["zbt"].drop_nulls()
    assert zbt.min() < 0.40 and zbt.max() > 0.615  # it does cross both levels …
    assert not table["zbt_thrust"].any()  # … but takes more than 10 days to do it
    flat = breadth_table(_universe_with_advancing_share([0.5] * 40))
    assert not flat["zbt_thrust"].any()
