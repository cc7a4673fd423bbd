"""``extalerts doctor --provider cloudflare``: can the Workers Observability alerts that carry rules (Option A)
see what those rules count? Read-only.

Per Worker named by such a rule (its ``ScriptName`` filter, else the spec's ``logpush.scripts``):

- Workers Logs is on. cloudflare-docs ``workers/observability/alerts.mdx``: "Alerts query the Workers
  Observability dataset, which requires Workers Logs to be enabled", with the wrangler snippet
  ``observability.enabled`` / ``observability.logs.invocation_logs``. Read through the documented script
  settings (``workers.scripts.settings.get``, the SDK's ``ScriptSetting.observability``).
- Its sampling. ``workers-logs.mdx``: "Head-based sampling allows you to log a percentage of incoming
  requests"; "If head_sampling_rate is unspecified, it is configured to a default value of 1 (100%)". A rule
  that counts events then counts a sample: a problem for it.

Then, when the account answers ``GET /accounts/{id}/workers/observability/alerts`` (UNDOCUMENTED: third-party
reports only), the configured alerts are compared with what the recipes say (:func:`alert_drift`); a 404,
405 or unrouted answer there means "not available", never a failure. Nothing is ever written to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from extalerts.doctor import Finding
from extalerts.errors import ApiError
from extalerts.filter import And, Op, Predicate, to_nnf
from extalerts.numbers import format_number
from extalerts.providers.cloudflare import WORKERS_OBSERVABILITY_ALERT, observability_alert_name
from extalerts.providers.cloudflare_api import CloudflareApi
from extalerts.spec.loader import ResolvedRule, Spec, logpush_field_of
from extalerts.spec.models import CountSignal, MeasureSignal

UNDOCUMENTED = "relies on an endpoint the API reference does not document"
ALERTS_PATH = "/accounts/{account}/workers/observability/alerts"
#: The wrangler config that turns Workers Logs on for every request (alerts.mdx's snippet, sampling at 1).
WORKERS_LOGS_FIX = (
    'set `"observability": {"enabled": true, "logs": {"invocation_logs": true, "head_sampling_rate": 1}}` '
    "in its wrangler config and deploy it"
)
#: Answers that mean the undocumented read is not served here (the API answers 400 with these codes for a
#: path it does not route).
_NOT_SERVED_STATUSES = frozenset({404, 405})
_NO_ROUTE_CODES = ("(7003)", "(7000)")
#: Workers Logs keys of the Logpush fields the recipes use; alerts.mdx shows ``$workers.outcome`` and
#: ``$workers.cpuTimeMs``; ``$workers.scriptName`` is what third-party telemetry queries send.
WORKERS_LOGS_KEYS = {
    "Outcome": "$workers.outcome",
    "ScriptName": "$workers.scriptName",
    "CPUTimeMs": "$workers.cpuTimeMs",
    "WallTimeMs": "$workers.wallTimeMs",
    "EventType": "$workers.eventType",
}


def _breaks(rules: Iterable[ResolvedRule]) -> str:
    return f"; breaks {', '.join(sorted({rule.id for rule in rules}))}"


def observability_rules(spec: Spec) -> list[ResolvedRule]:
    """The rules coverage gives to a Workers Observability alert."""
    from extalerts.coverage import option_a

    return [rule for rule in spec.rules if option_a(rule).alert_type == WORKERS_OBSERVABILITY_ALERT]


def _logpush_field(spec: Spec, name: str) -> str:
    field = spec.catalog.get(name)
    return logpush_field_of(field) if field is not None else name


def workers_of(rule: ResolvedRule, spec: Spec) -> list[str]:
    """The Workers a rule watches: those its filter pins ``ScriptName`` to, else ``logpush.scripts``."""
    if rule.filter is not None:
        top = to_nnf(rule.filter)
        for item in top.items if isinstance(top, And) else (top,):
            if not isinstance(item, Predicate) or item.negated or item.op not in (Op.EQ, Op.IN):
                continue
            if _logpush_field(spec, item.field) == "ScriptName":
                values = item.value if isinstance(item.value, tuple) else (item.value,)
                return sorted(str(value) for value in values)
    return list(spec.logpush.scripts)


def _reads_invocation_logs(rule: ResolvedRule, spec: Spec) -> bool:
    """Whether the rule reads a field of the invocation log (anything but what ``console.log`` wrote)."""
    from extalerts.filter import fields_of

    names = fields_of(rule.filter) + fields_of(rule.ratio_match) + list(rule.rule.group_by)
    signal_field = getattr(rule.rule.signal, "field", None)
    if signal_field:
        names.append(signal_field)
    return not names or any(_logpush_field(spec, name) != "Logs" for name in names)


# ----------------------------------------------------------------------------------------------- Workers Logs


def _sampling_rate(observability: dict[str, Any]) -> float:
    """The share of requests whose logs are kept: the request and the logs sampling rates, each 1 when unset."""
    logs = observability.get("logs") or {}
    request_rate = observability.get("head_sampling_rate")
    logs_rate = logs.get("head_sampling_rate")
    return float(1 if request_rate is None else request_rate) * float(1 if logs_rate is None else logs_rate)


def _worker_findings(worker: str, rules: list[ResolvedRule], spec: Spec, settings: Any) -> Finding:
    subject = f"Worker {worker}"
    observability = getattr(settings, "observability", None)
    plain: dict[str, Any] = observability.model_dump(mode="json") if observability is not None else {}
    logs = plain.get("logs") or {}
    if not plain.get("enabled") or logs.get("enabled") is False:
        return Finding(
            False,
            subject,
            "has Workers Logs off: its Workers Observability alerts see no events" + _breaks(rules),
            WORKERS_LOGS_FIX,
        )
    invocation = [rule for rule in rules if _reads_invocation_logs(rule, spec)]
    if logs.get("invocation_logs") is False and invocation:
        return Finding(
            False,
            subject,
            "has invocation logs off: no event carries $workers.outcome or the request" + _breaks(invocation),
            WORKERS_LOGS_FIX,
        )
    rate = _sampling_rate(plain)
    counting = [rule for rule in rules if isinstance(rule.rule.signal, CountSignal)]
    if rate < 1 and counting:
        return Finding(
            False,
            subject,
            f"keeps the logs of {format_number(rate * 100)}% of requests (head_sampling_rate "
            f"{format_number(rate)}): the native alerts count a sample and fire late or never" + _breaks(counting),
            "set head_sampling_rate = 1 in its wrangler config and deploy it, or scale the recipes' thresholds",
        )
    return Finding(True, subject, f"has Workers Logs on, head_sampling_rate {format_number(rate)}")


# ----------------------------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class ExpectedAlert:
    """What a rule's Workers Observability alert should say, normalised for comparison."""

    name: str
    conditions: tuple[str, ...]
    group_by: tuple[str, ...]
    #: ``key operator value`` lines; None when the rule's filter has no one-to-one form (not compared).
    filters: tuple[str, ...] | None


def expected_alert(rule: ResolvedRule, spec: Spec) -> ExpectedAlert:
    """A minimal expectation of the rule's alert, until the recipes of ``render --provider cloudflare``
    replace it: name, conditions, group by and (when they map one to one) filters."""
    signal, thresholds = rule.rule.signal, rule.rule.thresholds
    comparison = f"{thresholds.operator} {format_number(thresholds.critical)}" if thresholds else "(no threshold)"
    if isinstance(signal, MeasureSignal):
        key = WORKERS_LOGS_KEYS.get(_logpush_field(spec, signal.field), signal.field)
        conditions: tuple[str, ...] = (f"{signal.aggregation}({key}) {comparison}",)
    else:
        conditions = (f"count {comparison}",)
    group_by = tuple(WORKERS_LOGS_KEYS.get(_logpush_field(spec, name), name) for name in rule.rule.group_by)
    return ExpectedAlert(observability_alert_name(rule), conditions, group_by, _expected_filters(rule, spec))


def _expected_filters(rule: ResolvedRule, spec: Spec) -> tuple[str, ...] | None:
    if rule.filter is None:
        return ()
    top = to_nnf(rule.filter)
    lines = []
    for item in top.items if isinstance(top, And) else (top,):
        if not isinstance(item, Predicate) or item.negated or item.op not in (Op.EQ, Op.IN):
            return None
        key = WORKERS_LOGS_KEYS.get(_logpush_field(spec, item.field))
        if key is None:
            return None
        values = item.value if isinstance(item.value, tuple) else (item.value,)
        lines.append(f"{key} {'equals' if item.op is Op.EQ else 'in'} {','.join(map(str, values))}")
    return tuple(sorted(lines))


def _live_form(alert: dict[str, Any]) -> ExpectedAlert:
    """The configured alert in the same form (the read is undocumented: keys are read leniently)."""
    conditions = []
    for condition in alert.get("conditions") or []:
        function = str(condition.get("function") or condition.get("type") or "count").lower()
        key = condition.get("key") or condition.get("field")
        operator = condition.get("operator") or condition.get("comparison")
        threshold = condition.get("threshold", condition.get("value"))
        value = format_number(threshold) if isinstance(threshold, int | float) else str(threshold)
        conditions.append(f"{function}({key}) {operator} {value}" if key else f"{function} {operator} {value}")
    filters = []
    for item in alert.get("filters") or []:
        value = item.get("value")
        shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        filters.append(f"{item.get('key')} {item.get('operation') or item.get('operator')} {shown}")
    group_by = alert.get("groupBy") or alert.get("group_by") or []
    return ExpectedAlert(
        str(alert.get("name", "")), tuple(conditions), tuple(map(str, group_by)), tuple(sorted(filters))
    )


def alert_drift(expected: ExpectedAlert, live: dict[str, Any]) -> list[str]:
    """Where a configured alert differs from its recipe, one phrase each (empty: it matches)."""
    found = _live_form(live)
    compared: list[tuple[str, tuple[str, ...] | None, tuple[str, ...] | None]] = [
        ("conditions", expected.conditions, found.conditions),
        ("group by", expected.group_by, found.group_by),
        ("filters", expected.filters, found.filters),
    ]
    drift = []
    for label, want, have in compared:
        if want is not None and sorted(want) != sorted(have or ()):
            drift.append(f"{label} {'; '.join(have or ()) or 'none'} (recipe: {'; '.join(want) or 'none'})")
    return drift


def _configured_alerts(api: CloudflareApi) -> list[dict[str, Any]] | None:
    """The account's Workers Observability alerts, or None when the read is not served."""
    path = ALERTS_PATH.format(account=api.account_id)
    try:
        answer = api.call(
            "read Workers Observability alerts (undocumented endpoint)", lambda c: c.get(path, cast_to=object)
        )
    except ApiError as exc:
        unrouted = exc.status == 400 and any(e.endswith(_NO_ROUTE_CODES) for e in exc.errors)
        if exc.status in _NOT_SERVED_STATUSES or unrouted:
            return None
        raise
    result = answer.get("result") if isinstance(answer, dict) else answer
    return [alert for alert in result or [] if isinstance(alert, dict)]


def _drift_findings(rules: list[ResolvedRule], spec: Spec, api: CloudflareApi) -> list[Finding]:
    configured = _configured_alerts(api)
    if configured is None:
        return [
            Finding(
                True,
                "Workers Observability alerts",
                f"not available: the account does not answer GET {ALERTS_PATH} ({UNDOCUMENTED}); drift not checked",
            )
        ]
    by_name = {str(alert.get("name")): alert for alert in configured}
    findings = []
    for rule in rules:
        expected = expected_alert(rule, spec)
        subject = f"Workers Observability alert {expected.name!r}"
        live = by_name.get(expected.name)
        if live is None:
            findings.append(
                Finding(
                    False,
                    subject,
                    f"is not configured ({UNDOCUMENTED})" + _breaks([rule]),
                    "create it in the dashboard from its recipe (`extalerts render --provider cloudflare`)",
                )
            )
            continue
        drift = alert_drift(expected, live)
        if drift:
            findings.append(
                Finding(
                    False,
                    subject,
                    f"differs from its recipe ({UNDOCUMENTED}): {'; '.join(drift)}" + _breaks([rule]),
                    "edit it in the dashboard to match the recipe",
                )
            )
        else:
            findings.append(Finding(True, subject, f"matches its recipe ({UNDOCUMENTED})"))
    return findings


# ----------------------------------------------------------------------------------------------- entry point


def cloudflare_doctor(spec: Spec, api: CloudflareApi) -> list[Finding]:
    rules = observability_rules(spec)
    if not rules:
        return [Finding(True, "Workers Observability alerts", "carry no rule of this spec: nothing to check")]
    watched: dict[str, list[ResolvedRule]] = {}
    for rule in rules:
        for worker in workers_of(rule, spec):
            watched.setdefault(worker, []).append(rule)
    account = api.account_id
    findings = []
    for worker, worker_rules in sorted(watched.items()):

        def read_settings(client: Any, script: str = worker) -> Any:
            return client.workers.scripts.settings.get(script, account_id=account)

        try:
            settings = api.call("read Worker settings", read_settings)
        except ApiError as exc:
            if exc.status != 404:
                raise
            findings.append(
                Finding(
                    False,
                    f"Worker {worker}",
                    "does not exist in this account" + _breaks(worker_rules),
                    "check logpush.scripts and the rules' ScriptName filters",
                )
            )
            continue
        findings.append(_worker_findings(worker, worker_rules, spec, settings))
    return findings + _drift_findings(rules, spec, api)
