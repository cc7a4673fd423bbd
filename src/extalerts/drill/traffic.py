"""What a drill sends: events that keep a rule quiet, and events that must make it fire.

Events are built from the rule itself, so any rule can be drilled: a witness event is constructed
for the rule's filter (a conjunct of its disjunctive form at a time, checked against the reference
Python semantics), then the signal decides how many per minute and with which values. Each drill
has three phases, in minutes of provider time:

* warm-up: healthy traffic long enough that every evaluation from the incident's start on reads
  only drill traffic, in whole windows (and, for ``change``, whole baselines): an evaluation reads
  back its delay, its window and its comparison period. Shorter, an evaluation at the incident's
  start would compare a window of healthy traffic against a baseline holding a minute of it, and
  alert on the warm-up itself;
* incident: traffic that breaches the critical threshold once a whole window of it is in view;
* recovery: healthy traffic again, until the monitor recovers.

"Healthy" is on the quiet side of every threshold (recovery and warning included). The plan also
says how soon a correct monitor can alert: the evaluation delay, then as many minutes of incident
traffic as a window needs to cross the critical threshold. An alert sooner than that cannot come
from the incident, so the drill fails it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from extalerts.errors import ExtalertsError
from extalerts.fields import ARRAY, Field, FieldCatalog, FieldType
from extalerts.filter.ast import And, Expr, Not, Op, Or, Predicate, conjunction, to_nnf
from extalerts.filter.python import to_python
from extalerts.spec.loader import ResolvedRule
from extalerts.spec.models import (
    AbsenceSignal,
    Aggregation,
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    MeasureSignal,
    RatioSignal,
    breaches,
)

#: More events than this in one minute is not a drill any more.
MAX_EVENTS_PER_MINUTE = 20_000
_MAX_CONJUNCTS = 256
#: The value drill events carry in group-by fields: their own group, apart from real traffic.
GROUP_VALUE = "extalerts-drill"
Event = dict[str, Any]

#: How far beyond a count threshold a drill's incident goes (see ``enough``).
DRILL_MARGIN = 1.1


class DrillPlanError(ExtalertsError):
    """The rule cannot be drilled as written (e.g. no event can match its filter)."""


def _dnf(expr: Expr) -> list[list[Predicate]]:
    """Disjunctive normal form of an NNF expression, as lists of predicates (capped)."""
    match expr:
        case Predicate():
            return [[expr]]
        case Or(items):
            out: list[list[Predicate]] = []
            for item in items:
                out.extend(_dnf(item))
            return out[:_MAX_CONJUNCTS]
        case And(items):
            product: list[list[Predicate]] = [[]]
            for item in items:
                product = [left + right for left in product for right in _dnf(item)][:_MAX_CONJUNCTS]
            return product
    raise TypeError(f"not in negation normal form: {expr!r}")  # pragma: no cover


class _Draft:
    """An event under construction: the Logpush fields, plus the structured log line's keys."""

    def __init__(self, base: Event) -> None:
        self.event = copy.deepcopy(base)
        self.line: dict[str, Any] = {}
        self.messages: list[str] = []
        self.level = "log"

    def _node(self, steps: tuple[str, ...]) -> dict[str, Any]:
        node = self.event
        for step in steps:
            node = node.setdefault(step, {})
        return node

    def set(self, field: Field, value: Any) -> None:
        path = field.paths[0]
        if field.derived_key is not None:
            self.line[field.derived_key] = value
        elif field.name == "Logs.Message":
            self.messages.append(str(value))
        elif field.name == "Logs.Level":
            self.level = str(value)
        elif path[-1] == ARRAY:  # a list of scalars (ScriptTags)
            self._node(path[:-2]).setdefault(path[-2], []).append(value)
        elif ARRAY in path:  # a list of objects (Exceptions[].Name): set it on the first
            at = path.index(ARRAY)
            items = self._node(path[: at - 1]).setdefault(path[at - 1], [])
            if not items:
                items.append({})
            node = items[0]
            for step in path[at + 1 : -1]:
                node = node.setdefault(step, {})
            node[path[-1]] = value
        else:
            self._node(path[:-1])[path[-1]] = value

    def unset(self, field: Field) -> None:
        path = field.paths[0]
        if field.derived_key is not None:
            self.line.pop(field.derived_key, None)
        elif field.name == "Logs.Message":
            self.messages.clear()
        elif path[-1] == ARRAY:
            self._node(path[:-2])[path[-2]] = []
        elif ARRAY in path:
            at = path.index(ARRAY)
            for item in self._node(path[: at - 1]).get(path[at - 1], []):
                if isinstance(item, dict):
                    item.pop(path[-1], None)
        else:
            self._node(path[:-1]).pop(path[-1], None)

    def build(self, at_ms: int) -> Event:
        event = copy.deepcopy(self.event)
        event["EventTimestampMs"] = at_ms
        # The structured line is a console.log of its own, first: it is read from the first `log`
        # entry only, joined with whatever else that entry holds (README, "Structured log line").
        logs = []
        if self.line:
            line = json.dumps(self.line, separators=(",", ":"), sort_keys=True)
            logs.append({"Level": "log", "Message": [line], "TimestampMs": at_ms})
        if self.messages:
            logs.append({"Level": self.level, "Message": list(self.messages), "TimestampMs": at_ms})
        if logs:
            event["Logs"] = logs
        return event


def _satisfying(pred: Predicate, field: Field) -> Any:
    value = pred.value
    if pred.op is Op.EQ:
        return value
    if pred.op is Op.IN:
        assert isinstance(value, tuple)
        return value[0]
    if pred.op is Op.EXISTS:
        return 1 if field.type.is_numeric else GROUP_VALUE
    if pred.op is Op.CONTAINS:
        return f"{value}" if field.type is not FieldType.STRING_LIST else f"extalerts drill: {value}"
    assert isinstance(value, int | float)
    step = 1 if field.type is FieldType.INTEGER else 0.5
    return {Op.GT: value + step, Op.GE: value, Op.LT: value - step, Op.LE: value}[pred.op]


def _violating(pred: Predicate, field: Field) -> Any:
    """A value for which the (positive) predicate is false; None means "leave the field out"."""
    value = pred.value
    if pred.op in (Op.EQ, Op.IN):
        excluded = set(value) if isinstance(value, tuple) else {value}
        if field.type.is_numeric:
            return max((v for v in excluded if isinstance(v, int | float)), default=0) + 1
        if field.type is FieldType.BOOLEAN:
            return not next(iter(excluded))
        choices = [v for v in field.known_values if v not in excluded]
        return choices[0] if choices else f"not-{next(iter(excluded))}"
    if pred.op in (Op.EXISTS, Op.CONTAINS):
        return None
    assert isinstance(value, int | float)
    step = 1 if field.type is FieldType.INTEGER else 0.5
    return {Op.GT: value, Op.GE: value - step, Op.LT: value, Op.LE: value + step}[pred.op]


def witness(expr: Expr | None, catalog: FieldCatalog, base: Event, extra: dict[str, Any] | None = None) -> _Draft:
    """A draft event matching ``expr`` (with ``extra`` field values set first)."""
    candidates = [[]] if expr is None else _dnf(to_nnf(expr))
    matches = to_python(expr, catalog)
    for conjunct in candidates:
        draft = _Draft(base)
        for name, value in (extra or {}).items():
            draft.set(catalog[name], value)
        check = to_python(And(tuple(conjunct)), catalog) if conjunct else None
        for pred in conjunct:
            field = catalog[pred.field]
            if pred.negated:
                continue
            single = to_python(pred, catalog)
            if not single(draft.build(0)):
                draft.set(field, _satisfying(pred, field))
        for pred in conjunct:
            if not pred.negated:
                continue
            field = catalog[pred.field]
            if to_python(pred, catalog)(draft.build(0)):
                continue
            replacement = _violating(pred.negate(), field)
            if replacement is None:
                draft.unset(field)
            else:
                draft.set(field, replacement)
        probe = draft.build(0)
        if (check is None or check(probe)) and matches(probe):
            return draft
    raise DrillPlanError("no event can match the rule's filter: it can never fire")


def base_event(script: str) -> Event:
    """A plain, successful fetch: the starting point every drill event is built from."""
    return {
        "EventType": "fetch",
        "Outcome": "ok",
        "ScriptName": script,
        "CPUTimeMs": 1,
        "WallTimeMs": 2,
        "Event": {
            "RayID": "0000000000000000",
            "Request": {"URL": "https://drill.invalid/extalerts", "Method": "GET"},
            "Response": {"Status": 200},
        },
        "Logs": [],
        "Exceptions": [],
        "ScriptTags": [],
    }


@dataclass(frozen=True)
class Phase:
    """Per minute: how many events, each built by ``make(index)``."""

    per_minute: int
    make: Callable[[int, int], Event]  # (index, at_ms) -> event

    def events(self, minute_start_ms: int, offset: int = 0) -> Iterator[Event]:
        spacing = 60_000 // max(self.per_minute, 1)
        for index in range(self.per_minute):
            yield self.make(offset + index, minute_start_ms + index * spacing)


@dataclass(frozen=True)
class Traffic:
    warmup_minutes: int
    #: Minutes of incident traffic: a window plus the evaluation period, so one evaluation sees only it.
    incident_minutes: int
    healthy: Phase
    incident: Phase
    #: Longest a correct monitor may take to alert after the incident starts (and to recover after it ends).
    expected_seconds: int
    #: "breach" signals fire on incident traffic; "silence" ones (absence, "<" thresholds) on its absence.
    description: str
    #: Soonest a correct monitor can alert after the incident starts; on the minute, a minute later.
    earliest_seconds: int = 0
    #: Where ``earliest_seconds`` comes from, for the drill's verdict.
    earliest_reason: str = ""
    #: The warm-up's first minute, when it differs: a whole window's worth of healthy traffic, so that
    #: a window or baseline still holding only the start of the warm-up does not breach.
    opening: Phase | None = None

    def phase_at(self, minute: int) -> Phase:
        """The phase of the drill's ``minute`` (0: the first minute of warm-up)."""
        if minute == 0 and self.opening is not None:
            return self.opening
        incident = self.warmup_minutes <= minute < self.warmup_minutes + self.incident_minutes
        return self.incident if incident else self.healthy

    def minute_events(self, minute: int, minute_start_ms: int) -> list[Event]:
        """The events of the drill's ``minute``, which starts at ``minute_start_ms``."""
        phase = self.phase_at(minute)
        return list(phase.events(minute_start_ms, offset=minute * phase.per_minute))


def warmup_minutes(rule: ResolvedRule) -> int:
    """Minutes of healthy traffic so that every evaluation from the incident's start on reads drill
    traffic only, and whole: an evaluation reads back its delay, its window and (change) its
    comparison period; Splunk's time range is the same span (``SplunkRenderer.time_range``), and its
    schedule only moves runs later. One more minute gives a quiet evaluation of complete data first."""
    r = rule.rule
    baseline = r.signal.compare_to if isinstance(r.signal, ChangeSignal) else 0
    return math.ceil((rule.evaluation_delay + r.window + baseline) / 60) + 1


def minutes_to_breach(
    window_value: Callable[[int], float | None], window_minutes: int, operator: str, critical: float
) -> int:
    """The fewest minutes of incident traffic a window (the rest of it healthy) needs to be beyond
    ``critical``; ``window_value(k)`` is the window's value holding ``k`` incident minutes."""
    for minutes in range(1, window_minutes + 1):
        value = window_value(minutes)
        if value is not None and breaches(operator, value, critical):
            return minutes
    raise DrillPlanError(
        f"the drill's incident traffic does not take the rule's value {operator} {critical:g} within a "
        f"window: the rule can never fire"
    )


def _reachable(operator: str, threshold: float, lowest: float, highest: float) -> bool:
    """Whether a value within [lowest, highest] can be ``operator threshold``."""
    return {
        ">": highest > threshold,
        ">=": highest >= threshold,
        "<": lowest < threshold,
        "<=": lowest <= threshold,
    }[operator]


def _thresholds(rule: ResolvedRule) -> tuple[str, float, list[float]]:
    t = rule.rule.thresholds
    if t is None:
        return "<", 1.0, [1.0]
    values = [v for v in (t.critical, t.critical_recovery, t.warning, t.warning_recovery) if v is not None]
    return t.operator, t.critical, values


def plan_traffic(
    rule: ResolvedRule,
    catalog: FieldCatalog,
    script: str,
    *,
    cron_seconds: int = 60,
    marks: dict[str, Any] | None = None,
) -> Traffic:
    """How to drill ``rule``; raises DrillPlanError when it cannot be made to fire.

    ``marks`` are field values every event carries (a live drill marks its events with the drill id)."""
    r = rule.rule
    signal = r.signal
    window_minutes = max(1, r.window // 60)
    operator, critical, levels = _thresholds(rule)
    upward = operator in (">", ">=")
    groups: dict[str, Any] = {name: 0 if catalog[name].type.is_numeric else GROUP_VALUE for name in r.group_by}
    base = base_event(script)
    expected = r.window + rule.evaluation_delay + cron_seconds + 120
    #: The value of a window holding k minutes of incident traffic, the rest of it healthy.
    window_value: Callable[[int], float | None]
    #: Whether a window (or a change's baseline) holding part of the warm-up can breach: a count that
    #: must stay high, a baseline that must not be smaller than the window it is compared with.
    partial_warmup_breaches = False

    def fixed(draft: _Draft) -> Callable[[int, int], Event]:
        return lambda index, at_ms: draft.build(at_ms)

    def enough(count: float) -> int:
        """Events per minute so that a window of them is beyond ``count`` by a tenth: a few events a
        provider sees late (a loaded intake, a sped-up sandbox clock) must not keep a drill from
        crossing a threshold it was built to cross by one event."""
        return max(1, math.floor(count * DRILL_MARGIN / window_minutes) + 1)

    def extra_groups(field_name: str | None = None) -> dict[str, Any]:
        return {**(marks or {}), **{k: v for k, v in groups.items() if k != field_name}}

    def counted(healthy: Phase, incident: Phase) -> Callable[[int], float | None]:
        return lambda k: float((window_minutes - k) * healthy.per_minute + k * incident.per_minute)

    matching = witness(rule.filter, catalog, base, extra_groups())
    if isinstance(signal, CountSignal):
        if upward:
            healthy = Phase(0, fixed(matching))
            incident = Phase(enough(critical), fixed(matching))
            description = f"{incident.per_minute}/min matching events for one window"
        else:
            healthy = Phase(enough(max(levels)), fixed(matching))
            incident = Phase(0, fixed(matching))
            description = "matching traffic, then silence"
            partial_warmup_breaches = True
        window_value = counted(healthy, incident)
    elif isinstance(signal, AbsenceSignal):
        healthy = Phase(1, fixed(matching))
        incident = Phase(0, fixed(matching))
        description = "one event a minute, then silence"
        window_value = counted(healthy, incident)
    elif isinstance(signal, RatioSignal):
        assert rule.ratio_match is not None
        bad = witness(conjunction(rule.filter, rule.ratio_match), catalog, base, extra_groups())
        good = witness(conjunction(rule.filter, Not(rule.ratio_match)), catalog, base, extra_groups())
        if not _reachable(operator, critical, 0.0, 100.0):
            raise DrillPlanError(f"a ratio (percent) can never be {operator} {critical:g}: the rule can never fire")
        per_minute = enough(signal.min_events)
        healthy = Phase(per_minute, fixed(good if upward else bad))
        incident = Phase(per_minute, fixed(bad if upward else good))
        description = f"{per_minute}/min events, all {'matching' if upward else 'not matching'} during the incident"

        def window_value(k: int) -> float | None:
            matching_minutes = k if upward else window_minutes - k
            return 100.0 * matching_minutes / window_minutes

    elif isinstance(signal, MeasureSignal):
        field = catalog[signal.field]
        quiet = (0.0 if min(levels) > 0 else min(levels) - 1) if upward else max(levels) * 2 + 1
        loud = max(levels) * 2 + 1 if upward else (0.0 if min(levels) > 0 else min(levels) - 1)
        if field.type is FieldType.INTEGER:
            quiet, loud = math.floor(quiet), math.ceil(loud) if upward else math.floor(loud)
        quiet_draft = witness(rule.filter, catalog, base, {**extra_groups(), signal.field: quiet})
        loud_draft = witness(rule.filter, catalog, base, {**extra_groups(), signal.field: loud})
        healthy = Phase(5, fixed(quiet_draft))
        incident = Phase(5, fixed(loud_draft))
        description = f"5/min events with {signal.field}={loud:g} during the incident ({quiet:g} otherwise)"
        window_value = _measured(signal.aggregation, float(quiet), float(loud), window_minutes, per_minute=5)
    elif isinstance(signal, CardinalitySignal):
        if not upward:
            raise DrillPlanError("a drill cannot lower a distinct count below a threshold yet")
        field = catalog[signal.field]
        draft = witness(rule.filter, catalog, base, extra_groups(signal.field))

        def distinct(index: int, at_ms: int) -> Event:
            draft.set(field, index if field.type.is_numeric else f"drill-{index}")
            return draft.build(at_ms)

        healthy = Phase(0, distinct)
        incident = Phase(enough(critical), distinct)
        description = f"{incident.per_minute}/min distinct {signal.field} values"
        window_value = counted(healthy, incident)  # every incident event carries a new value
    else:
        assert isinstance(signal, ChangeSignal)
        steady = 4
        if upward:
            spike = math.ceil(steady * (1 + critical / 100)) * 2 + 1
        else:
            if not _reachable(operator, critical, -100.0, math.inf):
                raise DrillPlanError(f"a change can never be {operator} {critical:g}%: the rule can never fire")
            spike = 0
        healthy = Phase(steady, fixed(matching))
        incident = Phase(spike, fixed(matching))
        partial_warmup_breaches = upward
        expected += 60
        description = f"{steady}/min baseline, {spike}/min during the incident"

        def window_value(k: int) -> float | None:
            # Against a baseline window of healthy traffic only (the warm-up covers it).
            baseline = window_minutes * steady
            current = (window_minutes - k) * steady + k * spike
            return 100.0 * (current - baseline) / baseline

    # The first minute alone then holds as much as a window of healthy traffic: a window or baseline
    # holding only part of the warm-up holds that minute (later ones only once it is whole).
    opening = Phase(healthy.per_minute * window_minutes, healthy.make) if partial_warmup_breaches else None
    for phase in (healthy, incident, *([opening] if opening else [])):
        if phase.per_minute > MAX_EVENTS_PER_MINUTE:
            raise DrillPlanError(
                f"firing needs {phase.per_minute} events a minute, more than a drill sends "
                f"({MAX_EVENTS_PER_MINUTE}); lower the threshold or drill on a test account"
            )
    breach = minutes_to_breach(window_value, window_minutes, operator, critical)
    # An evaluation on the minute sees the last of those minutes after the delay; one between minutes
    # (or Splunk's time since a group's last event, sent at the start of its minute) sees it in part.
    delay_minutes = rule.evaluation_delay // 60
    earliest = (delay_minutes + breach - 1) * 60
    reason = (
        f"evaluation delay {delay_minutes}m, then {breach}m of incident traffic to cross the threshold, "
        "the last of which an evaluation may see in part"
    )
    # Without healthy traffic there is nothing to warm up: no evaluation can read a partial window of it.
    warmup = warmup_minutes(rule) if healthy.per_minute else 1
    # A whole window of incident traffic that some scheduled evaluation sees entirely: window + period.
    incident_minutes = window_minutes + max(1, cron_seconds // 60)
    return Traffic(warmup, incident_minutes, healthy, incident, expected, description, earliest, reason, opening)


def _measured(
    aggregation: Aggregation, quiet: float, loud: float, window_minutes: int, per_minute: int
) -> Callable[[int], float | None]:
    """A measure's window value holding k minutes of ``loud`` events, the rest ``quiet`` ones. A
    percentile lies between the window's least and greatest value; the drill takes the one nearer the
    threshold (a provider's estimate may differ from the engine's interpolation), so the earliest time
    it allows is never later than a correct monitor's."""

    def value(k: int) -> float | None:
        loud_events, quiet_events = k * per_minute, (window_minutes - k) * per_minute
        if aggregation is Aggregation.SUM:
            return loud * loud_events + quiet * quiet_events
        if aggregation is Aggregation.AVG:
            return (loud * loud_events + quiet * quiet_events) / (loud_events + quiet_events)
        lowest = min(loud, quiet) if quiet_events else loud
        highest = max(loud, quiet) if quiet_events else loud
        if aggregation is Aggregation.MIN:
            return lowest
        if aggregation is Aggregation.MAX:
            return highest
        return highest if loud >= quiet else lowest

    return value
