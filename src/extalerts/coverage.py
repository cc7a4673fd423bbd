"""Which system carries each rule: Cloudflare's own notifications (Option A) or Datadog/Splunk (Option B).

Cloudflare Notifications have no alert type that reads Workers logs: nothing per script, nothing on
exceptions, status codes, latency or log content, and the Workers Observability alerts have no
public API. What they offer that touches these rules is the notice that a failing Logpush job was
disabled, which partly covers "logs stopped arriving". Everything else is carried by the
providers, and only as well as the Logpush jobs that feed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from extalerts.filter import fields_of
from extalerts.spec.loader import ResolvedRule, Spec, logpush_field_of
from extalerts.spec.models import AbsenceSignal, ChangeSignal

PROVIDERS = ("datadog", "splunk")
LOGPUSH_DISABLED_ALERT = "failing_logpush_job_disabled_alert"


class OptionA(StrEnum):
    NO = "no"
    PARTLY = "partly"


@dataclass(frozen=True)
class Verdict:
    option_a: OptionA
    alert_type: str | None
    reason: str


@dataclass(frozen=True)
class Row:
    rule: ResolvedRule
    verdict: Verdict
    #: Per provider: how its logs arrive ("job <name>", "no managed job", "missing: Event, Logs").
    shipping: dict[str, str]


def option_a(rule: ResolvedRule) -> Verdict:
    """Whether a Cloudflare notification policy can carry the rule, and why."""
    signal = rule.rule.signal
    if isinstance(signal, AbsenceSignal):
        return Verdict(
            OptionA.PARTLY,
            LOGPUSH_DISABLED_ALERT,
            "Cloudflare notices a failing Logpush job that it disables (Enterprise), not a silent script",
        )
    if isinstance(signal, ChangeSignal):
        return Verdict(
            OptionA.NO,
            None,
            "traffic_anomalies_alert is per zone with a fixed z-score (Enterprise), not per Worker",
        )
    return Verdict(
        OptionA.NO,
        None,
        "no Cloudflare notification reads Workers logs; Workers Observability alerts have no public API",
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
        rows.append(Row(rule, option_a(rule), shipping))
    return rows
