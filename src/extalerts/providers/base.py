"""What a provider is, and the values that flow between plan and apply.

A provider turns the spec into desired :class:`Resource` values, reads the live resources it owns,
and applies a :class:`~extalerts.plan.Plan` computed from the two. Everything else — normalising,
diffing, safety guards, ordering, concurrency, retries, progress — is shared machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from extalerts.spec.loader import Spec


@dataclass(frozen=True)
class Resource:
    """One object a provider manages, identified by ``(kind, key)``.

    ``key`` is extalerts' own identity (the rule id, a metric name): never the provider's id, which
    is known only for live resources (``live_id``).
    """

    kind: str
    key: str
    body: Mapping[str, Any]
    live_id: str | None = None
    #: Higher phases apply later; deletes run in the reverse order (monitors before their metrics).
    phase: int = 0


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class FieldChange:
    """One differing field, by dotted path, before (live) and after (desired)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str
    key: str
    desired: Resource | None
    live: Resource | None
    fields: tuple[FieldChange, ...] = ()
    phase: int = 0
    #: A delete of a second live object for one key (two pushes raced): the key itself stays.
    duplicate: bool = False

    @property
    def live_id(self) -> str | None:
        return self.live.live_id if self.live else None


@dataclass(frozen=True)
class Plan:
    """What a push would do. A value: computing it writes nothing."""

    provider: str
    changes: tuple[Change, ...]
    #: Managed resources found live, per kind (for the safety guards).
    live_counts: Mapping[str, int] = field(default_factory=dict)
    #: Live resources that carry our marker but were left alone, with the reason.
    skipped: tuple[str, ...] = ()
    #: What the provider could not do as the spec asks, one line each (e.g. an alert type the account lacks).
    notes: tuple[str, ...] = ()

    def of(self, *actions: Action) -> list[Change]:
        return [c for c in self.changes if c.action in actions]

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.UNCHANGED for c in self.changes)

    def counts(self) -> dict[str, int]:
        return {action.value: len(self.of(action)) for action in Action}


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    not_attempted: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_attempted


#: Called after each change is applied or fails (for progress reporting).
ProgressCallback = Callable[[Change, str | None], None]


class Provider(Protocol):
    """A backend extalerts can plan against and push to.

    Implementers provide the four methods below; :mod:`extalerts.plan` does the rest.
    """

    name: ClassVar[str]

    @property
    def target(self) -> str:
        """Which account or instance this provider talks to (no secrets): state is kept per target."""
        ...

    def desired(self, spec: Spec) -> list[Resource]:
        """The resources the spec asks for, with bodies exactly as they will be sent."""
        ...

    def fetch(self) -> list[Resource]:
        """Every live resource this provider owns (by its ownership marker), all pages read.

        Raises:
            ProviderError: when listing fails; a failed list is never read as "nothing exists".
        """
        ...

    def normalise(self, resource: Resource) -> dict[str, Any]:
        """The comparable projection of a desired or live body (server-owned fields and defaults removed)."""
        ...

    def validate(self, changes: Sequence[Change]) -> list[tuple[Change, str]]:
        """Ask the provider to check every create/update before anything is written; problems per change."""
        ...

    def apply_change(self, change: Change) -> None:
        """Apply one change, idempotently: a retried create must not duplicate."""
        ...
