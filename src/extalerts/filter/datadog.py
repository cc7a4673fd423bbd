"""Compile a filter to Datadog log search syntax (the text inside ``logs("…")``)."""

from __future__ import annotations

import re

from extalerts.fields import Field, FieldCatalog
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, Scalar, to_nnf
from extalerts.numbers import format_number

#: Characters Datadog search treats as syntax, escaped with a backslash in wildcard terms. The docs
#: list (logs/explorer/search_syntax): "The following characters are considered special and require
#: escaping with the `\` character: `-` `!` `&&` `||` `>` `>=` `<` `<=` `(` `)` `{` `}` `[` `]` `"`
#: `*` `?` `:` `\` `#`, and spaces"; "`/` is not considered a special character". `#` also starts a
#: calculated field name. No page says whether `@` (reserved for attribute search) may stand bare
#: inside a value: escaped too, the conservative reading.
SPECIAL_CHARS = frozenset('-!&|><(){}[]"*?:\\#@ \t\n\r\f\v')
_BARE_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")
#: Words Datadog reads as operators; as values they are quoted.
_OPERATOR_WORDS = frozenset({"AND", "OR", "NOT", "TO"})
_ORDERING = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}


def escape_wildcard_term(text: str) -> str:
    """Escape every special character, so that only our own ``*`` act as wildcards."""
    return "".join("\\" + c if c in SPECIAL_CHARS else c for c in text)


def quote_phrase(text: str) -> str:
    """A double-quoted exact-match value."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = _number(value)
        return number if not number.startswith("-") else f"[{number} TO {number}]"
    bare = _BARE_TOKEN.fullmatch(value) is not None and value not in _OPERATOR_WORDS
    return value if bare else quote_phrase(value)


def _number(value: int | float) -> str:
    return format_number(value)


def _term(pred: Predicate) -> str:
    """The part after ``@attr:``."""
    match pred.op:
        case Op.EQ:
            assert pred.value is not None
            assert not isinstance(pred.value, tuple)
            return format_value(pred.value)
        case Op.LT | Op.LE | Op.GT | Op.GE:
            assert isinstance(pred.value, int | float)
            return _ORDERING[pred.op] + _number(pred.value)
        case Op.IN:
            assert isinstance(pred.value, tuple)
            return "(" + " OR ".join(format_value(v) for v in pred.value) + ")"
        case Op.CONTAINS:
            assert isinstance(pred.value, str)
            return "*" + escape_wildcard_term(pred.value) + "*"
        case Op.EXISTS:
            return "*"
    raise AssertionError(pred.op)  # pragma: no cover


def _has_range(pred: Predicate) -> bool:
    """A negative number is written as a range, which Datadog does not take inside a value group."""
    values = pred.value if isinstance(pred.value, tuple) else ()
    return any(isinstance(v, int | float) and not isinstance(v, bool) and v < 0 for v in values)


def _predicate(pred: Predicate, field: Field) -> str:
    if pred.op is Op.IN and _has_range(pred):
        assert isinstance(pred.value, tuple)
        terms = [f"@{attr}:{format_value(v)}" for attr in field.datadog_attributes() for v in pred.value]
        group = "(" + " OR ".join(terms) + ")"
        return f"-{group}" if pred.negated else group
    term = _term(pred)
    attrs = field.datadog_attributes()
    if not pred.negated:
        parts = [f"@{attr}:{term}" for attr in attrs]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    parts = [f"-@{attr}:{term}" for attr in attrs]
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _compile(expr: Expr, catalog: FieldCatalog, nested: bool) -> str:
    match expr:
        case Predicate():
            return _predicate(expr, catalog[expr.field])
        case And(items) | Or(items):
            joiner = " AND " if isinstance(expr, And) else " OR "
            text = joiner.join(_compile(item, catalog, True) for item in items)
            return f"({text})" if nested else text
    raise TypeError(f"expected NNF, got {expr!r}")  # pragma: no cover


def to_datadog(expr: Expr, catalog: FieldCatalog) -> str:
    """Datadog log search text for ``expr`` (checked against ``catalog`` beforehand)."""
    return _compile(to_nnf(expr), catalog, nested=False)
