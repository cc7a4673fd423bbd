"""Property and example tests for the filter language: parser, checker and every backend.

Random, type-correct ASTs are built over the real field catalog (plus three derived fields) and
compiled to every backend; random Workers Trace Events are fed to the Python predicate, which is the
reference semantics (``extalerts.filter.ast``). Every property runs derandomized, so a failure is
reproducible: rerun the file and hypothesis prints the same falsifying example.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extalerts.errors import CannotPushDownError, FilterFieldError, FilterSyntaxError
from extalerts.fields import ARRAY, Field, FieldCatalog, FieldType, derived_field
from extalerts.filter import check, parse
from extalerts.filter.ast import ORDERING_OPS, And, Expr, Not, Op, Or, Predicate, Scalar, predicates, to_nnf
from extalerts.filter.datadog import SPECIAL_CHARS, to_datadog
from extalerts.filter.logpush import MAX_BYTES, MAX_OPERATORS, to_logpush, to_logpush_string
from extalerts.filter.python import to_python
from extalerts.filter.splunk import to_splunk
from extalerts.filter.splunk_terms import base_search_terms, required_terms
from extalerts.render.datadog_query import check_search, parse_monitor_query, quote_query_argument
from extalerts.render.splunk import check_spl

# --------------------------------------------------------------------------------------------- catalog

DERIVED: tuple[Field, ...] = (
    derived_field("op_ok", "ok", FieldType.BOOLEAN, "false when the operation failed after retries"),
    derived_field("op_duration_ms", "duration_ms", FieldType.NUMBER, "operation latency"),
    derived_field("op_error_code", "error_code", FieldType.STRING, "error code of the operation"),
)
CATALOG = FieldCatalog(DERIVED)
FIELDS: tuple[Field, ...] = tuple(CATALOG.values())
LOGPUSH_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.logpush)
NOT_LOGPUSH_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if not f.logpush)
TEXT_TYPES = (FieldType.STRING, FieldType.STRING_LIST)

# A property runs this many examples; together the file stays well under 20 seconds.
FAST = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------- values

#: Strings chosen to break quoting and escaping in some backend; shared by filters and events so that
#: generated predicates actually match generated events now and then.
NASTY_STRINGS: tuple[str, ...] = (
    "",
    "ok",
    "exception",
    "fetch",
    "a",
    "b c",
    '"',
    "'",
    "\\",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    '\\"',
    " leading space",
    "two  spaces",
    "*",
    "a*b",
    "?",
    ":",
    "key:value",
    "(",
    ")",
    "(paren)",
    "[x]",
    "{y}",
    "a|b",
    "a||b",
    "^$",
    ".*",
    "a.b",
    "+-=&|><!~",
    "ünïcødé",
    "日本語",
    "emoji 🚀",
    "tab\there",
    "new\nline",
    "ERROR_CODE_INVALID_URL",
    "AND",
    "OR",
    "NOT",
    "true",
    "500",
    "-1",
    "/path?q=1&r=2",
    "“curly”",
    "#hash",
    "%s",
)
NASTY_ALPHABET = st.sampled_from(list("ab Z9_.\"'\\*:()[]{}|.^$?+-/!<>=&~#@,\t\r\nü日"))
TEXT: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(NASTY_ALPHABET, max_size=8),
    st.text(max_size=5),
)
SHORT_TEXT: st.SearchStrategy[str] = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(NASTY_ALPHABET, max_size=5))
INTEGERS: st.SearchStrategy[int] = st.one_of(
    st.sampled_from([0, 1, 5, 10, 200, 404, 500, 503, -3]),
    st.integers(min_value=-(10**6), max_value=10**12),
)
FLOATS: st.SearchStrategy[float] = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


def value_strategy(ftype: FieldType, text: st.SearchStrategy[str] = TEXT) -> st.SearchStrategy[Scalar]:
    """A value ``check`` accepts for a field of this type in ``==`` / ``in``."""
    if ftype in TEXT_TYPES:
        return text
    if ftype is FieldType.BOOLEAN:
        return st.booleans()
    if ftype is FieldType.INTEGER:
        # Integral floats are allowed on integer fields (``Status == 500.0``).
        return st.one_of(INTEGERS, INTEGERS.map(float))
    return st.one_of(INTEGERS, FLOATS)


def ordering_strategy(ftype: FieldType) -> st.SearchStrategy[Scalar]:
    """A bound for ``< <= > >=``; ``check`` only takes whole numbers on integer fields (see the report)."""
    return INTEGERS if ftype is FieldType.INTEGER else st.one_of(INTEGERS, FLOATS)


def allowed_ops(field: Field) -> tuple[Op, ...]:
    """Operators ``_check_predicate`` accepts for the field's type."""
    ops = [Op.EQ, Op.IN, Op.EXISTS]
    if field.type in TEXT_TYPES:
        ops.append(Op.CONTAINS)
    if field.type.is_numeric:
        ops.extend(sorted(ORDERING_OPS))
    return tuple(ops)


def logpush_ops(field: Field) -> tuple[Op, ...]:
    """Operators Logpush can take: no ``exists``, and lists only with ``contains``."""
    if field.type is FieldType.STRING_LIST:
        return (Op.CONTAINS,)
    return tuple(op for op in allowed_ops(field) if op is not Op.EXISTS)


# --------------------------------------------------------------------------------------------- ASTs


@st.composite
def predicate_st(
    draw: st.DrawFn,
    fields: tuple[Field, ...] = FIELDS,
    ops_for: Callable[[Field], tuple[Op, ...]] = allowed_ops,
    text: st.SearchStrategy[str] = TEXT,
    max_in: int = 4,
) -> Predicate:
    field = draw(st.sampled_from(fields))
    op = draw(st.sampled_from(ops_for(field)))
    value: Scalar | tuple[Scalar, ...] | None
    if op is Op.EXISTS:
        value = None
    elif op is Op.CONTAINS:
        value = draw(text)
    elif op in ORDERING_OPS:
        value = draw(ordering_strategy(field.type))
    elif op is Op.IN:
        value = tuple(draw(st.lists(value_strategy(field.type, text), min_size=1, max_size=max_in)))
    else:
        value = draw(value_strategy(field.type, text))
    return Predicate(field.name, op, value, negated=draw(st.booleans()))


def expr_st(leaf: st.SearchStrategy[Predicate], max_leaves: int = 6) -> st.SearchStrategy[Expr]:
    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        items = st.lists(children, min_size=2, max_size=3).map(tuple)
        return st.one_of(items.map(And), items.map(Or), children.map(Not))

    base: st.SearchStrategy[Expr] = leaf
    return st.recursive(base, extend, max_leaves=max_leaves)


PREDICATES = predicate_st()
EXPRS = expr_st(PREDICATES)
LOGPUSH_PREDICATES = predicate_st(LOGPUSH_FIELDS, logpush_ops, SHORT_TEXT, max_in=3)
LOGPUSH_EXPRS = expr_st(LOGPUSH_PREDICATES)


def without_offsets(expr: Expr) -> Expr:
    match expr:
        case Predicate():
            return replace(expr, offset=0)
        case Not(item):
            return Not(without_offsets(item))
        case And(items):
            return And(tuple(without_offsets(i) for i in items))
        case Or(items):
            return Or(tuple(without_offsets(i) for i in items))
    raise TypeError(expr)


# --------------------------------------------------------------------------------------------- events

MAYBE = st.integers(min_value=0, max_value=4)  # 0: the key is left out (one time in five)


def _put(draw: st.DrawFn, out: dict[str, Any], key: str, strategy: st.SearchStrategy[Any], always: bool) -> None:
    if always or draw(MAYBE):
        out[key] = draw(strategy)


@st.composite
def structured_line_st(draw: st.DrawFn) -> str:
    """A Worker's structured log line, as the JSON text Logpush ships in ``Logs[].Message``."""
    line: dict[str, Any] = {"event": "do_op", "op": draw(st.sampled_from(["store", "retrieve", "delete"]))}
    _put(draw, line, "ok", st.one_of(st.booleans(), st.none()), False)
    _put(draw, line, "duration_ms", st.one_of(INTEGERS, FLOATS, st.none()), False)
    _put(draw, line, "error_code", st.one_of(TEXT, st.none()), False)
    return json.dumps(line)


MESSAGE = st.one_of(TEXT, INTEGERS, structured_line_st(), st.just("{not json"))


@st.composite
def log_entry_st(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    _put(draw, entry, "Level", st.sampled_from(["log", "info", "warn", "error", "debug"]), False)
    _put(draw, entry, "Message", st.lists(MESSAGE, max_size=3), False)
    _put(draw, entry, "TimestampMs", INTEGERS, False)
    return entry


@st.composite
def exception_st(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    _put(draw, entry, "Name", st.one_of(st.sampled_from(["Error", "TypeError"]), TEXT), False)
    _put(draw, entry, "Message", TEXT, False)
    _put(draw, entry, "TimestampMs", INTEGERS, False)
    return entry


@st.composite
def event_st(draw: st.DrawFn, logpush_complete: bool = False) -> dict[str, Any]:
    """A Workers Trace Event with Logpush's casing; ``logpush_complete`` keeps every top-level field."""
    event: dict[str, Any] = {}
    always = logpush_complete
    text = SHORT_TEXT
    for key in ("CPUTimeMs", "WallTimeMs", "EventTimestampMs"):
        _put(draw, event, key, INTEGERS, always)
    _put(draw, event, "Outcome", st.one_of(st.sampled_from(["ok", "exception", "canceled"]), text), always)
    _put(draw, event, "EventType", st.one_of(st.sampled_from(["fetch", "scheduled", "alarm"]), text), always)
    for key in ("ScriptName", "Entrypoint", "DispatchNamespace"):
        _put(draw, event, key, text, always)
    _put(draw, event, "ScriptTags", st.lists(text, max_size=3), always)
    version: dict[str, Any] = {}
    for key in ("ID", "Tag", "Message"):
        _put(draw, version, key, text, False)
    _put(draw, event, "ScriptVersion", st.just(version), False)
    request: dict[str, Any] = {}
    _put(draw, request, "URL", st.one_of(st.just("https://example.com/a?b=c"), text), False)
    _put(draw, request, "Method", st.sampled_from(["GET", "POST", "PUT"]), False)
    inner: dict[str, Any] = {}
    _put(draw, inner, "RayID", text, False)
    _put(draw, inner, "Request", st.just(request), False)
    _put(draw, inner, "Response", st.fixed_dictionaries({"Status": INTEGERS}), False)
    _put(draw, event, "Event", st.just(inner), False)
    _put(draw, event, "Logs", st.lists(log_entry_st(), max_size=3), False)
    _put(draw, event, "Exceptions", st.lists(exception_st(), max_size=2), False)
    return event


EVENTS = st.lists(event_st(), min_size=1, max_size=4)

# --------------------------------------------------------------------------------------------- oracle


def _json_object(message: Any) -> Mapping[str, Any] | None:
    if isinstance(message, Mapping):
        return message
    if isinstance(message, str) and message.lstrip().startswith("{"):
        try:
            decoded = json.loads(message)
        except ValueError:
            return None
        return decoded if isinstance(decoded, Mapping) else None
    return None


def _flatten(node: Any) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _flatten(item)
    elif node is not None:
        yield node


def oracle_values(event: Mapping[str, Any], field: Field) -> list[Any]:
    """The field's values, read by its dotted name (lists flattened at every step): independent of ``paths``."""
    if field.derived_key is not None:
        for entry in _flatten(event.get("Logs")):
            messages = entry.get("Message") if isinstance(entry, Mapping) else None
            for message in _flatten(messages):
                line = _json_object(message)
                if line is not None:
                    value = line.get(field.derived_key)
                    return [] if value is None else [value]
        return []
    nodes: list[Any] = [event]
    for step in field.name.split("."):
        nodes = [n[step] for n in nodes if isinstance(n, Mapping) and step in n]
        nodes = list(_flatten(nodes))
    return nodes


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def oracle_leaf(pred: Predicate, value: Any, ftype: FieldType) -> bool:
    """The AST module's documented semantics for one value of the field."""
    target = pred.value
    if pred.op is Op.EXISTS:
        return value not in ("", [], {})
    if pred.op is Op.CONTAINS:
        assert isinstance(target, str)
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return target in text
    if pred.op in ORDERING_OPS:
        assert _is_number(target)
        if not _is_number(value):
            return False
        outcomes = {Op.LT: value < target, Op.LE: value <= target, Op.GT: value > target, Op.GE: value >= target}
        return bool(outcomes[pred.op])
    wanted = target if isinstance(target, tuple) else (target,)
    if ftype.is_numeric:
        return _is_number(value) and any(value == w for w in wanted)
    if ftype is FieldType.BOOLEAN:
        return isinstance(value, bool) and any(value is w for w in wanted)
    return isinstance(value, str) and value in wanted


def oracle(expr: Expr, event: Mapping[str, Any]) -> bool:
    """Evaluates ``not`` where it stands (no NNF), predicates by the documented semantics."""
    match expr:
        case Predicate():
            field = CATALOG[expr.field]
            hit = any(oracle_leaf(expr, v, field.type) for v in oracle_values(event, field))
            return hit != expr.negated
        case Not(item):
            return not oracle(item, event)
        case And(items):
            return all(oracle(i, event) for i in items)
        case Or(items):
            return any(oracle(i, event) for i in items)
    raise TypeError(expr)


# ============================================================================================ checker


@FAST
@given(EXPRS)
def test_generated_asts_pass_check(expr: Expr) -> None:
    assert check(expr, CATALOG) == []


@FAST
@given(EXPRS)
def test_nnf_has_no_not_and_is_idempotent(expr: Expr) -> None:
    nnf = to_nnf(expr)

    def walk(node: Expr, parent: type | None) -> None:
        assert not isinstance(node, Not)
        if isinstance(node, And | Or):
            assert type(node) is not parent, "nested and/or of the same kind must be flattened"
            for item in node.items:
                walk(item, type(node))

    walk(nnf, None)
    assert to_nnf(nnf) == nnf
    assert [(p.field, p.op, p.value) for p in predicates(nnf)] == [(p.field, p.op, p.value) for p in predicates(expr)]


# ============================================================================================ parser


def filter_literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped + '"'


def to_filter_text(expr: Expr) -> str:
    """Writes an AST back as filter text (the parser's grammar), parenthesising every group."""
    match expr:
        case Predicate(field=field, op=op, value=value, negated=negated):
            if op is Op.EXISTS:
                text = f"exists({field})"
            elif op is Op.IN:
                assert isinstance(value, tuple)
                listed = ", ".join(filter_literal(v) for v in value)
                return f"{field} {'not in' if negated else 'in'} [{listed}]"
            elif op is Op.CONTAINS:
                assert isinstance(value, str)
                return f"{field} {'not contains' if negated else 'contains'} {filter_literal(value)}"
            elif op is Op.EQ:
                assert value is not None
                assert not isinstance(value, tuple)
                return f"{field} {'!=' if negated else '=='} {filter_literal(value)}"
            else:
                assert value is not None
                assert not isinstance(value, tuple)
                text = f"{field} {op.value} {filter_literal(value)}"
            return f"not {text}" if negated else text
        case Not(item):
            return f"not ({to_filter_text(item)})"
        case And(items):
            return " and ".join(f"({to_filter_text(i)})" for i in items)
        case Or(items):
            return " or ".join(f"({to_filter_text(i)})" for i in items)
    raise TypeError(expr)


@FAST
@given(EXPRS)
def test_parser_reads_back_what_the_printer_writes(expr: Expr) -> None:
    text = to_filter_text(expr)
    parsed = parse(text)
    assert without_offsets(to_nnf(parsed)) == without_offsets(to_nnf(expr))
    assert check(parsed, CATALOG) == []
    for pred in predicates(parsed):
        # The offset of each predicate points at its field name, or at `exists`.
        assert text.startswith(pred.field, pred.offset) or text.startswith(f"exists({pred.field})", pred.offset)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Outcome == "ok"', Predicate("Outcome", Op.EQ, "ok")),
        ("Outcome != 'o\\'k'", Predicate("Outcome", Op.EQ, "o'k", negated=True)),
        ('Logs[].Message contains "x"', Predicate("Logs.Message", Op.CONTAINS, "x")),
        ("Event.Response.Status >= 500", Predicate("Event.Response.Status", Op.GE, 500)),
        ("CPUTimeMs < 1.5e2", Predicate("CPUTimeMs", Op.LT, 150.0)),
        ("CPUTimeMs > -3", Predicate("CPUTimeMs", Op.GT, -3)),
        ('ScriptName not in ["a", "b",]', Predicate("ScriptName", Op.IN, ("a", "b"), negated=True)),
        ("exists(Exceptions[].Name)", Predicate("Exceptions.Name", Op.EXISTS, None)),
        ("op_ok == false", Predicate("op_ok", Op.EQ, False)),
        ('Outcome == "tab\\there\\nnew"', Predicate("Outcome", Op.EQ, "tab\there\nnew")),
    ],
)
def test_parse_examples(text: str, expected: Predicate) -> None:
    assert without_offsets(parse(text)) == expected


def test_parse_precedence_and_offsets() -> None:
    text = 'not Outcome == "ok" or ScriptName == "a" and exists(ScriptTags)'
    expr = parse(text)
    assert without_offsets(expr) == Or(
        (
            Not(Predicate("Outcome", Op.EQ, "ok")),
            And((Predicate("ScriptName", Op.EQ, "a"), Predicate("ScriptTags", Op.EXISTS, None))),
        )
    )
    assert [p.offset for p in predicates(expr)] == [4, 23, 45]


@pytest.mark.parametrize(
    ("text", "offset", "message", "hint"),
    [
        ('Outcome = "ok"', 8, "unexpected `=`", "`==`"),
        ("Outcome == ok", 11, "expected a value", 'string values need quotes: "ok"'),
        ('Outcome == "ok', 11, "unterminated string", 'close it with "'),
        ("Outcome == 'ok", 11, "unterminated string", "close it with '"),
        ('Outcome == "ok" and', 19, "found end of filter", ""),
        ("a and", 2, "expected a comparison", "exists(Field)"),
        ('Outcome == "ok" && CPUTimeMs > 1', 16, "unexpected `&&`", "`and`"),
        ('Outcome == "ok" || CPUTimeMs > 1', 16, "unexpected `||`", "`or`"),
        ('Outcome == "a\\q"', 13, "unknown escape", ""),
        ('(Outcome == "ok"', 16, "expected `)`", ""),
        ('Outcome == "ok")', 15, "expected `and`, `or` or the end", ""),
        ("", 0, "empty filter", "omit `filter`"),
        ('"ok" == Outcome', 0, "expected a field name", "starts with a field name"),
        ("ScriptName not == 1", 15, "expected `in` or `contains` after `not`", ""),
        ("Logs.Message contains 5", 22, "`contains` takes a quoted string", ""),
        ("ScriptName in []", 15, "expected a value", ""),
    ],
)
def test_syntax_errors(text: str, offset: int, message: str, hint: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert error.offset == offset, (error.offset, text[error.offset :])
    assert message in error.message
    assert hint in error.hint
    assert str(error).endswith(f"at character {offset + 1}")


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ('Outcom == "ok"', "unknown field `Outcom`", "did you mean `Outcome`?"),
        ('outcome == "ok"', "unknown field `outcome`", "did you mean `Outcome`?"),
        ("ScriptName > 5", "`>` needs a numeric field; `ScriptName` is string", "compare text with"),
        ('Event.Response.Status contains "5"', "`contains` needs a text field", ""),
        ('Event.Response.Status == "500"', "compare it with a number", ""),
        ("Outcome == 1", "is text; compare it with a quoted string", "known values: ok, exception"),
        ("op_ok == 1", "is a boolean", ""),
        ("CPUTimeMs == 1.5", "1.5 can never match", ""),
        ("CPUTimeMs in [1, true]", "compare it with a number", ""),
    ],
)
def test_check_errors(text: str, message: str, hint: str) -> None:
    problems = check(parse(text), CATALOG)
    assert len(problems) == 1
    assert isinstance(problems[0], FilterFieldError)
    assert message in problems[0].message
    assert hint in problems[0].hint
    assert problems[0].offset == 0


def test_check_reports_every_problem_with_its_offset() -> None:
    text = 'Outcome == "ok" and Outcom == "x" or ScriptName > 5'
    problems = check(parse(text), CATALOG)
    assert [p.offset for p in problems] == [20, 37]


def test_check_accepts_a_fractional_bound_on_an_integer_field() -> None:
    # Regression: `CPUTimeMs < 5.5` matches CPUTimeMs 0..5, but check() says "5.5 can never match": the
    # integer-only rule in _value_problem is meant for == / in and is applied to ordering operators too.
    assert check(parse("CPUTimeMs < 5.5"), CATALOG) == []


@pytest.mark.parametrize("text", ["op_duration_ms > 1e999", "op_duration_ms == -1e999"])
def test_check_rejects_infinite_numbers(text: str) -> None:
    # Regression: 1e999 parses to float('inf'); check() accepts it on a number field and every backend then
    # writes `Infinity` (invalid in Datadog search, a field name in SPL, invalid JSON for Logpush).
    assert check(parse(text), CATALOG) != []


# ============================================================================================ python


@FAST
@given(EXPRS, EVENTS)
def test_python_agrees_with_nnf_and_with_the_documented_semantics(expr: Expr, events: list[dict[str, Any]]) -> None:
    direct = to_python(expr, CATALOG)
    via_nnf = to_python(to_nnf(expr), CATALOG)
    for event in events:
        expected = oracle(expr, event)
        assert direct(event) == expected, event
        assert via_nnf(event) == expected, event


@SLOW
@given(EXPRS, EVENTS)
def test_python_not_is_negation(expr: Expr, events: list[dict[str, Any]]) -> None:
    positive = to_python(expr, CATALOG)
    negative = to_python(Not(expr), CATALOG)
    for event in events:
        assert positive(event) != negative(event)


# ============================================================================================ datadog


@FAST
@given(EXPRS)
def test_datadog_search_is_well_formed_and_survives_the_monitor_query(expr: Expr) -> None:
    text = to_datadog(expr, CATALOG)
    assert check_search(text) == [], text
    query = f'logs({quote_query_argument(text)}).index("*").rollup("count").last("5m") > 1'
    parsed = parse_monitor_query(query, "log alert")
    assert parsed.search == text


ASCII_SPACE = " \t\n\r\f\v"


class _DatadogTerm:
    """Reads the value part of ``@attr:<value>`` back, the way Datadog search would tokenise it."""

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def phrase(self) -> str:
        assert self.text[self.pos] == '"'
        out: list[str] = []
        self.pos += 1
        while self.text[self.pos] != '"':
            if self.text[self.pos] == "\\":
                self.pos += 1
            out.append(self.text[self.pos])
            self.pos += 1
        self.pos += 1
        return "".join(out)

    def bare(self) -> list[tuple[str, bool]]:
        """Characters up to unescaped whitespace or ``)``, each with whether it was escaped."""
        out: list[tuple[str, bool]] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                out.append((self.text[self.pos + 1], True))
                self.pos += 2
                continue
            if char in ASCII_SPACE or char == ")":
                break
            out.append((char, False))
            self.pos += 1
        return out

    def scalar(self) -> Scalar:
        """One ``==`` value: a phrase, a ``[n TO n]`` range, or a bare token."""
        if self.text[self.pos] == '"':
            return self.phrase()
        if self.text[self.pos] == "[":
            end = self.text.index("]", self.pos)
            low, to, high = self.text[self.pos + 1 : end].split(" ")
            assert to == "TO"
            assert low == high
            self.pos = end + 1
            return float(low)
        chars = self.bare()
        assert chars, "empty value"
        # A bare token: special characters only escaped, and not a keyword Datadog reads as an operator.
        assert all(escaped or c not in SPECIAL_CHARS for c, escaped in chars), chars
        assert [c for c, _ in chars] not in (list("AND"), list("OR"), list("NOT")), "a keyword written bare"
        return "".join(c for c, _ in chars)


def _datadog_value_matches(decoded: Scalar, value: Scalar) -> bool:
    if isinstance(value, bool):
        return decoded == ("true" if value else "false")
    if isinstance(value, int | float):
        return float(decoded) == value
    return decoded == value


def _read_datadog_term(reader: _DatadogTerm, pred: Predicate) -> None:
    text = reader.text
    match pred.op:
        case Op.EXISTS:
            assert text[reader.pos] == "*"
            reader.pos += 1
        case Op.EQ:
            assert pred.value is not None
            assert not isinstance(pred.value, tuple)
            assert _datadog_value_matches(reader.scalar(), pred.value)
        case Op.IN:
            assert isinstance(pred.value, tuple)
            assert text[reader.pos] == "("
            reader.pos += 1
            for index, value in enumerate(pred.value):
                if index:
                    assert text.startswith(" OR ", reader.pos)
                    reader.pos += 4
                assert _datadog_value_matches(reader.scalar(), value)
            assert text[reader.pos] == ")"
            reader.pos += 1
        case Op.CONTAINS:
            assert isinstance(pred.value, str)
            chars = reader.bare()
            assert chars[0] == ("*", False)
            assert chars[-1] == ("*", False)
            inner = chars[1:-1]
            # Only our own two `*` may act as syntax: every other special character is escaped.
            assert all(escaped or c not in SPECIAL_CHARS for c, escaped in inner)
            assert "".join(c for c, _ in inner) == pred.value
        case _:
            match = re.compile(r"(<=|>=|<|>)(-?\d+(?:\.\d+)?)").match(text, reader.pos)
            assert match is not None
            assert match.group(1) == pred.op.value
            assert float(match.group(2)) == pred.value
            reader.pos = match.end()


def read_back_datadog(pred: Predicate) -> None:
    """Decode each ``@attr:value`` term of a one-predicate search and compare it with the AST."""
    text = to_datadog(pred, CATALOG)
    attrs = CATALOG[pred.field].datadog_attributes()
    reader = _DatadogTerm(text, 0)
    values = pred.value if isinstance(pred.value, tuple) else ()
    if pred.op is Op.IN and any(not isinstance(v, bool) and isinstance(v, int | float) and v < 0 for v in values):
        # A negative number is a range, which a value group cannot hold: one term per attribute and value.
        prefix = "-(" if pred.negated else "("
        assert text.startswith(prefix), text
        reader.pos = len(prefix)
        for index, (attr, value) in enumerate((a, v) for a in attrs for v in values):
            if index:
                assert text.startswith(" OR ", reader.pos), text
                reader.pos += len(" OR ")
            assert text.startswith(f"@{attr}:", reader.pos), text
            reader.pos += len(f"@{attr}:")
            _read_datadog_term(reader, Predicate(pred.field, Op.EQ, value))
        assert reader.pos == len(text) - 1, f"unread text after the terms in {text!r}"
        return
    if len(attrs) > 1:
        assert text[0] == "("
        assert text[-1] == ")"
        reader.pos = 1
    joiner = " AND " if pred.negated else " OR "
    for index, attr in enumerate(attrs):
        if index:
            assert text.startswith(joiner, reader.pos)
            reader.pos += len(joiner)
        prefix = ("-" if pred.negated else "") + f"@{attr}:"
        assert text.startswith(prefix, reader.pos), text
        reader.pos += len(prefix)
        _read_datadog_term(reader, pred)
    assert reader.pos == len(text) - (1 if len(attrs) > 1 else 0), f"unread text after the term in {text!r}"


@settings(FAST, max_examples=400)
@given(PREDICATES)
def test_datadog_terms_read_back_as_the_predicate(pred: Predicate) -> None:
    read_back_datadog(pred)


def test_datadog_negative_numbers_in_a_list() -> None:
    # Regression: format_value writes a negative number as a range `[-3 TO -3]`; inside an `in` group the search
    # checker (and so render/parse_monitor_query) rejects it: "unexpected `[`".
    expr = parse("CPUTimeMs in [5, -3]")
    text = to_datadog(expr, CATALOG)
    assert check_search(text) == [], text
    assert isinstance(expr, Predicate)
    read_back_datadog(expr)


@pytest.mark.parametrize("keyword", ["AND", "OR", "NOT"])
def test_datadog_keywords_as_values_are_quoted(keyword: str) -> None:
    # Regression: _BARE_TOKEN accepts AND / OR / NOT, so `ScriptName in ["a", "OR"]` becomes `@ScriptName:(a OR OR)`
    # and the value is read as an operator; check_search rejects `(AND)` / `(a OR OR)`.
    expr = parse(f'ScriptName in ["a", "{keyword}"]')
    text = to_datadog(expr, CATALOG)
    assert check_search(text) == [], text
    assert isinstance(expr, Predicate)
    read_back_datadog(expr)


def test_datadog_contains_escapes_carriage_return() -> None:
    # Regression: escape_wildcard_term escapes space, tab and newline but not \r (nor \f, \v), so the wildcard
    # term is split in two at the raw carriage return: `@ScriptName:*a` and `b*`.
    read_back_datadog(Predicate("ScriptName", Op.CONTAINS, "a\rb"))


def test_datadog_bare_value_with_trailing_newline() -> None:
    # Regression: _BARE_TOKEN ends in `$`, which also matches before a trailing newline, so "ok\n" is written
    # bare (`@Outcome:ok` + newline) and Datadog searches for "ok" instead of "ok\n".
    read_back_datadog(Predicate("Outcome", Op.EQ, "ok\n"))


# ============================================================================================ splunk


def spl_literals(spl: str) -> list[str]:
    """Every double-quoted SPL string literal, unescaped (``\\\\`` and ``\\"``)."""
    out: list[str] = []
    pos = 0
    while pos < len(spl):
        if spl[pos] != '"':
            pos += 1
            continue
        pos += 1
        chars: list[str] = []
        while True:
            assert pos < len(spl), f"unterminated string in {spl!r}"
            char = spl[pos]
            if char == "\\":
                assert spl[pos + 1] in '\\"', f"unexpected escape \\{spl[pos + 1]} in {spl!r}"
                chars.append(spl[pos + 1])
                pos += 2
                continue
            if char == '"':
                break
            chars.append(char)
            pos += 1
        out.append("".join(chars))
        pos += 1
    return out


def pcre_to_python(pattern: str) -> str:
    """PCRE's ``\\z`` (a fix this test anticipates) is Python's ``\\Z``; everything else carries over."""
    out: list[str] = []
    pos = 0
    while pos < len(pattern):
        if pattern[pos] == "\\" and pos + 1 < len(pattern):
            pair = pattern[pos : pos + 2]
            out.append("\\Z" if pair == "\\z" else pair)
            pos += 2
        else:
            out.append(pattern[pos])
            pos += 1
    return "".join(out)


def _regex_for(literals: list[str], wanted: Callable[[re.Pattern[str]], bool]) -> re.Pattern[str] | None:
    for literal in literals:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" in a plain value
                pattern = re.compile(pcre_to_python(literal))
        except re.error:
            continue
        if wanted(pattern):
            return pattern
    return None


@settings(FAST, max_examples=300)
@given(EXPRS)
def test_splunk_passes_check_spl(expr: Expr) -> None:
    spl = to_splunk(expr, CATALOG)
    assert check_spl(spl) == [], spl


def _fullmatches_all(strings: list[str]) -> Callable[[re.Pattern[str]], bool]:
    return lambda pattern: all(pattern.fullmatch(s) is not None for s in strings)


@FAST
@given(EXPRS)
def test_splunk_string_literals_carry_every_value(expr: Expr) -> None:
    spl = to_splunk(expr, CATALOG)
    literals = spl_literals(spl)
    for pred in predicates(expr):
        field = CATALOG[pred.field]
        values = pred.value if isinstance(pred.value, tuple) else (pred.value,)
        strings = [v for v in values if isinstance(v, str)]
        if pred.op is Op.CONTAINS or (field.type is FieldType.STRING_LIST and pred.op in (Op.EQ, Op.IN)):
            # A regex (mvfind on lists, match on text) that must match each value in full.
            assert _regex_for(literals, _fullmatches_all(strings)), (strings, spl)
        elif field.type is FieldType.STRING and pred.op in (Op.EQ, Op.IN):
            for text in strings:
                assert text in literals, (text, spl)
        elif field.type is FieldType.BOOLEAN and pred.op in (Op.EQ, Op.IN):
            for flag in values:
                assert ("true" if flag else "false") in literals, spl


def _probes(values: tuple[str, ...], extra: str) -> list[str]:
    probes = [extra, "", "x"]
    for value in values:
        probes += [value, value + "\n", "\n" + value, "x" + value, value + "x", value[:-1], value * 2]
    return probes


TEXT_FIELDS = tuple(f for f in FIELDS if f.type in TEXT_TYPES)
REGEX_PREDICATES = predicate_st(
    TEXT_FIELDS, lambda f: (Op.CONTAINS,) if f.type is FieldType.STRING else (Op.EQ, Op.IN, Op.CONTAINS)
)


@FAST
@given(REGEX_PREDICATES, TEXT)
def test_splunk_regexes_match_exactly_what_the_predicate_means(pred: Predicate, extra: str) -> None:
    """The regex literal for contains / list equality matches an element exactly when the AST says so."""
    values = tuple(str(v) for v in (pred.value if isinstance(pred.value, tuple) else (pred.value,)))
    literals = spl_literals(to_splunk(pred, CATALOG))
    pattern = _regex_for(literals, lambda p: all(p.search(v) for v in values))
    assert pattern is not None
    for probe in _probes(values, extra):
        expected = values[0] in probe if pred.op is Op.CONTAINS else probe in values
        assert (pattern.search(probe) is not None) == expected, (pattern.pattern, probe)


def test_splunk_list_equality_does_not_match_a_trailing_newline() -> None:
    # Regression: list equality is the regex `^…$`; PCRE's (and Python's) `$` also matches before a final
    # newline, so `Exceptions.Name == "E"` holds in Splunk for an element "E\n" and not in Python.
    # `\z` (PCRE) anchors at the very end.
    spl = to_splunk(parse('Exceptions.Name == "E"'), CATALOG)
    (literal,) = spl_literals(spl)
    assert re.search(pcre_to_python(literal), "E\n") is None, spl
    assert to_python(parse('Exceptions.Name == "E"'), CATALOG)({"Exceptions": [{"Name": "E\n"}]}) is False


def test_check_spl_ignores_pipes_inside_strings() -> None:
    # Regression: check_spl used to run its "empty pipeline stage" regex over string literals too, so a
    # filter value with `||` failed every render of its rule (fixed in c33d0d9).
    spl = to_splunk(parse('Outcome == "a||b"'), CATALOG)
    assert spl == 'Outcome="a||b"'
    assert check_spl(spl) == []


# A tiny reader/evaluator of the SPL subset to_splunk writes, with Splunk's null semantics: a function
# of a missing field is NULL, a comparison with NULL is NULL, NOT NULL is NULL, and `where` keeps an
# event only when the whole expression is TRUE. It checks the events where the filter's fields are all
# missing, which is exactly where the isnotnull() guards of negated predicates matter.
_SPL_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)'
    r"|(?P<op>!=|<=|>=|=|<|>)|(?P<punct>[(),]))",
    re.DOTALL,
)
Null = None
Tri = bool | None


class _SplNullEvaluator:
    def __init__(self, spl: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(spl):
            match = _SPL_TOKEN.match(spl, pos)
            assert match is not None, f"cannot read {spl[pos:]!r}"
            assert match.lastgroup is not None
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        assert text is None or token[1] == text, (text, token)
        self.index += 1
        return token

    def run(self) -> Tri:
        value = self.or_()
        assert self.peek()[0] == "end"
        return value

    def or_(self) -> Tri:
        values = [self.and_()]
        while self.peek() == ("name", "OR"):
            self.take()
            values.append(self.and_())
        return True if True in values else (Null if Null in values else False)

    def and_(self) -> Tri:
        values = [self.not_()]
        while self.peek() == ("name", "AND"):
            self.take()
            values.append(self.not_())
        return False if False in values else (Null if Null in values else True)

    def not_(self) -> Tri:
        if self.peek() == ("name", "NOT"):
            self.take()
            value = self.not_()
            return Null if value is Null else not value
        return self.comparison()

    def comparison(self) -> Tri:
        left = self.atom()
        if self.peek()[0] != "op":
            assert left is Null or isinstance(left, bool)
            return left
        self.take()
        right = self.atom()
        assert right is not Null
        return Null if left is Null else bool(left)  # every field is missing: only NULLs reach here

    def atom(self) -> Any:
        kind, text = self.take()
        if kind == "punct":
            assert text == "("
            value = self.or_()
            self.take(")")
            return value
        if kind in ("string", "number"):
            return text
        assert kind == "name"
        if self.peek() != ("punct", "("):
            return Null  # a field: missing
        self.take("(")
        args = [self.atom()]
        while self.peek() == ("punct", ","):
            self.take()
            args.append(self.atom())
        self.take(")")
        if text == "isnotnull":
            return args[0] is not Null
        if text == "isnull":
            return args[0] is Null
        if text == "coalesce":
            return next((a for a in args if a is not Null), Null)
        assert text in ("mvcount", "mvfind", "match", "in"), text
        return Null  # every other function of a missing field is NULL


@settings(FAST, max_examples=300)
@given(EXPRS)
def test_splunk_on_an_event_missing_every_field(expr: Expr) -> None:
    result = _SplNullEvaluator(to_splunk(expr, CATALOG)).run()
    assert (result is True) == to_python(expr, CATALOG)({}), to_splunk(expr, CATALOG)


def test_splunk_negated_exists_on_a_list_matches_a_missing_field() -> None:
    # Regression: `not exists(Exceptions.Name)` compiles to `NOT (mvcount(exception_name)>0)`; mvcount of a
    # missing field is NULL, so the NOT is NULL and `where` drops every event without exceptions.
    spl = to_splunk(parse("not exists(Exceptions.Name)"), CATALOG)
    assert _SplNullEvaluator(spl).run() is True, spl


# --------------------------------------------------------------------------------------------- base-search terms

#: Default segmenters.conf (spec 9.2): single-character major breakers (the multi-character ones, such as
#: ``%20`` or ``--``, only add breaks; leaving them out makes this model stricter, never looser) and minor
#: breakers.
MAJOR_BREAKERS = frozenset("[]<>(){}|!;,'\"*\n\r \t&?+")
MINOR_BREAKERS = frozenset("/:=@.-$#%\\_")


def splunk_tokens(raw: str) -> set[str]:
    """The tokens Splunk indexes for ``raw``, lower-cased (searches are case-insensitive): each major
    segment; per minor breaker "the token from the last major breaker to the current minor breaker and
    from the last minor breaker to the current minor breaker" (segmenters.conf.spec); and the piece after
    the last minor breaker (Search Manual, "Event segmentation and searching": 91.205.189.15 gives 91,
    205, 189 and 15)."""
    tokens: set[str] = set()
    for major in re.split("[" + re.escape("".join(sorted(MAJOR_BREAKERS))) + "]", raw.lower()):
        if not major:
            continue
        tokens.add(major)
        last_minor = -1
        for index, char in enumerate(major):
            if char in MINOR_BREAKERS:
                tokens.update((major[:index], major[last_minor + 1 : index]))
                last_minor = index
        tokens.add(major[last_minor + 1 :])
    return tokens - {""}


def _go_json(event: Mapping[str, Any]) -> str:
    """Go's encoding/json (as a Logpush-like shipper would write): HTML characters as \\u escapes."""
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escaped)
    return text


#: Ways an event's ``_raw`` may be spelled: the same JSON by different encoders.
RAW_ENCODINGS: tuple[Callable[[Mapping[str, Any]], str], ...] = (
    json.dumps,  # ASCII only: every non-ASCII character as \uXXXX
    lambda event: json.dumps(event, ensure_ascii=False, separators=(",", ":")),
    _go_json,
)


def assert_terms_hold(expr: Expr, events: list[dict[str, Any]]) -> None:
    """Every base-search term of ``expr`` is an indexed token of every event ``expr`` accepts, however
    the event's JSON is spelled."""
    terms = required_terms(expr, CATALOG)
    accepts = to_python(expr, CATALOG)
    for event in events:
        if not accepts(event):
            continue
        for encode in RAW_ENCODINGS:
            raw = encode(event)
            missing = [t for t in terms if t.lower() not in splunk_tokens(raw)]
            assert not missing, f"{missing} not indexed in {raw}"


@settings(FAST, max_examples=400)
@given(EXPRS, EVENTS)
def test_base_search_terms_never_exclude_an_event_the_filter_accepts(expr: Expr, events: list[dict[str, Any]]) -> None:
    assert_terms_hold(expr, events)


#: Values events usually carry, so that filters built from them often accept an event and have terms:
#: the property is then not met only by filters that accept nothing.
TERM_TEXT = st.sampled_from(
    ["ok", "exception", "fetch", "alarm", "scheduled", "ERROR_CODE_INVALID_URL", 'say "hi"', "b c", "key:value"]
)
TERM_EXPRS = expr_st(predicate_st(FIELDS, allowed_ops, TERM_TEXT, max_in=2))


@settings(FAST, max_examples=400)
@given(TERM_EXPRS, st.lists(event_st(logpush_complete=True), min_size=1, max_size=4))
def test_base_search_terms_hold_on_filters_that_match_often(expr: Expr, events: list[dict[str, Any]]) -> None:
    assert_terms_hold(expr, events)


#: Words next to every kind of neighbour: breakers a JSON encoder keeps, ones it may turn into letters
#: (``<`` as ``\u003c``, a tab as ``\t``), non-ASCII letters, and none.
WORDY_TEXT = st.text(st.sampled_from(list("abcdeXYZ0123") * 3 + list(" _.-/:\"\\'<>&\t\nüé")), max_size=14)
TEXT_FIELDS = tuple(f for f in FIELDS if f.type in TEXT_TYPES)


def event_holding(field: Field, text: str) -> dict[str, Any]:
    """An event whose ``field`` holds ``text`` (in a list for list fields; in the structured line for a
    derived field)."""
    if field.derived_key is not None:
        line = json.dumps({field.derived_key: text})
        return {"Logs": [{"Level": "log", "Message": [line]}]}
    node: Any = text
    for step in reversed(field.paths[0]):
        node = [node] if step == ARRAY else {step: node}
    assert isinstance(node, dict)
    return node


@settings(FAST, max_examples=500)
@given(st.sampled_from(TEXT_FIELDS), st.sampled_from([Op.EQ, Op.CONTAINS]), WORDY_TEXT, WORDY_TEXT, WORDY_TEXT)
def test_base_search_terms_hold_wherever_the_value_sits(
    field: Field, op: Op, value: str, before: str, after: str
) -> None:
    """A value's words next to every kind of character, inside longer text for ``contains``."""
    stored = value if op is Op.EQ else before + value + after
    pred = Predicate(field.name, op, value)
    event = event_holding(field, stored)
    assert to_python(pred, CATALOG)(event), (pred, event)
    assert_terms_hold(pred, [event])


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ('Entrypoint == "ConversationStateDO" and Outcome != "ok"', ["ConversationStateDO"]),
        ('EventType == "alarm" and (Entrypoint == "DO" or Outcome == "exception")', ["alarm"]),
        ('Logs.Message contains "ERROR_CODE_INVALID_URL"', ["CODE", "INVALID"]),
        ('Logs.Message contains "invalid URL"', []),  # both words touch the ends of a substring
        ('op_error_code == "quota_exceeded"', ["quota", "exceeded"]),
        ('ScriptName in ["api-worker", "auth-worker"]', ["worker"]),
        ('ScriptName in ["api", "API"]', ["api"]),
        ('ScriptName == "Api" or ScriptName == "api"', ["Api"]),
        ('not (EventType == "fetch")', []),
        ('EventType == "fetch" or Outcome == "ok"', []),
        ("Event.Response.Status == 503", []),  # a number has more than one spelling
        ("op_ok == false", []),
        ('ScriptName == "<api>"', []),  # < may be written \u003c, gluing "u003capi"
        ('ScriptName == "tab\there"', []),  # a tab is written \t: "there" glued to "t"
        ('ScriptName == "naïve"', []),  # non-ASCII letters may be written \u00ef
        ('ScriptName == "do"', []),  # too short to narrow anything
        ('ScriptName == "NOT"', ["NOT"]),
    ],
)
def test_base_search_term_examples(text: str, terms: list[str]) -> None:
    assert required_terms(parse(text), CATALOG) == terms


def test_base_search_terms_are_quoted_words() -> None:
    expr = parse('ScriptName == "NOT" and EventType == "fetch"')
    assert base_search_terms(expr, CATALOG) == '"NOT" "fetch"'
    assert base_search_terms(None, CATALOG) == ""


def test_a_structured_line_value_is_indexed_between_escaped_quotes() -> None:
    line = json.dumps({"event": "do_op", "error_code": "quota_exceeded"})
    raw = json.dumps({"Logs": [{"Level": "log", "Message": [line]}]})
    assert '\\"quota_exceeded\\"' in raw  # in _raw the value sits between \" and \"
    assert {"quota", "exceeded", "quota_exceeded"} <= splunk_tokens(raw)
    assert required_terms(parse('op_error_code == "quota_exceeded"'), CATALOG) == ["quota", "exceeded"]


# ============================================================================================ logpush

LOGPUSH_OPERATORS = frozenset({"eq", "!eq", "lt", "leq", "gt", "geq", "in", "!in", "contains", "!contains"})


def logpush_eval(node: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """A reference reading of the Logpush filter JSON.

    eq/!eq: equality; lt/leq/gt/geq: numeric comparison; in/!in: membership in the value array;
    contains/!contains on a string: substring. On an array field, ``contains`` holds when the value is
    a substring of some element (which covers an element equal to the value): the same "any element"
    reading the filter language gives lists.
    """
    if "and" in node:
        return all(logpush_eval(child, event) for child in node["and"])
    if "or" in node:
        return any(logpush_eval(child, event) for child in node["or"])
    actual = event[node["key"]]
    operator: str = node["operator"]
    value = node["value"]
    positive = operator.removeprefix("!")
    if positive == "eq":
        result = actual == value
    elif positive == "in":
        result = actual in value
    elif positive == "contains":
        result = any(value in item for item in actual) if isinstance(actual, list) else value in actual
    else:
        result = {"lt": actual < value, "leq": actual <= value, "gt": actual > value, "geq": actual >= value}[positive]
    return bool(result) != operator.startswith("!")


def _logpush_leaves(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if "and" in node or "or" in node:
        assert len(node) == 1
        children = node.get("and") or node.get("or")
        assert isinstance(children, list)
        assert len(children) >= 2
        for child in children:
            yield from _logpush_leaves(child)
    else:
        yield node


@SLOW
@given(LOGPUSH_EXPRS, st.lists(event_st(logpush_complete=True), min_size=1, max_size=4))
def test_logpush_document_shape_and_semantics(expr: Expr, events: list[dict[str, Any]]) -> None:
    document = to_logpush(expr, CATALOG)
    text = to_logpush_string(document)
    assert len(text.encode()) <= MAX_BYTES
    decoded = json.loads(text)
    assert decoded == document
    assert list(decoded) == ["where"]
    leaves = list(_logpush_leaves(decoded["where"]))
    assert len(leaves) == len(predicates(expr)) <= MAX_OPERATORS
    for leaf in leaves:
        assert set(leaf) == {"key", "operator", "value"}
        assert leaf["operator"] in LOGPUSH_OPERATORS
        assert CATALOG[leaf["key"]].logpush
        assert isinstance(leaf["value"], list) == (leaf["operator"] in ("in", "!in"))
    python = to_python(expr, CATALOG)
    for event in events:
        assert logpush_eval(decoded["where"], event) == python(event), event


@SLOW
@given(LOGPUSH_EXPRS, predicate_st(NOT_LOGPUSH_FIELDS), st.booleans())
def test_logpush_refuses_fields_it_cannot_filter(good: Expr, bad: Predicate, use_or: bool) -> None:
    expr: Expr = Or((good, bad)) if use_or else And((good, bad))
    with pytest.raises(CannotPushDownError) as caught:
        to_logpush(expr, CATALOG)
    assert f"`{bad.field}`" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Event.Response.Status >= 500", "`Event.Response.Status` cannot be filtered by Logpush"),
        ('Outcome == "ok" and Event.Response.Status == 500', "`Event.Response.Status`"),
        ("op_ok == false", "`op_ok` cannot be filtered by Logpush: it is derived"),
        ("op_duration_ms > 100", "`op_duration_ms`"),
        ("exists(Outcome)", "`exists(Outcome)` has no Logpush operator"),
        ("not exists(ScriptName)", "`exists(ScriptName)`"),
        ('ScriptTags == "x"', "`ScriptTags` is a list"),
        ('ScriptTags in ["x"]', "`ScriptTags` is a list"),
        ('Logs.Message contains "x"', "`Logs.Message`"),
    ],
)
def test_logpush_refusals_name_the_field(text: str, named: str) -> None:
    with pytest.raises(CannotPushDownError) as caught:
        to_logpush(parse(text), CATALOG)
    assert named in str(caught.value)


def test_logpush_refuses_too_many_operators_and_bytes() -> None:
    many = Or(tuple(Predicate("CPUTimeMs", Op.EQ, n) for n in range(MAX_OPERATORS + 1)))
    with pytest.raises(CannotPushDownError, match=f"{MAX_OPERATORS + 1} operators"):
        to_logpush(many, CATALOG)
    big = Predicate("ScriptName", Op.IN, tuple(f"script-{n:04}" for n in range(100)))
    with pytest.raises(CannotPushDownError, match="bytes; Logpush allows about"):
        to_logpush(big, CATALOG)


# ============================================================================================ examples

#: filter, Datadog search, SPL, Logpush filter (None: refused)
EXAMPLES: list[tuple[str, str, str, str | None]] = [
    (
        'Outcome != "ok" or Event.Response.Status >= 500',
        "-@Outcome:ok OR @Event.Response.Status:>=500",
        '(NOT (isnotnull(Outcome) AND Outcome="ok")) OR status>=500',
        None,
    ),
    (
        'Logs.Message contains "ERROR_CODE_INVALID_URL"',
        "(@Logs.Message:*ERROR_CODE_INVALID_URL* OR @Logs.message:*ERROR_CODE_INVALID_URL*)",
        'isnotnull(mvfind(log_message, "ERROR_CODE_INVALID_URL"))',
        None,
    ),
    (
        'ScriptName in ["a", "b c"]',
        '@ScriptName:(a OR "b c")',
        'in(ScriptName, "a", "b c")',
        '{"where":{"key":"ScriptName","operator":"in","value":["a","b c"]}}',
    ),
    (
        "exists(Exceptions.Name)",
        "(@Exceptions.Name:* OR @Exceptions.name:*)",
        "isnotnull(exception_name) AND mvcount(exception_name)>0",
        None,
    ),
    ("op_ok == false", "@extalerts.ok:false", 'op_ok="false"', None),
    (
        'not (Outcome == "ok" and CPUTimeMs < 10)',
        "-@Outcome:ok OR -@CPUTimeMs:<10",
        '(NOT (isnotnull(Outcome) AND Outcome="ok")) OR (NOT (isnotnull(CPUTimeMs) AND CPUTimeMs<10))',
        '{"where":{"or":[{"key":"Outcome","operator":"!eq","value":"ok"},'
        '{"key":"CPUTimeMs","operator":"geq","value":10}]}}',
    ),
    (
        'ScriptTags not contains "canary" and EventType == "fetch"',
        "-@ScriptTags:*canary* AND @EventType:fetch",
        '(NOT (isnotnull(ScriptTags) AND isnotnull(mvfind(ScriptTags, "canary")))) AND EventType="fetch"',
        '{"where":{"and":[{"key":"ScriptTags","operator":"!contains","value":"canary"},'
        '{"key":"EventType","operator":"eq","value":"fetch"}]}}',
    ),
    (
        'Event.Request.URL contains "/a b?" and Exceptions.Name in ["TypeError", "E.x"]',
        "@Event.Request.URL:*\\/a\\ b\\?* AND "
        "(@Exceptions.Name:(TypeError OR E.x) OR @Exceptions.name:(TypeError OR E.x))",
        'match(url, "/a\\\\ b\\\\?") AND isnotnull(mvfind(exception_name, "^(?:TypeError|E\\\\.x)\\\\z"))',
        None,
    ),
    (
        'op_error_code == "say \\"hi\\"" or op_duration_ms > 0.5',
        '@extalerts.error_code:"say \\"hi\\"" OR @extalerts.duration_ms:>0.5',
        'op_error_code="say \\"hi\\"" OR op_duration_ms>0.5',
        None,
    ),
    (
        "Event.Response.Status in [500, 503] and WallTimeMs <= 1e3",
        "@Event.Response.Status:(500 OR 503) AND @WallTimeMs:<=1000",
        "in(status, 500, 503) AND WallTimeMs<=1000",
        None,
    ),
]


@pytest.mark.parametrize(("text", "datadog", "splunk", "logpush"), EXAMPLES)
def test_exact_outputs(text: str, datadog: str, splunk: str, logpush: str | None) -> None:
    expr = parse(text)
    assert check(expr, CATALOG) == []
    assert to_datadog(expr, CATALOG) == datadog
    assert check_search(datadog) == []
    assert to_splunk(expr, CATALOG) == splunk
    assert check_spl(splunk) == []
    if logpush is None:
        with pytest.raises(CannotPushDownError):
            to_logpush(expr, CATALOG)
    else:
        assert to_logpush_string(to_logpush(expr, CATALOG)) == logpush


PYTHON_EXAMPLES: list[tuple[str, dict[str, Any], bool]] = [
    ('Outcome != "ok" or Event.Response.Status >= 500', {"Outcome": "ok"}, False),
    ('Outcome != "ok" or Event.Response.Status >= 500', {}, True),
    (
        'Outcome != "ok" or Event.Response.Status >= 500',
        {"Outcome": "ok", "Event": {"Response": {"Status": 502}}},
        True,
    ),
    (
        'Logs.Message contains "ERROR_CODE_INVALID_URL"',
        {"Logs": [{"Level": "error", "Message": ["failed: ERROR_CODE_INVALID_URL", 3]}]},
        True,
    ),
    ('Logs.Message contains "ERROR_CODE_INVALID_URL"', {"Logs": [{"Level": "log", "Message": ["fine"]}]}, False),
    ('Logs.Message contains "ERROR_CODE"', {"Logs": [{"level": "log", "message": ["ERROR_CODE_X"]}]}, True),
    ('ScriptName in ["a", "b c"]', {"ScriptName": "b c"}, True),
    ('ScriptName in ["a", "b c"]', {"ScriptName": "b"}, False),
    ("exists(Exceptions.Name)", {"Exceptions": [{"Name": "Error", "Message": "x"}]}, True),
    ("exists(Exceptions.Name)", {"Exceptions": []}, False),
    ("exists(Exceptions.Name)", {"Exceptions": [{"Name": ""}]}, False),
    ("op_ok == false", {"Logs": [{"Message": ['{"event":"do_op","ok":false}']}]}, True),
    ("op_ok == false", {"Logs": [{"Message": ["hello", '{"event":"do_op","ok":true}']}]}, False),
    ("op_ok == false", {"Logs": [{"Message": ['{"ok":"false"}']}]}, False),
    ("not op_ok == false", {}, True),
    ("op_duration_ms > 10", {"Logs": [{"Message": ['{"duration_ms": 12.5}']}]}, True),
    ('ScriptTags contains "can"', {"ScriptTags": ["prod", "canary"]}, True),
    ('ScriptTags == "can"', {"ScriptTags": ["prod", "canary"]}, False),
    ("CPUTimeMs == 5.0", {"CPUTimeMs": 5}, True),
]


@pytest.mark.parametrize(("text", "event", "expected"), PYTHON_EXAMPLES)
def test_python_examples(text: str, event: dict[str, Any], expected: bool) -> None:
    assert to_python(parse(text), CATALOG)(event) is expected
