"""Rule unit tests: compact event inputs and expected alert timelines, in the style of promtool test rules.

A test file (``monitors/tests/*.yaml``) holds tests; each test feeds one rule generated events —
steady series, bursts, silences, NDJSON fixtures — and states what must happen: the rule fires at a
time (or within a range), warns, resolves, is in a state at a time, or never leaves OK. Times are
relative to the test's start. Each test runs the real evaluation engine (:mod:`extalerts.engine`).
"""

from __future__ import annotations

import json
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from extalerts.engine import Engine, EngineResult, Group, Semantics, State, Transition
from extalerts.errors import ExtalertsError, Location, SpecError, SpecIssue
from extalerts.spec.loader import Positions, Spec, discover, issues_from_validation, plain, read_yaml
from extalerts.spec.models import format_duration, parse_duration

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


def _offset(value: Any) -> int:
    """A relative time in seconds: "0m", "90s", "16m", "1h"."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'write times with a unit, e.g. "{value}m"')
    return parse_duration(value)


Offset = Annotated[int, BeforeValidator(_offset), Field(description='Time from the test start, e.g. "16m"')]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Series(_Model):
    """``per_minute`` events every minute from ``from`` to ``to``, except in the ``silent`` ranges."""

    from_: Offset = Field(alias="from")
    to: Offset
    per_minute: int = Field(gt=0, le=100_000)
    silent: list[tuple[Offset, Offset]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Series:
        if self.to <= self.from_:
            raise ValueError("`to` must be after `from`")
        return self


class Burst(_Model):
    """``count`` events spread over ``spread`` starting at ``at``."""

    at: Offset
    count: int = Field(gt=0, le=1_000_000)
    spread: Offset = 60


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
        return self


TimeOrRange = Offset | tuple[Offset, Offset]


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
        return self


class RuleTest(_Model):
    name: str = Field(min_length=1)
    rule: str
    start: str = Field(DEFAULT_START, description="When 0m is, as ISO 8601")
    until: Offset | None = Field(None, description="Last evaluation; default: once the windows have seen every event")
    seed: int = 0
    semantics: Literal["datadog", "splunk"] | None = Field(
        None, description="Always run with these semantics, for a behaviour one provider alone has"
    )
    input: list[Input] = Field(min_length=1)
    expect: list[Expectation] = Field(min_length=1)


class TestFile(_Model):
    version: Literal[1]
    tests: list[RuleTest] = Field(min_length=1)


# --------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedTest:
    test: RuleTest
    path: Path
    index: int


def load_tests(paths: Sequence[Path], spec: Spec) -> list[LoadedTest]:
    """Every test in the given files/directories; problems are collected and raised as one SpecError."""
    issues: list[SpecIssue] = []
    loaded: list[LoadedTest] = []
    rule_ids = {r.id for r in spec.rules}
    for path in discover(paths):
        read = read_yaml(path, issues)
        if read is None:
            continue
        data, text = read
        positions = Positions(path, text)
        try:
            document = TestFile.model_validate(plain(data))
        except ValidationError as exc:
            issues.extend(issues_from_validation(exc, positions, root=TestFile))
            continue
        for index, test in enumerate(document.tests):
            if test.rule not in rule_ids:
                where = positions.find(("tests", index, "rule"))
                issues.append(SpecIssue(where, f"test `{test.name}`: unknown rule `{test.rule}`"))
                continue
            for item in test.input:
                if item.file is not None and not (path.parent / item.file).is_file():
                    where = positions.find(("tests", index, "input"))
                    issues.append(SpecIssue(where, f"test `{test.name}`: fixture {item.file} not found"))
            loaded.append(LoadedTest(test, path, index))
    if issues:
        raise SpecError(issues)
    return loaded


# --------------------------------------------------------------------------------------------- events


def _start_ms(test: RuleTest) -> int:
    try:
        return int(datetime.fromisoformat(test.start.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as exc:
        raise ExtalertsError(f"test `{test.name}`: start {test.start!r} is not an ISO 8601 time") from exc


def _generate(value: Any, index: int, rng: random.Random) -> Any:
    """Value generators in event templates: {cycle: [..]}, {uniform: [lo, hi]}, {unique: "c-{n}"}."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, arg),) = value.items()
        if kind == "cycle" and isinstance(arg, list) and arg:
            return arg[index % len(arg)]
        if kind == "uniform" and isinstance(arg, list) and len(arg) == 2:
            low, high = arg
            number = rng.uniform(float(low), float(high))
            return round(number) if isinstance(low, int) and isinstance(high, int) else number
        if kind == "unique" and isinstance(arg, str):
            return arg.format(n=index)
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
    messages: list[Any] = []
    if item.message is not None:
        messages.append(item.message)
    if item.log is not None:
        messages.append(json.dumps(_generate(item.log, index, rng), separators=(",", ":")))
    if messages:
        event["Logs"] = [*event.get("Logs", []), {"Level": "log", "Message": messages, "TimestampMs": at_ms}]
    return event


def generate_events(test: RuleTest, test_path: Path) -> Iterator[dict[str, Any]]:
    """The events a test describes, with absolute timestamps."""
    start = _start_ms(test)
    rng = random.Random(test.seed)
    index = 0
    for item in test.input:
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
            assert item.file is not None
            yield from _fixture_events(test_path.parent / item.file, start)


def _fixture_events(path: Path, start: int) -> Iterator[dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not events:
        return
    first = min(int(e["EventTimestampMs"]) for e in events)
    for event in events:
        event["EventTimestampMs"] = start + int(event["EventTimestampMs"]) - first
        yield event


# --------------------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class TestOutcome:
    test: LoadedTest
    failures: tuple[str, ...]
    timeline: tuple[str, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.failures


def _group_text(group: Group) -> str:
    return ", ".join(f"{k}={v}" for k, v in group) or "(all)"


def _offset_text(ms: int) -> str:
    return format_duration(ms // 1000) if ms % 1000 == 0 and ms >= 0 else f"{ms / 1000:g}s"


def _matches_group(transition: Transition, wanted: Mapping[str, str] | None) -> bool:
    return wanted is None or all(dict(transition.group).get(k) == v for k, v in wanted.items())


def _within(at: int, when: int | tuple[int, int]) -> bool:
    if isinstance(when, tuple):
        return when[0] <= at <= when[1]
    return at == when


def _describe_time(when: int | tuple[int, int]) -> str:
    if isinstance(when, tuple):
        return f"between {format_duration(when[0]) if when[0] else '0m'} and {format_duration(when[1])}"
    return f"at {format_duration(when) if when else '0m'}"


def _state_at(transitions: Sequence[Transition], at: int, group: Mapping[str, str] | None) -> dict[Group, State]:
    states: dict[Group, State] = {}
    for t in transitions:
        if t.at_ms <= at and _matches_group(t, group):
            states[t.group] = t.after
    return states


def check_expectations(test: RuleTest, result: EngineResult, start_ms: int) -> list[str]:
    rule = result.rules[test.rule]
    relative = [
        Transition((t.at_ms - start_ms) // 1000, t.group, t.before, t.after, t.value) for t in rule.transitions
    ]  # at_ms now holds seconds from the start
    failures: list[str] = []
    for expectation in test.expect:
        scope = f" for {_group_text(tuple(expectation.group.items()))}" if expectation.group else ""
        mine = [t for t in relative if _matches_group(t, expectation.group)]
        if expectation.fires is not None:
            when = expectation.fires
            if not any(t.after is State.ALERT and t.before is not State.ALERT and _within(t.at_ms, when) for t in mine):
                failures.append(f"expected to fire {_describe_time(when)}{scope}")
        elif expectation.warns is not None:
            when = expectation.warns
            if not any(t.after is State.WARN and _within(t.at_ms, when) for t in mine):
                failures.append(f"expected to warn {_describe_time(when)}{scope}")
        elif expectation.resolves is not None:
            when = expectation.resolves
            if not any(t.after is State.OK and _within(t.at_ms, when) for t in mine):
                failures.append(f"expected to resolve {_describe_time(when)}{scope}")
        elif expectation.state is not None:
            assert expectation.at is not None
            states = _state_at(mine, expectation.at, expectation.group)
            wanted = State(expectation.state)
            actual = set(states.values()) or {State.OK}
            if actual != {wanted}:
                shown = ", ".join(sorted(s.value for s in actual))
                failures.append(f"expected {wanted.value} at {format_duration(expectation.at)}{scope}, was {shown}")
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


def _timeline(result: EngineResult, rule_id: str, start_ms: int) -> tuple[str, ...]:
    lines = []
    for t in result.rules[rule_id].transitions:
        value = "no data" if t.value is None else f"{t.value:g}"
        change = f"{t.before.value} → {t.after.value}"
        lines.append(f"{_offset_text(t.at_ms - start_ms):>6}  {_group_text(t.group)}  {change}  (value {value})")
    return tuple(lines) or ("(no state change)",)


def run_test(spec: Spec, loaded: LoadedTest, semantics: Semantics = "datadog") -> TestOutcome:
    started = time.perf_counter()
    test = loaded.test
    semantics = test.semantics or semantics
    engine = Engine(spec, rules=[test.rule], semantics=semantics, memory_limit="256MB", threads=1)
    engine.load_events(generate_events(test, loaded.path))
    start = _start_ms(test)
    rule = spec.rule(test.rule)
    first_evaluation = start + (rule.rule.window + rule.evaluation_delay) * 1000
    end = start + test.until * 1000 if test.until is not None else None
    result = engine.evaluate(start_ms=first_evaluation, end_ms=end)
    failures = check_expectations(test, result, start)
    return TestOutcome(loaded, tuple(failures), _timeline(result, test.rule, start), time.perf_counter() - started)


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
        )
        for outcome in items:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=outcome.test.test.rule,
                name=outcome.test.test.name,
                time=f"{outcome.seconds:.3f}",
            )
            if not outcome.passed:
                failure = ET.SubElement(case, "failure", message=outcome.failures[0])
                failure.text = "\n".join([*outcome.failures, "actual timeline:", *outcome.timeline])
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
