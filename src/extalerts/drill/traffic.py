"""What a drill sends: events that keep a rule quiet, and events that must make it fire.

Events are built from the rule itself, so any rule can be drilled: a witness event is constructed
for the rule's filter (a conjunct of its disjunctive form at a time, checked against the reference
Python semantics), then the signal decides how many per minute and with which values. Each drill
has three phases, in minutes of provider time:

* warm-up: healthy traffic long enough for the monitor to know the group (and, for ``change``, to
  fill the baseline window);
* incident: traffic that breaches the critical threshold once a whole window of it is in view;
* recovery: healthy traffic again, until the monitor recovers.

"Healthy" is on the quiet side of every threshold (recovery and warning included).
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
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    MeasureSignal,
    RatioSignal,
)

#: More events than this in one minute is not a drill any more.
MAX_EVENTS_PER_MINUTE = 20_000
_MAX_CONJUNCTS = 256
#: The value drill events carry in group-by fields: their own group, apart from real traffic.
GROUP_VALUE = "extalerts-drill"
Event = dict[str, Any]


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
        line = [json.dumps(self.line, separators=(",", ":"), sort_keys=True)] if self.line else []
        messages = line + self.messages
        if messages:
            event["Logs"] = [{"Level": self.level, "Message": messages, "TimestampMs": at_ms}]
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
    warmup = 1

    def fixed(draft: _Draft) -> Callable[[int, int], Event]:
        return lambda index, at_ms: draft.build(at_ms)

    def enough(count: float) -> int:
        """Events per minute so that a window of them is beyond ``count``."""
        return max(1, math.floor(count / window_minutes) + 1)

    def extra_groups(field_name: str | None = None) -> dict[str, Any]:
        return {**(marks or {}), **{k: v for k, v in groups.items() if k != field_name}}

    matching = witness(rule.filter, catalog, base, extra_groups())
    if isinstance(signal, CountSignal):
        if upward:
            healthy = Phase(0, fixed(matching))
            incident = Phase(enough(critical), fixed(matching))
            description = f"{incident.per_minute}/min matching events for one window"
        else:
            healthy = Phase(enough(max(levels)), fixed(matching))
            incident = Phase(0, fixed(matching))
            warmup = window_minutes + 1
            description = "matching traffic, then silence"
    elif isinstance(signal, AbsenceSignal):
        healthy = Phase(1, fixed(matching))
        incident = Phase(0, fixed(matching))
        warmup = window_minutes + 1
        description = "one event a minute, then silence"
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
        warmup = signal.compare_to // 60 + window_minutes + 1
        expected += 60
        description = f"{steady}/min baseline, {spike}/min during the incident"
    for phase in (healthy, incident):
        if phase.per_minute > MAX_EVENTS_PER_MINUTE:
            raise DrillPlanError(
                f"firing needs {phase.per_minute} events a minute, more than a drill sends "
                f"({MAX_EVENTS_PER_MINUTE}); lower the threshold or drill on a test account"
            )
    # A whole window of incident traffic that some scheduled evaluation sees entirely: window + period.
    return Traffic(warmup, window_minutes + max(1, cron_seconds // 60), healthy, incident, expected, description)
