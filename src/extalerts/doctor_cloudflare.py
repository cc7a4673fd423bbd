"""``extalerts doctor --provider cloudflare``: can the Workers Observability alerts that carry rules (Option A)
see what those rules count? Read-only.

Per Worker named by such a rule (its ``ScriptName`` filter, else the spec's ``logpush.scripts``):

- Workers Logs is on. cloudflare-docs ``workers/observability/alerts.mdx``: "Alerts query the Workers
  Observability dataset, which requires Workers Logs to be enabled", with the wrangler snippet
  ``observability.enabled`` / ``observability.logs.invocation_logs``. Read through the documented script
  settings (``workers.scripts.settings.get``, the SDK's ``ScriptSetting.observability``).
- Its sampling. ``workers-logs.mdx``: "Head-based sampling allows you to log a percentage of incoming
  requests"; "If head_sampling_rate is unspecified, it is configured to a default value of 1 (100%)". A rule
  that counts events then counts a sample.

  The recipes scale count thresholds to the spec's ``sources.<name>.cloudflare.head_sampling_rate``; a live
  rate that differs is a problem naming the recipe thresholds it makes wrong (the recipes re-computed at the
  live rate), or the alerts it leaves uncountable.

Then, when the account answers ``GET /accounts/{id}/workers/observability/alerts`` (UNDOCUMENTED: third-party
reports only), each configured alert is compared, by name, with its recipe (:mod:`extalerts.observability_alerts`,
the same values ``render --provider cloudflare`` writes; :func:`alert_drift`); a 404, 405 or unrouted answer
there means "not available", never a failure. Nothing is ever written to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from extalerts.doctor import Finding
from extalerts.errors import ApiError
from extalerts.filter import And, Op, Predicate, to_nnf
from extalerts.numbers import format_number
from extalerts.observability_alerts import AlertFilter, AlertRecipe, Condition, assess
from extalerts.providers.cloudflare_api import CloudflareApi
from extalerts.spec.loader import ResolvedRule, Spec, logpush_field_of

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


def _breaks(rules: Iterable[ResolvedRule]) -> str:
    return f"; breaks {', '.join(sorted({rule.id for rule in rules}))}"


def observability_recipes(spec: Spec) -> list[tuple[ResolvedRule, tuple[AlertRecipe, ...]]]:
    """The rules coverage gives to Workers Observability alerts, with the recipes' alerts of each."""
    from extalerts.coverage import OptionA, option_a

    carried = []
    for rule in spec.rules:
        verdict = option_a(rule, spec.catalog)
        if verdict.option_a is not OptionA.NO and verdict.observability is not None and verdict.observability.alerts:
            carried.append((rule, verdict.observability.alerts))
    return carried


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


def _condition_text(condition: Condition) -> str:
    measured = f"{condition.function}({condition.key})" if condition.key else condition.function
    return f"{measured} {condition.operator} {format_number(condition.threshold)}"


def _at_rate(rule: ResolvedRule, rate: float) -> ResolvedRule:
    """The rule as if its source's Workers were sampled at ``rate``."""
    cloudflare = rule.source.cloudflare.model_copy(update={"head_sampling_rate": rate})
    return dataclasses.replace(rule, source=rule.source.model_copy(update={"cloudflare": cloudflare}))


def _recipes_wrong_at(rate: float, rules: list[ResolvedRule], spec: Spec) -> tuple[list[str], list[str]]:
    """What the recipes, written for the spec's head_sampling_rate, get wrong at the live ``rate``: the thresholds
    that then read differently, and the alerts whose condition sampling at ``rate`` cannot scale at all."""
    wrong: list[str] = []
    unscalable: list[str] = []
    for rule in rules:
        written = assess(rule, spec.catalog)
        live = assess(_at_rate(rule, rate), spec.catalog)
        live_conditions = {alert.name: alert.condition for alert in live.alerts}
        newly_lost = set(live.lost) - set(written.lost)
        for alert in written.alerts:
            now = live_conditions.get(alert.name)
            if now is not None and now.threshold != alert.condition.threshold:
                wrong.append(
                    f"{alert.name} {_condition_text(alert.condition)} (at {format_number(rate)}: "
                    f"{now.operator} {format_number(now.threshold)})"
                )
            elif newly_lost:
                unscalable.append(f"{alert.name} {_condition_text(alert.condition)}")
    return wrong, unscalable


def _sampling_finding(worker: str, rate: float, rules: list[ResolvedRule], spec: Spec) -> Finding:
    """The live rate against the spec's ``sources.<name>.cloudflare.head_sampling_rate``, which the recipes'
    thresholds were scaled for."""
    subject = f"Worker {worker}"
    shown = f"head_sampling_rate {format_number(rate)}"
    differing = [rule for rule in rules if rule.source.cloudflare.head_sampling_rate != rate]
    if not differing:
        return Finding(True, subject, f"has Workers Logs on, {shown}" + (", as the spec says" if rate < 1 else ""))
    # One setting per source the differing rules read (usually one).
    settings = {
        f"sources.{rule.source_name}.cloudflare.head_sampling_rate": rule.source.cloudflare.head_sampling_rate
        for rule in differing
    }
    spec_says = ", ".join(f"{name} {format_number(value)}" for name, value in sorted(settings.items()))
    said = f"keeps the logs of {format_number(rate * 100)}% of requests ({shown}) where the spec says {spec_says}"
    wrong, unscalable = _recipes_wrong_at(rate, differing, spec)
    if not wrong and not unscalable:
        return Finding(True, subject, f"has Workers Logs on; {said}, which changes no recipe")
    parts = []
    if wrong:
        parts.append(f"recipe thresholds now wrong: {', '.join(wrong)}")
    if unscalable:
        parts.append(f"sampling at {format_number(rate)} leaves these alerts uncountable: {', '.join(unscalable)}")
    wanted = ", ".join(sorted({format_number(value) for value in settings.values()}))
    fix = f"set head_sampling_rate = {wanted} in its wrangler config and deploy it"
    if not unscalable:
        fix += (
            f", or set {', '.join(sorted(settings))}: {format_number(rate)}, re-render the recipes "
            "(`extalerts render --provider cloudflare`) and enter the new thresholds"
        )
    return Finding(False, subject, f"{said}: " + "; ".join(parts) + _breaks(differing), fix)


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
    return _sampling_finding(worker, _sampling_rate(plain), rules, spec)


# ----------------------------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class ExpectedAlert:
    """A Workers Observability alert normalised for comparison: the recipe's, or the configured one."""

    name: str
    conditions: tuple[str, ...]
    group_by: tuple[str, ...]
    #: ``key operator value`` lines.
    filters: tuple[str, ...]


def _filter_line(key: Any, operator: Any, value: Any) -> str:
    """One filter as ``key operator value``, operator lowercased (the read's spelling is not documented)."""
    shown = "" if value is None else " " + (",".join(map(str, value)) if isinstance(value, list) else str(value))
    return f"{key} {str(operator).lower()}{shown}"


def _condition_line(function: str, key: Any, operator: Any, threshold: Any) -> str:
    value = format_number(threshold) if isinstance(threshold, int | float) else str(threshold)
    return f"{function.lower()}({key}) {operator} {value}" if key else f"{function.lower()} {operator} {value}"


def expected_alert(recipe: AlertRecipe) -> ExpectedAlert:
    """What the recipe says the alert is (``render --provider cloudflare`` writes the same values)."""
    condition = recipe.condition
    filters: tuple[AlertFilter, ...] = recipe.filters
    return ExpectedAlert(
        recipe.name,
        (_condition_line(condition.function, condition.key, condition.operator, condition.threshold),),
        recipe.group_by,
        tuple(sorted(_filter_line(row.key, row.operator, row.value) for row in filters)),
    )


def _live_form(alert: dict[str, Any]) -> ExpectedAlert:
    """The configured alert in the same form (the read is undocumented: keys are read leniently)."""
    conditions = [
        _condition_line(
            str(condition.get("function") or condition.get("type") or "count"),
            condition.get("key") or condition.get("field"),
            condition.get("operator") or condition.get("comparison"),
            condition.get("threshold", condition.get("value")),
        )
        for condition in alert.get("conditions") or []
    ]
    filters = [
        _filter_line(item.get("key"), item.get("operation") or item.get("operator"), item.get("value"))
        for item in alert.get("filters") or []
    ]
    group_by = alert.get("groupBy") or alert.get("group_by") or []
    return ExpectedAlert(
        str(alert.get("name", "")), tuple(conditions), tuple(map(str, group_by)), tuple(sorted(filters))
    )


def alert_drift(expected: ExpectedAlert, live: dict[str, Any]) -> list[str]:
    """Where a configured alert differs from its recipe, one phrase each (empty: it matches)."""
    found = _live_form(live)
    compared: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
        ("conditions", expected.conditions, found.conditions),
        ("group by", expected.group_by, found.group_by),
        ("filters", expected.filters, found.filters),
    ]
    drift = []
    for label, want, have in compared:
        if sorted(want) != sorted(have):
            drift.append(f"{label} {'; '.join(have) or 'none'} (recipe: {'; '.join(want) or 'none'})")
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


def _drift_findings(carried: list[tuple[ResolvedRule, tuple[AlertRecipe, ...]]], api: CloudflareApi) -> list[Finding]:
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
    for rule, recipes in carried:
        for recipe in recipes:
            findings.append(_drift_finding(rule, expected_alert(recipe), by_name.get(recipe.name)))
    return findings


def _drift_finding(rule: ResolvedRule, expected: ExpectedAlert, live: dict[str, Any] | None) -> Finding:
    subject = f"Workers Observability alert {expected.name!r}"
    if live is None:
        return Finding(
            False,
            subject,
            f"is not configured ({UNDOCUMENTED})" + _breaks([rule]),
            "create it in the dashboard from its recipe (`extalerts render --provider cloudflare`)",
        )
    drift = alert_drift(expected, live)
    if drift:
        return Finding(
            False,
            subject,
            f"differs from its recipe ({UNDOCUMENTED}): {'; '.join(drift)}" + _breaks([rule]),
            "edit it in the dashboard to match the recipe",
        )
    return Finding(True, subject, f"matches its recipe ({UNDOCUMENTED})")


# ----------------------------------------------------------------------------------------------- entry point


def cloudflare_doctor(spec: Spec, api: CloudflareApi) -> list[Finding]:
    carried = observability_recipes(spec)
    if not carried:
        return [Finding(True, "Workers Observability alerts", "carry no rule of this spec: nothing to check")]
    watched: dict[str, list[ResolvedRule]] = {}
    for rule, _ in carried:
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
    return findings + _drift_findings(carried, api)
