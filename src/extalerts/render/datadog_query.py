"""Datadog query grammar: the monitor query forms extalerts emits, and the log search syntax inside them.

Used to check every rendered monitor before it is written (the API client does not look inside the
query string), and by the local Datadog emulator to answer like the API does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRING = r'"((?:[^"\\]|\\.)*)"'
_WINDOW = r"(\d+)([mh])"
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_OPERATOR = r"(<=|>=|<|>|==|!=)"

_LOG_QUERY = re.compile(
    rf"^logs\({_STRING}\)\.index\({_STRING}\)"
    rf"\.rollup\({_STRING}(?:,\s*{_STRING})?\)"
    rf"(?:\.by\({_STRING}\))?"
    rf"\.last\(\"{_WINDOW}\"\)\s+{_OPERATOR}\s+{_NUMBER}$"
)
_FORMULA_QUERY = re.compile(rf"^formula\({_STRING}\)\.last\(\"{_WINDOW}\"\)\s+{_OPERATOR}\s+{_NUMBER}$")
_CHANGE_QUERY = re.compile(
    r"^(pct_change|change)\((avg|sum|min|max)\(last_(\d+[mhd])\),\s*last_(\d+[mhd])\)"
    r":(avg|sum|min|max):([a-zA-Z][a-zA-Z0-9_.]*)\{([^{}]*)\}"
    r"(?:\s+by\s+\{([^{}]+)\})?(\.as_count\(\)|\.as_rate\(\))?"
    rf"\s+{_OPERATOR}\s+{_NUMBER}$"
)

LOG_ROLLUPS = frozenset({"count", "avg", "cardinality"})
FORMULA_FUNCTIONS = frozenset({"cutoff_min", "cutoff_max", "abs", "default_zero"})
CHANGE_SHIFTS = frozenset({"5m", "10m", "15m", "30m", "1h", "2h", "4h", "1d"})


@dataclass(frozen=True)
class MonitorQuery:
    """What the checks need to know about a parsed monitor query."""

    form: str  # "logs", "formula" or "change"
    operator: str
    threshold: float
    search: str | None = None
    group_by: tuple[str, ...] = ()
    formula: str | None = None
    metric: str | None = None


class QueryError(ValueError):
    """The query does not follow the grammar; the message reads like the API's."""


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _window_ok(amount: str, unit: str) -> bool:
    number = int(amount)
    return 1 <= number <= (2880 if unit == "m" else 48)


def parse_monitor_query(query: str, monitor_type: str) -> MonitorQuery:
    """Parse a ``log alert`` or ``query alert`` query; raise :class:`QueryError` when it is invalid."""
    if "'" in query and monitor_type == "log alert" and not query.startswith(("logs(", "formula(")):
        raise QueryError("invalid operator specified: ")
    if monitor_type == "log alert":
        return _parse_log_alert(query)
    if monitor_type in ("query alert", "metric alert"):
        return _parse_change(query)
    raise QueryError(f"unsupported monitor type {monitor_type!r}")


def _parse_log_alert(query: str) -> MonitorQuery:
    match = _LOG_QUERY.match(query)
    if match:
        search, index, rollup, measure, by, amount, unit, op, number = match.groups()
        if rollup not in LOG_ROLLUPS:
            raise QueryError(f"unsupported rollup {rollup!r}; log queries take count, avg or cardinality")
        if rollup != "count" and not measure:
            raise QueryError(f"rollup {rollup!r} needs a measure or facet")
        if rollup == "count" and measure:
            raise QueryError("rollup 'count' takes no measure")
        if not _window_ok(amount, unit):
            raise QueryError(f"time window {amount}{unit} is out of range (1m-2880m, 1h-48h)")
        if not index:
            raise QueryError("index must not be empty")
        text = _unescape(search)
        problems = check_search(text)
        if problems:
            raise QueryError("; ".join(problems))
        groups = tuple(g.strip() for g in _unescape(by).split(",")) if by else ()
        if len(groups) > 4 or any(not g for g in groups):
            raise QueryError("by() takes one to four comma-separated facets")
        return MonitorQuery("logs", op, float(number), search=text, group_by=groups)
    match = _FORMULA_QUERY.match(query)
    if match:
        formula, amount, unit, op, number = match.groups()
        if not _window_ok(amount, unit):
            raise QueryError(f"time window {amount}{unit} is out of range (1m-2880m, 1h-48h)")
        problems = check_formula(_unescape(formula))
        if problems:
            raise QueryError("; ".join(problems))
        return MonitorQuery("formula", op, float(number), formula=_unescape(formula))
    raise QueryError("invalid operator specified: ")


def _parse_change(query: str) -> MonitorQuery:
    match = _CHANGE_QUERY.match(query)
    if not match:
        raise QueryError("invalid metric change query")
    _, _, _, shift, _, metric, scope, by, _, op, number = match.groups()
    if shift not in CHANGE_SHIFTS:
        raise QueryError(f"timeshift last_{shift} is not supported; use one of {', '.join(sorted(CHANGE_SHIFTS))}")
    groups = tuple(g.strip() for g in by.split(",")) if by else ()
    if not scope.strip():
        raise QueryError("empty scope {}; use {*} for all")
    return MonitorQuery("change", op, float(number), group_by=groups, metric=metric)


# --------------------------------------------------------------------------------------------- formula

_FORMULA_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/(),]))")


def formula_variables(formula: str) -> set[str]:
    """Names a formula reads (function names excluded)."""
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*(?=\s*(\()?)", formula):
        if match.group(1) is None:
            names.add(match.group(0))
    return names


def check_formula(formula: str) -> list[str]:
    """Problems in a formula expression (balanced parentheses, known functions, no dangling operators)."""
    problems: list[str] = []
    depth = 0
    expect_operand = True
    pos = 0
    text = formula.rstrip()
    while pos < len(text):
        match = _FORMULA_TOKEN.match(text, pos)
        if not match:
            return [f"formula: unexpected character {text[pos]!r}"]
        pos = match.end()
        if match.group("num") or match.group("name"):
            name = match.group("name")
            if not expect_operand:
                return [f"formula: missing operator before {match.group(0).strip()!r}"]
            if name and text[pos : pos + 1] == "(":
                if name not in FORMULA_FUNCTIONS:
                    problems.append(f"formula: unknown function {name!r}")
                continue
            expect_operand = False
            continue
        op = match.group("op")
        if op == "(":
            depth += 1
            expect_operand = True
        elif op == ")":
            depth -= 1
            if depth < 0 or expect_operand:
                return ["formula: unbalanced or empty parentheses"]
        elif op == ",":
            if expect_operand:
                return ["formula: missing argument"]
            expect_operand = True
        else:
            if expect_operand and op != "-":
                return [f"formula: operator {op!r} needs an operand before it"]
            expect_operand = True
    if depth != 0:
        problems.append("formula: unbalanced parentheses")
    if expect_operand:
        problems.append("formula: ends with an operator")
    return problems


# --------------------------------------------------------------------------------------------- log search


class _SearchChecker:
    """A small recursive-descent reader of Datadog log search syntax; collects problems, never raises."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.problems: list[str] = []

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self) -> str | None:
        for word in ("AND", "OR", "NOT"):
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and (end == len(self.text) or self.text[end] in " \t\n()"):
                return word
        return None

    def fail(self, message: str) -> None:
        self.problems.append(f"{message} at character {self.pos + 1} of the search")
        self.pos = len(self.text)

    def run(self) -> list[str]:
        self.skip_space()
        if self.pos < len(self.text):
            self.expression(depth=0)
        return self.problems

    def expression(self, depth: int) -> None:
        need_term = True
        while not self.problems:
            self.skip_space()
            char = self.peek()
            if not char:
                if need_term:
                    self.fail("the search ends where a term is expected")
                return
            if char == ")":
                if depth == 0:
                    self.fail("unbalanced `)`")
                elif need_term:
                    self.fail("empty group or dangling operator before `)`")
                return
            word = self.keyword()
            if word in ("AND", "OR"):
                if need_term:
                    self.fail(f"`{word}` needs a term before it")
                    return
                self.pos += len(word)
                need_term = True
                continue
            if word == "NOT":
                self.pos += 3
                self.skip_space()
                need_term = True
                continue
            if char == "-":
                self.pos += 1
            self.term(depth)
            need_term = False

    def term(self, depth: int) -> None:
        char = self.peek()
        if char == "(":
            self.pos += 1
            self.expression(depth + 1)
            if self.problems:
                return
            if self.peek() != ")":
                self.fail("missing `)`")
                return
            self.pos += 1
            return
        if char == '"':
            self.quoted()
            return
        start = self.pos
        self.bare()
        if self.peek() == ":" and self.pos > start:
            self.pos += 1
            self.value()
        elif self.pos == start:
            self.fail(f"unexpected `{char}`")

    def quoted(self) -> None:
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return
            self.pos += 1
        self.fail("unterminated quoted phrase")

    def bare(self) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    self.fail("dangling backslash")
                    return
                self.pos += 2
                continue
            if char.isspace() or char in '()":' or char in "[]{}":
                return
            self.pos += 1

    def value(self) -> None:
        char = self.peek()
        if char in ("", " ", ")"):
            self.fail("an attribute needs a value after `:`")
        elif char == '"':
            self.quoted()
        elif char == "(":
            self.pos += 1
            self.expression(depth=1)
            if not self.problems and self.peek() == ")":
                self.pos += 1
            elif not self.problems:
                self.fail("missing `)`")
        elif char == "[":
            end = self.text.find("]", self.pos)
            inner = self.text[self.pos + 1 : end] if end > 0 else ""
            if end < 0 or not re.fullmatch(r"\s*\S+\s+TO\s+\S+\s*", inner):
                self.fail("a range is written [low TO high]")
                return
            self.pos = end + 1
        elif char in "<>":
            match = re.match(r"(<=|>=|<|>)(-?\d+(?:\.\d+)?)", self.text[self.pos :])
            if not match:
                self.fail("a comparison needs a number, e.g. >=500")
                return
            self.pos += match.end()
        else:
            start = self.pos
            self.bare()
            if self.pos == start:
                self.fail("an attribute needs a value after `:`")


def check_search(text: str) -> list[str]:
    """Problems in a Datadog log search string (empty list when well formed)."""
    return _SearchChecker(text).run()


def quote_query_argument(text: str) -> str:
    """``text`` as the double-quoted argument of ``logs(…)``/``formula(…)``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
