"""Rule unit tests: compact event inputs and expected alert timelines, in the style of promtool test rules.

A test file (``monitors/tests/*.yaml``) holds tests; each test feeds one rule generated events —
steady series, bursts, silences, NDJSON fixtures — and states what must happen: the rule fires at a
time (or within a range), warns, resolves, is in a state at a time, or never leaves OK. Times are
relative to the test's start. Each test runs the real evaluation engine (:mod:`extalerts.engine`).
"""

from __future__ import annotations

import difflib
import gzip
import json
import random
import re
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from extalerts.engine import (
    MINUTE_MS,
    Engine,
    EngineResult,
    Group,
    Semantics,
    State,
    Transition,
    ceil_minute,
    evaluation_window_ms,
    schedule_minutes,
)
from extalerts.errors import ExtalertsError, Location, SpecIssue, TestFileError
from extalerts.fields import WORKERS_TRACE_EVENT_FIELDS, FieldType
from extalerts.fields import Field as CatalogField
from extalerts.filter.python import field_values
from extalerts.spec.loader import Positions, Spec, discover, issues_from_validation, plain, read_yaml
from extalerts.spec.models import AbsenceSignal, SpecFile, format_duration, parse_duration, parse_time_ms

DEFAULT_START = "2026-01-01T00:00:00Z"
DEFAULT_TESTS_DIR = Path("monitors/tests")

#: The event every generated event starts from, with Logpush's field casing.
BASE_EVENT: dict[str, Any] = {
    "CPUTimeMs": 1,
    "DispatchNamespace": "",
    "Entrypoint": "",
    "Event": {"RayID": "0", "Request": {"URL": "https://example.com/", "Method": "GET"}, "Response": {"Status": 200}},
    "EventType": "fetch",
    "Exceptions": [],
    "Logs": [],
    "Outcome": "ok",
    "ScriptName": "worker",
    "ScriptTags": [],
    "ScriptVersion": {"ID": "00000000-0000-0000-0000-000000000000", "Message": "", "Tag": ""},
    "WallTimeMs": 5,
}


#: The most events one test may generate: a test is a few incidents, not a load test.
MAX_TEST_EVENTS = 1_000_000
#: The longest a test runs: its inputs' times and ``until`` (expectations may name any time).
MAX_TEST_SPAN = 31 * 86400
#: Bad lines listed per fixture; the rest are counted.
MAX_FIXTURE_ISSUES = 20
#: Value generators in event templates, with what each takes.
GENERATORS = {"cycle": "a non-empty list", "uniform": "[low, high]", "unique": 'a text with {n}, e.g. "c-{n}"'}

#: Top-level Workers Trace Events fields, and which hold objects or lists (Logpush dataset reference).
TOP_LEVEL_FIELDS = tuple(sorted({f.paths[0][0] for f in WORKERS_TRACE_EVENT_FIELDS}))
OBJECT_FIELDS = ("Event", "ScriptVersion")
LIST_FIELDS = ("Exceptions", "Logs", "ScriptTags")
#: Dotted fields the catalog knows (Event.* holds more for other event types; those pass unchecked).
KNOWN_PATHS = tuple(f.name for f in WORKERS_TRACE_EVENT_FIELDS if "." in f.name and f.paths[0][0] in OBJECT_FIELDS)
SCALAR_PATHS = frozenset(
    f.name for f in WORKERS_TRACE_EVENT_FIELDS if f.type is not FieldType.STRING_LIST and f.name not in LIST_FIELDS
)


def _duration(seconds: int) -> str:
    return format_duration(seconds) if seconds else "0m"


def _offset(value: Any) -> int:
    """A relative time in seconds: "0m", "90s", "16m", "1h"."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'write times with a unit, e.g. "{value}m"')
    return parse_duration(value)


def _input_offset(value: Any) -> int:
    """A time events are generated at, or the last evaluation: within :data:`MAX_TEST_SPAN`."""
    seconds = _offset(value)
    if seconds > MAX_TEST_SPAN:
        raise ValueError(
            f"{_duration(seconds)} is past {_duration(MAX_TEST_SPAN)}, the longest a rule test runs; "
            "replay longer traffic with `extalerts replay`"
        )
    return seconds


def _time_or_range(value: Any) -> int | tuple[int, int]:
    """An evaluation time ("16m", on the minute) or an inclusive range of them (["15m", "17m"])."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError('a range is two times, e.g. ["15m", "17m"]')
        low, high = _offset(value[0]), _offset(value[1])
        if high < low:
            raise ValueError(f"the range ends ({_duration(high)}) before it starts ({_duration(low)})")
        return low, high
    return _on_the_minute(_offset(value))


def _on_the_minute(seconds: int) -> int:
    if seconds % 60:
        minute = seconds // 60
        raise ValueError(
            f"rules are evaluated on the minute, so {seconds}s can never match: "
            f'write "{minute}m", "{minute + 1}m" or a range ["{minute}m", "{minute + 1}m"]'
        )
    return seconds


Offset = Annotated[int, BeforeValidator(_offset), Field(description='Time from the test start, e.g. "16m"')]
InputOffset = Annotated[
    int, BeforeValidator(_input_offset), Field(description='Time from the test start, e.g. "16m", at most 31d')
]
TimeOrRange = Annotated[
    int | tuple[int, int],
    BeforeValidator(_time_or_range),
    Field(description='An evaluation time ("16m") or an inclusive range (["15m", "17m"])'),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Series(_Model):
    """``per_minute`` events every minute from ``from`` to ``to``, except in the ``silent`` ranges."""

    from_: InputOffset = Field(alias="from")
    to: InputOffset
    per_minute: int = Field(gt=0, le=100_000)
    silent: list[tuple[InputOffset, InputOffset]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Series:
        if self.to <= self.from_:
            raise ValueError("`to` must be after `from`")
        for low, high in self.silent:
            if high <= low:
                raise ValueError(f"silent range [{_duration(low)}, {_duration(high)}] must end after it starts")
        return self

    def event_count(self) -> int:
        """Counted without generating or visiting a minute, so that the size check comes first."""
        silent = 0
        covered = self.from_  # silent ranges merged: a minute in two of them is left out once
        for low, high in sorted(self.silent):
            low, high = max(low, covered), min(high, self.to)
            if high > low:
                silent += self._minutes(low, high)
                covered = high
        return self.per_minute * (self._minutes(self.from_, self.to) - silent)

    def _minutes(self, low: int, high: int) -> int:
        """How many minute starts (``from`` + 60 s × k) are in [low, high)."""
        return -(-(high - self.from_) // 60) - -(-(low - self.from_) // 60)


class Burst(_Model):
    """``count`` events spread over ``spread`` starting at ``at``."""

    at: InputOffset
    count: int = Field(gt=0, le=1_000_000)
    spread: InputOffset = 60


class Input(_Model):
    """One source of events: a series, a burst, or an NDJSON fixture; with the event's fields."""

    series: Series | None = None
    burst: Burst | None = None
    file: str | None = Field(None, description="NDJSON fixture, relative to the test file; shifted to start at 0m")
    event: dict[str, Any] = Field(
        default_factory=dict, description="Fields, dotted paths allowed (Event.Response.Status)"
    )
    log: dict[str, Any] | None = Field(None, description="The structured log line (JSON object) the event logs")
    message: str | None = Field(None, description="A plain console message the event logs")

    @model_validator(mode="after")
    def _one_kind(self) -> Input:
        kinds = [k for k in ("series", "burst", "file") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("an input is exactly one of series, burst, file")
        if self.file is not None and (self.event or self.log is not None or self.message is not None):
            raise ValueError("event, log and message shape generated events; a fixture's events are read as written")
        problems = [*_template_problems(self.event), *_log_problems(self.log, "log")]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def event_count(self) -> int:
        if self.series is not None:
            return self.series.event_count()
        return self.burst.count if self.burst is not None else 0


def _generator(value: Any) -> tuple[str, Any] | None:
    """``(kind, argument)`` when ``value`` is a generator such as ``{uniform: [50, 90]}``."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, argument),) = value.items()
        if kind in GENERATORS:
            return kind, argument
    return None


def _generator_problem(where: str, kind: str, argument: Any) -> str | None:
    takes = f"{where}: {{{kind}: …}} takes {GENERATORS[kind]}"
    if kind == "cycle" and not (isinstance(argument, list) and argument):
        return takes
    if kind == "uniform":
        numbers = isinstance(argument, list) and len(argument) == 2
        numbers = numbers and all(isinstance(n, int | float) and not isinstance(n, bool) for n in argument)
        if not numbers or argument[0] > argument[1]:
            return takes + " with low <= high"
    if kind == "unique":
        try:
            if not isinstance(argument, str) or argument.format(n=0) == argument:
                return takes
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            return takes + " and no other {…}"
    return None


def _template_problems(template: Mapping[str, Any]) -> list[str]:
    """Misspelt fields and generators in an ``event`` template: each would silently make a test
    feed events no rule looks at, and a quiet test pass for the wrong reason."""
    problems: list[str] = []
    for path, value in _leaves(template):
        top = path.split(".")[0]
        if top not in TOP_LEVEL_FIELDS:
            close = difflib.get_close_matches(top, TOP_LEVEL_FIELDS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "see `extalerts fields`"
            problems.append(f"`{path}` is not a Workers Trace Events field ({hint})")
            continue
        if top == "EventTimestampMs":
            problems.append("`EventTimestampMs` comes from the series or burst times; leave it out of `event`")
            continue
        if top in LIST_FIELDS and path != top:
            problems.append(f"`{top}` is a list: give it whole (`{top}: [...]`), or use `log:` and `message:`")
            continue
        if path not in KNOWN_PATHS and path != top:
            close = difflib.get_close_matches(path, KNOWN_PATHS, n=1, cutoff=0.85)
            if close:
                problems.append(f"`{path}` is not a field the rules read (did you mean `{close[0]}`?)")
                continue
        generator = _generator(value)
        if generator is not None:
            problem = _generator_problem(f"`{path}`", *generator)
            problems.extend([problem] if problem else [])
        elif isinstance(value, Mapping) and (path in SCALAR_PATHS or top in LIST_FIELDS):
            keys = ", ".join(str(k) for k in value)
            close = difflib.get_close_matches(str(next(iter(value), "")), GENERATORS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"generators: {', '.join(GENERATORS)}"
            problems.append(f"`{path}`: {{{keys}}} is neither a value nor a generator ({hint})")
        else:
            problems.extend(_log_problems(value, f"`{path}`"))
    return problems


def _leaves(template: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted paths and values of a template, objects (Event, ScriptVersion) opened up to generators."""
    for key, value in template.items():
        path = f"{prefix}{key}"
        opens = path.split(".")[0] in OBJECT_FIELDS and isinstance(value, Mapping) and _generator(value) is None
        if opens:
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _log_problems(value: Any, where: str) -> list[str]:
    """Generators nested anywhere in a value (a structured log line included) must be well formed."""
    generator = _generator(value)
    if generator is not None:
        problem = _generator_problem(where, *generator)
        return [problem] if problem else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _log_problems(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for k, v in enumerate(value) for p in _log_problems(v, f"{where}[{k}]")]
    return []


class Expectation(_Model):
    """What must happen; ``group`` narrows it to one group (e.g. ``{ScriptName: api}``)."""

    fires: TimeOrRange | None = None
    warns: TimeOrRange | None = None
    resolves: TimeOrRange | None = None
    state: Literal["ok", "warn", "alert"] | None = None
    at: Offset | None = None
    never: Literal["alert", "warn"] | None = None
    quiet: Literal[True] | None = Field(None, description="never leaves OK")
    group: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        kinds = [k for k in ("fires", "warns", "resolves", "state", "never", "quiet") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("an expectation is exactly one of fires, warns, resolves, state, never, quiet")
        if (self.state is None) != (self.at is None):
            raise ValueError("`state` goes with `at`")
        if self.at is not None:
            _on_the_minute(self.at)
        return self

    def earliest(self) -> int | None:
        """The earliest evaluation time this expectation looks at (None: it looks at every one)."""
        when = self.fires if self.fires is not None else self.warns if self.warns is not None else self.resolves
        if when is None:
            return self.at
        return when[0] if isinstance(when, tuple) else when


class RuleTest(_Model):
    name: str = Field(min_length=1)
    rule: str
    start: str = Field(DEFAULT_START, description="When 0m is, as ISO 8601")
    until: InputOffset | None = Field(
        None, description="Last evaluation; default: once the windows have seen every event"
    )
    seed: int = 0
    semantics: Literal["datadog", "splunk", "cloudflare"] | None = Field(
        None, description="Always run with these semantics, for a behaviour one provider alone has"
    )
    input: list[Input] = Field(min_length=1)
    expect: list[Expectation] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounded(self) -> RuleTest:
        count = sum(item.event_count() for item in self.input)
        if count > MAX_TEST_EVENTS:
            raise ValueError(
                f"the inputs generate {count:,} events, over {MAX_TEST_EVENTS:,}: a rule test needs a few "
                "windows of traffic; replay large archives with `extalerts replay`"
            )
        return self


class TestFile(_Model):
    version: Literal[1]
    tests: list[RuleTest] = Field(min_length=1)


# --------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedTest:
    test: RuleTest
    path: Path
    index: int
    start_ms: int
    #: The events of each fixture input, by input index, read and checked when the file loaded.
    fixtures: Mapping[int, list[dict[str, Any]]] = field(default_factory=dict)


def load_tests(paths: Sequence[Path], spec: Spec) -> list[LoadedTest]:
    """Every test in the given files/directories; problems are collected and raised as one TestFileError."""
    issues: list[SpecIssue] = []
    loaded: list[LoadedTest] = []
    rules = {r.id: r for r in spec.rules}
    spec_files: list[Path] = []
    for path in discover(paths):
        read = read_yaml(path, issues, control_characters=True)  # nothing of a test file is rendered
        if read is None:
            continue
        data, text = read
        positions = Positions(path, text)
        if not isinstance(data, Mapping):
            hint = "a test file is a mapping: `version: 1` and `tests:`, a list of tests"
            issues.append(SpecIssue(Location(path, 1), "not a rule test file", hint))
            continue
        if SPEC_FILE_KEYS.intersection(data) and "tests" not in data:
            spec_files.append(path)
            continue
        try:
            document = TestFile.model_validate(plain(data))
        except ValidationError as exc:
            issues.extend(issues_from_validation(exc, positions, root=TestFile))
            continue
        names: set[str] = set()
        for index, test in enumerate(document.tests):
            found = len(issues)

            def problem(
                loc: tuple[int | str, ...],
                message: str,
                hint: str = "",
                test: RuleTest = test,
                index: int = index,
                positions: Positions = positions,
            ) -> None:
                where = positions.find(("tests", index, *loc))
                issues.append(SpecIssue(where, f"test `{test.name}`: {message}", hint))

            if test.name in names:
                problem(("name",), "another test in this file has the same name", "name each test apart")
            names.add(test.name)
            rule = rules.get(test.rule)
            if rule is None:
                close = difflib.get_close_matches(test.rule, list(rules), n=1, cutoff=0.5)
                problem(("rule",), f"unknown rule `{test.rule}`", f"did you mean `{close[0]}`?" if close else "")
                continue
            start_ms = parse_time_ms(test.start)
            if start_ms is None:
                problem(("start",), f"start {test.start!r} is not an ISO 8601 time", 'e.g. "2026-01-01T00:00:00Z"')
            elif start_ms % MINUTE_MS:
                problem(("start",), f"start {test.start!r} is not on a minute", "rules are evaluated on the minute")
            first = rule.rule.window + rule.evaluation_delay
            if test.until is not None and test.until < first:
                problem(
                    ("until",),
                    f"until {_duration(test.until)} is before the first evaluation ({_duration(first)}: "
                    "the window plus the evaluation delay)",
                    "nothing would be checked",
                )
            for number, expectation in enumerate(test.expect):
                unknown = sorted(set(expectation.group or {}) - set(rule.rule.group_by))
                if unknown:
                    grouped = ", ".join(rule.rule.group_by) or "nothing"
                    problem(
                        ("expect", number, "group"),
                        f"rule `{rule.id}` does not group by {', '.join(unknown)}",
                        f"it groups by {grouped}",
                    )
            fixtures: dict[int, list[dict[str, Any]]] = {}
            for number, item in enumerate(test.input):
                if item.file is None:
                    continue
                fixture = path.parent / item.file
                if not fixture.is_file():
                    problem(("input", number, "file"), f"fixture {item.file} not found", "relative to the test file")
                    continue
                fixtures[number] = _read_fixture(fixture, issues)
            if len(issues) == found and start_ms is not None:
                loaded.append(LoadedTest(test, path, index, start_ms, fixtures))
    issues.extend(_spec_files_given(paths, spec_files))
    if issues:
        raise TestFileError(issues)
    return loaded


#: Top-level keys of a spec file (``monitors/*.yaml``); a test file has none of them.
SPEC_FILE_KEYS = frozenset(SpecFile.model_fields) - {"version"}


def _spec_files_given(paths: Sequence[Path], spec_files: Sequence[Path]) -> list[SpecIssue]:
    """One line for each spec file, or directory of them, named where rule tests go (`extalerts test
    monitors/`), saying where it belongs, instead of an "unknown key" for each of its sections."""
    issues: list[SpecIssue] = []
    left = list(spec_files)
    for given in paths:
        inside = discover([given]) if given.is_dir() else []
        if inside and all(path in spec_files for path in inside):
            issues.append(SpecIssue(Location(given), "a directory of spec files, not of rule tests", _spec_hint(given)))
            left = [path for path in left if path not in inside]
    for path in left:
        issues.append(SpecIssue(Location(path, 1), "a spec file, not a rule test file", _spec_hint(path.parent)))
    return issues


def _spec_hint(directory: Path) -> str:
    tests_dir = directory / DEFAULT_TESTS_DIR.name
    beside = f"; its rule tests are in {tests_dir}/" if tests_dir.is_dir() else ""
    return f"spec files go after --spec, e.g. `extalerts test --spec {directory}/`{beside}"


def _read_fixture(path: Path, issues: list[SpecIssue]) -> list[dict[str, Any]]:
    """A fixture's events (NDJSON, gzip when named .gz); every bad line is an issue at its line."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        issues.append(SpecIssue(Location(path), f"cannot read the fixture: {exc}"))
        return []
    events: list[dict[str, Any]] = []
    bad: list[SpecIssue] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(SpecIssue(Location(path, number, exc.colno), f"not JSON: {exc.msg}"))
            continue
        except RecursionError:
            bad.append(SpecIssue(Location(path, number), "JSON nested too deeply to read"))
            continue
        stamp = event.get("EventTimestampMs") if isinstance(event, dict) else None
        if not isinstance(event, dict) or not isinstance(stamp, int) or isinstance(stamp, bool):
            hint = "each line is one Workers Trace Event, with EventTimestampMs an integer in epoch ms"
            bad.append(SpecIssue(Location(path, number), "not a Workers Trace Event", hint))
            continue
        events.append(event)
    issues.extend(bad[:MAX_FIXTURE_ISSUES])
    if len(bad) > MAX_FIXTURE_ISSUES:
        issues.append(SpecIssue(Location(path), f"{len(bad) - MAX_FIXTURE_ISSUES:,} more bad lines not listed"))
    return events


# --------------------------------------------------------------------------------------------- events


def _generate(value: Any, index: int, rng: random.Random) -> Any:
    """Value generators in event templates: {cycle: [..]}, {uniform: [lo, hi]}, {unique: "c-{n}"}."""
    generator = _generator(value)  # checked when the test loaded
    if generator is not None:
        kind, arg = generator
        if kind == "cycle":
            return arg[index % len(arg)]
        if kind == "uniform":
            low, high = arg
            number = rng.uniform(float(low), float(high))
            return round(number) if isinstance(low, int) and isinstance(high, int) else number
        return str(arg).format(n=index)
    if isinstance(value, Mapping):
        return {k: _generate(v, index, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_generate(v, index, rng) for v in value]
    return value


def _set_path(event: dict[str, Any], dotted: str, value: Any) -> None:
    node = event
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _event(item: Input, at_ms: int, index: int, rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(json.dumps(BASE_EVENT))
    for key, value in item.event.items():
        _set_path(event, key, _generate(value, index, rng))
    event["EventTimestampMs"] = at_ms
    # The structured line goes first, in a console.log of its own: it is read from the first `log`
    # entry only, and a message beside it in that entry would be joined to it (README, "Structured
    # log line").
    logged: list[str] = []
    if item.log is not None:
        logged.append(json.dumps(_generate(item.log, index, rng), separators=(",", ":")))
    if item.message is not None:
        logged.append(item.message)
    entries = [{"Level": "log", "Message": [text], "TimestampMs": at_ms} for text in logged]
    if entries:
        event["Logs"] = [*event.get("Logs", []), *entries]
    return event


def generate_events(loaded: LoadedTest) -> Iterator[dict[str, Any]]:
    """The events a test describes, with absolute timestamps."""
    test, start = loaded.test, loaded.start_ms
    rng = random.Random(test.seed)
    index = 0
    for number, item in enumerate(test.input):
        if item.series is not None:
            series = item.series
            for minute_start in range(series.from_, series.to, 60):
                if any(lo <= minute_start < hi for lo, hi in series.silent):
                    continue
                for k in range(series.per_minute):
                    offset_ms = minute_start * 1000 + (k * 60_000) // series.per_minute
                    yield _event(item, start + offset_ms, index, rng)
                    index += 1
        elif item.burst is not None:
            burst = item.burst
            for k in range(burst.count):
                offset_ms = burst.at * 1000 + (k * burst.spread * 1000) // burst.count
                yield _event(item, start + offset_ms, index, rng)
                index += 1
        else:
            yield from _shifted(loaded.fixtures.get(number, []), start)


def _shifted(events: Sequence[dict[str, Any]], start: int) -> Iterator[dict[str, Any]]:
    """A fixture's events moved so that its first event is at the test's 0m."""
    if not events:
        return
    first = min(int(e["EventTimestampMs"]) for e in events)
    for event in events:
        yield {**event, "EventTimestampMs": start + int(event["EventTimestampMs"]) - first}


# --------------------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class TimelineEntry:
    """One state change, ``at_ms`` from the test's start."""

    at_ms: int
    group: Group
    before: State
    after: State
    value: float | None

    def __str__(self) -> str:
        value = "no data" if self.value is None else f"{self.value:g}"
        change = f"{self.before.value} → {self.after.value}"
        return f"{_offset_text(self.at_ms):>6}  {_group_text(self.group)}  {change}  (value {value})"

    def as_json(self) -> dict[str, Any]:
        return {
            "at": _offset_text(self.at_ms),
            "at_seconds": self.at_ms / 1000,
            "group": dict(self.group),
            "from": self.before.value,
            "to": self.after.value,
            "value": self.value,
        }


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class, whatever its name

    test: LoadedTest
    failures: tuple[str, ...]
    timeline: tuple[TimelineEntry, ...]
    seconds: float
    #: Under ``--semantics cloudflare``, why no Workers Observability alert can carry the rule: the
    #: test is not run, and neither passes nor fails.
    not_carried: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def timeline_text(self) -> tuple[str, ...]:
        return tuple(str(entry) for entry in self.timeline) or ("(no state change)",)


def _group_text(group: Group) -> str:
    return ", ".join(f"{k}={v}" for k, v in group) or "(all)"


def _offset_text(ms: int) -> str:
    return format_duration(ms // 1000) if ms % 1000 == 0 and ms >= 0 else f"{ms / 1000:g}s"


def _group_matches(group: Group, wanted: Mapping[str, str]) -> bool:
    return all(dict(group).get(k) == v for k, v in wanted.items())


def _within(at: int, when: int | tuple[int, int]) -> bool:
    if isinstance(when, tuple):
        return when[0] <= at <= when[1]
    return at == when


def _describe_time(when: int | tuple[int, int]) -> str:
    if isinstance(when, tuple):
        return f"between {_duration(when[0])} and {_duration(when[1])}"
    return f"at {_duration(when)}"


#: Severity order: a rule's state over several groups is its worst group's, as a monitor's status is.
_SEVERITY = {State.OK: 0, State.WARN: 1, State.ALERT: 2}


def _state_at(transitions: Sequence[Transition], at: int, groups: Sequence[Group]) -> State:
    """The worst state among ``groups`` at ``at`` (a group with no transition yet is OK)."""
    states = dict.fromkeys(groups, State.OK)
    for t in transitions:
        if t.at_ms <= at and t.group in states:
            states[t.group] = t.after
    return max(states.values(), key=_SEVERITY.__getitem__, default=State.OK)


def check_expectations(
    test: RuleTest, result: EngineResult, start_ms: int, present: Mapping[str, set[str]] | None = None
) -> list[str]:
    """Failures of ``test``'s expectations. ``present``: the values each group-by field takes in the
    test's events (and a heartbeat's expected groups), to tell a group the rule's filter left out
    from a misspelt one."""
    rule = result.rules[test.rule]
    relative = [
        Transition((t.at_ms - start_ms) // 1000, t.group, t.before, t.after, t.value) for t in rule.transitions
    ]  # at_ms now holds seconds from the start
    seen = sorted(rule.series)  # every group the rule evaluated
    last = None if rule.until_ms is None else (rule.until_ms - start_ms) // 1000
    failures: list[str] = []
    for expectation in test.expect:
        scope = f" for {_group_text(tuple(expectation.group.items()))}" if expectation.group else ""
        groups = [g for g in seen if expectation.group is None or _group_matches(g, expectation.group)]
        absent = [(k, v) for k, v in (expectation.group or {}).items() if present and v not in present.get(k, ())]
        if absent and not groups:
            name, value = absent[0]
            values = ", ".join(sorted(present.get(name, ()) if present else ())) or "none"
            failures.append(f"no event of the test has {name}={value}{scope} (its values: {values})")
            continue
        if last is None:
            # Not even a quiet test passes on no evaluation: it would prove nothing.
            failures.append(
                f"no evaluation ran{scope}: the events end before the first window closes, or the schedule's "
                "first run comes after `until`"
            )
            continue
        earliest = expectation.earliest()
        if earliest is not None and earliest > last:
            ended = f"the last evaluation is at {_duration(last)}"
            failures.append(f"expected something at {_duration(earliest)}{scope}, but {ended}; set `until:` later")
            continue
        mine = [t for t in relative if t.group in groups]
        if expectation.fires is not None:
            when = expectation.fires
            if not any(t.after is State.ALERT and t.before is not State.ALERT and _within(t.at_ms, when) for t in mine):
                failures.append(f"expected to fire {_describe_time(when)}{scope}")
        elif expectation.warns is not None:
            when = expectation.warns
            # Warning means entering WARN from OK; an alert easing to WARN is checked with `state`.
            if not any(t.after is State.WARN and t.before is State.OK and _within(t.at_ms, when) for t in mine):
                failures.append(f"expected to warn {_describe_time(when)}{scope}")
        elif expectation.resolves is not None:
            when = expectation.resolves
            if not any(t.after is State.OK and _within(t.at_ms, when) for t in mine):
                failures.append(f"expected to resolve {_describe_time(when)}{scope}")
        elif expectation.state is not None:
            assert expectation.at is not None
            actual = _state_at(mine, expectation.at, groups)
            wanted = State(expectation.state)
            if actual is not wanted:
                failures.append(f"expected {wanted.value} at {_duration(expectation.at)}{scope}, was {actual.value}")
        elif expectation.never is not None:
            never = State(expectation.never)
            hits = [t for t in mine if t.after is never]
            if hits:
                failures.append(
                    f"expected never to {never.value}{scope}, but it did at {_offset_text(hits[0].at_ms * 1000)}"
                )
        elif expectation.quiet and mine:
            failures.append(
                f"expected to stay quiet{scope}, but it changed state at {_offset_text(mine[0].at_ms * 1000)}"
            )
    return failures


def _timeline(result: EngineResult, rule_id: str, start_ms: int) -> tuple[TimelineEntry, ...]:
    return tuple(
        TimelineEntry(t.at_ms - start_ms, t.group, t.before, t.after, t.value)
        for t in result.rules[rule_id].transitions
    )


def default_end_ms(loaded: LoadedTest, spec: Spec, last_event_ms: int | None, semantics: Semantics) -> int | None:
    """The last evaluation when a test sets no ``until``.

    For a rule that fires on high values, once every window has passed the last event, so a burst's
    recovery is seen. For one that fires on low values or on absence, the last window holding an
    event: past it the input has simply ended, which such a rule would read as traffic stopping."""
    test = loaded.test
    if test.until is not None:
        return loaded.start_ms + test.until * 1000
    if last_event_ms is None:
        return None
    rule = spec.rule(test.rule)
    window_ms, delay_ms = evaluation_window_ms(rule, semantics)
    thresholds = rule.rule.thresholds
    fires_on_low = (
        isinstance(rule.rule.signal, AbsenceSignal) or thresholds is None or thresholds.operator in ("<", "<=")
    )
    if fires_on_low:
        return ceil_minute(last_event_ms + 1 + delay_ms)
    step_ms = schedule_minutes(rule, semantics) * MINUTE_MS
    return ceil_minute(last_event_ms + 1 + delay_ms + window_ms) + step_ms - MINUTE_MS


def run_test(spec: Spec, loaded: LoadedTest, semantics: Semantics = "datadog") -> TestOutcome:
    """Run one test; an error while running it (not a failed expectation) fails this test alone."""
    started = time.perf_counter()
    test = loaded.test
    semantics = test.semantics or semantics
    rule = spec.rule(test.rule)
    try:
        engine = Engine(spec, rules=[test.rule], semantics=semantics, memory_limit="256MB", threads=1)
        if test.rule in engine.not_carried:
            return TestOutcome(loaded, (), (), time.perf_counter() - started, not_carried=engine.not_carried[test.rule])
        events = list(generate_events(loaded))
        engine.load_events(events)
        first_evaluation = loaded.start_ms + sum(evaluation_window_ms(rule, semantics))
        end = default_end_ms(loaded, spec, engine.span()[1], semantics)
        result = engine.evaluate(start_ms=first_evaluation, end_ms=end)
    except ExtalertsError as error:
        return TestOutcome(loaded, (f"error: {error}",), (), time.perf_counter() - started)
    present = {name: _values_of(events, spec.catalog[name]) for name in rule.rule.group_by}
    if isinstance(rule.rule.signal, AbsenceSignal) and len(rule.rule.group_by) == 1:
        present[rule.rule.group_by[0]].update(rule.rule.signal.expected)
    failures = check_expectations(test, result, loaded.start_ms, present)
    timeline = _timeline(result, test.rule, loaded.start_ms)
    return TestOutcome(loaded, tuple(failures), timeline, time.perf_counter() - started)


def _values_of(events: Sequence[Mapping[str, Any]], catalog_field: CatalogField) -> set[str]:
    """The texts a group-by field takes in ``events``, as the engine writes group values."""
    texts: set[str] = set()
    for event in events:
        for value in field_values(event, catalog_field):
            texts.add(value if isinstance(value, str) else json.dumps(value))
    return texts


# --------------------------------------------------------------------------------------------- reports


@dataclass
class Coverage:
    firing: dict[str, list[str]] = field(default_factory=dict)
    quiet: dict[str, list[str]] = field(default_factory=dict)

    def missing(self, rule_ids: Sequence[str]) -> list[tuple[str, str]]:
        gaps = []
        for rule_id in rule_ids:
            if not self.firing.get(rule_id):
                gaps.append((rule_id, "no test where it fires"))
            if not self.quiet.get(rule_id):
                gaps.append((rule_id, "no test where it stays quiet"))
        return gaps


def coverage(tests: Sequence[LoadedTest]) -> Coverage:
    result = Coverage()
    for loaded in tests:
        test = loaded.test
        if any(e.fires is not None or e.warns is not None or e.state in ("alert", "warn") for e in test.expect):
            result.firing.setdefault(test.rule, []).append(test.name)
        if any(e.quiet or e.never == "alert" for e in test.expect):
            result.quiet.setdefault(test.rule, []).append(test.name)
    return result


def junit_xml(outcomes: Sequence[TestOutcome]) -> str:
    suites = ET.Element("testsuites", name="extalerts")
    by_file: dict[Path, list[TestOutcome]] = {}
    for outcome in outcomes:
        by_file.setdefault(outcome.test.path, []).append(outcome)
    for path, items in sorted(by_file.items()):
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=str(Location(path)),
            tests=str(len(items)),
            failures=str(sum(not o.passed for o in items)),
            time=f"{sum(o.seconds for o in items):.3f}",
            skipped=str(sum(o.not_carried is not None for o in items)),
        )
        for outcome in items:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(outcome.test.test.rule),
                name=_xml_text(outcome.test.test.name),
                time=f"{outcome.seconds:.3f}",
            )
            if outcome.not_carried is not None:
                ET.SubElement(case, "skipped", message=_xml_text(f"not carried by Option A: {outcome.not_carried}"))
            if not outcome.passed:
                failure = ET.SubElement(case, "failure", message=_xml_text(outcome.failures[0]))
                failure.text = _xml_text("\n".join([*outcome.failures, "actual timeline:", *outcome.timeline_text()]))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


#: Characters XML 1.0 cannot hold at all, even escaped (control characters but tab and newlines).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """``text`` with what XML cannot hold shown as ``\\xNN``, so a CI tool can always parse the report."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
