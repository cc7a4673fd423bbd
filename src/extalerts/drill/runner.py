"""Running one drill.

For each rule: create a temporary copy of its monitor scoped to a fresh drill id and notifying only
the drill target (:mod:`extalerts.drill.view`); send healthy, then incident, then healthy traffic
through the provider's intake (:mod:`extalerts.drill.traffic`); poll the provider until the copy
alerts and recovers; compare the times against the rule's window and evaluation delay; and delete
what was created — in a ``finally``, so an interrupted drill leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from extalerts.clock import Clock
from extalerts.drill.backends import Created, DrillBackend, Observation
from extalerts.drill.traffic import DrillPlanError, Traffic, plan_traffic
from extalerts.drill.view import DRILL_FIELD, drill_view
from extalerts.errors import ExtalertsError
from extalerts.intake import Intake
from extalerts.spec.loader import Spec
from extalerts.spec.models import AbsenceSignal

#: How long past the expected time a drill keeps looking, in provider seconds (evaluation lag).
GRACE_SECONDS = 120


@dataclass
class DrillOutcome:
    rule: str
    provider: str
    drill_id: str
    traffic: str = ""
    expected_seconds: int = 0
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
    def in_time(self) -> bool:
        return self.alert_seconds is not None and self.alert_seconds <= self.expected_seconds

    @property
    def ok(self) -> bool:
        return self.error is None and self.in_time and self.recovered is not False and self.notified is not False

    def verdict(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if not self.fired:
            return f"did not fire within {_duration(self.expected_seconds)} (window + evaluation delay + schedule)"
        if not self.in_time:
            late, expected = _duration(self.alert_seconds or 0), _duration(self.expected_seconds)
            return f"fired late: after {late}, expected within {expected}"
        if self.recovered is False:
            return f"fired, but did not recover within {_duration(self.expected_seconds)} of healthy traffic"
        if self.notified is False:
            return "fired, but no notification reached the drill target"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "fired": self.fired, "in_time": self.in_time, "ok": self.ok, "verdict": self.verdict()}


def _duration(seconds: float) -> str:
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
    cron = 60
    if backend.provider == "splunk" and (
        rule.rule.window > 900 or (isinstance(rule.rule.signal, AbsenceSignal) and rule.rule.group_by)
    ):
        cron = 300
    marks = {DRILL_FIELD: drill_id} if live else None
    try:
        traffic = plan_traffic(rule, view.spec.catalog, script, cron_seconds=cron, marks=marks)
    except DrillPlanError as exc:
        outcome.error = str(exc)
        return outcome
    outcome.traffic = traffic.description
    outcome.expected_seconds = traffic.expected_seconds
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


class DrillInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a drill; what it created was deleted (``outcome.cleaned_up``)."""

    def __init__(self, outcome: DrillOutcome) -> None:
        super().__init__(outcome.rule)
        self.outcome = outcome


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Hold off a second Ctrl-C while cleaning up (main thread only; signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _clean_up(outcome: DrillOutcome, backend: DrillBackend, created: list[Created]) -> None:
    for item in reversed(created):
        if item.live:
            continue
        try:
            backend.delete(item)
            outcome.cleaned_up.append(f"{item.kind} {item.key}")
        except ExtalertsError as exc:  # report, keep cleaning the rest
            problem = f"cleanup of {item.kind} {item.key} failed: {exc}"
            outcome.error = f"{outcome.error}; {problem}" if outcome.error else problem


def _exercise(
    outcome: DrillOutcome,
    traffic: Traffic,
    backend: DrillBackend,
    intake: Intake,
    created: list[Created],
    settings: DrillSettings,
) -> None:
    clock = settings.clock
    start = clock.now()
    minute = 0
    incident_start = start + traffic.warmup_minutes * 60
    incident_end: float | None = None
    deadline = incident_start + traffic.expected_seconds + settings.grace_seconds
    observation = Observation()
    while True:
        now = clock.now()
        due = start + (minute + 1) * 60
        if now >= due:
            minute_start = due - 60
            in_incident = minute_start >= incident_start and (incident_end is None or minute_start < incident_end)
            phase = traffic.incident if in_incident else traffic.healthy
            events = list(phase.events(int(minute_start * 1000), offset=minute * phase.per_minute))
            if events:
                outcome.events_sent += intake.send(events)
            minute += 1
            continue
        observation = backend.observe(created, since=incident_start)
        if incident_end is None:
            if observation.alerted_at is not None:
                outcome.alert_seconds = observation.alerted_at - incident_start
                # Healthy traffic from the next minute on.
                incident_end = start + (minute + 1) * 60
                deadline = incident_end + traffic.expected_seconds + settings.grace_seconds
                if not backend.tracks_recovery:
                    break
            elif now > deadline:
                break
        else:
            if observation.recovered_at is not None and observation.recovered_at > incident_end - 60:
                outcome.recovered = True
                outcome.recover_seconds = max(0.0, observation.recovered_at - incident_end)
                break
            if now > deadline:
                outcome.recovered = False
                break
        time.sleep(min(settings.poll_seconds, max(0.0, (due - clock.now()) / clock.scale)) or 0.001)
    if outcome.fired and settings.sink_url:
        outcome.notified = _wait_for_notification(backend, created, settings)


def _wait_for_notification(backend: DrillBackend, created: list[Created], settings: DrillSettings) -> bool:
    from extalerts.sandbox.sink import read_messages

    assert settings.sink_url is not None
    give_up = time.monotonic() + settings.notify_wait_seconds
    while True:
        try:
            if any(backend.notified(created, m) for m in read_messages(settings.sink_url)):
                return True
        except OSError as exc:
            raise ExtalertsError(f"cannot read the drill sink at {settings.sink_url}: {exc}") from None
        if time.monotonic() > give_up:
            return False
        time.sleep(0.1)
