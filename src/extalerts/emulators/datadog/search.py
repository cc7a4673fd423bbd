"""The Datadog log search syntax, compiled to a predicate over stored logs.

Every rule below cites ``logs/explorer/search_syntax.md`` ("Search Syntax") unless it names another page:

* "To search on a specific attribute, add `@` to specify you are searching on an attribute." → ``@a.b:v``
  reads the JSON attributes; a key without ``@`` is a reserved attribute (``host source status service
  trace_id message``) or else a tag (``env:prod``): "Reserved attributes and tags are searched without @".
* "A free text search … searches for the term in the message" (a bare term reads ``message`` only; full
  text is case insensitive), and ``*:term`` "searches all log attributes" (case insensitive as well).
* "Attributes searches are case sensitive."
* Booleans: "`AND` … `OR` … `-` … `NOT`", upper case only ("The boolean operators are case sensitive");
  terms side by side are ANDed; parentheses group; ``@attr:(a OR b)`` groups values of one attribute.
* Wildcards: "`*` … matches any sequence of characters" and "`?` … a single character"; "Wildcards only
  work as wildcards outside of double quotes". ``@attr:*`` matches logs that have the attribute.
* Escaping: "The following characters are considered special and require escaping with the `\\` character"
  or "double quotes" around the value.
* Numerical values: "In order to search on a numerical attribute, first add it as a facet. You can then
  use numerical operators (`<`,`>`, `<=`, or `>=`) to perform a search on numerical facets." and ranges
  ``[400 TO 499]``: only through a numeric facet (see :mod:`.facets`); without one they match nothing.
* Arrays: a value "either Peter or an array that contains Peter" matches ``Peter``; "Search can also be
  used on non-faceted array attributes"; ``@Obj.key:value`` reaches objects inside arrays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from extalerts.emulators.datadog.facets import FacetRegistry
from extalerts.emulators.datadog.logs import RESERVED, StoredLog, number_of, path_values, text_of

Matcher = Callable[[StoredLog], bool]
#: A value test: from a log's values at one key (and the facet registry) to whether one matches.
ValueTest = Callable[[list[object], "Key", FacetRegistry], bool]
_KEYWORDS = ("AND", "OR", "NOT")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class SearchError(ValueError):
    """The search does not follow the syntax; the message names the character."""


@dataclass(frozen=True)
class Key:
    """Where a term looks: an ``@attribute`` path, a reserved attribute, a tag, all attributes or the message."""

    kind: str  # "attribute", "reserved", "tag", "any" or "message"
    name: str


def compile_search(text: str, facets: FacetRegistry | None = None) -> Matcher:
    """A predicate for ``text`` (an empty search, or ``*``, matches every log)."""
    registry = facets if facets is not None else FacetRegistry()
    node = _parse(text.strip())
    return lambda log: node(log, registry)


# A compiled node takes the log and the facet registry, so facets added later apply to later matches.
_Node = Callable[[StoredLog, FacetRegistry], bool]


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Node:
    if not text or text == "*":
        return lambda log, facets: True
    reader = _Reader(text)
    node = reader.expression()
    reader.skip_space()
    if reader.pos < len(text):
        reader.fail(f"unexpected `{text[reader.pos]}`")
    return node


def check(text: str) -> str | None:
    """Why ``text`` is not a valid search, or None."""
    try:
        _parse(text.strip())
    except SearchError as exc:
        return str(exc)
    return None


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> None:
        raise SearchError(f"{message} at character {self.pos + 1} of the search {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self) -> str | None:
        for word in _KEYWORDS:
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and (end == len(self.text) or self.text[end] in " \t\n()"):
                return word
        return None

    # expression := and ("OR" and)*  ;  and := unary (["AND"] unary)*  ;  unary := ("NOT"|"-") unary | primary
    def expression(self, value_of: Key | None = None) -> _Node:
        items = [self.conjunction(value_of)]
        while True:
            self.skip_space()
            if self.keyword() != "OR":
                break
            self.pos += 2
            items.append(self.conjunction(value_of))
        if len(items) == 1:
            return items[0]
        return lambda log, facets: any(item(log, facets) for item in items)

    def conjunction(self, value_of: Key | None) -> _Node:
        items = [self.unary(value_of)]
        while True:
            self.skip_space()
            char = self.peek()
            word = self.keyword()
            if not char or char == ")" or word == "OR":
                break
            if word == "AND":
                self.pos += 3
            items.append(self.unary(value_of))
        if len(items) == 1:
            return items[0]
        return lambda log, facets: all(item(log, facets) for item in items)

    def unary(self, value_of: Key | None) -> _Node:
        self.skip_space()
        if self.keyword() == "NOT":
            self.pos += 3
            inner = self.unary(value_of)
            return lambda log, facets: not inner(log, facets)
        if self.peek() == "-":
            self.pos += 1
            inner = self.unary(value_of)
            return lambda log, facets: not inner(log, facets)
        return self.primary(value_of)

    def primary(self, value_of: Key | None) -> _Node:
        self.skip_space()
        char = self.peek()
        if not char:
            self.fail("the search ends where a term is expected")
        if char == ")":
            self.fail("empty group or dangling operator before `)`")
        if char == "(":
            self.pos += 1
            inner = self.expression(value_of)
            self.skip_space()
            if self.peek() != ")":
                self.fail("missing `)`")
            self.pos += 1
            return inner
        if value_of is not None:
            return _term(value_of, self.value())
        # A key is a bare word followed by an unescaped `:`.
        start = self.pos
        if char != '"':
            word = self.bare(stop=":")
            if self.peek() == ":" and self.pos > start:
                self.pos += 1
                key = _key(word)
                if self.peek() == "(":
                    self.pos += 1
                    inner = self.expression(key)
                    self.skip_space()
                    if self.peek() != ")":
                        self.fail("missing `)`")
                    self.pos += 1
                    return inner
                if self.peek() in ("", " ", ")"):
                    self.fail("an attribute needs a value after `:`")
                return _term(key, self.value())
            self.pos = start
        return _term(Key("message", "message"), self.value())

    def bare(self, stop: str = "") -> str:
        """A bare word up to a space, a parenthesis or ``stop``, escapes kept (``\\x``)."""
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    self.fail("dangling backslash")
                out.append(self.text[self.pos : self.pos + 2])
                self.pos += 2
                continue
            if char.isspace() or char in "()" or char in stop:
                break
            out.append(char)
            self.pos += 1
        return "".join(out)

    def value(self) -> ValueTest:
        char = self.peek()
        if char == '"':
            return _literal(self.quoted())
        if char == "[":
            end = self.text.find("]", self.pos)
            match = re.fullmatch(r"\s*(\S+)\s+TO\s+(\S+)\s*", self.text[self.pos + 1 : end]) if end > 0 else None
            if match is None:
                self.fail("a range is written [low TO high]")
            assert match is not None
            self.pos = end + 1
            return _range(match[1], match[2])
        if char in "<>":
            match = re.match(r"(<=|>=|<|>)\s*(" + _NUMBER.pattern + ")", self.text[self.pos :])
            if match is None:
                self.fail("a comparison needs a number, e.g. >=500")
            assert match is not None
            self.pos += match.end()
            return _compare(match[1], float(match[2]))
        start = self.pos
        word = self.bare()
        if self.pos == start:
            self.fail("a value is expected")
        return _pattern(word)

    def quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        self.fail("unterminated quoted phrase")
        return ""  # pragma: no cover


def _key(word: str) -> Key:
    name = re.sub(r"\\(.)", r"\1", word)
    if name == "*":
        return Key("any", "*")
    if name.startswith("@"):
        return Key("attribute", name[1:])
    if name in RESERVED:
        return Key("reserved", name)
    return Key("tag", name)


def _values(log: StoredLog, key: Key) -> list[object]:
    if key.kind == "attribute":
        return path_values(log.attributes, key.name)
    if key.kind == "reserved":
        value = log.reserved.get(key.name)
        return [] if value is None else [value]
    if key.kind == "tag":
        prefix = key.name + ":"
        return [tag[len(prefix) :] for tag in log.tags if tag.startswith(prefix)]
    if key.kind == "message":
        value = log.reserved.get("message")
        return [] if value is None else [value]
    return [*_leaves(log.attributes), *(v for v in (log.reserved.get("message"),) if v is not None)]


def _leaves(node: object) -> list[object]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return [node]


def _term(key: Key, test: ValueTest) -> _Node:
    return lambda log, facets: test(_values(log, key), key, facets)


def _literal(text: str) -> ValueTest:
    """A quoted value: matched literally (wildcards inside quotes are plain characters). Free text in
    quotes is a phrase the message contains."""

    def test(values: list[object], key: Key, facets: FacetRegistry) -> bool:
        if key.kind in ("message", "any"):
            wanted = text.lower()
            return any(isinstance(v, str) and wanted in v.lower() for v in values)
        return any(text_of(v) == text for v in values if not isinstance(v, dict | list))

    return test


def _pattern(word: str) -> ValueTest:
    """A bare value: ``*`` and ``?`` are wildcards unless escaped; other escapes are the character."""
    if word == "*":
        return lambda values, key, facets: bool(values)
    parts: list[str] = []
    literal: list[str] = []
    wild = False
    index = 0
    while index < len(word):
        char = word[index]
        if char == "\\" and index + 1 < len(word):
            parts.append(re.escape(word[index + 1]))
            literal.append(word[index + 1])
            index += 2
            continue
        if char == "*":
            parts.append(".*")
            wild = True
        elif char == "?":
            parts.append(".")
            wild = True
        else:
            parts.append(re.escape(char))
            literal.append(char)
        index += 1
    exact = "".join(literal)
    regex = re.compile("".join(parts), re.S)
    folded = re.compile("".join(parts), re.S | re.I)

    def test(values: list[object], key: Key, facets: FacetRegistry) -> bool:
        scalars = [text_of(v) for v in values if not isinstance(v, dict | list)]
        if key.kind in ("message", "any"):
            # Full text: the term (or pattern) anywhere in the text, case insensitive.
            if wild:
                return any(folded.search(s) for s in scalars)
            return any(exact.lower() in s.lower() for s in scalars)
        if wild:
            return any(regex.fullmatch(s) for s in scalars)
        return any(s == exact for s in scalars)

    return test


def _numeric(values: list[object], key: Key, facets: FacetRegistry) -> list[float]:
    if key.kind != "attribute" or not facets.numeric(key.name):
        return []  # no numeric facet: numeric operators do not apply (conservative reading)
    return [n for n in (number_of(v) for v in values) if n is not None]


def _compare(operator: str, bound: float) -> ValueTest:
    def test(values: list[object], key: Key, facets: FacetRegistry) -> bool:
        numbers = _numeric(values, key, facets)
        return any({">": n > bound, ">=": n >= bound, "<": n < bound, "<=": n <= bound}[operator] for n in numbers)

    return test


def _range(low: str, high: str) -> ValueTest:
    def bound(text: str) -> float | None:
        return None if text == "*" else float(text) if _NUMBER.fullmatch(text) else None

    lower, upper = bound(low), bound(high)
    if (lower is None and low != "*") or (upper is None and high != "*"):
        raise SearchError(f"a numeric range takes numbers or *: [{low} TO {high}]")

    def test(values: list[object], key: Key, facets: FacetRegistry) -> bool:
        return any(
            (lower is None or n >= lower) and (upper is None or n <= upper) for n in _numeric(values, key, facets)
        )

    return test
