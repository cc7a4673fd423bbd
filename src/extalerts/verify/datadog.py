"""The Datadog side of ``extalerts verify``: each rule's rendered search run through the Logs
Aggregate API (``LogsApi.aggregate_logs``, v2; permission ``logs_read_data``), read-only.

Signals that compose across minutes (count, ratio, change, absence, sum, avg, min, max) take one
timeseries call per variable with 1-minute buckets, merged into each evaluation window exactly by
the engine's own window arithmetic (:func:`extalerts.engine.bucketed_values`): a count or sum of
a window is the sum of its minutes, a min or max their min or max. Percentiles and distinct counts
do not compose, so they take one total call per evaluation minute over that minute's window. The
searches are the renderer's (:meth:`DatadogRenderer.search`), never derived again here.

``explain`` checks, rather than guesses, why a rule diverges: the doctor's checks over the verified
window (pipeline, structured line, facets), the live monitor's query against the rendered one, and
the monitor's own group states against the minutes its values say it should have alerted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from extalerts.doctor_datadog import DatadogDoctor
from extalerts.engine import MINUTE_MS, Group, Semantics, bucketed_values
from extalerts.filter.ast import Op, Predicate
from extalerts.providers.datadog import DatadogApi
from extalerts.render.datadog import MonitorParts, facet
from extalerts.render.templates import Templates
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import Aggregation, CardinalitySignal, ChangeSignal, MeasureSignal, RatioSignal
from extalerts.verify.compare import alerts, matched_in, read_buckets, side_transitions
from extalerts.verify.lag import Lag
from extalerts.verify.model import EXACT, Agreement, Cause, Progress, SideSeries, Window

#: Groups asked for per call, as the rendered monitors' variables ask (``limit: 100``).
GROUP_LIMIT = 100
#: The group of logs lacking a group-by attribute, as the engine's Datadog semantics names it.
MISSING_GROUP = "N/A"
_PERCENTILES = {
    Aggregation.MEDIAN: "median",
    Aggregation.P75: "pc75",
    Aggregation.P90: "pc90",
    Aggregation.P95: "pc95",
    Aggregation.P99: "pc99",
}
PUSH_FIX = "run `extalerts plan --provider datadog`, then `extalerts push --provider datadog`"


def windowed(rule: ResolvedRule) -> bool:
    """Whether the rule's value needs one call per evaluation window (it does not compose by minute)."""
    signal = rule.rule.signal
    return isinstance(signal, CardinalitySignal) or (
        isinstance(signal, MeasureSignal) and signal.aggregation.percentile is not None
    )


def variables(rule: ResolvedRule) -> int:
    """Timeseries calls a composing rule takes: one per search it needs."""
    signal = rule.rule.signal
    return 2 if isinstance(signal, RatioSignal | MeasureSignal) else 1


def calls_per_rule(rule: ResolvedRule, window: Window) -> int:
    """Aggregate calls ``series`` makes for ``rule`` over ``window`` (README, Verify: costs)."""
    if windowed(rule):
        return (window.end_ms - window.start_ms) // MINUTE_MS + 1
    return variables(rule)


class DatadogSide:
    """Datadog's view of each rule, through the official client with the project's retry policy."""

    name = "datadog"
    semantics: Semantics = "datadog"

    def __init__(
        self,
        spec: Spec,
        api: DatadogApi,
        templates: Templates | None = None,
        *,
        lag: Callable[[], Lag | None] = lambda: None,
    ) -> None:
        self.spec = spec
        self.api = api
        self.doctor = DatadogDoctor(spec, api, templates)
        self.renderer = self.doctor.renderer
        #: Delivery lag measured from the archive, when there is one (asked for when explaining:
        #: the side is built, and its credentials checked, before the archive is read).
        self._lag = lag
        #: What ``series`` found per rule, for ``explain`` (the monitor-history check).
        self.seen: dict[str, SideSeries] = {}
        #: Rules whose group-by returned as many groups as asked: more may exist.
        self.group_limit_reached: set[str] = set()

    # ----------------------------------------------------------------------------------- series

    def series(self, rule: ResolvedRule, window: Window, progress: Progress) -> SideSeries:
        found = self._windowed(rule, window, progress) if windowed(rule) else self._bucketed(rule, window, progress)
        self.seen[rule.id] = found
        return found

    def _aggregate(
        self,
        search: str,
        rule: ResolvedRule,
        start_ms: int,
        end_ms: int,
        computes: list[dict[str, str]],
        *,
        grouped: bool = True,
    ) -> list[dict[str, Any]]:
        from datadog_api_client.v2.api.logs_api import LogsApi
        from datadog_api_client.v2.model.logs_aggregate_request import LogsAggregateRequest
        from datadog_api_client.v2.model.logs_aggregate_sort import LogsAggregateSort
        from datadog_api_client.v2.model.logs_aggregation_function import LogsAggregationFunction
        from datadog_api_client.v2.model.logs_compute import LogsCompute
        from datadog_api_client.v2.model.logs_compute_type import LogsComputeType
        from datadog_api_client.v2.model.logs_group_by import LogsGroupBy
        from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
        from datadog_api_client.v2.model.logs_sort_order import LogsSortOrder

        compute = [
            LogsCompute(
                aggregation=LogsAggregationFunction(c["aggregation"]),
                type=LogsComputeType(c.get("type", "total")),
                **{k: c[k] for k in ("metric", "interval") if k in c},
            )
            for c in computes
        ]
        group_by = [
            LogsGroupBy(
                facet=name,
                limit=GROUP_LIMIT,
                missing=MISSING_GROUP,
                sort=LogsAggregateSort(aggregation=LogsAggregationFunction("count"), order=LogsSortOrder("desc")),
            )
            for name in (self.renderer.group_facets(rule) if grouped else [])
        ]
        body = LogsAggregateRequest(
            compute=compute,
            filter=LogsQueryFilter(
                query=search, _from=str(start_ms), to=str(end_ms), indexes=[rule.source.datadog.index]
            ),
            **({"group_by": group_by} if group_by else {}),
        )
        response = self.api.call("aggregate logs", lambda client: LogsApi(client).aggregate_logs(body=body))
        buckets: list[dict[str, Any]] = (response.to_dict().get("data") or {}).get("buckets") or []
        if group_by and len(buckets) >= GROUP_LIMIT:
            self.group_limit_reached.add(rule.id)
        return buckets

    def _group(self, rule: ResolvedRule, bucket: dict[str, Any]) -> Group:
        by = bucket.get("by") or {}
        names = self.renderer.group_facets(rule)
        return tuple(
            (field, str(by.get(name, MISSING_GROUP))) for field, name in zip(rule.rule.group_by, names, strict=True)
        )

    def _searches(self, rule: ResolvedRule) -> list[tuple[str, list[dict[str, str]]]]:
        """Each timeseries call of a composing rule: its search and computes, in the order of the
        engine's bucket row (the count its filter matches first)."""
        minute = {"type": "timeseries", "interval": "1m"}
        search = self.renderer.search(rule)
        signal = rule.rule.signal
        calls = [(search, [{"aggregation": "count", **minute}])]
        if isinstance(signal, RatioSignal):
            calls.append((self.renderer.search(rule, rule.ratio_match), [{"aggregation": "count", **minute}]))
        elif isinstance(signal, MeasureSignal):
            metric = facet(self.spec.catalog[signal.field])
            present = self.renderer.search(rule, Predicate(signal.field, Op.EXISTS, None))
            calls.append(
                (
                    present,
                    [{"aggregation": "count", **minute}]
                    + [{"aggregation": kind, "metric": metric, **minute} for kind in ("sum", "min", "max")],
                )
            )
        return calls

    def _bucketed(self, rule: ResolvedRule, window: Window, progress: Progress) -> SideSeries:
        delay_ms = rule.evaluation_delay * 1000
        offset_ms = delay_ms % MINUTE_MS
        read = read_buckets(rule, window)
        history = rule.rule.signal.compare_to // 60 if isinstance(rule.rule.signal, ChangeSignal) else 0
        lookback = getattr(rule.rule.signal, "lookback", 0) // 60 if rule.rule.group_by else 0
        first = read.start - max(history, lookback)
        start_ms, end_ms = first * MINUTE_MS + offset_ms, read.stop * MINUTE_MS + offset_ms
        calls = self._searches(rule)
        columns: list[dict[Group, dict[int, float | None]]] = []
        for done, (search, computes) in enumerate(calls, start=1):
            per_compute: list[dict[Group, dict[int, float | None]]] = [{} for _ in computes]
            for bucket in self._aggregate(search, rule, start_ms, end_ms, computes):
                group = self._group(rule, bucket)
                for index in range(len(computes)):
                    for point in (bucket.get("computes") or {}).get(f"c{index}") or []:
                        at = _epoch_ms(point.get("time"))
                        per_compute[index].setdefault(group, {})[(at - offset_ms) // MINUTE_MS] = _number(
                            point.get("value")
                        )
            columns.extend(per_compute)
            progress(rule.id, done, len(calls))
        rows: dict[Group, dict[int, tuple[Any, ...]]] = {}
        for group, counts in columns[0].items():
            by_bucket = {
                b: (int(count or 0), *(_cell(column, group, b) for column in columns[1:]))
                for b, count in counts.items()
                if count
            }
            if by_bucket:
                rows[group] = by_bucket
        times = list(range(window.start_ms, window.end_ms, MINUTE_MS))
        values = bucketed_values(rule, rows, times, "datadog", start_ms)
        return SideSeries(
            {group: dict(points) for group, points in values.items()},
            matched_in(rule, rows, window),
            " | ".join(search for search, _ in calls),
        )

    def _windowed(self, rule: ResolvedRule, window: Window, progress: Progress) -> SideSeries:
        signal = rule.rule.signal
        assert isinstance(signal, MeasureSignal | CardinalitySignal)
        metric = facet(self.spec.catalog[signal.field])
        kind = "cardinality" if isinstance(signal, CardinalitySignal) else _PERCENTILES[signal.aggregation]
        computes = [{"aggregation": kind, "metric": metric}, {"aggregation": "count"}]
        search = self.renderer.search(rule)
        delay_ms, window_ms = rule.evaluation_delay * 1000, rule.rule.window * 1000
        times = list(range(window.start_ms, window.end_ms, MINUTE_MS))
        total = len(times) + 1
        values: dict[Group, dict[int, float | None]] = {}
        seen: set[Group] = set() if rule.rule.group_by else {()}
        for done, at_ms in enumerate(times, start=1):
            found: dict[Group, float | None] = {}
            for bucket in self._aggregate(search, rule, at_ms - delay_ms - window_ms, at_ms - delay_ms, computes):
                group = self._group(rule, bucket)
                bucket_computes = bucket.get("computes") or {}
                if _number(bucket_computes.get("c1")):
                    seen.add(group)
                    found[group] = _number(bucket_computes.get("c0"))
            # As the engine: a group is evaluated from its first window holding an event; later, a
            # window without one has no percentile, and no distinct value (0).
            empty = 0.0 if isinstance(signal, CardinalitySignal) else None
            for group in seen:
                values.setdefault(group, {})[at_ms] = found.get(group, empty)
            progress(rule.id, done, total)
        read = read_buckets(rule, window)
        offset_ms = delay_ms % MINUTE_MS
        start_ms, end_ms = read.start * MINUTE_MS + offset_ms, read.stop * MINUTE_MS + offset_ms
        totals = self._aggregate(search, rule, start_ms, end_ms, [{"aggregation": "count"}], grouped=False)
        bucket = totals[0] if totals else {}
        progress(rule.id, total, total)
        matched = int(_number((bucket.get("computes") or {}).get("c0")) or 0)
        return SideSeries(values, matched, search)

    # ----------------------------------------------------------------------------------- explain

    def agreement(self, rule: ResolvedRule) -> Agreement:
        """Exact: the searches round nothing, and their per-minute counts, sums, minima and maxima
        compose into the very values the engine computes."""
        return EXACT

    def explain(self, rules: Sequence[ResolvedRule], window: Window) -> dict[str, list[Cause]]:
        causes: dict[str, list[Cause]] = {rule.id: [] for rule in rules}
        wanted = {rule.id for rule in rules}

        def add(rule_ids: Sequence[str], cause: Cause) -> None:
            for rule_id in rule_ids:
                if rule_id in wanted and all(c.code != cause.code for c in causes[rule_id]):
                    causes[rule_id].append(cause)

        spans = [read_buckets(rule, window) for rule in rules]
        self.doctor.since = min(s.start for s in spans) * MINUTE_MS
        self.doctor.until = max(s.stop for s in spans) * MINUTE_MS
        derived_rules = self.doctor.rules_reading(self.spec.catalog.derived)
        for finding in [*self.doctor.pipeline_findings(), *self.doctor.structured_line_findings()]:
            if not finding.ok:
                add(derived_rules, Cause("derived-absent", f"{finding.subject} {finding.message}", finding.fix))
        self._facet_causes(add)
        live = {resource.key: dict(resource.body) for resource in self.doctor.provider.fetch_monitors()}
        for rule in rules:
            body = live.get(rule.id)
            if body is None:
                add([rule.id], Cause("monitor-missing", "no live monitor carries this rule's tag", PUSH_FIX))
                continue
            edited = self._edited(self.renderer.monitor_parts(rule), body)
            if edited:
                add([rule.id], Cause("query-edited", f"the live monitor {body.get('id')} {edited}", PUSH_FIX))
                continue
            late = self._did_not_fire(rule, body, window) or self._lag_exceeds_delay(rule)
            if late:
                add([rule.id], late)
        for rule_id in sorted(self.group_limit_reached & wanted):
            message = (
                f"an aggregate call returned {GROUP_LIMIT} groups, the most it asks for: the others were not compared"
            )
            add([rule_id], Cause("group-limit", message, "verify a shorter window, or narrow the rule with --rule"))
        return causes

    @property
    def lag(self) -> Lag | None:
        return self._lag()

    def _lag_exceeds_delay(self, rule: ResolvedRule) -> Cause | None:
        """Measured delivery lag beyond the rule's ``evaluation_delay``: the monitor judges windows
        before their logs arrive, whatever the values in them."""
        lag = self.lag
        if lag is None or lag.p99_ms <= rule.evaluation_delay * 1000:
            return None
        return Cause(
            "late-delivery",
            f"{lag.describe()}, beyond evaluation_delay {rule.evaluation_delay} s: the monitor judges "
            "windows before their logs arrive",
            f"set evaluation_delay to at least {lag.suggested_delay_s} s",
        )

    def _facet_causes(self, add: Callable[[Sequence[str], Cause], None]) -> None:
        base = self.doctor._base_query()
        for need in self.renderer.facets():
            path, kind = need["path"], need["type"]
            present = self.doctor.count(f"{base} {path}:*")
            if not present:
                continue  # no log carries it: the values (no-match, fewer events) say so
            problem = self.doctor.facet_problem(need, base, present)
            if problem is None:
                continue
            code = "facet-type" if "not a measure" in problem or "not a facet" in problem else "facet-missing"
            what = "Create measure" if need["measure"] else "Create facet"
            fix = f"Logs > Explorer: open a log, click {path[1:]}, {what} (type {kind}); see README, Datadog setup"
            add(need["rules"], Cause(code, f"facet {path} ({kind}): {problem}", fix))

    @staticmethod
    def _edited(parts: MonitorParts, body: dict[str, Any]) -> str:
        """How the live monitor's query differs from the rendered one ('' when it does not)."""
        if body.get("query") != parts.query:
            return f"has query {body.get('query')!r}, rendered {parts.query!r}"
        live = [v.get("search", {}).get("query") for v in (body.get("options") or {}).get("variables") or []]
        rendered = [v["search"]["query"] for v in parts.variables]
        if live != rendered:
            changed = [f"{a!r} (rendered {b!r})" for a, b in zip(live, rendered, strict=False) if a != b]
            return "searches " + ", ".join(changed or [repr(live)])
        return ""

    def _did_not_fire(self, rule: ResolvedRule, body: dict[str, Any], window: Window) -> Cause | None:
        """The monitor's own group states against the provider's values: a group whose values
        breach at T (now that every log has arrived) should have triggered at T or later."""
        seen = self.seen.get(rule.id)
        if seen is None:
            return None
        # An alert at the window's first minute may have begun before it, when the live monitor
        # triggered earlier: only alerts the window saw begin are checked.
        expected = [t for t in alerts(side_transitions(rule, seen, "datadog")) if t.at_ms > window.start_ms]
        if not expected:
            return None
        states = self._group_states(body)
        facets = self.renderer.monitor_parts(rule).group_facets  # tags for a metric (change) monitor
        # A monitor notifying on missing data (an absence rule's) fires for a silent group as "No
        # Data", which pages as its alert does: docs.datadoghq.com/monitors/guide/on_missing_data,
        # "on_missing_data": "show_and_notify_no_data" is "If data is missing Show NO DATA and notify".
        # The group's state then dates it in last_nodata_ts, "Latest timestamp the monitor was in
        # NO_DATA state" (API reference, MonitorStateGroup), beside last_triggered_ts, "Latest
        # timestamp the monitor group triggered".
        notifies_no_data = (body.get("options") or {}).get("on_missing_data") == "show_and_notify_no_data"
        fired = ("last_triggered_ts", "last_nodata_ts") if notifies_no_data else ("last_triggered_ts",)
        missed = []
        for transition in expected:
            name = ",".join(f"{f}:{v}" for f, (_, v) in zip(facets, transition.group, strict=True)) or "*"
            state = states.get(name) or {}
            times = [at for key in fired if isinstance(at := state.get(key), int | float)]
            if not times or max(times) * 1000 < transition.at_ms:
                missed.append((transition, name))
        if not missed:
            return None
        transition, name = missed[0]
        at = datetime.fromtimestamp(transition.at_ms / 1000, UTC).strftime("%H:%M")
        delay = rule.evaluation_delay
        message = (
            f"monitor {body.get('id')} did not alert for {name} at {at} though its values breach there now: "
            "logs arrived after the evaluation (evaluation_delay "
            f"{delay} s)"
        )
        fix = "raise evaluation_delay above the delivery lag (defaults.evaluation_delay, or the rule's)"
        lag = self.lag
        if lag is not None:
            message += f"; {lag.describe()}"
            fix = f"set evaluation_delay to at least {lag.suggested_delay_s} s (now {delay} s)"
        return Cause("late-delivery", message, fix)

    def _group_states(self, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi

        monitor_id = int(body["id"])
        response = self.api.call(
            "read monitor", lambda client: MonitorsApi(client).get_monitor(monitor_id, group_states="all")
        )
        state = (response.to_dict().get("state") or {}).get("groups") or {}
        return {str(k): v for k, v in state.items() if isinstance(v, dict)}


def _cell(column: dict[Group, dict[int, float | None]], group: Group, bucket: int) -> float | None:
    return column.get(group, {}).get(bucket)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _epoch_ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
