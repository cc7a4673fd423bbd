"""The Splunk emulator's scheduler: cron, dispatch time range, trigger conditions, digest mode and
throttling (savedsearches.conf.spec 9.2), over events indexed from HEC with their props timestamps;
and drills that fail, with a reason, when the stored search is edited through REST."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extalerts.emulators.spl import TimestampRule
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.emulators.splunk_scheduler import Cron, SplunkScheduler, Trigger
from extalerts.sandbox import Sandbox
from tests.conftest import cli_run

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday
PROPS = {"w": TimestampRule('"EventTimestampMs":\\s*', "%s%3N", 20)}


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def splunk() -> Iterator[SplunkEmulator]:
    with SplunkEmulator(token="t", clock=Clock(T0 - 30), props=PROPS) as emulator:
        yield emulator


def send(emulator: SplunkEmulator, *events: tuple[float, dict[str, Any]]) -> None:
    lines = [json.dumps({**event, "EventTimestampMs": int(at * 1000)}) for at, event in events]
    emulator.index_lines("main", "w", lines, received=T0)


def alert(emulator: SplunkEmulator, name: str, search: str, **settings: str) -> None:
    params = {
        "search": search,
        "is_scheduled": "1",
        "cron_schedule": "* * * * *",
        "dispatch.earliest_time": "-2m@m",
        "dispatch.latest_time": "-1m@m",
        "alert_type": "number of events",
        "alert_comparator": "greater than",
        "alert_threshold": "0",
        "alert.track": "1",
        **settings,
    }
    emulator.add_saved_search("search", name, params)


def scheduler(emulator: SplunkEmulator) -> tuple[SplunkScheduler, list[Trigger]]:
    triggers: list[Trigger] = []
    return SplunkScheduler(emulator, on_trigger=triggers.append), triggers


def test_cron_fields() -> None:
    assert [t - T0 for t in Cron.parse("*/5 * * * *").times(T0 - 1, T0 + 600)] == [0, 300, 600]
    assert [t - T0 for t in Cron.parse("1,2 0 * * *").times(T0, T0 + 3600)] == [60, 120]
    # Both day fields restricted: either matches (1 Jan 2026 is a Thursday, day-of-week 4).
    assert Cron.parse("0 0 15 * 4").matches(T0)
    assert not Cron.parse("0 0 15 * 5").matches(T0)
    with pytest.raises(Exception, match="five fields"):
        Cron.parse("* * * *")


def test_runs_cover_their_dispatch_window_and_events_are_timed_by_props(splunk: SplunkEmulator) -> None:
    alert(splunk, "errors", 'index=main sourcetype=w Outcome="exception" | stats count AS value | where value > 1')
    # Two in the minute before last at the 00:02 run (window [00:00, 00:01)), one a minute later.
    send(splunk, (T0 + 5, {"Outcome": "exception"}), (T0 + 50, {"Outcome": "exception"}))
    send(splunk, (T0 + 70, {"Outcome": "exception"}), (T0 + 80, {"Outcome": "ok"}))
    runner, triggers = scheduler(splunk)
    runs = runner.run_due(T0 + 180)
    assert [(r.scheduled_time - T0, r.earliest - T0 if r.earliest else None) for r in runs] == [
        (0, -120),
        (60, -60),
        (120, 0),
        (180, 60),
    ]
    assert [r.results for r in runs] == [[], [], [{"value": "2"}], []]
    assert [t.trigger_time - T0 for t in triggers] == [120]
    assert triggers[0].rows == [{"value": "2"}]
    fired = splunk.conf_stanza("search", "errors")
    assert fired["alert.track"] == "1"
    assert len(splunk.history("search", "errors")) == 4
    # Runs are not repeated.
    assert runner.run_due(T0 + 180) == []


def test_per_result_alerts_throttle_per_field_values(splunk: SplunkEmulator) -> None:
    alert(
        splunk,
        "by-script",
        "index=main sourcetype=w | stats count AS value BY ScriptName",
        **{
            "alert.digest_mode": "0",
            "alert.suppress": "1",
            "alert.suppress.period": "3m",
            "alert.suppress.fields": "ScriptName",
            "dispatch.earliest_time": "-1m@m",
            "dispatch.latest_time": "@m",
        },
    )
    for minute in range(6):
        send(splunk, (T0 + minute * 60 + 1, {"ScriptName": "a"}))
    send(splunk, (T0 + 61, {"ScriptName": "b"}), (T0 + 62, {"NoScript": "x"}))
    runner, triggers = scheduler(splunk)
    runner.run_due(T0 + 360)
    # One trigger per row (digest off); "a" again only once 3 minutes have passed; "b" on its own;
    # the event without ScriptName is in no group (stats BY drops nulls).
    assert [(t.trigger_time - T0, t.rows[0]["ScriptName"]) for t in triggers] == [
        (60, "a"),
        (120, "b"),
        (240, "a"),
    ]


def test_digest_mode_triggers_once_per_run_and_throttles_the_search(splunk: SplunkEmulator) -> None:
    alert(
        splunk,
        "all",
        "index=main sourcetype=w | stats count AS value BY ScriptName",
        **{"alert.suppress": "1", "alert.suppress.period": "2m"},
    )
    for minute in range(5):
        send(splunk, (T0 + minute * 60 + 1, {"ScriptName": "a"}), (T0 + minute * 60 + 2, {"ScriptName": "b"}))
    runner, triggers = scheduler(splunk)
    runs = runner.run_due(T0 + 360)
    assert [t.trigger_time - T0 for t in triggers] == [120, 240, 360]
    assert all(len(t.rows) == 2 for t in triggers)
    assert [r.suppressed for r in runs if r.results and not r.triggers] == [2, 2]


def test_rises_by_compares_with_the_previous_run(splunk: SplunkEmulator) -> None:
    alert(
        splunk,
        "rises",
        "index=main sourcetype=w",
        alert_comparator="rises by",
        alert_threshold="1",
        **{"dispatch.earliest_time": "-1m@m", "dispatch.latest_time": "@m"},
    )
    send(splunk, (T0 + 1, {}), (T0 + 61, {}), (T0 + 62, {}), (T0 + 63, {}))
    runner, triggers = scheduler(splunk)
    runner.run_due(T0 + 120)
    # 1 event, then 3: up by 2 > 1.
    assert [t.trigger_time - T0 for t in triggers] == [120]


def test_a_search_edited_through_rest_runs_as_edited_and_failures_are_recorded(splunk: SplunkEmulator) -> None:
    import urllib3

    alert(splunk, "edited", "index=main sourcetype=w | stats count AS value | where value > 0")
    send(splunk, (T0 + 1, {"Outcome": "ok"}))
    runner, triggers = scheduler(splunk)
    runner.run_due(T0 + 120)
    assert len(triggers) == 1
    http = urllib3.PoolManager()
    headers = {"Authorization": "Bearer t"}
    edited = "index=main sourcetype=w | eventstats count AS value"
    answer = http.request(
        "POST",
        f"{splunk.url}/servicesNS/nobody/search/saved/searches/edited",
        fields={"search": edited},
        headers=headers,
        encode_multipart=False,
    )
    assert answer.status == 200
    runs = runner.run_due(T0 + 180)
    assert [r.error for r in runs] == ["emulator cannot run command eventstats"]
    history = http.request(
        "GET",
        f"{splunk.url}/servicesNS/nobody/search/saved/searches/edited/history?output_mode=json&count=1",
        headers=headers,
    )
    newest = json.loads(history.data)["entry"][0]["content"]
    assert (newest["isFailed"], newest["messages"]) == ("1", {"fatal": ["emulator cannot run command eventstats"]})
    assert len(triggers) == 1


def test_a_scheduled_run_in_the_history_is_a_search_job_entry_as_a_dispatched_job_is(splunk: SplunkEmulator) -> None:
    import urllib3

    alert(splunk, "busy", "index=main sourcetype=w | stats count AS value | where value > 0")
    send(splunk, (T0 + 1, {"Outcome": "ok"}))
    runner, _ = scheduler(splunk)
    *_, run = runner.run_due(T0 + 120)  # the newest run, first in the history
    http = urllib3.PoolManager()
    headers = {"Authorization": "Bearer t"}
    base = f"{splunk.url}/servicesNS/nobody/search"
    history = http.request("GET", f"{base}/saved/searches/busy/history?output_mode=json", headers=headers)
    entry = json.loads(history.data)["entry"][0]
    assert entry["id"] == f"{splunk.url}/services/search/jobs/{run.sid}"
    assert (entry["name"], entry["author"], entry["updated"]) == (run.sid, "nobody", "2026-01-01T00:02:00+00:00")
    assert set(entry["links"]) == {"alternate", "list", "edit", "remove"}
    state = {"dispatchState": "DONE", "isDone": "1", "isFailed": "0", "resultCount": "1", "messages": {}}
    assert entry["content"] == state | {"triggered_alert_count": 1, "scheduled_time": str(int(T0 + 120))} | {
        "eai:acl": None
    }

    assert isinstance(splunk.clock, Clock)
    splunk.clock.at = T0 + 120  # a search reads up to now: the event is in the past
    created = http.request(
        "POST",
        f"{base}/search/jobs?output_mode=json",
        fields={
            "search": "search index=main",
            "exec_mode": "blocking",
            "earliest_time": str(int(T0)),
            "latest_time": "now",
        },
        headers=headers,
        encode_multipart=False,
    )
    sid = json.loads(created.data)["sid"]
    job = http.request("GET", f"{base}/search/jobs/{sid}?output_mode=json", headers=headers)
    (job_entry,) = json.loads(job.data)["entry"]
    assert job_entry["id"] == f"{splunk.url}/services/search/jobs/{sid}"
    assert set(job_entry["links"]) == {"alternate", "list", "remove", "results", "control"}
    assert {key: job_entry["content"][key] for key in state} == state


# --------------------------------------------------------------------------------------------- drills


def drill_with_edit(
    drill_spec: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, *, code: int = 1
) -> dict[str, Any]:
    """Drill the rule on Splunk, editing the stored drill copy's SPL through REST right after it is created."""
    from extalerts.drill.backends import SplunkDrillBackend

    create = SplunkDrillBackend.create

    def create_then_edit(self: SplunkDrillBackend, view: Any, created: list[Any]) -> None:
        create(self, view, created)
        search = self.splunk.api.service().saved_searches[created[-1].key]
        stored = search.content["search"]
        assert old in stored, stored
        search.update(search=stored.replace(old, new))

    monkeypatch.setattr(SplunkDrillBackend, "create", create_then_edit)
    exit_code, out, err = cli_run("drill", str(drill_spec), "-p", "splunk", "--rule", "exceptions", "--output", "json")
    assert exit_code == code, err
    return dict(json.loads(out)["drills"][0])


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [
        # A wrong field: the BY field no event has, so every event is dropped from the stats.
        ("BY ScriptName", "BY Scriptname", "did not fire within"),
        # A wrong threshold: no minute of the drill's incident reaches it.
        ("where value > 0", "where value > 100000", "did not fire within"),
        # A command the emulator cannot run: the drill says so.
        (
            "| stats count AS value",
            "| eventstats count AS value",
            "error: Splunk cannot run the saved search 'extalerts-drill - exceptions-drill-",
        ),
    ],
    ids=["wrong-field", "wrong-threshold", "unsupported-command"],
)
def test_a_drill_runs_the_stored_search_as_edited(
    old: str, new: str, verdict: str, drill_spec: Path, sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    drill = drill_with_edit(drill_spec, monkeypatch, old, new)
    assert not drill["ok"]
    assert drill["verdict"].startswith(verdict), drill["verdict"]
    if "eventstats" in new:
        assert drill["verdict"].endswith("emulator cannot run command eventstats")
    assert drill["cleaned_up"]
    # What ran is what was stored: the scheduler recorded the edited search on its runs.
    assert any(new in run.search for run in sandbox_env.splunk.runs.values())


def test_an_edit_that_keeps_the_meaning_still_fires(
    drill_spec: Path, sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No vouching by provenance: a search that is not what extalerts renders runs all the same."""
    drill = drill_with_edit(drill_spec, monkeypatch, "where value > 0", "where value >= 1", code=0)
    assert drill["ok"], drill["verdict"]
    assert drill["notified"] is True
