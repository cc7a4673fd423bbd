"""What the engine reports: states, transitions, per-rule results, bad lines, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from extalerts.errors import ExtalertsError
from extalerts.observability_timings import Timings

MINUTE_MS = 60_000
Semantics = Literal["datadog", "splunk", "cloudflare"]
#: A group: (field, value) pairs in group_by order; () for a rule without group_by.
Group = tuple[tuple[str, str], ...]
#: The group of events lacking a group-by field, under Datadog semantics; under Splunk's they are
#: in no group, as `stats … BY f` returns one row per value of f.
MISSING_GROUP_VALUE = "N/A"


class State(StrEnum):
    OK = "ok"
    WARN = "warn"
    ALERT = "alert"


class EngineError(ExtalertsError):
    """The input could not be read (no file, unreadable, or bad lines under --strict)."""


@dataclass(frozen=True)
class Transition:
    at_ms: int
    group: Group
    before: State
    after: State
    value: float | None


@dataclass(frozen=True)
class Interval:
    """A stretch of time a group spent in one state (``end_ms`` None: still in it when the input ended)."""

    group: Group
    state: State
    start_ms: int
    end_ms: int | None


@dataclass
class RuleResult:
    rule_id: str
    transitions: list[Transition] = field(default_factory=list)
    #: Value per evaluation time, per group (None: no data), for charts.
    series: dict[Group, list[tuple[int, float | None]]] = field(default_factory=dict)
    evaluations: int = 0
    #: The last evaluation time; an interval still open then is counted up to it.
    until_ms: int | None = None
    #: When an alert notification would go out, per group: Datadog's on alerting and each renotify
    #: while still alerting; Splunk's at each triggering run not suppressed by the throttle.
    notifications: list[tuple[int, Group]] = field(default_factory=list)
    #: Splunk's warning search, likewise (its own throttle); empty under Datadog semantics, where
    #: only alert notifications are counted.
    warning_notifications: list[tuple[int, Group]] = field(default_factory=list)

    def firing_ms(self) -> int:
        """Total time spent alerting, across groups."""
        return sum((i.end_ms or self.until_ms or i.start_ms) - i.start_ms for i in self.intervals())

    def intervals(self, state: State = State.ALERT) -> list[Interval]:
        open_since: dict[Group, int] = {}
        found: list[Interval] = []
        for t in self.transitions:
            if t.after is state and t.before is not state:
                open_since[t.group] = t.at_ms
            elif t.before is state and t.after is not state and t.group in open_since:
                found.append(Interval(t.group, state, open_since.pop(t.group), t.at_ms))
        found.extend(Interval(group, state, start, None) for group, start in open_since.items())
        return sorted(found, key=lambda i: (i.start_ms, i.group))


@dataclass(frozen=True)
class BadLine:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.line else f"{self.source}: {self.reason}"


@dataclass
class EngineResult:
    rules: dict[str, RuleResult]
    events: int
    bad_lines: list[BadLine]
    bad_line_count: int
    first_ms: int | None
    last_ms: int | None
    semantics: Semantics
    #: What the reading worked around, e.g. a truncated archive read up to its cut.
    warnings: list[str] = field(default_factory=list)
    #: Under Cloudflare's semantics, the rules no Workers Observability alert carries (Option A), and
    #: why: they are not evaluated.
    not_carried: dict[str, str] = field(default_factory=dict)
    #: Under Cloudflare's semantics, the alert timings each evaluated rule ran with.
    timings: dict[str, Timings] = field(default_factory=dict)
