"""Splunk alerts an admin accepts: once per window, never skipped, cheap base searches, and the cost
of each hour of scheduling shown by ``render``; plus the structured line as the SPL reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from extalerts.drill.runner import cron_period_seconds
from extalerts.render import Templates
from extalerts.render.splunk import STRUCTURED_LINE_STEPS, SplunkRenderer
from extalerts.render.splunk_schedule import (
    cron_for,
    runs_per_hour,
    scan_cost,
    schedule_period_minutes,
    scheduling_settings,
)
from extalerts.spec import load_spec
from tests.conftest import MONITORS, cli_run
from tests.test_filter_properties import FAST, event_st, pcre_to_python, spl_literals

#: Event-minutes the bundled monitors/ read per hour of scheduling (issue #15: 32,760 before, when 20 of
#: 23 alerts ran every minute and request-spike read 65 minutes at each run).
MONITORS_SCAN_MINUTES_PER_HOUR = 11_400


@pytest.mark.parametrize(
    ("window_seconds", "period", "cron"),
    [
        (30, 1, "* * * * *"),
        (60, 1, "* * * * *"),
        (90, 1, "* * * * *"),
        (300, 5, "*/5 * * * *"),
        (420, 6, "*/6 * * * *"),  # 7 does not divide the hour: the longest even period under it
        (900, 15, "*/15 * * * *"),
        (2700, 30, "*/30 * * * *"),
        (3600, 60, "0 * * * *"),
        (5400, 60, "0 * * * *"),
        (7200, 120, "0 */2 * * *"),
        (86400, 1440, "0 0 * * *"),
        (7 * 86400, 1440, "0 0 * * *"),
    ],
)
def test_an_alert_runs_once_per_window(window_seconds: int, period: int, cron: str) -> None:
    assert schedule_period_minutes(window_seconds) == period
    assert cron_for(period) == cron
    # Never longer than the window (no event left unread) and a schedule the drills read the same way.
    assert period * 60 <= max(window_seconds, 60)
    assert cron_period_seconds(cron) == period * 60
    assert runs_per_hour(cron) == pytest.approx(60 / period)


@pytest.mark.parametrize("period", [1, 2, 5, 10, 30, 60, 1440])
def test_late_runs_wait_instead_of_being_skipped(period: int) -> None:
    settings = scheduling_settings(period)
    assert settings["realtime_schedule"] == "0"
    if period == 1:
        # savedsearches.conf.spec: "Schedule windows are not recommended for searches that run every minute."
        assert "schedule_window" not in settings
        assert settings["allow_skew"] == "50%"
    else:
        # "The 'schedule_window' must be shorter than the period of the search."
        assert 0 < int(settings["schedule_window"]) < period
        assert "allow_skew" not in settings


def test_every_rendered_alert_is_continuous_and_reads_each_minute_once() -> None:
    spec = load_spec([MONITORS])
    renderer = SplunkRenderer(spec, Templates())
    for rule in spec.rules:
        for alert in renderer.alerts(rule):
            settings = alert.settings
            period = cron_period_seconds(settings["cron_schedule"]) // 60
            assert settings["realtime_schedule"] == "0", alert.name
            assert period == max(1, rule.rule.window // 60), alert.name  # every bundled window divides an hour
            if period > 1:
                assert int(settings["schedule_window"]) < period, alert.name


def test_gratuitous_cron_scheduling_is_left_to_one_minute_windows() -> None:
    """AppInspect warns above 12 runs an hour: only a 1-minute window still runs more often."""
    spec = load_spec([MONITORS])
    renderer = SplunkRenderer(spec, Templates())
    frequent = {
        rule.id
        for rule in spec.rules
        for alert in renderer.alerts(rule)
        if (runs_per_hour(alert.settings["cron_schedule"]) or 0) > 12
    }
    assert frequent == {rule.id for rule in spec.rules if rule.rule.window < 300}


@pytest.mark.parametrize(
    ("settings", "runs", "minutes"),
    [
        ({"cron_schedule": "*/5 * * * *", "dispatch.earliest_time": "-10m@m", "dispatch.latest_time": "-5m@m"}, 12, 5),
        ({"cron_schedule": "0,20,40 * * * *", "dispatch.earliest_time": "-1h", "dispatch.latest_time": "now"}, 3, 60),
        (
            {"cron_schedule": "0 9-16 * * *", "dispatch.earliest_time": "-2d@d", "dispatch.latest_time": "@d"},
            1 / 3,
            2880,
        ),
        ({"cron_schedule": "*/10 * * * *", "dispatch.earliest_time": "-90s", "dispatch.latest_time": ""}, 6, 1.5),
        ({"cron_schedule": "@hourly", "dispatch.earliest_time": "-5m@m", "dispatch.latest_time": "@m"}, None, 5),
        (
            {"cron_schedule": "* * * * *", "dispatch.earliest_time": "2026-01-01", "dispatch.latest_time": "@m"},
            60,
            None,
        ),
    ],
)
def test_scan_cost_reads_the_schedule_and_time_range(
    settings: dict[str, str], runs: float | None, minutes: float | None
) -> None:
    cost = scan_cost("a", "r", settings)
    assert cost.runs_per_hour == (pytest.approx(runs) if runs is not None else None)
    assert cost.minutes_per_run == (pytest.approx(minutes) if minutes is not None else None)
    expected = None if runs is None or minutes is None else pytest.approx(runs * minutes)
    assert cost.minutes_per_hour == expected


def test_render_prints_what_each_alert_reads_and_the_total(tmp_path: Path) -> None:
    code, out, err = cli_run("render", str(MONITORS), "--out", str(tmp_path), "--provider", "splunk")
    assert code == 0, err
    rows = {
        line.split("  ")[0]: line.split() for line in out.splitlines() if line.startswith(("extalerts - ", "total"))
    }
    assert rows["extalerts - request-spike"][-3:] == ["12", "65", "780"]
    assert rows["extalerts - worker-exception"][-3:] == ["60", "1", "60"]
    assert rows["total"] == ["total", f"{MONITORS_SCAN_MINUTES_PER_HOUR:,}"]
    code, out, err = cli_run("render", str(MONITORS), "--out", str(tmp_path), "-p", "datadog")
    assert code == 0, err
    assert "event-minutes read/hour" not in out


def test_render_json_carries_the_scan_cost(tmp_path: Path) -> None:
    code, out, err = cli_run("render", str(MONITORS), "--out", str(tmp_path), "-p", "splunk", "-o", "json")
    assert code == 0, err
    scan = json.loads(out)["splunk_scan"]
    assert scan["minutes_per_hour"] == MONITORS_SCAN_MINUTES_PER_HOUR
    assert sum(a["minutes_per_hour"] for a in scan["alerts"]) == MONITORS_SCAN_MINUTES_PER_HOUR
    logs_stopped = next(a for a in scan["alerts"] if a["alert"] == "extalerts - logs-stopped")
    assert logs_stopped == {
        "alert": "extalerts - logs-stopped",
        "rule": "logs-stopped",
        "runs_per_hour": 6.0,
        "minutes_per_run": 1440.0,
        "minutes_per_hour": 8640.0,
    }


def test_base_searches_carry_the_rules_literal_words() -> None:
    spec = load_spec([MONITORS])
    renderer = SplunkRenderer(spec, Templates())
    first_lines = {
        alert.name: alert.settings["search"].split("\n")[0] for rule in spec.rules for alert in renderer.alerts(rule)
    }
    base = 'index=cloudflare sourcetype="cloudflare:workers"'
    assert first_lines["extalerts - do-cleanup-failures"] == base + ' "alarm" "ConversationStateDO"'
    assert first_lines["extalerts - invalid-url-flood"] == base + ' "CODE" "INVALID"'
    assert first_lines["extalerts - worker-exception"] == base  # Outcome != "ok" or a 5xx: no word is certain
    with_terms = [name for name, line in first_lines.items() if line != base]
    assert len(first_lines) == 23
    assert len(with_terms) == 21


# --------------------------------------------------------------------------------------------- structured line


def structured_line_by_definition(event: dict[str, Any]) -> str | None:
    """The shared definition: the first element of ``Logs`` whose ``Level`` is ``log``; its ``Message``
    strings joined with ``,``; kept when it opens a JSON object (else no line)."""
    for entry in event.get("Logs") or []:
        if entry.get("Level") == "log":
            messages = entry.get("Message") or []
            line = ",".join(m if isinstance(m, str) else json.dumps(m) for m in messages)
            return line if line.lstrip().startswith("{") else None
    return None


def structured_line_as_the_spl_reads_it(event: dict[str, Any]) -> str | None:
    """The rendered steps, applied as Splunk documents them: ``spath path=Logs{}`` gives each element as
    its JSON text, mvfind the first index whose value matches (else null), ``Message{}`` each string,
    mvjoin joins them, match keeps a line that opens an object."""
    logs_step, find_step, message_step, join_step, keep_step = STRUCTURED_LINE_STEPS
    assert logs_step == "spath output=_extalerts_logs path=Logs{}"
    assert message_step == "spath input=_extalerts_log output=_extalerts_message path=Message{}"
    assert join_step == 'eval _extalerts_line=mvjoin(_extalerts_message, ",")'
    (level_pattern,) = spl_literals(find_step)
    (opens_pattern,) = spl_literals(keep_step)
    elements = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in event.get("Logs") or []]
    level = re.compile(pcre_to_python(level_pattern))
    index = next((i for i, text in enumerate(elements) if level.search(text)), None)
    if index is None:
        return None
    messages = json.loads(elements[index]).get("Message") or []
    line = ",".join(m if isinstance(m, str) else json.dumps(m) for m in messages)
    return line if re.search(pcre_to_python(opens_pattern), line) else None


@FAST
@given(event_st())
def test_the_spl_reads_the_structured_line_of_the_shared_definition(event: dict[str, Any]) -> None:
    assert structured_line_as_the_spl_reads_it(event) == structured_line_by_definition(event)


@pytest.mark.parametrize(
    ("logs", "line"),
    [
        # The first console.log line, not the first JSON among all messages.
        (
            [{"Level": "info", "Message": ['{"event":"x"}']}, {"Level": "log", "Message": ['{"event":"y"}']}],
            '{"event":"y"}',
        ),
        (
            [{"Level": "log", "Message": ['{"event":"a"}']}, {"Level": "log", "Message": ['{"event":"b"}']}],
            '{"event":"a"}',
        ),
        # A line that is not JSON hides the later ones: only the first log line is read.
        ([{"Level": "log", "Message": ["starting"]}, {"Level": "log", "Message": ['{"event":"b"}']}], None),
        # Several arguments are joined with ",".
        ([{"Level": "log", "Message": ['{"event":"a",', '"ok":true}']}], '{"event":"a",,"ok":true}'),
        # "Level":"log" inside a message string is escaped in the element's JSON and does not count.
        ([{"Level": "warn", "Message": ['"Level":"log"']}, {"Level": "log", "Message": ['{"e":1}']}], '{"e":1}'),
    ],
)
def test_structured_line_examples(logs: list[dict[str, Any]], line: str | None) -> None:
    event = {"Logs": logs}
    assert structured_line_by_definition(event) == line
    assert structured_line_as_the_spl_reads_it(event) == line


def test_derived_fields_are_read_from_the_structured_line() -> None:
    spec = load_spec([MONITORS])
    renderer = SplunkRenderer(spec, Templates())
    search = renderer.alerts(spec.rule("do-operation-errors"))[0].settings["search"]
    steps = [line.removeprefix("| ") for line in search.split("\n")[1:]]
    start = steps.index(STRUCTURED_LINE_STEPS[0])
    assert tuple(steps[start : start + len(STRUCTURED_LINE_STEPS)]) == STRUCTURED_LINE_STEPS
    assert "spath input=_extalerts_line output=log_event path=event" in steps
    assert not any("mvfilter" in step for step in steps)
