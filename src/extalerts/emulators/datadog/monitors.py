"""Monitor queries, evaluated over the emulator's stored logs, and the states they put groups in.

Grammars (API spec, ``POST /api/v1/monitor``, and ``monitors/types/log.md``):

* log alert: ``logs(query).index(index_name).rollup(rollup_method[, measure]).last(time_window) operator #``
  with ``.by("@a,@b")`` between rollup and last; "rollup_method … supports count, avg and cardinality",
  and the UI's "aggregation needs to be selected (min, avg, sum, median, pc75, pc90, pc95, pc98, pc99,
  or max)" for measures;
* formula log alert: ``formula("expr").last(window) operator #`` with ``options.variables`` (``compute``
  aggregation and metric, ``search.query``, ``group_by``);
* query alert on a log-based metric: ``pct_change(sum(last_5m),last_1h):sum:NAME{*}.as_count() > N``
  ("% Change" = ``((a - b) / b) * 100``; ``monitors/types/change-alert.md``); the metric is generated
  from its stored definition (filter query, count or distribution, group by), and "Only logs ingested
  with a timestamp within the past 20 minutes are considered" (``logs_to_metrics.md``).

Evaluation: every minute, on the minute, over ``[T - evaluation_delay - window, T - evaluation_delay)``
("if the value is set to 300 (5min), the timeframe is set to last_5m and the time is 7:00, the monitor
evaluates data from 6:50 to 6:55" — API spec, ``evaluation_delay``), reading only logs received by T.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from extalerts.emulators.datadog.facets import FacetRegistry
from extalerts.emulators.datadog.logs import LogStore, StoredLog, number_of, path_values, text_of
from extalerts.emulators.datadog.search import SearchError, compile_search

MINUTE_MS = 60_000
_STRING = r'"((?:[^"\\]|\\.)*)"'
_LOG_QUERY = re.compile(
    rf"^logs\({_STRING}\)\.index\({_STRING}\)\.rollup\({_STRING}(?:,\s*{_STRING})?\)"
    rf"(?:\.by\({_STRING}\))?\.last\(\"(\d+)([mh])\"\)\s*(<=|>=|<|>|==|!=)\s*(-?\d+(?:\.\d+)?)$"
)
_FORMULA_QUERY = re.compile(rf"^formula\({_STRING}\)\.last\(\"(\d+)([mh])\"\)\s*(<=|>=|<|>|==|!=)\s*(-?\d+(?:\.\d+)?)$")
_CHANGE_QUERY = re.compile(
    r"^(pct_change|change)\((avg|sum|min|max)\(last_(\d+)([mhd])\),\s*last_(\d+)([mhd])\)"
    r":(avg|sum|min|max):([a-zA-Z][a-zA-Z0-9_.]*)\{([^{}]*)\}(?:\s+by\s+\{([^{}]+)\})?(\.as_count\(\))?"
    r"\s*(<=|>=|<|>|==|!=)\s*(-?\d+(?:\.\d+)?)$"
)
_UNITS_MS = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 24 * 60 * MINUTE_MS}
#: Log-based metrics: "Only logs ingested with a timestamp within the past 20 minutes are considered."
METRIC_INGEST_MS = 20 * MINUTE_MS
#: "By default, a group keeps the status for 24 hours before it is dropped" (monitors/types/log.md).
DEFAULT_GROUP_RETENTION_MS = 24 * 60 * MINUTE_MS
#: The emulated org has one index; ``*`` and its name search it, another name matches nothing.
INDEX_NAME = "main"
NUMERIC_AGGREGATIONS = frozenset({"avg", "sum", "min", "max", "median", "pc75", "pc90", "pc95", "pc98", "pc99"})
OK, WARN, ALERT, NO_DATA = "OK", "Warn", "Alert", "No Data"


class MonitorQueryError(ValueError):
    """The query cannot be evaluated; the message says why (reported once per monitor version)."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the value of each group that had data, and the groups whose window was empty."""

    values: dict[str, float | None]
    empty: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Compute:
    search: str
    aggregation: str
    metric: str | None
    group_by: tuple[str, ...]
    index: str
    limit: int | None = None


class CompiledMonitor:
    """A monitor's query, ready to evaluate at any minute."""

    def __init__(
        self,
        monitor: Mapping[str, Any],
        store: LogStore,
        facets: FacetRegistry,
        metric: Callable[[str], Mapping[str, Any] | None],
    ) -> None:
        self.monitor = monitor
        self.store = store
        self.facets = facets
        self.metric = metric
        options = monitor.get("options") or {}
        self.delay_ms = int(options.get("evaluation_delay") or 0) * 1000
        query = str(monitor.get("query") or "")
        kind = monitor.get("type")
        self.computes: dict[str, _Compute] = {}
        self.formula: str | None = None
        self.change: re.Match[str] | None = None
        if kind == "log alert" and (match := _LOG_QUERY.match(query)):
            search, index, rollup, measure, by, amount, unit, self.operator, threshold = match.groups()
            groups = tuple(g.strip() for g in _unescape(by).split(",")) if by else ()
            self.computes["query"] = _Compute(
                _unescape(search), rollup, _unescape(measure) if measure else None, groups, _unescape(index)
            )
            self.formula = "query"
        elif kind == "log alert" and (match := _FORMULA_QUERY.match(query)):
            formula, amount, unit, self.operator, threshold = match.groups()
            self.formula = _unescape(formula)
            for variable in options.get("variables") or []:
                self.computes[str(variable.get("name"))] = _variable(variable)
            _check_formula(self.formula, set(self.computes))
        elif kind in ("query alert", "metric alert") and (match := _CHANGE_QUERY.match(query)):
            self.change = match
            amount, unit = match[3], match[4]
            self.operator, threshold = match[12], match[13]
        else:
            raise MonitorQueryError(f"the emulator does not evaluate {kind} queries like {query!r}")
        self.window_ms = int(amount) * _UNITS_MS[unit]
        self.threshold = float(threshold)
        for name, compute in self.computes.items():
            try:
                self._matcher(compute.search)
            except SearchError as exc:
                raise MonitorQueryError(f"{name}: {exc}") from None
            if compute.aggregation in NUMERIC_AGGREGATIONS and compute.metric is None:
                raise MonitorQueryError(f"{name}: {compute.aggregation} needs a measure")

    @property
    def counts_only(self) -> bool:
        """Count queries: "an empty monitor evaluation is treated as 0" (on_missing_data, API spec)."""
        if self.change is not None:
            return True
        return all(c.aggregation == "count" for c in self.computes.values())

    def empty_value(self) -> float | None:
        """The value of a window with no log for a group: counts are 0, other aggregations have none."""
        if self.change is not None or self.formula is None:
            return None
        zeros = {name: 0.0 if c.aggregation in ("count", "cardinality") else None for name, c in self.computes.items()}
        return evaluate_formula(self.formula, zeros)

    def _matcher(self, search: str) -> Callable[[StoredLog], bool]:
        return compile_search(search, self.facets)

    def evaluate(self, at_ms: int) -> Evaluation:
        end = at_ms - self.delay_ms
        if self.change is not None:
            return self._evaluate_change(end, at_ms)
        per_variable: dict[str, dict[str, float | None]] = {}
        seen: set[str] = set()
        grouped = False
        for name, compute in self.computes.items():
            per_group = self._compute(compute, end - self.window_ms, end, at_ms)
            per_variable[name] = per_group
            if compute.group_by:
                grouped = True
                seen.update(per_group)
        groups = seen if grouped else {"*"}
        values: dict[str, float | None] = {}
        empty: set[str] = set()
        for group in groups:
            env: dict[str, float | None] = {}
            present = False
            for name, compute in self.computes.items():
                key = group if compute.group_by else "*"
                if key in per_variable[name]:
                    env[name] = per_variable[name][key]
                    present = True
                else:
                    # A count over no logs is 0; any other aggregation over none has no value.
                    env[name] = 0.0 if compute.aggregation in ("count", "cardinality") else None
            if not present:
                empty.add(group)
            assert self.formula is not None
            values[group] = evaluate_formula(self.formula, env)
        return Evaluation(values, empty)

    def _compute(self, compute: _Compute, start: int, end: int, at_ms: int) -> dict[str, float | None]:
        """Per group: the aggregate over the window's matching logs (groups with no such log are absent)."""
        if compute.index not in ("*", INDEX_NAME):
            return {}
        window = self.store.between(start, end, received_by_ms=at_ms)
        logs = self.store.matching(compute.search, self._matcher(compute.search), window)
        by_group: dict[str, list[StoredLog]] = {}
        for log in logs:
            for group in _group_names(log, compute.group_by):
                by_group.setdefault(group, []).append(log)
        if compute.limit is not None and len(by_group) > compute.limit:
            kept = sorted(by_group, key=lambda g: (-len(by_group[g]), g))[: compute.limit]
            by_group = {g: by_group[g] for g in kept}
        return {group: self._aggregate(compute, members) for group, members in by_group.items()}

    def _aggregate(self, compute: _Compute, logs: Sequence[StoredLog]) -> float | None:
        if compute.aggregation == "count":
            return float(len(logs))
        assert compute.metric is not None
        path = compute.metric.removeprefix("@")
        if compute.aggregation == "cardinality":
            # "Monitor over a facet or an attribute … alerts over the Unique value count" — any attribute.
            return float(len({text_of(v) for log in logs for v in _attribute(log, path) if v is not None}))
        # "Monitor over measure: If a measure is selected, the monitor alerts over the numerical value of the
        # log facet": numeric aggregation needs a measure; without one there is no value (conservative).
        if not self.facets.measure(compute.metric):
            return None
        numbers = sorted(n for log in logs for v in _attribute(log, path) if (n := number_of(v)) is not None)
        return aggregate(compute.aggregation, numbers)

    # ------------------------------------------------------------------------------- metric change alerts

    def _evaluate_change(self, end: int, at_ms: int) -> Evaluation:
        match = self.change
        assert match is not None
        kind, time_aggr = match[1], match[2]
        shift_ms = int(match[5]) * _UNITS_MS[match[6]]
        name, scope, by = match[8], match[9], match[10]
        definition = self.metric(name)
        if definition is None:
            return Evaluation({})  # no such metric: no data
        tags = [t.strip() for t in by.split(",")] if by else []
        current = self._metric_points(definition, scope, tags, end - self.window_ms, end, at_ms)
        previous = self._metric_points(definition, scope, tags, end - shift_ms - self.window_ms, end - shift_ms, at_ms)
        values: dict[str, float | None] = {}
        for group in set(current) | set(previous) | ({"*"} if not tags else set()):
            a = _time_aggregate(time_aggr, current.get(group, []))
            b = _time_aggregate(time_aggr, previous.get(group, []))
            if kind == "change":
                values[group] = None if a is None or b is None else a - b
            else:
                values[group] = None if a is None or not b else (a - b) / b * 100
        return Evaluation(values)

    def _metric_points(
        self, definition: Mapping[str, Any], scope: str, tags: list[str], start: int, end: int, at_ms: int
    ) -> dict[str, list[float]]:
        attributes = definition.get("attributes") or {}
        search = str((attributes.get("filter") or {}).get("query") or "*")
        compute = attributes.get("compute") or {}
        tag_paths = {
            g.get("tag_name") or g["path"].removeprefix("@"): g["path"] for g in attributes.get("group_by") or []
        }
        window = [
            log
            for log in self.store.between(start, end, received_by_ms=at_ms)
            if log.received_ms - log.timestamp_ms <= METRIC_INGEST_MS
        ]
        points: dict[str, list[float]] = {}
        wanted = [s.strip() for s in scope.split(",") if s.strip() and s.strip() != "*"]
        for log in self.store.matching(f"metric:{search}", compile_search(search, self.facets), window):
            log_tags = {
                f"{tag}:{text_of(v)}"
                for tag, path in tag_paths.items()
                for v in _attribute(log, path.removeprefix("@"))
            }
            if any(w not in log_tags for w in wanted):
                continue
            if compute.get("aggregation_type") == "distribution":
                raw = compute.get("path") or ""
                point = next((number_of(v) for v in _attribute(log, str(raw).removeprefix("@"))), None)
                if point is None:
                    continue
            else:
                point = 1.0
            missing = [t for t in tags if not any(lt.startswith(t + ":") for lt in log_tags)]
            if missing:
                continue
            group = ",".join(sorted(lt for lt in log_tags if lt.split(":", 1)[0] in tags)) or "*"
            points.setdefault(group, []).append(point)
        return points


def _time_aggregate(kind: str, points: list[float]) -> float | None:
    if kind == "sum":
        return float(sum(points))  # a count metric sums to 0 over no points (as_count)
    if not points:
        return None
    return {"avg": sum(points) / len(points), "min": min(points), "max": max(points)}[kind]


def _variable(variable: Mapping[str, Any]) -> _Compute:
    if variable.get("data_source") != "logs":
        raise MonitorQueryError(f"variable {variable.get('name')!r}: only data_source logs is emulated")
    compute = variable.get("compute") or {}
    group_by = variable.get("group_by") or []
    limits = [int(g["limit"]) for g in group_by if g.get("limit")]
    indexes = variable.get("indexes") or ["*"]
    # "Omit or use [] to query all indexes at once" (API spec, indexes).
    index = "*" if "*" in indexes or not indexes else str(indexes[0])
    return _Compute(
        str((variable.get("search") or {}).get("query") or ""),
        str(compute.get("aggregation") or "count"),
        compute.get("metric"),
        tuple(str(g["facet"]) for g in group_by),
        index,
        min(limits) if limits else None,
    )


def _attribute(log: StoredLog, path: str) -> list[Any]:
    if "." not in path and path in log.reserved and path in ("host", "source", "status", "service"):
        return [log.reserved[path]]
    return path_values(log.attributes, path)


def _group_names(log: StoredLog, facets: Sequence[str]) -> list[str]:
    """A log's group names (``@facet:value``, joined with ``,``): one per value of an array attribute; none
    when a group-by attribute is missing (the log is in no group: the docs do not say; conservative)."""
    if not facets:
        return ["*"]
    names = [""]
    for facet in facets:
        values = [text_of(v) for v in _attribute(log, facet.removeprefix("@")) if not isinstance(v, dict | list)]
        if not values:
            return []
        names = [
            f"{prefix},{facet}:{v}" if prefix else f"{facet}:{v}" for prefix in names for v in dict.fromkeys(values)
        ]
    return names


def aggregate(kind: str, numbers: Sequence[float]) -> float | None:
    """A numeric aggregation over sorted values; percentiles interpolate linearly between the nearest
    ranks (the docs do not say how; the same as ``extalerts test``)."""
    if not numbers:
        return None
    if kind == "avg":
        return sum(numbers) / len(numbers)
    if kind == "sum":
        return float(sum(numbers))
    if kind == "min":
        return numbers[0]
    if kind == "max":
        return numbers[-1]
    fraction = 0.5 if kind == "median" else int(kind[2:]) / 100
    position = (len(numbers) - 1) * fraction
    low, high = numbers[math.floor(position)], numbers[math.ceil(position)]
    return low + (high - low) * (position - math.floor(position))


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


# --------------------------------------------------------------------------------------------- formulas

_FORMULA_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/(),]))")


def _tokens(formula: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = formula.strip()
    while position < len(text):
        match = _FORMULA_TOKEN.match(text, position)
        if match is None:
            raise MonitorQueryError(f"formula {formula!r}: unexpected {text[position]!r}")
        tokens.append(match.group(0).strip())
        position = match.end()
    return tokens


def _check_formula(formula: str, names: set[str]) -> None:
    evaluate_formula(formula, dict.fromkeys(names, 1.0))
    unknown = {t for t in _tokens(formula) if re.fullmatch(r"[A-Za-z_]\w*", t)} - names - set(_FUNCTIONS)
    if unknown:
        raise MonitorQueryError(f"formula {formula!r} reads {', '.join(sorted(unknown))}, which no variable defines")


def _cutoff_min(value: float | None, bound: float | None) -> float | None:
    # "cutoff_min() Remove metric values under a threshold value … do not remove values that are equal to the
    # threshold." (dashboards/functions/exclusion.md)
    return None if value is None or bound is None or value < bound else value


def _cutoff_max(value: float | None, bound: float | None) -> float | None:
    return None if value is None or bound is None or value > bound else value


_FUNCTIONS: dict[str, Callable[..., float | None]] = {
    "cutoff_min": _cutoff_min,
    "cutoff_max": _cutoff_max,
    "abs": lambda value: None if value is None else abs(value),
    "default_zero": lambda value: 0.0 if value is None else value,
}


def evaluate_formula(formula: str, env: Mapping[str, float | None]) -> float | None:
    """The formula's value; ``None`` (no value) when an operand has none or a division is by zero."""
    tokens = _tokens(formula)
    position = 0

    def peek() -> str:
        return tokens[position] if position < len(tokens) else ""

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = peek()
        if not token or (expected is not None and token != expected):
            raise MonitorQueryError(f"formula {formula!r}: expected {expected or 'more'} at token {position + 1}")
        position += 1
        return token

    def expression() -> float | None:
        value = term()
        while peek() in ("+", "-"):
            op, right = take(), term()
            value = None if value is None or right is None else value + right if op == "+" else value - right
        return value

    def term() -> float | None:
        value = factor()
        while peek() in ("*", "/"):
            op, right = take(), factor()
            if value is None or right is None:
                value = None
            elif op == "*":
                value = value * right
            else:
                value = None if right == 0 else value / right
        return value

    def factor() -> float | None:
        item = take()
        if item == "-":
            inner = factor()
            return None if inner is None else -inner
        if item == "(":
            inner = expression()
            take(")")
            return inner
        if re.fullmatch(r"\d+(?:\.\d+)?", item):
            return float(item)
        if peek() == "(":
            function = _FUNCTIONS.get(item)
            if function is None:
                raise MonitorQueryError(f"formula {formula!r}: unknown function {item!r}")
            take("(")
            arguments = [expression()]
            while peek() == ",":
                take(",")
                arguments.append(expression())
            take(")")
            try:
                return function(*arguments)
            except TypeError:
                raise MonitorQueryError(f"formula {formula!r}: wrong arguments to {item}") from None
        if item not in env:
            raise MonitorQueryError(f"formula {formula!r}: {item!r} is not a variable")
        return env[item]

    value = expression()
    if position != len(tokens):
        raise MonitorQueryError(f"formula {formula!r}: unexpected {peek()!r}")
    return value


# --------------------------------------------------------------------------------------------- states


@dataclass
class GroupState:
    status: str = OK
    first_seen_ms: int = 0
    last_data_ms: int = 0
    #: When the current status began, and when it was last notified (renotify counts from there).
    since_ms: int = 0
    notified_ms: int = 0


@dataclass(frozen=True)
class Change:
    """A group's status change (or a renotification, ``before == after``) at one evaluation."""

    group: str
    before: str
    after: str
    value: float | None
    at_ms: int
    renotify: bool = False


def breaches(operator: str, value: float, threshold: float) -> bool:
    return {
        ">": value > threshold,
        ">=": value >= threshold,
        "<": value < threshold,
        "<=": value <= threshold,
        "==": value == threshold,
        "!=": value != threshold,
    }[operator]


class MonitorStates:
    """Group states of one monitor across evaluations."""

    def __init__(self, compiled: CompiledMonitor) -> None:
        self.compiled = compiled
        options = compiled.monitor.get("options") or {}
        thresholds = options.get("thresholds") or {}
        self.critical = float(thresholds.get("critical", compiled.threshold))
        self.critical_recovery = _float(thresholds.get("critical_recovery"))
        self.warning = _float(thresholds.get("warning"))
        self.warning_recovery = _float(thresholds.get("warning_recovery"))
        self.on_missing_data = options.get("on_missing_data")
        self.notify_no_data = bool(options.get("notify_no_data"))
        # "If omitted, 2x the evaluation timeframe is used for query alerts" (no_data_timeframe, minutes).
        timeframe = options.get("no_data_timeframe")
        self.no_data_ms = int(timeframe) * MINUTE_MS if timeframe else 2 * compiled.window_ms
        self.new_group_delay_ms = int(options.get("new_group_delay") or 0) * 1000
        self.retention_ms = _duration_ms(options.get("group_retention_duration")) or DEFAULT_GROUP_RETENTION_MS
        renotify = options.get("renotify_interval")
        self.renotify_ms = int(renotify) * MINUTE_MS if renotify else None
        # "If renotify_interval is set, defaults to renotify on Alert and No Data." (API spec)
        statuses = options.get("renotify_statuses") or ["alert", "no data"]
        self.renotify_statuses = {str(s).lower() for s in statuses}
        self.groups: dict[str, GroupState] = {}

    def next_status(self, status: str, value: float | None) -> str:
        op = self.compiled.operator
        if value is None:
            return status  # no value: the last known status stays
        if breaches(op, value, self.critical):
            return ALERT
        if status == ALERT and breaches(
            op, value, self.critical_recovery if self.critical_recovery is not None else self.critical
        ):
            return ALERT
        if self.warning is not None and breaches(op, value, self.warning):
            return WARN
        if status == WARN and self.warning is not None:
            recovery = self.warning_recovery if self.warning_recovery is not None else self.warning
            if breaches(op, value, recovery):
                return WARN
        return OK

    def step(self, at_ms: int) -> list[Change]:
        evaluation = self.compiled.evaluate(at_ms)
        changes: list[Change] = []
        for group in evaluation.values:
            # A group exists once it had data; a monitor without groups has its one group from the start.
            if group not in self.groups and (group not in evaluation.empty or group == "*"):
                self.groups[group] = GroupState(first_seen_ms=at_ms, since_ms=at_ms)
        for group, state in list(self.groups.items()):
            has_data = group in evaluation.values and group not in evaluation.empty
            if has_data:
                state.last_data_ms = at_ms
            elif group != "*" and at_ms - max(state.last_data_ms, state.first_seen_ms) > self.retention_ms:
                del self.groups[group]  # dropped after the retention duration
                continue
            if at_ms - state.first_seen_ms < self.new_group_delay_ms:
                continue  # "Time (in seconds) to skip evaluations for new groups"
            value = evaluation.values[group] if group in evaluation.values else self.compiled.empty_value()
            after = self._status(state, value, has_data, at_ms)
            if after != state.status:
                changes.append(Change(group, state.status, after, value, at_ms))
                state.status, state.since_ms, state.notified_ms = after, at_ms, at_ms
            elif (
                self.renotify_ms
                and after.lower() in self.renotify_statuses
                and at_ms - state.notified_ms >= self.renotify_ms
            ):
                changes.append(Change(group, after, after, value, at_ms, renotify=True))
                state.notified_ms = at_ms
        return changes

    def _status(self, state: GroupState, value: float | None, has_data: bool, at_ms: int) -> str:
        if not has_data:
            missing = self.on_missing_data
            # on_missing_data: "show_no_data", "show_and_notify_no_data" show No Data; "resolve" resolves;
            # default: "For monitors using Count queries, an empty monitor evaluation is treated as 0 …
            # other than Count … shows the last known status." (API spec)
            if missing in ("show_no_data", "show_and_notify_no_data"):
                return NO_DATA
            if missing == "resolve":
                return OK
            if missing is None and self.notify_no_data and at_ms - state.last_data_ms >= self.no_data_ms:
                return NO_DATA
            if not self.compiled.counts_only:
                return state.status
        return self.next_status(OK if state.status == NO_DATA else state.status, value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _duration_ms(text: Any) -> int | None:
    match = re.fullmatch(r"(\d+)([mhd])", str(text or ""))
    return int(match[1]) * _UNITS_MS[match[2]] if match else None
