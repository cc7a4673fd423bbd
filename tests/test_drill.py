"""Drills against the sandbox: every rule fires in time and notifies, broken rules fail clearly, and
an interrupted drill leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from extalerts.clock import Clock
from extalerts.drill.runner import minutes_seconds
from extalerts.drill.traffic import DrillPlanError, Traffic, base_event, plan_traffic, witness
from extalerts.drill.view import (
    DRILL_FIELD,
    DRILL_MANAGED_TAG,
    DRILL_SOURCETYPE,
    drill_view,
    parse_drill_rule_id,
)
from extalerts.engine import MINUTE_MS, Engine, State, schedule_minutes
from extalerts.filter import parse
from extalerts.filter.python import to_python
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.datadog import LOGS_PIPELINE, DatadogApi, DatadogProvider, DatadogSettings
from extalerts.sandbox import Sandbox
from extalerts.spec import load_spec
from tests.conftest import DRILL_RULES, MONITORS, REPO, cli_run

RULES = (
    DRILL_RULES
    + """\
  - id: error-rate
    title: 5xx rate
    severity: high
    filter: 'EventType == "fetch"'
    signal: {kind: ratio, match: "Event.Response.Status >= 500", min_events: 20}
    window: 5m
    thresholds: {critical: 5, critical_recovery: 3}
    notify: [platform-slack]
  - id: slow-ops
    title: Slow Durable Object operations
    severity: high
    filter: 'log_event == "do_op"'
    signal: {kind: measure, field: op_duration_ms, aggregation: p99}
    window: 5m
    group_by: [do_operation]
    thresholds: {critical: 1000, warning: 500}
    notify: [platform-slack]
  - id: silent
    title: Logs stopped
    severity: high
    signal: {kind: absence, expected: [conversation-api]}
    window: 10m
    group_by: [ScriptName]
    notify: [platform-slack]
  - id: surge
    title: Request surge
    severity: medium
    filter: 'EventType == "fetch"'
    signal: {kind: change, compare_to: 5m}
    window: 5m
    thresholds: {critical: 200}
    notify: [platform-slack]
"""
)

BROKEN = """\
  - id: never-below-zero
    title: A count that can never drop below zero
    severity: low
    filter: 'EventType == "fetch"'
    signal: {kind: count}
    window: 5m
    thresholds: {operator: "<", critical: 0}
    notify: [platform-slack]
"""

IMPOSSIBLE = """\
  - id: contradiction
    title: A filter no event can match
    severity: low
    filter: 'EventType == "fetch" and EventType == "alarm"'
    signal: {kind: count}
    window: 5m
    thresholds: {critical: 0}
    notify: [platform-slack]
"""


@pytest.fixture
def drill_rules() -> str:
    return RULES


@pytest.fixture
def sandbox_env(sandbox_env: Sandbox, drill_spec: Path) -> Sandbox:
    """conftest's sandbox, where drill events reach Datadog monitors through the structured-line
    pipeline, as in a set-up org."""
    push_the_pipeline(sandbox_env, drill_spec)
    return sandbox_env


def push_the_pipeline(sandbox: Sandbox, spec_dir: Path) -> None:
    """Push only the spec's rendered log pipeline, as `push --provider datadog` pushes it (each test
    pushes the monitors, or not, itself)."""
    provider = DatadogProvider(DatadogApi(DatadogSettings.from_env(env=sandbox.env())))
    (pipeline,) = [r for r in provider.desired(load_spec([spec_dir])) if r.kind == LOGS_PIPELINE]
    result = apply_plan(compute_plan(provider, [pipeline], provider.fetch(), prune=False), provider, concurrency=1)
    assert result.ok, result.failed


def drill_objects(sandbox: Sandbox) -> list[str]:
    """Everything of any drill on the sandbox, as the drill names it when it cleans up."""
    monitors = [f"monitor {m['id']}" for m in sandbox.datadog.monitors() if DRILL_MANAGED_TAG in m["tags"]]
    metrics = [f"logs metric {key}" for key in sandbox.datadog.state.metrics if "_drill_" in key]
    searches = [
        f"saved search {name}" for _, name, _ in sandbox.splunk.saved_searches() if name.startswith("extalerts-drill")
    ]
    return monitors + metrics + searches


# --------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("provider", ["datadog", "splunk"])
def test_drill_all_fires_every_rule_in_time_and_cleans_up(
    provider: str, drill_spec: Path, sandbox_env: Sandbox
) -> None:
    # Production monitors are live too: drill events must not reach them.
    code, _, err = cli_run("push", str(drill_spec), "-p", provider, "--yes", "--state-file", "state.json")
    assert code == 0, err
    code, out, err = cli_run("drill", str(drill_spec), "--provider", provider, "--all", "--output", "json")
    assert code == 0, err
    drills = {d["rule"]: d for d in json.loads(out)["drills"]}
    assert set(drills) == {"exceptions", "error-rate", "slow-ops", "silent", "surge"}
    for rule, drill in drills.items():
        assert drill["ok"], (rule, drill["verdict"])
        assert 0 <= drill["alert_seconds"] <= drill["expected_seconds"], rule
        assert drill["notified"] is True, rule
        assert drill["recovered"] is (True if provider == "datadog" else None), rule
        assert drill["cleaned_up"], rule
    # The exceptions rule (1-minute window, 5-minute delay) cannot alert before the delay has passed.
    assert 300 <= drills["exceptions"]["alert_seconds"] <= 420
    if provider == "datadog":
        # The change rule needs its log-based metric, created and deleted with the monitor.
        assert any(item.startswith("logs metric") for item in drills["surge"]["cleaned_up"])
        # Absence shows as No Data on the rendered monitor (on_missing_data: show_and_notify_no_data).
        assert any(h["rule"].startswith("silent-drill-") and h["state"] == "No Data" for h in sandbox_env.alerts())
    assert drill_objects(sandbox_env) == []
    sandbox_env.finish_evaluation()
    production = [h for h in sandbox_env.alerts() if "-drill-" not in h["rule"]]
    # Only the expected-but-never-seen script may alert (Splunk knows expected groups; Datadog cannot).
    assert {(h["rule"], h["group"]) for h in production} <= {("silent", "ScriptName=conversation-api")}


def test_drill_text_table_and_a_broken_rule_fails_clearly(drill_spec: Path, sandbox_env: Sandbox) -> None:
    (drill_spec / "rules.yaml").write_text(RULES + BROKEN)
    sandbox_env.evaluator.spec = load_spec([drill_spec])
    code, out, err = cli_run(
        "drill", str(drill_spec), "--provider", "datadog", "--rule", "exceptions", "--rule", "never-below-zero"
    )
    assert code == 1
    # Refused before anything is sent: no drill traffic can take a count below 0.
    assert (
        "FAIL never-below-zero: error: the drill's incident traffic does not take the rule's value < 0 "
        "within a window: the rule can never fire"
    ) in err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows["exceptions"][-1] == "ok"
    assert rows["never-below-zero"][1] == "no"
    assert rows["never-below-zero"][-1] == "FAIL"
    assert "1 of 2 rules fired in their expected time on datadog" in out
    assert drill_objects(sandbox_env) == []


def test_a_rule_that_can_never_fire_is_refused_before_anything_is_created(
    drill_spec: Path, sandbox_env: Sandbox
) -> None:
    (drill_spec / "rules.yaml").write_text(RULES + IMPOSSIBLE)
    code, _, err = cli_run("drill", str(drill_spec), "--provider", "splunk", "--rule", "contradiction")
    assert code == 1
    assert "no event can match the rule's filter: it can never fire" in err
    assert sandbox_env.splunk.saved_searches() == []
    assert sandbox_env.splunk.hec_log == []


def test_drill_refuses_an_unknown_rule_and_needs_a_rule_or_all(drill_spec: Path, sandbox_env: Sandbox) -> None:
    code, _, err = cli_run("drill", str(drill_spec), "--provider", "datadog", "--rule", "nope")
    assert code == 1
    assert "1 unknown rule: nope; known: error-rate, exceptions, silent, slow-ops, surge" in err
    code, _, err = cli_run("drill", str(drill_spec), "--provider", "datadog")
    assert code == 2
    assert "give --rule ID (one or more), --all or --clean-up" in err


@pytest.mark.parametrize(("provider", "signum"), [("datadog", signal.SIGINT), ("splunk", signal.SIGTERM)])
def test_an_interrupted_drill_leaves_nothing_behind(
    provider: str, signum: int, drill_spec: Path, tmp_path: Path
) -> None:
    # A slower clock, so the drill is surely still running when it is interrupted.
    with Sandbox(load_spec([drill_spec]), speed=30) as sandbox:
        env = {**os.environ, **sandbox.env()}
        command = [sys.executable, "-m", "extalerts", "drill", str(drill_spec), "-p", provider, "--rule", "silent"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not drill_objects(sandbox) and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            created = drill_objects(sandbox)
            assert created, "the drill never created its copy"
            time.sleep(0.3)  # events are flowing
            process.send_signal(signum)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130, err
        assert f"interrupted while drilling silent; removed: {created[0]}" in err
        assert drill_objects(sandbox) == []


# --------------------------------------------------------------------------------------------- units


def test_drill_view_scopes_the_copy_to_its_drill_id_and_target() -> None:
    spec = load_spec([MONITORS])
    view = drill_view(spec, "http-5xx-rate", "0123abcd", "http://127.0.0.1:9/drill")
    assert view.rule.id == "http-5xx-rate-drill-0123abcd"
    assert parse_drill_rule_id(view.rule.id) == ("http-5xx-rate", "0123abcd")
    assert parse_drill_rule_id("http-5xx-rate") is None
    assert [name for name, _ in view.rule.targets] == ["extalerts-drill"]
    assert view.rule.source.splunk.sourcetype == DRILL_SOURCETYPE
    assert view.rule.source.datadog.query == "service:extalerts-drill"
    matches = to_python(view.rule.filter, view.spec.catalog)
    logged = [{"Level": "log", "Message": ['{"extalerts_drill_id":"0123abcd"}']}]
    event = {"EventTimestampMs": 1, "EventType": "fetch", "Logs": logged}
    assert matches(event)
    other = {**event, "Logs": [{"Level": "log", "Message": ['{"extalerts_drill_id":"ffffffff"}']}]}
    assert not matches(other)
    assert view.rule.rule.thresholds == spec.rule("http-5xx-rate").rule.thresholds


@pytest.mark.parametrize(
    "text",
    [
        'Outcome != "ok"',
        'not (Outcome == "ok") and ScriptName in ["a", "b"]',
        'Logs.Message contains "ERROR_CODE_INVALID_URL" and Event.Response.Status >= 400',
        'Exceptions.Name == "TypeError" or CPUTimeMs > 50',
        'ScriptTags contains "canary" and not Event.Request.Method == "GET"',
        'error_code == "E1" and op_ok == false',
        "Event.Response.Status >= 500 and Event.Response.Status < 600 and not exists(Outcome)",
    ],
)
def test_witness_events_match_their_filter(text: str) -> None:
    spec = load_spec([MONITORS])
    expr = parse(text)
    event = witness(expr, spec.catalog, base_event("w")).build(1_000)
    assert to_python(expr, spec.catalog)(event), event


def test_a_contradiction_has_no_witness() -> None:
    spec = load_spec([MONITORS])
    with pytest.raises(DrillPlanError, match="can never fire"):
        witness(parse('Outcome == "ok" and not Outcome == "ok"'), spec.catalog, base_event("w"))


@pytest.mark.parametrize("rule_id", [r.id for r in load_spec([MONITORS]).rules])
def test_drill_traffic_for_every_rule_matches_it(rule_id: str) -> None:
    spec = load_spec([MONITORS])
    view = drill_view(spec, rule_id, "0123abcd")
    traffic = plan_traffic(view.rule, view.spec.catalog, "conversation-api")
    matches = to_python(view.rule.filter, view.spec.catalog)
    for phase in (traffic.healthy, traffic.incident):
        for event in list(phase.events(0))[:20]:
            assert matches(event), (rule_id, event)
            line = json.loads(event["Logs"][0]["Message"][0])
            assert line[DRILL_FIELD] == "0123abcd"
    assert traffic.expected_seconds >= view.rule.rule.window + view.rule.evaluation_delay


def test_the_drill_refuses_a_ratio_that_cannot_be_reached() -> None:
    spec = load_spec([MONITORS])
    rule = spec.rule("http-5xx-rate")
    thresholds = rule.rule.thresholds.model_copy(update={"critical": 100})  # type: ignore[union-attr]
    broken = type(rule)(**{**rule.__dict__, "rule": rule.rule.model_copy(update={"thresholds": thresholds})})
    with pytest.raises(DrillPlanError, match="can never be > 100"):
        plan_traffic(broken, spec.catalog, "conversation-api")


def test_rendered_output_lets_drill_events_through_the_pipeline_and_props() -> None:
    pipeline = json.loads((REPO / "rendered/datadog/pipelines/extalerts-structured-logs.json").read_text())
    assert "service:extalerts-drill" in pipeline["filter"]["query"]
    props = (REPO / "rendered/splunk/extalerts_workers/default/props.conf").read_text()
    assert f"[{DRILL_SOURCETYPE}]" in props


@pytest.mark.parametrize("provider", ["datadog", "splunk"])
def test_a_live_drill_fires_the_production_alert_and_deletes_nothing(
    provider: str, drill_spec: Path, sandbox_env: Sandbox
) -> None:
    code, _, err = cli_run("drill", str(drill_spec), "-p", provider, "--rule", "exceptions", "--live")
    assert code == 1
    assert "extalerts drill --live: standard input is not a terminal" in err
    code, _, err = cli_run("drill", str(drill_spec), "-p", provider, "--rule", "exceptions", "--live", "--yes")
    assert code == 1
    assert "push it before a live drill" in err
    code, _, err = cli_run("push", str(drill_spec), "-p", provider, "--yes", "--state-file", "state.json")
    assert code == 0, err
    before = sandbox_env.datadog.monitors() if provider == "datadog" else sandbox_env.splunk.saved_searches()
    code, out, err = cli_run(
        "drill", str(drill_spec), "-p", provider, "--rule", "exceptions", "--live", "--yes", "-o", "json"
    )
    assert code == 0, err
    assert "exceptions: platform-slack" in err  # who gets told, said before anything is sent
    (drill,) = json.loads(out)["drills"]
    assert drill["ok"], drill["verdict"]
    assert drill["notified"] is True
    assert drill["cleaned_up"] == []
    after = sandbox_env.datadog.monitors() if provider == "datadog" else sandbox_env.splunk.saved_searches()
    assert len(after) == len(before)
    # The production alert fired, and told the rule's real target (Slack, in the sink).
    assert any(h["rule"] == "exceptions" for h in sandbox_env.alerts())
    assert any(m["path"] == f"/{provider}/slack" for m in sandbox_env.sink.received())


def test_observing_counts_alert_and_no_data_but_not_a_warning() -> None:
    from extalerts.drill.backends import Created, DatadogDrillBackend
    from extalerts.emulators.datadog import DatadogEmulator
    from extalerts.providers.datadog import DatadogApi, DatadogSettings

    with DatadogEmulator("k" * 32, "a" * 40) as emulator:
        monitor = emulator.add_monitor(
            {
                "name": "m",
                "type": "log alert",
                "query": 'logs("*").index("*").rollup("count").last("5m") > 1',
                "options": {"thresholds": {"critical": 1}},
            }
        )
        backend = DatadogDrillBackend(DatadogApi(DatadogSettings(emulator.url, "k" * 32, "a" * 40)))
        created = [Created("monitor", str(monitor["id"]))]
        emulator.set_group_state(monitor["id"], "@ScriptName:a", "Warn", 1_000)
        assert backend.observe(created, since=0).alerted_at is None
        emulator.set_group_state(monitor["id"], "@ScriptName:a", "Alert", 1_060)
        assert backend.observe(created, since=0).alerted_at == 1_060
        assert backend.observe(created, since=2_000).alerted_at is None  # before the incident: not ours
        emulator.set_group_state(monitor["id"], "@ScriptName:a", "OK", 1_300)
        observation = backend.observe(created, since=0)
        assert (observation.alerted_at, observation.recovered_at) == (None, 1_300)
        emulator.set_group_state(monitor["id"], "@ScriptName:b", "No Data", 1_400)
        assert backend.observe(created, since=0).alerted_at == 1_400


def test_cleanup_also_removes_what_the_drill_never_heard_back_about(sandbox_env: Sandbox) -> None:
    """A create whose answer was lost (or interrupted before its id came back) is found by its drill id."""
    from extalerts.drill.backends import DatadogDrillBackend
    from extalerts.drill.runner import DrillOutcome, _clean_up
    from extalerts.providers.datadog import DatadogApi, DatadogSettings

    body = {
        "name": "[drill 0123abcd] x",
        "type": "log alert",
        "query": 'logs("*").index("*").rollup("count").last("5m") > 1',
        "options": {"thresholds": {"critical": 1}},
        "tags": [DRILL_MANAGED_TAG, "extalerts-drill:0123abcd"],
    }
    orphan = sandbox_env.datadog.add_monitor(body)
    other = sandbox_env.datadog.add_monitor({**body, "tags": [DRILL_MANAGED_TAG, "extalerts-drill:ffffffff"]})
    backend = DatadogDrillBackend(DatadogApi(DatadogSettings.from_env()))
    outcome = DrillOutcome("x", "datadog", "0123abcd")
    _clean_up(outcome, backend, [])
    assert outcome.cleaned_up == [f"monitor {orphan['id']}"]
    assert [m["id"] for m in sandbox_env.datadog.monitors()] == [other["id"]]


@pytest.mark.parametrize("provider", ["datadog", "splunk"])
def test_clean_up_removes_every_drill_copy_and_nothing_else(
    provider: str, drill_spec: Path, sandbox_env: Sandbox
) -> None:
    """What a drill killed with SIGKILL leaves behind, `drill --clean-up` removes; production stays."""
    from extalerts.drill.backends import DatadogDrillBackend, SplunkDrillBackend
    from extalerts.providers.datadog import DatadogApi, DatadogSettings
    from extalerts.providers.splunk import SplunkApi, SplunkProvider, SplunkSettings

    code, _, err = cli_run("push", str(drill_spec), "-p", provider, "--yes", "--state-file", "state.json")
    assert code == 0, err
    spec = load_spec([drill_spec])
    if provider == "datadog":
        backend: Any = DatadogDrillBackend(DatadogApi(DatadogSettings.from_env()))
    else:
        api = SplunkApi(SplunkSettings.from_env())
        backend = SplunkDrillBackend(SplunkProvider(api))
    created: list[Any] = []
    for rule_id, drill_id in (("surge", "0123abcd"), ("exceptions", "fedc4321")):
        backend.create(drill_view(spec, rule_id, drill_id), created)
    production = [m["id"] for m in sandbox_env.datadog.monitors() if "managed-by:extalerts" in m["tags"]]
    searches = [n for _, n, _ in sandbox_env.splunk.saved_searches() if n.startswith("extalerts - ")]
    assert len(drill_objects(sandbox_env)) == (3 if provider == "datadog" else 2)
    code, out, err = cli_run("drill", str(drill_spec), "-p", provider, "--clean-up")
    assert code == 1
    assert "extalerts drill --clean-up: standard input is not a terminal" in err
    code, out, err = cli_run("drill", str(drill_spec), "-p", provider, "--clean-up", "--yes")
    assert code == 0, err
    assert f"deleted {len(created)} drill copies from {provider}" in out
    assert drill_objects(sandbox_env) == []
    assert [m["id"] for m in sandbox_env.datadog.monitors() if "managed-by:extalerts" in m["tags"]] == production
    assert [n for _, n, _ in sandbox_env.splunk.saved_searches() if n.startswith("extalerts - ")] == searches
    code, out, _ = cli_run("drill", str(drill_spec), "-p", provider, "--clean-up")
    assert (code, out.strip()) == (0, f"no drill copies on {provider}")


# --------------------------------------------------------------------------------------------- timing

#: A drill start on the minute but not on five: Splunk's */5 runs fall anywhere in the drill.
DRILL_START_MS = 1_767_225_660_000


def _drill_events(traffic: Traffic, minutes: int) -> list[dict[str, Any]]:
    return [e for m in range(minutes) for e in traffic.minute_events(m, DRILL_START_MS + m * MINUTE_MS)]


@pytest.mark.parametrize("semantics", ["datadog", "splunk"])
@pytest.mark.parametrize("rule_id", [r.id for r in load_spec([MONITORS]).rules])
def test_the_engine_alerts_on_each_bundled_rules_drill_when_the_drill_allows(rule_id: str, semantics: str) -> None:
    """The drill's own traffic, run through the engine as `extalerts test` runs a rule test: quiet
    until the incident, then an alert no sooner than the drill's earliest time and no later than its
    expected one."""
    spec = load_spec([MONITORS])
    view = drill_view(spec, rule_id, "0123abcd")
    rule = view.rule
    cron_seconds = schedule_minutes(rule, semantics) * 60  # type: ignore[arg-type]
    traffic = plan_traffic(rule, view.spec.catalog, "conversation-api", cron_seconds=cron_seconds)
    minutes = traffic.warmup_minutes + traffic.incident_minutes
    events = _drill_events(traffic, minutes)
    # A provider holds logs from before the drill (an earlier drill's, here): a baseline reaching back
    # before the drill's first minute reads as partly empty, not as unknown.
    events.insert(0, {**events[0], "EventTimestampMs": DRILL_START_MS - 3 * 3600_000, "Logs": []})
    engine = Engine(view.spec, rules=[rule.id], semantics=semantics, memory_limit="256MB", threads=1)  # type: ignore[arg-type]
    engine.load_events(events)
    incident_ms = DRILL_START_MS + traffic.warmup_minutes * MINUTE_MS
    # The copy exists from the drill's start: every evaluation from then on counts.
    result = engine.evaluate(start_ms=DRILL_START_MS, end_ms=incident_ms + traffic.expected_seconds * 1000)
    alerts = [t.at_ms for t in result.rules[rule.id].transitions if t.after is State.ALERT]
    assert alerts, f"{rule_id}: the engine never alerts on the drill's traffic"
    assert min(alerts) >= incident_ms, f"{rule_id}: alerts {(incident_ms - min(alerts)) // 1000}s before the incident"
    alert_seconds = (min(alerts) - incident_ms) / 1000
    assert traffic.earliest_seconds <= alert_seconds <= traffic.expected_seconds, rule_id
    if semantics == "datadog":
        # Evaluated on the minute: the first evaluation that sees the whole of the last minute needed.
        assert alert_seconds == traffic.earliest_seconds + 60, rule_id
    else:
        # The next run of the schedule after that evaluation.
        assert alert_seconds < traffic.earliest_seconds + 60 + cron_seconds, rule_id


def test_request_spike_warm_up_covers_delay_window_and_baseline() -> None:
    """5m window, 5m delay, compare_to 1h: the evaluation at the incident's start reads back 70
    minutes, and the warm-up is longer. The window is 200 % above its baseline after two minutes of
    spike, seen after the delay: 7 minutes on the minute, after 6 minutes at the soonest."""
    spec = load_spec([MONITORS])
    view = drill_view(spec, "request-spike", "0123abcd")
    traffic = plan_traffic(view.rule, view.spec.catalog, "conversation-api")
    assert traffic.warmup_minutes == 5 + 5 + 60 + 1
    assert traffic.earliest_seconds == 6 * 60
    assert traffic.earliest_reason.startswith("evaluation delay 5m, then 2m of incident traffic")
    # The first minute holds a window of healthy traffic: a baseline holding only it is not smaller
    # than the window it is compared with.
    assert len(traffic.minute_events(0, 0)) == 5 * len(traffic.minute_events(1, 60_000))


class _FiresAt:
    """A backend whose copy alerts a fixed time after the incident starts (0: when it starts, as the
    request-spike drill did on a warm-up too short for its baseline)."""

    provider = "datadog"
    tracks_recovery = False

    def __init__(self, clock: Clock, after_seconds: float) -> None:
        self.clock, self.after_seconds = clock, after_seconds

    def create(self, view: Any, created: list[Any]) -> None:
        from extalerts.drill.backends import Created

        created.append(Created("monitor", "1"))

    def observe(self, created: list[Any], since: float) -> Any:
        from extalerts.drill.backends import Observation

        at = since + self.after_seconds
        return Observation(alerted_at=at if self.clock.now() >= at else None)

    def delete(self, item: Any) -> None:
        pass

    def sweep(self, drill_id: str | None) -> list[Any]:
        return []


class _Counting:
    name = "counting"

    def send(self, events: Any) -> int:
        return len(events)


@pytest.mark.parametrize(("after_seconds", "ok"), [(0, False), (5 * 60 + 59, False), (6 * 60, True), (7 * 60, True)])
def test_a_drill_that_alerts_sooner_than_its_incident_allows_fails(after_seconds: int, ok: bool) -> None:
    from extalerts.drill.runner import DrillSettings, run_drill

    clock = Clock.scaled(20_000)
    settings = DrillSettings(clock=clock, poll_seconds=0.001)
    backend = _FiresAt(clock, after_seconds)
    outcome = run_drill(load_spec([MONITORS]), "request-spike", backend, _Counting(), settings)  # type: ignore[arg-type]
    assert (outcome.earliest_seconds, outcome.alert_seconds) == (360, after_seconds)
    assert outcome.ok is ok
    assert outcome.as_json()["too_early"] is not ok
    if not ok:
        assert outcome.verdict() == (
            f"fired too early: after {minutes_seconds(after_seconds)}, but the incident cannot make it alert "
            "before 6m00s (evaluation delay 5m, then 2m of incident traffic to cross the threshold, the last "
            "of which an evaluation may see in part); something other than the drill's incident set it off"
        )


def test_the_drill_refuses_a_count_that_can_never_drop_below_its_threshold() -> None:
    spec = load_spec([MONITORS])
    rule = spec.rule("invalid-url-flood")
    thresholds = rule.rule.thresholds.model_copy(  # type: ignore[union-attr]
        update={"operator": "<", "critical": 0, "warning": None}
    )
    broken = type(rule)(**{**rule.__dict__, "rule": rule.rule.model_copy(update={"thresholds": thresholds})})
    with pytest.raises(DrillPlanError, match="does not take the rule's value < 0 within a window"):
        plan_traffic(broken, spec.catalog, "conversation-api")


# --------------------------------------------------------------------------------------------- broken artifacts


def _misspell_the_group_attribute(sandbox: Sandbox) -> None:
    from datadog_api_client.v1.api.monitors_api import MonitorsApi
    from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest

    from extalerts.providers.datadog import DatadogApi, DatadogSettings

    monitor = next(m for m in sandbox.datadog.monitors() if "extalerts-rule:exceptions" in m["tags"])
    query = monitor["query"].replace('.by("@ScriptName")', '.by("@Scriptname")')
    assert query != monitor["query"]
    api = DatadogApi(DatadogSettings.from_env(env=sandbox.env()))
    api.call("edit", lambda c: MonitorsApi(c).update_monitor(monitor["id"], MonitorUpdateRequest(query=query)))


def _remove_the_status_facet(sandbox: Sandbox) -> None:
    sandbox.datadog.remove_facet("@Event.Response.Status")


def _delete_the_pipeline(sandbox: Sandbox) -> None:
    import urllib3

    (pipeline_id,) = sandbox.datadog.state.pipelines
    env = sandbox.env()
    response = urllib3.request(
        "DELETE",
        f"{sandbox.datadog.url}/api/v1/logs/config/pipelines/{pipeline_id}",
        headers={"DD-API-KEY": env["DD_API_KEY"], "DD-APPLICATION-KEY": env["DD_APP_KEY"]},
    )
    assert response.status == 200


def _point_grok_at_the_array(sandbox: Sandbox) -> None:
    import urllib3

    env = sandbox.env()
    headers = {"DD-API-KEY": env["DD_API_KEY"], "DD-APPLICATION-KEY": env["DD_APP_KEY"]}
    url = f"{sandbox.datadog.url}/api/v1/logs/config/pipelines"
    (pipeline,) = json.loads(urllib3.request("GET", url, headers=headers).data)
    (grok,) = [p for p in pipeline["processors"] if p["type"] == "grok-parser"]
    grok["source"] = "Logs.Message"  # the array itself: grok reads strings only
    body = {k: pipeline[k] for k in ("name", "is_enabled", "filter", "processors")}
    response = urllib3.request("PUT", f"{url}/{pipeline['id']}", body=json.dumps(body).encode(), headers=headers)
    assert response.status == 200


@pytest.mark.parametrize(
    ("rule", "live", "breaks"),
    [
        ("exceptions", True, _misspell_the_group_attribute),
        ("error-rate", False, _remove_the_status_facet),
        ("exceptions", False, _delete_the_pipeline),
        ("slow-ops", False, _point_grok_at_the_array),
    ],
    ids=["misspelt-attribute", "range-without-facet", "pipeline-deleted", "grok-on-an-array"],
)
def test_a_broken_pushed_artifact_fails_the_drill_of_its_rule(
    rule: str, live: bool, breaks: Any, drill_spec: Path, sandbox_env: Sandbox
) -> None:
    # The emulator evaluates what is pushed: a drill passes only when every artifact works together.
    code, _, err = cli_run("push", str(drill_spec), "-p", "datadog", "--yes", "--state-file", "state.json")
    assert code == 0, err
    breaks(sandbox_env)
    extra = ["--live", "--yes"] if live else []
    code, out, err = cli_run("drill", str(drill_spec), "-p", "datadog", "--rule", rule, *extra, "-o", "json")
    assert code == 1, err
    (drill,) = json.loads(out)["drills"]
    assert not drill["ok"]
    assert drill["verdict"].startswith("did not fire within"), drill["verdict"]
