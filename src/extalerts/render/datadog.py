"""Render the spec into Datadog documents: monitors, log-based metrics, the structured-log pipeline
and the list of facets the monitors need (which no public API can create; README, "Datadog setup").

Python works out the provider semantics (queries, thresholds, group facets); the templates in
``templates/datadog/`` lay out the documents. Every document is parsed back and checked before it
is returned: against the ``datadog-api-client`` models (unknown or read-only fields, types, enums,
which the client itself would send unchecked) and against the query grammar.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from extalerts.drill.view import DRILL_DATADOG_QUERY
from extalerts.errors import RenderError
from extalerts.fields import Field, FieldType
from extalerts.filter import conjunction
from extalerts.filter.ast import Expr, Op, predicates
from extalerts.filter.datadog import to_datadog
from extalerts.numbers import format_number
from extalerts.render.datadog_query import (
    QueryError,
    formula_variables,
    parse_monitor_query,
    quote_query_argument,
)
from extalerts.render.files import RenderedFile, canonical_json
from extalerts.render.templates import Templates
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import (
    CHANGE_SHIFTS,
    AbsenceSignal,
    Aggregation,
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    Level,
    MeasureSignal,
    RatioSignal,
    Target,
    format_duration,
)

MANAGED_TAG = "managed-by:extalerts"
RULE_TAG_PREFIX = "extalerts-rule:"
PIPELINE_NAME = "extalerts: Workers structured log fields"
PIPELINE_PATH = "datadog/pipelines/extalerts-structured-logs.json"
FACETS_PATH = "datadog/facets.json"
#: Attributes the pipeline writes on the way to ``@extalerts.*``: the selected ``Message`` (an array of
#: strings) and the structured line as one string (README, "Structured log line").
SELECTED_MESSAGE_ATTRIBUTE = "extalerts_message"
STRUCTURED_LINE_ATTRIBUTE = "extalerts_line"
#: Evaluate a new group (a script, an operation) at once. Datadog's default is 60 s ("defaults to `60`
#: seconds", monitors/configuration): meant for hosts still starting, it would hide the first minute of
#: a new script's exceptions. Late Logpush batches are `evaluation_delay`'s business.
NEW_GROUP_DELAY = 0

#: Facet types by field type (logs/explorer/facets: dimensions are string or integer, measures
#: "(long) integer or double").
_FACET_TYPES = {
    FieldType.INTEGER: "integer",
    FieldType.NUMBER: "double",
    FieldType.STRING: "string",
    FieldType.BOOLEAN: "string",
    FieldType.STRING_LIST: "string",
}
#: Why a facet is needed, strongest first: one entry per attribute carries the strongest.
_FACET_REASONS = ("aggregation", "range search", "group by")

_AGGREGATIONS = {
    Aggregation.AVG: "avg",
    Aggregation.MIN: "min",
    Aggregation.MAX: "max",
    Aggregation.SUM: "sum",
    Aggregation.MEDIAN: "median",
    Aggregation.P75: "pc75",
    Aggregation.P90: "pc90",
    Aggregation.P95: "pc95",
    Aggregation.P99: "pc99",
}


def datadog_window(seconds: int) -> str:
    """A monitor time window: ``#m`` or ``#h`` (Datadog has no ``d``; 1d is written 24h)."""
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m"


def number(value: float) -> int | float:
    """Thresholds as the API echoes them: integral values without a trailing ``.0``."""
    return int(value) if float(value).is_integer() else float(value)


def handle(target: Target) -> list[str]:
    """Datadog ``@`` handles for a target."""
    if target.slack is not None:
        return [f"@slack-{target.slack.workspace}-{target.slack.channel.lstrip('#')}"]
    if target.pagerduty is not None:
        return [f"@pagerduty-{target.pagerduty.service}"]
    if target.email is not None:
        return [f"@{address}" for address in target.email.to]
    assert target.webhook is not None
    return [f"@webhook-{target.webhook.name}"]


def routing(rule: ResolvedRule) -> dict[str, list[str]]:
    """Handles per notification level, in the rule's target order, without duplicates."""
    levels: dict[str, list[str]] = {level.value: [] for level in Level}
    for _, target in rule.targets:
        for level in target.levels:
            for name in handle(target):
                if name not in levels[level.value]:
                    levels[level.value].append(name)
    return levels


def facet(field: Field) -> str:
    return "@" + field.datadog_attributes()[0]


def tag_name(field: Field) -> str:
    """A metric tag name for a group field: ``ScriptName`` → ``script_name``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", field.splunk_name)
    return snake.lower()


def metric_name(rule: ResolvedRule) -> str:
    return "extalerts." + rule.id.replace("-", "_") + ".events"


@dataclass(frozen=True)
class MonitorParts:
    """Everything the monitor template needs beyond the rule itself."""

    type: str
    query: str
    thresholds: dict[str, int | float]
    priority: int
    tags: list[str]
    routing: dict[str, list[str]]
    group_facets: list[str]
    variables: list[dict[str, Any]]
    on_missing_data: str | None
    group_retention: str | None
    renotify_minutes: int | None
    overrides: dict[str, Any]


class DatadogRenderer:
    def __init__(self, spec: Spec, templates: Templates) -> None:
        self.spec = spec
        self.templates = templates

    # ----------------------------------------------------------------------------------- queries

    def search(self, rule: ResolvedRule, *extra: Any) -> str:
        base = rule.source.datadog.query.strip()
        expr = conjunction(rule.filter, *extra)
        if expr is None:
            return base or "*"
        compiled = to_datadog(expr, self.spec.catalog)
        if not base:
            return compiled
        return f"{base} {compiled}" if _is_one_group(compiled) else f"{base} ({compiled})"

    def group_facets(self, rule: ResolvedRule) -> list[str]:
        return [facet(self.spec.catalog[name]) for name in rule.rule.group_by]

    def _variable(self, name: str, search: str, rule: ResolvedRule, compute: dict[str, Any]) -> dict[str, Any]:
        variable: dict[str, Any] = {
            "data_source": "logs",
            "name": name,
            "indexes": [rule.source.datadog.index],
            "compute": compute,
            "search": {"query": search},
        }
        if rule.rule.group_by:
            variable["group_by"] = [
                {"facet": g, "limit": 100, "sort": {"aggregation": "count", "order": "desc"}}
                for g in self.group_facets(rule)
            ]
        return variable

    def monitor_parts(self, rule: ResolvedRule) -> MonitorParts:
        r = rule.rule
        signal = r.signal
        window = datadog_window(r.window)
        thresholds = r.thresholds
        operator = thresholds.operator if thresholds else "<"
        critical = number(thresholds.critical) if thresholds else 1
        tail = f'.last("{window}") {operator} {format_number(critical)}'
        index = quote_query_argument(rule.source.datadog.index)
        by = f".by({quote_query_argument(','.join(self.group_facets(rule)))})" if r.group_by else ""
        variables: list[dict[str, Any]] = []
        monitor_type = "log alert"
        on_missing_data = None
        group_retention = None
        match signal:
            case CountSignal() | AbsenceSignal():
                query = f'logs({quote_query_argument(self.search(rule))}).index({index}).rollup("count"){by}{tail}'
                if isinstance(signal, AbsenceSignal):
                    on_missing_data = "show_and_notify_no_data"
                    if r.group_by:
                        group_retention = format_duration(max(signal.lookback, 3600))
            case CardinalitySignal(field=name) | MeasureSignal(field=name, aggregation=Aggregation.AVG):
                rollup = "cardinality" if isinstance(signal, CardinalitySignal) else "avg"
                measure = quote_query_argument(facet(self.spec.catalog[name]))
                query = (
                    f"logs({quote_query_argument(self.search(rule))}).index({index})"
                    f'.rollup("{rollup}", {measure}){by}{tail}'
                )
            case MeasureSignal(field=name, aggregation=aggregation):
                compute = {
                    "aggregation": _AGGREGATIONS[aggregation],
                    "metric": facet(self.spec.catalog[name]),
                }
                variables = [self._variable("signal", self.search(rule), rule, compute)]
                query = f'formula("signal"){tail}'
            case RatioSignal(min_events=min_events):
                variables = [
                    self._variable("matching", self.search(rule, rule.ratio_match), rule, {"aggregation": "count"}),
                    self._variable("total", self.search(rule), rule, {"aggregation": "count"}),
                ]
                total = f"cutoff_min(total, {min_events})" if min_events else "total"
                query = f"formula({quote_query_argument(f'matching / {total} * 100')}){tail}"
            case ChangeSignal(compare_to=shift):
                monitor_type = "query alert"
                groups = ",".join(tag_name(self.spec.catalog[g]) for g in r.group_by)
                by_tags = f" by {{{groups}}}" if groups else ""
                query = (
                    f"pct_change(sum(last_{window}),last_{CHANGE_SHIFTS[shift]})"
                    f":sum:{metric_name(rule)}{{*}}{by_tags}.as_count() {operator} {format_number(critical)}"
                )
        thresholds_doc: dict[str, int | float] = {"critical": critical}
        if thresholds:
            for key in ("critical_recovery", "warning", "warning_recovery"):
                value = getattr(thresholds, key)
                if value is not None:
                    thresholds_doc[key] = number(value)
        group_facets = self.group_facets(rule)
        if monitor_type == "query alert":
            group_facets = [tag_name(self.spec.catalog[g]) for g in r.group_by]
        override = r.overrides.datadog
        return MonitorParts(
            type=monitor_type,
            query=query,
            thresholds=thresholds_doc,
            priority=override.priority or r.severity.datadog_priority,
            tags=sorted({MANAGED_TAG, RULE_TAG_PREFIX + rule.id, f"severity:{r.severity.value}", *rule.tags}),
            routing=routing(rule),
            group_facets=group_facets,
            variables=variables,
            on_missing_data=on_missing_data,
            group_retention=group_retention,
            renotify_minutes=rule.renotify // 60 if rule.renotify else None,
            overrides=dict(override.options),
        )

    # ----------------------------------------------------------------------------------- documents

    def monitor(self, rule: ResolvedRule) -> dict[str, Any]:
        parts = self.monitor_parts(rule)
        message = self.templates.render(
            "datadog/message.md.j2",
            rule=rule,
            r=rule.rule,
            monitor=parts,
            window=format_duration(rule.rule.window),
            source_file=_relative(rule),
        )
        text = self.templates.render(
            "datadog/monitor.json.j2",
            rule=rule,
            r=rule.rule,
            monitor=parts,
            message=message,
            new_group_delay=NEW_GROUP_DELAY,
        )
        document = _load_json(text, f"datadog monitor {rule.id}")
        options = document.setdefault("options", {})
        options.update(parts.overrides)
        check_monitor(document, f"datadog/monitors/{rule.id}.json")
        return document

    def logs_metric(self, rule: ResolvedRule) -> dict[str, Any]:
        group_by = [
            {"path": facet(self.spec.catalog[g]), "tag_name": tag_name(self.spec.catalog[g])}
            for g in rule.rule.group_by
        ]
        text = self.templates.render(
            "datadog/logs_metric.json.j2",
            rule=rule,
            metric=metric_name(rule),
            search=self.search(rule),
            group_by=group_by,
        )
        document = _load_json(text, f"datadog logs metric {rule.id}")
        check_logs_metric(document, f"datadog/logs-metrics/{metric_name(rule)}.json")
        return document

    def pipeline(self) -> dict[str, Any] | None:
        derived = self.spec.catalog.derived
        if not derived:
            return None
        # Drill events carry their drill id in the structured line too (see extalerts.drill.view).
        queries = sorted({source.datadog.query.strip() or "*" for source in self.spec.sources.values()})
        queries.append(DRILL_DATADOG_QUERY)
        query = queries[0] if len(queries) == 1 else " OR ".join(f"({q})" for q in queries)
        sample = json.dumps({f.derived_key: _sample_value(f) for f in derived}, separators=(",", ":"))
        text = self.templates.render(
            "datadog/pipeline.json.j2",
            name=PIPELINE_NAME,
            query=query,
            attributes={"message": SELECTED_MESSAGE_ATTRIBUTE, "line": STRUCTURED_LINE_ATTRIBUTE},
            sample=sample,
        )
        document = _load_json(text, "datadog pipeline")
        check_pipeline(document, PIPELINE_PATH)
        return document

    def facets(self) -> list[dict[str, Any]]:
        """The facets the monitors and log-based metrics need, sorted by path: "In order to search on
        a numerical attribute, first add it as a facet" (logs/explorer/search_syntax), numeric
        rollups run over a measure (monitors/types/log, "Monitor over measure"), and group-by
        attributes are kept as facets too (conservative: the docs show group-by over facets)."""
        needs: dict[str, dict[str, Any]] = {}

        def need(field: Field, why: str, rule_id: str) -> None:
            entry = needs.setdefault(
                facet(field), {"path": facet(field), "type": _FACET_TYPES[field.type], "rules": set(), "why": why}
            )
            entry["rules"].add(rule_id)
            if _FACET_REASONS.index(why) < _FACET_REASONS.index(entry["why"]):
                entry["why"] = why

        for rule in self.spec.rules:
            for expr in (rule.filter, rule.ratio_match):
                for field in self._range_fields(expr):
                    need(field, "range search", rule.id)
            signal = rule.rule.signal
            if isinstance(signal, MeasureSignal):
                need(self.spec.catalog[signal.field], "aggregation", rule.id)
            for name in rule.rule.group_by:
                need(self.spec.catalog[name], "group by", rule.id)
        return [
            {**entry, "measure": entry["why"] == "aggregation", "rules": sorted(entry["rules"])}
            for _, entry in sorted(needs.items())
        ]

    def _range_fields(self, expr: Expr | None) -> list[Field]:
        """Fields ``expr`` searches by numeric range: comparisons, and negative numbers, which the
        search is given as ``[n TO n]`` (see :mod:`extalerts.filter.datadog`)."""
        if expr is None:
            return []
        found = []
        for pred in predicates(expr):
            values = pred.value if isinstance(pred.value, tuple) else (pred.value,)
            negative = any(isinstance(v, int | float) and not isinstance(v, bool) and v < 0 for v in values)
            if pred.op in (Op.LT, Op.LE, Op.GT, Op.GE) or negative:
                found.append(self.spec.catalog[pred.field])
        return found

    def render(self) -> list[RenderedFile]:
        files: list[RenderedFile] = []
        for rule in self.spec.rules:
            files.append(RenderedFile(f"datadog/monitors/{rule.id}.json", canonical_json(self.monitor(rule)), rule.id))
            if isinstance(rule.rule.signal, ChangeSignal):
                files.append(
                    RenderedFile(
                        f"datadog/logs-metrics/{metric_name(rule)}.json",
                        canonical_json(self.logs_metric(rule)),
                        rule.id,
                    )
                )
        pipeline = self.pipeline()
        if pipeline is not None:
            files.append(RenderedFile(PIPELINE_PATH, canonical_json(pipeline)))
        files.append(RenderedFile(FACETS_PATH, canonical_json({"facets": self.facets()})))
        return files


def _is_one_group(search: str) -> bool:
    """Whether ``search`` is a single term or one parenthesised group, so it needs no more parentheses."""
    if " " not in search:
        return True
    if not (search.startswith("(") and search.endswith(")")):
        return False
    depth = 0
    quoted = escaped = False
    for index, char in enumerate(search):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth == 0 and index != len(search) - 1:
                return False
    return True


def _relative(rule: ResolvedRule) -> str:
    # The path relative to the spec folder, which is the file name (spec folders are not read in
    # depth): the folder's own name depends on how it was named (`.`, a symlink, a copy), and a
    # message that changed with it would show as drift in every plan.
    return rule.path.name


def _sample_value(field: Field) -> Any:
    return {"string": "store", "number": 12, "boolean": True}.get(field.type.value, "x")


def _load_json(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(what, [f"the template produced invalid JSON: {exc}"]) from exc
    if not isinstance(document, dict):
        raise RenderError(what, ["the template must produce a JSON object"])
    return document


# --------------------------------------------------------------------------------------------- checks


def _model_problems(model_cls: Any, document: dict[str, Any]) -> list[str]:
    """Problems the ``datadog-api-client`` models see in ``document``, including what they let through."""
    from datadog_api_client.exceptions import OpenApiException

    problems: list[str] = []
    read_only: set[str] = set(getattr(model_cls, "read_only_vars", set()))
    for key in sorted(set(document) & set(read_only)):
        problems.append(f"`{key}` is read-only and must not be sent")
    try:
        instance = model_cls(**{k: v for k, v in document.items() if k not in read_only})
    except (OpenApiException, TypeError, ValueError) as exc:
        return [*problems, str(exc)]
    _walk_model(instance, "", problems)
    return problems


def _walk_model(value: Any, path: str, problems: list[str]) -> None:
    from datadog_api_client.model_utils import ModelComposed, ModelNormal, ModelSimple

    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk_model(item, f"{path}[{index}]", problems)
        return
    if isinstance(value, ModelSimple):
        if getattr(value, "_unparsed", False):
            problems.append(f"{path}: {value.value!r} is not a value {type(value).__name__} allows")
        return
    if isinstance(value, ModelComposed):
        instances = getattr(value, "_composed_instances", [])
        if not instances:
            problems.append(f"{path}: matches none of the {type(value).__name__} variants")
        for instance in instances:
            _walk_model(instance, path, problems)
        return
    if isinstance(value, ModelNormal):
        known = value.openapi_types
        for key in value._data_store:
            where = f"{path}.{key}" if path else key
            if key not in known:
                problems.append(f"{where}: unknown field for {type(value).__name__}")
                continue
            _walk_model(value._data_store[key], where, problems)


def check_monitor(document: dict[str, Any], name: str) -> None:
    """Raise :class:`RenderError` unless ``document`` is a monitor the API would accept."""
    from datadog_api_client.v1.model.monitor import Monitor

    problems = _model_problems(Monitor, document)
    query = document.get("query", "")
    monitor_type = document.get("type", "")
    try:
        parsed = parse_monitor_query(query, monitor_type)
    except QueryError as exc:
        shape = ' (expected logs("…").index("…").rollup(…)[.by("…")].last("…") OP N, or formula("…").last("…") OP N)'
        problems.append(f"query: {exc}" + (shape if "invalid operator" in str(exc) else ""))
    else:
        critical = document.get("options", {}).get("thresholds", {}).get("critical")
        if critical is None or float(critical) != parsed.threshold:
            problems.append(f"the query threshold {parsed.threshold:g} differs from options.thresholds.critical")
        if parsed.formula is not None:
            names = {v.get("name") for v in document.get("options", {}).get("variables", [])}
            missing = formula_variables(parsed.formula) - names
            if missing:
                problems.append(f"the formula reads undefined variables: {', '.join(sorted(missing))}")
        notify_by = document.get("options", {}).get("notify_by") or []
        allowed = set(parsed.group_by)
        for variable in document.get("options", {}).get("variables", []):
            allowed.update(g.get("facet") for g in variable.get("group_by", []))
        if monitor_type == "query alert":
            allowed = set(parsed.group_by)
        extra = [g for g in notify_by if g != "*" and g not in allowed]
        if extra:
            problems.append(f"notify_by names groups the query does not have: {', '.join(extra)}")
    tags = document.get("tags", [])
    if MANAGED_TAG not in tags or not any(str(t).startswith(RULE_TAG_PREFIX) for t in tags):
        problems.append("a managed monitor carries managed-by:extalerts and extalerts-rule:<id> tags")
    if problems:
        raise RenderError(name, problems)


def check_logs_metric(document: dict[str, Any], name: str) -> None:
    from datadog_api_client.v2.model.logs_metric_create_request import LogsMetricCreateRequest

    problems = _model_problems(LogsMetricCreateRequest, document)
    if problems:
        raise RenderError(name, problems)


def check_pipeline(document: dict[str, Any], name: str) -> None:
    from datadog_api_client.v1.model.logs_pipeline import LogsPipeline

    problems = _model_problems(LogsPipeline, document)
    if problems:
        raise RenderError(name, problems)
