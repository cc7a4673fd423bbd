"""Monitor evaluation in the sandbox: the providers' stored monitors, run by the extalerts engine over
the events their intakes received.

The sandbox does not interpret arbitrary Datadog queries. It evaluates what extalerts renders: a
monitor names its rule (tag ``extalerts-rule:<id>``), the rule is looked up in the sandbox's spec
(drill copies are rebuilt from their drill id), rendered again, and the monitor is evaluated only when
its query, thresholds and evaluation delay are that rendering. A monitor edited by hand, or from
another spec, is reported once and never changes state, which a drill then shows as "did not fire".
Datadog monitors follow the engine's Datadog semantics (stateful, per group, recovery thresholds).

Splunk saved searches are run as stored, SPL and all, by the emulator's scheduler
(:mod:`extalerts.sandbox.splunk_runs`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from extalerts.clock import Clock
from extalerts.drill.view import drill_view, parse_drill_rule_id
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.engine import MINUTE_MS, Engine, Group, Semantics, State, Transition
from extalerts.render.datadog import RULE_TAG_PREFIX, DatadogRenderer, facet
from extalerts.render.templates import Templates
from extalerts.sandbox.sink import WebhookSink, post_json
from extalerts.sandbox.splunk_runs import SplunkRuns
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import ChangeSignal, Level

_DATADOG_STATUS = {State.OK: "OK", State.WARN: "Warn", State.ALERT: "Alert"}
_HANDLE = re.compile(r"(?:^|\s)@(\S+)")
_CONDITIONAL = re.compile(r"\{\{#(is_\w+)\}\}(.*?)\{\{/\1\}\}", re.S)
Record = Mapping[str, Any]
#: How far back before a monitor's creation it searches received events (provider time).
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


def _group_name(group: Group, spec: Spec) -> str:
    """Datadog's group name (``@facet:value``)."""
    if not group:
        return "*"
    return ",".join(f"{facet(spec.catalog[name])}:{value}" for name, value in group)


def datadog_source_matcher(query: str) -> Callable[[Record], bool]:
    """The rule source's Datadog query, applied to a received log's reserved attributes and tags.

    Only space-separated ``key:value`` terms are understood — what a source query is in practice."""
    terms: list[tuple[str, str]] = []
    for token in query.split():
        key, sep, value = token.partition(":")
        if not sep or not key or not value or any(c in token for c in '()*"') or key.startswith(("-", "@")):
            raise Unevaluable(f"the sandbox understands source queries of key:value terms only, not {query!r}")
        terms.append((key, value))

    def selects(log: Record) -> bool:
        tags = {t.strip() for t in str(log.get("ddtags") or "").split(",") if t.strip()}
        for key, value in terms:
            actual = {"source": log.get("ddsource"), "service": log.get("service"), "host": log.get("hostname")}
            if key in actual:
                if actual[key] != value:
                    return False
            elif f"{key}:{value}" not in tags:
                return False
        return True

    return selects


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
        self.received: dict[str, list[tuple[Record, dict[str, Any]]]] = {"datadog": []}
        self._datadog_offset = 0
        #: Every alert the sandbox raised: provider, monitor, group, state and provider time.
        self.history: list[dict[str, Any]] = []
        #: Splunk's scheduler, run in its own thread by the sandbox.
        self.splunk_runs = SplunkRuns(splunk, sink.url, self._deliver, self.report, self.history)

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

    def _datadog_watch(self, monitor: Mapping[str, Any]) -> Watch:
        ids = [t[len(RULE_TAG_PREFIX) :] for t in monitor.get("tags") or [] if t.startswith(RULE_TAG_PREFIX)]
        if len(ids) != 1:
            raise Unevaluable("it has no single extalerts-rule tag")
        spec, rule = self._rule_for(ids[0])
        parts = DatadogRenderer(spec, self.templates).monitor_parts(rule)
        options = monitor.get("options") or {}
        differs = [
            name
            for name, live, rendered in (
                ("type", monitor.get("type"), parts.type),
                ("query", monitor.get("query"), parts.query),
                ("thresholds", _numbers(options.get("thresholds")), _numbers(parts.thresholds)),
                ("evaluation_delay", options.get("evaluation_delay"), rule.evaluation_delay),
            )
            if live != rendered
        ]
        if differs:
            raise Unevaluable(f"its {', '.join(differs)} differ from what extalerts renders for rule {rule.id}")
        return Watch(
            "datadog",
            monitor["id"],
            str(monitor.get("modified")),
            f'monitor {monitor["id"]} "{monitor.get("name")}"',
            spec,
            rule,
            Level.ALERT,
            datadog_source_matcher(rule.source.datadog.query),
            _epoch_ms(monitor.get("modified")) or self.clock.now_ms(),
            monitor,
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
        logs = self.datadog.logs_since(self._datadog_offset)
        self._datadog_offset += len(logs)
        records: list[tuple[str, Record, dict[str, Any]]] = []
        for log in logs:
            event = log.get("attributes") or {}
            if isinstance(event.get("EventTimestampMs"), int):
                records.append(("datadog", log, event))
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
        datadog_found: dict[Any, tuple[str, Callable[[], Watch]]] = {
            m["id"]: (str(m.get("modified")), functools.partial(self._datadog_watch, m))
            for m in self.datadog.monitors()
        }
        self._refresh("datadog", datadog_found)
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
            semantics: Semantics = "datadog"
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
        if watch.provider == "datadog":
            latest: dict[Group, Transition] = {}
            for transition in result.transitions:
                latest[transition.group] = transition
                if transition.at_ms > watch.reported_at.get(transition.group, -1):
                    self._report(watch, transition)
            # Late events can also undo a transition already reported: settle on what the recomputed
            # timeline says now.
            for group, state in list(watch.states.items()):
                last = latest.get(group)
                if (last.after if last else State.OK) is not state:
                    at_ms = last.at_ms if last else end
                    self._report(watch, Transition(at_ms, group, state, last.after if last else State.OK, None))
        watch.evaluated_until = end
        if end > watch.quiet_after_ms():
            watch.settled = True

    def _report(self, watch: Watch, transition: Transition) -> None:
        watch.reported_at[transition.group] = max(transition.at_ms, watch.reported_at.get(transition.group, -1))
        before = watch.states.get(transition.group, State.OK)
        if before is not transition.after:
            self._datadog_transition(
                watch, transition.group, before, transition.after, transition.value, transition.at_ms
            )

    def _datadog_transition(
        self, watch: Watch, group: Group, before: State, after: State, value: float | None, at_ms: int
    ) -> None:
        monitor_id = int(watch.key)
        if monitor_id not in self.datadog.state.monitors:
            return  # deleted since this tick began
        monitor = watch.definition
        name = _group_name(group, watch.spec)
        status = _DATADOG_STATUS[after]
        variant = {State.ALERT: "is_alert", State.WARN: "is_warning", State.OK: "is_recovery"}[after]
        transition = {State.ALERT: "Triggered", State.WARN: "Warn", State.OK: "Recovered"}[after]
        missing = str((monitor.get("options") or {}).get("on_missing_data") or "default")
        if after is State.ALERT and not value and missing.startswith("show"):
            # An empty evaluation shows as No Data on these monitors (notified only with show_and_notify).
            status, variant, transition = "No Data", "is_no_data", "No Data"
        self.datadog.set_group_state(monitor_id, name, status, at_ms / 1000)
        watch.states[group] = after
        self.history.append(
            {
                "provider": "datadog",
                "monitor": watch.label,
                "rule": watch.rule.id,
                "group": name,
                "state": status,
                "at": at_ms / 1000,
                "value": value,
            }
        )
        if status == "No Data" and missing != "show_and_notify_no_data":
            return
        text = _CONDITIONAL.sub(lambda m: m[2] if m[1] == variant else "", str(monitor.get("message") or ""))
        payload = {
            "alert_id": monitor_id,
            "title": f"[{transition} on {name}] {monitor.get('name')}",
            "alert_transition": transition,
            "alert_status": status,
            "alert_scope": name,
            "date": at_ms,
            "value": value,
            "tags": monitor.get("tags"),
        }
        for handle in _HANDLE.findall(text):
            if handle.startswith("webhook-"):
                url = self.datadog.webhook_url(handle[len("webhook-") :])
                if url is None:
                    self.report(f"datadog {monitor_id}: @{handle} is not a configured webhook; not delivered")
                    continue
                self._deliver(url, {**payload, "handle": handle}, "/datadog/webhook")
            else:
                kind = handle.split("-", 1)[0] if "-" in handle and "@" not in handle else "email"
                post_json(f"{self.sink.url}/datadog/{kind}", {**payload, "handle": handle})

    def _deliver(self, url: str, payload: dict[str, Any], sink_path: str) -> None:
        """POST to a loopback webhook; anything else goes to the sink instead (with its URL): the sandbox
        never calls out, and a slow remote host must not hold up evaluation."""
        host = (urlsplit(url).hostname or "").lower()
        if host in ("127.0.0.1", "localhost", "::1"):
            if not post_json(url, payload):
                self.report(f"webhook {url} did not answer; notification lost")
        else:
            post_json(f"{self.sink.url}{sink_path}", {**payload, "url": url})


def _epoch_ms(timestamp: Any) -> int | None:
    """An API timestamp (ISO 8601) in epoch milliseconds: a monitor runs from when it was written,
    not from when the sandbox got round to looking at it."""
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _numbers(values: Any) -> dict[str, float] | None:
    if not isinstance(values, Mapping):
        return None
    return {k: float(v) for k, v in values.items() if v is not None}
