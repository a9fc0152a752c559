"""Scan formulas: a condition such as ``close > sma(close, 200) and rsi(close) < 30``,
compiled to Polars expressions and evaluated over a whole universe at once.

:func:`compile_formula` parses the text (:mod:`breadthflow.scan.grammar`), resolves every
name in fixed tables (:data:`FIELDS`, :data:`BREADTH_SERIES`, :data:`FUNCTIONS` — there is
no ``eval``, no attribute access, nothing else is reachable), checks types (the formula
must be a condition; arithmetic needs numbers, ``and``/``or``/``not`` need conditions;
window lengths are whole numbers written out) and builds a :class:`Formula`. Any problem is
one :class:`FormulaError` naming ``line:column``.

:meth:`Formula.evaluate` runs it on long-format bars (``symbol, date`` and the fields it
reads); :meth:`Formula.matches` keeps only the rows where it holds. The bars are sorted by
``(symbol, date)`` (skipped when they already are, as the lake returns them), so each
symbol's bars are one contiguous segment. Per-symbol windows (``sma``, ``x[1]``,
``crosses_above``, ``ema``, ``rsi`` …) run in one pass over the whole column, restarting at
each symbol (:mod:`breadthflow.scan._rolling`) — the values a per-symbol computation gives;
``wma``, ``stdev`` and the Bollinger bands are computed ``.over("symbol")``.
Cross-sectional functions (``rank``, ``percentile``) run ``.over("date")``; breadth series
are joined by date. Each windowed sub-expression is computed once, into a column of its
own, in stages (a window never sits inside another window's ``over``). Nothing looks
ahead: the value on a bar uses that bar and earlier bars of the same symbol, and other
symbols' bars of the same date.

>>> import datetime as dt
>>> bars = pl.DataFrame({"symbol": ["A"] * 3, "date": [dt.date(2024, 1, d) for d in (2, 3, 4)],
...     "open": [1.0, 2, 3], "high": [1.0, 2, 3], "low": [1.0, 2, 3], "close": [1.0, 3, 2],
...     "volume": [10.0, 10, 10]})
>>> f = compile_formula("close > close[1]")
>>> f.evaluate(bars)["match"].to_list(), f.value_names
([False, True, False], ('close', 'close[1]'))

The language itself is documented in docs/scan-formulas.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.scan._functions import (
    BREADTH_CONDITIONS,
    BREADTH_SERIES,
    BREADTH_WARMUP,
    FIELDS,
    FUNCTIONS,
    MAX_WINDOW,
    Function,
    Kind,
    Param,
)
from breadthflow.scan._rolling import POS, segments
from breadthflow.scan.grammar import (
    MAX_DEPTH,
    MAX_LENGTH,
    Arith,
    Call,
    Compare,
    FormulaError,
    Keyword,
    Logical,
    Lookback,
    Name,
    Node,
    Number,
    Paren,
    Unary,
    parse,
)

__all__ = [
    "BREADTH_SERIES",
    "FIELDS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_VALUES",
    "Formula",
    "FormulaError",
    "check_formula",
    "compile_formula",
]

MAX_VALUES = 8
# Polars optimises deep expression trees in quadratic time; past this depth the partial
# result is computed into a column and the rest builds on that (same values, same order).
_MAX_EXPR_DEPTH = 32
_INT = re.compile(r"\d+")
# The stages run on the in-memory engine: the per-symbol kernels (map_batches over whole
# columns) must see every row of a column at once; Polars 2's streaming engine (the "auto"
# default) may cut them into batches, and it fails some plans outright ("zip node received
# non-equal length inputs", found by tests/scan/test_formula_fuzz.py).
_ENGINE = "in-memory"
# What follows the stages — the match, the date range, the filter, the value columns — is
# row-wise over computed columns, which the streaming engine splits across the cores: about
# half the time of the in-memory engine, which evaluates an expression on one thread
# (12.6 million bars, two cores). Below _STREAMING_ROWS its start-up costs more than it
# saves (a scan per symbol runs thousands of small evaluations).
_STREAMING_ROWS = 1 << 16
_KEYS = ("symbol", "date")


# --- the compiled form ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A compiled sub-formula: a row-wise expression over the frame's columns so far."""

    kind: Kind
    expr: pl.Expr
    warmup: int
    level: int  # the last stage whose columns it reads (0 = bars and breadth)
    constant: bool  # reads no column at all
    key: str  # canonical text, for sharing identical windows
    depth: int = 1


@dataclass
class _Program:
    stages: list[list[pl.Expr]] = field(default_factory=list)
    columns: dict[str, tuple[pl.Expr, int]] = field(default_factory=dict)  # key -> (col, stage)
    fields: set[str] = field(default_factory=set)
    breadth: set[str] = field(default_factory=set)
    broadcast: bool = False  # needs the helper column of ones
    segmented: bool = False  # reads the POS column (bar index inside the symbol)
    cross_sectional: bool = False
    match: pl.Expr | None = None
    values: list[tuple[str, pl.Expr]] = field(default_factory=list)

    def materialize(self, key: str, expr: pl.Expr, level: int) -> tuple[pl.Expr, int]:
        """Compute ``expr`` (which reads stages ``<= level``) into a column of stage
        ``level + 1``; identical keys share one column."""
        if key not in self.columns:
            name = f"__f{len(self.columns)}"
            while len(self.stages) <= level:
                self.stages.append([])
            self.stages[level].append(expr.alias(name))
            self.columns[key] = (pl.col(name), level + 1)
        return self.columns[key]


_ONE = "__one"


@dataclass(frozen=True)
class Formula:
    """A compiled scan formula. Build it with :func:`compile_formula`.

    - ``warmup_bars``: bars of history before the first wanted date that the formula needs
      to be defined there (windows full, recursive smoothers settled; docs/scan-formulas.md).
    - ``needs_breadth``: a market-breadth series is used — pass the breadth table to
      :meth:`evaluate`.
    - ``cross_sectional``: ``rank``/``percentile`` is used — a date's symbols must be
      evaluated together.
    - ``value_names``: the value columns :meth:`evaluate` adds — the operands of the
      top-level comparisons (and crosses), by their source text, constants left out.
    """

    text: str
    warmup_bars: int
    needs_breadth: bool
    cross_sectional: bool
    value_names: tuple[str, ...]
    _program: _Program = field(repr=False, compare=False, hash=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Polars expressions stay in this process; another one recompiles the text.
        return (compile_formula, (self.text,))

    @property
    def fields(self) -> tuple[str, ...]:
        """The bar columns the formula reads."""
        return tuple(f for f in FIELDS if f in self._program.fields)

    @property
    def breadth_series(self) -> tuple[str, ...]:
        """The breadth series the formula reads."""
        return tuple(b for b in BREADTH_SERIES if b in self._program.breadth)

    def evaluate(self, bars: pl.DataFrame, breadth: pl.DataFrame | None = None) -> pl.DataFrame:
        """Evaluate on long bars (any row order); one output row per input bar.

        Returns ``symbol, date, match`` (a null condition counts as false) and one Float64
        column per :attr:`value_names`, sorted by ``(symbol, date)``. ``breadth`` is the
        universe's breadth table (``date`` + the series), needed when :attr:`needs_breadth`.
        """
        program = self._program
        assert program.match is not None
        return (
            self._staged(bars, breadth)
            .select(
                *_KEYS,
                program.match.fill_null(False).alias("match"),
                *(expr.cast(pl.Float64).alias(name) for name, expr in program.values),
            )
            .collect(engine=_row_engine(bars))
        )

    def matches(
        self,
        bars: pl.DataFrame,
        breadth: pl.DataFrame | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> pl.DataFrame:
        """The rows of :meth:`evaluate` where the formula holds and ``start <= date <= end``
        (either bound optional): ``symbol, date`` and the :attr:`value_names` columns,
        sorted by ``(symbol, date)``. The bars before ``start`` still serve as warm-up.

        >>> import datetime as dt
        >>> bars = pl.DataFrame({"symbol": ["A"] * 3, "date": [dt.date(2024, 1, d)
        ...     for d in (2, 3, 4)], "close": [1.0, 3, 4]})
        >>> compile_formula("close > close[1]").matches(bars, start=dt.date(2024, 1, 4)).rows()
        [('A', datetime.date(2024, 1, 4), 4.0, 3.0)]
        """
        program = self._program
        assert program.match is not None
        keep = program.match  # the filter drops a null like a false
        if start is not None:
            keep = keep & (pl.col("date") >= start)
        if end is not None:
            keep = keep & (pl.col("date") <= end)
        return (
            self._staged(bars, breadth)
            .filter(keep)
            .select(*_KEYS, *(expr.cast(pl.Float64).alias(name) for name, expr in program.values))
            .collect(engine=_row_engine(bars))
        )

    def _staged(self, bars: pl.DataFrame, breadth: pl.DataFrame | None) -> pl.LazyFrame:
        """The prepared bars with every stage's columns computed (as a lazy frame over them,
        for the row-wise rest)."""
        program = self._program
        frame = _prepare(
            bars, self.fields, self.breadth_series, breadth, positions_needed=program.segmented
        ).lazy()
        if program.broadcast:
            frame = frame.with_columns(pl.lit(1.0, dtype=pl.Float64).alias(_ONE))
        stages = [stage for stage in program.stages if stage]
        for stage in stages:
            frame = frame.with_columns(stage)
        return frame.collect(engine=_ENGINE).lazy() if stages else frame


def _row_engine(bars: pl.DataFrame) -> Literal["streaming", "in-memory"]:
    return "streaming" if bars.height >= _STREAMING_ROWS else _ENGINE


def compile_formula(text: str) -> Formula:
    """Parse and type-check ``text``; raise :class:`FormulaError` (one line, with the
    position) when it is not a valid condition.

    >>> compile_formula("close > sma(close, 200)[1]").warmup_bars
    201
    >>> try:
    ...     compile_formula("close > smaa(close, 20)")
    ... except FormulaError as error:
    ...     print(error, (error.line, error.column))
    unknown function 'smaa' at 1:9 — did you mean 'sma'? (1, 9)
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula is text, not {type(text).__name__}", 1, 1)
    return _compile(text)


def check_formula(text: str) -> Formula:
    """Validate ``text`` (what ``breadthflow scan check`` runs); same as
    :func:`compile_formula`."""
    return compile_formula(text)


@lru_cache(maxsize=256)
def _compile(text: str) -> Formula:
    return _compile_uncached(text)


def _compile_uncached(text: str) -> Formula:
    tree = parse(text)
    compiler = _Compiler(text)
    top = compiler.value(tree)
    if top.kind != "condition":
        snippet = compiler.snippet(tree)
        raise _error(
            f"the formula must be a condition (true or false), but '{snippet}' at "
            f"{tree.where} is a number",
            tree,
            f"compare it, e.g. {snippet} > 0",
        )
    program = compiler.program
    program.match = top.expr
    program.values = compiler.values(tree)
    return Formula(
        text=text.strip(),
        warmup_bars=top.warmup,
        needs_breadth=bool(program.breadth),
        cross_sectional=program.cross_sectional,
        value_names=tuple(name for name, _ in program.values),
        _program=program,
    )


# --- compiling -----------------------------------------------------------------------------


def _error(problem: str, node: Node, hint: str | None = None) -> FormulaError:
    return FormulaError(problem + (f" — {hint}" if hint else ""), node.line, node.column)


def _suggest(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if not close:
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.75)
    return close[0] if close else None


_INF = float("inf")


def _finite(expr: pl.Expr) -> pl.Expr:
    """Null where ``expr`` is ±inf or NaN (division by zero, overflow).

    Two comparisons: together faster than Polars' ``is_finite``. NaN fails ``< inf``, as
    Polars orders NaN above every number.
    """
    return pl.when((expr < _INF) & (expr > -_INF)).then(expr)


_COMPARE = {
    ">": pl.Expr.gt,
    ">=": pl.Expr.ge,
    "<": pl.Expr.lt,
    "<=": pl.Expr.le,
    "==": pl.Expr.eq,
    "!=": pl.Expr.ne,
}
_ARITH = {"+": pl.Expr.add, "-": pl.Expr.sub, "*": pl.Expr.mul, "/": pl.Expr.truediv}


class _Compiler:
    """Syntax tree → :class:`_Value` (types checked), filling a :class:`_Program`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.program = _Program()
        self._cache: dict[int, _Value] = {}

    # -- helpers -------------------------------------------------------------------------

    def snippet(self, node: Node, limit: int = 60) -> str:
        """The node's source text on one line (shortened when long)."""
        text = " ".join(self.text[node.start : node.end].split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def broadcast(self, value: _Value) -> pl.Expr:
        """A constant as a full-length column (windows need one value per row)."""
        self.program.broadcast = True
        if value.kind == "condition":
            return (pl.col(_ONE) > 0.0) & value.expr
        return pl.col(_ONE) * value.expr

    def _window(
        self,
        key: str,
        expr: pl.Expr,
        over: str,
        inputs: list[_Value],
        segmented: pl.Expr | None = None,
    ) -> tuple[pl.Expr, int]:
        """A per-symbol or per-date window, computed into a column of its own: the
        ``segmented`` form (one pass over the sorted universe) when there is one, else
        ``expr`` per group."""
        if segmented is not None:
            self.program.segmented = True
            return self.program.materialize(key, segmented, _level(inputs))
        return self.program.materialize(key, expr.over(over), _level(inputs))

    def _flatten(self, value: _Value) -> _Value:
        """Keep Polars expression trees shallow (see _MAX_EXPR_DEPTH)."""
        if value.depth <= _MAX_EXPR_DEPTH or value.constant:
            return value
        column, level = self.program.materialize("=" + value.key, value.expr, value.level)
        return _Value(value.kind, column, value.warmup, level, False, value.key)

    def _need(self, value: _Value, kind: Kind, node: Node, role: str) -> None:
        if value.kind == kind:
            return
        snippet = self.snippet(node)
        if kind == "number":
            raise _error(f"{role} needs numbers, but '{snippet}' at {node.where} is a condition",
                         node)  # fmt: skip
        raise _error(
            f"{role} needs conditions, but '{snippet}' at {node.where} is a number",
            node,
            f"compare it, e.g. {snippet} > 0",
        )

    # -- nodes ---------------------------------------------------------------------------

    def value(self, node: Node) -> _Value:
        cached = self._cache.get(id(node))
        if cached is None:
            handler = getattr(self, f"_{type(node).__name__.lower()}")
            cached = self._flatten(handler(node))
            self._cache[id(node)] = cached
        return cached

    def _number(self, node: Number) -> _Value:
        return _Value("number", pl.lit(node.value, dtype=pl.Float64), 0, 0, True, repr(node.value))

    def _name(self, node: Name) -> _Value:
        name = node.name
        if name in FIELDS:
            self.program.fields.add(name)
            return _Value("number", pl.col(name), 0, 0, False, name)
        if name in BREADTH_SERIES:
            self.program.breadth.add(name)
            kind: Kind = "condition" if name in BREADTH_CONDITIONS else "number"
            return _Value(kind, pl.col(name), BREADTH_WARMUP[name], 0, False, name)
        if name in FUNCTIONS:
            raise _error(
                f"'{name}' is a function at {node.where}",
                node,
                f"call it, e.g. {FUNCTIONS[name].signature}",
            )
        known = [*FIELDS, *BREADTH_SERIES]
        close = _suggest(name, [*known, *FUNCTIONS])
        hint = (
            f"did you mean '{close}'?"
            if close
            else f"fields: {', '.join(FIELDS)}; breadth series: {', '.join(BREADTH_SERIES)}"
        )
        raise _error(f"unknown name '{name}' at {node.where}", node, hint)

    def _paren(self, node: Paren) -> _Value:
        return self.value(node.inner)

    def _unary(self, node: Unary) -> _Value:
        inner = self.value(node.operand)
        if node.op == "-":
            self._need(inner, "number", node.operand, "'-'")
            expr = -inner.expr
        else:
            self._need(inner, "condition", node.operand, "'not'")
            expr = ~inner.expr
        return _Value(inner.kind, expr, inner.warmup, inner.level, inner.constant,
                      f"{node.op} {inner.key}", inner.depth + 1)  # fmt: skip

    def _arith(self, node: Arith) -> _Value:
        values = []
        for op, operand in [(node.rest[0][0], node.first), *node.rest]:
            value = self.value(operand)
            self._need(value, "number", operand, f"'{op}'")
            values.append(value)
        first = values[0]
        expr, key, depth, level = first.expr, first.key, first.depth, first.level
        for (op, _), value in zip(node.rest, values[1:], strict=True):
            expr = _ARITH[op](expr, value.expr)
            key = f"({key}{op}{value.key})"
            depth, level = max(depth, value.depth) + 1, max(level, value.level)
            if depth > _MAX_EXPR_DEPTH and not all(v.constant for v in values):
                expr, level = self.program.materialize("=" + key, expr, level)
                depth = 1
        return _Value(
            "number",
            _finite(expr),  # x / 0, overflow → null (never inf, never NaN)
            max(v.warmup for v in values),
            level,
            all(v.constant for v in values),
            key,
            depth + 1,
        )

    def _compare(self, node: Compare) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        if not (node.op in ("==", "!=") and left.kind == right.kind == "condition"):
            self._need(left, "number", node.left, f"'{node.op}'")
            self._need(right, "number", node.right, f"'{node.op}'")
        return _Value(
            "condition",
            _COMPARE[node.op](left.expr, right.expr),
            max(left.warmup, right.warmup),
            max(left.level, right.level),
            left.constant and right.constant,
            f"({left.key}{node.op}{right.key})",
            max(left.depth, right.depth) + 1,
        )

    def _logical(self, node: Logical) -> _Value:
        values = []
        for operand in node.operands:
            value = self.value(operand)
            self._need(value, "condition", operand, f"'{node.op}'")
            values.append(value)
        first = values[0]
        expr, key, depth, level = first.expr, first.key, first.depth, first.level
        for value in values[1:]:
            expr = (expr & value.expr) if node.op == "and" else (expr | value.expr)
            key = f"({key} {node.op} {value.key})"
            depth, level = max(depth, value.depth) + 1, max(level, value.level)
            if depth > _MAX_EXPR_DEPTH and not all(v.constant for v in values):
                expr, level = self.program.materialize("=" + key, expr, level)
                depth = 1
        return _Value(
            "condition",
            expr,
            max(v.warmup for v in values),
            level,
            all(v.constant for v in values),
            key,
            depth,
        )

    def _lookback(self, node: Lookback) -> _Value:
        operand = self.value(node.operand)
        index = node.index
        where = f"{node.bracket_line}:{node.bracket_column}"
        base = self.snippet(node.operand)
        if (
            isinstance(index, Unary)
            and index.op == "-"
            and isinstance(index.operand, Number)
            and _INT.fullmatch(index.operand.text)
            and int(index.operand.text) > 0
        ):
            k = int(index.operand.text)
            ago = "the previous bar" if k == 1 else f"{k} bars ago"
            raise FormulaError(
                f"negative lookback {self.snippet(node)} at {where} reads the future — "
                f"use {base}[{k}] for {ago}",
                node.bracket_line,
                node.bracket_column,
            )
        if isinstance(index, Unary) and index.op == "-" and isinstance(index.operand, Number):
            index = index.operand  # -0 (or -1.5, refused below)
        if not (isinstance(index, Number) and _INT.fullmatch(index.text)):
            raise FormulaError(
                f"lookback {self.snippet(node)} at {where} needs a whole number of bars "
                f"written out — e.g. {base}[1] for the previous bar",
                node.bracket_line,
                node.bracket_column,
            )
        k = int(index.text)
        if k > MAX_WINDOW:
            raise FormulaError(
                f"lookback {self.snippet(node)} at {where} is too long — at most "
                f"{MAX_WINDOW:,} bars",
                node.bracket_line,
                node.bracket_column,
            )
        if k == 0:
            return operand
        expr = self.broadcast(operand) if operand.constant else operand.expr
        key = f"{operand.key}[{k}]"
        column, level = self._window(
            key, expr.shift(k), "symbol", [operand], segmented=_lookback(expr, k)
        )
        return _Value(operand.kind, column, operand.warmup + k, level, False, key)

    # -- calls ---------------------------------------------------------------------------

    def _call(self, node: Call) -> _Value:
        function = FUNCTIONS.get(node.name)
        if function is None:
            self._unknown_function(node)
        assert function is not None
        bound = self._bind(function, node)
        inputs: list[_Value] = []
        exprs: list[pl.Expr] = []
        literals: dict[str, float] = {}
        keys: list[str] = []
        for param in function.params:
            arg = bound.get(param.name)
            if param.kind in ("window", "constant"):
                literal = self._literal(function, param, arg)
                literals[param.name] = literal
                keys.append(repr(literal))
                continue
            assert isinstance(arg, Node)
            value = self.value(arg)
            self._need(value, "number" if param.kind == "series" else "condition", arg,
                       f"{function.name} argument {param.name}")  # fmt: skip
            inputs.append(value)
            exprs.append(self.broadcast(value) if value.constant else value.expr)
            keys.append(value.key)
        if function.name in ("macd", "macd_signal") and literals["fast"] >= literals["slow"]:
            raise _error(
                f"{function.name} fast period {int(literals['fast'])} must be shorter than "
                f"the slow period {int(literals['slow'])} at {node.where}",
                node,
            )
        self.program.fields.update(function.reads)
        if function.over == "date":
            self.program.cross_sectional = True
        built = function.build(*exprs, *literals.values())
        segmented = None
        if function.segmented is not None:
            segmented = function.segmented(*exprs, *literals.values())
        if function.returns == "number":
            built = _finite(built)  # segmented builders see to it themselves
        key = f"{function.name}({','.join(keys)})"
        column, level = self._window(key, built, function.over, inputs, segmented)
        warmup = function.warmup(max((v.warmup for v in inputs), default=0), literals)
        return _Value(function.returns, column, warmup, level, False, key)

    def _unknown_function(self, node: Call) -> None:
        name = node.name
        if name in FIELDS or name in BREADTH_SERIES:
            kind = "field" if name in FIELDS else "breadth series"
            raise _error(
                f"'{name}' is a {kind}, not a function, at {node.where}",
                node,
                f"write it without parentheses, e.g. {name} or {name}[1] for the previous bar",
            )
        close = _suggest(name, list(FUNCTIONS))
        hint = f"did you mean '{close}'?" if close else f"known: {', '.join(FUNCTIONS)}"
        raise _error(f"unknown function '{name}' at {node.where}", node, hint)

    def _bind(self, function: Function, node: Call) -> dict[str, Node]:
        params = function.params
        names = [p.name for p in params]
        signature = ", ".join(str(p) for p in params)
        positional = [a for a in node.args if not isinstance(a, Keyword)]
        keywords = [a for a in node.args if isinstance(a, Keyword)]
        first_keyword = next((i for i, a in enumerate(node.args) if isinstance(a, Keyword)), None)
        if first_keyword is not None and len(positional) > first_keyword:
            late = positional[first_keyword]
            raise _error(
                f"positional argument '{self.snippet(late)}' after a keyword argument in "
                f"{function.name} at {late.where}",
                late,
                f"{function.name} takes ({signature})",
            )
        given = len(node.args)
        if len(positional) > len(params) or given < function.required or given > len(params):
            raise _error(
                f"{function.name} expects {_count(function)} ({signature}), got {given} at "
                f"{node.where}",
                node,
            )
        bound: dict[str, Node] = dict(zip(names, positional, strict=False))
        for keyword in keywords:
            if keyword.name not in names:
                raise _error(
                    f"{function.name} has no argument '{keyword.name}' at {keyword.where}",
                    keyword,
                    f"its arguments are ({signature})",
                )
            if keyword.name in bound:
                raise _error(
                    f"{function.name} argument '{keyword.name}' is given twice at {keyword.where}",
                    keyword,
                )
            bound[keyword.name] = keyword.value
        missing = [p.name for p in params if p.default is None and p.name not in bound]
        if missing:
            raise _error(
                f"{function.name} expects {_count(function)} ({signature}), missing "
                f"{', '.join(missing)} at {node.where}",
                node,
            )
        return bound

    def _literal(self, function: Function, param: Param, arg: Node | None) -> float:
        if arg is None:
            assert param.default is not None
            return param.default
        what = f"{function.name} {'window' if param.kind == 'window' else 'argument'} {param.name}"
        sign = 1.0
        number = arg
        while isinstance(number, Paren):
            number = number.inner
        if isinstance(number, Unary) and number.op == "-":
            sign, number = -1.0, number.operand
        if param.kind == "window":
            if not (isinstance(number, Number) and _INT.fullmatch(number.text)):
                raise _error(
                    f"{what} must be a whole number of bars written out, like 20 — got "
                    f"'{self.snippet(arg)}' at {arg.where}",
                    arg,
                )
            n = sign * int(number.text)
            if not 1 <= n <= MAX_WINDOW:
                raise _error(
                    f"{what} must be between 1 and {MAX_WINDOW:,} bars, got {int(n)} at "
                    f"{arg.where}",
                    arg,
                )
            return float(n)
        if not isinstance(number, Number):
            raise _error(
                f"{what} must be a number written out, like 2 — got '{self.snippet(arg)}' at "
                f"{arg.where}",
                arg,
            )
        value = sign * number.value
        if value < 0:
            raise _error(f"{what} must not be negative, got {self.snippet(arg)} at {arg.where}",
                         arg)  # fmt: skip
        return value

    # -- value columns -------------------------------------------------------------------

    def values(self, tree: Node) -> list[tuple[str, pl.Expr]]:
        """Operands of the top-level comparisons (and crosses), by source text."""
        found: dict[str, pl.Expr] = {}
        pending = [tree]
        operands: list[Node] = []
        while pending:
            node = pending.pop(0)
            if isinstance(node, Paren):
                pending.insert(0, node.inner)
            elif isinstance(node, Logical):
                pending[:0] = node.operands
            elif isinstance(node, Unary) and node.op == "not":
                pending.insert(0, node.operand)
            elif isinstance(node, Compare):
                operands += [node.left, node.right]
            elif isinstance(node, Call) and node.name in ("crosses_above", "crosses_below"):
                operands += [a.value if isinstance(a, Keyword) else a for a in node.args]
        for operand in operands:
            inner = operand
            while isinstance(inner, Paren):
                inner = inner.inner
            value = self.value(inner)
            if value.kind != "number" or value.constant:
                continue
            name = self.snippet(inner, limit=10_000)
            if name not in found and len(found) < MAX_VALUES:
                found[name] = value.expr
        return list(found.items())


def _lookback(expr: pl.Expr, k: int) -> pl.Expr:
    """``expr`` of ``k`` bars ago of the same symbol, over the whole sorted universe."""
    return pl.when(pl.col(POS) >= k).then(expr.shift(k))


def _level(values: list[_Value]) -> int:
    return max((v.level for v in values), default=0)


def _count(function: Function) -> str:
    low, high = function.required, len(function.params)
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    joiner = " or " if high == low + 1 else " to "
    return f"{low}{joiner}{high} arguments"


# --- evaluation ----------------------------------------------------------------------------


def _prepare(
    bars: pl.DataFrame,
    fields: tuple[str, ...],
    series: tuple[str, ...],
    breadth: pl.DataFrame | None,
    positions_needed: bool = False,
) -> pl.DataFrame:
    """The columns the formula reads, finite or null, sorted by (symbol, date) — plus
    :data:`POS` (the bar's index inside its symbol) when ``positions_needed``.

    Bars that already carry :data:`POS` and a symbol column flagged sorted — what
    :func:`breadthflow.scan.engine.check_bars` returns with ``positions=True``: sorted, one
    bar per symbol and date, finite values — are taken as they are, without checking again.
    """
    missing = [c for c in (*_KEYS, *fields) if c not in bars.columns]
    if missing:
        raise InvalidInputError(
            f"bars are missing column(s) {', '.join(missing)} — expected long-format bars "
            "with symbol, date, open, high, low, close, volume"
        )
    checked = POS in bars.columns and bars.get_column("symbol").flags["SORTED_ASC"]
    frame = bars.select(
        *_KEYS, *(pl.col(f).cast(pl.Float64) for f in fields), *([POS] if checked else [])
    ).rechunk()  # a lake read has a chunk per file; contiguous columns are much faster
    # Non-finite values become null; a column that has none is left as it is (no copy).
    # (check_bars has already refused symbols with a non-finite value.)
    checks = [] if checked else [pl.col(f).is_finite().all() for f in fields]
    finite = frame.select(checks).row(0) if checks else (True,) * len(fields)
    bad = [f for f, ok in zip(fields, finite, strict=True) if not ok]
    if bad:
        frame = frame.with_columns(_finite(pl.col(f)).alias(f) for f in bad)
    if frame.get_column("symbol").null_count() or frame.get_column("date").null_count():
        raise InvalidInputError("bars have rows without a symbol or a date")
    if series:
        frame = frame.join(
            _breadth(breadth, series, frame.schema["date"]),
            on="date",
            how="left",
            maintain_order="left",
        )
    if checked:
        return frame if positions_needed else frame.drop(POS)
    found = segments(frame.get_column("symbol"), frame.get_column("date"))
    if found is None:  # not sorted yet: the lake's bars are, other sources may not be
        frame = frame.sort(*_KEYS)
        found = segments(frame.get_column("symbol"), frame.get_column("date"))
        assert found is not None
    if found.repeated is not None:
        symbol, date = frame.row(found.repeated)[:2]
        raise InvalidInputError(
            f"bars repeat a date: {symbol} has two bars on {date} — drop duplicates first"
        )
    if positions_needed:
        frame = frame.with_columns(pl.Series(POS, found.pos))
    return frame


def _breadth(
    breadth: pl.DataFrame | None, series: tuple[str, ...], date_type: pl.DataType
) -> pl.DataFrame:
    if breadth is None:
        raise InvalidInputError(
            f"the formula uses market breadth ({', '.join(series)}) — pass the universe's "
            "breadth table: formula.evaluate(bars, breadth)"
        )
    missing = [c for c in ("date", *series) if c not in breadth.columns]
    if missing:
        raise InvalidInputError(f"the breadth table lacks column(s) {', '.join(missing)}")
    table = breadth.select(
        pl.col("date").cast(date_type),
        *(
            pl.col(s).cast(pl.Boolean) if s in BREADTH_CONDITIONS
            else _finite(pl.col(s).cast(pl.Float64)).alias(s)
            for s in series
        ),
    )  # fmt: skip
    if table["date"].is_duplicated().any():
        raise InvalidInputError("the breadth table repeats a date — expected one row per date")
    return table
