"""Which system carries each rule: Cloudflare's own alerts (Option A) or Datadog/Splunk (Option B).

Option A is two things. Cloudflare Notifications have no alert type that reads Workers logs, but the
notice that a failing Logpush job was disabled partly covers "logs stopped arriving". Workers
Observability alerts (beta) read Workers Logs, and are entered in the dashboard from the recipes
`render --provider cloudflare` writes: :mod:`extalerts.observability_alerts` says what they carry of
each rule and what they lose. Every rule is also carried by the providers, and only as well as the
Logpush jobs that feed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from extalerts.fields import FieldCatalog
from extalerts.filter import fields_of
from extalerts.observability_alerts import AlertVerdict, Assessment, assess
from extalerts.spec.loader import ResolvedRule, Spec, logpush_field_of
from extalerts.spec.models import AbsenceSignal, ChangeSignal

PROVIDERS = ("datadog", "splunk")
LOGPUSH_DISABLED_ALERT = "failing_logpush_job_disabled_alert"


class OptionA(StrEnum):
    YES = "yes"
    NO = "no"
    PARTLY = "partly"


@dataclass(frozen=True)
class Verdict:
    option_a: OptionA
    #: The Cloudflare Notifications alert type a policy of which carries the rule (push manages it).
    alert_type: str | None
    reason: str
    #: What Workers Observability alerts carry of the rule (None without a field catalog to read it).
    observability: Assessment | None = None


@dataclass(frozen=True)
class Row:
    rule: ResolvedRule
    verdict: Verdict
    #: Per provider: how its logs arrive ("job <name>", "no managed job", "missing: Event, Logs").
    shipping: dict[str, str]


def option_a(rule: ResolvedRule, catalog: FieldCatalog | None = None) -> Verdict:
    """Whether Cloudflare's own alerts can carry the rule, and why.

    Without ``catalog`` only the Notifications side is judged (``push --provider cloudflare`` reads
    ``alert_type`` alone); with it, the Workers Observability alerts too.
    """
    signal = rule.rule.signal
    observability = assess(rule, catalog) if catalog is not None else None
    if isinstance(signal, AbsenceSignal):
        reason = "Cloudflare notices a failing Logpush job that it disables (Enterprise), not a silent script"
        if observability is not None:
            reason += f"; no Workers Observability alert either: {observability.reason}"
        return Verdict(OptionA.PARTLY, LOGPUSH_DISABLED_ALERT, reason, observability)
    if observability is None or observability.verdict is AlertVerdict.NO:
        if isinstance(signal, ChangeSignal):
            reason = "traffic_anomalies_alert is per zone with a fixed z-score (Enterprise), not per Worker"
        else:
            reason = "no Cloudflare notification reads Workers logs"
        if observability is not None:
            reason += f"; no Workers Observability alert: {observability.reason}"
        return Verdict(OptionA.NO, None, reason, observability)
    count = len(observability.alerts)
    alerts = f"{count} Workers Observability alert{'s' if count != 1 else ''}"
    if observability.verdict is AlertVerdict.YES:
        return Verdict(OptionA.YES, None, f"{alerts} (render --provider cloudflare)", observability)
    return Verdict(
        OptionA.PARTLY,
        None,
        f"{alerts} (render --provider cloudflare), losing " + "; ".join(observability.lost),
        observability,
    )


def _fields_read(rule: ResolvedRule, spec: Spec) -> set[str]:
    names = fields_of(rule.filter) + fields_of(rule.ratio_match) + list(rule.rule.group_by)
    signal_field = getattr(rule.rule.signal, "field", None)
    if signal_field:
        names.append(signal_field)
    return {logpush_field_of(spec.catalog[name]) for name in names} | {"EventTimestampMs"}


def coverage(spec: Spec) -> list[Row]:
    rows = []
    for rule in spec.rules:
        needed = _fields_read(rule, spec)
        shipping: dict[str, str] = {}
        for provider in PROVIDERS:
            jobs = {name: job for name, job in spec.logpush.jobs.items() if job.provider == provider}
            if not jobs:
                shipping[provider] = "no managed job"
                continue
            carrying = [name for name, job in jobs.items() if needed <= set(job.shipped_fields)]
            if carrying:
                shipping[provider] = "job " + ", ".join(carrying)
            else:
                shipped = set().union(*(set(job.shipped_fields) for job in jobs.values()))
                shipping[provider] = "missing: " + ", ".join(sorted(needed - shipped))
        rows.append(Row(rule, option_a(rule, spec.catalog), shipping))
    return rows
