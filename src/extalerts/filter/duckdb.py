"""Compile fields and filters to DuckDB SQL, for the local evaluation engine.

The engine reads Logpush NDJSON with ``read_json`` into typed top-level columns, keeping the nested
ones (``Event``, ``Logs``, ``Exceptions``, ``ScriptTags``, ``ScriptVersion``) as JSON. Each field a
rule uses becomes one column of the engine's table (:func:`select_fields`), computed once; filters
then compile to boolean SQL over the computed columns (:func:`to_duckdb`).

Semantics match :mod:`extalerts.filter.python` (the reference): a predicate on a missing field is
false, ``not`` negates, a list predicate holds for any element, text matching is case-sensitive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from extalerts.fields import (
    ARRAY,
    STRUCTURED_LINE_LEVEL,
    STRUCTURED_LINE_MAX_CHARS,
    STRUCTURED_LINE_SEPARATOR,
    Field,
    FieldType,
)
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
#: The event time: the scan's timestamp, read as a number, so its JSON type is checked apart.
TIMESTAMP_COLUMN = "EventTimestampMs"


def type_checked(field: Field) -> bool:
    """Whether the engine counts ``field``'s values of another JSON type than its own: a field at one
    fixed place of the event, outside lists and the structured line."""
    path = field.paths[0]
    return (
        not field.is_derived
        and len(field.paths) == 1
        and ARRAY not in path
        and (path[0] in SCALAR_COLUMNS or path[0] in JSON_COLUMNS)
    )


def checked_in_scan(field: Field) -> bool:
    """Whether both readings flag ``field``'s values of another JSON type as they read them, in the
    column ``_t_<its column>``: every :func:`type_checked` field but the event time."""
    return type_checked(field) and field.paths[0] != (TIMESTAMP_COLUMN,)


def exact_columns(fields: Sequence[Field]) -> dict[str, str]:
    """The ``read_json`` columns of the exact reading: :data:`SCALAR_COLUMNS` typed, but as JSON those
    whose type the scan checks, and :data:`JSON_COLUMNS` as JSON."""
    checked = {field.paths[0][0] for field in fields if checked_in_scan(field)}
    scalars = {name: "JSON" if name in checked else kind for name, kind in SCALAR_COLUMNS.items()}
    return {**scalars, **dict.fromkeys(JSON_COLUMNS, "JSON")}


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


#: The ``Message`` of the first ``Logs`` entry whose ``Level`` is ``log`` (JSON), for the exact reading.
_FIRST_LOG_MESSAGE = (
    "json_extract(list_filter(json_extract(\"Logs\", '$[*]'), "
    f"lambda e: json_extract_string(e, '$.Level') = '{STRUCTURED_LINE_LEVEL}')[1], '$.Message')"
)


def structured_line_text(message: str) -> str:
    """SQL of the structured line's text (README, "Structured log line") for the exact reading, given
    the SQL of the first ``log`` entry's ``Message`` as JSON: its strings joined with ``,``, or the
    single string; NULL when it holds anything else. :func:`line_values` then keeps a JSON object of
    at most :data:`~extalerts.fields.STRUCTURED_LINE_MAX_CHARS` characters, as
    :func:`extalerts.filter.python.structured_line` does."""
    # json_structure is ["VARCHAR"] for an array of strings and nulls; nulls are told apart after.
    strings = f"json_transform({message}, '[\"VARCHAR\"]')"
    joined = f"array_to_string(ps, {sql_string(STRUCTURED_LINE_SEPARATOR)})"
    return (
        f"CASE json_structure({message}) "
        f"WHEN '[\"VARCHAR\"]' THEN list_transform([{strings}], "
        f"lambda ps: CASE WHEN list_count(ps) = len(ps) THEN {joined} END)[1] "
        f"WHEN '\"VARCHAR\"' THEN json_extract_string({message}, '$') END"
    )


def line_values(text: str, derived: Sequence[Field]) -> str:
    """The derived keys of the structured line, in one parse of the line's ``text``: each as its JSON
    text, or, for a key only numbers read, as text (a string as itself, anything else as its JSON
    text, which converts to a number exactly when the JSON text would); NULL unless the text is a
    JSON object of at most :data:`~extalerts.fields.STRUCTURED_LINE_MAX_CHARS` characters. The one
    definition both readings use. A text that is not JSON fails the transform (TRY makes it NULL):
    json_transform accepts exactly what json_valid does, so the line is parsed once."""
    # JSON allows these four before a value.
    blanks = sql_string(" \t\n\r")
    structure = json.dumps({key: "VARCHAR" if key in _numeric_keys(derived) else "JSON" for key in _keys(derived)})
    return (
        f"CASE WHEN length({text}) <= {STRUCTURED_LINE_MAX_CHARS} AND starts_with(ltrim({text}, {blanks}), '{{') "
        f"THEN TRY(json_transform({text}, {sql_string(structure)})) END"
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


def select_fields(fields: Sequence[tuple[Field, str]], scan: str, carry: Sequence[str] = ()) -> str:
    """``SELECT`` of the event time as ``ts``, each field as its column, ``_variant`` (false), and the
    ``carry`` columns, from ``scan`` reading :data:`SCALAR_COLUMNS` and :data:`JSON_COLUMNS`. This is
    the exact reading: it accepts every casing and shape the reference semantics accept.

    Built in layers, so the costly parts run once per event whatever the number of fields: the
    messages, the structured line (:func:`structured_line`), then one parse of that line for every
    derived field."""
    derived = [field for field, _ in fields if field.is_derived]
    if any(field.name == "Logs.Message" for field, _ in fields):
        scan = f"(SELECT *, {MESSAGES} AS _messages FROM {scan})"
    if derived:
        scan = f"(SELECT *, {_FIRST_LOG_MESSAGE} AS _message FROM {scan})"
        scan = f"(SELECT *, {structured_line_text('_message')} AS _line FROM {scan})"
        scan = f"(SELECT *, {line_values('_line', derived)} AS _values FROM {scan})"
    computed = []
    for field, column in fields:
        if field.is_derived:
            expression = _derived_value(field, derived)
        elif field.name == "Logs.Message":
            expression = "_messages"
        elif checked_in_scan(field) and len(field.paths[0]) == 1:
            expression = _scalar_from_json(quote_identifier(field.paths[0][0]), field.type)
        else:
            expression = _event_field(field)
        computed.append(f", {expression} AS {column}")
    flags = _type_flags(fields)
    return f'SELECT "EventTimestampMs" AS ts{"".join(computed)}, false AS _variant{flags}{_carried(carry)} FROM {scan}'


def _carried(columns: Sequence[str]) -> str:
    """Columns of the scan passed through unchanged (the engine's input file number)."""
    return "".join(f", {column}" for column in columns)


def _keys(derived: Sequence[Field]) -> list[str]:
    return list(dict.fromkeys(field.derived_key or "" for field in derived))


def _numeric_keys(derived: Sequence[Field]) -> set[str]:
    """Keys of the structured line that only numbers read (see :func:`line_values`)."""
    others = {field.derived_key for field in derived if not field.type.is_numeric}
    return {key for key in _keys(derived) if key not in others}


def _derived_value(field: Field, derived: Sequence[Field]) -> str:
    value = f"_values.{quote_identifier(field.derived_key or '')}"
    if field.derived_key in _numeric_keys(derived):
        # As text already (see line_values): the cast is what the JSON text's would give.
        return f"TRY_CAST({value} AS DOUBLE)"
    return _from_json_text(value, field.type)


def _from_json_text(json_sql: str, field_type: FieldType) -> str:
    """A JSON value read as the field's type; a value of another JSON type is NULL, as in the
    reference semantics (where numbers also accept numeric text)."""
    text = f"CAST({json_sql} AS VARCHAR)"
    if field_type.is_numeric:
        return f"TRY_CAST({_as_text(json_sql)} AS DOUBLE)"
    if field_type is FieldType.BOOLEAN:
        return f"CASE {text} WHEN 'true' THEN true WHEN 'false' THEN false END"
    # Only a string: its JSON text opens with a quote.
    return f"CASE WHEN starts_with({text}, '\"') THEN {_as_text(json_sql)} END"


#: Arrays of objects read as lists of typed structs by the typed reading, with the keys it reads.
_STRUCT_LISTS = {"Logs": ("Level", "Message"), "Exceptions": ("Name", "Message")}
#: Objects whose fields the typed reading reads as JSON values, typed afterwards.
_OBJECTS = ("Event", "ScriptVersion")


def typed_columns(fields: Sequence[Field]) -> dict[str, str] | None:
    """The ``read_json`` columns of the typed reading of ``fields``: only what they read, typed to the
    shapes Logpush writes, so DuckDB builds no JSON text. None when a field has a path they do not cover."""
    columns: dict[str, str] = {"EventTimestampMs": SCALAR_COLUMNS["EventTimestampMs"]}
    objects: dict[str, dict[str, Any]] = {}
    lists: dict[str, dict[str, str]] = {}
    # The structured line needs to tell a string from an object among the messages: then each
    # message is read as its JSON text, decoded afterwards.
    message_type = "JSON[]" if any(field.is_derived for field in fields) else "VARCHAR[]"
    for field in fields:
        if field.is_derived:
            lists.setdefault("Logs", {}).update({"Level": "VARCHAR", "Message": message_type})
            continue
        if field.name == "Logs.Message":
            lists.setdefault("Logs", {})["Message"] = message_type
            continue
        path = field.paths[0]
        if len(path) == 1 and path[0] in SCALAR_COLUMNS:
            # A number the scan checks is read as JSON, whose text tells a number from anything else.
            # Text is read as text: a string as itself, anything else as its JSON text, which is
            # what the exact reading has too; an event where it may not have been a string is read
            # again the exact way (see select_typed_fields).
            numeric = checked_in_scan(field) and field.type.is_numeric
            columns[path[0]] = "JSON" if numeric else SCALAR_COLUMNS[path[0]]
        elif path == ("ScriptTags", ARRAY):
            columns["ScriptTags"] = "VARCHAR[]"
        elif len(path) == 3 and path[1] == ARRAY and path[2] in _STRUCT_LISTS.get(path[0], ()):
            lists.setdefault(path[0], {})[path[2]] = "VARCHAR"
        elif len(path) > 1 and path[0] in _OBJECTS and ARRAY not in path:
            node = objects.setdefault(path[0], {})
            for step in path[1:-1]:
                node = node.setdefault(step, {})
            # As JSON, which tells a string from a number: text fields keep only strings; numbers
            # convert as a DOUBLE column would (numeric text converts too, as the reference reads
            # numbers; as for the top-level numbers of both readings, a boolean reads as 1 or 0).
            node[path[-1]] = "JSON"
        else:
            return None
    for name, tree in objects.items():
        columns[name] = _struct_type(tree)
    for name, keys in lists.items():
        columns[name] = "STRUCT(" + ", ".join(f"{quote_identifier(k)} {t}" for k, t in keys.items()) + ")[]"
    return columns


def _struct_type(tree: dict[str, Any]) -> str:
    members = (f"{quote_identifier(k)} {v if isinstance(v, str) else _struct_type(v)}" for k, v in tree.items())
    return "STRUCT(" + ", ".join(members) + ")"


def select_typed_fields(fields: Sequence[tuple[Field, str]], scan: str, carry: Sequence[str] = ()) -> str:
    """As :func:`select_fields`, from ``scan`` reading :func:`typed_columns`. ``_variant`` is true for
    an event those columns cannot hold exactly (a lowercase key, a message that is one string rather
    than an array, an entry without the key), and for one where a field the scan checks may hold a
    value of another JSON type than its own: such input is read again the exact way, which counts
    those values. So the typed reading converts only values of the field's own type, and flags no
    type (its ``_t_`` columns are false). Not flagged, so read differently from the exact way: an
    entry holding both ``Message`` and ``message`` (only ``Message`` is read)."""
    entries: dict[tuple[str, str], str] = {}  # (list column, key) -> the column of that key's values
    derived = [field for field, _ in fields if field.is_derived]
    for field, _ in fields:
        if field.is_derived or field.name == "Logs.Message":
            entries["Logs", "Message"] = "_e_Logs_Message"
        elif field.paths[0][0] in _STRUCT_LISTS:
            name, _, key = field.paths[0]
            entries[name, key] = f"_e_{name}_{key}"
    if entries:
        # Messages read as JSON texts (for the structured line) are decoded as the exact reading has
        # them: strings as themselves, anything else as its JSON text. A Message that is not an
        # array is NULL, so the event is read again the exact way.
        decoded = {("Logs", "Message"): f'list_transform(x."Message", lambda m: {_as_text("m")})'} if derived else {}
        lists = ", ".join(
            f"{_entries(name, key, decoded.get((name, key)))} AS {column}" for (name, key), column in entries.items()
        )
        scan = f"(SELECT *, {lists} FROM {scan})"
    # An entry without the key shows as NULL among the values, which list_count leaves out.
    variants = [
        f"coalesce(list_count({column}) < len({quote_identifier(name)}), false)"
        for (name, _), column in entries.items()
    ]
    if any(field.name == "Logs.Message" for field, _ in fields):
        scan = f"(SELECT *, flatten(_e_Logs_Message) AS _messages FROM {scan})"
    if derived:
        # The structured line from the messages decoded above: the Logs JSON is parsed once, by the read.
        first_log = f'list_position(list_transform("Logs", lambda e: e."Level"), \'{STRUCTURED_LINE_LEVEL}\')'
        scan = f"(SELECT *, {first_log} AS _first_log FROM {scan})"
        message = '"Logs"[_first_log]."Message"'
        # Strings only: each element's JSON text opens with a quote (a null element is NULL, left out).
        strings_only = f"len(list_filter({message}, lambda m: starts_with(m, '\"'))) = len({message})"
        joined = f"array_to_string(_e_Logs_Message[_first_log], {sql_string(STRUCTURED_LINE_SEPARATOR)})"
        scan = f"(SELECT *, CASE WHEN {strings_only} THEN {joined} END AS _line FROM {scan})"
        scan = f"(SELECT *, {line_values('_line', derived)} AS _values FROM {scan})"
    computed = []
    for field, column in fields:
        path = field.paths[0]
        if field.is_derived:
            expression = _derived_value(field, derived)
        elif field.name == "Logs.Message":
            expression = "_messages"
        elif path[0] in _STRUCT_LISTS:
            expression = entries[path[0], path[2]]
        elif path[0] in _OBJECTS:
            value = ".".join(quote_identifier(step) for step in path)
            expression = _number_from_json(value) if field.type.is_numeric else _from_json_text(value, field.type)
        elif checked_in_scan(field) and field.type.is_numeric:
            expression = _number_from_json(quote_identifier(path[0]))
        else:
            expression = quote_identifier(path[0])
        computed.append(f", {expression} AS {column}")
    variants += [_maybe_other_type(field) for field, _ in fields if checked_in_scan(field)]
    variant = " OR ".join(variants) or "false"
    flags = "".join(f", false AS _t_{column}" for field, column in fields if checked_in_scan(field))
    return (
        f'SELECT "EventTimestampMs" AS ts{"".join(computed)}, {variant} AS _variant{flags}{_carried(carry)} FROM {scan}'
    )


def _number_from_json(json_sql: str) -> str:
    """A number read as JSON, converted: what the exact reading has for every value of the number's
    own JSON type (a value of another type makes the event a variant, read the exact way)."""
    return f"TRY_CAST(CAST({json_sql} AS VARCHAR) AS DOUBLE)"


#: First characters of the JSON text of a value that is not a string: a number, ``[`` or ``{``
#: (``true`` and ``false`` are compared whole). Codes, so that the test reads one character.
_NUMBER_FIRST = (ord("-"), ord("9"))
_OPENING = (ord("["), ord("{"))


def _maybe_other_type(field: Field) -> str:
    """SQL true when the typed reading's value of ``field`` (a :func:`checked_in_scan` field) may be
    of another JSON type than the field's. Numbers are read as JSON, whose text tells (see
    :func:`type_mismatch`). Text is read as text, where a string and the JSON text of another value
    look alike: any text that could be a number, ``true``, ``false``, an array or an object counts
    (a string such as "42" too: its event is read again the exact way, which tells them apart)."""
    path = field.paths[0]
    value = ".".join(quote_identifier(step) for step in path)
    if field.type.is_numeric or len(path) > 1:
        return f"({type_mismatch(value, field.type)})"
    low, high = _NUMBER_FIRST
    return (
        f"coalesce(ascii({value}) BETWEEN {low} AND {high} OR ascii({value}) IN {_OPENING} "
        f"OR {value} IN ('true', 'false'), false)"
    )


def _scalar_from_json(json_sql: str, field_type: FieldType) -> str:
    """A value read as JSON text, converted as a ``read_json`` column of the field's type converts it:
    text keeps a string as itself and anything else as its JSON text; a number also reads numeric
    text, and a boolean as 1 or 0."""
    if not field_type.is_numeric:
        return _as_text(json_sql)
    text = f"CAST({json_sql} AS VARCHAR)"
    return f"CASE {text} WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 ELSE TRY_CAST({_as_text(json_sql)} AS DOUBLE) END"


def type_mismatch(json_sql: str, field_type: FieldType) -> str:
    """SQL true when the JSON text ``json_sql`` is a value of another JSON type than the field's (a
    JSON null, SQL NULL or ``null``, is no value). The first character tells the type."""
    text = f"CAST({json_sql} AS VARCHAR)"
    if field_type.is_numeric:
        return f"coalesce(left({text}, 1) IN ('\"', 't', 'f', '{{', '['), false)"
    if field_type is FieldType.BOOLEAN:
        return f"coalesce({text} NOT IN ('true', 'false', 'null'), false)"
    if field_type is FieldType.STRING_LIST:
        return f"coalesce(NOT starts_with({text}, '[') AND {text} <> 'null', false)"
    return f"coalesce(NOT starts_with({text}, '\"') AND {text} <> 'null', false)"


def _type_flags(fields: Sequence[tuple[Field, str]]) -> str:
    """``, <mismatch> AS _t_<column>`` for each field whose type the scan checks (:func:`checked_in_scan`),
    from the exact reading's JSON text of it."""
    flags = []
    for field, column in fields:
        if not checked_in_scan(field):
            continue
        path = field.paths[0]
        value = quote_identifier(path[0])
        if len(path) > 1:
            value = f"json_extract({value}, {sql_string(_json_path(path[1:]))})"
        flags.append(f", {type_mismatch(value, field.type)} AS _t_{column}")
    return "".join(flags)


def _as_text(element: str) -> str:
    """An element read as JSON, as text: a string as itself, anything else as its JSON text (a JSON
    null is SQL NULL). json_extract_string at the root does exactly that, in one call (and decodes a
    string more cheaply than slicing its quotes off: DuckDB slices by characters, not bytes)."""
    return f"json_extract_string({element}, '$')"


def _entries(name: str, key: str, value: str | None = None) -> str:
    return f"list_transform({quote_identifier(name)}, lambda x: {value or 'x.' + quote_identifier(key)})"


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
            parts.append(_from_json_text(f"json_extract({column}, {sql_string(rest)})", field.type))
    if field.type is FieldType.STRING_LIST:
        return parts[0] if len(parts) == 1 else f"list_concat({', '.join(parts)})"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


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
            if is_list:
                return f"len(list_filter({column}, lambda x: x <> '')) > 0"
            # A number or a boolean column holds only values of its type ('' would not convert to it).
            return f"{column} <> ''" if field.type is FieldType.STRING else f"{column} IS NOT NULL"
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
