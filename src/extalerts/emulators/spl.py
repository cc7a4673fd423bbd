"""The SPL the Splunk emulator runs: a parser and an executor for the subset of the Search Processing
Language that extalerts renders (and a little more), with Splunk's documented semantics.

    pipeline = compile_search('index=main sourcetype="x" | stats count AS value BY host')
    rows = pipeline.run(SearchContext(events, earliest=..., latest=..., now=...))

Every rule of behaviour cites the Splunk documentation it follows ("Search Reference, <command>" is
the SPL Search Reference page of that name, 9.x; "Search Manual" likewise). Where the documentation
leaves a case open, the comment says which reading the emulator takes.

What it cannot run it refuses by name: :class:`SplUnsupported` ("emulator cannot run command X"),
raised when the search is compiled, before any event is read, so a search never passes by being
half-understood. Syntax it cannot parse is :class:`SplSyntaxError`.

Values: ``None`` (null), ``str`` (field values as extracted, and string results), ``int``/``float``
(numbers computed by eval and stats), ``list`` (a multivalue field, never empty). Field values that
read as numbers count as numbers in eval and stats, as Splunk's do.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
import time as _time_module
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

Scalar: TypeAlias = str | int | float
Value: TypeAlias = Scalar | list[Scalar] | None
Row: TypeAlias = dict[str, Value]


class SplError(Exception):
    """Why a search cannot run; the message is what the emulator records on the search."""


class SplSyntaxError(SplError):
    pass


class SplUnsupported(SplError):
    """A command, function or option the emulator does not run."""

    def __init__(self, what: str) -> None:
        super().__init__(f"emulator cannot run {what}")


# ============================================================================================ events


@dataclass
class IndexedEvent:
    """One event as indexed: its text, time and default fields, and the JSON it holds (if any)."""

    raw: str
    time: float
    index: str
    sourcetype: str
    source: str = "http:extalerts"
    host: str = "emulator"
    #: When it was indexed (provider time); ``_indextime``.
    index_time: float = 0.0
    _parsed: Any = field(default=None, repr=False)
    _fields: dict[str, Value] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            self._parsed = json.loads(self.raw)
        except ValueError:
            self._parsed = None

    @property
    def parsed(self) -> Any:
        return self._parsed

    def fields(self) -> dict[str, Value]:
        """Search-time fields: the default fields, plus every JSON field of ``_raw``.

        props.conf.spec, KV_MODE: "json: Extracts JSON fields"; and AUTO_KV_JSON (default true) does
        the same for the default KV_MODE, auto. The names are spath's (``a.b``, ``a{}.b``). The
        5000-byte ``[spath] extraction_cutoff`` of extract-all (limits.conf.spec) is not modelled."""
        if self._fields is None:
            extracted: dict[str, Value] = {}
            if isinstance(self._parsed, dict):
                extracted = flatten_json(self._parsed)
            self._fields = {
                **extracted,
                "_raw": self.raw,
                "_time": self.time,
                "_indextime": self.index_time,
                "index": self.index,
                "sourcetype": self.sourcetype,
                "source": self.source,
                "host": self.host,
                "splunk_server": "emulator",
            }
        return dict(self._fields)


@dataclass(frozen=True)
class TimestampRule:
    """How a source type's events are timed at index time: props.conf ``TIME_PREFIX``, ``TIME_FORMAT``
    and ``MAX_TIMESTAMP_LOOKAHEAD``."""

    prefix: str = ""
    format: str = ""
    lookahead: int = 128

    @classmethod
    def from_props(cls, settings: dict[str, str]) -> TimestampRule:
        lookahead = settings.get("MAX_TIMESTAMP_LOOKAHEAD", "128").strip()
        return cls(
            settings.get("TIME_PREFIX", ""),
            settings.get("TIME_FORMAT", ""),
            int(lookahead) if lookahead.lstrip("-").isdigit() else 128,
        )

    def extract(self, raw: str) -> float | None:
        """The event's time, or None when the rule finds none (the indexer then uses the time it
        received the event). props.conf.spec, TIME_PREFIX: "If the 'TIME_PREFIX' cannot be found in the
        event text, timestamp extraction does not occur"; "TIME_FORMAT starts reading after the
        TIME_PREFIX"; MAX_TIMESTAMP_LOOKAHEAD: "The number of characters into an event Splunk software
        should look for a timestamp", from the TIME_PREFIX location ("0 or -1": no limit)."""
        start = 0
        if self.prefix:
            found = re.search(self.prefix, raw)
            if found is None:
                return None
            start = found.end()
        text = raw[start:] if self.lookahead <= 0 else raw[start : start + self.lookahead]
        return _strptime(text, self.format) if self.format else None


_EPOCH_FORMAT = re.compile(r"^%s(?:%(\d*)[NQ])?$")


def _strptime(text: str, layout: str) -> float | None:
    """The subset of Splunk's strptime formats used for machine timestamps: ``%s`` epoch seconds with
    optional subseconds ``%3N``/``%6N`` (props.conf.spec, TIME_FORMAT: a "strptime" format; ``%3N``
    is Splunk's milliseconds), else Python's strptime on the leading text."""
    epoch = _EPOCH_FORMAT.match(layout)
    if epoch:
        digits = int(epoch.group(1) or 0) if epoch.group(0) != "%s" else 0
        found = re.match(r"\d+", text)
        if found is None:
            return None
        number = found.group(0)
        if digits and len(number) > digits:
            return float(int(number[:-digits]) + int(number[-digits:]) / 10**digits)
        return float(int(number))
    for end in range(len(text), 0, -1):
        try:
            moment = datetime.strptime(text[:end], layout)
        except ValueError:
            continue
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return None


class EventIndex:
    """Indexed events per index, in time order, for time-range searches."""

    def __init__(self) -> None:
        self._events: dict[str, list[IndexedEvent]] = {}
        self._times: dict[str, list[float]] = {}

    def add(self, event: IndexedEvent) -> None:
        events = self._events.setdefault(event.index, [])
        times = self._times.setdefault(event.index, [])
        at = bisect.bisect_right(times, event.time)
        times.insert(at, event.time)
        events.insert(at, event)

    def indexes(self) -> list[str]:
        return sorted(self._events)

    def between(self, index: str, earliest: float | None, latest: float | None) -> list[IndexedEvent]:
        """Events of ``index`` with earliest <= _time < latest (None: unbounded)."""
        times = self._times.get(index, [])
        start = 0 if earliest is None else bisect.bisect_left(times, earliest)
        end = len(times) if latest is None else bisect.bisect_left(times, latest)
        return self._events.get(index, [])[start:end]

    def drop_before(self, cutoff: float) -> None:
        for index, times in self._times.items():
            keep = bisect.bisect_left(times, cutoff)
            del times[:keep]
            del self._events[index][:keep]

    def __len__(self) -> int:
        return sum(len(events) for events in self._events.values())


@dataclass
class SearchContext:
    """What a search runs against: the index, its time range (epoch seconds) and its dispatch time."""

    index: EventIndex
    earliest: float | None
    latest: float | None
    now: float
    sid: str = "emulator"
    #: Searched when the search names no index (authorize.conf.spec, srchIndexesDefault: "Default: main"
    #: for the admin and user roles).
    default_indexes: tuple[str, ...] = ("main",)
    #: Index-time bounds of a search job (REST API Reference, search/jobs: ``index_earliest`` and
    #: ``index_latest`` bound the search by the time events were indexed, ``_indextime``): what a
    #: scheduled run had indexed by the time it ran. None: unbounded.
    index_earliest: float | None = None
    index_latest: float | None = None


# ============================================================================================ values


class _Text(str):
    """A string literal written in the search: never read as a number (a field value may be)."""


def is_null(value: Value) -> bool:
    return value is None


def values_of(value: Value) -> list[Scalar]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(value: Value) -> Scalar | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def as_number(value: Value) -> int | float | None:
    """The number a value reads as, or None. Field values are text: "503" is the number 503, as
    Search Reference, "eval": "... fields that contain numeric values" are used by arithmetic."""
    scalar = _first(value)
    if isinstance(scalar, bool):
        return int(scalar)
    if isinstance(scalar, int | float):
        return scalar
    if isinstance(scalar, str) and not isinstance(scalar, _Text) and _NUMBER.match(scalar):
        number = float(scalar)
        return int(number) if number.is_integer() and "." not in scalar and "e" not in scalar.lower() else number
    return None


def to_text(value: Value) -> str | None:
    """A value as Splunk shows it: integers without a decimal point, multivalues joined by newline."""
    if value is None:
        return None
    if isinstance(value, list):
        return "\n".join(to_text(v) or "" for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return format(value, ".15g")
    return str(value)


def _mv(items: Iterable[Scalar]) -> Value:
    found = list(items)
    if not found:
        return None
    return found[0] if len(found) == 1 else found


# ============================================================================================ JSON / spath


def flatten_json(document: Any) -> dict[str, Value]:
    """Extract-all as spath does it: leaf values by path, arrays as ``{}`` and multivalue.

    Search Reference, spath: "A location step is composed of a field name and an optional index
    surrounded by curly brackets"; without an index, all the array's elements are taken."""
    out: dict[str, list[Scalar]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if not node and path:
                out.setdefault(path, []).append("{}")
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for item in node:
                walk(item, f"{path}{{}}")
        else:
            out.setdefault(path, []).append(_json_scalar(node))

    walk(document, "")
    return {name: _mv(values) for name, values in out.items()}


def _json_scalar(node: Any) -> str:
    # Field values are text: JSON true/false/null read as the words (our SPL compares op_ok="false").
    if node is True:
        return "true"
    if node is False:
        return "false"
    if node is None:
        return "null"
    if isinstance(node, float | int):
        return json.dumps(node)
    if isinstance(node, str):
        return node
    return json.dumps(node, separators=(",", ":"))


_PATH_STEP = re.compile(r"([^.{}]+)?((?:\{\d*\})*)")


def spath_values(document: Any, path: str) -> Value:
    """Values at ``path`` (``a.b{}.c``, ``a{1}``): Search Reference, spath, "path": location steps
    "separated by periods"; an index in curly brackets picks one element (1-based, as spath's
    ``{1}`` is the first), empty brackets all of them. An object or array at the end is its JSON text."""
    nodes: list[Any] = [document]
    for step in _split_path(path):
        match = _PATH_STEP.fullmatch(step)
        if match is None:
            raise SplSyntaxError(f"spath: cannot read the path {path!r}")
        key, brackets = match.group(1), match.group(2)
        nexts: list[Any] = []
        for node in nodes:
            if key is not None:
                if not isinstance(node, dict) or key not in node:
                    continue
                node = node[key]
            nexts.append(node)
        for bracket in re.findall(r"\{(\d*)\}", brackets):
            expanded: list[Any] = []
            for node in nexts:
                if not isinstance(node, list):
                    continue
                if bracket == "":
                    expanded.extend(node)
                elif 1 <= int(bracket) <= len(node):
                    expanded.append(node[int(bracket) - 1])
            nexts = expanded
        nodes = nexts
    return _mv(_json_scalar(node) for node in nodes)


def _split_path(path: str) -> list[str]:
    return [step for step in path.split(".") if step != ""]


def parse_json_value(value: Value) -> Any:
    text = _first(value)
    if not isinstance(text, str):
        return None
    return _loads(text)


# Scheduled searches read the same events run after run (and search after search): an event's text is
# the same string object each time, so these caches make a repeated spath a lookup. Nothing mutates
# what they return.
@functools.lru_cache(maxsize=50_000)
def _loads(text: str) -> Any:
    """The JSON value at the start of ``text``; text after it is ignored (the reading the emulator takes
    for spath on a structured log line followed by other messages: Search Reference, spath, does not say;
    splunkd's JSON reader is known to be lenient). None when no JSON value starts it."""
    try:
        return _DECODER.raw_decode(text.lstrip())[0]
    except ValueError:
        return None


_DECODER = json.JSONDecoder()


@functools.lru_cache(maxsize=500_000)
def spath_text(text: str, path: str) -> Value:
    """``spath_values`` of the JSON ``text`` (None when it is not JSON)."""
    document = _loads(text)
    return spath_values(document, path) if isinstance(document, dict | list) else None


# ============================================================================================ time


_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_RELATIVE = re.compile(
    r"^(?P<offsets>(?:[+-]\d*[a-zA-Z]+)*)(?:@(?P<snap>[a-zA-Z]+\d?)(?P<after>(?:[+-]\d*[a-zA-Z]+)*))?$"
)
_OFFSET = re.compile(r"([+-])(\d*)([a-zA-Z]+)")


def relative_time(now: float, spec: str) -> float:
    """A time modifier resolved against ``now`` (Search Reference, "Time modifiers"): ``now``, epoch
    seconds, or offsets such as ``-10m`` with an optional snap ``@m``/``@h``/``@d``/``@w0``/``@mon``/``@y``
    ("snaps to the beginning of the time unit", after the offset), then further offsets. UTC."""
    text = spec.strip()
    if text in ("now", "now()", ""):
        return now
    if _NUMBER.match(text):
        return float(text)
    match = _RELATIVE.match(text)
    if match is None:
        raise SplSyntaxError(f"cannot read the time modifier {spec!r}")
    at = _apply_offsets(now, match.group("offsets"), spec)
    if match.group("snap"):
        at = _snap(at, match.group("snap"), spec)
        at = _apply_offsets(at, match.group("after") or "", spec)
    return at


def _apply_offsets(at: float, text: str, spec: str) -> float:
    for sign, amount, unit in _OFFSET.findall(text):
        count = int(amount) if amount else 1
        delta = -count if sign == "-" else count
        if unit in ("mon", "month", "months"):
            moment = datetime.fromtimestamp(at, UTC)
            month = moment.year * 12 + moment.month - 1 + delta
            moment = moment.replace(year=month // 12, month=month % 12 + 1, day=min(moment.day, 28))
            at = moment.timestamp()
        elif unit in ("y", "yr", "yrs", "year", "years"):
            moment = datetime.fromtimestamp(at, UTC)
            at = moment.replace(year=moment.year + delta).timestamp()
        elif unit in _UNITS:
            at += delta * _UNITS[unit]
        else:
            raise SplSyntaxError(f"cannot read the time unit {unit!r} in {spec!r}")
    return at


def _snap(at: float, unit: str, spec: str) -> float:
    moment = datetime.fromtimestamp(at, UTC)
    if unit in ("s", "sec", "second"):
        moment = moment.replace(microsecond=0)
    elif unit in ("m", "min", "minute"):
        moment = moment.replace(second=0, microsecond=0)
    elif unit in ("h", "hr", "hour"):
        moment = moment.replace(minute=0, second=0, microsecond=0)
    elif unit in ("d", "day"):
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit.startswith("w"):
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        # @w0 is Sunday (the default for @w); isoweekday: Monday 1 .. Sunday 7.
        weekday = int(unit[-1]) if unit[-1].isdigit() else 0
        back = (day.isoweekday() % 7 - weekday) % 7
        moment = day - timedelta(days=back)
    elif unit in ("mon", "month"):
        moment = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit in ("y", "year"):
        moment = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise SplSyntaxError(f"cannot read the snap unit @{unit} in {spec!r}")
    return moment.timestamp()


def span_seconds(text: str) -> float:
    """A ``span=`` (bin) or period: ``5m``, ``1h``, ``30`` (seconds)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", text.strip())
    if match is None or (match.group(2) and match.group(2) not in _UNITS):
        raise SplSyntaxError(f"cannot read the span {text!r}")
    return float(match.group(1)) * _UNITS.get(match.group(2) or "s", 1)


# ============================================================================================ tokens


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, field, name, op, lparen, rparen, comma, end
    text: str


_EXPRESSION_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<field>'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|[=<>+\-*/%.!])
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    )""",
    re.VERBOSE,
)


def _unescape(text: str) -> str:
    # Search Manual, "Quotes and escaping characters": a backslash escapes a quote or a backslash.
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def tokenize_expression(text: str) -> list[Token]:
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _EXPRESSION_TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise SplSyntaxError(f"cannot read the expression at {text[at : at + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        at = match.end()
    tokens.append(Token("end", ""))
    return tokens


# ============================================================================================ eval


Node: TypeAlias = Callable[[Row, "SearchContext"], Any]


def _kleene_and(left: bool | None, right: bool | None) -> bool | None:
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def _kleene_or(left: bool | None, right: bool | None) -> bool | None:
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


def _truth(value: Any) -> bool | None:
    """A condition's truth: booleans as they are, null stays unknown. Anything else is not a
    boolean: Search Reference, where: "These eval-expressions must be Boolean expressions"."""
    if value is None or isinstance(value, bool):
        return value
    raise SplError("a condition is not a Boolean expression (where and if need comparisons or functions like isnull)")


def compare(left: Value, operator: str, right: Value) -> bool | None:
    """eval's comparison. Null on either side: null (where keeps only true, so the row is dropped;
    Search Reference, where: "returns only the results for which the eval expression returns true").
    Numbers compare as numbers when both sides read as numbers, otherwise both compare as strings
    (lexicographically, case-sensitive: Search Reference, where, "The <eval-expression> is
    case-sensitive"). A multivalue field compares true when any of its values does (the reading the
    emulator takes; the documentation does not say)."""
    if left is None or right is None:
        return None
    rights = values_of(right)
    for one in values_of(left):
        for other in rights:
            if _compare_scalars(one, operator, other):
                return True
    return False


def _compare_scalars(left: Scalar, operator: str, right: Scalar) -> bool:
    a: Any
    b: Any
    a, b = as_number(left), as_number(right)
    if a is None or b is None:
        a, b = to_text(left) or "", to_text(right) or ""
    if operator in ("=", "=="):
        return bool(a == b)
    if operator == "!=":
        return bool(a != b)
    if operator == "<":
        return bool(a < b)
    if operator == ">":
        return bool(a > b)
    if operator == "<=":
        return bool(a <= b)
    return bool(a >= b)


def like(value: Value, pattern: Value) -> bool | None:
    """Search Reference, "Comparison and Conditional functions", like: "use the percent ( % ) symbol as
    a wildcard for matching multiple characters. Use the underscore ( _ ) character as a wildcard to
    match a single character"."""
    text, wanted = _first(value), _first(pattern)
    if text is None or wanted is None:
        return None
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(wanted))
    return re.fullmatch(regex, to_text(text) or "", re.DOTALL) is not None


def _arith(operator: str, left: Value, right: Value) -> Value:
    if left is None or right is None:
        return None  # null in, null out
    if operator == ".":
        # "When concatenating values, Splunk software reads the values as strings, regardless of the value."
        return (to_text(_first(left)) or "") + (to_text(_first(right)) or "")
    a, b = as_number(left), as_number(right)
    if a is None or b is None:
        if operator == "+" and isinstance(_first(left), str) and isinstance(_first(right), str):
            # Search Reference, eval: "+" "Add (numbers) or concatenate (strings)".
            return str(_first(left)) + str(_first(right))
        return None
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    if b == 0:
        return None  # SPL2 eval usage: "Division by zero results in a null field."
    if operator == "/":
        quotient = a / b
        return int(quotient) if isinstance(a, int) and isinstance(b, int) and quotient.is_integer() else quotient
    return math.fmod(a, b) if isinstance(a, float) or isinstance(b, float) else a % b


def _round_half_away(number: float, digits: int) -> float:
    factor = 10.0**digits
    scaled = abs(number) * factor
    rounded = math.floor(scaled + 0.5) / factor
    return math.copysign(rounded, number)


def _xor(left: bool | None, right: bool | None) -> bool | None:
    return None if left is None or right is None else left != right


def _boolean_node(combine: Callable[[bool | None, bool | None], bool | None], left: Node, right: Node) -> Node:
    return lambda row, ctx: combine(_truth(left(row, ctx)), _truth(right(row, ctx)))


def _arith_node(operator: str, left: Node, right: Node) -> Node:
    return lambda row, ctx: _arith(operator, left(row, ctx), right(row, ctx))


class _ExpressionParser:
    """A precedence-climbing parser for eval expressions (Search Reference, eval, "Operators"):
    OR < XOR < AND < NOT < comparison (= == != < > <= >= LIKE) < + - . < * / % < unary minus."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize_expression(text)
        self.at = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise SplSyntaxError(f"expected {kind} in {self.text!r}, found {token.text or 'the end'!r}")
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "name" and token.text == word

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "end":
            raise SplSyntaxError(f"unexpected {self.peek().text!r} in {self.text!r}")
        return node

    def or_expr(self) -> Node:
        node = self.xor_expr()
        while self.keyword("OR"):
            self.take()
            left, right = node, self.xor_expr()
            node = _boolean_node(_kleene_or, left, right)
        return node

    def xor_expr(self) -> Node:
        node = self.and_expr()
        while self.keyword("XOR"):
            self.take()
            left, right = node, self.and_expr()

            node = _boolean_node(_xor, left, right)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.keyword("AND"):
            self.take()
            left, right = node, self.not_expr()
            node = _boolean_node(_kleene_and, left, right)
        return node

    def not_expr(self) -> Node:
        if self.keyword("NOT") or (self.peek().kind == "op" and self.peek().text == "!"):
            self.take()
            inner = self.not_expr()

            def negate(row: Row, ctx: SearchContext, n: Node = inner) -> bool | None:
                truth = _truth(n(row, ctx))
                return None if truth is None else not truth

            return negate
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        token = self.peek()
        if token.kind == "op" and token.text in ("=", "==", "!=", "<", ">", "<=", ">="):
            self.take()
            left, right, operator = node, self.additive(), token.text
            return lambda row, ctx: compare(left(row, ctx), operator, right(row, ctx))
        if self.keyword("LIKE"):
            self.take()
            left, right = node, self.additive()
            return lambda row, ctx: like(left(row, ctx), right(row, ctx))
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-", "."):
            operator = self.take().text
            left, right = node, self.multiplicative()
            node = _arith_node(operator, left, right)
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            operator = self.take().text
            left, right = node, self.unary()
            node = _arith_node(operator, left, right)
        return node

    def unary(self) -> Node:
        if self.peek().kind == "op" and self.peek().text in ("-", "+"):
            sign = self.take().text
            inner = self.unary()
            if sign == "+":
                return inner
            return lambda row, ctx: _arith("*", -1, inner(row, ctx))
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            number = float(token.text)
            literal: Scalar = int(number) if number.is_integer() and "." not in token.text else number
            return lambda row, ctx: literal
        if token.kind == "string":
            text = _Text(_unescape(token.text))
            return lambda row, ctx: text
        if token.kind == "field":
            name = _unescape(token.text)
            return lambda row, ctx: row.get(name)
        if token.kind == "lparen":
            node = self.or_expr()
            self.expect("rparen")
            return node
        if token.kind == "name":
            if self.peek().kind == "lparen":
                self.take()
                return self.call(token.text)
            name = token.text
            return lambda row, ctx: row.get(name)
        raise SplSyntaxError(f"unexpected {token.text or 'end'!r} in {self.text!r}")

    def arguments(self) -> list[Node]:
        found: list[Node] = []
        if self.peek().kind == "rparen":
            self.take()
            return found
        while True:
            found.append(self.or_expr())
            token = self.take()
            if token.kind == "rparen":
                return found
            if token.kind != "comma":
                raise SplSyntaxError(f"expected , or ) in {self.text!r}, found {token.text!r}")

    def call(self, name: str) -> Node:
        function = name.lower()
        if function == "mvfilter":
            # mvfilter(<predicate>): the predicate names one multivalue field, and is evaluated for each
            # of its values (Search Reference, "Multivalue eval functions", mvfilter: "This function
            # filters a multivalue field based on an arbitrary Boolean expression"; null when none passes).
            start = self.at
            predicate = self.or_expr()
            self.expect("rparen")
            names = _referenced_fields(self.tokens[start : self.at])
            if len(names) != 1:
                raise SplSyntaxError(f"mvfilter needs an expression over exactly one field, not {sorted(names)}")
            (field_name,) = names

            def mvfilter(row: Row, ctx: SearchContext) -> Value:
                kept = [v for v in values_of(row.get(field_name)) if predicate({**row, field_name: v}, ctx) is True]
                return _mv(kept)

            return mvfilter
        arguments = self.arguments()
        builder = _FUNCTIONS.get(function)
        if builder is None:
            raise SplUnsupported(f"the eval function {name}()")
        return builder(arguments)


_KEYWORDS = frozenset({"AND", "OR", "NOT", "XOR", "LIKE"})


def _referenced_fields(tokens: Sequence[Token]) -> set[str]:
    """The fields an expression's tokens name: quoted names, and bare names not called as functions."""
    names: set[str] = set()
    for at, token in enumerate(tokens):
        if token.kind == "field":
            names.add(_unescape(token.text))
        elif token.kind == "name" and token.text not in _KEYWORDS:
            called = at + 1 < len(tokens) and tokens[at + 1].kind == "lparen"
            if not called:
                names.add(token.text)
    return names


def compile_expression(text: str) -> Node:
    return _ExpressionParser(text).parse()


# ---------------------------------------------------------------------------------------- functions


def _arity(name: str, arguments: list[Node], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(arguments) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise SplSyntaxError(f"{name}() takes {wanted} arguments, not {len(arguments)}")


def _fn(name: str, low: int, high: int | None, body: Callable[..., Any]) -> Callable[[list[Node]], Node]:
    def build(arguments: list[Node]) -> Node:
        _arity(name, arguments, low, high)
        return lambda row, ctx: body(ctx, *(argument(row, ctx) for argument in arguments))

    return build


def _lazy(name: str, low: int, high: int | None, body: Callable[..., Any]) -> Callable[[list[Node]], Node]:
    """A function that decides which arguments to evaluate (if, case, coalesce...)."""

    def build(arguments: list[Node]) -> Node:
        _arity(name, arguments, low, high)
        return lambda row, ctx: body(row, ctx, arguments)

    return build


def _if(row: Row, ctx: SearchContext, arguments: list[Node]) -> Value:
    # "if(<predicate>,<true_value>,<false_value>)": a null predicate is not true, so the false value.
    chosen = arguments[1] if _truth(arguments[0](row, ctx)) is True else arguments[2]
    value: Value = chosen(row, ctx)
    return value


def _case(row: Row, ctx: SearchContext, arguments: list[Node]) -> Value:
    # case(<condition>,<value>,...): "the first value whose condition is true"; none: null.
    if len(arguments) % 2:
        raise SplError("case() takes pairs of condition and value")
    for at in range(0, len(arguments), 2):
        if _truth(arguments[at](row, ctx)) is True:
            return arguments[at + 1](row, ctx)  # type: ignore[no-any-return]
    return None


def _coalesce(row: Row, ctx: SearchContext, arguments: list[Node]) -> Value:
    # coalesce(<values>): "the first value that is not null".
    for argument in arguments:
        value = argument(row, ctx)
        if value is not None:
            return value  # type: ignore[no-any-return]
    return None


def _in(row: Row, ctx: SearchContext, arguments: list[Node]) -> bool | None:
    # in(<field>,<list>): "true if one of the values in the list matches a value that you specify".
    value = arguments[0](row, ctx)
    if value is None:
        return None
    return any(compare(value, "=", other(row, ctx)) for other in arguments[1:])


def _round(ctx: SearchContext, value: Value, digits: Value = 0) -> Value:
    number = as_number(value)
    places = as_number(digits)
    if number is None or places is None:
        return None
    rounded = _round_half_away(float(number), int(places))
    return int(rounded) if int(places) <= 0 else rounded


def _tonumber(ctx: SearchContext, value: Value, base: Value = 10) -> Value:
    text, radix = _first(value), as_number(base)
    if text is None or radix is None:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        return text
    try:
        return int(str(text).strip(), int(radix)) if int(radix) != 10 else as_number(str(text))
    except ValueError:
        return None


def _tostring(ctx: SearchContext, value: Value, style: Value = None) -> Value:
    if value is None:
        return None
    if style is None:
        return to_text(_first(value))
    number = as_number(value)
    if number is not None and _first(style) == "hex":
        return hex(int(number))
    if number is not None and _first(style) == "commas":
        return f"{number:,.2f}" if isinstance(number, float) else f"{number:,}"
    return to_text(_first(value))


def _match(ctx: SearchContext, value: Value, pattern: Value) -> bool | None:
    # match(<str>,<regex>): "true or false based on whether the REGEX matches the string" (anywhere).
    text, regex = _first(value), _first(pattern)
    if text is None or regex is None:
        return None
    return _regex(str(regex)).search(to_text(text) or "") is not None


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    # PCRE named groups (?<name>...) are Python's (?P<name>...).
    return re.compile(re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern))


def _mvindex(ctx: SearchContext, value: Value, start: Value, end: Value = None) -> Value:
    # mvindex(<mv>,<start>[,<end>]): 0-based, negative counts from the end, <end> inclusive; out of range: null.
    items = values_of(value)
    first, last = as_number(start), as_number(end) if end is not None else None
    if not items or first is None:
        return None
    count = len(items)
    begin = int(first) + count if first < 0 else int(first)
    if last is None:
        return items[begin] if 0 <= begin < count else None
    finish = int(last) + count if last < 0 else int(last)
    if begin < 0 or begin >= count or finish < begin:
        return None
    return _mv(items[begin : min(finish, count - 1) + 1])


def _mvfind(ctx: SearchContext, value: Value, pattern: Value) -> Value:
    # mvfind(<mv>,<regex>): "the index for the first value ... that matches"; null when none does.
    regex = _first(pattern)
    if regex is None:
        return None
    compiled = _regex(str(regex))
    for at, item in enumerate(values_of(value)):
        if compiled.search(to_text(item) or ""):
            return at
    return None


def _mvjoin(ctx: SearchContext, value: Value, delimiter: Value) -> Value:
    items = values_of(value)
    if not items:
        return None
    return str(_first(delimiter) or "").join(to_text(item) or "" for item in items)


def _mvappend(ctx: SearchContext, *values: Value) -> Value:
    # mvappend: null arguments add nothing.
    return _mv(item for value in values for item in values_of(value))


def _mvcount(ctx: SearchContext, value: Value) -> Value:
    # mvcount: "If the field has no values, ... returns NULL."
    return len(values_of(value)) or None


def _split(ctx: SearchContext, value: Value, delimiter: Value) -> Value:
    text, separator = _first(value), _first(delimiter)
    if text is None or separator is None:
        return None
    parts = to_text(text).split(str(separator)) if separator != "" else list(to_text(text) or "")  # type: ignore[union-attr]
    return _mv(parts)


def _len(ctx: SearchContext, value: Value) -> Value:
    text = _first(value)
    return None if text is None else len(to_text(text) or "")


def _substr(ctx: SearchContext, value: Value, start: Value, length: Value = None) -> Value:
    # substr(<str>,<start>[,<length>]): 1-based start; negative counts from the end.
    text, begin = _first(value), as_number(start)
    if text is None or begin is None:
        return None
    string = to_text(text) or ""
    index = int(begin) - 1 if begin > 0 else len(string) + int(begin)
    count = as_number(length)
    return string[max(index, 0) :] if count is None else string[max(index, 0) : max(index, 0) + int(count)]


def _string_fn(transform: Callable[[str], str]) -> Callable[..., Value]:
    def apply(ctx: SearchContext, value: Value) -> Value:
        text = _first(value)
        return None if text is None else transform(to_text(text) or "")

    return apply


def _replace(ctx: SearchContext, value: Value, pattern: Value, replacement: Value) -> Value:
    text, regex, new = _first(value), _first(pattern), _first(replacement)
    if text is None or regex is None or new is None:
        return None
    python_replacement = re.sub(r"\\(\d)", r"\\g<\1>", str(new))
    return _regex(str(regex)).sub(python_replacement, to_text(text) or "")


def _numeric(function: Callable[[float], float]) -> Callable[..., Value]:
    def apply(ctx: SearchContext, value: Value) -> Value:
        number = as_number(value)
        if number is None:
            return None
        try:
            result = function(float(number))
        except (ValueError, OverflowError):
            return None
        return int(result) if function in (math.floor, math.ceil) else result

    return apply


def _minmax(pick: Callable[..., Any]) -> Callable[..., Value]:
    # eval min/max: numbers compare as numbers and count below strings, which compare lexicographically.
    def apply(ctx: SearchContext, *values: Value) -> Value:
        items = [item for value in values for item in values_of(value)]
        if not items:
            return None

        def key(item: Scalar) -> tuple[int, float, str]:
            number = as_number(item)
            return (0, float(number), "") if number is not None else (1, 0.0, to_text(item) or "")

        chosen = pick(items, key=key)
        number = as_number(chosen)
        return number if number is not None else chosen

    return apply


def _relative_time(ctx: SearchContext, value: Value, spec: Value) -> Value:
    at, modifier = as_number(value), _first(spec)
    if at is None or modifier is None:
        return None
    return relative_time(float(at), str(modifier))


def _isnum(ctx: SearchContext, value: Value) -> bool:
    return as_number(value) is not None and not isinstance(_first(value), _Text)


def _isstr(ctx: SearchContext, value: Value) -> bool:
    return isinstance(_first(value), str) and as_number(value) is None


def _nullif(ctx: SearchContext, left: Value, right: Value) -> Value:
    return None if compare(left, "=", right) else left


def _abs(ctx: SearchContext, value: Value) -> Value:
    number = as_number(value)
    return None if number is None else abs(number)


def _mvdedup(ctx: SearchContext, value: Value) -> Value:
    return _mv(dict.fromkeys(values_of(value)))


def _mvsort(ctx: SearchContext, value: Value) -> Value:
    return _mv(sorted(values_of(value), key=lambda item: to_text(item) or ""))


def _strftime(ctx: SearchContext, value: Value, layout: Value) -> Value:
    at, text = as_number(value), _first(layout)
    if at is None or text is None:
        return None
    return datetime.fromtimestamp(float(at), UTC).strftime(str(text))


_FUNCTIONS: dict[str, Callable[[list[Node]], Node]] = {
    "if": _lazy("if", 3, 3, _if),
    "case": _lazy("case", 2, 200, _case),
    "coalesce": _lazy("coalesce", 1, 200, _coalesce),
    "in": _lazy("in", 2, 1000, _in),
    "isnull": _fn("isnull", 1, 1, lambda ctx, v: v is None),
    "isnotnull": _fn("isnotnull", 1, 1, lambda ctx, v: v is not None),
    "isnum": _fn("isnum", 1, 1, _isnum),
    "isint": _fn("isint", 1, 1, lambda ctx, v: isinstance(as_number(v), int)),
    "isstr": _fn("isstr", 1, 1, _isstr),
    "null": _fn("null", 0, 0, lambda ctx: None),
    "nullif": _fn("nullif", 2, 2, _nullif),
    "true": _fn("true", 0, 0, lambda ctx: True),
    "false": _fn("false", 0, 0, lambda ctx: False),
    "now": _fn("now", 0, 0, lambda ctx: int(ctx.now)),
    "time": _fn("time", 0, 0, lambda ctx: _time_module.time()),
    "relative_time": _fn("relative_time", 2, 2, _relative_time),
    "strftime": _fn("strftime", 2, 2, _strftime),
    "tonumber": _fn("tonumber", 1, 2, _tonumber),
    "tostring": _fn("tostring", 1, 2, _tostring),
    "round": _fn("round", 1, 2, _round),
    "abs": _fn("abs", 1, 1, _abs),
    "ceil": _fn("ceil", 1, 1, _numeric(math.ceil)),
    "ceiling": _fn("ceiling", 1, 1, _numeric(math.ceil)),
    "floor": _fn("floor", 1, 1, _numeric(math.floor)),
    "sqrt": _fn("sqrt", 1, 1, _numeric(math.sqrt)),
    "ln": _fn("ln", 1, 1, _numeric(math.log)),
    "exp": _fn("exp", 1, 1, _numeric(math.exp)),
    "pow": _fn("pow", 2, 2, lambda ctx, a, b: _arith_pow(a, b)),
    "pi": _fn("pi", 0, 0, lambda ctx: math.pi),
    "min": _fn("min", 1, 100, _minmax(min)),
    "max": _fn("max", 1, 100, _minmax(max)),
    "len": _fn("len", 1, 1, _len),
    "lower": _fn("lower", 1, 1, _string_fn(str.lower)),
    "upper": _fn("upper", 1, 1, _string_fn(str.upper)),
    "trim": _fn("trim", 1, 1, _string_fn(str.strip)),
    "ltrim": _fn("ltrim", 1, 1, _string_fn(str.lstrip)),
    "rtrim": _fn("rtrim", 1, 1, _string_fn(str.rstrip)),
    "substr": _fn("substr", 2, 3, _substr),
    "replace": _fn("replace", 3, 3, _replace),
    "split": _fn("split", 2, 2, _split),
    "match": _fn("match", 2, 2, _match),
    "like": _fn("like", 2, 2, lambda ctx, v, p: like(v, p)),
    "mvindex": _fn("mvindex", 2, 3, _mvindex),
    "mvfind": _fn("mvfind", 2, 2, _mvfind),
    "mvjoin": _fn("mvjoin", 2, 2, _mvjoin),
    "mvappend": _fn("mvappend", 1, 100, _mvappend),
    "mvcount": _fn("mvcount", 1, 1, _mvcount),
    "mvdedup": _fn("mvdedup", 1, 1, _mvdedup),
    "mvsort": _fn("mvsort", 1, 1, _mvsort),
}


def _arith_pow(base: Value, exponent: Value) -> Value:
    a, b = as_number(base), as_number(exponent)
    if a is None or b is None:
        return None
    try:
        return a**b
    except (OverflowError, ZeroDivisionError):
        return None


# ============================================================================================ search expressions


_MAJOR_BREAKERS = set(" \t\n\r[]<>(){}|!;,'\"*&?+")


def _tokenize_search(text: str) -> list[str]:
    """Split a search expression into words, keeping quoted parts (and ``field="a b"``) whole and
    parentheses apart."""
    tokens: list[str] = []
    current = ""
    at = 0
    depth_bracket = 0
    while at < len(text):
        char = text[at]
        if char == '"':
            end = at + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            current += text[at : end + 1]
            at = end + 1
            continue
        if char == "[":
            depth_bracket += 1
        elif char == "]":
            depth_bracket -= 1
        if depth_bracket == 0 and (char.isspace() or char in "()"):
            if current:
                tokens.append(current)
                current = ""
            if char in "()":
                tokens.append(char)
        else:
            current += char
        at += 1
    if current:
        tokens.append(current)
    return tokens


_FIELD_TERM = re.compile(r'^(?P<field>"[^"]+"|[^=<>!"()]+)(?P<op>!=|<=|>=|=|<|>)(?P<value>.*)$', re.S)
SearchNode: TypeAlias = Callable[[Row], bool]


def _unquote(text: str) -> str:
    return _unescape(text) if len(text) >= 2 and text[0] == text[-1] == '"' else text


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=500_000)
def term_matches(term: str, raw: str) -> bool:
    """A keyword or quoted phrase against ``_raw``: Search Manual, "Use CASE() and TERM() to match
    phrases": "By default, searches are case-insensitive". Terms match whole segments: a term matches
    where it starts and ends at a breaker (any character that is not a letter or digit: Splunk's major
    and minor breakers, "Event segmentation and searching"), so ``error`` matches ``error_code`` and
    ``"error":`` but not ``errors``. ``*`` is a wildcard."""
    return _term_regex(term).search(raw) is not None


@functools.lru_cache(maxsize=4096)
def _term_regex(term: str) -> re.Pattern[str]:
    pattern = r"\S*?".join(re.escape(part) for part in term.split("*"))
    boundary_left = "" if term.startswith("*") else r"(?<![^\W_])"
    boundary_right = "" if term.endswith("*") else r"(?![^\W_])"
    return re.compile(boundary_left + pattern + boundary_right, re.IGNORECASE)


@functools.lru_cache(maxsize=500_000)
def _value_matches(text: str, wanted: str) -> bool:
    return _wildcard(wanted).fullmatch(text) is not None


def field_matches(value: Value, operator: str, wanted: str) -> bool:
    """``field=value`` in a search: Search Manual, "Use CASE() and TERM() to match phrases": "By
    default, searches are case-insensitive" (field values too; field names are case-sensitive:
    Search Manual, "Use fields to retrieve events", "Field names are case sensitive"). ``*`` is a
    wildcard; ``field=*`` means the field exists. A multivalue field matches when one value does.
    ``<``/``>``: numbers compare as numbers, otherwise as strings. ``!=`` needs the field to exist
    (Search Manual, "Difference between NOT and !=": "!= ... only returns events where the field
    exists")."""
    found = values_of(value)
    if operator == "!=":
        return bool(found) and not any(field_matches(item, "=", wanted) for item in found)
    if operator == "=":
        if wanted == "*":
            return bool(found)
        return any(
            _value_matches(item, wanted) if isinstance(item, str) else _value_matches(to_text(item) or "", wanted)
            for item in found
        )
    return any(
        _compare_scalars(item, operator, _Text(wanted) if as_number(wanted) is None else wanted) for item in found
    )


class _SearchParser:
    """Search expressions (base search and ``| search``): Search Manual, "Boolean expressions":
    terms are ANDed unless OR comes between them; "The order of evaluation is NOT, then OR, then
    AND" - OR binds tighter than the implied or explicit AND."""

    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.at = 0
        #: index=/sourcetype=/earliest=/latest= seen at the top level (the base search's selection).
        self.indexes: list[str] = []
        self.time_modifiers: dict[str, str] = {}

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def parse(self) -> SearchNode:
        if not self.tokens:
            return lambda row: True
        node = self.and_expr(top=True)
        if self.peek() is not None:
            raise SplSyntaxError(f"unexpected {self.peek()!r} in the search {self.text!r}")
        return node

    def and_expr(self, top: bool = False) -> SearchNode:
        items: list[SearchNode] = []
        while self.peek() not in (None, ")"):
            if self.peek() == "AND":
                self.at += 1
                continue
            item = self.or_expr(top)
            if item is not None:
                items.append(item)
        return lambda row: all(item(row) for item in items)

    def or_expr(self, top: bool) -> SearchNode | None:
        first = self.not_expr(top)
        items = [first]
        while self.peek() == "OR":
            self.at += 1
            items.append(self.not_expr(False))
        if len(items) == 1:
            return first
        found = [item for item in items if item is not None]
        return lambda row: any(item(row) for item in found)

    def not_expr(self, top: bool) -> SearchNode | None:
        if self.peek() == "NOT":
            self.at += 1
            inner = self.not_expr(False)
            if inner is None:
                raise SplSyntaxError(f"NOT needs a term in {self.text!r}")
            return lambda row: not inner(row)
        return self.primary(top)

    def primary(self, top: bool) -> SearchNode | None:
        word = self.peek()
        if word is None:
            raise SplSyntaxError(f"the search {self.text!r} ends too soon")
        self.at += 1
        if word == "(":
            inner = self.and_expr()
            if self.peek() != ")":
                raise SplSyntaxError(f"unbalanced parentheses in {self.text!r}")
            self.at += 1
            return inner
        if word.startswith("[") and word.endswith("]"):
            raise SplUnsupported("subsearches in a search expression")
        match = _FIELD_TERM.match(word)
        if match:
            name = _unquote(match.group("field"))
            operator, wanted = match.group("op"), _unquote(match.group("value"))
            if name in ("earliest", "latest") and operator == "=":
                # Time modifiers (Search Reference, "Time modifiers") set the range, they filter nothing.
                self.time_modifiers[name] = wanted
                return None
            if top and name == "index" and operator == "=":
                self.indexes.append(wanted)
            return lambda row: field_matches(row.get(name), operator, wanted)
        if self.peek() == "IN":
            # field IN (a, b, c): Search Reference, search: "field IN (value-list)".
            self.at += 1
            if self.peek() != "(":
                raise SplSyntaxError(f"IN needs a parenthesised list in {self.text!r}")
            self.at += 1
            wanted_values: list[str] = []
            while self.peek() not in (None, ")"):
                wanted_values.extend(_unquote(v) for v in self.tokens[self.at].split(",") if v)
                self.at += 1
            self.at += 1
            name = word
            return lambda row: any(field_matches(row.get(name), "=", w) for w in wanted_values)
        if word.upper().startswith("TERM(") or word.upper().startswith("CASE("):
            raise SplUnsupported(f"the search directive {word.split('(')[0].upper()}()")
        term = _unquote(word)
        return lambda row: term_matches(term, to_text(row.get("_raw")) or "")


def compile_search_expression(text: str) -> _SearchParser:
    parser = _SearchParser(_tokenize_search(text), text)
    parser.root = parser.parse()  # type: ignore[attr-defined]
    return parser


# ============================================================================================ commands


_ARGUMENT = re.compile(r'(?P<key>[A-Za-z_][A-Za-z0-9_.]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S+)')


def _options(text: str, allowed: Iterable[str], command: str) -> tuple[dict[str, str], str]:
    """``key=value`` options of a command, and the rest of its text."""
    options: dict[str, str] = {}
    allowed_set = set(allowed)

    def take(match: re.Match[str]) -> str:
        key = match.group("key")
        if key not in allowed_set:
            return match.group(0)
        options[key] = _unquote(match.group("value"))
        return " "

    rest = _ARGUMENT.sub(take, text)
    return options, rest.strip()


def _field_list(text: str) -> list[str]:
    return [_unquote(part) for part in re.findall(r'"[^"]*"|[^\s,]+', text)]


class Command:
    name = ""
    #: Whether the command starts a pipeline (generating) rather than transforming rows.
    generating = False

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:  # pragma: no cover - interface
        raise NotImplementedError


class BaseSearch(Command):
    """The search at the start: events of the named indexes in the time range, filtered."""

    name = "search"
    generating = True

    def __init__(self, text: str) -> None:
        self.parser = compile_search_expression(text)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        earliest, latest = ctx.earliest, ctx.latest
        if "earliest" in self.parser.time_modifiers:
            earliest = relative_time(ctx.now, self.parser.time_modifiers["earliest"])
        if "latest" in self.parser.time_modifiers:
            latest = relative_time(ctx.now, self.parser.time_modifiers["latest"])
        wanted = self.parser.indexes or list(ctx.default_indexes)
        indexes = [i for i in ctx.index.indexes() if any(_wildcard(w).fullmatch(i) for w in wanted)]
        found: list[tuple[float, Row]] = []
        root: SearchNode = self.parser.root  # type: ignore[attr-defined]
        for index in indexes:
            for event in ctx.index.between(index, earliest, latest):
                if not _indexed_within(event, ctx):
                    continue
                row = event.fields()
                if root(row):
                    found.append((event.time, row))
        # Events come newest first, as a search returns them.
        found.sort(key=lambda item: -item[0])
        return [row for _, row in found]


def _indexed_within(event: IndexedEvent, ctx: SearchContext) -> bool:
    """Whether the event was indexed within the job's index-time bounds (earliest inclusive, latest
    exclusive, as for ``_time``)."""
    if ctx.index_earliest is not None and event.index_time < ctx.index_earliest:
        return False
    return ctx.index_latest is None or event.index_time < ctx.index_latest


class SearchFilter(Command):
    """``| search <expression>``: Search Reference, search: "pipe incoming search results into the
    search command" - the same expression language, over the results' fields."""

    name = "search"

    def __init__(self, text: str) -> None:
        self.parser = compile_search_expression(text)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        root: SearchNode = self.parser.root  # type: ignore[attr-defined]
        return [row for row in rows if root(row)]


class Where(Command):
    """Search Reference, where: "returns only the results for which the eval expression returns true"."""

    name = "where"

    def __init__(self, text: str) -> None:
        if not text.strip():
            raise SplSyntaxError("where needs an expression")
        self.expression = compile_expression(text)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        return [row for row in rows if _truth(self.expression(row, ctx)) is True]


def _split_top_level(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    depth, current, quote = 0, "", ""
    for char in text:
        if quote:
            current += char
            if char == quote and not current.endswith("\\" + quote):
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return parts


class Eval(Command):
    """Search Reference, eval: comma-separated ``field=expression``; each assignment sees the previous
    ones. A null result removes the field. Booleans cannot be stored (SPL2 eval usage: "Numbers and
    strings can be assigned to fields, while booleans cannot be assigned")."""

    name = "eval"

    def __init__(self, text: str) -> None:
        self.assignments: list[tuple[str, Node]] = []
        for part in _split_top_level(text, ","):
            match = re.match(r"\s*('(?:[^'\\]|\\.)*'|[^=\s]+)\s*=(?!=)(.*)$", part, re.S)
            if match is None:
                raise SplSyntaxError(f"eval needs field=expression, not {part.strip()!r}")
            name = match.group(1)
            name = _unescape(name) if name.startswith("'") else name
            self.assignments.append((name, compile_expression(match.group(2))))

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            row = dict(row)
            for name, expression in self.assignments:
                value = expression(row, ctx)
                if isinstance(value, bool):
                    raise SplError(f"eval {name}: fields cannot be assigned a boolean result; use if(...)")
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
            out.append(row)
        return out


class Spath(Command):
    """Search Reference, spath: ``input=`` (default ``_raw``), ``output=`` (default the path),
    ``path=``; without a path, every field of the input (extract-all). A path that is not in the
    input leaves the output field null (the reading the emulator takes)."""

    name = "spath"

    def __init__(self, text: str) -> None:
        options, rest = _options(text, ("input", "output", "path"), "spath")
        if rest:
            # spath <path> as a positional argument is the same as path=<path>.
            if "path" in options or " " in rest:
                raise SplSyntaxError(f"spath: cannot read {rest!r}")
            options["path"] = rest
        self.input = options.get("input", "_raw")
        self.path = options.get("path")
        self.output = options.get("output", self.path)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            row = dict(row)
            if self.path is None:
                document = parse_json_value(row.get(self.input))
                if isinstance(document, dict | list):
                    row.update(flatten_json(document))
            else:
                assert self.output is not None
                text = _first(row.get(self.input))
                value = spath_text(text, self.path) if isinstance(text, str) else None
                if value is None:
                    row.pop(self.output, None)
                else:
                    row[self.output] = value
            out.append(row)
        return out


# ---------------------------------------------------------------------------------------- stats


@dataclass
class _Aggregate:
    function: str
    argument: str | None
    #: For count(eval(...)) and friends: the expression counted.
    expression: Node | None
    output: str
    percentile: float | None = None


_PERCENTILE = re.compile(r"^(?:perc|p|exactperc|upperperc|percentile)(\d+(?:\.\d+)?)$")
_STATS_FUNCTIONS = {
    "count",
    "c",
    "dc",
    "distinct_count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "median",
    "range",
    "values",
    "list",
    "first",
    "last",
    "earliest",
    "latest",
    "stdev",
    "var",
    "mode",
}


def nearest_rank(numbers: Sequence[int | float], percentile: float) -> int | float | None:
    """limits.conf.spec, [stats] perc_method: "nearest-rank picks the number with 0-based rank
    R = floor((percentile/100)*count)" (the documented default). Splunk's default digest,
    ``perc_digest_type = tdigest``, approximates this; the emulator computes it exactly."""
    if not numbers:
        return None
    ordered = sorted(numbers)
    rank = min(math.floor(percentile / 100 * len(ordered)), len(ordered) - 1)
    return ordered[rank]


class Stats(Command):
    """Search Reference, stats: functions with ``AS``, and ``BY``. Without BY, one row even when there
    are no events ("If a BY clause is not used, one row is returned"); with BY, one row per distinct
    value combination, and an event whose BY field is null is in no row (standard Splunk behaviour,
    undocumented verbatim: ``fillnull`` is the documented way to keep such events). A multivalue BY
    field counts the event once in each of its values' groups."""

    name = "stats"

    def __init__(self, text: str) -> None:
        body, by = text, ""
        split = re.split(r"\s+(?:BY|by)\s+", text, maxsplit=1)
        if len(split) == 2:
            body, by = split
        self.by = _field_list(by)
        self.aggregates: list[_Aggregate] = []
        for match in re.finditer(
            r"(?P<call>[A-Za-z_][A-Za-z0-9_.]*(?:\((?:[^()]|\([^()]*(?:\([^()]*\))*[^()]*\))*\))?)"
            r"(?:\s+(?:AS|as)\s+(?P<as>\"[^\"]+\"|'[^']+'|[^\s,]+))?\s*,?",
            body.strip(),
        ):
            call = match.group("call")
            if not call:
                continue
            self.aggregates.append(self._aggregate(call, match.group("as")))
        if not self.aggregates:
            raise SplSyntaxError(f"stats needs at least one function, not {text!r}")

    @staticmethod
    def _aggregate(call: str, alias: str | None) -> _Aggregate:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_.]*)(?:\((.*)\))?", call, re.S)
        if match is None:
            raise SplSyntaxError(f"stats: cannot read {call!r}")
        function, argument = match.group(1), match.group(2)
        name = function.lower()
        percentile = None
        found = _PERCENTILE.match(name)
        if found:
            percentile = float(found.group(1))
            name = "perc"
        elif name not in _STATS_FUNCTIONS:
            raise SplUnsupported(f"the stats function {function}()")
        expression = None
        field_name = None
        if argument is not None:
            argument = argument.strip()
            inner = re.fullmatch(r"eval\((.*)\)", argument, re.S)
            if inner:
                expression = compile_expression(inner.group(1))
            else:
                field_name = _unquote(argument.strip("'"))
        elif name not in ("count", "c"):
            raise SplSyntaxError(f"stats: {function} needs a field")
        output = _unquote(alias.strip("'")) if alias else call
        return _Aggregate(name, field_name, expression, output, percentile)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        groups: dict[tuple[Scalar, ...], list[Row]] = {}
        if not self.by:
            groups[()] = list(rows)
        else:
            for row in rows:
                keys: list[list[Scalar]] = [values_of(row.get(name)) for name in self.by]
                if any(not values for values in keys):
                    continue  # a null BY field: the event is in no group
                for combination in _product(keys):
                    groups.setdefault(tuple(combination), []).append(row)
        out: list[Row] = []
        for key in sorted(groups, key=lambda k: tuple(to_text(v) or "" for v in k)):
            result: Row = dict(zip(self.by, key, strict=True))
            for aggregate in self.aggregates:
                value = self._compute(aggregate, groups[key], ctx)
                if value is not None:
                    result[aggregate.output] = value
            out.append(result)
        return out

    @staticmethod
    def _inputs(aggregate: _Aggregate, rows: list[Row], ctx: SearchContext) -> list[Scalar]:
        if aggregate.expression is not None:
            found: list[Scalar] = []
            for row in rows:
                value = aggregate.expression(row, ctx)
                if isinstance(value, bool):
                    # count(eval(x="a")): "counts the events where the expression is true".
                    if value:
                        found.append(1)
                elif value is not None:
                    found.extend(values_of(value))
            return found
        assert aggregate.argument is not None
        return [item for row in rows for item in values_of(row.get(aggregate.argument))]

    def _compute(self, aggregate: _Aggregate, rows: list[Row], ctx: SearchContext) -> Value:
        name = aggregate.function
        if name in ("count", "c") and aggregate.argument is None and aggregate.expression is None:
            return len(rows)
        if name in ("earliest", "latest"):
            timed = [(as_number(row.get("_time")) or 0, row) for row in rows if aggregate.argument in row]
            if not timed:
                return None
            pick = min if name == "earliest" else max
            return pick(timed, key=lambda item: item[0])[1].get(aggregate.argument or "")
        items = self._inputs(aggregate, rows, ctx)
        if name in ("count", "c"):
            return len(items)
        if name in ("dc", "distinct_count"):
            return len({to_text(item) for item in items})
        if name == "values":
            # values: "distinct values ... in lexicographical order".
            return _mv(sorted({to_text(item) or "" for item in items}))
        if name == "list":
            return _mv(items[:100])
        if name == "first":
            return items[0] if items else None
        if name == "last":
            return items[-1] if items else None
        if name == "mode":
            if not items:
                return None
            counted: dict[str, int] = {}
            for item in items:
                counted[to_text(item) or ""] = counted.get(to_text(item) or "", 0) + 1
            return max(counted, key=lambda k: counted[k])
        numbers = [n for n in (as_number(item) for item in items) if n is not None]
        if name in ("min", "max"):
            # stats min/max: numeric when there are numbers; lexicographic over the values otherwise.
            if numbers:
                return min(numbers) if name == "min" else max(numbers)
            texts = [to_text(item) or "" for item in items]
            return (min(texts) if name == "min" else max(texts)) if texts else None
        if not numbers:
            return None
        if name == "sum":
            return sum(numbers)
        if name in ("avg", "mean"):
            return sum(numbers) / len(numbers)
        if name == "range":
            return max(numbers) - min(numbers)
        if name == "median":
            return nearest_rank(numbers, 50)
        if name == "perc":
            assert aggregate.percentile is not None
            return nearest_rank(numbers, aggregate.percentile)
        if name in ("stdev", "var"):
            if len(numbers) < 2:
                return None
            mean = sum(numbers) / len(numbers)
            variance = sum((n - mean) ** 2 for n in numbers) / (len(numbers) - 1)
            return math.sqrt(variance) if name == "stdev" else variance
        raise SplUnsupported(f"the stats function {name}()")  # pragma: no cover - checked when parsed


def _product(lists: list[list[Scalar]]) -> Iterator[list[Scalar]]:
    if not lists:
        yield []
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield [head, *tail]


# ---------------------------------------------------------------------------------------- the rest


class AddInfo(Command):
    """Search Reference, addinfo: "Adds fields to each event that contain global, common information
    about the search": info_min_time, info_max_time (``+Infinity`` without a latest time),
    info_search_time, info_sid."""

    name = "addinfo"

    def __init__(self, text: str) -> None:
        if text.strip():
            raise SplUnsupported("addinfo options")

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        info: Row = {
            "info_min_time": ctx.earliest if ctx.earliest is not None else 0,
            "info_max_time": ctx.latest if ctx.latest is not None else "+Infinity",
            "info_search_time": ctx.now,
            "info_sid": ctx.sid,
        }
        return [{**row, **info} for row in rows]


class MakeResults(Command):
    """Search Reference, makeresults: "Generates the specified number of search results", each with
    ``_time`` (count default 1)."""

    name = "makeresults"
    generating = True

    def __init__(self, text: str) -> None:
        options, rest = _options(text, ("count",), "makeresults")
        if rest:
            raise SplUnsupported(f"makeresults {rest}")
        self.count = int(options.get("count", "1"))

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        return [{"_time": int(ctx.now)} for _ in range(self.count)]


class Append(Command):
    """Search Reference, append: "Appends the results of a subsearch to the current results"."""

    name = "append"

    def __init__(self, text: str) -> None:
        body = text.strip()
        if not (body.startswith("[") and body.endswith("]")):
            raise SplUnsupported(f"append without a [subsearch]: {text.strip()!r}")
        self.subsearch = compile_search(body[1:-1])

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        return [*rows, *self.subsearch.run(ctx)]


class MvExpand(Command):
    """Search Reference, mvexpand: "Expands the values of a multivalue field into separate events, one
    event for each value"."""

    name = "mvexpand"

    def __init__(self, text: str) -> None:
        _, rest = _options(text, ("limit",), "mvexpand")
        names = _field_list(rest)
        if len(names) != 1:
            raise SplSyntaxError("mvexpand takes one field")
        self.field = names[0]

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            values = values_of(row.get(self.field))
            if not values:
                out.append(row)
            out.extend({**row, self.field: value} for value in values)
        return out


class Fields(Command):
    """Search Reference, fields: keep (``+``, the default) or remove (``-``) fields; internal fields
    (``_raw``, ``_time``) stay unless removed."""

    name = "fields"

    def __init__(self, text: str) -> None:
        body = text.strip()
        self.remove = body.startswith("-")
        body = body.lstrip("+-").strip()
        self.patterns = [_wildcard(name) for name in _field_list(body)]

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        def keep(name: str) -> bool:
            matched = any(p.fullmatch(name) for p in self.patterns)
            return not matched if self.remove else matched or name in ("_raw", "_time")

        return [{k: v for k, v in row.items() if keep(k)} for row in rows]


class Table(Command):
    """Search Reference, table: "Returns a table that is formed by only the fields that you specify"."""

    name = "table"

    def __init__(self, text: str) -> None:
        self.names = _field_list(text)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        patterns = [_wildcard(name) for name in self.names]
        return [{k: v for k, v in row.items() if any(p.fullmatch(k) for p in patterns)} for row in rows]


class Rename(Command):
    """Search Reference, rename: ``field AS new``, comma-separated."""

    name = "rename"

    def __init__(self, text: str) -> None:
        self.pairs: list[tuple[str, str]] = []
        for part in _split_top_level(text, ","):
            words = _field_list(part.replace(" as ", " AS "))
            if len(words) != 3 or words[1] != "AS" or "*" in words[0]:
                raise SplUnsupported(f"rename {part.strip()!r} (only field AS new)")
            self.pairs.append((words[0], words[2]))

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            row = dict(row)
            for old, new in self.pairs:
                if old in row:
                    row[new] = row.pop(old)
            out.append(row)
        return out


class FillNull(Command):
    """Search Reference, fillnull: "Replaces null values with a specified value" (``value=``, default
    0); without a field list, every field of the results."""

    name = "fillnull"

    def __init__(self, text: str) -> None:
        options, rest = _options(text, ("value",), "fillnull")
        self.value = options.get("value", "0")
        self.names = _field_list(rest)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        names = self.names or sorted({name for row in rows for name in row})
        return [{**row, **{n: self.value for n in names if row.get(n) is None}} for row in rows]


class Head(Command):
    """Search Reference, head: "Returns the first N number of specified results" (default 10)."""

    name = "head"

    def __init__(self, text: str) -> None:
        options, rest = _options(text, ("limit",), "head")
        count = options.get("limit") or rest or "10"
        if not count.isdigit():
            raise SplUnsupported(f"head {text.strip()!r}")
        self.count = int(count)

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        return rows[: self.count]


class Sort(Command):
    """Search Reference, sort: ``sort [N] [+|-]field ...``; numbers as numbers; default limit 10000."""

    name = "sort"

    def __init__(self, text: str) -> None:
        words = _field_list(text.replace("- ", "-").replace("+ ", "+"))
        self.limit = 10000
        if words and words[0].isdigit():
            self.limit = int(words.pop(0)) or 10**9  # sort 0: no limit
        self.keys = [(word.lstrip("+-"), word.startswith("-")) for word in words]

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        ordered = list(rows)
        for name, descending in reversed(self.keys):

            def key(row: Row, n: str = name) -> tuple[int, float, str]:
                value = row.get(n)
                number = as_number(value)
                if value is None:
                    return (2, 0.0, "")
                return (0, float(number), "") if number is not None else (1, 0.0, to_text(value) or "")

            ordered.sort(key=key, reverse=descending)
        return ordered[: self.limit]


class Bin(Command):
    """Search Reference, bin: ``bin [span=<span>] <field> [AS new]``: "Puts continuous numerical values
    into discrete sets"; ``_time`` spans are time spans, aligned to the epoch (UTC)."""

    name = "bin"

    def __init__(self, text: str) -> None:
        options, rest = _options(text, ("span",), "bin")
        if "span" not in options:
            raise SplUnsupported("bin without span=")
        words = _field_list(rest)
        self.field = words[0] if words else "_time"
        self.output = words[2] if len(words) == 3 and words[1].upper() == "AS" else self.field
        self.span = span_seconds(options["span"])

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            number = as_number(row.get(self.field))
            row = dict(row)
            if number is not None:
                binned = math.floor(number / self.span) * self.span
                row[self.output] = int(binned) if float(binned).is_integer() else binned
            out.append(row)
        return out


class Rex(Command):
    """Search Reference, rex: ``rex [field=<field>] "<regex>"`` with named groups (default field
    ``_raw``; ``max_match`` default 1)."""

    name = "rex"

    def __init__(self, text: str) -> None:
        options, rest = _options(text, ("field", "max_match", "mode"), "rex")
        if "mode" in options:
            raise SplUnsupported("rex mode=sed")
        self.field = options.get("field", "_raw")
        self.max_match = int(options.get("max_match", "1"))
        self.regex = _regex(_unquote(rest))

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            row = dict(row)
            text = to_text(_first(row.get(self.field)))
            if text is not None:
                found: dict[str, list[Scalar]] = {}
                for count, match in enumerate(self.regex.finditer(text)):
                    if self.max_match and count >= self.max_match:
                        break
                    for name, value in match.groupdict().items():
                        if value is not None:
                            found.setdefault(name, []).append(value)
                for name, values in found.items():
                    row[name] = _mv(values)
            out.append(row)
        return out


class Dedup(Command):
    """Search Reference, dedup: keeps the first result for each combination of the fields' values."""

    name = "dedup"

    def __init__(self, text: str) -> None:
        self.names = _field_list(text)
        if not self.names or any(n.isdigit() for n in self.names):
            raise SplUnsupported(f"dedup {text.strip()!r}")

    def run(self, rows: list[Row], ctx: SearchContext) -> list[Row]:
        seen: set[tuple[str | None, ...]] = set()
        out: list[Row] = []
        for row in rows:
            if any(row.get(n) is None for n in self.names):
                continue
            key = tuple(to_text(row.get(n)) for n in self.names)
            if key not in seen:
                seen.add(key)
                out.append(row)
        return out


_COMMANDS: dict[str, Callable[[str], Command]] = {
    "search": SearchFilter,
    "where": Where,
    "eval": Eval,
    "spath": Spath,
    "stats": Stats,
    "addinfo": AddInfo,
    "makeresults": MakeResults,
    "append": Append,
    "mvexpand": MvExpand,
    "fields": Fields,
    "table": Table,
    "rename": Rename,
    "fillnull": FillNull,
    "head": Head,
    "sort": Sort,
    "bin": Bin,
    "bucket": Bin,
    "rex": Rex,
    "dedup": Dedup,
}


# ============================================================================================ pipelines


@dataclass
class Pipeline:
    text: str
    commands: list[Command]

    def run(self, ctx: SearchContext) -> list[Row]:
        rows: list[Row] = []
        for command in self.commands:
            rows = command.run(rows, ctx)
        return rows


def split_pipeline(text: str) -> list[str]:
    """The search's commands: split at ``|`` outside quotes and ``[subsearches]``."""
    parts: list[str] = []
    current, depth, quote = "", 0, ""
    at = 0
    while at < len(text):
        char = text[at]
        if quote:
            current += char
            if char == "\\" and at + 1 < len(text):
                current += text[at + 1]
                at += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current += char
        elif char == "[":
            depth += 1
            current += char
        elif char == "]":
            depth -= 1
            current += char
        elif char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
        at += 1
    if quote or depth:
        raise SplSyntaxError("unbalanced quotes or brackets in the search")
    parts.append(current)
    return [part.strip() for part in parts]


def compile_search(text: str) -> Pipeline:
    """Parse a saved search's SPL. Raises :class:`SplUnsupported` naming the first command (or
    function) the emulator cannot run, :class:`SplSyntaxError` when it cannot read it."""
    parts = split_pipeline(text.strip())
    commands: list[Command] = []
    first, rest = parts[0], parts[1:]
    if first == "":
        # A search starting with "|" starts with a generating command.
        if not rest:
            raise SplSyntaxError("the search is empty")
        first_command, *rest = rest
        commands.append(_command(first_command, generating=True))
    else:
        body = first[len("search ") :] if first.lower().startswith("search ") else first
        commands.append(BaseSearch(body))
    for part in rest:
        commands.append(_command(part, generating=False))
    return Pipeline(text, commands)


def _command(text: str, *, generating: bool) -> Command:
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(.*)$", text, re.S)
    if match is None:
        raise SplSyntaxError(f"cannot read the command {text!r}")
    name, arguments = match.group(1).lower(), match.group(2)
    builder = _COMMANDS.get(name)
    if builder is None:
        raise SplUnsupported(f"command {name}")
    command = builder(arguments)
    if generating and not command.generating:
        raise SplSyntaxError(f"{name} cannot start a search (it is not a generating command)")
    if not generating and command.generating:
        raise SplSyntaxError(f"{name} must start the search (after a leading |)")
    return command


def result_text(row: Row) -> dict[str, str]:
    """A result row as the REST API and alert actions show it: every value as text."""
    return {name: text for name, value in row.items() if (text := to_text(value)) is not None}
