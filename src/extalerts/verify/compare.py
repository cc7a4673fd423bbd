"""The comparison every provider shares: per rule and group, the values per evaluation minute on
both sides, the firing timelines both series give through the rule's own state machine, the first
minute they diverge, and the events each side matched; then a verdict (agree, diverge, error)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from extalerts.engine import MINUTE_MS, Semantics, State, Transition, transitions
from extalerts.spec.loader import ResolvedRule
from extalerts.spec.models import AbsenceSignal, ChangeSignal, CountSignal
from extalerts.verify.model import EXACT, Agreement, Cause, Group, SideSeries, Window

Verdict = Literal["agree", "diverge", "error"]
#: Float noise only: values computed in another order (a sum of per-minute sums) may differ in
#: their last bits, never by more.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-9
#: Exit codes: all agree, an error, a rule diverges.
EXIT_AGREE, EXIT_ERROR, EXIT_DIVERGE = 0, 1, 3


@dataclass
class RuleVerification:
    """One rule's outcome: what each side saw, where they part, and the checked causes."""

    rule_id: str
    verdict: Verdict
    provider: SideSeries | None = None
    #: None in sanity mode (no archive to replay).
    expected: SideSeries | None = None
    #: Per group, the evaluation minutes whose values differ.
    diverging: dict[Group, list[int]] = field(default_factory=dict)
    provider_transitions: list[Transition] = field(default_factory=list)
    expected_transitions: list[Transition] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    error: str | None = None

    @property
    def first_divergence_ms(self) -> int | None:
        return min((minutes[0] for minutes in self.diverging.values() if minutes), default=None)


def counts_events(rule: ResolvedRule) -> bool:
    """Whether the rule's value is a count of events: a group silent in a window counts 0 there,
    and a side that never saw the group (it is older than what it read) has no value, which is the
    same thing for the state machine."""
    return isinstance(rule.rule.signal, CountSignal | AbsenceSignal) and not (
        isinstance(rule.rule.signal, AbsenceSignal) and rule.rule.group_by
    )


def same_value(a: float | None, b: float | None, *, none_is_zero: bool, agreement: Agreement = EXACT) -> bool:
    """Whether two values are the same to the monitor: "no data" and no row at all are (the state
    machine steps over both alike); otherwise equal up to float noise and the provider's rounding."""
    if none_is_zero:
        a, b = (0.0 if a is None else a), (0.0 if b is None else b)
    if a is None or b is None:
        return a is b
    if math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE):
        return True
    return abs(a - b) <= agreement.absolute + ABSOLUTE_TOLERANCE


def diverging_minutes(
    rule: ResolvedRule, provider: SideSeries, expected: SideSeries, agreement: Agreement = EXACT
) -> dict[Group, list[int]]:
    """Per group, the minutes whose values differ between the two sides."""
    none_is_zero = counts_events(rule)
    found: dict[Group, list[int]] = {}
    for group in sorted(set(provider.values) | set(expected.values)):
        ours, theirs = provider.values.get(group, {}), expected.values.get(group, {})
        minutes = [
            at
            for at in sorted(set(ours) | set(theirs))
            if not same_value(ours.get(at), theirs.get(at), none_is_zero=none_is_zero, agreement=agreement)
        ]
        if minutes:
            found[group] = minutes
    return found


def side_transitions(rule: ResolvedRule, side: SideSeries, semantics: Semantics) -> list[Transition]:
    """The firing timeline of a side's values, through the engine's state machine for the rule."""
    series = {group: sorted(by_minute.items()) for group, by_minute in side.values.items()}
    return transitions(rule, series, semantics)


def read_buckets(rule: ResolvedRule, window: Window) -> range:
    """The minute buckets (as :meth:`extalerts.engine.Engine.bucket_rows` numbers them) whose events
    the evaluations of ``window`` read: each evaluation at T reads ``[T - delay - window, T - delay)``."""
    delay_ms = rule.evaluation_delay * 1000
    offset_ms = delay_ms % MINUTE_MS
    last_end = (window.end_ms - MINUTE_MS - delay_ms - offset_ms) // MINUTE_MS
    first_end = (window.start_ms - delay_ms - offset_ms) // MINUTE_MS
    return range(first_end - rule.rule.window // 60, last_end)


def reads_from_ms(rule: ResolvedRule, window: Window) -> int:
    """The earliest time the evaluations of ``window`` read for ``rule``, a change's baseline included."""
    shift = rule.rule.signal.compare_to // 60 if isinstance(rule.rule.signal, ChangeSignal) else 0
    offset_ms = rule.evaluation_delay * 1000 % MINUTE_MS
    return (read_buckets(rule, window).start - shift) * MINUTE_MS + offset_ms


def matched_in(rule: ResolvedRule, rows: Mapping[Group, Mapping[int, Sequence[Any]]], window: Window) -> int:
    """Events the rule's filter matched in the buckets ``window`` reads (each row's first column)."""
    span = read_buckets(rule, window)
    return sum(int(row[0]) for by_bucket in rows.values() for b, row in by_bucket.items() if b in span)


def generic_causes(provider: SideSeries, expected: SideSeries | None) -> list[Cause]:
    """Causes every provider shares, read from the counts alone."""
    if expected is None:
        if provider.matched_events == 0:
            return [
                Cause(
                    "no-match",
                    f"the rule's search matched no event in the window ({provider.query})",
                    "check the source query and the rule's filter against recent events; widen --since",
                )
            ]
        return []
    if provider.matched_events == 0 and expected.matched_events > 0:
        return [
            Cause(
                "no-match",
                f"the provider matched no event where the archive holds {expected.matched_events:,} ({provider.query})",
                "check the source query (source, service, index) and every attribute the filter reads",
            )
        ]
    if provider.matched_events < expected.matched_events:
        missing = expected.matched_events - provider.matched_events
        return [
            Cause(
                "fewer-events",
                f"the provider holds {provider.matched_events:,} matching events, the archive "
                f"{expected.matched_events:,} ({missing:,} fewer: sampling, exclusion filters, retention, "
                "or logs still arriving)",
                "check the index's exclusion filters and retention, and verify a window older than the delivery lag",
            )
        ]
    return []


def verify_rule(
    rule: ResolvedRule,
    provider: SideSeries,
    expected: SideSeries | None,
    semantics: Semantics,
    causes: Iterable[Cause] = (),
    agreement: Agreement = EXACT,
) -> RuleVerification:
    """The comparison of one rule. Checked ``causes`` from the provider's side make a rule diverge
    even where the values agree: a live monitor edited away from its rendering, or one that did not
    fire where its values breach, will not page as the rule says. A provider's cause replaces the
    shared one of the same code (its check and its fix are the provider's own)."""
    found = {cause.code: cause for cause in generic_causes(provider, expected)}
    for cause in causes:
        found[cause.code] = cause
    outcome = RuleVerification(rule.id, "agree", provider, expected, causes=list(found.values()))
    outcome.provider_transitions = side_transitions(rule, provider, semantics)
    if expected is not None:
        outcome.diverging = diverging_minutes(rule, provider, expected, agreement)
        outcome.expected_transitions = side_transitions(rule, expected, semantics)
        if outcome.diverging or provider.matched_events != expected.matched_events:
            outcome.verdict = "diverge"
    if outcome.causes:
        outcome.verdict = "diverge"
    return outcome


def alerts(found: Sequence[Transition]) -> list[Transition]:
    """The transitions into alert."""
    return [t for t in found if t.after is State.ALERT]


def exit_code(outcomes: Iterable[RuleVerification]) -> int:
    verdicts = {o.verdict for o in outcomes}
    if "error" in verdicts:
        return EXIT_ERROR
    return EXIT_DIVERGE if "diverge" in verdicts else EXIT_AGREE
