"""The timings of a Cloudflare Workers Observability alert, derived from a rule.

cloudflare-docs ``workers/observability/alerts.mdx`` ("Timings"): "Check alert every — How often
the alert conditions are evaluated"; "Include data from the last — The time window of data included
in each check"; "Fire after failing for — How long conditions must be continuously violated before
the alert transitions to Firing"; "Resolve after passing for — How long conditions must be
continuously passing before a firing alert transitions back to Normal". The recipes
(`render --provider cloudflare`) and the engine's ``--semantics cloudflare`` read the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

from extalerts.spec.loader import ResolvedRule

MINUTE_S = 60


@dataclass(frozen=True)
class Timings:
    check_every_minutes: int
    lookback_minutes: int
    fire_after_minutes: int
    resolve_after_minutes: int


def timings_for(rule: ResolvedRule) -> Timings:
    """The rule's window becomes the lookback; checks run every minute, as Datadog evaluates, and
    the alert fires on the first failing check and resolves on the first passing one, as the rule's
    Datadog and Splunk twins do. The page gives no minimum for any of them (its example checks every
    5 minutes), so the README lists these as values to confirm in the dashboard."""
    return Timings(
        check_every_minutes=1,
        lookback_minutes=max(1, rule.rule.window // MINUTE_S),
        fire_after_minutes=0,
        resolve_after_minutes=0,
    )
