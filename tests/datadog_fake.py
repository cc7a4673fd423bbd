"""A Datadog org small enough to read in one go, for tests of `extalerts doctor --provider datadog`.

The emulator (extalerts.emulators.datadog) stores pipelines but does not yet answer the Logs
Aggregate and Logs Search APIs; this test-only subclass adds those routes and the pipeline order,
and keeps indexed logs processed at intake by the stored pipelines, as Datadog does, with:

* the four processor types the rendered pipeline uses, as their doc pages describe them
  (:func:`apply_documented_pipeline`); no date remapper: the log is stamped with its intake time;
* a facet registry: a numeric range matches only on a numeric facet ("In order to search on a
  numerical attribute, first add it as a facet"), a numeric aggregation needs a measure, a group-by
  needs a facet;
* the search forms the doctor sends: ``key:value`` reserved attributes, ``@path:*``, ``@path:value``
  (arrays match on any element), ``@path:<N`` / ``>=N``, parentheses, ``OR`` and implicit ``AND``.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

from extalerts.emulators.datadog import DatadogEmulator


def apply_documented_pipeline(pipeline: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The rendered processors applied to ``event`` as their doc pages describe them (see the
    template's comments), for the four types the pipeline uses."""
    log = copy.deepcopy(event)
    for processor in pipeline["processors"]:
        assert processor["is_enabled"] is True
        kind = processor["type"]
        if kind == "date-remapper":
            log["timestamp"] = log.get(processor["sources"][0])
        elif kind == "array-processor":
            op = processor["operation"]
            key, _, value = op["filter"].partition(":")
            items = log.get(op["source"]) if isinstance(log.get(op["source"]), list) else []
            chosen = next((i for i in items if isinstance(i, dict) and i.get(key) == value), None)
            if chosen is not None and op["value_to_extract"] in chosen:
                log[op["target"]] = chosen[op["value_to_extract"]]
        elif kind == "string-builder-processor":
            (name,) = re.fullmatch(r"%\{([^}]+)\}", processor["template"]).groups()  # type: ignore[union-attr]
            value = log.get(name)
            parts = [value] if isinstance(value, str) else value
            usable = isinstance(parts, list) and all(isinstance(p, str) for p in parts)
            if usable and len(",".join(parts)) <= 256:  # else "the entire operation is skipped"
                log[processor["target"]] = ",".join(parts)
        elif kind == "grok-parser":
            assert processor["grok"]["match_rules"] == "extalerts_structured_line %{data:extalerts:json}"
            text = log.get(processor["source"])
            if isinstance(text, str):  # grok reads strings only
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    log["extalerts"] = parsed
        else:
            raise AssertionError(kind)
    return log


def _values(log: dict[str, Any], path: str) -> list[Any]:
    nodes: list[Any] = [log["attributes"]]
    for step in path.split("."):
        found: list[Any] = []
        for node in nodes:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, dict) and step in item:
                    found.append(item[step])
        nodes = found
    flat: list[Any] = []
    for node in nodes:
        flat.extend(node if isinstance(node, list) else [node])
    return [v for v in flat if v is not None]


class _Search:
    """Reads the doctor's searches against one log."""

    TOKEN = re.compile(r"\s*(\(|\)|OR\b|[^\s()]+)")

    def __init__(self, query: str, facets: dict[str, tuple[str, bool]]) -> None:
        self.tokens = [t for t in self.TOKEN.findall(query) if t.strip()]
        self.doctor_facets = facets

    def matches(self, log: dict[str, Any]) -> bool:
        self.pos = 0
        self.log = log
        return self._or()

    def _or(self) -> bool:
        result = self._and()
        while self.pos < len(self.tokens) and self.tokens[self.pos] == "OR":
            self.pos += 1
            result = self._and() or result
        return result

    def _and(self) -> bool:
        result = True
        while self.pos < len(self.tokens) and self.tokens[self.pos] not in ("OR", ")"):
            result = self._term() and result
        return result

    def _term(self) -> bool:
        token = self.tokens[self.pos]
        self.pos += 1
        if token == "(":
            result = self._or()
            self.pos += 1  # ")"
            return result
        if token == "*":
            return True
        key, _, value = token.partition(":")
        if not key.startswith("@"):
            return bool(self.log.get(key) == value)
        path = key[1:]
        values = _values(self.log, path)
        if value == "*":
            return bool(values)
        compare = re.fullmatch(r"(<=|>=|<|>)(-?\d+(?:\.\d+)?)", value)
        if compare:
            kind, _ = self.doctor_facets.get(key, ("", False))
            if kind not in ("integer", "double"):
                return False  # a range on an attribute without a numeric facet matches nothing
            op, bound = compare.group(1), float(compare.group(2))
            tests = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}
            return any(
                isinstance(v, int | float) and not isinstance(v, bool) and tests[op](float(v), bound) for v in values
            )
        return any(str(v) == value for v in values)


class DoctorDatadog(DatadogEmulator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Facets by path (with @): (type, measure).
        self.doctor_facets: dict[str, tuple[str, bool]] = {}
        #: Pipeline ids in processing order; None: every stored pipeline, as Datadog appends new ones.
        self.doctor_order: list[str] | None = None
        #: Logs as indexed: reserved attributes, attributes, timestamp (ms).
        self.doctor_logs: list[dict[str, Any]] = []

    def _route_table(self) -> list[Any]:
        routes = super()._route_table()
        return [
            (
                "GET",
                re.compile("^/api/v1/logs/config/pipeline-order$"),
                lambda *, query, body: {"pipeline_ids": self.doctor_pipeline_order()},
            ),
            ("POST", re.compile("^/api/v2/logs/analytics/aggregate$"), self._doctor_aggregate),
            ("POST", re.compile("^/api/v2/logs/events/search$"), self._doctor_search),
            *routes,
        ]

    def doctor_pipeline_order(self) -> list[str]:
        return list(self.state.pipelines) if self.doctor_order is None else list(self.doctor_order)

    def ingest(self, events: list[dict[str, Any]], received_ms: int, **reserved: str) -> None:
        """Logpush-shipped events arriving at ``received_ms``, processed by the pipelines in order."""
        for event in events:
            log = copy.deepcopy(event)
            for pipeline_id in self.doctor_pipeline_order():
                pipeline = self.state.pipelines.get(pipeline_id)
                selects = _Search(pipeline["filter"].get("query") or "*", {}) if pipeline else None
                if (
                    pipeline
                    and pipeline.get("is_enabled")
                    and selects
                    and selects.matches({**reserved, "attributes": log})
                ):
                    log = apply_documented_pipeline(pipeline, log)
            timestamp = log.pop("timestamp", None)
            self.doctor_logs.append(
                {**reserved, "attributes": log, "timestamp": timestamp if timestamp is not None else received_ms}
            )

    def _selected(self, body: Any) -> list[dict[str, Any]]:
        search = _Search(str(body.get("filter", {}).get("query", "*")), self.doctor_facets)
        return [log for log in self.doctor_logs if search.matches(log)]

    def _doctor_aggregate(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        logs = self._selected(body)
        (compute,) = body["compute"]
        groups: dict[str, list[dict[str, Any]]] = {"": logs}
        by = (body.get("group_by") or [{}])[0].get("facet")
        if by:
            groups = {}
            if by in self.doctor_facets:  # grouping needs a facet
                for log in logs:
                    for value in _values(log, by[1:])[:1]:
                        groups.setdefault(str(value), []).append(log)
        buckets = []
        for key, members in groups.items():
            if compute["aggregation"] == "count":
                value: Any = len(members)
            else:
                metric = compute["metric"]
                numbers = [
                    float(v)
                    for log in members
                    for v in _values(log, metric[1:])
                    if isinstance(v, int | float) and not isinstance(v, bool)
                ]
                measured = self.doctor_facets.get(metric, ("", False))[1]
                value = max(numbers) if numbers and measured else None  # no measure, no value
            if by or members or compute["aggregation"] != "count":
                buckets.append({"by": {by: key} if by else {}, "computes": {"c0": value}})
        return {"meta": {"status": "done"}, "data": {"buckets": buckets}}

    def _doctor_search(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        logs = sorted(self._selected(body), key=lambda log: -log["timestamp"])
        limit = int((body.get("page") or {}).get("limit", 10))
        return {
            "data": [
                {
                    "id": str(index),
                    "type": "log",
                    "attributes": {
                        "timestamp": datetime.fromtimestamp(log["timestamp"] / 1000, UTC).isoformat(),
                        "attributes": log["attributes"],
                        "service": log.get("service"),
                    },
                }
                for index, log in enumerate(logs[:limit])
            ],
            "meta": {"status": "done"},
        }


def facets_from(rendered: str) -> dict[str, tuple[str, bool]]:
    """The registry a user builds by following README "Datadog setup" for ``facets.json``."""
    return {f["path"]: (f["type"], f["measure"]) for f in json.loads(rendered)["facets"]}
