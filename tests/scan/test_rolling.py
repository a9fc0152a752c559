"""The compiled loops of breadthflow.scan._rolling against plain Python loops (for the WMA
and σ, in exact arithmetic: 2 ulps, 1e-14), and the parallel paths (a kernel cut in two,
side-by-side passes, the streaming engine) against the serial ones: the same numbers, to
the last bit."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from breadthflow.scan import _rolling
from breadthflow.scan import formula as formula_module
from breadthflow.scan._rolling import POS, segments
from breadthflow.scan.engine import check_bars
from breadthflow.scan.formula import compile_formula

EPOCH = dt.date(1970, 1, 1)
PRICES = ("open", "high", "low", "close")


def ragged_lengths(rng: np.random.Generator, count: int, longest: int) -> np.ndarray:
    """Segment lengths with the edge cases first: 1, 2, shorter than, equal to and longer
    than a window of 20."""
    return np.concatenate(([1, 2, 19, 20, 21, 1], rng.integers(1, longest, count))).astype(np.int64)


def positions(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([np.arange(n) for n in lengths]).astype(np.int32)


def prices_with_gaps(rng: np.random.Generator, size: int) -> np.ndarray:
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, size)))
    values[rng.random(size) < 0.02] = np.nan
    return values


def neumaier_mean(values: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
    """The n-bar mean as the SMA kernel defines it, one Python loop per segment, with the
    kernel's earlier form of compensation (Neumaier, with a branch)."""

    def add(total: float, carry: float, value: float) -> tuple[float, float]:
        t = total + value
        if abs(total) >= abs(value):
            carry += (total - t) + value
        else:
            carry += (value - t) + total
        return t, carry

    out = np.full(values.shape[0], np.nan)
    row = 0
    for length in lengths:
        segment = [float(v) for v in values[row : row + length]]
        total = carry = 0.0
        for k, value in enumerate(segment):
            if not math.isnan(value):
                total, carry = add(total, carry, value)
            if k >= n and not math.isnan(segment[k - n]):
                total, carry = add(total, carry, -segment[k - n])
            window = segment[max(0, k - n + 1) : k + 1]
            mean = (total + carry) / n
            if k >= n - 1 and not any(math.isnan(v) for v in window) and math.isfinite(mean):
                out[row + k] = mean
        row += length
    return out


def kernel_mean(values: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(values.shape[0])
    _rolling._rolling_mean(_rolling._ro(values), _rolling._ro(pos), out, n)
    return out


# --- the SMA kernel ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 20])
def test_the_sma_kernel_equals_a_plain_loop_to_the_last_bit(n):
    rng = np.random.default_rng(n)
    lengths = ragged_lengths(rng, 60, 90)
    values = prices_with_gaps(rng, int(lengths.sum()))
    values[50:53] = 1e308  # two of them overflow the sum
    got = kernel_mean(values, positions(lengths), n)
    want = neumaier_mean(values, lengths, n)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[51:53]).all() and (n > 1 or got[50] == 1e308)


def test_the_sma_kernel_does_not_drift_on_a_constant_series():
    """The same mean on every bar, wherever the series starts — the rounded mean of the
    exact window sum, within an ulp of the constant (``fl(fl(20·c) / 20)`` need not be c)."""
    for value in (0.1, 1.1, 123.456, 2.675, 1e8 + 0.3, 3e-5):
        means = set()
        for start in (0, 1, 137):
            tail = np.full(700 - start, value)
            got = kernel_mean(tail, np.arange(tail.shape[0], dtype=np.int32), 20)
            means |= set(got[19:].tolist())
        (mean,) = means
        assert abs(mean - value) <= np.spacing(value), value


def test_the_sma_kernel_restarts_at_every_segment():
    rng = np.random.default_rng(3)
    lengths = ragged_lengths(rng, 20, 200)
    values = prices_with_gaps(rng, int(lengths.sum()))
    together = kernel_mean(values, positions(lengths), 20)
    row = 0
    for length in lengths:
        alone = kernel_mean(values[row : row + length], np.arange(length, dtype=np.int32), 20)
        assert np.array_equal(together[row : row + length], alone, equal_nan=True)
        row += length


# --- the WMA, standard deviation and Bollinger kernels --------------------------------------


def kernel(name: str, values: np.ndarray, pos: np.ndarray, *args: object) -> np.ndarray:
    out = np.empty(values.shape[0])
    getattr(_rolling, name)(_rolling._ro(values), _rolling._ro(pos), out, *args)
    return out


def exact_windows(values: np.ndarray, lengths: np.ndarray, n: int):
    """Per full window without NaN: its row and its values as exact fractions."""
    row = 0
    for length in lengths:
        for k in range(n - 1, length):
            window = values[row + k - n + 1 : row + k + 1]
            if not np.isnan(window).any():
                yield row + k, [Fraction(float(v)) for v in window]
        row += length


def exact_wma(window: list[Fraction]) -> float:
    n = len(window)
    return float(sum((j + 1) * v for j, v in enumerate(window)) / Fraction(n * (n + 1), 2))


def exact_sigma(window: list[Fraction]) -> float:
    """The population standard deviation, correctly rounded (from the exact variance)."""
    return statistics.pstdev(window)


def expect_nan_where_a_window_is_short_or_has_a_nan(got, values, lengths, n) -> np.ndarray:
    full = np.zeros(values.shape[0], dtype=bool)
    full[[row for row, _ in exact_windows(values, lengths, n)]] = True
    assert np.array_equal(np.isnan(got), ~full)
    return full


@pytest.mark.parametrize("n", [1, 3, 20])
def test_the_wma_kernel_is_the_exact_weighted_mean_rounded(n):
    rng = np.random.default_rng(30 + n)
    lengths = ragged_lengths(rng, 60, 90)
    values = prices_with_gaps(rng, int(lengths.sum()))
    values[: lengths[:6].sum()] = rng.normal(0, 1, lengths[:6].sum())  # both signs
    got = kernel("_rolling_wma", values, positions(lengths), n)
    expect_nan_where_a_window_is_short_or_has_a_nan(got, values, lengths, n)
    for row, window in exact_windows(values, lengths, n):
        want = exact_wma(window)
        assert abs(got[row] - want) <= 2 * np.spacing(abs(want)), (row, got[row], want)


@pytest.mark.parametrize("n", [1, 2, 3, 20])
@pytest.mark.parametrize("move", [0.02, 1e-9])  # daily moves of 2 %, and tiny variances
def test_the_stdev_kernel_is_the_exact_population_sigma_to_a_few_ulps(n, move):
    """Within 1e-14 of the exact σ, however small against the price — the per-symbol
    builder (Polars' sliding update) is off by up to 1e-4 there."""
    rng = np.random.default_rng(40 + n)
    lengths = ragged_lengths(rng, 60, 90)
    size = int(lengths.sum())
    steps = rng.normal(0, move, size)
    steps[rng.random(size) < 0.01] = 0.05  # jumps, after which the window's σ collapses
    values = 900 * np.exp(np.cumsum(steps))
    values[rng.random(size) < 0.02] = np.nan
    got = kernel("_rolling_bands", values, positions(lengths), n, 1.0, False)
    expect_nan_where_a_window_is_short_or_has_a_nan(got, values, lengths, n)
    for row, window in exact_windows(values, lengths, n):
        want = exact_sigma(window)
        assert abs(got[row] - want) <= 1e-14 * want, (row, got[row], want)


@pytest.mark.parametrize("k", [0.0, 2.0, -1.5])
def test_the_bollinger_kernel_is_the_sma_kernels_mean_plus_k_sigma(k):
    rng = np.random.default_rng(50)
    lengths = ragged_lengths(rng, 60, 90)
    values = prices_with_gaps(rng, int(lengths.sum()))
    pos = positions(lengths)
    got = kernel("_rolling_bands", values, pos, 20, k, True)
    mean = kernel_mean(values, pos, 20)
    sigma = kernel("_rolling_bands", values, pos, 20, 1.0, False)
    assert np.array_equal(got, mean + k * sigma, equal_nan=True)  # the very same floats
    assert np.isfinite(got).sum() > 1000


def test_the_wma_and_stdev_kernels_on_constant_series():
    """σ is 0 exactly — from a series' start, and once a varying stretch has left the window
    — and the WMA within an ulp of the constant, the same on every bar, wherever the series
    starts."""
    rng = np.random.default_rng(60)
    for value in (0.1, 1.1, 123.456, 2.675, 1e8 + 0.3, 3e-5):
        for n in (1, 3, 20, 200):
            wmas = set()
            for start in (0, 1, 137):
                tail = np.full(700 - start, value)
                pos = np.arange(tail.shape[0], dtype=np.int32)
                wmas |= set(kernel("_rolling_wma", tail, pos, n)[n - 1 :].tolist())
                sigma = kernel("_rolling_bands", tail, pos, n, 1.0, False)
                assert (sigma[n - 1 :] == 0.0).all()
                band = kernel("_rolling_bands", tail, pos, n, 2.0, True)
                assert np.array_equal(band, kernel_mean(tail, pos, n), equal_nan=True)
            (wma,) = wmas
            assert abs(wma - value) <= np.spacing(value), (value, n)
            after = np.concatenate((value * np.exp(rng.normal(0, 0.1, 300)), np.full(300, value)))
            sigma = kernel("_rolling_bands", after, np.arange(600, dtype=np.int32), n, 1.0, False)
            assert (sigma[300 + n - 1 :] == 0.0).all()


def test_the_wma_and_stdev_kernels_recover_after_an_overflow():
    """NaN where the per-symbol builders overflow too (a weighted sum beyond 1.8e308, a
    square of a deviation), then the exact values again once the huge value has left."""
    values = np.full(80, 100.0) + np.arange(80) % 7
    values[30] = 1e308
    pos, lengths = np.arange(80, dtype=np.int32), np.array([80])
    wma = kernel("_rolling_wma", values, pos, 5)
    sigma = kernel("_rolling_bands", values, pos, 5, 1.0, False)
    assert np.isnan(wma[30:34]).all() and wma[34] == pytest.approx(1e308 / 15, rel=1e-15)
    assert np.isnan(sigma[30:35]).all()
    for row, window in exact_windows(values, lengths, 5):
        if row >= 35:
            assert wma[row] == pytest.approx(exact_wma(window), rel=1e-15), row
            assert sigma[row] == pytest.approx(exact_sigma(window), rel=1e-14), row


@pytest.mark.parametrize(("name", "args"), [("_rolling_wma", (20,)),
                                            ("_rolling_bands", (20, 2.0, True))])  # fmt: skip
def test_the_wma_and_bands_kernels_restart_at_every_segment(name, args):
    rng = np.random.default_rng(3)
    lengths = ragged_lengths(rng, 20, 200)
    values = prices_with_gaps(rng, int(lengths.sum()))
    together = kernel(name, values, positions(lengths), *args)
    row = 0
    for length in lengths:
        alone = kernel(name, values[row : row + length], np.arange(length, dtype=np.int32), *args)
        assert np.array_equal(together[row : row + length], alone, equal_nan=True)
        row += length


def bars_of(lengths: np.ndarray, rng: np.random.Generator, gaps: bool = True) -> pl.DataFrame:
    """Sorted long bars, symbols S0000…, with missing closes unless not ``gaps``."""
    symbols = np.repeat([f"S{k:04d}" for k in range(lengths.shape[0])], lengths)
    days = np.concatenate([np.arange(n) for n in lengths]) + 19_000
    close = prices_with_gaps(rng, int(lengths.sum()))
    if not gaps:
        close = np.nan_to_num(close, nan=50.0)
    return pl.DataFrame(
        {
            "symbol": symbols,
            "date": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
            "open": close * 1.01,
            "high": close * 1.02,
            "low": close * 0.98,
            "close": pl.Series(close, nan_to_null=True),
            "volume": rng.integers(1, 10**6, close.shape[0]).astype(np.float64),
        }
    )


PER_SYMBOL = [
    "sma(close, 20)",
    "sma(volume, 3)",
    "ema(close, 4)",
    "rsi(close, 3)",
    "macd(close, 3, 6)",
    "macd_signal(close, 3, 6, 2)",
    "atr(3)",
    "wma(close, 5)",
    "stdev(close, 5)",
    "bb_upper(close, 5, 2)",
    "bb_lower(close, 5, 1.5)",
]


@pytest.mark.parametrize("expr", PER_SYMBOL)
def test_a_kernel_cut_in_two_gives_the_one_pass_values(expr, monkeypatch):
    bars = bars_of(ragged_lengths(np.random.default_rng(5), 40, 60), np.random.default_rng(6))
    formula = compile_formula(f"{expr} > -1e300")
    monkeypatch.setattr(_rolling, "_PARALLEL_ROWS", 1 << 40)
    one_pass = formula.evaluate(bars)
    monkeypatch.setattr(_rolling, "_PARALLEL_ROWS", 2)
    halves = formula.evaluate(bars)
    assert halves.equals(one_pass)
    assert one_pass[expr].null_count() < one_pass.height


# --- segments and the per-segment checks --------------------------------------------------


def reference_checks(
    lengths: np.ndarray, days: np.ndarray, lo: int, hi: int, columns: dict[str, np.ndarray]
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Per segment, one Python loop: the first repeated date, the bars dated lo … hi, and
    the bad bars (count, first) by check_bars' rule."""
    repeats, inside, n_bad, first_bad = [], [], [], []
    row = 0
    for length in lengths:
        rows = range(row, row + length)
        repeats.append(next((i for i in rows if i > row and days[i] == days[i - 1]), -1))
        inside.append(sum(lo <= days[i] <= hi for i in rows))
        bad = []
        for i in rows:
            ok = all(0 < columns[c][i] < math.inf for c in PRICES if c in columns)
            if "volume" in columns:
                ok = ok and 0 <= columns["volume"][i] < math.inf
            if "high" in columns and "low" in columns:
                ok = ok and columns["high"][i] >= columns["low"][i]
            if not ok:
                bad.append(i)
        n_bad.append(len(bad))
        first_bad.append(bad[0] if bad else -1)
        row += length
    return repeats, inside, n_bad, first_bad


@pytest.mark.parametrize(
    "present",
    [
        (),
        ("close",),
        ("close", "volume"),
        ("high", "low"),
        ("open", "high", "low", "close", "volume"),
    ],
)
@pytest.mark.parametrize("parallel", [False, True])
def test_segments_count_what_a_plain_loop_counts(present, parallel, monkeypatch):
    monkeypatch.setattr(_rolling, "_PARALLEL_ROWS", 1 if parallel else 1 << 40)
    rng = np.random.default_rng(11)
    lengths = ragged_lengths(rng, 50, 40)
    size = int(lengths.sum())
    steps = rng.choice([0, 1, 1, 1, 3], size)  # 0: the previous bar's date again
    starts = np.cumsum(lengths) - lengths
    steps[starts] = 0
    days = (np.cumsum(steps) + 18_000 - np.repeat(np.cumsum(steps)[starts], lengths)).astype(
        np.int32
    )
    columns = {}
    for c in present:
        values = rng.uniform(1, 100, size)
        spoiled = rng.random(size)
        values[spoiled < 0.01] = np.nan
        values[(spoiled >= 0.01) & (spoiled < 0.015)] = np.inf
        values[(spoiled >= 0.015) & (spoiled < 0.02)] = -np.inf
        values[(spoiled >= 0.02) & (spoiled < 0.025)] = 0.0
        values[(spoiled >= 0.025) & (spoiled < 0.03)] = -1.0
        columns[c] = values
    symbol = pl.Series(np.repeat([f"S{k:04d}" for k in range(lengths.shape[0])], lengths))
    date = pl.Series(days).cast(pl.Date)
    lo, hi = 18_010, 18_030
    found = segments(symbol, date, (lo, hi), columns)
    assert found is not None
    assert found.names.to_list() == [f"S{k:04d}" for k in range(lengths.shape[0])]
    assert found.lengths.tolist() == lengths.tolist()
    assert found.pos.tolist() == positions(lengths).tolist()
    repeats, inside, n_bad, first_bad = reference_checks(lengths, days, lo, hi, columns)
    assert found.first_repeat.tolist() == repeats
    assert found.repeated == next((r for r in repeats if r >= 0), None)
    assert found.in_range is not None and found.in_range.tolist() == inside
    assert found.n_bad is not None and found.n_bad.tolist() == n_bad
    assert found.first_bad is not None and found.first_bad.tolist() == first_bad
    assert any(n_bad) == bool(present) and any(r >= 0 for r in repeats)


@pytest.mark.parametrize("parallel", [False, True])
def test_segments_refuse_what_is_not_sorted(parallel, monkeypatch):
    monkeypatch.setattr(_rolling, "_PARALLEL_ROWS", 1 if parallel else 1 << 40)
    day = pl.Series([1, 2, 3, 4, 5]).cast(pl.Date)
    assert segments(pl.Series(["A", "A", "B", "A", "A"]), day) is None  # A comes back
    assert segments(pl.Series(["B", "B", "A", "A", "A"]), day) is None
    back = pl.Series([1, 2, 3, 2, 5]).cast(pl.Date)
    assert segments(pl.Series(["A", "A", "A", "A", "A"]), back) is None
    assert segments(pl.Series(["A", "A", "A", "B", "B"]), back) is not None
    assert segments(pl.Series(["A", "A", "A", "B", "B"]), back, (0, 10), {}) is not None


def test_segments_take_null_symbols_as_a_run_of_their_own():
    day = pl.Series([1, 2, 1, 2, 3]).cast(pl.Date)
    found = segments(pl.Series([None, None, "A", "A", "A"]), day)
    assert found is not None
    assert found.names.to_list() == [None, "A"] and found.lengths.tolist() == [2, 3]
    assert found.pos.tolist() == [0, 1, 0, 1, 2]
    assert segments(pl.Series(["A", "A", None, None, None]), day) is None  # nulls go first


def test_segments_of_no_bars():
    found = segments(pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.Date), (0, 1), {})
    assert found is not None and found.lengths.size == 0 and found.pos.size == 0
    assert found.in_range is not None and found.in_range.size == 0


def test_check_bars_counts_a_bar_bad_in_several_ways_once():
    rng = np.random.default_rng(2)
    bars = bars_of(np.full(6, 30), rng, gaps=False)
    row = pl.int_range(pl.len())
    bars = bars.with_columns(
        # S0001: one bar with a NaN close, a negative volume and high < low
        pl.when(row == 35).then(float("nan")).otherwise(pl.col("close")).alias("close"),
        pl.when(row == 35).then(-1.0).otherwise(pl.col("volume")).alias("volume"),
        pl.when(row.is_in([35, 40])).then(0.5).otherwise(pl.col("high")).alias("high"),
        # S0003: an infinite open, a missing low
        pl.when(row == 95).then(float("inf")).otherwise(pl.col("open")).alias("open"),
        pl.when(row == 99).then(None).otherwise(pl.col("low")).alias("low"),
    )
    days = bars.get_column("date")
    good, problems = check_bars(bars, [f"S{k:04d}" for k in range(6)], days.min(), days.max())
    assert problems == {
        "S0001": "bad 1d bars: 2 bar(s) with a missing, non-finite or non-positive price, a "
        f"missing or negative volume, or high < low (first on {days[35]})",
        "S0003": "bad 1d bars: 2 bar(s) with a missing, non-finite or non-positive price, a "
        f"missing or negative volume, or high < low (first on {days[95]})",
    }
    assert good.get_column("symbol").unique().sort().to_list() == ["S0000", "S0002", "S0004",
                                                                   "S0005"]  # fmt: skip


# --- the formula's row-wise step on the streaming engine ------------------------------------

ROW_WISE = [
    "close > sma(close, 20) and volume > 2 * sma(volume, 5)",
    "crosses_above(ema(close, 4), sma(close, 9)) or close / open[1] > 1.01",
    "rsi(close, 3) < 30 and close > 0 or macd(close, 3, 6) > macd_signal(close, 3, 6, 2)",
    "highest(close, 5)[1] < close and atr(3) / close < 0.05",
    "barssince(close > close[1]) >= 2 or change(close, 2) / 0 > 0",
    "stdev(close, 5) > 0.5 and rank(roc(close, 3)) <= 10",
]


@pytest.mark.parametrize("text", ROW_WISE)
def test_the_streaming_engine_gives_the_in_memory_result(text, monkeypatch):
    bars = bars_of(ragged_lengths(np.random.default_rng(9), 200, 2_000), np.random.default_rng(4))
    assert bars.height > 2 * (1 << 16)  # several batches for the streaming engine
    formula = compile_formula(text)
    start, end = dt.date(2022, 1, 1), dt.date(2024, 12, 31)
    streamed = formula.evaluate(bars), formula.matches(bars, None, start, end)
    monkeypatch.setattr(formula_module, "_STREAMING_ROWS", 1 << 40)
    in_memory = formula.evaluate(bars), formula.matches(bars, None, start, end)
    assert streamed[0].equals(in_memory[0])
    assert streamed[1].equals(in_memory[1])
    assert in_memory[1].height > 0


def test_finite_turns_nan_and_infinities_into_null():
    x = pl.DataFrame({"x": [1.5, float("nan"), float("inf"), float("-inf"), None, -0.0]})
    out = x.select(formula_module._finite(pl.col("x"))).to_series().to_list()
    assert out[:5] == [1.5, None, None, None, None]
    assert out[5] == 0.0 and math.copysign(1.0, out[5]) == -1.0


def test_check_bars_positions_feed_the_kernels():
    bars = bars_of(ragged_lengths(np.random.default_rng(8), 10, 50), np.random.default_rng(1),
                   gaps=False)  # fmt: skip
    days = bars.get_column("date")
    good, _ = check_bars(bars, bars["symbol"].unique().to_list(), days.min(), days.max(),
                         positions=True)  # fmt: skip
    lengths = good.group_by("symbol", maintain_order=True).len().get_column("len").to_numpy()
    assert good.get_column(POS).to_list() == positions(lengths).tolist()


# --- loading the kernels ----------------------------------------------------------------------

LOADING_PROBE = """
import gc
import breadthflow  # noqa: F401
from breadthflow.scan import _rolling

before = len(gc.get_objects())
_rolling.load_kernels(wait=True)
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_loading_the_kernels_leaves_the_collector_only_new_objects():
    """The objects of the imports and those the loading makes (numba's registries) are
    frozen: the full collections a scan sets off later no longer walk them."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LOADING_PROBE], capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    before, frozen, tracked = map(int, done.stdout.split())
    assert frozen >= before > 10_000  # the imports' objects, and more made by the loading
    assert tracked < frozen // 20
