"""Running one drill.

For each rule: create a temporary copy of its monitor scoped to a fresh drill id and notifying only
the drill target (:mod:`extalerts.drill.view`); send healthy, then incident, then healthy traffic
through the provider's intake (:mod:`extalerts.drill.traffic`); poll the provider until the copy
alerts and recovers; compare the times against the rule's window and evaluation delay; and delete
what was created — in a ``finally``, so an interrupted drill leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from extalerts.clock import Clock
from extalerts.drill.backends import Created, DrillBackend
from extalerts.drill.traffic import DrillPlanError, Traffic, plan_traffic
from extalerts.drill.view import DRILL_FIELD, drill_view
from extalerts.errors import ExtalertsError
from extalerts.intake import Intake
from extalerts.spec.loader import Spec

#: How long past the expected time a drill keeps looking, in provider seconds (evaluation lag).
GRACE_SECONDS = 120


@dataclass
class DrillOutcome:
    rule: str
    provider: str
    drill_id: str
    traffic: str = ""
    expected_seconds: int = 0
    #: Soonest the drill's incident can make a correct monitor alert; sooner, something else did.
    earliest_seconds: int = 0
    earliest_reason: str = ""
    alert_seconds: float | None = None
    recover_seconds: float | None = None
    #: None: the provider has no recovery (Splunk), or the drill could not read the sink.
    recovered: bool | None = None
    notified: bool | None = None
    events_sent: int = 0
    cleaned_up: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def fired(self) -> bool:
        return self.alert_seconds is not None

    @property
    def too_early(self) -> bool:
        return self.alert_seconds is not None and self.alert_seconds < self.earliest_seconds

    @property
    def in_time(self) -> bool:
        """Alerted no sooner than the incident allows and no later than expected."""
        return self.alert_seconds is not None and not self.too_early and self.alert_seconds <= self.expected_seconds

    @property
    def recovered_in_time(self) -> bool:
        """Recovered within the expected time of healthy traffic (true where there is no recovery)."""
        if self.recovered is not True:
            return self.recovered is None
        return self.recover_seconds is not None and self.recover_seconds <= self.expected_seconds

    @property
    def ok(self) -> bool:
        return self.error is None and self.in_time and self.recovered_in_time and self.notified is not False

    def verdict(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if not self.fired:
            expected = minutes_seconds(self.expected_seconds)
            return f"did not fire within {expected} (window + evaluation delay + schedule)"
        if self.too_early:
            early, earliest = minutes_seconds(self.alert_seconds or 0), minutes_seconds(self.earliest_seconds)
            return (
                f"fired too early: after {early}, but the incident cannot make it alert before {earliest} "
                f"({self.earliest_reason}); something other than the drill's incident set it off"
            )
        if not self.in_time:
            late, expected = minutes_seconds(self.alert_seconds or 0), minutes_seconds(self.expected_seconds)
            return f"fired late: after {late}, expected within {expected}"
        if self.recovered is False:
            return f"fired, but did not recover within {minutes_seconds(self.expected_seconds)} of healthy traffic"
        if not self.recovered_in_time:
            late, expected = minutes_seconds(self.recover_seconds or 0), minutes_seconds(self.expected_seconds)
            return f"fired, but recovered late: after {late} of healthy traffic, expected within {expected}"
        if self.notified is False:
            return "fired, but no notification reached the drill target"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "fired": self.fired,
            "too_early": self.too_early,
            "in_time": self.in_time,
            "ok": self.ok,
            "verdict": self.verdict(),
        }


def minutes_seconds(seconds: float) -> str:
    """``12m05s``: drill times, to the second."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


@dataclass
class DrillSettings:
    clock: Clock = field(default_factory=Clock)
    #: Real seconds between polls of the provider.
    poll_seconds: float = 10.0
    webhook_url: str | None = None
    #: Where the drill reads delivered notifications (the sandbox's sink); None: not checked.
    sink_url: str | None = None
    grace_seconds: int = GRACE_SECONDS
    #: Real seconds the drill waits for the notification after the alert.
    notify_wait_seconds: float = 3.0
    #: Real seconds a drill still waits once the expected provider time has passed (a fast sandbox
    #: clock can outrun the sandbox's evaluation; real providers need none beyond ``grace_seconds``).
    grace_real_seconds: float = 0.0


def run_drill(
    spec: Spec,
    rule_id: str,
    backend: DrillBackend,
    intake: Intake,
    settings: DrillSettings,
    *,
    live: bool = False,
) -> DrillOutcome:
    """Drill one rule; cleans up whatever happens (KeyboardInterrupt included, re-raised after).

    ``live`` drills the production monitor instead of a copy: events come with the production
    origin (the intake given), carry the drill id and their own group values, and the real
    targets are notified. Nothing is created, so nothing is deleted."""
    drill_id = secrets.token_hex(4)
    outcome = DrillOutcome(rule_id, backend.provider, drill_id)
    try:
        view = drill_view(spec, rule_id, drill_id, settings.webhook_url)
    except KeyError:
        raise ExtalertsError(f"unknown rule {rule_id!r}; known: {', '.join(r.id for r in spec.rules)}") from None
    rule = view.original if live else view.rule
    script = spec.logpush.scripts[0] if spec.logpush.scripts else "extalerts-drill"
    cron = _schedule_seconds(view) if backend.provider == "splunk" else 60
    marks = {DRILL_FIELD: drill_id} if live else None
    try:
        traffic = plan_traffic(rule, view.spec.catalog, script, cron_seconds=cron, marks=marks)
    except DrillPlanError as exc:
        outcome.error = str(exc)
        return outcome
    outcome.traffic = traffic.description
    outcome.expected_seconds = traffic.expected_seconds
    outcome.earliest_seconds = traffic.earliest_seconds
    outcome.earliest_reason = traffic.earliest_reason
    created: list[Created] = []
    interrupted = False
    try:
        if live:
            backend.attach(view, created)
        else:
            backend.create(view, created)
        _exercise(outcome, traffic, backend, intake, created, settings)
    except ExtalertsError as exc:
        outcome.error = str(exc)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with _uninterruptible():
            _clean_up(outcome, backend, created)
    if interrupted:
        raise DrillInterrupted(outcome)
    return outcome


def _schedule_seconds(view: Any) -> int:
    """How often the Splunk alert runs, from its rendered cron schedule (overrides included)."""
    from extalerts.render.splunk import SplunkRenderer
    from extalerts.render.templates import Templates

    alert = SplunkRenderer(view.spec, Templates()).alerts(view.rule)[0]
    return cron_period_seconds(alert.settings.get("cron_schedule", "* * * * *"))


def cron_period_seconds(expression: str) -> int:
    """The longest gap between runs of a cron schedule, for the common forms (minute and hour fields;
    anything stranger counts as daily, which errs on the side of waiting)."""
    fields = expression.split()
    minute, hour = [*fields, "*", "*"][:2]

    def step(field: str, unit: int, span: int) -> int | None:
        if field == "*":
            return unit
        if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0:
            return int(field[2:]) * unit
        values = sorted({int(v) for v in field.split(",") if v.isdigit()})
        if values and len(values) == len(field.split(",")):
            gaps = [b - a for a, b in itertools.pairwise(values)] + [span - values[-1] + values[0]]
            return max(gaps) * unit
        return None

    if minute == "*" or minute.startswith("*/"):
        return step(minute, 60, 60) or 86400
    minute_gap = step(minute, 60, 60)
    hour_gap = step(hour, 3600, 24)
    if minute_gap is None or hour_gap is None:
        return 86400
    return minute_gap if hour == "*" else hour_gap


class DrillInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a drill; what it created was deleted (``outcome.cleaned_up``)."""

    def __init__(self, outcome: DrillOutcome) -> None:
        super().__init__(outcome.rule)
        self.outcome = outcome


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Hold off another Ctrl-C, SIGTERM or SIGHUP while cleaning up (main thread only; signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _clean_up(outcome: DrillOutcome, backend: DrillBackend, created: list[Created]) -> None:
    """Delete what the drill created, then anything else carrying its drill id (a create whose
    answer was lost, or one interrupted before its id was known)."""

    def delete(item: Created) -> None:
        try:
            backend.delete(item)
            outcome.cleaned_up.append(f"{item.kind} {item.key}")
        except ExtalertsError as exc:  # report, keep cleaning the rest
            problem = f"cleanup of {item.kind} {item.key} failed: {exc}"
            outcome.error = f"{outcome.error}; {problem}" if outcome.error else problem

    for item in reversed(created):
        if not item.live:
            delete(item)
    if all(item.live for item in created) and created:
        return  # a live drill creates nothing
    try:
        leftovers = backend.sweep(outcome.drill_id)
    except ExtalertsError as exc:
        outcome.error = f"{outcome.error}; " if outcome.error else ""
        outcome.error += f"could not look for leftovers of drill {outcome.drill_id}: {exc}"
        return
    for item in leftovers:
        if f"{item.kind} {item.key}" not in outcome.cleaned_up:
            delete(item)


def _exercise(
    outcome: DrillOutcome,
    traffic: Traffic,
    backend: DrillBackend,
    intake: Intake,
    created: list[Created],
    settings: DrillSettings,
) -> None:
    clock = settings.clock
    # Drill minutes line up with the provider's evaluation minutes: an incident minute is a whole bucket.
    start = math.ceil(clock.now() / 60) * 60
    incident_start = start + traffic.warmup_minutes * 60
    incident_end = incident_start + traffic.incident_minutes * 60
    alert_deadline = incident_start + traffic.expected_seconds + settings.grace_seconds
    recover_deadline = incident_end + traffic.expected_seconds + settings.grace_seconds
    overtime: float | None = None
    minute = 0
    while True:
        now = clock.now()
        due = start + (minute + 1) * 60
        if now >= due:
            events = traffic.minute_events(minute, int((due - 60) * 1000))
            if events:
                outcome.events_sent += intake.send(events)
            minute += 1
            # No `continue`: when sending falls behind the clock, the drill still observes and keeps
            # to its deadlines between minutes.
        observation = backend.observe(created, since=incident_start)
        alerted_at = observation.alerted_at
        if alerted_at is None and observation.triggered_at is not None:
            # It triggered and recovered between two polls: an alert, unless it may have been a warning,
            # which the notification (when the drill can read it) tells apart.
            if not observation.may_be_warning:
                alerted_at = observation.triggered_at
            elif settings.sink_url:
                alerted_at = _alert_time_from_sink(backend, created, settings, since=incident_start)
        if outcome.alert_seconds is None and alerted_at is not None:
            outcome.alert_seconds = alerted_at - incident_start
            overtime = None
            if not backend.tracks_recovery:
                break
        if outcome.fired and observation.recovered_at is not None and observation.recovered_at >= incident_end:
            outcome.recovered = True
            outcome.recover_seconds = observation.recovered_at - incident_end
            break
        if now > (recover_deadline if outcome.fired else alert_deadline):
            # Past the expected time in provider time; allow the provider's own processing a little
            # real time too, then judge by the times it reports.
            overtime = overtime if overtime is not None else time.monotonic() + settings.grace_real_seconds
            if time.monotonic() >= overtime:
                if outcome.fired:
                    outcome.recovered = False
                break
        time.sleep(min(settings.poll_seconds, max(0.0, (due - clock.now()) / clock.scale)) or 0.001)
    if outcome.fired and settings.sink_url:
        outcome.notified = _wait_for_notification(backend, created, settings, since=incident_start)


def _ours(backend: DrillBackend, created: list[Created], message: dict[str, Any], since: float) -> bool:
    """The drill copy's alert notification, sent after the incident began (not an earlier one, e.g.
    a silence rule alerting before any traffic)."""
    return float(message.get("received_at") or 0) >= since and backend.notified(created, message)


def _alert_time_from_sink(
    backend: DrillBackend, created: list[Created], settings: DrillSettings, since: float
) -> float | None:
    from extalerts.sandbox.sink import read_messages

    assert settings.sink_url is not None
    try:
        messages = read_messages(settings.sink_url)
    except (OSError, ValueError) as exc:
        raise ExtalertsError(f"cannot read the drill sink at {settings.sink_url}: {exc}") from None
    dates = [
        float(m["body"]["date"]) / 1000
        for m in messages
        if _ours(backend, created, m, since) and isinstance(m.get("body"), dict) and m["body"].get("date")
    ]
    return min(dates) if dates else None


def _wait_for_notification(
    backend: DrillBackend, created: list[Created], settings: DrillSettings, since: float
) -> bool:
    from extalerts.sandbox.sink import read_messages

    assert settings.sink_url is not None
    give_up = time.monotonic() + settings.notify_wait_seconds
    while True:
        try:
            if any(_ours(backend, created, m, since) for m in read_messages(settings.sink_url)):
                return True
        except (OSError, ValueError) as exc:
            raise ExtalertsError(f"cannot read the drill sink at {settings.sink_url}: {exc}") from None
        if time.monotonic() > give_up:
            return False
        time.sleep(0.1)
