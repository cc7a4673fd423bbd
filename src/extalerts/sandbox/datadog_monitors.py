"""The sandbox's Datadog side: the emulator evaluates every stored monitor itself, from the pushed
pipelines, facets and monitor queries (:mod:`extalerts.emulators.datadog`); the sandbox sets the
org's facets up as the README's "Datadog setup" tells a user to, drives the evaluations on its clock,
records what changed and delivers the notifications the monitors' messages ask for.

Nothing here looks at where a monitor came from: a monitor edited through the API, or one extalerts
never rendered, is evaluated as it is stored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from extalerts.drill.view import DRILL_MANAGED_TAG
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.datadog.facets import Facet, facets_from_document
from extalerts.emulators.datadog.monitors import ALERT, NO_DATA, OK, WARN, Change
from extalerts.errors import ExtalertsError
from extalerts.render.datadog import RULE_TAG_PREFIX
from extalerts.sandbox.sink import Deliver, WebhookSink, post_json
from extalerts.spec.loader import Spec

_HANDLE = re.compile(r"(?:^|\s)@(\S+)")
_CONDITIONAL = re.compile(r"\{\{#(is_\w+)\}\}(.*?)\{\{/\1\}\}", re.S)
_VARIANT = {ALERT: "is_alert", WARN: "is_warning", OK: "is_recovery", NO_DATA: "is_no_data"}
_TRANSITION = {ALERT: "Triggered", WARN: "Warn", OK: "Recovered", NO_DATA: "No Data"}
FACETS_FILE = "datadog/facets.json"


def spec_facets(spec: Spec) -> list[Facet]:
    """The facets the spec's rendered ``facets.json`` lists: what a user creates in Datadog before pushing."""
    from extalerts.render import render

    for rendered in render(spec, ["datadog"]):
        if rendered.path == FACETS_FILE:
            return facets_from_document(json.loads(rendered.content), FACETS_FILE)
    raise ExtalertsError(f"the Datadog rendering has no {FACETS_FILE}: the sandbox cannot create the facets")


class DatadogMonitors:
    """Evaluate the emulator's monitors on the sandbox clock; record and deliver what changes."""

    def __init__(
        self,
        datadog: DatadogEmulator,
        sink: WebhookSink,
        deliver: Deliver,
        report: Callable[[str], None],
        history: list[dict[str, Any]],
    ) -> None:
        self.datadog = datadog
        self.sink = sink
        self.deliver = deliver
        self.report = report
        self.history = history

    def tick(self, now: float, budget_seconds: float) -> None:
        """Drill copies first, every time; then the other monitors until the budget is spent (they catch
        up on later ticks: each keeps its next minute)."""
        changes = self.datadog.evaluate_monitors(now, only=_is_drill)
        deadline = time.monotonic() + budget_seconds
        changes += self.datadog.evaluate_monitors(now, only=lambda m: not _is_drill(m), deadline=deadline)
        for monitor, change in changes:
            self._changed(monitor, change)

    def _changed(self, monitor: dict[str, Any], change: Change) -> None:
        label = f'monitor {monitor["id"]} "{monitor.get("name")}"'
        if not change.renotify:
            self.history.append(
                {
                    "provider": "datadog",
                    "monitor": label,
                    "rule": _rule_id(monitor.get("tags") or []),
                    "group": change.group,
                    "state": change.after,
                    "at": change.at_ms / 1000,
                    "value": change.value,
                }
            )
        options = monitor.get("options") or {}
        missing = str(options.get("on_missing_data") or "default")
        if change.after == NO_DATA and missing != "show_and_notify_no_data" and not options.get("notify_no_data"):
            return  # shown, not notified
        variants = {_VARIANT[change.after]} | ({"is_renotify"} if change.renotify else set())
        text = _CONDITIONAL.sub(lambda m: m[2] if m[1] in variants else "", str(monitor.get("message") or ""))
        transition = "Renotify" if change.renotify else _TRANSITION[change.after]
        payload = {
            "alert_id": monitor["id"],
            "title": f"[{transition} on {change.group}] {monitor.get('name')}",
            "alert_transition": transition,
            "alert_status": change.after,
            "alert_scope": change.group,
            "date": change.at_ms,
            "value": change.value,
            "tags": monitor.get("tags"),
        }
        for handle in _HANDLE.findall(text):
            if handle.startswith("webhook-"):
                url = self.datadog.webhook_url(handle[len("webhook-") :])
                if url is None:
                    self.report(f"datadog {monitor['id']}: @{handle} is not a configured webhook; not delivered")
                    continue
                self.deliver(url, {**payload, "handle": handle}, "/datadog/webhook")
            else:
                kind = handle.split("-", 1)[0] if "-" in handle and "@" not in handle else "email"
                post_json(f"{self.sink.url}/datadog/{kind}", {**payload, "handle": handle})


def _is_drill(monitor: dict[str, Any]) -> bool:
    return DRILL_MANAGED_TAG in (monitor.get("tags") or [])


def _rule_id(tags: Iterable[str]) -> str:
    ids = [t[len(RULE_TAG_PREFIX) :] for t in tags if t.startswith(RULE_TAG_PREFIX)]
    return ids[0] if len(ids) == 1 else ""
