"""Property tests: any text either compiles or is one FormulaError; nothing reaches Python;
every formula the grammar can build evaluates."""

from __future__ import annotations

import builtins
import datetime as dt
import functools
import math
import os

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from breadthflow.indicators.breadth import breadth_table
from breadthflow.scan.formula import (
    BREADTH_SERIES,
    FIELDS,
    FUNCTIONS,
    Formula,
    FormulaError,
    compile_formula,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def compiles_or_fails_cleanly(text: str) -> None:
    try:
        formula = compile_formula(text)
    except FormulaError as error:  # anything else (RecursionError, a Lark error…) fails
        message = str(error)
        assert message and "\n" not in message and "\r" not in message
        assert isinstance(error.line, int) and error.line >= 1
        assert isinstance(error.column, int) and error.column >= 1
        assert f"{error.line}:{error.column}" in message
    else:
        assert isinstance(formula, Formula)


# --- (a) arbitrary text ---------------------------------------------------------------------


@FAST
@given(st.text(max_size=300))
def test_any_text_compiles_or_raises_formula_error(text):
    compiles_or_fails_cleanly(text)


TOKENS = [
    *FIELDS, *BREADTH_SERIES[:6], *FUNCTIONS, "zbt_thrust", "and", "or", "not", "AND",
    "(", ")", "[", "]", ",", "=", "+", "-", "*", "/", ">", ">=", "<", "<=", "==", "!=",
    "0", "1", "2", "14", "-1", "0.5", "1e6", "1e999", ".", "n", "x", "k", "fast", "slow",
    "__import__", "eval", "'", '"', "\n", " ", "(((((", ")))))", "[-", "__class__",
]  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.sampled_from(["", " "]))
def test_token_soup_compiles_or_raises_formula_error(tokens, separator):
    compiles_or_fails_cleanly(separator.join(tokens))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=90, max_value=1_200), st.sampled_from(["(", "-", "not ", "sma("]))
def test_deep_nesting_is_a_formula_error_not_a_recursion_error(depth, opener):
    closer = {"(": ")", "sma(": ", 2)"}.get(opener, "")
    compiles_or_fails_cleanly(opener * depth + "close" + closer * depth + " > 1")


def test_very_long_input_is_a_formula_error():
    with pytest.raises(FormulaError, match="too long"):
        compile_formula("close > 1 " + "and close > 1 " * 10_000)


# --- (b) nothing reaches Python --------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('x')",
    "__import__(os)",
    "close.__class__",
    "close.__class__.__bases__[0].__subclasses__()",
    "eval(1)",
    "eval('1')",
    "exec(close)",
    "open('/etc/passwd')",
    "open(1) > 0",
    "globals()",
    "getattr(close, x) > 1",
    "__builtins__ > 1",
    "sma.__globals__",
    "lambda: 1",
    "import os",
    "os.system(1)",
    "[c for c in close]",
    "{}",
    "close if 1 else 0",
    "f'{close}'",
    "close; 1",
    "close > 1 # comment",
    "`close`",
    "close ** 2 > 1",
    "close @ close",
    "breakpoint()",
    "compile_formula(1)",
    "_compile(1) > 0",
    "FUNCTIONS > 1",
    "self > 1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_python_is_out_of_reach(text, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a formula reached Python")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(os, "system", forbidden)
    with pytest.raises(FormulaError):
        compile_formula(text)


# --- (c) formulas built from the grammar evaluate --------------------------------------------

NUMERIC_BREADTH = [s for s in BREADTH_SERIES if s != "zbt_thrust"]
windows = st.integers(min_value=1, max_value=6).map(str)
literals = st.one_of(
    st.integers(min_value=0, max_value=100).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(repr),
    st.sampled_from(["1e3", ".5", "2.5e-1"]),
)
leaves = st.one_of(st.sampled_from(FIELDS), st.sampled_from(NUMERIC_BREADTH), literals)


def _numbers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(" ".join)
    calls = st.one_of(
        st.tuples(st.sampled_from(["sma", "ema", "wma", "highest", "lowest", "roc", "stdev",
                                   "change", "rsi"]), inner, windows)
        .map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(inner, windows, st.sampled_from(["1", "2", "0.5"]),
                  st.sampled_from(["bb_upper", "bb_lower"]))
        .map(lambda t: f"{t[3]}({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(inner, st.integers(1, 3), st.integers(4, 6))
        .map(lambda t: f"macd({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(inner, st.integers(1, 3))
        .map(lambda t: f"macd_signal({t[0]}, 2, slow=4, signal={t[1]})"),
        windows.map(lambda n: f"atr({n})"),
        st.tuples(st.sampled_from(["rank", "percentile"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.integers(0, 3)).map(lambda t: f"({t[0]})[{t[1]}]"),
    )  # fmt: skip
    return st.one_of(binary, calls, inner.map(lambda x: f"-({x})"), inner.map(lambda x: f"({x})"))


numbers = st.recursive(leaves, _numbers, max_leaves=8)


def _conditions(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(" ".join),
        inner.map(lambda c: f"not ({c})"),
        st.tuples(inner, st.integers(0, 2)).map(lambda t: f"({t[0]})[{t[1]}]"),
        inner.map(lambda c: f"barssince({c}) < 3"),
    )


comparisons = st.one_of(
    st.tuples(numbers, st.sampled_from([">", ">=", "<", "<=", "==", "!="]), numbers).map(" ".join),
    st.tuples(st.sampled_from(["crosses_above", "crosses_below"]), numbers, numbers).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})"
    ),
    st.just("zbt_thrust"),
)
conditions = st.recursive(comparisons, _conditions, max_leaves=4)


@functools.cache
def tiny() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three symbols, twelve days: bars and their breadth."""
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(12)]
    rows = []
    for k, symbol in enumerate("ABC"):
        for i, day in enumerate(days):
            close = 10 + k + math.sin(i + k) * 2
            rows.append((symbol, day, close - 0.5, close + 1, close - 1, close, 100.0 * (i % 3)))
    schema = {"symbol": pl.String, "date": pl.Date}
    schema |= dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64)
    bars = pl.DataFrame(rows, schema=schema, orient="row")
    return bars, breadth_table(bars, hl_window=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions)
# Once failed in Polars' streaming engine ("zip node received non-equal length inputs").
@example("barssince((0 > -((atr(1))[2]))[1]) < 3")
def test_generated_formulas_compile_and_evaluate(text):
    bars, breadth = tiny()
    formula = compile_formula(text)
    out = formula.evaluate(bars, breadth)
    assert out.height == bars.height
    assert out["match"].dtype == pl.Boolean and out["match"].null_count() == 0
    for name in formula.value_names:
        values = out[name].drop_nulls()
        assert values.dtype == pl.Float64
        assert values.is_finite().all(), (text, name)
