"""The states of a Cloudflare Workers Observability alert, check by check.

cloudflare-docs ``workers/observability/alerts.mdx`` ("Alert states"): Normal, "Conditions are not
violated"; Pending Fire, "Conditions are being violated, but the **Fire after failing for** duration
has not yet elapsed. If conditions stop being violated, the alert returns to Normal without firing";
Firing, "A notification is sent and an incident is created"; Pending Resolve, "Conditions are passing
again, but the **Resolve after passing for** duration has not yet elapsed. If conditions start being
violated again, the alert returns to Firing without resolving". Group By "evaluates conditions
separately for each unique value of the specified field", so each group runs its own machine.

How the durations are read. "Fire after failing for — How long conditions must be continuously
violated before the alert transitions to **Firing**". The alert only learns the conditions at its
checks, so "continuously violated for D" means: the check at ``t0`` failed after a passing check (or
none), every check since has failed, and the alert fires at the first failing check ``t`` with
``t - t0 >= D``. With D = 0 the first failing check fires. (The state table says "violated for longer
than" D; read strictly, D = 0 would wait for a second failing check, which no setting of 0 suggests.)
"Resolve after passing for — How long conditions must be continuously passing before a firing alert
transitions back to **Normal**" is read the same way from the first passing check after Firing.

Notifications: "Notify when fired — ... when the alert transitions to the Firing state (turned on by
default)" and "Notify when resolved — ... when a firing alert transitions back to Normal". A return
from Pending Resolve to Firing is not a new firing: it notifies nothing.

When checks run: "Check alert every — How often the alert conditions are evaluated". The page does not
say how checks align to the clock; :func:`check_times` puts them on multiples of the period since the
epoch, as a ``*/N`` cron schedule does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from extalerts.observability_timings import MINUTE_S, Timings

MINUTE_MS = MINUTE_S * 1000

GroupKey = TypeVar("GroupKey")


class AlertState(StrEnum):
    NORMAL = "Normal"
    PENDING_FIRE = "Pending Fire"
    FIRING = "Firing"
    PENDING_RESOLVE = "Pending Resolve"


class Notification(StrEnum):
    FIRED = "fired"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class StateChange:
    at_ms: int
    before: AlertState
    after: AlertState
    #: What the change sends, if anything: Pending states and a return to Firing send nothing.
    notification: Notification | None


class AlertMachine:
    """One group's alert: feed it each check in time order."""

    def __init__(self, timings: Timings) -> None:
        self.fire_after_ms = timings.fire_after_minutes * MINUTE_MS
        self.resolve_after_ms = timings.resolve_after_minutes * MINUTE_MS
        self.state = AlertState.NORMAL
        #: The first check of the current run of failing (or, once fired, passing) checks.
        self._run_start_ms = 0
        self._last_check_ms: int | None = None

    def check(self, at_ms: int, violated: bool) -> StateChange | None:
        """The state after a check at ``at_ms``; the change it makes, if any."""
        if self._last_check_ms is not None and at_ms <= self._last_check_ms:
            raise ValueError(f"checks must run in time order: {at_ms} after {self._last_check_ms}")
        self._last_check_ms = at_ms
        before = self.state
        after, notification = self._next(at_ms, violated)
        if after is before:
            return None
        self.state = after
        return StateChange(at_ms, before, after, notification)

    def _next(self, at_ms: int, violated: bool) -> tuple[AlertState, Notification | None]:
        state = self.state
        if state in (AlertState.NORMAL, AlertState.PENDING_FIRE):
            if not violated:
                return AlertState.NORMAL, None
            if state is AlertState.NORMAL:
                self._run_start_ms = at_ms
            if at_ms - self._run_start_ms >= self.fire_after_ms:
                return AlertState.FIRING, Notification.FIRED
            return AlertState.PENDING_FIRE, None
        if violated:
            return AlertState.FIRING, None
        if state is AlertState.FIRING:
            self._run_start_ms = at_ms
        if at_ms - self._run_start_ms >= self.resolve_after_ms:
            return AlertState.NORMAL, Notification.RESOLVED
        return AlertState.PENDING_RESOLVE, None


def run_checks(checks: Iterable[tuple[int, bool]], timings: Timings) -> list[StateChange]:
    """The state changes of one alert (or one group of it) over checks ``(at_ms, violated)``."""
    machine = AlertMachine(timings)
    return [change for at_ms, violated in checks if (change := machine.check(at_ms, violated)) is not None]


def run_groups(
    checks: Mapping[GroupKey, Iterable[tuple[int, bool]]], timings: Timings
) -> dict[GroupKey, list[StateChange]]:
    """Each group's state changes, every group on its own machine (Group By)."""
    return {group: run_checks(group_checks, timings) for group, group_checks in checks.items()}


def check_times(start_ms: int, end_ms: int, timings: Timings) -> list[int]:
    """The checks from ``start_ms`` to ``end_ms`` (both included), every ``check_every_minutes``."""
    step = timings.check_every_minutes * MINUTE_MS
    first = math.ceil(start_ms / step) * step
    return list(range(first, end_ms + 1, step))
