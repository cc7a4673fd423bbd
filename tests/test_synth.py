"""The traffic synthesizer: Logpush's exact record shape, determinism, and scenarios sized to the rules.

Scenarios are checked against the bundled monitors/ with a small reference evaluation written here
(count, ratio, measure, cardinality over tumbling windows, change against an earlier window, absence),
built on the filter language's Python predicates: each scenario must take its rule past the critical
threshold inside its window, leave the rule quiet outside it, and push no other rule past critical
except the ones it documents. The baseline alone reaches no threshold at all, warnings included.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import operator
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from extalerts.filter import python as python_filter
from extalerts.filter.python import EventPredicate, field_values, structured_line, to_python
from extalerts.spec import ResolvedRule, Spec, load_spec
from extalerts.spec.models import (
    LOGPUSH_FIELDS,
    AbsenceSignal,
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    MeasureSignal,
    RatioSignal,
)
from extalerts.synth import (
    DEFAULT_START_MS,
    SCENARIOS,
    Scenario,
    SynthConfig,
    events,
    generate,
    parse_scenario,
)
from tests.conftest import MONITORS

Event = dict[str, Any]


#: Rules each scenario takes past critical: its own first, then the ones that fire with it on purpose.
SCENARIO_RULES: dict[str, set[str]] = {
    "exception-storm": {"worker-exception"},
    "invalid-url-flood": {"invalid-url-flood"},
    "error-rate": {"http-5xx-rate", "worker-exception"},  # every 5xx is a worker-exception event
    "client-errors": {"http-4xx-rate"},
    "do-errors": {"do-operation-errors"},
    "do-latency-spike": {"do-latency-p99"},
    "storage-growth": {"do-storage-growth"},
    "cleanup-failure": {"do-cleanup-failures", "worker-exception"},  # a throwing alarm is an exception
    "tool-mapping-failures": {"tool-mapping-failures"},
    "traffic-spike": {"request-spike"},
    "conversation-surge": {"conversation-surge"},
    "script-silent": {"logs-stopped"},
}
OWN_RULE = {
    "exception-storm": "worker-exception",
    "invalid-url-flood": "invalid-url-flood",
    "error-rate": "http-5xx-rate",
    "client-errors": "http-4xx-rate",
    "do-errors": "do-operation-errors",
    "do-latency-spike": "do-latency-p99",
    "storage-growth": "do-storage-growth",
    "cleanup-failure": "do-cleanup-failures",
    "tool-mapping-failures": "tool-mapping-failures",
    "traffic-spike": "request-spike",
    "conversation-surge": "conversation-surge",
    "script-silent": "logs-stopped",
}

QUIET, WARNING, CRITICAL = 0, 1, 2
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def _decode_each_structured_line_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs are decoded once and read by every rule: keep each event's structured line rather than
    decode its JSON text again for every derived field of every rule (the decoding itself is unchanged)."""
    decoded: dict[int, tuple[Event, Any]] = {}

    def once(event: Event) -> Any:
        found = decoded.get(id(event))
        if found is None:
            found = decoded[id(event)] = (event, structured_line(event))  # holding the event keeps its id unique
        return found[1]

    monkeypatch.setattr(python_filter, "structured_line", once)


@cache
def spec() -> Spec:
    return load_spec([MONITORS])


@cache
def predicate(rule_id: str, part: str = "filter") -> EventPredicate:
    rule = spec().rule(rule_id)
    return to_python(rule.filter if part == "filter" else rule.ratio_match, spec().catalog)


@dataclass(frozen=True)
class Run:
    """A generated run, decoded, with its events per minute."""

    config: SynthConfig
    by_minute: tuple[tuple[Event, ...], ...]

    def between(self, lo: int, hi: int) -> Iterator[Event]:
        for minute in range(max(lo, 0), min(hi, len(self.by_minute))):
            yield from self.by_minute[minute]


def run(scenario: str | None, *, before: int = 5, duration: int = 5, after: int = 5, rpm: int = 300) -> Run:
    """``before`` minutes of baseline, then the scenario for ``duration`` minutes, then ``after`` more."""
    return _run(scenario, before, duration, after, rpm)  # one cache key however the call is spelled


@cache
def _run(scenario: str | None, before: int, duration: int, after: int, rpm: int) -> Run:
    scenarios = (Scenario(scenario, before, duration),) if scenario else ()
    minutes = before + duration + after if scenario else before
    config = SynthConfig(minutes=minutes, requests_per_minute=rpm, seed=7, scenarios=scenarios)
    by_minute: list[list[Event]] = [[] for _ in range(minutes)]
    for line in events(config):
        event = json.loads(line)
        by_minute[(event["EventTimestampMs"] - config.start_ms) // 60_000].append(event)
    return Run(config, tuple(tuple(m) for m in by_minute))


def first_value(event: Event, name: str) -> Any:
    values = field_values(event, spec().catalog[name])
    return values[0] if values else None


def aggregate(numbers: list[float], aggregation: str) -> float:
    ordered = sorted(numbers)
    if aggregation == "avg":
        return sum(ordered) / len(ordered)
    if aggregation == "max":
        return ordered[-1]
    percentile = 50 if aggregation == "median" else int(aggregation.removeprefix("p"))
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]  # nearest rank


def window_values(rule: ResolvedRule, window: list[Event]) -> list[float]:
    """The signal's value per group over one window (count, ratio, measure and cardinality)."""
    keep = predicate(rule.id)
    groups: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for event in window:
        if keep(event):
            groups[tuple(first_value(event, name) for name in rule.rule.group_by)].append(event)
    signal = rule.rule.signal
    values: list[float] = []
    for matched in groups.values():
        if isinstance(signal, CountSignal):
            values.append(len(matched))
        elif isinstance(signal, RatioSignal):
            if len(matched) >= signal.min_events:
                bad = predicate(rule.id, "match")
                values.append(100 * sum(1 for event in matched if bad(event)) / len(matched))
        elif isinstance(signal, MeasureSignal):
            numbers = [float(v) for e in matched if (v := first_value(e, signal.field)) is not None]
            if numbers:
                values.append(aggregate(numbers, signal.aggregation.value))
        elif isinstance(signal, CardinalitySignal):
            values.append(len({first_value(e, signal.field) for e in matched} - {None}))
    return values


def grade(rule: ResolvedRule, value: float) -> int:
    thresholds = rule.rule.thresholds
    assert thresholds is not None
    crosses = _COMPARE[thresholds.operator]
    if crosses(value, thresholds.critical):
        return CRITICAL
    if thresholds.warning is not None and crosses(value, thresholds.warning):
        return WARNING
    return QUIET


def level(rule: ResolvedRule, data: Run, lo: int, hi: int) -> int:
    """The highest level the rule reaches over windows lying in minutes ``[lo, hi)`` of the run."""
    window = rule.rule.window // 60
    signal = rule.rule.signal
    if isinstance(signal, AbsenceSignal):
        scripts = set(signal.expected) | {e["ScriptName"] for m in data.by_minute for e in m}
        for start in range(lo, hi - window + 1):
            seen = {e["ScriptName"] for e in data.between(start, start + window)}
            if scripts - seen:
                return CRITICAL
        return QUIET
    if isinstance(signal, ChangeSignal):
        shift = signal.compare_to // 60
        keep = predicate(rule.id)
        reached = QUIET
        for start in range(max(lo, shift), hi - window + 1, window):
            now = sum(1 for e in data.between(start, start + window) if keep(e))
            then = sum(1 for e in data.between(start - shift, start - shift + window) if keep(e))
            reached = max(reached, grade(rule, 100 * (now - then) / then))
        return reached
    # A window longer than the stretch is cut to it: for counts, maxima and distinct counts that
    # only lowers the value, so a stretch that crosses means the full window does too.
    size = min(window, hi - lo)
    reached = QUIET
    for start in range(lo, hi - size + 1, size):
        for value in window_values(rule, list(data.between(start, start + size))):
            reached = max(reached, grade(rule, value))
    return reached


def levels(data: Run, lo: int, hi: int) -> dict[str, int]:
    return {rule.id: level(rule, data, lo, hi) for rule in spec().rules}


# ------------------------------------------------------------------------------------ record shape


def test_every_record_has_the_logpush_shape() -> None:
    config = SynthConfig(minutes=3, requests_per_minute=300, seed=3, scenarios=(Scenario("exception-storm", 1, 1),))
    seen_types: Counter[tuple[str, str, str]] = Counter()
    for line in events(config):
        assert not line.endswith("\n")
        event = json.loads(line)
        # Every field of workers_trace_events, in the order Logpush writes them.
        assert list(event) == list(LOGPUSH_FIELDS)
        seen_types[event["ScriptName"], event["Entrypoint"], event["EventType"]] += 1
        for name in ("CPUTimeMs", "WallTimeMs", "EventTimestampMs"):
            assert type(event[name]) is int
            assert event[name] >= 0
        assert event["WallTimeMs"] >= event["CPUTimeMs"]
        assert event["DispatchNamespace"] == ""
        assert isinstance(event["Outcome"], str)
        assert all(isinstance(tag, str) for tag in event["ScriptTags"])
        assert list(event["ScriptVersion"]) == ["ID", "Message", "Tag"]
        for entry in event["Logs"]:
            assert list(entry) == ["Level", "Message", "TimestampMs"]
            assert all(isinstance(part, str) for part in entry["Message"])
            assert entry["TimestampMs"] >= event["EventTimestampMs"]
        for exception in event["Exceptions"]:
            assert list(exception) == ["Name", "Message", "TimestampMs"]
        assert (event["Outcome"] == "exception") == bool(event["Exceptions"])
        if event["EventType"] == "fetch":
            assert list(event["Event"]) == ["RayID", "Request", "Response"]
            assert re.fullmatch(r"[0-9a-f]{16}", event["Event"]["RayID"])
            assert list(event["Event"]["Request"]) == ["URL", "Method"]
            assert event["Event"]["Request"]["URL"].startswith("https://")
            assert list(event["Event"]["Response"]) == ["Status"]
        else:
            assert event["Event"] == {}
    assert set(seen_types) == {
        ("conversation-api", "", "fetch"),
        ("conversation-api", "ConversationStateDO", "fetch"),
        ("conversation-api", "ConversationStateDO", "worker_rpc"),
        ("conversation-api", "ConversationStateDO", "alarm"),
        ("auth-worker", "", "fetch"),
    }


def test_every_json_line_synth_logs_is_the_structured_line_datadog_reads() -> None:
    """A JSON object logged anywhere is the structured line: the first `log` entry, at most 256
    characters (longer ones Datadog's string builder skips)."""
    from extalerts.filter.python import structured_line_text

    data = run(None)
    read = 0
    for event in data.between(0, 30):
        logged = [m for entry in event["Logs"] for m in entry["Message"] if m.startswith("{")]
        assert len(logged) <= 1
        if logged:
            assert structured_line_text(event) == logged[0]
            assert len(logged[0]) <= 256, logged[0]
            assert structured_line(event) is not None
            read += 1
    assert read > 0


def test_durable_object_events_carry_the_structured_line_of_the_readme() -> None:
    data = run(None)
    readme_keys = ["event", "op", "ok", "duration_ms", "attempts", "storage_bytes", "conversation_id", "error_code"]
    lines: Counter[str] = Counter()
    for event in data.between(0, 5):
        line = structured_line(event)
        if event["Entrypoint"] == "ConversationStateDO":
            assert line is not None
            assert len(event["Logs"]) == 1  # the operation's own invocation: its line is the only one
            lines[line["event"]] += 1
            if line["event"] == "do_op":
                assert list(line) == readme_keys
                assert line["op"] in {"store", "retrieve", "delete", "clear"}
                assert line["ok"] is True
                assert 1 <= line["duration_ms"] < 1000
        elif line is not None:
            assert line["event"] == "tool_mapping"
            lines["tool_mapping"] += 1
    assert set(lines) == {"do_op", "cleanup", "tool_mapping"}
    conversations = {first_value(e, "conversation_id") for e in data.between(0, 5)} - {None}
    assert 100 <= len(conversations) <= 300


def test_baseline_status_mix_and_timings_are_plausible() -> None:
    requests = [e for e in run(None).between(0, 5) if e["ScriptName"] == "conversation-api" and e["Entrypoint"] == ""]
    assert len(requests) == 5 * 300
    statuses = Counter(e["Event"]["Response"]["Status"] for e in requests)
    assert set(statuses) <= {200, 201, 204, 400, 401, 404, 429}
    assert 0.02 < sum(n for s, n in statuses.items() if s >= 400) / len(requests) < 0.04
    assert statuses[200] + statuses[201] + statuses[204] > 0.95 * len(requests)
    cpu = sorted(e["CPUTimeMs"] for e in requests)
    assert cpu[len(cpu) // 2] <= 3 < cpu[-1]  # skewed: small median, long tail
    assert sum(e["Outcome"] != "ok" for e in requests) == 0


def test_timestamps_stay_in_the_span_and_are_roughly_ordered(tmp_path: Path) -> None:
    config = SynthConfig(minutes=4, requests_per_minute=200, start_ms=1_700_000_000_000)
    stats = generate(config, tmp_path / "out.ndjson")
    stamps = [json.loads(line)["EventTimestampMs"] for line in events(config)]
    end = config.start_ms + 4 * 60_000
    assert all(config.start_ms <= t < end for t in stamps)
    assert stats.first_timestamp_ms == min(stamps)
    assert stats.last_timestamp_ms == max(stamps)
    # Like a Logpush batch: not sorted, but never more than a few seconds out of order.
    assert stamps != sorted(stamps)
    assert max(a - b for a, b in itertools.pairwise(stamps)) < 5_000
    per_minute = Counter((t - config.start_ms) // 60_000 for t in stamps)
    assert min(per_minute.values()) > 0.8 * max(per_minute.values())


def test_stats_count_what_was_written(tmp_path: Path) -> None:
    config = SynthConfig(minutes=3, requests_per_minute=100, scenarios=(parse_scenario("cleanup-failure@1m+2m"),))
    stats = generate(config, tmp_path / "out.ndjson")
    decoded = [json.loads(line) for line in (tmp_path / "out.ndjson").read_text().splitlines()]
    assert stats.events == len(decoded)
    assert dict(stats.counts) == Counter((e["ScriptName"], e["EventType"], e["Outcome"]) for e in decoded)
    start = config.start_ms
    assert stats.windows == ((config.scenarios[0], start + 60_000, start + 180_000),)


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    scenarios = (Scenario("do-errors", 1, 1), Scenario("storage-growth", 2, 1))
    config = SynthConfig(minutes=3, requests_per_minute=100, seed=42, scenarios=scenarios)
    for name in ("a.ndjson", "b.ndjson", "a.ndjson.gz", "b.ndjson.gz"):
        generate(config, tmp_path / name)
    generate(SynthConfig(minutes=3, requests_per_minute=100, seed=43, scenarios=scenarios), tmp_path / "c.ndjson")
    assert (tmp_path / "a.ndjson").read_bytes() == (tmp_path / "b.ndjson").read_bytes()
    assert (tmp_path / "a.ndjson.gz").read_bytes() == (tmp_path / "b.ndjson.gz").read_bytes()
    assert (tmp_path / "a.ndjson").read_bytes() != (tmp_path / "c.ndjson").read_bytes()
    assert "\n".join(events(config)) + "\n" == (tmp_path / "a.ndjson").read_text()


def test_gzip_output_is_readable_ndjson(tmp_path: Path) -> None:
    config = SynthConfig(minutes=2, requests_per_minute=100)
    stats = generate(config, tmp_path / "out.ndjson.gz")
    with gzip.open(tmp_path / "out.ndjson.gz", "rt", encoding="utf-8") as text:
        lines = text.read().splitlines()
    assert lines == list(events(config))
    assert len(lines) == stats.events
    assert (tmp_path / "out.ndjson.gz").stat().st_size < sum(map(len, lines)) / 5


# --------------------------------------------------------------------------------------- scenarios


def test_the_baseline_reaches_no_threshold() -> None:
    # 30 minutes, the longest window of the bundled rules (do-storage-growth), at the default traffic.
    data = run(None, before=30, rpm=600)
    assert levels(data, 0, 30) == {rule.id: QUIET for rule in spec().rules}


def test_every_scenario_has_a_rule_and_a_description() -> None:
    assert set(SCENARIO_RULES) == set(SCENARIOS) == set(OWN_RULE)
    assert all(SCENARIOS.values())
    rule_ids = {rule.id for rule in spec().rules}
    assert set().union(*SCENARIO_RULES.values()) <= rule_ids


# The stretch each scenario needs to be judged whole: its rule's window, or 5 minutes.
_DURATION = {"script-silent": 10, "cleanup-failure": 15}


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {"traffic-spike"}))
def test_scenario_fires_its_rule_in_its_window_only(name: str) -> None:
    # Half the default traffic keeps the test quick: counts are sized absolutely and shares relatively,
    # so a scenario crosses its threshold at any traffic, and the baseline test covers the default.
    duration = _DURATION.get(name, 5)
    data = run(name, duration=duration)
    inside = levels(data, 5, 5 + duration)
    crossed = {rule_id for rule_id, reached in inside.items() if reached == CRITICAL}
    assert crossed == SCENARIO_RULES[name]
    own = spec().rule(OWN_RULE[name])
    assert level(own, data, 0, 5) == QUIET
    assert level(own, data, 5 + duration, 10 + duration) == QUIET


def test_traffic_spike_fires_the_change_rule_against_an_hour_earlier() -> None:
    # Relative to the traffic, so a lighter run does; the rule compares with 1 hour earlier.
    data = run("traffic-spike", before=65, duration=5, after=5, rpm=120)
    rule = spec().rule("request-spike")
    assert level(rule, data, 60, 65) == QUIET
    assert level(rule, data, 65, 70) == CRITICAL
    assert level(rule, data, 70, 75) == QUIET
    crossed = {rule_id for rule_id, reached in levels(data, 65, 70).items() if reached == CRITICAL}
    assert crossed == {"request-spike"}


def test_scenarios_change_the_data_visibly() -> None:
    storm = run("exception-storm")

    def exception_share(lo: int, hi: int) -> float:
        requests = [e for e in storm.between(lo, hi) if e["ScriptName"] == "conversation-api" and not e["Entrypoint"]]
        return sum(1 for e in requests if e["Outcome"] == "exception") / len(requests)

    assert exception_share(0, 5) == exception_share(10, 15) == 0
    assert exception_share(5, 10) >= 0.04
    assert {e["Event"]["Response"]["Status"] for e in storm.between(5, 10) if e["Outcome"] == "exception"} == {500}

    silent = run("script-silent", duration=10)
    assert {e["ScriptName"] for e in silent.between(5, 15)} == {"auth-worker"}
    assert sum(1 for e in silent.between(5, 15) if e["ScriptName"] == "auth-worker") == 10 * 30
    assert all(any(e["ScriptName"] == "conversation-api" for e in minute) for minute in silent.by_minute[15:])

    growth = run("storage-growth")
    stored = [(m, first_value(e, "do_storage_bytes")) for m in range(15) for e in growth.by_minute[m]]
    assert max(b for m, b in stored if b is not None and 5 <= m < 10) >= 1_000_000_000
    assert max(b for m, b in stored if b is not None and not 5 <= m < 10) < 10_000_000

    surge = run("conversation-surge")
    distinct = len({first_value(e, "conversation_id") for e in surge.between(5, 10)})
    assert distinct > 2 * 5000


# ------------------------------------------------------------------------------------ the API


def test_parse_scenario() -> None:
    assert parse_scenario("exception-storm@30m+10m") == Scenario("exception-storm", 30, 10)
    assert parse_scenario(" traffic-spike@1h+1h ") == Scenario("traffic-spike", 60, 60)
    assert parse_scenario("script-silent@0m+15m") == Scenario("script-silent", 0, 15)
    assert str(Scenario("do-errors", 5, 3)) == "do-errors@5m+3m"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("exception-strom@30m+10m", r"unknown scenario `exception-strom` \(did you mean `exception-storm`\?\)"),
        ("nothing-like-it@1m+1m", r"known scenarios: exception-storm, invalid-url-flood, .*script-silent$"),
        ("exception-storm", r"write NAME@START\+DURATION, e\.g\. exception-storm@30m\+10m"),
        ("exception-storm@30+10m", r"start: .* is not a duration"),
        ("exception-storm@30m+90s", r"duration must be whole minutes"),
        ("exception-storm@30m+0m", r"duration must be at least 1 minute"),
    ],
)
def test_parse_scenario_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scenario(text)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match=r"scenario `do-errors@8m\+5m` runs to minute 13, but the run has 10"):
        SynthConfig(minutes=10, scenarios=(Scenario("do-errors", 8, 5),))
    with pytest.raises(ValueError, match="minutes must be at least 1"):
        SynthConfig(minutes=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        SynthConfig(minutes=1, requests_per_minute=0)
    assert SynthConfig(minutes=1).start_ms == DEFAULT_START_MS == 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_throughput(tmp_path: Path) -> None:
    """Prints events per second; no assertion on timing (machines differ)."""
    config = SynthConfig(minutes=50)
    for name in ("bench.ndjson", "bench.ndjson.gz"):
        began = time.perf_counter()
        stats = generate(config, tmp_path / name)
        seconds = time.perf_counter() - began
        size = (tmp_path / name).stat().st_size
        rate = stats.events / seconds
        print(f"synth {name}: {stats.events:,} events in {seconds:.2f} s, {rate:,.0f}/s, {size:,} bytes")
    assert stats.events > 50_000


def test_the_command_writes_to_standard_output_or_a_new_folder_and_reads_start_as_utc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import cli_run

    code, out, err = cli_run("synth", "--out", "-", "--minutes", "2", "--rpm", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines
    assert all(json.loads(line)["EventTimestampMs"] >= 1_767_225_600_000 for line in lines)
    assert f"{len(lines):,} events written to standard output" in err
    monkeypatch.setenv("TZ", "America/New_York")
    zoned = tmp_path / "new" / "folder" / "a.ndjson"
    code, _, _ = cli_run("synth", "--out", str(zoned), "--minutes", "2", "--start", "2026-01-01T00:00:00")
    assert code == 0
    utc = tmp_path / "b.ndjson"
    cli_run("synth", "--out", str(utc), "--minutes", "2", "--start", "2026-01-01T00:00:00Z")
    assert zoned.read_bytes() == utc.read_bytes()


def test_the_command_names_a_bad_option() -> None:
    from tests.conftest import cli_run

    code, _, err = cli_run("synth", "--out", "x.ndjson", "--start", "yesterday")
    assert code == 2
    assert "Invalid value for --start: 'yesterday' is not an ISO 8601 time" in err
    code, out, _ = cli_run("synth", "--list-scenarios")
    assert code == 0
    assert "exception-storm" in out
    code, _, err = cli_run("synth", "--minutes", "1")
    assert code == 2
    assert "Missing option '--out'" in err
