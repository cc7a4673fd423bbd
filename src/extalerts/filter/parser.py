"""Parse filter text into the AST and check it against the field catalog.

Grammar (keywords are lower-case)::

    expr      := and_expr ("or" and_expr)*
    and_expr  := unary ("and" unary)*
    unary     := "not" unary | primary
    primary   := "(" expr ")" | "exists" "(" FIELD ")" | FIELD condition
    condition := ("==" | "!=" | "<" | "<=" | ">" | ">=") value
               | ["not"] "in" "[" value ("," value)* [","] "]"
               | ["not"] "contains" STRING
    value     := STRING | NUMBER | "true" | "false"

Strings take double or single quotes with backslash escapes. ``Logs[].Message`` may be written
``Logs.Message``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from extalerts.errors import FilterFieldError, FilterSyntaxError
from extalerts.fields import FieldCatalog, FieldType
from extalerts.filter.ast import ORDERING_OPS, And, Expr, Not, Op, Or, Predicate, Scalar, predicates

#: How deep parentheses and `not` may nest, and how long a number may be: a filter is read by
#: recursion, and Python refuses ints of more than 4,300 digits.
MAX_FILTER_DEPTH = 32
MAX_NUMBER_CHARS = 100

KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "exists", "true", "false"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\[\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\])?)*)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<cmp>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<quote>["'])
  | (?P<bad>&&|\|\||=|!|.)
    """,
    re.VERBOSE,
)

_BAD_HINTS = {
    "&&": "write `and`",
    "||": "write `or`",
    "=": "use `==` to compare",
    "!": "write `not` or `!=`",
}


@dataclass(frozen=True)
class Token:
    kind: str  # field, keyword, number, string, cmp, punct, end
    text: str
    value: Scalar | None
    offset: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # pragma: no cover - the `bad` branch matches any character
            raise FilterSyntaxError("unexpected character", pos)
        kind = match.lastgroup or "bad"
        start = pos
        pos = match.end()
        if kind == "space":
            continue
        word = match.group()
        if kind == "quote":
            value, pos = _read_string(text, start)
            tokens.append(Token("string", text[start:pos], value, start))
        elif kind == "field":
            if word in KEYWORDS:
                literal: Scalar | None = {"true": True, "false": False}.get(word)
                tokens.append(Token("keyword" if literal is None else "bool", word, literal, start))
            else:
                tokens.append(Token("field", word.replace("[]", ""), None, start))
        elif kind == "number":
            if len(word) > MAX_NUMBER_CHARS:
                raise FilterSyntaxError(f"a number of {len(word):,} characters", start, f"at most {MAX_NUMBER_CHARS}")
            number: int | float = float(word) if any(c in word for c in ".eE") else int(word)
            tokens.append(Token("number", word, number, start))
        elif kind in ("cmp", "punct"):
            tokens.append(Token(kind, word, None, start))
        else:
            raise FilterSyntaxError(f"unexpected `{word}`", start, _BAD_HINTS.get(word, ""))
    tokens.append(Token("end", "", None, len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    pos = start + 1
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            if pos + 1 >= len(text):
                break
            nxt = text[pos + 1]
            if nxt not in escapes:
                raise FilterSyntaxError(f"unknown escape `\\{nxt}` in string", pos, "escape only \\ \" ' n t")
            out.append(escapes[nxt])
            pos += 2
            continue
        if char == quote:
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    raise FilterSyntaxError("unterminated string", start, f"close it with {quote}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def deeper(self) -> None:
        """One more level of `(` or `not`; refused past :data:`MAX_FILTER_DEPTH`."""
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise FilterSyntaxError(
                f"nested deeper than {MAX_FILTER_DEPTH} levels of `(` and `not`",
                self.current.offset,
                "write the condition flatter",
            )

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.current.kind == "keyword" and self.current.text == word

    def expect_punct(self, char: str) -> Token:
        if self.current.kind == "punct" and self.current.text == char:
            return self.advance()
        raise self.error(f"expected `{char}`")

    def error(self, message: str, hint: str = "") -> FilterSyntaxError:
        token = self.current
        found = "end of filter" if token.kind == "end" else f"`{token.text}`"
        return FilterSyntaxError(f"{message}, found {found}", token.offset, hint)

    def parse(self) -> Expr:
        if self.current.kind == "end":
            raise self.error("empty filter", "omit `filter` to match every event")
        expr = self.parse_or()
        if self.current.kind != "end":
            raise self.error("expected `and`, `or` or the end of the filter")
        return expr

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Expr:
        items = [self.parse_unary()]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self) -> Expr:
        if self.at_keyword("not"):
            self.advance()
            self.deeper()
            expr = Not(self.parse_unary())
            self.depth -= 1
            return expr
        return self.parse_primary()

    def parse_primary(self) -> Expr:
        token = self.current
        if token.kind == "punct" and token.text == "(":
            self.advance()
            self.deeper()
            expr = self.parse_or()
            self.expect_punct(")")
            self.depth -= 1
            return expr
        if self.at_keyword("exists"):
            self.advance()
            self.expect_punct("(")
            field = self.expect_field()
            self.expect_punct(")")
            return Predicate(field.text, Op.EXISTS, None, offset=token.offset)
        if token.kind == "field":
            return self.parse_condition(self.advance())
        hint = ""
        if token.kind in ("string", "number", "bool"):
            hint = 'a condition starts with a field name, e.g. Outcome == "exception"'
        raise self.error("expected a field name, `not`, `exists(` or `(`", hint)

    def expect_field(self) -> Token:
        if self.current.kind != "field":
            raise self.error("expected a field name")
        return self.advance()

    def parse_condition(self, field: Token) -> Predicate:
        token = self.current
        if token.kind == "cmp":
            self.advance()
            value = self.parse_value()
            if token.text == "!=":
                return Predicate(field.text, Op.EQ, value, negated=True, offset=field.offset)
            return Predicate(field.text, Op(token.text), value, offset=field.offset)
        negated = False
        if self.at_keyword("not"):
            self.advance()
            negated = True
            if not (self.at_keyword("in") or self.at_keyword("contains")):
                raise self.error("expected `in` or `contains` after `not`")
        if self.at_keyword("in"):
            self.advance()
            values = self.parse_list()
            return Predicate(field.text, Op.IN, values, negated=negated, offset=field.offset)
        if self.at_keyword("contains"):
            self.advance()
            if self.current.kind != "string":
                raise self.error("`contains` takes a quoted string")
            text = self.advance().value
            return Predicate(field.text, Op.CONTAINS, text, negated=negated, offset=field.offset)
        raise self.error(
            "expected a comparison (== != < <= > >=), `in` or `contains`",
            "to test presence write exists(Field)",
        )

    def parse_value(self) -> Scalar:
        token = self.current
        if token.kind in ("string", "number", "bool"):
            self.advance()
            assert token.value is not None
            return token.value
        hint = f'string values need quotes: "{token.text}"' if token.kind == "field" else ""
        raise self.error("expected a value (a quoted string, a number, true or false)", hint)

    def parse_list(self) -> tuple[Scalar, ...]:
        self.expect_punct("[")
        values = [self.parse_value()]
        while self.current.kind == "punct" and self.current.text == ",":
            self.advance()
            if self.current.kind == "punct" and self.current.text == "]":
                break
            values.append(self.parse_value())
        self.expect_punct("]")
        return tuple(values)


def parse(text: str) -> Expr:
    """Parse filter text; raises :class:`FilterSyntaxError` with the character offset."""
    return _Parser(text).parse()


def check(expr: Expr, catalog: FieldCatalog) -> list[FilterFieldError]:
    """Every unknown field and type mismatch in ``expr`` (empty when the filter is sound)."""
    problems: list[FilterFieldError] = []
    for pred in predicates(expr):
        problem = _check_predicate(pred, catalog)
        if problem is not None:
            problems.append(problem)
    return problems


def _check_predicate(pred: Predicate, catalog: FieldCatalog) -> FilterFieldError | None:
    field = catalog.get(pred.field)
    if field is None:
        return FilterFieldError(f"unknown field `{pred.field}`", pred.offset, catalog.suggest(pred.field))
    ftype = field.type
    if pred.op is Op.EXISTS:
        return None
    if pred.op is Op.CONTAINS:
        if ftype not in (FieldType.STRING, FieldType.STRING_LIST):
            return FilterFieldError(f"`contains` needs a text field; `{field.name}` is {ftype.value}", pred.offset)
        return None
    if pred.op in ORDERING_OPS and not ftype.is_numeric:
        return FilterFieldError(
            f"`{pred.op.value}` needs a numeric field; `{field.name}` is {ftype.value}",
            pred.offset,
            "compare text with == != in or contains",
        )
    values = pred.value if isinstance(pred.value, tuple) else (pred.value,)
    for value in values:
        problem = _value_problem(value, ftype, exact=pred.op in (Op.EQ, Op.IN))
        if problem:
            hint = ""
            if ftype is FieldType.STRING and field.known_values:
                hint = "known values: " + ", ".join(field.known_values)
            return FilterFieldError(f"`{field.name}` {problem}", pred.offset, hint)
    return None


def _value_problem(value: Scalar | None, ftype: FieldType, exact: bool) -> str:
    if ftype in (FieldType.STRING, FieldType.STRING_LIST):
        return "" if isinstance(value, str) else f"is text; compare it with a quoted string, not {value!r}"
    if ftype is FieldType.BOOLEAN:
        return "" if isinstance(value, bool) else f"is a boolean; compare it with true or false, not {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {ftype.value}; compare it with a number, not {value!r}"
    if not math.isfinite(value):
        return f"is compared with {value!r}, which is not a finite number"
    if exact and ftype is FieldType.INTEGER and isinstance(value, float) and not value.is_integer():
        return f"is an integer; {value!r} can never match"
    return ""
