"""Log pipelines applied at intake, as the docs describe each processor.

"Pipelines and processors operate on incoming logs" (API reference, Logs Pipelines) and "Each log that
comes through the pipelines is tested against every pipeline filter. If it matches a filter, then all
the processors are applied sequentially before moving to the next pipeline."
(``logs/log_configuration/pipelines.md``). So a log is processed once, when it arrives, by the enabled
pipelines in pipeline order; a pipeline changed or deleted later does not reprocess stored logs.

Processors (``logs/log_configuration/processors/*.md``; the API tab of each page gives the JSON):
``date-remapper``, ``status-remapper``, ``service-remapper``, ``message-remapper``,
``attribute-remapper``, ``array-processor`` (``select``, ``length``, ``append``),
``string-builder-processor``, ``grok-parser`` (the matchers ``data word notSpace integer number
quotedString`` and the filters ``json integer number lowercase uppercase``), ``category-processor`` and
nested ``pipeline``. Anything else is *unsupported*: it is reported when the pipeline is stored and
skipped when logs pass, so an evaluation never silently pretends to run it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from extalerts.emulators.datadog.facets import FacetRegistry
from extalerts.emulators.datadog.logs import StoredLog, object_path, remove_path, set_path, text_of
from extalerts.emulators.datadog.search import SearchError, compile_search

#: "Results of a template cannot exceed 256 characters." (string_builder_processor.md)
STRING_BUILDER_LIMIT = 256
#: "Only logs ingested with a timestamp within the past 18 hours" — "Logs with a timestamp further than
#: 18 hours in the past are dropped at intake." (logs/troubleshooting)
MAX_PAST_MS = 18 * 3600 * 1000
#: "If your logs don't contain any of the default attributes …, Datadog timestamps the logs with the date it
#: received them." The default date attributes (log_date_remapper.md):
DEFAULT_DATE_ATTRIBUTES = ("timestamp", "date", "_timestamp", "Timestamp", "eventTime", "published_date")

_GROK_MATCHERS: dict[str, str] = {
    "data": r".*?",
    "word": r"\b\w+\b",
    "notSpace": r"\S+",
    "integer": r"[+-]?\d+",
    "number": r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?",
    "quotedString": r'"(?:[^"\\]|\\.)*"',
}
_GROK_FILTERS = frozenset({"json", "integer", "number", "lowercase", "uppercase"})
_GROK_TOKEN = re.compile(r"%\{(?P<matcher>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<name>[^:}]*))?(?::(?P<filter>[^}]*))?\}")


class Unsupported(ValueError):
    """A processor (or a part of one) the emulator does not implement."""


@dataclass
class Processor:
    """A stored processor, compiled: ``apply`` changes the log in place."""

    name: str
    apply: Callable[[StoredLog], None]


@dataclass
class CompiledPipeline:
    id: str
    name: str
    enabled: bool
    matches: Callable[[StoredLog], bool]
    processors: list[Processor]
    #: What this pipeline holds that the emulator cannot run, one line each.
    unsupported: list[str] = field(default_factory=list)

    def run(self, log: StoredLog) -> None:
        if self.enabled and self.matches(log):
            for processor in self.processors:
                processor.apply(log)


def compile_pipeline(document: Mapping[str, Any], facets: FacetRegistry) -> CompiledPipeline:
    unsupported: list[str] = []
    name = str(document.get("name") or document.get("id") or "pipeline")
    return CompiledPipeline(
        id=str(document.get("id") or ""),
        name=name,
        # ``is_enabled`` defaults to false (LogsPipeline in the API spec).
        enabled=bool(document.get("is_enabled", False)),
        matches=_filter(document.get("filter"), facets, unsupported, f"pipeline {name!r}"),
        processors=_processors(document.get("processors") or [], facets, unsupported, name),
        unsupported=unsupported,
    )


def _filter(filter_doc: Any, facets: FacetRegistry, unsupported: list[str], where: str) -> Callable[[StoredLog], bool]:
    query = str((filter_doc or {}).get("query") or "").strip()
    if re.search(r"(^|[\s(])\*:", query):
        # "*:term … works in monitor, dashboard, and notebook queries" but not in "log pipeline filters".
        unsupported.append(f"{where}: filter {query!r}: `*:` full-text search does not work in pipeline filters")
        return lambda log: False
    try:
        return compile_search(query, facets)
    except SearchError as exc:
        unsupported.append(f"{where}: filter: {exc}")
        return lambda log: False


def _processors(
    documents: Iterable[Any], facets: FacetRegistry, unsupported: list[str], pipeline: str
) -> list[Processor]:
    compiled: list[Processor] = []
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping):
            continue
        kind = str(document.get("type"))
        label = f"pipeline {pipeline!r} processor {index + 1} ({kind} {document.get('name') or ''})".replace(" )", ")")
        # Every processor's ``is_enabled`` defaults to false (API spec).
        if not document.get("is_enabled", False):
            continue
        build = _BUILDERS.get(kind)
        if build is None:
            unsupported.append(f"{label}: the emulator does not run {kind} processors")
            continue
        try:
            if kind == "pipeline":
                nested = compile_pipeline(document, facets)
                unsupported.extend(nested.unsupported)
                compiled.append(Processor(label, nested.run))
            else:
                compiled.append(Processor(label, build(document, facets)))
        except Unsupported as exc:
            unsupported.append(f"{label}: {exc}")
    return compiled


# --------------------------------------------------------------------------------------------- remappers


def _date_remapper(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
    sources = [str(s) for s in document.get("sources") or []]

    def apply(log: StoredLog) -> None:
        # "If multiple log date remapper processors are applied …, the last one (according to the
        # pipeline's order) is taken into account." (log_date_remapper.md; the API spec says the first:
        # the docs are followed, and the README says so.)
        for source in sources:
            parsed = parse_date(object_path(log.attributes, source))
            if parsed is not None:
                log.timestamp_ms = parsed
                return

    return apply


def parse_date(value: Any) -> int | None:
    """Epoch milliseconds from a date attribute: "The recognized date formats are: ISO8601, UNIX (the
    milliseconds EPOCH format), and RFC3164." (log_date_remapper.md). A numeric string reads as a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return int(text)
        try:
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
        for pattern in ("%b %d %H:%M:%S %Y", "%b %d %Y %H:%M:%S"):  # RFC3164-ish
            try:
                return int(datetime.strptime(text, pattern).timestamp() * 1000)
            except ValueError:
                continue
    return None


def _reserved_remapper(reserved: str) -> Callable[[Mapping[str, Any], FacetRegistry], Callable[[StoredLog], None]]:
    """Status, service and message remappers: the first source present becomes the reserved attribute."""

    def build(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
        sources = [str(s) for s in document.get("sources") or []]

        def apply(log: StoredLog) -> None:
            for source in sources:
                value = object_path(log.attributes, source)
                if value is not None and not isinstance(value, dict | list):
                    log.reserved[reserved] = text_of(value)
                    return

        return apply

    return build


def _attribute_remapper(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
    sources = [str(s) for s in document.get("sources") or []]
    target = str(document.get("target") or "")
    source_type = document.get("source_type", "attribute")
    target_type = document.get("target_type", "attribute")
    if source_type != "attribute" or target_type != "attribute":
        raise Unsupported("only attribute-to-attribute remapping is emulated")
    preserve = bool(document.get("preserve_source", False))
    override = bool(document.get("override_on_conflict", False))
    target_format = document.get("target_format", "auto")

    def apply(log: StoredLog) -> None:
        for source in sources:
            value = object_path(log.attributes, source)
            if value is None:
                continue
            if object_path(log.attributes, target) is not None and not override:
                return
            set_path(log.attributes, target, _formatted(value, target_format))
            if not preserve and source != target:
                remove_path(log.attributes, source)
            return

    return apply


def _formatted(value: Any, target_format: Any) -> Any:
    try:
        if target_format == "string":
            return text_of(value)
        if target_format == "integer":
            return int(float(value))
        if target_format == "double":
            return float(value)
    except (TypeError, ValueError):
        return value
    return value


# --------------------------------------------------------------------------------------------- array processor


def _array_processor(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
    operation = document.get("operation") or {}
    kind = operation.get("type")
    source = str(operation.get("source") or "")
    target = str(operation.get("target") or "")
    if kind == "select":
        filter_text = str(operation.get("filter") or "")
        # "Filter condition expressed as `key:value` used to find the matching element." (API spec). No page
        # says whether the full search syntax works here: only an exact key:value is emulated.
        match = re.fullmatch(r"([^\s:*?()]+):([^\s*?()]+)", filter_text)
        if match is None:
            raise Unsupported(f"select filter {filter_text!r}: only an exact key:value is emulated")
        key, wanted = match[1], match[2]
        extract = str(operation.get("value_to_extract") or "")

        def select(log: StoredLog) -> None:
            array = object_path(log.attributes, source)
            if not isinstance(array, list):
                return
            for element in array:
                # "Extract a specific value from an object inside an array when it matches a condition."
                # "The first matching element is selected."
                if isinstance(element, dict) and text_of(object_path(element, key)) == wanted:
                    value = object_path(element, extract)
                    if value is not None:
                        # Undocumented when the value is itself an array: it is copied as it is.
                        set_path(log.attributes, target, json.loads(json.dumps(value)))
                    return

        return select
    if kind == "length":

        def length(log: StoredLog) -> None:
            array = object_path(log.attributes, source)
            # "Compute the number of elements in an array."
            if isinstance(array, list):
                set_path(log.attributes, target, len(array))

        return length
    if kind == "append":
        preserve = bool(operation.get("preserve_source", False))

        def append(log: StoredLog) -> None:
            value = object_path(log.attributes, source)
            if value is None:
                return
            existing = object_path(log.attributes, target)
            # "If the target array attribute does not exist in the log, it is automatically created."
            if existing is None:
                existing = []
            if not isinstance(existing, list):
                return  # the target is not an array: nothing to append to (conservative)
            existing = [*existing, *(value if isinstance(value, list) else [value])]
            set_path(log.attributes, target, existing)
            if not preserve and source != target:
                remove_path(log.attributes, source)

        return append
    raise Unsupported(f"array operation {kind!r} is not emulated (select, length and append are)")


# --------------------------------------------------------------------------------------------- string builder

_TEMPLATE_REFERENCE = re.compile(r"%\{([^}]+)\}")


def _string_builder(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
    template = str(document.get("template") or "")
    target = str(document.get("target") or "")
    # "If true, it replaces all missing attributes of template by an empty string. If false (default),
    # skips the operation for missing attributes." (API spec, is_replace_missing)
    replace_missing = bool(document.get("is_replace_missing", False))

    def apply(log: StoredLog) -> None:
        skipped = False

        def value(match: re.Match[str]) -> str:
            nonlocal skipped
            found = object_path(log.attributes, match[1])
            text = _template_value(found)
            if text is None:
                # "If an attribute cannot be used (object or array of object), it is replaced by an empty
                # string or the entire operation is skipped depending on your selection."
                if not replace_missing:
                    skipped = True
                return ""
            return text

        result = _TEMPLATE_REFERENCE.sub(value, template)
        if skipped:
            return
        if len(result) > STRING_BUILDER_LIMIT:
            # "Results of a template cannot exceed 256 characters." The docs do not say whether the result
            # is cut or dropped: the operation is skipped (conservative reading).
            return
        set_path(log.attributes, target, result)

    return apply


def _template_value(value: Any) -> str | None:
    """ "The processor only accepts attributes with values or an array of values in the block"; an array of
    values is joined with ``,``; objects and arrays of objects cannot be used (string_builder_processor.md)."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, list):
        if any(isinstance(item, dict | list) for item in value):
            return None
        return ",".join(text_of(item) for item in value)
    return text_of(value)


# --------------------------------------------------------------------------------------------- grok


@dataclass(frozen=True)
class _Extraction:
    group: str
    name: str
    filter: str
    matcher: str


@dataclass(frozen=True)
class _GrokRule:
    name: str
    regex: re.Pattern[str]
    extractions: tuple[_Extraction, ...]


def _grok_parser(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
    grok = document.get("grok") or {}
    # "Use the Extract from field to apply your Grok processor on a given text attribute instead of the
    # default message attribute." (parsing.md)
    source = str(document.get("source") or "message")
    support = _grok_rules(str(grok.get("support_rules") or ""), {})
    rules = [
        _compile_grok_rule(name, pattern, support) for name, pattern in _rule_lines(str(grok.get("match_rules") or ""))
    ]
    if not rules:
        raise Unsupported("a grok parser needs at least one match rule")

    def apply(log: StoredLog) -> None:
        text = log.reserved.get("message") if source == "message" else object_path(log.attributes, source)
        # "These values must be sent into the grok parser as strings." (parsing.md): an array of strings
        # is not parsed item by item; anything but a string is left alone.
        if not isinstance(text, str):
            return
        # "Only one [rule] can match any given log. The first one that matches, from top to bottom, is the
        # one that does the parsing."
        for rule in rules:
            match = rule.regex.fullmatch(text)
            if match is None:
                continue
            extracted: list[tuple[str, Any]] = []
            for extraction in rule.extractions:
                raw = match.group(extraction.group)
                if raw is None or not extraction.name:
                    if extraction.filter == "json" and raw is not None:
                        parsed = _json_object(raw)
                        if parsed is None:
                            break
                        extracted.extend(parsed.items())
                    continue
                # "integer … parses it as an integer number", "number … as a double precision number".
                converted = _grok_filter(raw, extraction.filter or extraction.matcher)
                if converted is _NO_MATCH:
                    break
                extracted.append((extraction.name, converted))
            else:
                for name, value in extracted:
                    set_path(log.attributes, name, value)
                return

    return apply


_NO_MATCH = object()


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _grok_filter(raw: str, name: str) -> Any:
    if name == "json":
        parsed = _json_object(raw)
        return _NO_MATCH if parsed is None else parsed
    if name == "integer":
        try:
            return int(raw)
        except ValueError:
            return _NO_MATCH
    if name == "number":
        try:
            number = float(raw)
        except ValueError:
            return _NO_MATCH
        return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", raw) else number
    if name == "lowercase":
        return raw.lower()
    if name == "uppercase":
        return raw.upper()
    return raw


def _rule_lines(text: str) -> list[tuple[str, str]]:
    rules: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, pattern = line.strip().partition(" ")
        if not pattern:
            raise Unsupported(f"grok rule {line.strip()!r} has no pattern")
        rules.append((name, pattern.strip()))
    return rules


def _grok_rules(text: str, support: dict[str, str]) -> dict[str, str]:
    """Support rules, each a regex fragment usable as ``%{name}`` in later rules."""
    out = dict(support)
    for name, pattern in _rule_lines(text):
        regex, extractions = _grok_pattern(pattern, out, [0])
        if extractions:
            raise Unsupported(f"support rule {name!r} extracts attributes; the emulator does not")
        out[name] = regex
    return out


def _compile_grok_rule(name: str, pattern: str, support: dict[str, str]) -> _GrokRule:
    regex, extractions = _grok_pattern(pattern, support, [0])
    try:
        compiled = re.compile(regex, re.S)
    except re.error as exc:
        raise Unsupported(f"grok rule {name!r}: {exc}") from None
    return _GrokRule(name, compiled, tuple(extractions))


def _grok_pattern(pattern: str, support: dict[str, str], counter: list[int]) -> tuple[str, list[_Extraction]]:
    regex: list[str] = []
    extractions: list[_Extraction] = []
    position = 0
    for token in _GROK_TOKEN.finditer(pattern):
        regex.append(re.escape(pattern[position : token.start()]).replace(r"\ ", " "))
        position = token.end()
        matcher, name, filter_name = token["matcher"], token["name"] or "", token["filter"] or ""
        if matcher in _GROK_MATCHERS:
            fragment = _GROK_MATCHERS[matcher]
        elif matcher in support:
            fragment = support[matcher]
        else:
            raise Unsupported(f"grok matcher {matcher!r} is not emulated ({', '.join(_GROK_MATCHERS)} are)")
        if filter_name and filter_name not in _GROK_FILTERS:
            raise Unsupported(f"grok filter {filter_name!r} is not emulated ({', '.join(sorted(_GROK_FILTERS))} are)")
        if name or filter_name == "json":
            counter[0] += 1
            group = f"g{counter[0]}"
            regex.append(f"(?P<{group}>{fragment})")
            extractions.append(_Extraction(group, name, filter_name, matcher))
        else:
            regex.append(f"(?:{fragment})")
    regex.append(re.escape(pattern[position:]).replace(r"\ ", " "))
    return "".join(regex), extractions


# --------------------------------------------------------------------------------------------- category


def _category_processor(document: Mapping[str, Any], facets: FacetRegistry) -> Callable[[StoredLog], None]:
    target = str(document.get("target") or "")
    categories: list[tuple[str, Callable[[StoredLog], bool]]] = []
    for category in document.get("categories") or []:
        try:
            matcher = compile_search(str((category.get("filter") or {}).get("query") or ""), facets)
        except SearchError as exc:
            raise Unsupported(f"category {category.get('name')!r}: {exc}") from None
        categories.append((str(category.get("name")), matcher))

    def apply(log: StoredLog) -> None:
        # "Once the log has matched one of the Category Processor queries, it stops" (category_processor.md)
        for name, matches in categories:
            if matches(log):
                set_path(log.attributes, target, name)
                return

    return apply


_BUILDERS: dict[str, Callable[[Mapping[str, Any], FacetRegistry], Callable[[StoredLog], None]]] = {
    "date-remapper": _date_remapper,
    "status-remapper": _reserved_remapper("status"),
    "service-remapper": _reserved_remapper("service"),
    "message-remapper": _reserved_remapper("message"),
    "attribute-remapper": _attribute_remapper,
    "array-processor": _array_processor,
    "string-builder-processor": _string_builder,
    "grok-parser": _grok_parser,
    "category-processor": _category_processor,
    "pipeline": lambda document, facets: lambda log: None,  # compiled by _processors
}


def default_timestamp(attributes: Mapping[str, Any], received_ms: int) -> int:
    """Before any pipeline: the first default date attribute, else the time the log was received."""
    for name in DEFAULT_DATE_ATTRIBUTES:
        parsed = parse_date(attributes.get(name))
        if parsed is not None:
            return parsed
    return received_ms
