"""When a Splunk alert runs, and what each hour of that schedule costs in events read.

Cadence. Splunk's alerting manual ("Alert scheduling tips", help.splunk.com/splunk-enterprise/
alert-and-respond/alerting-manual/9.0/create-alerts/alert-scheduling-tips): "Coordinating an alert
schedule with the search time range prevents event data from being evaluated twice by the search. If
search time range exceeds the search schedule, event data sets can overlap. When a search time range is
shorter than the time range for the scheduled alert, an event might never be evaluated." So an alert
runs once per window: the longest period a cron expression repeats evenly that is no longer than the
window (never longer, which would leave events unread). A 5m window runs every 5 minutes and reads each
event once, where an every-minute run read it five times.

This module is also what the engine's ``--semantics splunk`` reads, so the local firing timeline is the
one the rendered alerts follow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Minute periods that divide an hour, so ``*/M`` repeats evenly across the hour boundary.
_MINUTE_PERIODS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
#: Hour periods that divide a day, for ``0 */H``.
_HOUR_PERIODS = (1, 2, 3, 4, 6, 8, 12, 24)
_PERIODS = (*_MINUTE_PERIODS, *(hours * 60 for hours in _HOUR_PERIODS))


def schedule_period_minutes(window_seconds: int) -> int:
    """Minutes between two runs of an alert over a ``window_seconds`` window: the longest even cron
    period no longer than the window, at least one minute."""
    window_minutes = window_seconds // 60
    return max([1, *(period for period in _PERIODS if period <= window_minutes)])


def cron_for(period_minutes: int) -> str:
    """The cron expression that runs every ``period_minutes`` (one of the even periods), on the period."""
    if period_minutes == 1:
        return "* * * * *"
    if period_minutes < 60:
        return f"*/{period_minutes} * * * *"
    hours = period_minutes // 60
    if hours == 1:
        return "0 * * * *"
    return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"


def scheduling_settings(period_minutes: int) -> dict[str, str]:
    """Keys that make a late run wait rather than be skipped (savedsearches.conf.spec 9.2).

    realtime_schedule: "When set to 'false' ... the scheduler never skips scheduled execution periods.
    However, the execution of the saved search might fall behind depending on the scheduler's load."
    (default true: "the scheduler might skip some execution periods").
    schedule_window: "'schedule_window' must be shorter than the period of the search. Schedule windows
    are not recommended for searches that run every minute." A delayed run still reads its own range
    (Reporting Manual, "Prioritize concurrently scheduled reports in Splunk Web": "when they do run, they
    still gather data for time range that they would have covered if they started on time"), so half the
    period of slack changes when a run starts, never what it reads.
    allow_skew, for the every-minute searches that get no window: "50% (For an every-1-minute search = 30
    seconds maximum)": start times spread over the minute, and dispatch times snapped to the minute
    (``@m``) keep the range the same.
    """
    settings = {"realtime_schedule": "0"}
    if period_minutes >= 2:
        settings["schedule_window"] = str(period_minutes // 2)
    else:
        settings["allow_skew"] = "50%"
    return settings


# --------------------------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class ScanCost:
    """Minutes of events one alert reads per hour of scheduling: runs per hour × minutes per run.
    ``None`` where a schedule or time range is in a form this does not read (an override)."""

    alert: str
    rule_id: str
    runs_per_hour: float | None
    minutes_per_run: float | None

    @property
    def minutes_per_hour(self) -> float | None:
        if self.runs_per_hour is None or self.minutes_per_run is None:
            return None
        return self.runs_per_hour * self.minutes_per_run


def scan_cost(alert: str, rule_id: str, settings: dict[str, str]) -> ScanCost:
    earliest = _minutes_ago(settings.get("dispatch.earliest_time", ""))
    latest = _minutes_ago(settings.get("dispatch.latest_time", "now") or "now")
    minutes = earliest - latest if earliest is not None and latest is not None else None
    return ScanCost(alert, rule_id, runs_per_hour(settings.get("cron_schedule", "")), minutes)


_CRON_PART = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def _cron_values(field: str, low: int, high: int) -> set[int] | None:
    values: set[int] = set()
    for part in field.split(","):
        match = _CRON_PART.match(part)
        if match is None:
            return None
        start, end, step = match.groups()
        first = low if start == "*" else int(start)
        last = high if start == "*" else int(end) if end is not None else (high if step else first)
        values.update(range(first, last + 1, int(step) if step else 1))
    return {v for v in values if low <= v <= high}


def runs_per_hour(cron: str) -> float | None:
    """Average runs per hour of a cron schedule, from its minute and hour fields (every day counted)."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    minutes, hours = _cron_values(fields[0], 0, 59), _cron_values(fields[1], 0, 23)
    if minutes is None or hours is None:
        return None
    return len(minutes) * len(hours) / 24


_UNIT_MINUTES = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440, "w": 10080}
_RELATIVE = re.compile(r"^(?:-(\d+)([smhdw]))?(?:@[a-z]+\d*)?$")


def _minutes_ago(text: str) -> float | None:
    """How far back a relative time such as ``-10m@m`` reaches, in minutes (the snap ignored)."""
    if text == "now":
        return 0.0
    match = _RELATIVE.match(text)
    if match is None or not text:
        return None
    amount, unit = match.groups()
    return int(amount) * _UNIT_MINUTES[unit] if amount else 0.0


def format_minutes(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.0f}" if math.isclose(value, round(value)) else f"{value:,.1f}"
