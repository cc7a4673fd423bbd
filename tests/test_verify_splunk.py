"""`verify`'s Splunk side against the emulator in process: the bundled monitors pushed, synthetic events
indexed through the emulator, every rule's series from search jobs equal to the engine's
``--semantics splunk`` series; then the setup broken one way at a time, and ``explain`` naming the
rules and the cause."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from extalerts.emulators.spl import TimestampRule
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.engine import Engine
from extalerts.providers.splunk import SplunkApi, SplunkSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.synth import SynthConfig, events, parse_scenario
from extalerts.verify.model import ProviderSide, Window
from extalerts.verify.splunk import SplunkSide, run_minutes
from tests.conftest import MONITORS, cli_run

TOKEN = "splunk-token-verify-71c2"
APP = "extalerts_workers"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTES = 60
#: Verified: the last 30 minutes, which hold a run of every rule (the longest schedule is every 30 minutes).
WINDOW = Window(T0_MS + 30 * 60_000, T0_MS + MINUTES * 60_000)
#: Five runs of a rule evaluated every minute, inside the exception storm: enough to see a change.
STORM = Window(T0_MS + 42 * 60_000, T0_MS + 47 * 60_000)
PROPS = {"cloudflare:workers": TimestampRule('"EventTimestampMs":\\s*', "%s%3N", 20)}
FAST = RetryPolicy(time_scale=0.001, max_attempts=4)


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec([MONITORS])


@pytest.fixture(scope="module")
def lines() -> list[str]:
    scenarios = tuple(
        parse_scenario(s)
        for s in ("exception-storm@40m+6m", "do-latency-spike@42m+8m", "cleanup-failure@35m+15m", "do-errors@44m+6m")
    )
    return list(events(SynthConfig(start_ms=T0_MS, minutes=MINUTES, requests_per_minute=60, scenarios=scenarios)))


@pytest.fixture(scope="module")
def expected(spec: Spec, lines: list[str]) -> dict[str, dict[Any, dict[int, float | None]]]:
    engine = Engine(spec, semantics="splunk", threads=1)
    engine.load_events(json.loads(line) for line in lines)
    result = engine.evaluate(start_ms=WINDOW.start_ms, end_ms=WINDOW.end_ms - 1)
    return {
        rule_id: {group: dict(series) for group, series in found.series.items()}
        for rule_id, found in result.rules.items()
    }


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[SplunkEmulator]:
    clock = Clock(T0_MS / 1000 - 60)
    with SplunkEmulator(token=TOKEN, apps=[APP], hec_default_index="cloudflare", props=PROPS, clock=clock) as running:
        monkeypatch.setenv("SPLUNK_URL", running.url)
        monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
        monkeypatch.setenv("PD_KEY_CONVERSATION_API", "pd-key-verify")
        monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: FAST)
        code, _, err = cli_run("push", str(MONITORS), "--provider", "splunk", "--yes")
        assert code == 0, err
        yield running


def deliver(emulator: SplunkEmulator, lines: list[str], *, index: str = "cloudflare", late_s: float = 20.0) -> None:
    """Index each minute's events as HEC would receive them ``late_s`` after the minute ends."""
    by_minute: dict[int, list[str]] = {}
    for line in lines:
        minute = json.loads(line)["EventTimestampMs"] // 60_000
        by_minute.setdefault(minute, []).append(line)
    for minute, batch in sorted(by_minute.items()):
        emulator.index_lines(index, "cloudflare:workers", batch, received=(minute + 1) * 60 + late_s)
    emulator.clock.at = WINDOW.end_ms / 1000 + 3600  # type: ignore[attr-defined]


def side_for(emulator: SplunkEmulator, spec: Spec) -> SplunkSide:
    settings = SplunkSettings("http", "127.0.0.1", emulator.port, token=TOKEN, timeout=5.0)
    side: ProviderSide = SplunkSide(SplunkApi(settings, FAST), spec)  # what the comparison takes
    assert isinstance(side, SplunkSide)
    return side


def rule_of(spec: Spec, rule_id: str) -> ResolvedRule:
    return next(rule for rule in spec.rules if rule.id == rule_id)


def test_every_rule_agrees_with_the_engine_under_splunk_semantics(
    emulator: SplunkEmulator, spec: Spec, lines: list[str], expected: dict[str, Any]
) -> None:
    deliver(emulator, lines)
    side = side_for(emulator, spec)
    pushed = len(emulator.requests)
    progress: list[tuple[str, int, int]] = []
    matched: dict[str, int] = {}
    for rule in spec.rules:
        got = side.series(rule, WINDOW, lambda what, done, total: progress.append((what, done, total)))
        assert flat(got.values) == pytest.approx(flat(expected[rule.id]), abs=1e-4), rule.id
        matched[rule.id] = got.matched_events
        assert got.query.startswith("index=cloudflare"), rule.id
    assert all(expected[rule.id] for rule in spec.rules)
    assert matched["invalid-url-flood"] > 0
    assert matched["worker-exception"] > 0
    # The data is not trivially quiet: some rules breach, with values from the scenarios.
    assert any(v for series in expected["do-latency-p99"].values() for v in series.values() if v and v > 500)
    assert progress[-1][1] == progress[-1][2]
    # Read-only: after the push, no write; each run's job asked for what was indexed when the run ran.
    calls = emulator.requests[pushed:]
    assert not [call for call in calls if call[0] in ("POST", "DELETE") and "saved/searches" in call[1]]
    jobs = [call[2] for call in calls if call[0] == "POST" and call[1].rstrip("/").endswith("search/v2/jobs")]
    runs = [job for job in jobs if "index_latest" in job]
    assert runs
    assert all(job["index_latest"] == job["now"] for job in runs)
    assert len(runs) == sum(
        len(run_minutes(rule, WINDOW)) * (2 if rule.id == "logs-stopped" else 1) for rule in spec.rules
    )


def flat(values: dict[Any, dict[int, float | None]]) -> dict[tuple[Any, int], float]:
    """Values by (group, minute), without "no data": a None and no row are the same to a monitor (the
    engine keeps a group below a ratio's min_events as None; its stored search drops the row). The SPL
    rounds ratios to 4 decimals (``round(…, 4)``), the engine does not."""
    return {(group, at): value for group, series in values.items() for at, value in series.items() if value is not None}


def test_events_in_another_index_are_found_there(emulator: SplunkEmulator, spec: Spec, lines: list[str]) -> None:
    deliver(emulator, lines, index="main")
    side = side_for(emulator, spec)
    rules = [rule for rule in spec.rules if rule.id in ("worker-exception", "http-5xx-rate")]
    causes = side.explain(rules, WINDOW)
    for rule in rules:
        codes = [cause.code for cause in causes[rule.id]]
        assert codes == ["other-index"], (rule.id, causes[rule.id])
        assert "index=main sourcetype=cloudflare:workers" in causes[rule.id][0].message


def test_a_misspelt_field_in_the_stored_search_is_named(emulator: SplunkEmulator, spec: Spec, lines: list[str]) -> None:
    deliver(emulator, lines)
    name = "extalerts - worker-exception"
    stored = emulator.conf_stanza(APP, name)["search"]
    emulator.add_saved_search(APP, name, {"search": stored.replace("BY ScriptName", "BY ScriptNam")})
    side = side_for(emulator, spec)
    rule = next(rule for rule in spec.rules if rule.id == "worker-exception")
    # No row has the misspelt field, so the stored search sees nothing at all.
    assert side.series(rule, STORM, lambda *_: None).values == {}
    causes = side.explain([rule], WINDOW)[rule.id]
    assert [cause.code for cause in causes] == ["query-edited"], causes
    assert "'| stats count AS value BY ScriptNam'" in causes[0].message
    assert "'| stats count AS value BY ScriptName'" in causes[0].message


def test_events_delivered_late_show_in_the_series_and_as_the_cause(
    emulator: SplunkEmulator, spec: Spec, lines: list[str], expected: dict[str, Any]
) -> None:
    deliver(emulator, lines, late_s=600)
    side = side_for(emulator, spec)
    rule = next(rule for rule in spec.rules if rule.id == "worker-exception")
    got = side.series(rule, STORM, lambda *_: None)
    # The runs did not see the events of their windows: those arrived after them.
    assert got.values == {}
    assert any(expected[rule.id][group].get(at) for group in expected[rule.id] for at in got_minutes(rule))
    causes = side.explain([rule], WINDOW)[rule.id]
    late = [cause for cause in causes if cause.code == "late-delivery"]
    assert [cause.code for cause in causes] == ["late-delivery"], causes
    assert "p99 659s" in late[0].message
    assert "evaluation_delay to 11m" in late[0].fix


def got_minutes(rule: Any) -> list[int]:
    return run_minutes(rule, STORM)


def test_fewer_events_than_the_archive(emulator: SplunkEmulator, spec: Spec, lines: list[str]) -> None:
    deliver(emulator, lines[::2])
    side = side_for(emulator, spec)
    rule = next(rule for rule in spec.rules if rule.id == "invalid-url-flood")
    held = side.series(rule, WINDOW, lambda *_: None).matched_events
    side.expected_events[rule.id] = 2 * held + 1
    causes = side.explain([rule], WINDOW)[rule.id]
    assert [cause.code for cause in causes] == ["fewer-events"]
    assert f"Splunk holds {held} events" in causes[0].message


def test_nothing_anywhere_is_no_match(emulator: SplunkEmulator, spec: Spec) -> None:
    emulator.clock.at = WINDOW.end_ms / 1000 + 3600  # type: ignore[attr-defined]
    causes = side_for(emulator, spec).explain([rule_of(spec, "invalid-url-flood")], WINDOW)["invalid-url-flood"]
    assert [cause.code for cause in causes] == ["no-match"]
    assert "nor in any other index" in causes[0].message


def test_a_structured_line_that_does_not_parse_leaves_the_derived_fields_absent(
    emulator: SplunkEmulator, spec: Spec, lines: list[str]
) -> None:
    # The Worker logs its structured line at level "info": the searches read the first "log" line only.
    deliver(emulator, [line.replace('"Level":"log"', '"Level":"info"') for line in lines])
    causes = side_for(emulator, spec).explain([rule_of(spec, "do-latency-p99")], WINDOW)["do-latency-p99"]
    assert [cause.code for cause in causes] == ["no-match", "derived-absent"], causes
    assert "spath found no log_event, do_operation, op_duration_ms in any of" in causes[1].message


def test_search_jobs_through_the_sdk(emulator: SplunkEmulator, spec: Spec, lines: list[str]) -> None:
    """Normal and blocking jobs: created, read, their results paged, cancelled and deleted."""
    deliver(emulator, lines)
    side = side_for(emulator, spec)
    service = side.api.service()
    times = {"earliest_time": str(T0_MS // 1000), "latest_time": str(T0_MS // 1000 + 600)}
    job = service.jobs.create("search index=cloudflare | stats count BY ScriptName", exec_mode="blocking", **times)
    assert job.is_done()
    assert job["dispatchState"] == "DONE"
    assert int(job["resultCount"]) == 2
    page = json.loads(job.results(output_mode="json", count=1, offset=1).read())
    assert len(page["results"]) == 1
    assert page["init_offset"] == 1
    job.cancel()
    assert job.sid not in emulator.jobs
    normal = service.jobs.create("search index=cloudflare", **times)
    assert normal.is_done()
    assert int(normal["resultCount"]) == sum(
        1 for line in lines if json.loads(line)["EventTimestampMs"] < T0_MS + 600_000
    )
    service.delete(f"search/jobs/{normal.sid}")
    assert normal.sid not in emulator.jobs


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("index=cloudflare | stats count", "Unknown search command"),
        ("search index=cloudflare | transaction ScriptName", "emulator cannot run command transaction"),
    ],
)
def test_searches_the_emulator_cannot_run_are_refused(
    emulator: SplunkEmulator, spec: Spec, search: str, message: str
) -> None:
    from splunklib.binding import HTTPError

    service = side_for(emulator, spec).api.service()
    with pytest.raises(HTTPError) as refused:
        service.jobs.oneshot(search, output_mode="json")
    assert refused.value.status == 400
    assert message in str(refused.value)
