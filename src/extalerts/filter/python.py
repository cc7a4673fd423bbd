"""Compile a filter to a Python predicate over one Workers Trace Event (a decoded JSON object).

This is the reference semantics the other backends are tested against.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from extalerts.fields import (
    ARRAY,
    STRUCTURED_LINE_LEVEL,
    STRUCTURED_LINE_MAX_CHARS,
    STRUCTURED_LINE_SEPARATOR,
    Field,
    FieldCatalog,
    FieldType,
)
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, to_nnf

Event = Mapping[str, Any]
EventPredicate = Callable[[Event], bool]


def structured_line_text(event: Event) -> str | None:
    """The text of the structured line before it is parsed: the ``Message`` of the first ``Logs``
    entry whose ``Level`` is ``log``, its strings joined with ``,``. None when that entry is missing or
    its ``Message`` holds anything but strings (Datadog's string builder skips such a value). Keys
    are matched as written, as Datadog's attribute search does."""
    logs = event.get("Logs")
    if not isinstance(logs, list):
        return None
    entry = next((e for e in logs if isinstance(e, Mapping) and e.get("Level") == STRUCTURED_LINE_LEVEL), None)
    if entry is None:
        return None
    message = entry.get("Message")
    if isinstance(message, str):
        return message
    if isinstance(message, list) and all(isinstance(part, str) for part in message):
        return STRUCTURED_LINE_SEPARATOR.join(message)
    return None


def structured_line(event: Event) -> Mapping[str, Any] | None:
    """The structured line as a JSON object, or None: no line, longer than
    :data:`~extalerts.fields.STRUCTURED_LINE_MAX_CHARS` characters, or not a JSON object."""
    text = structured_line_text(event)
    if text is None or len(text) > STRUCTURED_LINE_MAX_CHARS:
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    return decoded if isinstance(decoded, Mapping) else None


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        if node is not None:
            yield node
        return
    step, rest = path[0], path[1:]
    if step == ARRAY:
        if isinstance(node, list):
            for item in node:
                yield from _walk(item, rest)
        elif node is not None:  # a scalar where a list was expected: treat it as one element
            yield from _walk(node, rest)
        return
    if isinstance(node, Mapping) and step in node:
        yield from _walk(node[step], rest)


def field_values(event: Event, field: Field) -> list[Any]:
    """Every value of ``field`` in ``event`` (empty when missing)."""
    if field.derived_key is not None:
        line = structured_line(event)
        if line is None or field.derived_key not in line or line[field.derived_key] is None:
            return []
        return [line[field.derived_key]]
    values: list[Any] = []
    for path in field.paths:
        values.extend(_walk(event, path))
    return values


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _matcher(pred: Predicate, field: Field) -> Callable[[Any], bool]:
    numeric = field.type.is_numeric
    target = pred.value
    match pred.op:
        case Op.EXISTS:
            return lambda v: v != "" and v != [] and v != {}
        case Op.CONTAINS:
            assert isinstance(target, str)
            return lambda v: target in _as_text(v)
        case Op.EQ | Op.IN:
            wanted = target if isinstance(target, tuple) else (target,)
            if numeric:
                numbers = {float(w) for w in wanted if isinstance(w, int | float)}
                return lambda v: _as_number(v) in numbers
            if field.type is FieldType.BOOLEAN:
                return lambda v: isinstance(v, bool) and v in wanted
            return lambda v: isinstance(v, str) and v in wanted
        case Op.LT | Op.LE | Op.GT | Op.GE:
            assert isinstance(target, int | float)
            bound = float(target)
            compare: dict[Op, Callable[[float], bool]] = {
                Op.LT: lambda n: n < bound,
                Op.LE: lambda n: n <= bound,
                Op.GT: lambda n: n > bound,
                Op.GE: lambda n: n >= bound,
            }
            test = compare[pred.op]

            def ordered(v: Any) -> bool:
                number = _as_number(v)
                return number is not None and test(number)

            return ordered
    raise AssertionError(pred.op)  # pragma: no cover


def _compile(expr: Expr, catalog: FieldCatalog) -> EventPredicate:
    match expr:
        case Predicate():
            field = catalog[expr.field]
            matches = _matcher(expr, field)
            negated = expr.negated

            def leaf(event: Event) -> bool:
                return any(matches(v) for v in field_values(event, field)) != negated

            return leaf
        case And(items):
            parts = [_compile(item, catalog) for item in items]
            return lambda event: all(part(event) for part in parts)
        case Or(items):
            parts = [_compile(item, catalog) for item in items]
            return lambda event: any(part(event) for part in parts)
    raise TypeError(f"expected NNF, got {expr!r}")  # pragma: no cover


def to_python(expr: Expr | None, catalog: FieldCatalog) -> EventPredicate:
    """A predicate implementing the filter's semantics; ``None`` matches every event."""
    if expr is None:
        return lambda event: True
    return _compile(to_nnf(expr), catalog)
