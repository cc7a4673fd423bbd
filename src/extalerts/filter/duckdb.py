"""Compile fields and filters to DuckDB SQL, for the local evaluation engine.

The engine reads Logpush NDJSON with ``read_json`` into typed top-level columns, keeping the nested
ones (``Event``, ``Logs``, ``Exceptions``, ``ScriptTags``, ``ScriptVersion``) as JSON. Each field a
rule uses becomes one column of the engine's table (:func:`select_fields`), computed once; filters
then compile to boolean SQL over the computed columns (:func:`to_duckdb`).

Semantics match :mod:`extalerts.filter.python` (the reference): a predicate on a missing field is
false, ``not`` negates, a list predicate holds for any element, text matching is case-sensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from extalerts.fields import ARRAY, Field, FieldType
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, Scalar, to_nnf
from extalerts.numbers import format_number

#: Top-level columns read as SQL scalars; everything else is read as JSON.
SCALAR_COLUMNS = {
    "CPUTimeMs": "DOUBLE",
    "WallTimeMs": "DOUBLE",
    "EventTimestampMs": "BIGINT",
    "DispatchNamespace": "VARCHAR",
    "Entrypoint": "VARCHAR",
    "EventType": "VARCHAR",
    "Outcome": "VARCHAR",
    "ScriptName": "VARCHAR",
}
JSON_COLUMNS = ("Event", "Logs", "Exceptions", "ScriptTags", "ScriptVersion")

#: The messages of an event, as a list of text: array entries (objects as their JSON text), and
#: entries whose Message is a single string rather than an array. Logpush writes `Message`; the other
#: spellings (`message`, a bare string) are read only when a cheap text test finds them, because every
#: extraction re-parses the Logs JSON and this expression dominates the cost of reading events.
MESSAGES = (
    "list_concat("
    "json_extract_string(\"Logs\", '$[*].Message[*]'), "
    'CASE WHEN contains("Logs", \'"Message":"\') '
    "THEN list_filter(json_extract_string(\"Logs\", '$[*].Message'), lambda x: NOT starts_with(x, '[')) "
    "ELSE [] END, "
    'CASE WHEN contains("Logs", \'"message":\') THEN list_concat('
    "json_extract_string(\"Logs\", '$[*].message[*]'), "
    "list_filter(json_extract_string(\"Logs\", '$[*].message'), lambda x: NOT starts_with(x, '['))) "
    "ELSE [] END)"
)


#: The structured log line: the first message that is a JSON object. Only events whose Logs hold an
#: object inside a message (as JSON text, or as an object element) are searched.
def structured_line(messages: str) -> str:
    """The structured line, given the SQL of the event's messages (:data:`MESSAGES` or a column of them)."""
    return (
        'CASE WHEN contains("Logs", \'{\\"\') OR contains("Logs", \'":[{\') '
        f"THEN list_filter({messages}, lambda x: starts_with(ltrim(x), '{{') AND json_valid(x))[1] END"
    )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(steps: tuple[str, ...]) -> str:
    path = "$"
    for step in steps:
        path += "[*]" if step == ARRAY else "." + step
    return path


def _typed(text_sql: str, json_sql: str, field_type: FieldType) -> str:
    """Cast extracted JSON to the field's type; a value of another JSON type becomes NULL."""
    if field_type.is_numeric:
        return f"TRY_CAST({text_sql} AS DOUBLE)"
    if field_type is FieldType.BOOLEAN:
        return f"CASE WHEN json_type({json_sql}) = 'BOOLEAN' THEN {text_sql} = 'true' END"
    return f"CASE WHEN json_type({json_sql}) = 'VARCHAR' THEN {text_sql} END"


def select_fields(fields: Sequence[tuple[Field, str]], scan: str) -> str:
    """``SELECT`` of the event time as ``ts`` and each field as its column, from ``scan``.

    Built in layers, so the costly parts run once per event whatever the number of fields: the
    messages, then the structured line found among them, then one parse of that line for every
    derived field."""
    derived = [(field, column) for field, column in fields if field.is_derived]
    if derived or any(field.name == "Logs.Message" for field, _ in fields):
        scan = f"(SELECT *, {MESSAGES} AS _messages FROM {scan})"
    if derived:
        paths = ", ".join(sql_string(f"$.{quote_key(field.derived_key or '')}") for field, _ in derived)
        scan = f"(SELECT *, {structured_line('_messages')} AS _line FROM {scan})"
        scan = f"(SELECT *, json_extract(_line, [{paths}]) AS _values FROM {scan})"
    position = {column: index for index, (_, column) in enumerate(derived, start=1)}
    computed = []
    for field, column in fields:
        if field.is_derived:
            value = f"_values[{position[column]}]"
            expression = _typed(f"json_extract_string({value}, '$')", value, field.type)
        elif field.name == "Logs.Message":
            expression = "_messages"
        else:
            expression = _event_field(field)
        computed.append(f", {expression} AS {column}")
    return f'SELECT "EventTimestampMs" AS ts{"".join(computed)} FROM {scan}'


def _event_field(field: Field) -> str:
    """SQL reading a Logpush field (a list for list fields) from the scanned columns."""
    first = field.paths[0][0]
    if len(field.paths) == 1 and len(field.paths[0]) == 1 and first in SCALAR_COLUMNS:
        return quote_identifier(first)
    parts = []
    for steps in field.paths:
        column, rest = quote_identifier(steps[0]), _json_path(steps[1:])
        if field.type is FieldType.STRING_LIST:
            parts.append(f"json_extract_string({column}, {sql_string(rest)})")
        else:
            text = f"json_extract_string({column}, {sql_string(rest)})"
            parts.append(_typed(text, f"json_extract({column}, {sql_string(rest)})", field.type))
    if field.type is FieldType.STRING_LIST:
        return parts[0] if len(parts) == 1 else f"list_concat({', '.join(parts)})"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def quote_key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else '"' + key + '"'


def _value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    return sql_string(value)


_ORDERING = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}


def _positive(pred: Predicate, field: Field, column: str) -> str:
    is_list = field.type is FieldType.STRING_LIST
    match pred.op:
        case Op.EXISTS:
            return f"len(list_filter({column}, lambda x: x <> '')) > 0" if is_list else f"{column} <> ''"
        case Op.CONTAINS:
            assert isinstance(pred.value, str)
            needle = sql_string(pred.value)
            if is_list:
                return f"len(list_filter({column}, lambda x: contains(x, {needle}))) > 0"
            return f"contains({column}, {needle})"
        case Op.EQ:
            assert pred.value is not None
            assert not isinstance(pred.value, tuple)
            if is_list:
                return f"list_contains({column}, {_value(pred.value)})"
            return f"{column} = {_value(pred.value)}"
        case Op.IN:
            assert isinstance(pred.value, tuple)
            values = ", ".join(_value(v) for v in pred.value)
            return f"list_has_any({column}, [{values}])" if is_list else f"{column} IN ({values})"
        case Op.LT | Op.LE | Op.GT | Op.GE:
            assert isinstance(pred.value, int | float)
            return f"{column} {_ORDERING[pred.op]} {_value(pred.value)}"
    raise AssertionError(pred.op)  # pragma: no cover


def _compile(expr: Expr, field_of: Callable[[str], Field], column_of: Callable[[str], str]) -> str:
    match expr:
        case Predicate():
            # COALESCE makes a missing value (NULL) false, so NOT stays two-valued.
            positive = f"COALESCE({_positive(expr, field_of(expr.field), column_of(expr.field))}, false)"
            return f"(NOT {positive})" if expr.negated else positive
        case And(items) | Or(items):
            joiner = " AND " if isinstance(expr, And) else " OR "
            return "(" + joiner.join(_compile(item, field_of, column_of) for item in items) + ")"
    raise TypeError(f"expected NNF, got {expr!r}")  # pragma: no cover


def to_duckdb(expr: Expr, field_of: Callable[[str], Field], column_of: Callable[[str], str]) -> str:
    """Boolean SQL for ``expr``, reading each field from the column ``column_of(name)``."""
    return _compile(to_nnf(expr), field_of, column_of)
