"""Scan formulas: syntax, types, error messages and positions, and what each construct means
on small hand-made universes."""

from __future__ import annotations

import datetime as dt
import math
import pickle
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from breadthflow.core.errors import InvalidInputError
from breadthflow.indicators.breadth import BREADTH_COLUMNS, breadth_table
from breadthflow.scan.formula import (
    BREADTH_SERIES,
    FIELDS,
    FUNCTIONS,
    Formula,
    FormulaError,
    check_formula,
    compile_formula,
)

DAY0 = dt.date(2024, 1, 1)  # a Monday


def weekdays(count: int, start: dt.date = DAY0) -> list[dt.date]:
    days, day = [], start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def make_bars(
    closes: dict[str, Sequence[float | None]],
    opens: dict[str, Sequence[float]] | None = None,
    volumes: dict[str, Sequence[float]] | None = None,
) -> pl.DataFrame:
    """Long bars on consecutive weekdays; open = close unless given, high/low = close ± 1."""
    rows = []
    for symbol, values in closes.items():
        for i, (day, close) in enumerate(zip(weekdays(len(values)), values, strict=True)):
            open_ = opens[symbol][i] if opens else close
            volume = volumes[symbol][i] if volumes else 1000.0
            high = None if close is None else close + 1
            low = None if close is None else close - 1
            rows.append((symbol, day, open_, high, low, close, volume))
    schema = {"symbol": pl.String, "date": pl.Date}
    schema |= dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64)
    return pl.DataFrame(rows, schema=schema, orient="row")


def run(text: str, bars: pl.DataFrame, breadth: pl.DataFrame | None = None) -> pl.DataFrame:
    return compile_formula(text).evaluate(bars, breadth)


def column(out: pl.DataFrame, name: str, symbol: str = "A") -> list:
    return out.filter(pl.col("symbol") == symbol)[name].to_list()


def error_of(text: str) -> FormulaError:
    with pytest.raises(FormulaError) as caught:
        compile_formula(text)
    return caught.value


RAMP = make_bars({"A": [1.0, 2, 3, 4, 5, 6], "B": [10.0, 9, 8, 7, 6, 5]})


# --- every construct compiles and evaluates ------------------------------------------------

VALID = [
    "close > 2",
    "close > 0.5",
    "volume > 1e6",
    "volume >= 1.5e3",
    "close > .5",
    "open < close and high > low and volume > 0",
    "close + 1 > open - 1",
    "close * 2 >= open / 2",
    "-close < 0",
    "- -close > 0",
    "close > 1 or close < 1",
    "not close > 1",
    "NOT (close > 1) AND close > 0 Or volume > 0",
    "(close - open) / open > 0.02",
    "close > close[1]",
    "close[0] == close",
    "sma(close, 3)[2] < close",
    "(close > open)[1]",
    "(close > open) == (close[1] > open[1])",
    "close != open",
    "close <= open",
    "sma(close, 3) > 0",
    "ema(close, 3) > 0",
    "wma(close, 3) > 0",
    "rsi(close) > 0",
    "rsi(close, 3) > 0",
    "rsi(close, n=3) > 0",
    "macd(close) > 0",
    "macd(close, 2, 4) > 0",
    "macd_signal(close, 2, 4, 2) < macd(close, fast=2, slow=4)",
    "atr(3) > 0",
    "atr() > 0",
    "bb_upper(close, 3, 2) > bb_lower(close, 3, 2)",
    "bb_upper(close, 3, 1.5) > 0",
    "bb_upper(close) > 0",
    "highest(high, 3) >= lowest(low, 3)",
    "roc(close, 2) > 0",
    "stdev(close, 3) >= 0",
    "change(close) > 0",
    "change(close, 2) > 0",
    "barssince(close > open) >= 0",
    "crosses_above(close, sma(close, 2))",
    "crosses_below(close, 3)",
    "rank(close) == 1",
    "percentile(volume) >= 50",
    "rank(sma(close, 2)) < 2",
    "sma(rank(close), 2) > 0",
    "advances > declines",
    "pct_above_sma20 > 50",
    "zbt_thrust",
    "zbt_thrust or trin < 1",
    "1 > 0",
]


@pytest.mark.parametrize("text", VALID)
def test_every_construct_compiles_and_evaluates(text):
    formula = compile_formula(text)
    out = formula.evaluate(RAMP, breadth_table(RAMP, hl_window=3))

    assert out.columns == ["symbol", "date", "match", *formula.value_names]
    assert out["match"].dtype == pl.Boolean and out["match"].null_count() == 0
    assert all(out[name].dtype == pl.Float64 for name in formula.value_names)
    assert out.height == RAMP.height


def test_keywords_are_case_insensitive_but_names_that_contain_them_are_names():
    bars = make_bars({"A": [1.0, 2, 3]})
    assert column(run("close > 1 AND close < 3", bars), "match") == [False, True, False]
    with pytest.raises(FormulaError, match="unknown name 'order' at 1:1"):
        compile_formula("order > 1")
    with pytest.raises(FormulaError, match="unknown name 'android' at 1:1"):
        compile_formula("android > 1 and close > 1")


@pytest.mark.parametrize(
    "text",
    [
        "1 + 2 * 3 == 7",
        "(1 + 2) * 3 == 9",
        "10 - 4 - 3 == 3",
        "24 / 4 / 2 == 3",
        "-2 * 3 == -6",
        "2 - -2 == 4",
        "1 > 2 or 1 < 2 and 2 > 1",
        "not 1 > 2",
        "not (1 > 2 and 1 < 2)",
        "-close[1] == -(close[1])",
        "close[1] * 2 == 2 * close[1]",
    ],
)
def test_precedence_and_associativity(text):
    bars = make_bars({"A": [5.0, 6, 7]})
    assert column(run(text, bars), "match")[1:] == [True, True]


def test_or_binds_looser_than_and_and_not_looser_than_comparison():
    bars = make_bars({"A": [5.0]})
    assert column(run("1 > 2 and 1 < 2 or 1 < 2", bars), "match") == [True]  # (F and T) or T
    assert column(run("1 < 2 or 1 < 2 and 1 > 2", bars), "match") == [True]  # T or (T and F)
    assert column(run("not 1 > 2 and 1 > 2", bars), "match") == [False]  # (not F) and F


def test_division_by_zero_is_null_never_inf():
    bars = make_bars({"A": [2.0, 2, 3]}, opens={"A": [2.0, 1, 3]})
    out = run("close / (close - open) > 0 or close > 100", bars)
    assert column(out, "close / (close - open)") == [None, 2.0, None]
    assert column(out, "match") == [False, True, False]
    assert column(run("-1 / 0 < 0", bars), "match") == [False] * 3
    assert column(run("0 / 0 == 0 / 0", bars), "match") == [False] * 3


def test_compile_formula_returns_the_metadata():
    formula = compile_formula("  close > sma(close, 200)[1] and volume > 2 * sma(volume, 20) ")
    assert isinstance(formula, Formula)
    assert formula.text == "close > sma(close, 200)[1] and volume > 2 * sma(volume, 20)"
    assert formula.warmup_bars == 201
    assert formula.needs_breadth is False and formula.cross_sectional is False
    assert formula.value_names == ("close", "sma(close, 200)[1]", "volume", "2 * sma(volume, 20)")
    assert check_formula(formula.text) == formula


@pytest.mark.parametrize(
    ("text", "warmup"),
    [
        ("close > 1", 0),
        ("close > close[1]", 1),
        ("close > close[3][2]", 5),
        ("close > sma(close, 20)", 20),
        ("sma(close, 20) > sma(close, 50)", 50),
        ("close > sma(close, 200)[1]", 201),
        ("close > sma(sma(close, 10), 5)", 15),
        ("rsi(close, 14) < 30", 140),
        ("rsi(close) < 30", 140),
        ("ema(close, 20) > close", 100),
        ("atr(14) > 1", 140),
        ("macd(close) > 0", 130),
        ("macd_signal(close) > 0", 175),
        ("roc(close, 10) > 0", 10),
        ("change(close) > 0", 1),
        ("barssince(close > open) < 5", 250),
        ("crosses_above(close, sma(close, 50))", 51),
        ("rank(sma(close, 20)) < 5", 20),
        ("pct_above_sma200 > 50", 200),
        ("close > 1 or pct_above_sma50 > 50", 50),
    ],
)
def test_warmup_bars(text, warmup):
    assert compile_formula(text).warmup_bars == warmup


def test_flags_for_breadth_and_cross_sections():
    assert compile_formula("advances > declines").needs_breadth
    assert compile_formula("zbt_thrust").needs_breadth
    assert not compile_formula("close > 1").needs_breadth
    assert compile_formula("rank(close) < 3").cross_sectional
    assert compile_formula("sma(percentile(volume), 5) > 50").cross_sectional
    assert not compile_formula("close > sma(close, 5)").cross_sectional


def test_value_names_are_the_top_level_operands_deduplicated_without_constants():
    names = compile_formula(
        "close > sma(close,  20) and (close > open or not rsi(close) < 30) and close > 5"
    ).value_names
    assert names == ("close", "sma(close, 20)", "open", "rsi(close)")
    crosses = compile_formula("crosses_above(ema(close, 5), ema(close, 10))").value_names
    assert crosses == ("ema(close, 5)", "ema(close, 10)")
    assert compile_formula("zbt_thrust").value_names == ()
    many = " and ".join(f"close > sma(close, {n})" for n in range(2, 12))
    assert len(compile_formula(many).value_names) == 8


def test_value_columns_hold_the_operands_values():
    bars = make_bars({"A": [1.0, 2, 3, 4]})
    out = run("close > sma(close, 2) and (close - 1) * 2 > 0", bars)
    assert column(out, "close") == [1.0, 2, 3, 4]
    assert column(out, "sma(close, 2)") == [None, 1.5, 2.5, 3.5]
    assert column(out, "(close - 1) * 2") == [0.0, 2, 4, 6]
    assert column(out, "match") == [False, True, True, True]


def test_the_tables_describe_the_language():
    assert FIELDS == ("open", "high", "low", "close", "volume")
    assert set(BREADTH_SERIES) == set(BREADTH_COLUMNS) - {"date"}
    assert {"sma", "ema", "rsi", "macd", "atr", "rank", "percentile", "barssince"} <= set(FUNCTIONS)
    assert FUNCTIONS["sma"].signature == "sma(x, n)"
    assert FUNCTIONS["rsi"].signature == "rsi(x, n=14)"


def test_the_docs_describe_every_function_and_series():
    docs = (Path(__file__).parents[2] / "docs" / "scan-formulas.md").read_text()
    for function in FUNCTIONS.values():
        assert f"`{function.signature}`" in docs, function.signature
    for name in (*FIELDS, *BREADTH_SERIES):
        assert f"`{name}`" in docs, name


def test_and_or_use_three_valued_logic():
    bars = make_bars({"A": [1.0, 2]})
    # close[1] > 0 is null on the first bar
    assert column(run("close[1] > 0 or close > 0", bars), "match") == [True, True]
    assert column(run("close[1] > 0 and close > 0", bars), "match") == [False, True]
    assert column(run("not close[1] > 0", bars), "match") == [False, False]


def test_a_formula_pickles_by_its_text():
    formula = compile_formula("close > sma(close, 3)")
    again = pickle.loads(pickle.dumps(formula))
    assert again == formula
    assert again.evaluate(RAMP).equals(formula.evaluate(RAMP))


# --- errors: one line, exact positions -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        (
            "close > smaa(close, 20)",
            "unknown function 'smaa' at 1:9 — did you mean 'sma'?",
            1,
            9,
        ),
        (
            "close > (1 + )",
            "unexpected ')' at 1:14 — expected a number, field or function",
            1,
            14,
        ),
        (
            "close[-1] > close",
            "negative lookback close[-1] at 1:6 reads the future — use close[1] for the "
            "previous bar",
            1,
            6,
        ),
        ("sma(close) > 1", "sma expects 2 arguments (x, n), got 1 at 1:1", 1, 1),
        (
            "close > sma(close, 20, 3)",
            "sma expects 2 arguments (x, n), got 3 at 1:9",
            1,
            9,
        ),
        (
            "rsi(close, 14, 2) < 30",
            "rsi expects 1 or 2 arguments (x, n=14), got 3 at 1:1",
            1,
            1,
        ),
        (
            "macd() > 0",
            "macd expects 1 to 3 arguments (x, fast=12, slow=26), got 0 at 1:1",
            1,
            1,
        ),
        (
            "close >",
            "unexpected end of formula at 1:8 — expected a number, field or function",
            1,
            8,
        ),
        ("(close > 1", "unexpected end of formula at 1:11 — expected ')'", 1, 11),
        (
            "close > 1 close",
            "unexpected 'close' at 1:11 — expected an operator or the end of the formula",
            1,
            11,
        ),
        (
            "a < b < c",
            "unexpected '<' at 1:7 — comparisons cannot be chained; write a < b and b < c",
            1,
            7,
        ),
        ("close = 5", "unexpected '=' at 1:7 — write '==' to compare", 1, 7),
        (
            "close.__class__",
            "unexpected character '.' at 1:6 — formulas have no attributes; write numbers like 0.5",
            1,
            6,
        ),
        ("close > 1 && 1", "unexpected character '&' at 1:11 — write 'and'", 1, 11),
        (
            "close >\n  smaa(close, 2)",
            "unknown function 'smaa' at 2:3 — did you mean 'sma'?",
            2,
            3,
        ),
        ("clsoe > 1", "unknown name 'clsoe' at 1:1 — did you mean 'close'?", 1, 1),
        ("Close > 1", "unknown name 'Close' at 1:1 — did you mean 'close'?", 1, 1),
        ("sma > 1", "'sma' is a function at 1:1 — call it, e.g. sma(x, n)", 1, 1),
        (
            "close(1) > 1",
            "'close' is a field, not a function, at 1:1 — write it without parentheses, "
            "e.g. close or close[1] for the previous bar",
            1,
            1,
        ),
        (
            "close[-3] > 1",
            "negative lookback close[-3] at 1:6 reads the future — use close[3] for 3 bars ago",
            1,
            6,
        ),
        (
            "sma(close, 5)[-1] > 1",
            "negative lookback sma(close, 5)[-1] at 1:14 reads the future — use "
            "sma(close, 5)[1] for the previous bar",
            1,
            14,
        ),
        (
            "close[1.5] > 1",
            "lookback close[1.5] at 1:6 needs a whole number of bars written out — "
            "e.g. close[1] for the previous bar",
            1,
            6,
        ),
        (
            "close[open] > 1",
            "lookback close[open] at 1:6 needs a whole number of bars written out — "
            "e.g. close[1] for the previous bar",
            1,
            6,
        ),
        ("close[9999] > 1", "lookback close[9999] at 1:6 is too long — at most 5,000 bars", 1, 6),
        (
            "close > sma(close, 0)",
            "sma window n must be between 1 and 5,000 bars, got 0 at 1:20",
            1,
            20,
        ),
        (
            "close > sma(close, -5)",
            "sma window n must be between 1 and 5,000 bars, got -5 at 1:20",
            1,
            20,
        ),
        (
            "close > sma(close, 2.5)",
            "sma window n must be a whole number of bars written out, like 20 — got '2.5' at 1:20",
            1,
            20,
        ),
        (
            "close > sma(close, volume)",
            "sma window n must be a whole number of bars written out, like 20 — got 'volume' "
            "at 1:20",
            1,
            20,
        ),
        (
            "bb_upper(close, 20, k) > 1",
            "bb_upper argument k must be a number written out, like 2 — got 'k' at 1:21",
            1,
            21,
        ),
        (
            "rsi(close, m=3) > 1",
            "rsi has no argument 'm' at 1:12 — its arguments are (x, n=14)",
            1,
            12,
        ),
        ("rsi(close, x=3) > 1", "rsi argument 'x' is given twice at 1:12", 1, 12),
        (
            "rsi(n=3, close) > 1",
            "positional argument 'close' after a keyword argument in rsi at 1:10 — rsi takes "
            "(x, n=14)",
            1,
            10,
        ),
        (
            "macd(close, 26, 12) > 0",
            "macd fast period 26 must be shorter than the slow period 12 at 1:1",
            1,
            1,
        ),
        ("", "empty formula at 1:1 — write a condition, e.g. close > sma(close, 50)", 1, 1),
        ("1e999 > 1", "number 1e999 at 1:1 is too large", 1, 1),
    ],
)
def test_error_messages_and_positions(text, message, line, column):
    error = error_of(text)
    assert str(error) == message
    assert (error.line, error.column) == (line, column)
    assert isinstance(error, InvalidInputError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("close + (close > 1) > 2", "'+' needs numbers, but '(close > 1)' at 1:9 is a condition"),
        ("close * (open > 1) > 0", "'*' needs numbers, but '(open > 1)' at 1:9 is a condition"),
        ("-(close > 1)", "'-' needs numbers, but '(close > 1)' at 1:2 is a condition"),
        (
            "close and volume > 1",
            "'and' needs conditions, but 'close' at 1:1 is a number — compare it, e.g. close > 0",
        ),
        (
            "close > 1 or volume",
            "'or' needs conditions, but 'volume' at 1:14 is a number — compare it, e.g. volume > 0",
        ),
        (
            "not close",
            "'not' needs conditions, but 'close' at 1:5 is a number — compare it, e.g. close > 0",
        ),
        ("(close > 1) < 2", "'<' needs numbers, but '(close > 1)' at 1:1 is a condition"),
        ("zbt_thrust > 0", "'>' needs numbers, but 'zbt_thrust' at 1:1 is a condition"),
        (
            "sma(close, 20)",
            "the formula must be a condition (true or false), but 'sma(close, 20)' at 1:1 is a "
            "number — compare it, e.g. sma(close, 20) > 0",
        ),
        (
            "barssince(close) > 1",
            "barssince argument cond needs conditions, but 'close' at 1:11 is a number — "
            "compare it, e.g. close > 0",
        ),
        (
            "crosses_above(close > 1, open)",
            "crosses_above argument a needs numbers, but 'close > 1' at 1:15 is a condition",
        ),
        (
            "rank(close > 1) < 2",
            "rank argument x needs numbers, but 'close > 1' at 1:6 is a condition",
        ),
    ],
)
def test_type_errors_name_the_operand_and_its_position(text, message):
    assert str(error_of(text)) == message


def test_formula_errors_survive_pickling():
    error = pickle.loads(pickle.dumps(error_of("close > smaa(close, 20)")))
    assert isinstance(error, FormulaError)
    assert (str(error), error.line, error.column) == (
        "unknown function 'smaa' at 1:9 — did you mean 'sma'?",
        1,
        9,
    )


def test_unknown_names_list_what_is_known_when_nothing_is_close():
    message = str(error_of("foo(close) > 1"))
    assert message.startswith("unknown function 'foo' at 1:1 — known: sma, ema,")
    message = str(error_of("zzz > 1"))
    assert message.startswith("unknown name 'zzz' at 1:1 — fields: open, high, low, close")


def test_long_and_deep_formulas_are_refused_cleanly():
    assert "too long" in str(error_of("close > 1 and " * 200 + "close > 1"))
    assert "nests too deeply" in str(error_of("(" * 150 + "close" + ")" * 150 + " > 1"))
    assert "nests too deeply" in str(error_of("-" * 500 + "close > 1"))
    assert "nests too deeply" in str(error_of("not " * 300 + "close > 1"))
    assert "nests too deeply" in str(error_of("sma(" * 120 + "close" + ", 2)" * 120 + " > 1"))


def test_long_flat_formulas_still_evaluate():
    bars = make_bars({"A": [1.0, 2, 3]})
    text = "close" + " + close" * 200 + " > 300"  # 201 * close
    assert column(run(text, bars), "match") == [False, True, True]
    text = " and ".join(["close > 1"] * 120)
    assert column(run(text, bars), "match") == [False, True, True]


# --- lookback ------------------------------------------------------------------------------


def test_lookback_reads_the_previous_bar_of_the_same_symbol():
    bars = make_bars({"A": [1.0, 2, 3], "B": [10.0, 20, 30]})
    out = run("close > close[1]", bars.reverse())  # any row order
    assert column(out, "close[1]", "A") == [None, 1.0, 2.0]
    assert column(out, "close[1]", "B") == [None, 10.0, 20.0]  # not A's last close
    assert column(out, "match", "A") == [False, True, True]
    assert out["symbol"].to_list() == ["A"] * 3 + ["B"] * 3


def test_lookback_of_an_expression_and_of_a_condition():
    bars = make_bars({"A": [1.0, 2, 4, 3]})
    out = run("sma(close, 2)[1] < close and (close > close[1])[1]", bars)
    assert column(out, "sma(close, 2)[1]") == [None, None, 1.5, 3.0]
    assert column(out, "match") == [False, False, True, False]


def test_lookback_follows_the_symbols_own_bars_across_a_gap():
    bars = make_bars({"A": [1.0, 2, 3, 4]}).filter(pl.col("close") != 3.0)
    assert column(run("close > close[1]", bars), "close[1]") == [None, 1.0, 2.0]


# --- functions on hand-made data -----------------------------------------------------------


def test_crosses_above_and_below():
    bars = make_bars({"A": [9.0, 10, 11, 10, 12, 8]})
    assert column(run("crosses_above(close, 10)", bars), "match") == [
        False, False, True, False, True, False,
    ]  # fmt: skip
    assert column(run("crosses_below(close, 10)", bars), "match") == [
        False, False, False, False, False, True,
    ]  # fmt: skip


def test_crosses_need_the_previous_bar_of_the_same_symbol():
    bars = make_bars({"A": [9.0, 11], "B": [12.0, 13]})
    out = run("crosses_above(close, 10)", bars)
    assert column(out, "match", "A") == [False, True]
    assert column(out, "match", "B") == [False, False]  # B's first bar has no previous bar


def test_crosses_treat_rounding_as_a_tie():
    level = 100.0
    bars = make_bars({"A": [99.0, level * (1 + 1e-12), level * (1 + 1e-6)]})
    out = run("crosses_above(close, 100)", bars)
    assert column(out, "match") == [False, False, True]


def test_crosses_of_two_series():
    bars = make_bars({"A": [1.0, 2, 3, 2, 1]}, opens={"A": [2.0, 2, 2, 2, 2]})
    out = run("crosses_above(close, open) or crosses_below(close, open)", bars)
    assert column(out, "match") == [False, False, True, False, True]


def test_barssince_counts_bars_since_the_condition_was_last_true():
    bars = make_bars(
        {"A": [1.0, 2, 3, 2, 1, 5, 5], "B": [5.0, 6, 5, 4, 3, 2, 1]},
        opens={"A": [2.0, 2, 2, 2, 2, 2, 2], "B": [1.0] * 7},
    )
    out = run("barssince(close > open) >= 0", bars)
    assert column(out, "barssince(close > open)", "A") == [None, None, 0, 1, 2, 0, 0]
    assert column(out, "barssince(close > open)", "B") == [0, 0, 0, 0, 0, 0, 1]
    assert column(out, "match", "A") == [False, False, True, True, True, True, True]


def test_rank_is_one_for_the_largest_with_ties_averaged():
    bars = make_bars({"A": [3.0, 1], "B": [1.0, 2], "C": [3.0, None], "D": [2.0, 3]})
    out = run("rank(close) <= 2", bars).sort("date", "symbol")
    assert out["rank(close)"].to_list() == [1.5, 4.0, 1.5, 3.0, 3.0, 2.0, None, 1.0]
    assert out["match"].to_list() == [True, False, True, False, False, True, False, True]


def test_percentile_runs_from_zero_for_the_smallest_to_100_for_the_largest():
    bars = make_bars({"A": [3.0, 1], "B": [1.0, 2], "C": [3.0, None], "D": [2.0, 3]})
    out = run("percentile(close) >= 50", bars).sort("date", "symbol")
    got = out["percentile(close)"].to_list()
    expected = [250 / 3, 0.0, 250 / 3, 100 / 3, 0.0, 50.0, None, 100.0]
    assert got == pytest.approx(expected)
    single = run("percentile(close) >= 0", make_bars({"A": [1.0]}))
    assert single["percentile(close)"].to_list() == [None]  # no cross-section to rank in


def test_rank_inside_a_per_symbol_window():
    bars = make_bars({"A": [3.0, 1, 2], "B": [1.0, 2, 3]})
    out = run("sma(rank(close), 2) < 1.6", bars)
    assert column(out, "sma(rank(close), 2)", "A") == [None, 1.5, 2.0]
    assert column(out, "sma(rank(close), 2)", "B") == [None, 1.5, 1.0]


def test_indicator_functions_reuse_the_technical_builders():
    bars = make_bars({"A": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    out = run(
        "sma(close, 3) > 0 and highest(close, 3) > 0 and lowest(close, 3) > 0 and "
        "roc(close, 2) > 0 and change(close, 2) > 0 and stdev(close, 2) > 0",
        bars,
    )
    assert column(out, "sma(close, 3)")[2:4] == [2.0, 3.0]
    assert column(out, "highest(close, 3)")[2] == 3.0
    assert column(out, "lowest(close, 3)")[2] == 1.0
    assert column(out, "roc(close, 2)")[2] == pytest.approx(200.0)
    assert column(out, "change(close, 2)")[2] == 2.0
    assert column(out, "stdev(close, 2)")[1] == pytest.approx(0.5)
    assert column(out, "match") == [False, False, True, True, True, True, True, True]


def test_windows_over_constants_are_full_length():
    bars = make_bars({"A": [1.0, 2, 3], "B": [4.0, 5, 6]})
    out = run("sma(2, 2) == 2 and 5[1] == 5", bars)
    assert column(out, "match", "B") == [False, True, True]


# --- breadth -------------------------------------------------------------------------------


def breadth_rows(days: list[dt.date], advances: list[int], thrust: list[bool]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "date": days,
            "advances": pl.Series(advances, dtype=pl.Int64),
            "zbt_thrust": thrust,
        }
    )
    others = [c for c in BREADTH_COLUMNS if c not in frame.columns]
    return frame.with_columns(pl.lit(1.0).alias(c) for c in others).select(BREADTH_COLUMNS)


def test_breadth_series_are_joined_by_date():
    bars = make_bars({"A": [1.0, 2, 3], "B": [5.0, 4, 3]})
    days = weekdays(3)
    breadth = breadth_rows(days[::-1], [30, 20, 10], [False, True, False])  # any row order
    out = run("advances > 15 and close > 1", bars, breadth)
    assert column(out, "advances", "A") == [10.0, 20.0, 30.0]
    assert column(out, "advances", "B") == [10.0, 20.0, 30.0]
    assert column(out, "match", "A") == [False, True, True]
    assert column(run("zbt_thrust", bars, breadth), "match", "B") == [False, True, False]


def test_a_date_missing_from_the_breadth_table_gives_null():
    bars = make_bars({"A": [1.0, 2, 3]})
    breadth = breadth_rows(weekdays(2), [10, 20], [False, False])
    out = run("advances > 0", bars, breadth)
    assert column(out, "advances") == [10.0, 20.0, None]
    assert column(out, "match") == [True, True, False]


def test_breadth_formulas_need_the_breadth_table():
    with pytest.raises(InvalidInputError, match="pass the universe's breadth table"):
        run("advances > 0", RAMP)
    with pytest.raises(InvalidInputError, match="lacks column"):
        run("advances > 0", RAMP, pl.DataFrame({"date": weekdays(2)}))


def test_breadth_from_the_real_table():
    bars = make_bars({"A": [1.0, 2, 3, 4], "B": [4.0, 5, 6, 5], "C": [1.0, 1, 0.5, 2]})
    breadth = breadth_table(bars, hl_window=2)
    out = run("net_advances > 0 and close > close[1]", bars, breadth)
    assert column(out, "net_advances", "A") == [None, 2.0, 1.0, 1.0]
    assert column(out, "match", "C") == [False, False, False, True]


# --- inputs --------------------------------------------------------------------------------


def test_bars_missing_a_column_or_repeating_a_date_are_refused():
    with pytest.raises(InvalidInputError, match="missing column"):
        run("close > open", RAMP.drop("open"))
    assert run("close > 1", RAMP.drop("open")).height == RAMP.height  # open not needed
    with pytest.raises(InvalidInputError, match="repeat a date"):
        run("close > 1", pl.concat([RAMP, RAMP.head(1)]))


def test_nulls_and_non_finite_inputs_never_match():
    bars = make_bars({"A": [1.0, None, 3, float("inf"), float("nan"), 6]})
    out = run("close > 0", bars)
    assert column(out, "match") == [True, False, True, False, False, True]
    assert column(out, "close")[3:5] == [None, None]


def test_empty_bars_give_an_empty_frame():
    formula = compile_formula("close > sma(close, 2)")
    out = formula.evaluate(RAMP.head(0))
    assert out.height == 0
    assert out.columns == ["symbol", "date", "match", "close", "sma(close, 2)"]


# --- no look-ahead -------------------------------------------------------------------------

CAUSAL = [
    "close > sma(close, 3) and volume > 0",
    "crosses_above(ema(close, 3), sma(close, 5))",
    "barssince(close > close[1]) < 2",
    "rsi(close, 3) > 50 or macd(close, 2, 4) > macd_signal(close, 2, 4, 2)",
    "rank(roc(close, 2)) <= 2 and percentile(atr(3)) > 20",
    "pct_above_sma20 > 40 and close > highest(close, 4)[1]",
    "change(close, 2) > 0 and stdev(close, 4) > 0.5 and close > bb_lower(close, 4, 1)",
]


@pytest.fixture(scope="module")
def wobbly() -> pl.DataFrame:
    closes = {
        s: [50 + 10 * math.sin(0.5 * i + k) + (i % 3) * k for i in range(40)]
        for k, s in enumerate("ABCDE", start=1)
    }
    volumes = {s: [1000.0 + 37 * ((i * k) % 11) for i in range(40)] for k, s in enumerate("ABCDE")}
    return make_bars(closes, volumes=volumes)


@pytest.mark.parametrize("text", CAUSAL)
def test_no_look_ahead(text, wobbly):
    formula = compile_formula(text)
    full = formula.evaluate(wobbly, breadth_table(wobbly, hl_window=5))
    for last in weekdays(40)[5::7]:
        cut = wobbly.filter(pl.col("date") <= last)
        truncated = formula.evaluate(cut, breadth_table(cut, hl_window=5))
        assert truncated.equals(full.filter(pl.col("date") <= last)), (text, last)
    assert full["match"].any()


# --- one pass over the sorted universe == one group per symbol ------------------------------

SEGMENTED = [
    "sma(close, 5)",
    "ema(close, 4)",
    "rsi(close, 3)",
    "macd(close, 3, 6)",
    "macd_signal(close, 3, 6, 2)",
    "atr(3)",
    "wma(close, 4)",
    "wma(close, 1)",
    "stdev(close, 4)",
    "stdev(close, 1)",
    "bb_upper(close, 5, 2)",
    "bb_lower(close, 5, 1.5)",
    "bb_upper(volume, 3, 0)",
    "highest(close, 4)",
    "lowest(low, 4)",
    "roc(close, 3)",
    "change(close, 2)",
    "close[2]",
    "sma(close[1], 3)",
    "ema(sma(close, 2), 3)",
    "barssince(close > close[1])",
    "barssince(crosses_above(close, sma(close, 3)))",
    "barssince(not crosses_below(close, open))",
    "stdev(wma(close, 3), 4)",
    "bb_lower(stdev(close, 2), 3, 1)",
]


def test_every_per_symbol_function_runs_in_one_pass_and_is_compared_here():
    per_symbol = {f.name for f in FUNCTIONS.values() if f.over == "symbol"}
    assert {f.name for f in FUNCTIONS.values() if f.segmented is not None} == per_symbol
    used = {name for name in per_symbol for expr in SEGMENTED if f"{name}(" in expr}
    assert used == per_symbol


def ragged_universe() -> pl.DataFrame:
    """Symbols of different lengths, missing closes inside and at the start, any row order."""
    import numpy as np

    rng = np.random.default_rng(7)
    closes: dict[str, list[float | None]] = {}
    for symbol, length in (("A", 40), ("B", 3), ("C", 55), ("D", 1), ("E", 30)):
        path = (100 * np.exp(np.cumsum(rng.normal(0, 0.03, length)))).round(2).tolist()
        closes[symbol] = path
    closes["C"][10] = None
    closes["C"][11] = None
    closes["E"][0] = None
    opens = {s: [(c or 50.0) * 1.01 for c in v] for s, v in closes.items()}
    bars = make_bars(closes, opens=opens)
    return bars.sample(fraction=1.0, shuffle=True, seed=3)


def per_group_formula(text: str, monkeypatch: pytest.MonkeyPatch) -> Formula:
    """``text`` compiled with every per-symbol window as ``.over("symbol")``."""
    from breadthflow.scan import formula as formula_module

    window = formula_module._Compiler._window

    def over_only(self, key, expr, over, inputs, segmented=None):
        return window(self, key, expr, over, inputs, None)

    with monkeypatch.context() as patch:
        patch.setattr(formula_module._Compiler, "_window", over_only)
        return formula_module._compile_uncached(text)


@pytest.mark.parametrize("expr", SEGMENTED)
def test_one_pass_windows_equal_the_per_symbol_windows(expr, monkeypatch):
    bars = ragged_universe()
    text = f"{expr} == {expr}" if "barssince" in expr or "[" in expr else f"{expr} > -1e300"
    fast = compile_formula(text)
    slow = per_group_formula(text, monkeypatch)
    assert fast._program.segmented and not slow._program.segmented
    ours, reference = fast.evaluate(bars), slow.evaluate(bars)
    assert ours.select("symbol", "date", "match").equals(
        reference.select("symbol", "date", "match")
    )
    (name,) = fast.value_names
    got, want = ours[name].to_list(), reference[name].to_list()
    assert [g is None for g in got] == [w is None for w in want], name
    assert any(w is not None for w in want)
    for g, w in zip(got, want, strict=True):
        if w is not None:
            assert g == pytest.approx(w, rel=1e-12, abs=1e-12), name


def test_one_pass_windows_do_not_depend_on_the_other_symbols():
    bars = ragged_universe()
    text = " and ".join(f"{e} > -1e300" for e in SEGMENTED if "barssince" not in e)
    formula = compile_formula(text)
    together = formula.evaluate(bars).filter(pl.col("symbol") == "C")
    alone = formula.evaluate(bars.filter(pl.col("symbol") == "C"))
    assert alone.equals(together)  # the very same floats, not merely close ones


def test_matches_are_the_true_rows_of_evaluate_inside_the_range():
    bars = ragged_universe()
    formula = compile_formula("close > sma(close, 3) and rsi(close, 3) > 40")
    days = weekdays(55)
    start, end = days[5], days[30]
    expected = (
        formula.evaluate(bars)
        .filter(pl.col("match") & pl.col("date").is_between(start, end))
        .drop("match")
    )
    found = formula.matches(bars, start=start, end=end)
    assert found.height > 0
    assert found.equals(expected)
    assert formula.matches(bars).height == formula.evaluate(bars)["match"].sum()
