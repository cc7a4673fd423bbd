"""Monitor evaluation in the sandbox: each provider's emulator evaluates what it stores.

Datadog: the emulator evaluates its stored monitors itself, from the pushed pipelines, facets and
monitor queries (:mod:`extalerts.sandbox.datadog_monitors`), whoever wrote them.

Splunk: the emulator's scheduler runs each stored saved search's SPL on its cron schedule and dispatch
window (:mod:`extalerts.sandbox.splunk_runs`), in its own thread, whoever wrote it.

Neither looks the monitor up in the spec: a monitor or search edited through the API is evaluated as
edited, so a drill proves what was pushed, not what extalerts meant to push.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from extalerts.clock import Clock
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.sandbox.datadog_monitors import DatadogMonitors
from extalerts.sandbox.sink import WebhookSink, post_json
from extalerts.sandbox.splunk_runs import BUDGET_SECONDS, SplunkRuns
from extalerts.spec.loader import Spec


class Evaluator:
    def __init__(
        self,
        spec: Spec,
        clock: Clock,
        datadog: DatadogEmulator,
        splunk: SplunkEmulator,
        sink: WebhookSink,
        *,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.datadog = datadog
        self.splunk = splunk
        self.sink = sink
        self.report = report or (lambda line: print(f"sandbox: {line}", file=sys.stderr, flush=True))
        #: Real seconds a tick may spend on production monitors (drill copies are always evaluated).
        self.budget_seconds = BUDGET_SECONDS
        #: Every alert the sandbox raised: provider, monitor, group, state and provider time.
        self.history: list[dict[str, Any]] = []
        self.datadog_monitors = DatadogMonitors(datadog, sink, self._deliver, self.report, self.history)
        #: Splunk's scheduler, run in its own thread by the sandbox.
        self.splunk_runs = SplunkRuns(splunk, sink.url, self._deliver, self.report, self.history)

    def tick(self) -> None:
        self.datadog_monitors.tick(self.clock.now(), self.budget_seconds)

    def drain(self) -> None:
        """Evaluate every Datadog monitor up to now, however long it takes (before reporting what fired)."""
        budget, self.budget_seconds = self.budget_seconds, float("inf")
        try:
            self.tick()
        finally:
            self.budget_seconds = budget

    def _deliver(self, url: str, payload: dict[str, Any], sink_path: str) -> None:
        """POST to a loopback webhook; anything else goes to the sink instead (with its URL): the sandbox
        never calls out, and a slow remote host must not hold up evaluation."""
        host = (urlsplit(url).hostname or "").lower()
        if host in ("127.0.0.1", "localhost", "::1"):
            if not post_json(url, payload):
                self.report(f"webhook {url} did not answer; notification lost")
        else:
            post_json(f"{self.sink.url}{sink_path}", {**payload, "url": url})
