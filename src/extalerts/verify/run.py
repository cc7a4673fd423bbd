"""One verification: every rule's provider series, the expected series when there is an archive,
the comparison, the provider's checked causes, and the report as a table, JSON or HTML."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from extalerts.errors import ExtalertsError
from extalerts.spec.loader import ResolvedRule
from extalerts.verify.compare import RuleVerification, exit_code, verify_rule
from extalerts.verify.lag import Lag
from extalerts.verify.model import Cause, Group, Progress, ProviderSide, SideSeries, Window


@dataclass
class Verification:
    provider: str
    window: Window
    rules: list[RuleVerification]
    #: False in sanity mode (no archive: only the provider's side and its checks).
    compared: bool
    lag: Lag | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return exit_code(self.rules)


def verify(
    side: ProviderSide,
    rules: Sequence[ResolvedRule],
    window: Window,
    expected: dict[str, SideSeries] | None,
    *,
    progress: Progress,
) -> list[RuleVerification]:
    """Each rule's comparison, through the state machines of the side's semantics. A rule whose
    provider calls fail is an ``error``, the others go on."""
    outcomes: dict[str, RuleVerification] = {}
    provided: dict[str, SideSeries] = {}
    for rule in rules:
        try:
            provided[rule.id] = side.series(rule, window, progress)
        except ExtalertsError as exc:
            outcomes[rule.id] = RuleVerification(rule.id, "error", error=str(exc))
    checked = [rule for rule in rules if rule.id in provided]
    try:
        causes = side.explain(checked, window) if checked else {}
    except ExtalertsError as exc:
        causes = {rule.id: [Cause("explain-failed", f"the checks could not run: {exc}")] for rule in checked}
    for rule in checked:
        ours = expected.get(rule.id) if expected is not None else None
        found = causes.get(rule.id, ())
        outcomes[rule.id] = verify_rule(rule, provided[rule.id], ours, side.semantics, found, side.agreement(rule))
    return [outcomes[rule.id] for rule in rules]


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _group_text(group: Group) -> str:
    return ", ".join(f"{k}={v}" for k, v in group) or "all events"


def as_json(result: Verification) -> dict[str, Any]:
    """The stable JSON document of ``--output json``."""
    rules = []
    for outcome in result.rules:
        rules.append(
            {
                "rule": outcome.rule_id,
                "verdict": outcome.verdict,
                "events": {
                    "provider": outcome.provider.matched_events if outcome.provider else None,
                    "expected": outcome.expected.matched_events if outcome.expected else None,
                },
                "first_divergence": _iso(outcome.first_divergence_ms),
                "diverging_minutes": {
                    _group_text(group): [_iso(at) for at in minutes] for group, minutes in outcome.diverging.items()
                },
                "alerts": {
                    "provider": [
                        {"at": _iso(t.at_ms), "group": _group_text(t.group)}
                        for t in outcome.provider_transitions
                        if t.after.value == "alert"
                    ],
                    "expected": [
                        {"at": _iso(t.at_ms), "group": _group_text(t.group)}
                        for t in outcome.expected_transitions
                        if t.after.value == "alert"
                    ],
                },
                "causes": [{"code": c.code, "message": c.message, "fix": c.fix} for c in outcome.causes],
                "query": outcome.provider.query if outcome.provider else None,
                "error": outcome.error,
            }
        )
    return {
        "provider": result.provider,
        "mode": "compare" if result.compared else "sanity",
        "from": _iso(result.window.start_ms),
        "to": _iso(result.window.end_ms),
        "lag": None
        if result.lag is None
        else {
            "events": result.lag.events,
            "p50_s": result.lag.p50_ms / 1000,
            "p99_s": result.lag.p99_ms / 1000,
            "suggested_evaluation_delay_s": result.lag.suggested_delay_s,
        },
        "exit_code": result.exit_code,
        "rules": rules,
        "warnings": result.warnings,
    }


def table_rows(result: Verification) -> list[list[str]]:
    """One row per rule: verdict, events each side, first divergence, cause."""
    rows = [["RULE", "VERDICT", "PROVIDER EVENTS", "EXPECTED EVENTS", "FIRST DIVERGENCE", "CAUSE"]]
    for outcome in result.rules:
        cause = ", ".join(c.code for c in outcome.causes) or (outcome.error or "")[:60]
        rows.append(
            [
                outcome.rule_id,
                outcome.verdict,
                f"{outcome.provider.matched_events:,}" if outcome.provider else "-",
                f"{outcome.expected.matched_events:,}" if outcome.expected else "-",
                (_iso(outcome.first_divergence_ms) or "-").replace("T", " "),
                cause or "-",
            ]
        )
    return rows


def cause_lines(result: Verification) -> list[str]:
    """Each cause in full, after the table: the rule, what was checked and found, and the fix."""
    lines = []
    for outcome in result.rules:
        for cause in outcome.causes:
            lines.append(
                f"{outcome.rule_id}: {cause.code}: {cause.message}" + (f"; fix: {cause.fix}" if cause.fix else "")
            )
        if outcome.error:
            lines.append(f"{outcome.rule_id}: error: {outcome.error}")
    return lines
