"""What a Cloudflare Workers Observability alert (beta) can carry of a rule, as a recipe to enter.

The alerts are created in the dashboard only (cloudflare-docs ``workers/observability/alerts.mdx``,
"Create an alert"; the page documents no API for them), so extalerts writes each one as a recipe
(`render --provider cloudflare`) and says here, per rule, what the alert keeps and what it loses.

What an alert is, from that page: conditions of type Count ("the total number of log events matching
your filters") or Calculation (an aggregation of a numeric field), combined with AND or OR; filters
of key / operator / value; Group By; four timings; channels email, webhooks, PagerDuty. It reads
Workers Logs, whose events are not Logpush's ``workers_trace_events`` records: each invocation writes
one *invocation log* and each ``console.log`` one *custom log* of its own (``workers-logs.mdx``: "Each
Workers invocation returns a single invocation log"; its pricing example counts "2 logs per request"
for "1 invocation log and 1 `console.log`"). A JSON object logged with ``console.log`` has its keys
extracted ("your logs can be filtered against the keys `user_id` and `user_email`"), so the
structured line's keys are keys of the custom log. The pages do not say a custom log carries the
invocation's fields, so a filter never mixes the two kinds of event here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from extalerts.fields import WORKERS_TRACE_EVENT_FIELDS, FieldCatalog, FieldType
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, Scalar, fields_of, to_nnf
from extalerts.numbers import format_number
from extalerts.observability_timings import Timings, timings_for
from extalerts.spec.loader import ResolvedRule
from extalerts.spec.models import (
    AbsenceSignal,
    Aggregation,
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    Level,
    MeasureSignal,
    RatioSignal,
)

ALERTS_PAGE = "cloudflare-docs workers/observability/alerts.mdx"
LOGS_PAGE = "cloudflare-docs workers/observability/logs/workers-logs.mdx"
QUERY_BUILDER_PAGE = "cloudflare-docs workers/observability/query-builder.mdx"
WEBHOOKS_PAGE = "cloudflare-docs notifications/get-started/configure-webhooks.mdx"

#: A rule whose filter is an OR becomes one alert per branch; more than this is not a recipe to enter.
MAX_ALERTS_PER_RULE = 4


class AlertVerdict(StrEnum):
    YES = "yes"
    PARTLY = "partly"
    NO = "no"


class LogEvent(StrEnum):
    """Which Workers Logs event carries a key."""

    INVOCATION = "invocation log"
    CUSTOM = "custom log"
    ANY = "every log"


@dataclass(frozen=True)
class LogsKey:
    """Where a rule's field is in Workers Logs: its key and the page that names it, or why it is not carried."""

    key: str | None
    event: LogEvent
    source: str
    #: False when the key is the one the dashboard lists but no page names it: confirm it when entering.
    documented: bool = True


def _not_carried(why: str) -> LogsKey:
    return LogsKey(None, LogEvent.ANY, why, documented=False)


def _unnamed(key: str) -> LogsKey:
    return LogsKey(
        key,
        LogEvent.INVOCATION,
        f"no Workers Logs page names this key; pick `{key}` in the key list and confirm it",
        documented=False,
    )


_NO_KEY = "no Workers Logs page names a key for it"

#: Every ``workers_trace_events`` field, by the catalog's name, to its Workers Logs key.
LOGPUSH_TO_WORKERS_LOGS: dict[str, LogsKey] = {
    "Outcome": LogsKey(
        "$workers.outcome",
        LogEvent.INVOCATION,
        f'{ALERTS_PAGE} (Filters): "you could add a filter for `$workers.outcome equals exception`"',
    ),
    "CPUTimeMs": LogsKey(
        "$workers.cpuTimeMs",
        LogEvent.INVOCATION,
        f'{ALERTS_PAGE} (Conditions): "p99($workers.cpuTimeMs) > 500"',
    ),
    "Event.Response.Status": LogsKey(
        "$workers.event.response.status",
        LogEvent.INVOCATION,
        f'{QUERY_BUILDER_PAGE} (Example): "We can add a filter for `$workers.event.response.status`"',
    ),
    # The alerts page groups by "scriptName" "so an alert can fire for one Worker without affecting
    # others": every event of a Worker carries it.
    "ScriptName": LogsKey(
        "$workers.scriptName",
        LogEvent.ANY,
        f'{ALERTS_PAGE} (Group By): "grouping by `scriptName` evaluates thresholds independently per Worker"',
    ),
    "EventType": _unnamed("$workers.eventType"),
    "Entrypoint": _unnamed("$workers.entrypoint"),
    "WallTimeMs": _unnamed("$workers.wallTimeMs"),
    "Event.Request.Method": _unnamed("$workers.event.request.method"),
    "Event.Request.URL": _unnamed("$workers.event.request.url"),
    # A console.log line is a custom log of its own; its text is the message.
    "Logs.Message": LogsKey(
        "$metadata.message",
        LogEvent.CUSTOM,
        f'{QUERY_BUILDER_PAGE} (Filter): "you may choose `$workers.cpuTimeMs` or `$metadata.message`"; '
        f'{LOGS_PAGE}: `console.log("user_id: " + 123)` is logged as `{{message: "user_id: 123"}}`',
    ),
    "Logs.Level": _not_carried(f"{_NO_KEY} (a console method's level)"),
    # Exceptions are stored ("Logs include [...] errors, and uncaught exceptions") but not under a named key.
    "Exceptions.Name": _not_carried(f"{LOGS_PAGE} stores uncaught exceptions, but {_NO_KEY}"),
    "Exceptions.Message": _not_carried(f"{LOGS_PAGE} stores uncaught exceptions, but {_NO_KEY}"),
    "ScriptTags": _not_carried(_NO_KEY),
    "DispatchNamespace": _not_carried(_NO_KEY),
    "ScriptVersion.ID": _not_carried(_NO_KEY),
    "ScriptVersion.Tag": _not_carried(_NO_KEY),
    "ScriptVersion.Message": _not_carried(_NO_KEY),
    "Event.RayID": _not_carried(_NO_KEY),
    # Every event has its time; the alert's window ("Include data from the last") reads it.
    "EventTimestampMs": LogsKey(None, LogEvent.ANY, f"{ALERTS_PAGE} (Timings): the window of each check"),
}
assert {f.name for f in WORKERS_TRACE_EVENT_FIELDS} == set(LOGPUSH_TO_WORKERS_LOGS), "map every Logpush field"


def workers_logs_key(name: str, catalog: FieldCatalog) -> LogsKey:
    """The Workers Logs key of a rule field: a Logpush field, or a key of the structured log line."""
    known = LOGPUSH_TO_WORKERS_LOGS.get(name)
    if known is not None:
        return known
    derived = catalog.get(name)
    if derived is None or derived.derived_key is None:
        return _not_carried(f"`{name}` is not a field of the spec")
    return LogsKey(
        derived.derived_key,
        LogEvent.CUSTOM,
        f"{LOGS_PAGE} (Logging structured JSON objects): "
        '"your logs can be filtered against the keys `user_id` and `user_email`"',
    )


# ------------------------------------------------------------------------------------------ recipe


@dataclass(frozen=True)
class AlertFilter:
    """One filter row: the page's Key / Operator / Value (operators as the Query Builder names them)."""

    key: str
    operator: str
    value: str | None
    #: The rule field it comes from, for the reviewer.
    field: str


@dataclass(frozen=True)
class Condition:
    """One condition row: Count, or a Calculation of a function over a numeric key."""

    type: str
    function: str
    key: str | None
    operator: str
    threshold: float
    #: How the threshold was derived from the rule's, when it differs (head sampling).
    scaled_from: str | None = None


@dataclass(frozen=True)
class Channel:
    """A notification channel of the alert: what to pick in the dashboard, never a secret."""

    type: str
    target: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class AlertRecipe:
    name: str
    rule_id: str
    title: str
    #: "critical" or "warning": the rule level this alert stands for.
    level: str
    severity: str
    runbook: str | None
    condition: Condition
    filters: tuple[AlertFilter, ...]
    group_by: tuple[str, ...]
    timings: Timings
    channels: tuple[Channel, ...]
    notify_when_fired: bool
    notify_when_resolved: bool
    head_sampling_rate: float

    @property
    def spec_level(self) -> Level:
        """The spec's level this alert stands for (targets take levels by these names)."""
        return next(level for level, name in _LEVEL_NAMES.items() if name == self.level)


@dataclass(frozen=True)
class Assessment:
    """What Option A's Workers Observability alerts carry of one rule."""

    verdict: AlertVerdict
    alerts: tuple[AlertRecipe, ...] = ()
    #: Each field the rule reads, to its Workers Logs key (or why it is not carried).
    fields: dict[str, LogsKey] = field(default_factory=dict)
    #: Parts of the rule no alert carries (the verdict is "partly" when there are any).
    lost: tuple[str, ...] = ()
    #: Keys and channels to check in the dashboard while entering the recipe.
    confirm: tuple[str, ...] = ()
    #: Why no alert carries the rule (verdict "no").
    reason: str = ""


_OPERATORS = {Op.EQ: "Equals", Op.GT: "Greater", Op.GE: "Greater or equals", Op.LT: "Less", Op.LE: "Less or equals"}
#: ``not (a > b)`` is ``a <= b`` for a present numeric field.
_NEGATED_ORDER = {Op.GT: Op.LE, Op.GE: Op.LT, Op.LT: Op.GE, Op.LE: Op.GT}
_FUNCTIONS = {
    Aggregation.AVG: "Average",
    Aggregation.SUM: "Sum",
    Aggregation.MIN: "Min",
    Aggregation.MAX: "Max",
    Aggregation.MEDIAN: "Median (P50)",
    Aggregation.P75: "P75",
    Aggregation.P90: "P90",
    Aggregation.P95: "P95",
    Aggregation.P99: "P99",
}


_LEVEL_NAMES = {Level.ALERT: "critical", Level.WARNING: "warning"}


class _NotCarried(Exception):
    """A part of the rule no alert can express; its message is the reason."""


def _value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    return value


def _filters_for(predicate: Predicate, key: LogsKey, field_type: FieldType | None) -> list[AlertFilter]:
    """The filter rows of one predicate. ``in`` becomes a Regex (the Query Builder's string operators
    are "Equals, Does not equal, Includes, Does not include, Regex, Exists, Does not exist, Starts
    with"); ``not in`` one "Does not equal" per value, as filters are ANDed."""
    assert key.key is not None
    name, op, value, negated = predicate.field, predicate.op, predicate.value, predicate.negated
    if op is Op.EXISTS:
        return [AlertFilter(key.key, "Does not exist" if negated else "Exists", None, name)]
    if op is Op.IN:
        assert isinstance(value, tuple)
        if negated:
            return [AlertFilter(key.key, "Does not equal", _value(v), name) for v in value]
        if field_type is not None and field_type.is_numeric:
            raise _NotCarried(f"`{name} in [...]` on a number: the Regex operator is for strings only")
        pattern = "^(" + "|".join(re.escape(_value(v)) for v in value) + ")$"
        return [AlertFilter(key.key, "Regex", pattern, name)]
    assert value is not None
    assert not isinstance(value, tuple)
    if op is Op.CONTAINS:
        return [AlertFilter(key.key, "Does not include" if negated else "Includes", _value(value), name)]
    if op is Op.EQ:
        return [AlertFilter(key.key, "Does not equal" if negated else "Equals", _value(value), name)]
    ordered = _NEGATED_ORDER[op] if negated else op
    return [AlertFilter(key.key, _OPERATORS[ordered], _value(value), name)]


def _branches(expr: Expr | None) -> list[list[Predicate]]:
    """The filter as an OR of ANDs of predicates (each AND becomes one alert's filters)."""
    if expr is None:
        return [[]]
    nnf = to_nnf(expr)

    def expand(node: Expr) -> list[list[Predicate]]:
        if isinstance(node, Predicate):
            return [[node]]
        if isinstance(node, Or):
            return [branch for item in node.items for branch in expand(item)]
        assert isinstance(node, And)
        product: list[list[Predicate]] = [[]]
        for item in node.items:
            product = [left + right for left in product for right in expand(item)]
            if len(product) > MAX_ALERTS_PER_RULE:
                break
        return product

    return expand(nnf)


def _signal_field(rule: ResolvedRule) -> str | None:
    signal = rule.rule.signal
    return signal.field if isinstance(signal, MeasureSignal | CardinalitySignal) else None


def _condition(rule: ResolvedRule, catalog: FieldCatalog, threshold: float, rate: float, lost: list[str]) -> Condition:
    """The condition row, its threshold scaled for head sampling where that keeps its meaning.

    workers-logs.mdx ("Head-based sampling"): a rate of 0.01 "means one out of every one hundred
    requests is logged", and "All logs within the context of the request are collected"; so a count
    or a sum of what is logged is the rate times the true one, an average or a percentile of the
    logged requests estimates the true one unscaled, and a distinct count, a min or a max does neither.
    """
    signal = rule.rule.signal
    thresholds = rule.rule.thresholds
    assert thresholds is not None
    operator = thresholds.operator
    if isinstance(signal, CountSignal):
        kind, function, key, scaling = "Count", "Count", None, "scale"
    elif isinstance(signal, CardinalitySignal):
        kind, function, scaling = "Calculation", "Count Distinct", "cannot"
        key = workers_logs_key(signal.field, catalog).key
    else:
        assert isinstance(signal, MeasureSignal)
        kind, function = "Calculation", _FUNCTIONS[signal.aggregation]
        key = workers_logs_key(signal.field, catalog).key
        if signal.aggregation is Aggregation.SUM:
            scaling = "scale"
        elif signal.aggregation in (Aggregation.MIN, Aggregation.MAX):
            scaling = "cannot"
        else:
            scaling = "unchanged"
    sampled = f"under head sampling at {format_number(rate)}"
    if rate >= 1 or scaling == "unchanged":
        return Condition(kind, function, key, operator, threshold)
    if scaling == "cannot":
        lost.append(f"{function} {sampled}: what the logged requests show does not scale to all requests")
        return Condition(kind, function, key, operator, threshold)
    if threshold * rate < 1:
        lost.append(
            f"{function} {operator} {format_number(threshold)} {sampled}: a threshold of a few events cannot be "
            f"scaled, as each request is logged with probability {format_number(rate)}; set head_sampling_rate "
            "to 1 on the Worker"
        )
        return Condition(kind, function, key, operator, threshold)
    scaled = round(threshold * rate, 6)
    return Condition(
        kind, function, key, operator, scaled, f"{format_number(threshold)} x head_sampling_rate {format_number(rate)}"
    )


def _channels(
    rule: ResolvedRule, level: Level, lost: list[str], confirm: list[str]
) -> tuple[tuple[Channel, ...], bool]:
    """The channels of the targets that take ``level``, and whether to "Notify when resolved": that switch
    and "Notify when fired" apply to every channel of the alert (alerts.mdx, "Notifications")."""
    channels: list[Channel] = []
    with_recovery: list[str] = []
    without_recovery: list[str] = []
    for name, target in rule.targets:
        if level not in target.levels:
            continue
        (with_recovery if Level.RECOVERY in target.levels else without_recovery).append(name)
        if target.email is not None:
            channels.append(Channel("Email", name, ", ".join(target.email.to)))
        elif target.pagerduty is not None:
            channels.append(Channel("PagerDuty", name, target.pagerduty.service))
        elif target.webhook is not None:
            channels.append(Channel("Webhooks", name, f"extalerts-{name}", f"posts to {target.webhook.url}"))
        elif target.slack is not None:
            # Not a channel of the alerts; a Notifications webhook destination posts to Slack
            # (configure-webhooks.mdx, "Slack": "The secret is part of the URL").
            channel = target.slack.channel if target.slack.channel.startswith("#") else f"#{target.slack.channel}"
            channels.append(Channel("Webhooks", name, f"extalerts-{name}", f"the Slack incoming webhook of {channel}"))
            confirm.append(
                f"{name}: Slack is not one of the alert's channels (email, webhooks, PagerDuty); create the "
                f"webhook destination extalerts-{name} with the incoming-webhook URL of {channel} ({WEBHOOKS_PAGE}, "
                '"Slack"), and keep the URL out of the repository: it holds the secret'
            )
    if with_recovery and without_recovery:
        lost.append(
            f'recovery notices stay away from {", ".join(without_recovery)} in the rule, but "Notify when '
            'resolved" applies to every channel of an alert'
        )
    return tuple(channels), bool(with_recovery)


#: The signals no alert can carry, and why.
_SIGNALS_NOT_CARRIED: tuple[tuple[type[RatioSignal | ChangeSignal | AbsenceSignal], str], ...] = (
    (
        RatioSignal,
        "a ratio of two filtered counts: an alert's conditions are Count or Calculation over one set "
        f'of filters, combined with AND or OR, not divided ({ALERTS_PAGE}, "Combining multiple conditions")',
    ),
    (
        ChangeSignal,
        "a change against an earlier window: each check reads one window, "
        f'"Include data from the last" ({ALERTS_PAGE}, "Timings"), and no condition compares two',
    ),
    (
        AbsenceSignal,
        "a script that sends nothing has no events, so Group By has no group for it to fire on, and "
        f"the page does not say what a Count condition is over no events ({ALERTS_PAGE}, "
        '"Group By" and "Conditions"); Workers Logs is also not the Logpush feed whose silence the rule '
        "watches",
    ),
)


def assess(rule: ResolvedRule, catalog: FieldCatalog) -> Assessment:
    """Whether Workers Observability alerts can carry ``rule``, their recipes, and what they lose."""
    signal = rule.rule.signal
    names = list(dict.fromkeys(fields_of(rule.filter) + fields_of(rule.ratio_match) + list(rule.rule.group_by)))
    if (signal_field := _signal_field(rule)) is not None:
        names.append(signal_field)
    keys = {name: workers_logs_key(name, catalog) for name in dict.fromkeys(names)}

    for kind, reason in _SIGNALS_NOT_CARRIED:
        if isinstance(signal, kind):
            return Assessment(AlertVerdict.NO, fields=keys, reason=reason)

    missing = [f"{name} ({key.source})" for name, key in keys.items() if key.key is None and name != "EventTimestampMs"]
    if missing:
        return Assessment(AlertVerdict.NO, fields=keys, reason="Workers Logs does not carry " + "; ".join(missing))

    lost: list[str] = []
    confirm = [f"`{key.key}` for {name}: {key.source}" for name, key in keys.items() if not key.documented]
    branches = _branches(rule.filter)
    if len(branches) > MAX_ALERTS_PER_RULE:
        return Assessment(
            AlertVerdict.NO,
            fields=keys,
            reason=f"the filter is an OR of more than {MAX_ALERTS_PER_RULE} branches, one alert each",
        )
    thresholds = rule.rule.thresholds
    assert thresholds is not None
    if len(branches) > 1:
        # Filters are ANDed (query-builder.mdx: "Adding multiple filters combines them with an AND
        # operator"), so each branch of an OR is an alert of its own. Their counts add up to the rule's
        # only when nothing but "more than 0" is asked: one event in any branch fires the rule and that
        # branch's alert alike.
        any_event = thresholds.operator == ">" and thresholds.critical == 0 and thresholds.warning is None
        if not isinstance(signal, CountSignal) or not any_event:
            return Assessment(
                AlertVerdict.NO,
                fields=keys,
                reason="the filter is an OR of clauses, and filters are ANDed "
                f'({QUERY_BUILDER_PAGE}: "Adding multiple filters combines them with an AND operator"); one '
                "alert per clause adds up to the rule only for a count > 0",
            )

    rate = rule.source.cloudflare.head_sampling_rate
    if thresholds.critical_recovery is not None or thresholds.warning_recovery is not None:
        lost.append(
            'the recovery thresholds: an alert resolves when its condition passes again, for "Resolve after '
            f'passing for" ({ALERTS_PAGE}, "Timings"), not past a second value'
        )
    levels = [(Level.ALERT, thresholds.critical)]
    if thresholds.warning is not None:
        # An alert has one Firing state (alerts.mdx, "Alert states"): the warning level is an alert of its own.
        levels.append((Level.WARNING, thresholds.warning))
        confirm.append(
            f"the warning alert fires whenever the value is {thresholds.operator} {format_number(thresholds.warning)}, "
            "whether or not the critical one fires too, where a monitor is in one state at a time"
        )
    if thresholds.operator in ("<", "<="):
        # The quietest window has no events at all; the page says nothing of a check over none.
        confirm.append(
            f"a {thresholds.operator} condition: the page does not say what a check over no events gives, so try "
            '"Check Now" on a quiet Worker'
            + (" (and Group By has no group for a value with no events)" if rule.rule.group_by else "")
        )

    group_keys = [keys[name] for name in rule.rule.group_by]
    measured = keys[signal_field] if signal_field is not None else None
    filters_by_branch: list[tuple[AlertFilter, ...]] = []
    for index, branch in enumerate(branches, start=1):
        rows: list[AlertFilter] = []
        events = {k.event for k in group_keys if k.event is not LogEvent.ANY}
        if measured is not None and measured.event is not LogEvent.ANY:
            events.add(measured.event)
        kept = branch
        branch_events = {keys[p.field].event for p in branch} - {LogEvent.ANY}
        if len(branch_events | events) > 1:
            # A structured-line key and an invocation field: only the custom log has the key, and the
            # pages do not say it also has the invocation's fields. Keep the custom log's side.
            if LogEvent.INVOCATION in events:
                return Assessment(
                    AlertVerdict.NO,
                    fields=keys,
                    reason="it reads invocation fields and structured-line keys together, which Workers Logs "
                    f"keeps on separate events ({LOGS_PAGE}: each request writes an invocation log and each "
                    "console.log a log of its own)",
                )
            dropped = sorted({p.field for p in branch if keys[p.field].event is LogEvent.INVOCATION})
            kept = [p for p in branch if keys[p.field].event is not LogEvent.INVOCATION]
            lost.append(
                f"the clauses on {', '.join(dropped)}"
                + (f" (alert {index})" if len(branches) > 1 else "")
                + f": invocation fields, while the other keys are on the structured line's own log ({LOGS_PAGE}: "
                '"Each request emits 1 invocation log and 1 `console.log`"); the pages do not say a custom '
                "log carries its invocation's fields"
            )
        for predicate in kept:
            field_def = catalog.get(predicate.field)
            try:
                rows.extend(_filters_for(predicate, keys[predicate.field], field_def.type if field_def else None))
            except _NotCarried as exc:
                return Assessment(AlertVerdict.NO, fields=keys, reason=str(exc))
        filters_by_branch.append(tuple(rows))

    alerts: list[AlertRecipe] = []
    for level, threshold in levels:
        condition = _condition(rule, catalog, threshold, rate, lost)
        channels, resolved = _channels(rule, level, lost, confirm)
        if not channels:
            lost.append(f"the {_LEVEL_NAMES[level]} level: none of the rule's targets takes it")
            continue
        for index, branch_filters in enumerate(filters_by_branch, start=1):
            name = rule.id if len(branches) == 1 else f"{rule.id}-{index}"
            alerts.append(
                AlertRecipe(
                    name=name if level is Level.ALERT else f"{name}-warning",
                    rule_id=rule.id,
                    title=rule.rule.title,
                    level=_LEVEL_NAMES[level],
                    severity=rule.rule.severity.value,
                    runbook=rule.rule.runbook,
                    condition=condition,
                    filters=branch_filters,
                    group_by=tuple(k.key for k in group_keys if k.key is not None),
                    timings=timings_for(rule),
                    channels=channels,
                    notify_when_fired=True,
                    notify_when_resolved=resolved,
                    head_sampling_rate=rate,
                )
            )
    booleans = sorted(name for name in keys if (f := catalog.get(name)) is not None and f.type is FieldType.BOOLEAN)
    for name in booleans:
        confirm.append(
            f"`{keys[name].key}` for {name} is a boolean: the Query Builder lists operators for numeric and string "
            "keys only; check that Equals true/false matches it"
        )
    if isinstance(signal, CountSignal) and any(keys[p.field].event is LogEvent.CUSTOM for b in branches for p in b):
        confirm.append(
            'Count counts log events: each console.log line is one (workers-logs.mdx pricing example: "2 logs per '
            'request"), where the rule counts invocations; they agree while a request logs the line once'
        )
    return Assessment(
        AlertVerdict.PARTLY if lost else AlertVerdict.YES,
        alerts=tuple(alerts),
        fields=keys,
        lost=tuple(dict.fromkeys(lost)),
        confirm=tuple(dict.fromkeys(confirm)),
    )
