"""Notifications: when each alert (and Splunk warning) notification would go out."""

from __future__ import annotations

from extalerts.engine.results import (
    MINUTE_MS,
    Group,
    RuleResult,
    Semantics,
    State,
)
from extalerts.engine.windows import schedule_minutes
from extalerts.spec.loader import ResolvedRule


def notifications(
    rule: ResolvedRule, result: RuleResult, semantics: Semantics, state: State = State.ALERT
) -> list[tuple[int, Group]]:
    """Notifications from the stretches spent in ``state``. Datadog notifies on entering alert and
    every ``renotify`` while still in it. A Splunk alert (or warning) search triggers at every run
    whose results match; its ``alert.suppress.period`` (the rule's throttle) then holds back repeats
    for the same group. The two searches are throttled apart: a group that goes from warning to
    critical notifies as critical at once."""
    until = result.until_ms or 0
    step_ms = schedule_minutes(rule, semantics) * MINUTE_MS
    sent: list[tuple[int, Group]] = []
    last_sent: dict[Group, int] = {}
    for stretch in result.intervals(state):
        end = stretch.end_ms if stretch.end_ms is not None else until + 1
        if semantics == "datadog":
            repeat = rule.renotify * 1000 if rule.renotify else None
            times = range(stretch.start_ms, end, repeat) if repeat else [stretch.start_ms]
            sent.extend((t, stretch.group) for t in times)
            continue
        for t in range(stretch.start_ms, end, step_ms):
            previous = last_sent.get(stretch.group)
            if previous is None or t - previous >= rule.throttle * 1000:
                sent.append((t, stretch.group))
                last_sent[stretch.group] = t
    return sorted(sent)
