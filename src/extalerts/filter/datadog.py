"""Compile a filter to Datadog log search syntax (the text inside ``logs("…")``)."""

from __future__ import annotations

import re

from extalerts.fields import Field, FieldCatalog
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, Scalar, to_nnf
from extalerts.numbers import format_number

#: Characters Datadog search treats as syntax; escaped with a backslash in bare and wildcard terms.
SPECIAL_CHARS = frozenset('+-=&|><!(){}[]^"“”~*?:\\/ \t\n')
_BARE_TOKEN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")
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
    return value if _BARE_TOKEN.match(value) else quote_phrase(value)


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


def _predicate(pred: Predicate, field: Field) -> str:
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
