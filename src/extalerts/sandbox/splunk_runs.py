"""The sandbox's Splunk alerts: the emulator's scheduler runs every stored saved search's SPL over the
events HEC indexed (:mod:`extalerts.emulators.splunk_scheduler`), and this module delivers what
triggers — the alert actions, as Splunk's scheduler would run them — and keeps the sandbox's list of
alerts. Nothing here knows the spec: a saved search is run as it is stored, whoever wrote it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from extalerts.drill.view import DRILL_SPLUNK_PREFIX
from extalerts.emulators.spl import TimestampRule, as_number
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.emulators.splunk_scheduler import Run, SplunkScheduler, Trigger
from extalerts.render.conf import parse_conf
from extalerts.render.splunk import NAME_PREFIX, WARNING_SUFFIX, SplunkRenderer
from extalerts.render.templates import Templates
from extalerts.sandbox.sink import Deliver, post_json
from extalerts.spec.loader import Spec

#: Provider seconds a scheduled run waits past its time before it runs: the sandbox's own delivery of
#: events (a drill sends each minute's events as the minute ends) may trail the fast clock a little.
#: Splunk's scheduler may run late too ("the execution of the saved search might fall behind");
#: the run's time range stays that of its scheduled time.
DISPATCH_LAG_SECONDS = 90.0
#: Real seconds a tick may spend on searches other than drill copies (those always run): a backlog of
#: production searches over a large replay catches up over later ticks, never holding up a drill. Kept
#: small against the tick (0.05 s): both providers' evaluations are Python in one process, so a long
#: production share would hold the interpreter while the other provider's drill waits.
BUDGET_SECONDS = 0.02
#: Real seconds the sandbox spends catching up when it stops.
DRAIN_SECONDS = 30.0
#: How long indexed events stay searchable: the longest window (2 days), the longest baseline (1 day)
#: and some.
KEEP_INDEXED_SECONDS = 4 * 24 * 3600.0


def timestamp_rules(spec: Spec, templates: Templates | None = None) -> dict[str, TimestampRule]:
    """The timestamp rules of the props.conf extalerts renders for the spec's source types: what an
    indexer with the app installed applies to HEC ``/raw`` events."""
    renderer = SplunkRenderer(spec, templates or Templates())
    text = renderer.templates.render("splunk/props.conf.j2", sourcetypes=renderer.sourcetypes())
    return {stanza.name: TimestampRule.from_props(stanza.as_dict()) for stanza in parse_conf(text)}


def _is_drill(search_name: str) -> bool:
    return search_name.startswith(DRILL_SPLUNK_PREFIX)


def rule_of(search_name: str) -> str:
    """The extalerts rule a saved search is named after (a drill copy's rule id), else its own name."""
    if search_name.startswith(DRILL_SPLUNK_PREFIX):
        return search_name[len(DRILL_SPLUNK_PREFIX) :]
    if search_name.startswith(NAME_PREFIX):
        rule = search_name[len(NAME_PREFIX) :]
        return rule[: -len(WARNING_SUFFIX)] if rule.endswith(WARNING_SUFFIX) else rule
    return search_name


class SplunkRuns:
    def __init__(
        self,
        splunk: SplunkEmulator,
        sink_url: str,
        deliver: Deliver,
        report: Callable[[str], None],
        history: list[dict[str, Any]],
    ) -> None:
        self.splunk = splunk
        self.sink_url = sink_url
        self.deliver = deliver
        self.report = report
        self.history = history
        self.scheduler = SplunkScheduler(
            splunk, dispatch_lag=DISPATCH_LAG_SECONDS, on_trigger=self._triggered, on_run=self._ran
        )
        #: The last error reported per saved search (reported once until it changes).
        self._errors: dict[tuple[str, str], str | None] = {}
        self._failures: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float, *, budget_seconds: float | None = BUDGET_SECONDS) -> list[Run]:
        """Run what is due: drill copies first and always, the other searches within the budget."""
        runs = self.scheduler.run_due(now, first=_is_drill, budget_seconds=budget_seconds)
        with self.splunk.index_lock:
            self.splunk.index.drop_before(now - KEEP_INDEXED_SECONDS)
        return runs

    def drain(self, now: float, limit_seconds: float = DRAIN_SECONDS) -> None:
        """Catch up to ``now`` itself (the sandbox is done sending), for at most ``limit_seconds``."""
        lag, self.scheduler.dispatch_lag = self.scheduler.dispatch_lag, 0.0
        try:
            self.tick(now, budget_seconds=limit_seconds)
        finally:
            self.scheduler.dispatch_lag = lag

    def start(self, clock: Callable[[], float], tick_seconds: float) -> None:
        """Run the scheduler in its own thread, as splunkd's runs beside everything else."""

        def loop() -> None:
            while not self._stop.wait(tick_seconds):
                try:
                    self.tick(clock())
                except Exception as exc:  # keep scheduling; report each kind once
                    problem = f"{type(exc).__name__}: {exc}"
                    if problem not in self._failures:
                        self._failures.add(problem)
                        self.report(f"splunk scheduler failed: {problem}")

        self._thread = threading.Thread(target=loop, name="sandbox-splunk-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """Stop the scheduler's thread; False when it is still busy after half a minute."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=30)
        return self._thread is None or not self._thread.is_alive()

    def _ran(self, run: Run) -> None:
        key = (run.app, run.name)
        if run.error != self._errors.get(key):
            self._errors[key] = run.error
            if run.error:
                self.report(f'splunk saved search "{run.name}": not run: {run.error}')

    def _triggered(self, trigger: Trigger) -> None:
        row = trigger.rows[0] if trigger.rows else {}
        fields = [f.strip() for f in trigger.settings.get("alert.suppress.fields", "").split(",") if f.strip()]
        group = ",".join(f"{name}={row.get(name)}" for name in fields) if fields else "*"
        value = as_number(row.get("value"))
        self.history.append(
            {
                "provider": "splunk",
                "monitor": f'saved search "{trigger.name}"',
                "rule": rule_of(trigger.name),
                "group": group,
                "state": "Fired",
                "at": trigger.trigger_time,
                "value": None if value is None else float(value),
            }
        )
        self._actions(trigger, row)

    def _actions(self, trigger: Trigger, row: dict[str, str]) -> None:
        """Each enabled action (``action.<name> = 1``): the webhook POSTs Splunk's webhook payload
        (Alerting Manual, "Use a webhook alert action": ``result`` is the first result row, with
        ``sid``, ``search_name``, ``app``, ``owner``, ``results_link``) to its URL; the others, which
        would reach people, go to the sandbox's sink."""
        settings = trigger.settings
        payload = {
            "sid": trigger.fired_sid or trigger.sid,
            "search_name": trigger.name,
            "app": trigger.app,
            "owner": "nobody",
            "results_link": "",
            "result": row,
        }
        for key, value in settings.items():
            action = key[len("action.") :] if key.startswith("action.") and key.count(".") == 1 else None
            if action is None or value.strip().lower() not in ("1", "true"):
                continue
            if action == "webhook":
                url = settings.get("action.webhook.param.url")
                if url:
                    self.deliver(url, payload, "/splunk/webhook")
            else:
                post_json(f"{self.sink_url}/splunk/{action}", payload)
