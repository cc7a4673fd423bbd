"""``--semantics cloudflare``: rules as Workers Observability alerts, on small event sets.

Conventions as in test_engine: T0 is a minute boundary, ``at(m)`` is T0 + m minutes. A check at T reads
``[T - lookback, T)``, with no evaluation delay.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from extalerts.coverage import OptionA, coverage
from extalerts.engine import Engine, EngineResult, RuleResult
from extalerts.observability_timings import Timings
from extalerts.spec import load_spec
from extalerts.spec.loader import Spec
from tests.conftest import MONITORS, cli_run, write
from tests.test_engine import T0, event, spec_with

EXCEPTIONS = """\
  - id: exceptions
    title: Exceptions
    severity: high
    filter: 'Outcome == "exception"'
    signal: {kind: count}
    window: 1m
    evaluation_delay: 2m
    group_by: [ScriptName]
    thresholds: {critical: 0}
"""


@pytest.fixture
def alert_timings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Run every rule with these timings, and as carried by Option A, whatever the recipes say."""

    def use(every: int = 1, lookback: int = 1, fire_after: int = 0, resolve_after: int = 0) -> None:
        timings = Timings(every, lookback, fire_after, resolve_after)
        monkeypatch.setattr("extalerts.observability_timings.timings_for", lambda rule: timings)
        monkeypatch.setattr("extalerts.engine.observability.not_carried_by_option_a", lambda rule, spec: None)

    return use


def evaluate(spec: Spec, events: list[dict[str, Any]], **kwargs: Any) -> EngineResult:
    engine = Engine(spec, threads=1, semantics="cloudflare")
    engine.load_events(events)
    return engine.evaluate(**kwargs)


def minutes(outcome: RuleResult) -> list[tuple[float, str, str, str]]:
    return [
        ((t.at_ms - T0) / 60_000, dict(t.group).get("ScriptName", ""), t.before.value, t.after.value)
        for t in outcome.transitions
    ]


def exceptions_at(*at_minutes: float, script: str = "api") -> list[dict[str, Any]]:
    return [event(m, Outcome="exception", ScriptName=script) for m in at_minutes]


def test_a_three_minute_burst_never_fires_with_fire_after_five_minutes(
    tmp_path: Path, alert_timings: Callable[..., None]
) -> None:
    alert_timings(fire_after=5)
    spec = spec_with(tmp_path, EXCEPTIONS)
    background = [event(m) for m in range(30)]
    # Exceptions in minutes 10, 11, 12: the checks at 11, 12 and 13 fail (13 - 11 = 2 < 5), 14 passes.
    result = evaluate(spec, background + exceptions_at(10, 11, 12))
    (outcome,) = result.rules.values()
    assert outcome.transitions == []
    assert outcome.notifications == []
    # Six minutes (10..15): the checks at 11..16 fail, and 16 - 11 = 5 fires, with no evaluation delay
    # (the rule's 2m is Datadog's); the check at 17 passes and, resolving after 0m, resolves.
    (outcome,) = evaluate(spec, background + exceptions_at(*range(10, 16))).rules.values()
    assert minutes(outcome) == [(16.0, "api", "ok", "alert"), (17.0, "api", "alert", "ok")]
    assert [(at - T0) // 60_000 for at, _ in outcome.notifications] == [16]


def test_a_rule_firing_then_flapping_stays_firing_and_notifies_once(
    tmp_path: Path, alert_timings: Callable[..., None]
) -> None:
    alert_timings(resolve_after=5)
    spec = spec_with(tmp_path, EXCEPTIONS)
    background = [event(m) for m in range(40)]
    # Failing checks at 11, 12, 13, 15 and 18: fires at 11; passing stretches 14, 16-17 are shorter than
    # 5 minutes, so Pending Resolve returns to Firing each time; from 19 it passes: 24 - 19 = 5 resolves.
    (outcome,) = evaluate(spec, background + exceptions_at(10, 11, 12, 14, 17)).rules.values()
    assert minutes(outcome) == [(11.0, "api", "ok", "alert"), (24.0, "api", "alert", "ok")]
    assert [(at - T0) // 60_000 for at, _ in outcome.notifications] == [11]
    (interval,) = outcome.intervals()
    assert (interval.start_ms - T0, interval.end_ms) == (11 * 60_000, T0 + 24 * 60_000)


def test_checks_every_five_minutes_read_their_lookback_only(tmp_path: Path, alert_timings: Callable[..., None]) -> None:
    spec = spec_with(tmp_path, EXCEPTIONS)
    background = [event(m) for m in range(40)]
    burst = exceptions_at(12, 13)
    # Every 5 minutes over the last 5: the check at 15 reads [10, 15) and fires; 20 reads [15, 20), resolves.
    alert_timings(every=5, lookback=5)
    (outcome,) = evaluate(spec, background + burst).rules.values()
    assert minutes(outcome) == [(15.0, "api", "ok", "alert"), (20.0, "api", "alert", "ok")]
    assert outcome.evaluations == 8  # 5, 10, ... 40: on multiples of 5 minutes, to the end of the input
    assert all((t - T0) % 300_000 == 0 for series in outcome.series.values() for t, _ in series)
    # Every 5 minutes over the last 1: minutes 12 and 13 are read by no check.
    alert_timings(every=5, lookback=1)
    (outcome,) = evaluate(spec, background + burst).rules.values()
    assert outcome.transitions == []


def test_each_script_is_its_own_alert_and_the_warning_is_not_a_state(
    tmp_path: Path, alert_timings: Callable[..., None]
) -> None:
    alert_timings(fire_after=1)
    spec = spec_with(tmp_path, EXCEPTIONS.replace("{critical: 0}", "{critical: 1, warning: 0}"))
    background = [event(m, ScriptName=s) for m in range(20) for s in ("api", "web")]
    events = background + exceptions_at(5, 5, 6, 6, script="api") + exceptions_at(5, 5, 9, script="web")
    (outcome,) = evaluate(spec, events).rules.values()
    # api fails at 6 and 7 (7 - 6 = 1 fires at 7), passes at 8; web fails at 6 alone and never fires.
    # web's single exception at 9 reaches the warning alone, which is not a state here: the recipe's
    # warning is an alert of its own, and the engine runs the critical one.
    assert minutes(outcome) == [(7.0, "api", "ok", "alert"), (8.0, "api", "alert", "ok")]


def test_rules_option_a_cannot_carry_are_listed_not_evaluated(
    tmp_path: Path, alert_timings: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    alert_timings(fire_after=2)
    spec = spec_with(tmp_path, EXCEPTIONS + EXCEPTIONS.replace("id: exceptions", "id: silence"))
    monkeypatch.setattr(
        "extalerts.engine.observability.not_carried_by_option_a",
        lambda rule, spec: "no alert for it" if rule.id == "silence" else None,
    )
    result = evaluate(spec, [event(m) for m in range(10)])
    assert set(result.rules) == {"exceptions"}
    assert result.not_carried == {"silence": "no alert for it"}
    assert result.timings == {"exceptions": Timings(1, 1, 2, 0)}


def test_the_bundled_rules_are_carried_as_coverage_says() -> None:
    spec = load_spec([MONITORS])
    result = evaluate(spec, [event(m) for m in range(30)])
    verdicts = {row.rule.id: row.verdict for row in coverage(spec)}
    carried = {i for i, v in verdicts.items() if v.option_a is not OptionA.NO and v.alert_type is None}
    assert set(result.rules) == carried
    assert result.not_carried == {i: v.reason for i, v in verdicts.items() if i not in carried}
    # An absence rule is never an alert's: Cloudflare's notice of a disabled Logpush job carries it partly.
    assert "logs-stopped" in result.not_carried


def test_replay_under_cloudflare_semantics_lists_carried_rules_and_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from extalerts.synth import SynthConfig, generate, parse_scenario

    path = tmp_path / "demo.ndjson"
    generate(
        SynthConfig(minutes=30, requests_per_minute=60, scenarios=(parse_scenario("exception-storm@10m+5m"),)), path
    )
    spec = load_spec([MONITORS])
    verdicts = {row.rule.id: row.verdict for row in coverage(spec)}
    carried = sorted(i for i, v in verdicts.items() if v.option_a is not OptionA.NO and v.alert_type is None)
    replay = ("replay", str(path), "--spec", str(MONITORS), "--semantics", "cloudflare")
    code, out, err = cli_run(*replay, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["semantics"] == "cloudflare"
    assert sorted(report["rules"]) == carried
    assert report["not_carried"] == {i: v.reason for i, v in sorted(verdicts.items()) if i not in carried}
    code, out, err = cli_run(*replay)
    assert code == 0, err
    assert "(cloudflare semantics)" in out
    assert "logs-stopped: not carried by Option A (" in out
    # With worker-exception carried, it is evaluated at its alert's timings and fires on the storm.
    monkeypatch.setattr(
        "extalerts.engine.observability.not_carried_by_option_a",
        lambda rule, spec: None if rule.id == "worker-exception" else "not this one",
    )
    code, out, err = cli_run(*replay, "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert list(report["rules"]) == ["worker-exception"]
    assert report["rules"]["worker-exception"]["fired"] >= 1
    assert report["rules"]["worker-exception"]["timings"]["lookback_minutes"] == 1
    code, out, err = cli_run(*replay)
    assert "worker-exception: check every 1m over the last 1m, fire after failing for 0m" in out


def test_rule_tests_under_cloudflare_semantics_skip_the_rules_option_a_does_not_carry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "extalerts.engine.observability.not_carried_by_option_a",
        lambda rule, spec: None if rule.id == "worker-exception" else "no alert reads it",
    )
    tests_file = write(
        tmp_path / "t.yaml",
        """\
version: 1
tests:
  - name: a single exception pages at once, with no evaluation delay
    rule: worker-exception
    input:
      - burst: {at: 10m, count: 1}
        event: {ScriptName: api, Outcome: exception}
    expect:
      - fires: 11m
      - resolves: 12m
  - name: silence
    rule: logs-stopped
    input:
      - series: {from: 0m, to: 20m, per_minute: 1}
    expect:
      - quiet: true
""",
    )
    args = ("test", str(tests_file), "--spec", str(MONITORS), "--semantics", "cloudflare")
    code, out, err = cli_run(*args, "--junit-xml", str(tmp_path / "r.xml"))
    assert code == 0, out + err
    assert "n/a   logs-stopped" in out
    assert "not carried by Option A: no alert reads it" in out
    assert out.rstrip().endswith("1 passed, 0 failed, 1 not carried by Option A")
    code, out, _ = cli_run(*args, "-o", "json")
    report = json.loads(out)
    assert (report["passed"], report["failed"], report["not_carried"]) == (1, 0, 1)
    # Under Datadog's semantics the same rule waits for its evaluation delay, so the test fails there.
    code, out, _ = cli_run("test", str(tests_file), "--spec", str(MONITORS), "--rule", "worker-exception")
    assert code == 1


def test_the_html_report_names_the_rules_not_carried(tmp_path: Path) -> None:
    from extalerts.synth import SynthConfig, generate

    path = tmp_path / "x.ndjson"
    generate(SynthConfig(minutes=10, requests_per_minute=20), path)
    code, _, err = cli_run(
        "replay", str(path), "--spec", str(MONITORS), "--semantics", "cloudflare", "--report", "r.html"
    )
    assert code == 0, err
    assert '<td>logs-stopped</td><td colspan="2">not carried by Option A: ' in Path("r.html").read_text()
