"""The syntax of scan formulas: text → a small syntax tree, or a :class:`FormulaError`.

The grammar (:data:`GRAMMAR`) is parsed by Lark's LALR parser — a table-driven parser with
no recursion, so any input is handled in linear time — and the Lark tree is turned into
the immutable nodes below, each knowing where it sits in the text. Nothing here knows what
``sma`` or ``close`` mean: names are resolved and types checked in
:mod:`breadthflow.scan.formula`.

Every problem becomes a :class:`FormulaError` naming the line and column; Lark's own
exceptions never escape. Two limits keep hostile input cheap: at most
:data:`MAX_LENGTH` characters and at most :data:`MAX_DEPTH` levels of nesting (which also
keeps every later, recursive, pass far from Python's recursion limit).

>>> tree = parse("close > sma(close, 20)")
>>> type(tree).__name__, tree.op, tree.right.name
('Compare', '>', 'sma')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from breadthflow.core.errors import InvalidInputError

__all__ = [
    "GRAMMAR",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Arith",
    "Call",
    "Compare",
    "FormulaError",
    "Keyword",
    "Logical",
    "Lookback",
    "Name",
    "Node",
    "Number",
    "Paren",
    "Unary",
    "parse",
]

MAX_LENGTH = 2_000
MAX_DEPTH = 100

# Precedence, loosest first: or < and < not < comparison < + - < * / < unary - < x[k].
# Chains of one operator level are flat lists (a + b - c is one node), so depth measures
# real nesting. A comparison takes exactly two operands: `a < b < c` is refused.
# Keywords are case-insensitive and must end at a word boundary (`order` is a name).
GRAMMAR = r"""
start: disj

?disj: conj (OR conj)*
?conj: negation (AND negation)*
?negation: NOT negation -> not_
         | comparison
?comparison: sum (COMPARE sum)?
?sum: product ((PLUS | MINUS) product)*
?product: unary ((STAR | SLASH) unary)*
?unary: MINUS unary -> neg
      | postfix
?postfix: atom
        | postfix LSQB disj RSQB -> lookback
?atom: NUMBER -> number
     | NAME -> name
     | NAME LPAR [arguments] RPAR -> call
     | LPAR disj RPAR -> paren
arguments: argument (COMMA argument)*
?argument: disj
         | NAME EQUALS disj -> keyword

OR.2: /or\b/i
AND.2: /and\b/i
NOT.2: /not\b/i
COMPARE: ">=" | "<=" | "==" | "!=" | ">" | "<"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
COMMA: ","
EQUALS: "="
NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%ignore /\s+/
"""


class FormulaError(InvalidInputError):
    """A formula that cannot be compiled; ``str()`` is one line naming ``line:column``.

    >>> str(FormulaError("unknown name 'clse' at 1:1", 1, 1))
    "unknown name 'clse' at 1:1"
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(" ".join(message.split()))  # always one line
        self.line = line
        self.column = column

    def __reduce__(self) -> tuple[type[FormulaError], tuple[str, int, int]]:
        return (type(self), (self.message, self.line, self.column))  # survives pickling


# --- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class Node:
    """A piece of the formula and where it is: ``text[start:end]``, 1-based line/column."""

    start: int
    end: int
    line: int
    column: int

    @property
    def where(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True, eq=False, kw_only=True)
class Number(Node):
    text: str
    value: float


@dataclass(frozen=True, eq=False, kw_only=True)
class Name(Node):
    name: str


@dataclass(frozen=True, eq=False, kw_only=True)
class Keyword(Node):
    """``name=value`` inside a call."""

    name: str
    value: Node


@dataclass(frozen=True, eq=False, kw_only=True)
class Call(Node):
    name: str
    args: tuple[Node | Keyword, ...]


@dataclass(frozen=True, eq=False, kw_only=True)
class Paren(Node):
    inner: Node


@dataclass(frozen=True, eq=False, kw_only=True)
class Lookback(Node):
    """``operand[index]``; ``bracket_*`` locate the ``[``."""

    operand: Node
    index: Node
    bracket_line: int
    bracket_column: int


@dataclass(frozen=True, eq=False, kw_only=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True, eq=False, kw_only=True)
class Arith(Node):
    """``first op1 x1 op2 x2 …`` at one precedence level (``+ -`` or ``* /``)."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, eq=False, kw_only=True)
class Compare(Node):
    left: Node
    op: str
    right: Node


@dataclass(frozen=True, eq=False, kw_only=True)
class Logical(Node):
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


# --- parsing -------------------------------------------------------------------------------


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="basic", propagate_positions=True)


def parse(text: str) -> Node:
    """Parse ``text`` into a syntax tree; raise :class:`FormulaError` on any problem."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula is text, not {type(text).__name__}", 1, 1)
    if len(text) > MAX_LENGTH:
        line, column = position(text, MAX_LENGTH)
        raise FormulaError(
            f"formula is too long at {line}:{column} — at most {MAX_LENGTH:,} characters, "
            f"got {len(text):,}",
            line,
            column,
        )
    if not text.strip():
        raise FormulaError(
            "empty formula at 1:1 — write a condition, e.g. close > sma(close, 50)", 1, 1
        )
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except LarkError as exc:  # pragma: no cover - any other Lark failure is still ours
        raise FormulaError(
            f"cannot parse the formula at 1:1 ({type(exc).__name__})", 1, 1
        ) from None
    _check_depth(tree)
    return _Builder(text).node(tree.children[0])


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``text[offset]`` (or of the end, past the last character)."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _check_depth(tree: Tree) -> None:
    """Refuse more than MAX_DEPTH levels of nesting, without recursion."""
    stack: list[tuple[Tree, int]] = [
        (child, 1) for child in tree.children if isinstance(child, Tree)
    ]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            line, column = node.meta.line, node.meta.column
            raise FormulaError(
                f"formula nests too deeply at {line}:{column} — at most {MAX_DEPTH} levels",
                line,
                column,
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


_OPERAND_START = {"NUMBER", "NAME"}  # a state that takes an operand accepts both
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "COMPARE", "AND", "OR", "LSQB"}
_CHAR_HINTS = {
    "'": "formulas have no strings",
    '"': "formulas have no strings",
    ".": "formulas have no attributes; write numbers like 0.5",
    "&": "write 'and'",
    "|": "write 'or'",
    "!": "write 'not', or '!=' for not equal",
    "~": "write 'not'",
    "%": "there is no modulo; use + - * /",
    "^": "there is no power operator; use * repeatedly",
}


def _expected(names: set[str]) -> str:
    if names & _OPERAND_START:
        return "a number, field or function"
    parts = []
    if names & _OPERATORS:
        parts.append("an operator")
    for token, shown in (("COMMA", "','"), ("RPAR", "')'"), ("RSQB", "']'")):
        if token in names:
            parts.append(shown)
    if "$END" in names:
        parts.append("the end of the formula")
    if not parts:
        return "something else"
    return ", ".join(parts[:-1]) + (" or " if len(parts) > 1 else "") + parts[-1]


def _syntax_error(exc: Exception, text: str) -> FormulaError:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        shown = repr(char)
        hint = _CHAR_HINTS.get(char, "expected a number, field, function or operator")
        return FormulaError(
            f"unexpected character {shown} at {exc.line}:{exc.column} — {hint}",
            exc.line,
            exc.column,
        )
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token: Token = exc.token
        expected = set(exc.accepts or exc.expected)  # accepts: exact, after default reductions
        line, column = token.line or 1, token.column or 1
        if token.type == "COMPARE" and not expected & (_OPERAND_START | {"COMPARE"}):
            hint = "comparisons cannot be chained; write a < b and b < c"
        elif token.type == "EQUALS":
            hint = "write '==' to compare"
        else:
            hint = f"expected {_expected(expected)}"
        return FormulaError(f"unexpected '{token.value}' at {line}:{column} — {hint}", line, column)
    # the end of the text came too early
    expected = set(getattr(exc, "accepts", None) or getattr(exc, "expected", None) or ())
    line, column = position(text.rstrip(), len(text.rstrip()))
    hint = f"expected {_expected(expected)}" if expected else "the formula is incomplete"
    return FormulaError(f"unexpected end of formula at {line}:{column} — {hint}", line, column)


class _Builder:
    """Lark tree → :class:`Node` (recursive: the depth was checked before)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _span(self, item: Tree | Token) -> dict[str, int]:
        if isinstance(item, Token):
            return {
                "start": item.start_pos or 0,
                "end": item.end_pos or 0,
                "line": item.line or 1,
                "column": item.column or 1,
            }
        meta = item.meta
        return {"start": meta.start_pos, "end": meta.end_pos, "line": meta.line,
                "column": meta.column}  # fmt: skip

    def node(self, item: Tree | Token) -> Node:
        if isinstance(item, Token):  # pragma: no cover - every token sits in a rule
            raise FormulaError(f"unexpected '{item}' at {item.line}:{item.column}", 1, 1)
        return getattr(self, f"_{item.data}")(item, self._span(item))

    def _operands(self, tree: Tree) -> list[Node]:
        return [self.node(c) for c in tree.children if isinstance(c, Tree)]

    def _number(self, tree: Tree, span: dict[str, int]) -> Node:
        token = tree.children[0]
        value = float(token)
        if not math.isfinite(value):
            raise FormulaError(
                f"number {token} at {span['line']}:{span['column']} is too large",
                span["line"],
                span["column"],
            )
        return Number(text=str(token), value=value, **span)

    def _name(self, tree: Tree, span: dict[str, int]) -> Node:
        return Name(name=str(tree.children[0]), **span)

    def _call(self, tree: Tree, span: dict[str, int]) -> Node:
        name, _lpar, arguments, _rpar = tree.children
        args: list[Node | Keyword] = []
        if arguments is not None:
            for arg in arguments.children:
                if isinstance(arg, Token):  # a comma
                    continue
                if arg.data == "keyword":
                    key, _eq, value = arg.children
                    args.append(Keyword(name=str(key), value=self.node(value), **self._span(arg)))
                else:
                    args.append(self.node(arg))
        return Call(name=str(name), args=tuple(args), **span)

    def _paren(self, tree: Tree, span: dict[str, int]) -> Node:
        return Paren(inner=self.node(tree.children[1]), **span)

    def _lookback(self, tree: Tree, span: dict[str, int]) -> Node:
        operand, bracket, index, _close = tree.children
        return Lookback(
            operand=self.node(operand),
            index=self.node(index),
            bracket_line=bracket.line or 1,
            bracket_column=bracket.column or 1,
            **span,
        )

    def _neg(self, tree: Tree, span: dict[str, int]) -> Node:
        return Unary(op="-", operand=self.node(tree.children[1]), **span)

    def _not_(self, tree: Tree, span: dict[str, int]) -> Node:
        return Unary(op="not", operand=self.node(tree.children[1]), **span)

    def _arith(self, tree: Tree, span: dict[str, int]) -> Node:
        children = tree.children
        first = self.node(children[0])
        rest = tuple(
            (str(children[i]), self.node(children[i + 1])) for i in range(1, len(children), 2)
        )
        return Arith(first=first, rest=rest, **span)

    _sum = _product = _arith

    def _comparison(self, tree: Tree, span: dict[str, int]) -> Node:
        left, op, right = tree.children
        return Compare(left=self.node(left), op=str(op), right=self.node(right), **span)

    def _logical(self, tree: Tree, span: dict[str, int], op: str) -> Node:
        return Logical(op=op, operands=tuple(self._operands(tree)), **span)

    def _disj(self, tree: Tree, span: dict[str, int]) -> Node:
        return self._logical(tree, span, "or")

    def _conj(self, tree: Tree, span: dict[str, int]) -> Node:
        return self._logical(tree, span, "and")
