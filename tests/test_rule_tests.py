"""Rule test files: mistakes refused where they are written, and expectations that cannot pass vacuously.

Each test here writes a small test file against the bundled ``monitors/`` rules. ``worker-exception``
counts failed invocations per ScriptName over 1m with a 5m evaluation delay (critical above 0);
``invalid-url-flood`` warns above 50 and alerts above 100 invalid URLs in 5m.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from extalerts.engine import EngineError
from extalerts.errors import TestFileError
from extalerts.rule_tests import junit_xml, load_tests, run_test
from extalerts.spec import load_spec
from extalerts.spec.loader import Spec
from tests.conftest import MONITORS, cli_run, write


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec([MONITORS])


def write_tests(tests: str) -> Path:
    return write(Path("rule-tests.yaml"), "version: 1\ntests:\n" + tests)


def refused(spec: Spec, tests: str) -> str:
    with pytest.raises(TestFileError) as caught:
        load_tests([write_tests(tests)], spec)
    return str(caught.value)


def failures(spec: Spec, tests: str) -> list[tuple[str, ...]]:
    return [run_test(spec, loaded).failures for loaded in load_tests([write_tests(tests)], spec)]


EXCEPTION_BURST = """\
  - name: {name}
    rule: worker-exception
    input:
      - burst: {{at: 10m, count: 5}}
        event: {event}
    expect:
{expect}
"""


def burst_test(
    event: str = "{ScriptName: api, Outcome: exception}", expect: str = "      - fires: 16m", name: str = "t"
) -> str:
    return EXCEPTION_BURST.format(name=name, event=event, expect=expect)


# --------------------------------------------------------------------------------------------- refused at load


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (
            "{ScriptName: api, Outcom: exception}",
            "`Outcom` is not a Workers Trace Events field (did you mean `Outcome`?)",
        ),
        (
            "{Event.Respone.Status: 500}",
            "`Event.Respone.Status` is not a field the rules read (did you mean `Event.Response.Status`?)",
        ),
        ("{Event: {Respone: {Status: 500}}}", "did you mean `Event.Response.Status`?"),
        (
            "{CPUTimeMs: {unifrom: [50, 90]}}",
            "`CPUTimeMs`: {unifrom} is neither a value nor a generator (did you mean `uniform`?)",
        ),
        ("{CPUTimeMs: {uniform: [90, 50]}}", "{uniform: …} takes [low, high] with low <= high"),
        ("{ScriptName: {cycle: []}}", "{cycle: …} takes a non-empty list"),
        ("{ScriptName: {unique: conversation}}", "{unique: …} takes a text with {n}"),
        ("{Logs.Message: boom}", "`Logs` is a list: give it whole"),
        ("{EventTimestampMs: 5}", "`EventTimestampMs` comes from the series or burst times"),
    ],
)
def test_misspelt_fields_and_generators_are_refused_where_written(spec: Spec, event: str, says: str) -> None:
    message = refused(spec, burst_test(event=event))
    assert says in message
    assert "rule-tests.yaml:6:" in message  # the input that carries the template


def test_documented_fields_and_other_event_types_pass(spec: Spec) -> None:
    event = "{ScriptName: {cycle: [a, b]}, Event.Cron: '*/5 * * * *', ScriptVersion: {Tag: v1}, "
    event += "CPUTimeMs: {uniform: [1, 9]}}"
    assert load_tests([write_tests(burst_test(event=event))], spec)


@pytest.mark.parametrize(
    ("expect", "says"),
    [
        ("      - fires: [20m, 10m]", "the range ends (10m) before it starts (20m)"),
        ("      - fires: 90s", 'rules are evaluated on the minute, so 90s can never match: write "1m", "2m"'),
        ("      - state: ok\n        at: 150s", "can never match"),
        ("      - fires: 16", 'write times with a unit, e.g. "16m"'),
        (
            "      - quiet: true\n        group: {Colo: xyz}",
            "rule `worker-exception` does not group by Colo (it groups by ScriptName)",
        ),
    ],
)
def test_impossible_expectations_are_refused(spec: Spec, expect: str, says: str) -> None:
    message = refused(spec, burst_test(expect=expect))
    assert says in message
    assert "function-before" not in message  # no validator internals
    assert "tuple[" not in message


def test_test_level_mistakes_are_refused(spec: Spec) -> None:
    tests = burst_test(name="same") + burst_test(name="same")
    tests += "  - name: early\n    rule: worker-exception\n    until: 2m\n" + burst_test().split("\n", 2)[2]
    tests += "  - name: when\n    rule: worker-exceptions\n    start: yesterday\n" + burst_test().split("\n", 2)[2]
    message = refused(spec, tests)
    assert "test `same`: another test in this file has the same name" in message
    assert "test `early`: until 2m is before the first evaluation (6m" in message
    assert "test `when`: unknown rule `worker-exceptions` (did you mean `worker-exception`?)" in message


def test_start_must_be_an_iso_time_on_the_minute(spec: Spec) -> None:
    body = burst_test().split("\n", 2)[2]
    assert "start 'yesterday' is not an ISO 8601 time" in refused(
        spec, f"  - name: a\n    rule: worker-exception\n    start: yesterday\n{body}"
    )
    assert "is not on a minute" in refused(
        spec, f"  - name: a\n    rule: worker-exception\n    start: '2026-01-01T00:00:30Z'\n{body}"
    )


def test_a_start_without_a_zone_is_utc(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    body = burst_test().split("\n", 2)[2]
    (loaded,) = load_tests(
        [write_tests(f"  - name: a\n    rule: worker-exception\n    start: '2026-01-01T00:00:00'\n{body}")], spec
    )
    assert loaded.start_ms == 1_767_225_600_000


def test_generated_volume_is_bounded(spec: Spec) -> None:
    tests = (
        "  - name: big\n    rule: worker-exception\n    input:\n      - series: {from: 0m, to: 30d, per_minute: 100}\n"
    )
    tests += "    expect:\n      - quiet: true\n"
    assert "the inputs generate 4,320,000 events, over 1,000,000" in refused(spec, tests)


FIXTURE_TEST = (
    "  - name: f\n    rule: worker-exception\n    input:\n      - file: {file}\n    expect:\n      - fires: 6m\n"
)


def test_fixture_lines_are_checked_when_the_file_loads(spec: Spec) -> None:
    good = {"EventTimestampMs": 1_767_225_600_000, "ScriptName": "api", "Outcome": "exception"}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "EventTimestampMs": "1767225600000"}), "[1, 2]"]
    Path("fixture.ndjson").write_text("\n".join(lines) + "\n")
    tests = FIXTURE_TEST.format(file="fixture.ndjson")
    message = refused(spec, tests)
    assert "fixture.ndjson:2:2: not JSON" in message
    assert "fixture.ndjson:3: not a Workers Trace Event" in message
    assert "fixture.ndjson:4: not a Workers Trace Event" in message
    assert "fixture.ndjson:1" not in message
    both = tests.replace(
        "      - file: fixture.ndjson\n", "      - file: fixture.ndjson\n        event: {ScriptName: other}\n"
    )
    assert "a fixture's events are read as written" in refused(spec, both)


def test_a_gzip_fixture_is_read_and_shifted_to_the_start(spec: Spec) -> None:
    events = [
        {"EventTimestampMs": 1_700_000_000_000 + k, "ScriptName": "api", "Outcome": "exception"} for k in range(3)
    ]
    Path("fixture.ndjson.gz").write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in events).encode()))
    tests = FIXTURE_TEST.format(file="fixture.ndjson.gz")
    assert failures(spec, tests) == [()]


# --------------------------------------------------------------------------------------------- no vacuous passes


def test_a_group_no_event_has_fails_but_one_the_filter_leaves_out_is_quiet(spec: Spec) -> None:
    typo = burst_test(expect="      - quiet: true\n        group: {ScriptName: apii}")
    (found,) = failures(spec, typo)
    assert found == ("no event of the test has ScriptName=apii for ScriptName=apii (its values: api)",)
    healthy = "      - series: {from: 0m, to: 20m, per_minute: 5}\n        event: {ScriptName: web}\n"
    left_out = burst_test(expect="      - quiet: true\n        group: {ScriptName: web}").replace(
        "    expect:", healthy + "    expect:"
    )
    assert failures(spec, left_out) == [()]


def test_default_end_sees_a_burst_recover_and_later_expectations_name_the_last_evaluation(spec: Spec) -> None:
    assert failures(spec, burst_test(expect="      - fires: 16m\n      - resolves: 17m")) == [()]
    (found,) = failures(spec, burst_test(expect="      - state: ok\n        at: 9999d"))
    assert found == ("expected something at 9999d, but the last evaluation is at 17m; set `until:` later",)


def test_warns_means_entering_warn_from_ok(spec: Spec) -> None:
    flood = """\
  - name: f
    rule: invalid-url-flood
    input:
      - burst: {at: 10m, count: 150, spread: 1m}
        event: {ScriptName: conversation-api}
        message: "ERROR_CODE_INVALID_URL: bad"
      - burst: {at: 14m, count: 60, spread: 1m}
        event: {ScriptName: conversation-api}
        message: "ERROR_CODE_INVALID_URL: bad"
    expect:
      - warns: [0m, 1h]
"""
    (found,) = failures(spec, flood)
    assert found == ("expected to warn between 0m and 1h",)  # it alerted, then eased to warn: not a warning
    assert failures(spec, flood.replace("      - warns: [0m, 1h]", "      - state: warn\n        at: 21m")) == [()]


def test_state_without_a_group_is_the_worst_group_state(spec: Spec) -> None:
    two = """\
  - name: s
    rule: worker-exception
    input:
      - series: {from: 0m, to: 30m, per_minute: 5}
        event: {ScriptName: calm}
      - burst: {at: 11m, count: 5}
        event: {ScriptName: broken, Outcome: exception}
    expect:
      - state: alert
        at: 17m
      - state: ok
        at: 17m
        group: {ScriptName: calm}
      - state: ok
        at: 18m
"""
    assert failures(spec, two) == [()]
    (found,) = failures(
        spec, two.replace("      - state: alert\n        at: 17m", "      - state: ok\n        at: 17m")
    )
    assert found == ("expected ok at 17m, was alert",)


def test_an_error_while_running_fails_that_test_alone(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_tests([write_tests(burst_test(name="a") + burst_test(name="b"))], spec)

    def broken(*_: object, **__: object) -> None:
        raise EngineError("DuckDB ran out of memory")

    monkeypatch.setattr("extalerts.engine.Engine.load_events", broken)
    outcomes = [run_test(spec, item) for item in loaded]
    assert [o.failures for o in outcomes] == [("error: DuckDB ran out of memory",)] * 2
    assert ElementTree.fromstring(junit_xml(outcomes)).findall(".//failure")


# --------------------------------------------------------------------------------------------- the command


def test_an_unknown_rule_or_no_tests_is_an_error_not_a_pass(spec: Spec) -> None:
    write_tests(burst_test())
    code, _, err = cli_run("test", "rule-tests.yaml", "--spec", str(MONITORS), "--rule", "worker-excepton")
    assert code == 1
    assert "1 unknown rule in --rule: worker-excepton (did you mean `worker-exception`?)" in err
    code, _, err = cli_run("test", "rule-tests.yaml", "--spec", str(MONITORS), "--rule", "invalid-url-flood")
    assert code == 1
    assert "no rule tests of rule invalid-url-flood in rule-tests.yaml" in err
    Path("empty").mkdir()
    code, _, err = cli_run("test", "empty", "--spec", str(MONITORS))
    assert code == 1
    assert "no rule tests in empty" in err


def test_json_timeline_is_data_and_junit_always_parses(spec: Spec) -> None:
    write_tests(burst_test(name='"bell \\a <and> & quotes"', expect="      - fires: 12m"))  # \a: BEL, in YAML
    code, out, _ = cli_run("test", "rule-tests.yaml", "--spec", str(MONITORS), "-o", "json", "--junit-xml", "r.xml")
    assert code == 1
    (test,) = json.loads(out)["tests"]
    assert "seconds" not in test
    assert test["timeline"][0] == {
        "at": "16m",
        "at_seconds": 960.0,
        "group": {"ScriptName": "api"},
        "from": "ok",
        "to": "alert",
        "value": 5.0,
    }
    case = ElementTree.parse("r.xml").getroot().find(".//testcase")
    assert case is not None
    assert case.attrib["name"] == "bell \\x07 <and> & quotes"


def test_a_tab_is_named_in_a_yaml_error() -> None:
    write(Path("tabs.yaml"), "version: 1\ntests:\n\t- name: x\n")
    code, _, err = cli_run("test", "tabs.yaml", "--spec", str(MONITORS))
    assert code == 1
    assert "tabs.yaml:3:1: YAML syntax error" in err
    assert "tabs are not allowed for indentation in YAML" in err
    assert "fix the test files and run `extalerts test` again" in err


def test_no_evaluation_fails_even_a_quiet_test(spec: Spec) -> None:
    Path("empty.ndjson").write_text("")
    tests = FIXTURE_TEST.format(file="empty.ndjson").replace("      - fires: 6m", "      - quiet: true")
    assert failures(spec, tests) == [
        (
            "no evaluation ran: the events end before the first window closes, or the schedule's "
            "first run comes after `until`",
        )
    ]


def test_a_malformed_unique_pattern_is_refused(spec: Spec) -> None:
    assert "{unique: …} takes a text with {n}" in refused(spec, burst_test(event='{ScriptName: {unique: "s-{n.x}"}}'))


HEARTBEAT_SPEC = """\
version: 1
rules:
  - id: cron-heartbeat
    title: The cron Worker stopped running
    severity: high
    filter: 'ScriptName == "cron"'
    signal: {kind: absence}
    window: 10m
"""


@pytest.mark.parametrize("semantics", ["datadog", "splunk"])
def test_an_ungrouped_absence_rule_fires_from_the_first_full_window_before_its_events_start(
    semantics: str,
) -> None:
    spec = load_spec([write(Path("heartbeat.yaml"), HEARTBEAT_SPEC)])
    # The first full window of the test's data, [0m, 10m), is judged at 15m (the default 5m delay);
    # the rule's own events start at 30m and are first seen at 36m. Splunk's alert runs once per
    # window, on the ten: it first judges at 20m and sees the events at 40m.
    fires, resolves = ("15m", "36m") if semantics == "datadog" else ("20m", "40m")
    tests = f"""\
  - name: the heartbeat starts late
    rule: cron-heartbeat
    semantics: {semantics}
    input:
      - series: {{from: 0m, to: 60m, per_minute: 5}}
        event: {{ScriptName: api}}
      - series: {{from: 30m, to: 60m, per_minute: 1}}
        event: {{ScriptName: cron}}
    expect:
      - fires: {fires}
      - resolves: {resolves}
"""
    (loaded,) = load_tests([write_tests(tests)], spec)
    outcome = run_test(spec, loaded)
    assert outcome.failures == (), outcome.timeline_text()
    assert outcome.timeline_text()[0].split() == [fires, "(all)", "ok", "→", "alert", "(value", "0)"]


def test_spec_files_where_tests_go_are_one_issue_each_saying_where_they_belong(spec: Spec) -> None:
    with pytest.raises(TestFileError) as refusal:
        load_tests([MONITORS], spec)
    (issue,) = refusal.value.issues
    assert issue.message == "a directory of spec files, not of rule tests"
    assert f"--spec {MONITORS}/" in issue.hint
    assert f"its rule tests are in {MONITORS}/tests/" in issue.hint
    with pytest.raises(TestFileError) as refusal:
        load_tests([MONITORS / "workers.yaml", MONITORS / "tests" / "traffic.yaml"], spec)
    (issue,) = refusal.value.issues
    assert (issue.location.path, issue.location.line) == (MONITORS / "workers.yaml", 1)
    assert issue.message == "a spec file, not a rule test file"
