"""Monitor evaluation in the sandbox.

Datadog: the emulator evaluates its stored monitors itself, from the pushed pipelines, facets and
monitor queries (:mod:`extalerts.sandbox.datadog_monitors`), whoever wrote them.

Splunk: the provider's stored saved searches, run by the extalerts engine over the events HEC
received. A saved search names its rule (its name), the rule is looked up in the sandbox's spec
(drill copies are rebuilt from their drill id), rendered again, and the search is evaluated only when
its definition is that rendering — search, schedule and time range. One edited by hand, or from
another spec, is reported once and never fires, which a drill then shows as "did not fire". Splunk
alerts run on their cron schedule, stateless, with ``alert.suppress`` honoured per group.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from extalerts.clock import Clock
from extalerts.drill.view import DRILL_SPLUNK_PREFIX, drill_view, parse_drill_rule_id
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.engine import MINUTE_MS, Engine, Group, Semantics, State
from extalerts.render.splunk import NAME_PREFIX, WARNING_SUFFIX, SplunkRenderer
from extalerts.render.templates import Templates
from extalerts.sandbox.datadog_monitors import DatadogMonitors
from extalerts.sandbox.sink import WebhookSink, post_json
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import ChangeSignal, Level, parse_duration

_SPLUNK_COMPARED = ("search", "cron_schedule", "dispatch.earliest_time", "dispatch.latest_time")
Record = Mapping[str, Any]
#: How far back a Splunk run is judged again when late events arrive (provider time).
LATE_DATA_MS = 30 * MINUTE_MS
#: How long received events stay searchable for monitors written later: the longest window (2 days)
#: plus the longest baseline (1 day) and some.
KEEP_RECEIVED_MS = 4 * 24 * 60 * MINUTE_MS


class Unevaluable(Exception):
    """Why the sandbox will not evaluate a monitor."""


@dataclass
class Watch:
    """One monitor the sandbox evaluates."""

    provider: str
    key: Any
    version: str
    label: str
    spec: Spec
    rule: ResolvedRule
    level: Level
    selects: Callable[[Record], bool]
    created_ms: int
    #: The monitor (Datadog) or the saved search's settings (Splunk) as stored; a change to it makes
    #: a new watch, so this stays current.
    definition: Mapping[str, Any] = field(default_factory=dict)
    engine: Engine | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_event_ms: int | None = None
    evaluated_until: int = 0
    states: dict[Group, State] = field(default_factory=dict)
    #: Datadog: the time of the last transition reported per group.
    reported_at: dict[Group, int] = field(default_factory=dict)
    #: Splunk: the (run, group) pairs already judged as alerting, and the last time each group fired.
    judged: set[tuple[int, Group]] = field(default_factory=set)
    last_fired: dict[Group, int] = field(default_factory=dict)
    settled: bool = False
    #: The last evaluation error, reported once.
    failure: str | None = None

    @property
    def is_drill(self) -> bool:
        return parse_drill_rule_id(self.rule.id) is not None

    def reach_ms(self) -> int:
        """How far back from an evaluation the monitor looks: window, delay, baseline, lookback."""
        r = self.rule.rule
        shift = r.signal.compare_to if isinstance(r.signal, ChangeSignal) else 0
        lookback = getattr(r.signal, "lookback", 0)
        return (r.window + self.rule.evaluation_delay + shift + max(lookback, 0)) * 1000

    def quiet_after_ms(self) -> int:
        """After this evaluation time with no new events, the monitor's values no longer change."""
        return (self.last_event_ms or 0) + self.reach_ms() + 10 * MINUTE_MS


def _group_name(group: Group, spec: Spec, provider: str = "splunk") -> str:
    """Splunk's group name: ``field=value``."""
    if not group:
        return "*"
    return ",".join(f"{spec.catalog[name].splunk_name}={value}" for name, value in group)


class Evaluator:
    def __init__(
        self,
        spec: Spec,
        clock: Clock,
        datadog: DatadogEmulator,
        splunk: SplunkEmulator,
        sink: WebhookSink,
        templates: Templates | None = None,
        *,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.datadog = datadog
        self.splunk = splunk
        self.sink = sink
        self.templates = templates or Templates()
        self.report = report or (lambda line: print(f"sandbox: {line}", file=sys.stderr, flush=True))
        self.watches: dict[tuple[str, Any], Watch] = {}
        self.refused: dict[tuple[str, Any], str] = {}
        #: Real seconds a tick may spend on production monitors (drill copies are always evaluated).
        self.budget_seconds = 0.25
        #: Every event each intake received, with where it came from: new monitors search them all.
        self.received: dict[str, list[tuple[Record, dict[str, Any]]]] = {"splunk": []}
        self._splunk_offset = 0
        #: Every alert the sandbox raised: provider, monitor, group, state and provider time.
        self.history: list[dict[str, Any]] = []
        self.datadog_monitors = DatadogMonitors(datadog, sink, self.report, self.history)

    # ----------------------------------------------------------------------------------- resolving

    def _rule_for(self, rule_id: str) -> tuple[Spec, ResolvedRule]:
        parsed = parse_drill_rule_id(rule_id)
        try:
            if parsed is not None:
                view = drill_view(self.spec, parsed[0], parsed[1])
                return view.spec, view.rule
            rule = self.spec.rule(rule_id)
        except KeyError:
            raise Unevaluable(f"rule {rule_id!r} is not in the sandbox's spec") from None
        return dataclasses.replace(self.spec, rules=(rule,)), rule

    def _splunk_watch(self, app: str, name: str, settings: Mapping[str, str]) -> Watch:
        level = Level.ALERT
        if name.startswith(DRILL_SPLUNK_PREFIX):
            rule_id = name[len(DRILL_SPLUNK_PREFIX) :]
        elif name.startswith(NAME_PREFIX):
            rule_id = name[len(NAME_PREFIX) :]
            if rule_id.endswith(WARNING_SUFFIX):
                rule_id, level = rule_id[: -len(WARNING_SUFFIX)], Level.WARNING
        else:
            raise Unevaluable("it is not named like an extalerts alert")
        spec, rule = self._rule_for(rule_id)
        expected = next((a for a in SplunkRenderer(spec, self.templates).alerts(rule) if a.level is level), None)
        if expected is None:
            raise Unevaluable(f"rule {rule.id} has no {level.value} level")
        differs = [key for key in _SPLUNK_COMPARED if settings.get(key) != expected.settings.get(key)]
        if differs:
            raise Unevaluable(f"its {', '.join(differs)} differ from what extalerts renders for rule {rule.id}")
        source = rule.source.splunk
        return Watch(
            "splunk",
            (app, name),
            json.dumps(settings, sort_keys=True),
            f'saved search "{name}"',
            spec,
            rule,
            level,
            lambda record: record.get("index") == source.index and record.get("sourcetype") == source.sourcetype,
            int((self.splunk.updated_at(app, name) or self.clock.now()) * 1000),
            settings,
        )

    def _refresh(self, provider: str, found: Mapping[Any, tuple[str, Callable[[], Watch]]]) -> None:
        """Keep one watch per live monitor; rebuild it when the monitor changed."""
        for key in [k for k in self.watches if k[0] == provider and k[1] not in found]:
            del self.watches[key]
        for live_key, (version, build) in found.items():
            key = (provider, live_key)
            current = self.watches.get(key)
            if current is not None and current.version == version:
                continue
            if self.refused.get(key) == version:
                continue
            try:
                watch = build()
            except Unevaluable as why:
                self.watches.pop(key, None)
                self.refused[key] = version
                self.report(f"{provider} {live_key}: not evaluated: {why}")
                continue
            # A monitor searches what is stored, including what arrived before it was written, as far
            # back as its first evaluation reaches.
            since = watch.created_ms - watch.reach_ms() - LATE_DATA_MS
            for record, event in self.received[provider]:
                if int(event["EventTimestampMs"]) >= since:
                    self._give(watch, record, event)
            self.watches[key] = watch
            self.refused.pop(key, None)

    # ----------------------------------------------------------------------------------- events

    def _ingest(self) -> None:
        records: list[tuple[str, Record, dict[str, Any]]] = []
        lines = self.splunk.hec_since(self._splunk_offset)
        self._splunk_offset += len(lines)
        for index, sourcetype, line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("EventTimestampMs"), int):
                records.append(("splunk", {"index": index, "sourcetype": sourcetype}, event))
        cutoff = self.clock.now_ms() - KEEP_RECEIVED_MS
        for kept in self.received.values():
            # Arrival order is close to time order: drop from the front what no new monitor can reach.
            drop = 0
            while drop < len(kept) and int(kept[drop][1]["EventTimestampMs"]) < cutoff:
                drop += 1
            del kept[:drop]
        for provider, record, event in records:
            self.received[provider].append((record, event))
            for watch in self.watches.values():
                if watch.provider == provider:
                    self._give(watch, record, event)

    @staticmethod
    def _give(watch: Watch, record: Record, event: dict[str, Any]) -> None:
        if watch.selects(record):
            watch.pending.append(event)
            watch.last_event_ms = max(watch.last_event_ms or 0, int(event["EventTimestampMs"]))
            watch.settled = False

    # ----------------------------------------------------------------------------------- evaluation

    def tick(self) -> None:
        self.datadog_monitors.tick(self.clock.now(), self.budget_seconds)
        splunk_found: dict[Any, tuple[str, Callable[[], Watch]]] = {
            (app, name): (json.dumps(s, sort_keys=True), functools.partial(self._splunk_watch, app, name, s))
            for app, name, s in self.splunk.saved_searches()
            if s.get("disabled", "0") not in ("1", "true") and s.get("enableSched", "0") in ("1", "true")
        }
        self._refresh("splunk", splunk_found)
        self._ingest()
        now_ms = self.clock.now_ms()
        # Drill copies first, then the monitors furthest behind; the rest wait for the next tick once
        # the budget is spent, so a backlog of production events never holds up a drill.
        ordered = sorted(self.watches.values(), key=lambda w: (not w.is_drill, w.evaluated_until))
        budget_end = time.monotonic() + self.budget_seconds
        for watch in ordered:
            if not watch.is_drill and time.monotonic() > budget_end:
                break
            try:
                self._evaluate(watch, now_ms)
            except Exception as exc:  # one monitor's failure must not stop the others'
                problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if watch.failure != problem:
                    watch.failure = problem
                    self.report(f"{watch.provider} {watch.label}: evaluation failed: {problem}")

    def drain(self) -> None:
        """Evaluate every monitor up to now, however long it takes (before reporting what fired)."""
        budget, self.budget_seconds = self.budget_seconds, float("inf")
        try:
            self.tick()
        finally:
            self.budget_seconds = budget

    def _evaluate(self, watch: Watch, now_ms: int) -> None:
        end = now_ms // MINUTE_MS * MINUTE_MS
        if end <= watch.evaluated_until or watch.settled:
            return
        if watch.engine is None:
            semantics: Semantics = "splunk" if watch.provider == "splunk" else "datadog"
            watch.engine = Engine(watch.spec, semantics=semantics, memory_limit="256MB", threads=1)
        if watch.pending or not watch.engine.events:
            pending, watch.pending = watch.pending, []
            # Not strict: an event the engine cannot read is counted and skipped, as a provider would.
            watch.engine.load_events(pending, strict=False)
        start = -(-watch.created_ms // MINUTE_MS) * MINUTE_MS
        if end < start:
            return
        result = watch.engine.evaluate(start_ms=start, end_ms=end).rules[watch.rule.id]
        # Each evaluation runs over everything received so far, so events that reached the sandbox
        # after their minute was first evaluated (its own processing lag, not the system's) still count.
        # Runs not evaluated yet, and those a late event may have changed.
        self._splunk_runs(watch, result.series, min(watch.evaluated_until, end - LATE_DATA_MS), end)
        watch.judged = {(at_ms, group) for at_ms, group in watch.judged if at_ms > end - 2 * LATE_DATA_MS}
        watch.evaluated_until = end
        if end > watch.quiet_after_ms():
            watch.settled = True

    def _splunk_runs(
        self, watch: Watch, series: Mapping[Group, list[tuple[int, float | None]]], after_ms: int, end_ms: int
    ) -> None:
        thresholds = watch.rule.rule.thresholds
        if thresholds is None:
            operator, threshold = "<", 1.0
        else:
            operator = thresholds.operator
            warning = thresholds.warning
            threshold = warning if watch.level is Level.WARNING and warning is not None else thresholds.critical
        app, name = watch.key
        settings = watch.definition
        suppress = settings.get("alert.suppress", "0") in ("1", "true")
        period_ms = parse_duration(settings.get("alert.suppress.period") or "0s") * 1000 if suppress else 0
        runs: dict[int, list[tuple[Group, float]]] = {}
        for group, points in series.items():
            for at_ms, value in points:
                if (at_ms, group) in watch.judged or not after_ms < at_ms <= end_ms:
                    continue
                if value is not None and _breaches(operator, value, threshold):
                    watch.judged.add((at_ms, group))
                    runs.setdefault(at_ms, []).append((group, value))
        for at_ms in sorted(runs):
            due = [
                (g, v)
                for g, v in runs[at_ms]
                if g not in watch.last_fired or abs(at_ms - watch.last_fired[g]) >= max(period_ms, 1)
            ]
            if not due:
                continue
            for group, _ in due:
                watch.last_fired[group] = at_ms
            digest = settings.get("alert.digest_mode", "1") in ("1", "true")
            for batch in [due] if digest else [[item] for item in due]:
                sid = self.splunk.fire(app, name, trigger_time=at_ms / 1000)
                first_group, first_value = batch[0]
                row = {self.spec_name(watch, k): v for k, v in first_group} | {"value": first_value}
                self.history.append(
                    {
                        "provider": "splunk",
                        "monitor": watch.label,
                        "rule": watch.rule.id,
                        "group": _group_name(first_group, watch.spec, "splunk"),
                        "state": "Fired",
                        "at": at_ms / 1000,
                        "value": first_value,
                    }
                )
                self._splunk_actions(settings, name, app, sid, row)

    @staticmethod
    def spec_name(watch: Watch, field_name: str) -> str:
        return watch.spec.catalog[field_name].splunk_name

    def _deliver(self, url: str, payload: dict[str, Any], sink_path: str) -> None:
        """POST to a loopback webhook; anything else goes to the sink instead (with its URL): the sandbox
        never calls out, and a slow remote host must not hold up evaluation."""
        host = (urlsplit(url).hostname or "").lower()
        if host in ("127.0.0.1", "localhost", "::1"):
            if not post_json(url, payload):
                self.report(f"webhook {url} did not answer; notification lost")
        else:
            post_json(f"{self.sink.url}{sink_path}", {**payload, "url": url})

    def _splunk_actions(
        self, settings: Mapping[str, str], name: str, app: str, sid: str | None, row: dict[str, Any]
    ) -> None:
        payload = {"sid": sid, "search_name": name, "app": app, "owner": "nobody", "results_link": "", "result": row}
        for key, value in settings.items():
            action = key[len("action.") :] if key.startswith("action.") and key.count(".") == 1 else None
            if action is None or value not in ("1", "true"):
                continue
            if action == "webhook":
                url = settings.get("action.webhook.param.url")
                if url:
                    self._deliver(url, payload, "/splunk/webhook")
            else:
                post_json(f"{self.sink.url}/splunk/{action}", payload)


def _epoch_ms(timestamp: Any) -> int | None:
    """An API timestamp (ISO 8601) in epoch milliseconds: a monitor runs from when it was written,
    not from when the sandbox got round to looking at it."""
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _breaches(operator: str, value: float, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[
        operator
    ]


def _numbers(values: Any) -> dict[str, float] | None:
    if not isinstance(values, Mapping):
        return None
    return {k: float(v) for k, v in values.items() if v is not None}
