"""State machines: one step from a state and a window's value to the next state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from extalerts.engine.results import (
    Group,
    Semantics,
    State,
    Transition,
)
from extalerts.spec.loader import ResolvedRule
from extalerts.spec.models import (
    breaches,
)


class _StateMachine:
    """Threshold logic: one step from a state and a value to the next state."""

    def __init__(self, rule: ResolvedRule, semantics: Semantics) -> None:
        thresholds = rule.rule.thresholds
        self.stateless = semantics == "splunk"
        if thresholds is None:  # absence: no event in the window
            self.operator, self.critical = "<", 1.0
            self.critical_recovery: float | None = None
            self.warning: float | None = None
            self.warning_recovery: float | None = None
        else:
            self.operator = thresholds.operator
            self.critical = thresholds.critical
            self.critical_recovery = thresholds.critical_recovery
            self.warning = thresholds.warning
            self.warning_recovery = thresholds.warning_recovery
        if self.stateless:
            self.critical_recovery = self.warning_recovery = None

    def breaches(self, value: float, threshold: float) -> bool:
        return breaches(self.operator, value, threshold)

    def next(self, state: State, value: float | None) -> State:
        if value is None:
            return State.OK if self.stateless else state  # no data: keep the state (Splunk: nothing fires)
        if self.breaches(value, self.critical):
            return State.ALERT
        if state is State.ALERT and not self.stateless:
            recovery = self.critical_recovery if self.critical_recovery is not None else self.critical
            if self.breaches(value, recovery):
                return State.ALERT
        if self.warning is not None and self.breaches(value, self.warning):
            return State.WARN
        if state is State.WARN and not self.stateless and self.warning is not None:
            recovery = self.warning_recovery if self.warning_recovery is not None else self.warning
            if self.breaches(value, recovery):
                return State.WARN
        return State.OK


def transitions(
    rule: ResolvedRule, series: Mapping[Group, Sequence[tuple[int, float | None]]], semantics: Semantics
) -> list[Transition]:
    """A series (value per evaluation time, per group) run through the rule's thresholds and state
    machine: each group's changes of state, in time order. The engine's own evaluation under Datadog's
    and Splunk's semantics, and the one ``extalerts verify`` runs over a provider's values and the
    expected ones alike (Cloudflare's alerts have their own machine: :mod:`.observability`)."""
    machine = _StateMachine(rule, semantics)
    found: list[Transition] = []
    for group in sorted(series):
        state = State.OK
        for at_ms, value in series[group]:
            new_state = machine.next(state, value)
            if new_state is not state:
                found.append(Transition(at_ms, group, state, new_state, value))
                state = new_state
    return sorted(found, key=lambda t: (t.at_ms, t.group))
