"""Compile a filter to the Cloudflare Logpush job filter (``{"where": …}``).

Logpush filters only scalar fields and string arrays, with a fixed operator set, at most about 30
operators and 1000 bytes. Anything else cannot be pushed down and is reported with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from extalerts.errors import CannotPushDownError
from extalerts.fields import FieldCatalog, FieldType
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, to_nnf

MAX_OPERATORS = 30
MAX_BYTES = 1000

_POSITIVE = {
    Op.EQ: "eq",
    Op.LT: "lt",
    Op.LE: "leq",
    Op.GT: "gt",
    Op.GE: "geq",
    Op.IN: "in",
    Op.CONTAINS: "contains",
}
_NEGATED = {
    Op.EQ: "!eq",
    Op.LT: "geq",
    Op.LE: "gt",
    Op.GT: "leq",
    Op.GE: "lt",
    Op.IN: "!in",
    Op.CONTAINS: "!contains",
}


def _leaf(pred: Predicate, catalog: FieldCatalog, problems: list[str]) -> dict[str, Any]:
    field = catalog[pred.field]
    if not field.logpush:
        why = "it is inside an object or array of objects" if "." in field.name else "it is not a Logpush field"
        if field.is_derived:
            why = "it is derived from log text, which Logpush cannot parse"
        problems.append(f"`{field.name}` cannot be filtered by Logpush: {why}")
    if pred.op is Op.EXISTS:
        problems.append(f"`exists({field.name})` has no Logpush operator")
    if field.type is FieldType.STRING_LIST and pred.op is not Op.CONTAINS:
        problems.append(f"`{field.name}` is a list; Logpush can only test it with `contains`")
    operator = (_NEGATED if pred.negated else _POSITIVE).get(pred.op, "?")
    value: Any = list(pred.value) if isinstance(pred.value, tuple) else pred.value
    return {"key": field.name, "operator": operator, "value": value}


def _compile(expr: Expr, catalog: FieldCatalog, problems: list[str]) -> dict[str, Any]:
    match expr:
        case Predicate():
            return _leaf(expr, catalog, problems)
        case And(items):
            return {"and": [_compile(item, catalog, problems) for item in items]}
        case Or(items):
            return {"or": [_compile(item, catalog, problems) for item in items]}
    raise TypeError(f"expected NNF, got {expr!r}")  # pragma: no cover


def _count_operators(node: dict[str, Any]) -> int:
    if "key" in node:
        return 1
    children = node.get("and") or node.get("or") or []
    return sum(_count_operators(child) for child in children)


def to_logpush(expr: Expr, catalog: FieldCatalog) -> dict[str, Any]:
    """The filter document; raises :class:`CannotPushDownError` naming every part Logpush cannot take."""
    problems: list[str] = []
    where = _compile(to_nnf(expr), catalog, problems)
    document = {"where": where}
    operators = _count_operators(where)
    if operators > MAX_OPERATORS:
        problems.append(f"{operators} operators; Logpush allows about {MAX_OPERATORS}")
    size = len(to_logpush_string(document))
    if size > MAX_BYTES:
        problems.append(f"{size} bytes; Logpush allows about {MAX_BYTES}")
    if problems:
        raise CannotPushDownError("; ".join(dict.fromkeys(problems)))
    return document


def to_logpush_string(document: dict[str, Any]) -> str:
    """The job's ``filter`` value: the document serialised as a compact JSON string."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True)
