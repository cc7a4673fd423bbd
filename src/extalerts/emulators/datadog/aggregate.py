"""The Logs Aggregate API (``POST /api/v2/logs/analytics/aggregate``) over the emulator's stored logs.

Request and response as the API reference and ``logs/guide/build-custom-reports-using-log-analytics-api.md``
describe them: ``compute`` (``aggregation``, ``type`` total|timeseries, ``interval``, ``metric``),
``filter`` (``query``, ``from``/``to`` — "supports date math and regular timestamps (milliseconds)",
defaults ``now-15m``/``now``; ``indexes`` "Defaults to ['*']"), ``group_by`` (``facet``, ``limit``,
``missing``, ``sort``); the answer is ``{"buckets": [{"by": {...}, "computes": {"c0": …}}]}`` — "c0
represents the total count", computes named ``c0``, ``c1``… in request order; a timeseries compute is a
list of ``{"time", "value"}``. The same search and facet semantics as monitors apply (:mod:`.search`,
:mod:`.facets`): numeric aggregations need a measure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from extalerts.emulators.datadog.facets import FacetRegistry
from extalerts.emulators.datadog.logs import LogStore, StoredLog, number_of, path_values, text_of
from extalerts.emulators.datadog.monitors import INDEX_NAME, NUMERIC_AGGREGATIONS, aggregate
from extalerts.emulators.datadog.search import SearchError, compile_search

AGGREGATIONS = frozenset({"count", "cardinality", *NUMERIC_AGGREGATIONS})
#: "Defaults to a resolution of 150 points" for timeseries without an interval.
DEFAULT_POINTS = 150
#: Group-by buckets when no limit is given (the v2 reference's default).
DEFAULT_LIMIT = 10
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class AggregateError(ValueError):
    """The request cannot be answered; the message says which field."""


def parse_time(value: Any, now_ms: int) -> int:
    """``now``, ``now-15m`` (date math), epoch milliseconds, or an ISO 8601 date."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    match = re.fullmatch(r"now(?:\s*([-+])\s*(\d+)\s*([smhdw]))?", text)
    if match:
        if not match[1]:
            return now_ms
        delta = int(match[2]) * _UNITS_MS[match[3]]
        return now_ms - delta if match[1] == "-" else now_ms + delta
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise AggregateError(f"filter time {text!r} is not date math (now-15m), milliseconds or ISO 8601") from None


def _interval_ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    match = re.fullmatch(r"(\d+)\s*([smhdw])", str(value).strip())
    if match is None:
        raise AggregateError(f"compute interval {value!r} is not like 1m or 30s")
    return int(match[1]) * _UNITS_MS[match[2]]


def aggregate_logs(body: Any, store: LogStore, facets: FacetRegistry, now: float) -> dict[str, Any]:
    if body is not None and not isinstance(body, Mapping):
        raise AggregateError("the body must be a JSON object")
    request: Mapping[str, Any] = body or {}
    now_ms = int(now * 1000)
    filter_doc = request.get("filter") or {}
    start = parse_time(filter_doc.get("from", "now-15m"), now_ms)
    end = parse_time(filter_doc.get("to", "now"), now_ms)
    indexes = filter_doc.get("indexes") or ["*"]
    search = str(filter_doc.get("query") or "*")
    try:
        matches = compile_search(search, facets)
    except SearchError as exc:
        raise AggregateError(f"filter.query: {exc}") from None
    computes = list(request.get("compute") or [{"aggregation": "count"}])
    for index, compute in enumerate(computes):
        if compute.get("aggregation") not in AGGREGATIONS:
            raise AggregateError(f"compute[{index}].aggregation {compute.get('aggregation')!r} is not one of the API's")
        if compute.get("aggregation") != "count" and not compute.get("metric"):
            raise AggregateError(f"compute[{index}] needs a metric for {compute.get('aggregation')}")
    logs: list[StoredLog] = []
    if "*" in indexes or INDEX_NAME in indexes:
        # The end is inclusive in the UI's time picker; the API's "to" is read as exclusive here.
        logs = store.matching(search, matches, store.between(start, end))
    group_by = list(request.get("group_by") or [])
    buckets: dict[tuple[str, ...], list[StoredLog]] = {}
    for log in logs:
        for key in _keys(log, group_by):
            buckets.setdefault(key, []).append(log)
    buckets = _limited(buckets, group_by, computes, facets)
    out: list[dict[str, Any]] = []
    for key, members in buckets.items():
        values: dict[str, Any] = {}
        for index, compute in enumerate(computes):
            name = f"c{index}"
            if compute.get("type", "total") == "timeseries":
                step = (
                    _interval_ms(compute["interval"])
                    if compute.get("interval")
                    else max(1000, math.ceil((end - start) / DEFAULT_POINTS))
                )
                series: dict[int, list[StoredLog]] = {}
                for log in members:
                    series.setdefault(start + (log.timestamp_ms - start) // step * step, []).append(log)
                values[name] = [
                    {"time": _iso(at), "value": _value(compute, series[at], facets)} for at in sorted(series)
                ]
            else:
                values[name] = _value(compute, members, facets)
        out.append({"by": {g["facet"]: v for g, v in zip(group_by, key, strict=True)}, "computes": values})
    return {"buckets": out}


def _keys(log: StoredLog, group_by: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = [()]
    for group in group_by:
        facet = str(group.get("facet") or "")
        if not facet:
            raise AggregateError("group_by[].facet is required")
        path = facet.removeprefix("@")
        raw = (
            [log.reserved.get(path)]
            if not facet.startswith("@") and path in log.reserved
            else path_values(log.attributes, path)
        )
        values = [text_of(v) for v in raw if v is not None and not isinstance(v, dict | list)]
        if not values:
            if "missing" not in group:
                return []  # a log without the facet is in no bucket unless ``missing`` names one
            values = [text_of(group["missing"])]
        keys = [(*k, v) for k in keys for v in dict.fromkeys(values)]
    return keys


def _limited(
    buckets: dict[tuple[str, ...], list[StoredLog]],
    group_by: Sequence[Mapping[str, Any]],
    computes: Sequence[Mapping[str, Any]],
    facets: FacetRegistry,
) -> dict[tuple[str, ...], list[StoredLog]]:
    if not group_by:
        return buckets
    ordered = sorted(buckets.items(), key=lambda item: (-len(item[1]), item[0]))
    sort = group_by[0].get("sort") or {}
    if sort.get("type") == "alphabetical":
        ordered = sorted(buckets.items(), key=lambda item: item[0], reverse=sort.get("order") == "desc")
    elif sort.get("aggregation") not in (None, "count"):
        compute = {"aggregation": sort["aggregation"], "metric": sort.get("metric")}
        ordered = sorted(
            buckets.items(),
            key=lambda item: -(_value(compute, item[1], facets) or 0.0),
            reverse=sort.get("order") == "asc",
        )
    limit = min(int(g.get("limit") or DEFAULT_LIMIT) for g in group_by)
    return dict(ordered[:limit])


def _value(compute: Mapping[str, Any], logs: Sequence[StoredLog], facets: FacetRegistry) -> float | None:
    kind = str(compute.get("aggregation"))
    if kind == "count":
        return float(len(logs))
    metric = str(compute.get("metric") or "")
    values = [v for log in logs for v in path_values(log.attributes, metric.removeprefix("@"))]
    if kind == "cardinality":
        return float(len({text_of(v) for v in values if not isinstance(v, dict | list)}))
    if not facets.measure(metric):
        return None  # numeric aggregation needs a measure (see .facets)
    return aggregate(kind, sorted(n for v in values if (n := number_of(v)) is not None))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
