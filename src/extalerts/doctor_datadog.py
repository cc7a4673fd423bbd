"""``extalerts doctor --provider datadog``: does Datadog read the Workers events the way the rules
assume? Read-only, through the official client, over the last hour of logs.

What it proves, one finding per check (README, "What doctor proves"):

* the structured-log pipeline exists, is enabled, is in the pipeline order and matches the rendering;
* logs of every source arrive, stamped with their event time (the date remapper ran), and how old
  the newest one is (to size ``evaluation_delay``);
* each step of the structured line worked on recent logs: the array select, the string builder, the
  grok parse, and each derived attribute a rule reads (the select of an array is undocumented);
* each facet of ``rendered/datadog/facets.json`` works: a numeric range matches every log carrying
  the attribute, a measure aggregates, a group-by facet groups.

A problem names the rules it breaks. Counts come from the Logs Aggregate API
(``POST /api/v2/logs/analytics/aggregate``, permission ``logs_read_data``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from extalerts.doctor import Finding
from extalerts.errors import ApiError
from extalerts.fields import Field
from extalerts.filter.ast import predicates
from extalerts.providers.base import Resource
from extalerts.providers.datadog import LOGS_PIPELINE, DatadogApi, DatadogProvider
from extalerts.render.datadog import (
    PIPELINE_NAME,
    SELECTED_MESSAGE_ATTRIBUTE,
    STRUCTURED_LINE_ATTRIBUTE,
    DatadogRenderer,
    facet,
)
from extalerts.render.templates import Templates
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import CardinalitySignal, MeasureSignal

#: How far back the checks look.
LOOKBACK = "now-1h"
#: How far a log's timestamp may be from its EventTimestampMs and still count as remapped.
TIMESTAMP_TOLERANCE_MS = 1000
#: Logs read to check their timestamps.
TIMESTAMP_SAMPLE = 20

SETUP_HINT = "see README, Datadog setup"
PUSH_HINT = "run `extalerts push --provider datadog`"


def _fields_of(rule: ResolvedRule, spec: Spec) -> set[str]:
    names = {p.field for expr in (rule.filter, rule.ratio_match) if expr is not None for p in predicates(expr)}
    names.update(rule.rule.group_by)
    if isinstance(rule.rule.signal, MeasureSignal | CardinalitySignal):
        names.add(rule.rule.signal.field)
    return names


def _breaks(rules: Iterable[str]) -> str:
    listed = sorted(set(rules))
    return f"; breaks {', '.join(listed)}" if listed else ""


class DatadogDoctor:
    """The checks, against one organisation (or the emulator)."""

    def __init__(self, spec: Spec, api: DatadogApi, templates: Templates | None = None) -> None:
        self.spec = spec
        self.api = api
        self.renderer = DatadogRenderer(spec, templates or Templates())
        self.provider = DatadogProvider(api, templates)
        #: The stretch of time the checks read (``extalerts verify`` sets the window it verifies).
        self.since: str | int = LOOKBACK
        self.until: str | int = "now"

    # ----------------------------------------------------------------------------------- API

    def count(self, query: str, index: str = "*") -> int:
        """Logs matching ``query`` over :data:`LOOKBACK`."""
        value = self.aggregate(query, index, {"aggregation": "count"})
        return int(value or 0)

    def aggregate(self, query: str, index: str, compute: dict[str, str], group_by: str | None = None) -> float | None:
        """One total ``compute`` over :data:`LOOKBACK` (None: no value); with ``group_by``, the
        number of groups."""
        from datadog_api_client.v2.api.logs_api import LogsApi
        from datadog_api_client.v2.model.logs_aggregate_request import LogsAggregateRequest
        from datadog_api_client.v2.model.logs_aggregation_function import LogsAggregationFunction
        from datadog_api_client.v2.model.logs_compute import LogsCompute
        from datadog_api_client.v2.model.logs_compute_type import LogsComputeType
        from datadog_api_client.v2.model.logs_group_by import LogsGroupBy
        from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter

        extra = {"metric": compute["metric"]} if "metric" in compute else {}
        body = LogsAggregateRequest(
            compute=[
                LogsCompute(
                    aggregation=LogsAggregationFunction(compute["aggregation"]),
                    type=LogsComputeType("total"),
                    **extra,
                )
            ],
            filter=LogsQueryFilter(query=query, _from=str(self.since), to=str(self.until), indexes=[index]),
            **({"group_by": [LogsGroupBy(facet=group_by, limit=10)]} if group_by else {}),
        )
        response = self.api.call("aggregate logs", lambda client: LogsApi(client).aggregate_logs(body=body))
        buckets = (response.to_dict().get("data") or {}).get("buckets") or []
        if group_by:
            return float(sum(1 for b in buckets if any(v not in (None, "") for v in (b.get("by") or {}).values())))
        if not buckets:
            return None
        value = (buckets[0].get("computes") or {}).get("c0")
        return float(value) if isinstance(value, int | float) else None

    def newest_logs(self, query: str, index: str) -> list[dict[str, Any]]:
        from datadog_api_client.v2.api.logs_api import LogsApi
        from datadog_api_client.v2.model.logs_list_request import LogsListRequest
        from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
        from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
        from datadog_api_client.v2.model.logs_sort import LogsSort

        body = LogsListRequest(
            filter=LogsQueryFilter(query=query, _from=str(self.since), to=str(self.until), indexes=[index]),
            sort=LogsSort("-timestamp"),
            page=LogsListRequestPage(limit=TIMESTAMP_SAMPLE),
        )
        response = self.api.call("search logs", lambda client: LogsApi(client).list_logs(body=body))
        data: list[dict[str, Any]] = response.to_dict().get("data") or []
        return data

    # ----------------------------------------------------------------------------------- checks

    def run(self) -> list[Finding]:
        findings = self.pipeline_findings()
        flowing = self.source_findings(findings)
        if flowing:
            findings += self.structured_line_findings()
            findings += self.facet_findings()
        return findings

    def rules_reading(self, fields: Iterable[Field]) -> list[str]:
        names = {f.name for f in fields}
        return [rule.id for rule in self.spec.rules if _fields_of(rule, self.spec) & names]

    def pipeline_findings(self) -> list[Finding]:
        desired = self.renderer.pipeline()
        if desired is None:
            return []
        subject = f"Datadog pipeline {PIPELINE_NAME!r}"
        breaks = _breaks(self.rules_reading(self.spec.catalog.derived))
        live = [r for r in self.provider.fetch_pipelines() if r.key == PIPELINE_NAME]
        if not live:
            return [
                Finding(False, subject, f"does not exist: no @extalerts.* attribute is ever set{breaks}", PUSH_HINT)
            ]
        body = self.provider.normalise(live[0])
        if not body.get("is_enabled"):
            return [Finding(False, subject, f"is disabled: no @extalerts.* attribute is set{breaks}", PUSH_HINT)]
        findings = []
        if body != self.provider.normalise(Resource(LOGS_PIPELINE, PIPELINE_NAME, desired)):
            findings.append(
                Finding(False, subject, f"differs from the rendered pipeline (edited in Datadog?){breaks}", PUSH_HINT)
            )
        order = self._pipeline_order()
        if order is not None and live[0].live_id not in order:
            findings.append(
                Finding(
                    False,
                    subject,
                    f"is not in the pipeline order, so it never runs{breaks}",
                    "add it under Logs > Pipelines (drag it into the list); " + SETUP_HINT,
                )
            )
        if not findings:
            findings.append(Finding(True, subject, "exists, is enabled, in the pipeline order, as rendered"))
        return findings

    def _pipeline_order(self) -> list[str] | None:
        from datadog_api_client.v1.api.logs_pipelines_api import LogsPipelinesApi

        response = self.api.call(
            "read pipeline order", lambda client: LogsPipelinesApi(client).get_logs_pipeline_order()
        )
        ids = response.to_dict().get("pipeline_ids")
        return [str(i) for i in ids] if isinstance(ids, list) else None

    def source_findings(self, findings: list[Finding]) -> bool:
        """Logs of each source arrive, with their event time; True when some arrive at all."""
        flowing = False
        for name, source in sorted(self.spec.sources.items()):
            subject = f"Datadog logs of source {name} ({source.datadog.query})"
            rules = [r for r in self.spec.rules if r.source is source]
            delays = sorted({r.evaluation_delay for r in rules})
            query = source.datadog.query.strip() or "*"
            count = self.count(query, source.datadog.index)
            if not count:
                findings.append(
                    Finding(
                        False,
                        subject,
                        f"none in the last hour: nothing reaches Datadog{_breaks(r.id for r in rules)}",
                        "run `extalerts doctor` (Logpush) and check the destination's ddsource and service; "
                        + SETUP_HINT,
                    )
                )
                continue
            flowing = True
            findings.append(Finding(True, subject, f"{count} in the last hour"))
            findings.extend(self._time_findings(subject, query, source.datadog.index, rules, delays))
        return flowing

    def _time_findings(
        self, subject: str, query: str, index: str, rules: list[ResolvedRule], delays: list[int]
    ) -> list[Finding]:
        try:
            logs = self.newest_logs(query, index)
        except ApiError as exc:
            if exc.status != 404:
                raise
            # Datadog has the Logs Search API; an emulator may not.
            return [Finding(True, subject, "no Logs Search API here (404): event time cannot be checked")]
        stamped: list[tuple[int, int]] = []  # (log timestamp, EventTimestampMs), ms
        for log in logs:
            attributes = log.get("attributes") or {}
            event_ms = (attributes.get("attributes") or {}).get("EventTimestampMs")
            at = _epoch_ms(attributes.get("timestamp"))
            if isinstance(event_ms, int | float) and at is not None:
                stamped.append((at, int(event_ms)))
        if not stamped:
            return [Finding(True, subject, "no recent log carries EventTimestampMs: event time cannot be checked")]
        late = [at - event for at, event in stamped if abs(at - event) > TIMESTAMP_TOLERANCE_MS]
        if late:
            lag = max(late) / 1000
            return [
                Finding(
                    False,
                    subject,
                    f"{len(late)} of the {len(stamped)} newest are stamped with their intake time, up to {lag:.0f} s "
                    f"after EventTimestampMs (no date remapper ran): windows are off by the Logpush delay"
                    f"{_breaks(r.id for r in rules)}",
                    PUSH_HINT + " (its pipeline remaps the date); " + SETUP_HINT,
                )
            ]
        newest = max(at for at, _ in stamped)
        age = max(0.0, time.time() - newest / 1000)
        delay = f"evaluation_delay {', '.join(f'{d} s' for d in delays)}" if delays else "no rules"
        return [
            Finding(
                True,
                subject,
                f"stamped with their event time; the newest is {age:.0f} s old ({delay}: a delay shorter than "
                "the usual age judges windows before their logs arrive)",
            )
        ]

    def structured_line_findings(self) -> list[Finding]:
        derived = self.spec.catalog.derived
        if not derived:
            return []
        base = self._base_query()
        breaks = _breaks(self.rules_reading(derived))
        subject = "Datadog structured line"
        logged = self.count(f"{base} @Logs.Level:log")
        if not logged:
            return [Finding(True, subject, "no recent log has a console.log entry: the pipeline cannot be checked")]
        undocumented = (
            "Datadog reads Logpush's Logs otherwise than the docs suggest: see README, behaviours no doc settles"
        )
        steps = [
            (
                f"@{SELECTED_MESSAGE_ATTRIBUTE}:*",
                f"the array select set @{SELECTED_MESSAGE_ATTRIBUTE} on none of {logged} logs with a `log` entry",
                f"check the pipeline is first to touch Logs; {undocumented}",
            ),
            (
                f"@{STRUCTURED_LINE_ATTRIBUTE}:*",
                f"the string builder set @{STRUCTURED_LINE_ATTRIBUTE} on none of them: the selected Message is not "
                "an array of strings there (undocumented), or every line is longer than 256 characters",
                undocumented,
            ),
            (
                " OR ".join(f"{facet(f)}:*" for f in derived),
                "grok set no @extalerts.* attribute: no first console.log line is a JSON object",
                "log the structured line first, with console.log(JSON.stringify({...})); README, Structured log line",
            ),
        ]
        for query, failure, fix in steps:
            if not self.count(f"{base} ({query})"):
                return [Finding(False, subject, failure + breaks, fix)]
        findings = [Finding(True, subject, f"read from recent logs ({logged} with a `log` entry)")]
        for field in derived:
            rules = self.rules_reading([field])
            if not rules:
                continue
            seen = self.count(f"{base} {facet(field)}:*")
            message = f"on {seen} logs" if seen else f"on no log of the last hour: {', '.join(rules)} cannot be checked"
            findings.append(Finding(True, f"Datadog attribute {facet(field)}", message))
        return findings

    def _base_query(self) -> str:
        """Every source's logs."""
        queries = sorted({s.datadog.query.strip() or "*" for s in self.spec.sources.values()})
        return queries[0] if len(queries) == 1 else "(" + " OR ".join(f"({q})" for q in queries) + ")"

    def facet_findings(self) -> list[Finding]:
        findings = []
        base = self._base_query()
        for need in self.renderer.facets():
            path, kind = need["path"], need["type"]
            subject = f"Datadog facet {path} ({kind}{', measure' if need['measure'] else ''})"
            present = self.count(f"{base} {path}:*")
            if not present:
                findings.append(Finding(True, subject, "on no log of the last hour: cannot be checked"))
                continue
            problem = self.facet_problem(need, base, present)
            if problem is None:
                findings.append(Finding(True, subject, f"works on {present} logs"))
            else:
                what = "Create measure" if need["measure"] else "Create facet"
                fix = f"Logs > Explorer: open a log, click {path[1:]}, {what} (type {kind}); {SETUP_HINT}"
                findings.append(Finding(False, subject, problem + _breaks(need["rules"]), fix))
        return findings

    def facet_problem(self, need: dict[str, Any], base: str, present: int) -> str | None:
        path, kind = need["path"], need["type"]
        if kind in ("integer", "double"):
            ranged = self.count(f"{base} ({path}:<0 OR {path}:>=0)")
            if ranged < present:
                return (
                    f"a numeric range matches {ranged} of the {present} logs carrying it: "
                    f"the facet is missing or not {kind}"
                )
        if need["measure"] and self.aggregate(f"{base} {path}:*", "*", {"aggregation": "max", "metric": path}) is None:
            return "aggregates to no value: it is not a measure"
        if need["why"] == "group by" and not self.aggregate(base, "*", {"aggregation": "count"}, group_by=path):
            return "groups nothing: it is not a facet"
        return None


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    if isinstance(value, int | float):
        return int(value)
    return None


def datadog_doctor(spec: Spec, api: DatadogApi, templates: Templates | None = None) -> list[Finding]:
    """Every Datadog finding for ``spec``; problems have ``ok`` false."""
    return DatadogDoctor(spec, api, templates).run()
