"""``semantics="cloudflare"``: each rule as the Workers Observability alert Option A would enter for it.

Checks run every "Check alert every" minutes over "Include data from the last" minutes, as
:mod:`extalerts.observability_timings` derives them (windows: :func:`.windows.evaluation_window_ms`),
and each group goes through Normal, Pending Fire, Firing and Pending Resolve as
:mod:`extalerts.observability_states` reads the alerts page. A check fails when the value breaches the
critical threshold; no data (an average over no events) passes, as a condition has no value to
breach. The engine's states stand for the alert's: Pending Fire has not fired, so it is ``ok``;
Pending Resolve has not resolved, so it is still ``alert``. A notification is counted on entering
Firing ("Notify when fired", on by default). Rules Option A does not carry are not evaluated.
"""

from __future__ import annotations

from extalerts import coverage, observability_timings
from extalerts.engine.results import Group, RuleResult, State, Transition
from extalerts.observability_states import AlertMachine, AlertState, Notification
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import breaches

ENGINE_STATE = {
    AlertState.NORMAL: State.OK,
    AlertState.PENDING_FIRE: State.OK,
    AlertState.FIRING: State.ALERT,
    AlertState.PENDING_RESOLVE: State.ALERT,
}


def not_carried_by_option_a(rule: ResolvedRule, spec: Spec) -> str | None:
    """Why no Workers Observability alert carries ``rule`` (None: one does), from `extalerts coverage`:
    a verdict other than "no" that names no Notifications alert type is carried by such alerts (the
    Logpush-disabled notice partly carrying absence is not one)."""
    for row in coverage.coverage(spec):
        if row.rule.id == rule.id:
            verdict = row.verdict
            carried = verdict.option_a is not coverage.OptionA.NO and verdict.alert_type is None
            return None if carried else verdict.reason
    raise KeyError(rule.id)


def run_alert(rule: ResolvedRule, result: RuleResult, values: dict[Group, list[tuple[int, float | None]]]) -> None:
    """Each group's checks through its own alert: transitions and notifications into ``result``."""
    timings = observability_timings.timings_for(rule)
    thresholds = rule.rule.thresholds
    operator, critical = (thresholds.operator, thresholds.critical) if thresholds else ("<", 1.0)
    for group in sorted(values):
        series = values[group]
        result.series[group] = series
        alert = AlertMachine(timings)
        for at_ms, value in series:
            change = alert.check(at_ms, value is not None and breaches(operator, value, critical))
            if change is None:
                continue
            before, after = ENGINE_STATE[change.before], ENGINE_STATE[change.after]
            if before is not after:
                result.transitions.append(Transition(at_ms, group, before, after, value))
            if change.notification is Notification.FIRED:
                result.notifications.append((at_ms, group))
    result.transitions.sort(key=lambda t: (t.at_ms, t.group))
    result.notifications.sort()
