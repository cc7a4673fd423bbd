"""The values `extalerts verify` passes between a provider's side, the expected side and the report.

A provider side answers, for one rule over one window, what the provider's own search API says the
rule's query saw: the value per evaluation minute and group, and how many events its base search
matched. The expected side (the engine replaying the Logpush archive) answers the same question.
Comparing the two, and running both series through the rule's state machine, is shared machinery;
each provider adds only its API calls and the checks that explain a divergence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from extalerts.engine import Semantics
from extalerts.spec.loader import ResolvedRule

#: A group as the engine names it: ``((field, value), ...)`` in the rule's ``group_by`` order; ``()``
#: for an ungrouped rule (the same shape as :data:`extalerts.engine.Group`).
Group = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Window:
    """The minutes verified: ``[start_ms, end_ms)``, both on a minute boundary (UTC epoch ms)."""

    start_ms: int
    end_ms: int


@dataclass
class SideSeries:
    """What one side saw for one rule over the window."""

    #: Per group, the value the monitor compares at each evaluation minute (None: no data).
    values: dict[Group, dict[int, float | None]] = field(default_factory=dict)
    #: Events the rule's base search (source + filter, before any match/measure) matched in the window.
    matched_events: int = 0
    #: What was asked of the provider, for the report (a Datadog search, an SPL string).
    query: str = ""


@dataclass(frozen=True)
class Cause:
    """A checked reason a rule diverges (or cannot be verified), with the rules it affects."""

    #: A stable identifier for scripts: ``no-match``, ``derived-absent``, ``facet-missing``,
    #: ``facet-type``, ``other-index``, ``late-delivery``, ``fewer-events``, ``query-edited``, ...
    code: str
    #: One line for people: what was checked and what it found.
    message: str
    #: What to do about it.
    fix: str = ""


@dataclass(frozen=True)
class Agreement:
    """How close a provider's value must be to the expected one to agree, for one rule: what the
    provider itself does to the value it compares (rounding it in its query), never a loosening."""

    #: The largest difference that is the provider's rounding (0: float noise only).
    absolute: float = 0.0


#: Values agree up to float noise: the provider compares what the engine computes.
EXACT = Agreement()


Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: a side reports each API call it finishes."""


class ProviderSide(Protocol):
    """One provider's read-only view of a rule: its series from the provider's search API, and the
    checks that explain why it differs from the expected series."""

    name: str
    #: The engine semantics its rules run by: the expected side replays the archive with it.
    semantics: Semantics

    def series(self, rule: ResolvedRule, window: Window, progress: Progress) -> SideSeries: ...

    def explain(self, rules: Sequence[ResolvedRule], window: Window) -> dict[str, list[Cause]]:
        """Checked causes per rule id. Called with every rule whose series were read: a live monitor
        edited away from its rendering, or one that missed its alerts, shows where the values agree."""
        ...

    def agreement(self, rule: ResolvedRule) -> Agreement:
        """How close the rule's values must be: :data:`EXACT` unless the provider rounds them."""
        ...
