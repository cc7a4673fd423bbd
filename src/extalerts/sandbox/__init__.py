"""The sandbox: Datadog, Splunk and Cloudflare emulators together on loopback, with their monitors
really evaluated, on a fast clock, and notifications delivered to a local webhook sink.

    with Sandbox(spec, speed=600) as sandbox:
        env = sandbox.env()   # what extalerts (or the providers' SDKs) need to talk to it

The Datadog logs intake runs the pushed pipelines on what it receives and the Datadog emulator
evaluates its stored monitors itself (with the facets the rendered ``facets.json`` lists); Splunk HEC
indexes what it receives and the Splunk emulator's scheduler runs each stored saved search's SPL
(:mod:`extalerts.sandbox.splunk_runs`). Both run on the sandbox clock, driven by the evaluator
(:mod:`extalerts.sandbox.evaluator`): whatever a monitor or search says is what is evaluated.
"""

from __future__ import annotations

import secrets
import sys
import threading
from typing import Any, Self

from extalerts.clock import Clock
from extalerts.spec.loader import Spec

DRILL_WEBHOOK_URL_ENV = "EXTALERTS_DRILL_WEBHOOK_URL"
DRILL_SINK_URL_ENV = "EXTALERTS_DRILL_SINK_URL"
DATADOG_INTAKE_URL_ENV = "EXTALERTS_DATADOG_INTAKE_URL"
SCRIPTS = ("conversation-api", "auth-worker")


class Sandbox:
    def __init__(
        self,
        spec: Spec,
        *,
        speed: float = 600.0,
        host: str = "127.0.0.1",
        ports: tuple[int, int, int, int] = (0, 0, 0, 0),
        tick_seconds: float = 0.05,
    ) -> None:
        from extalerts.emulators.cloudflare import CloudflareEmulator, pagerduty_services
        from extalerts.emulators.datadog import DatadogEmulator
        from extalerts.emulators.splunk import SplunkEmulator, made_up_hec_token
        from extalerts.sandbox.datadog_monitors import spec_facets
        from extalerts.sandbox.evaluator import Evaluator
        from extalerts.sandbox.sink import WebhookSink
        from extalerts.sandbox.splunk_runs import timestamp_rules

        self.clock = Clock.scaled(speed)
        self.keys = {
            "DD_API_KEY": secrets.token_hex(16),
            "DD_APP_KEY": secrets.token_hex(20),
            "SPLUNK_TOKEN": secrets.token_hex(16),
            "SPLUNK_HEC_TOKEN": made_up_hec_token(),
            "CLOUDFLARE_API_TOKEN": secrets.token_hex(20),
            "CLOUDFLARE_ACCOUNT_ID": secrets.token_hex(16),
            # Made-up PagerDuty integration keys, for the variables the spec's targets name.
            **{name: secrets.token_hex(16) for name in _pagerduty_key_variables(spec)},
        }
        dd_port, splunk_port, cf_port, sink_port = ports
        now = self.clock.now
        self.sink = WebhookSink(now, host=host, port=sink_port)
        report = _report_line
        self.datadog = DatadogEmulator(
            self.keys["DD_API_KEY"],
            self.keys["DD_APP_KEY"],
            host=host,
            port=dd_port,
            clock=now,
            # The facets the rendered facets.json lists, created as the README's "Datadog setup" says.
            facets=spec_facets(spec),
            report=lambda line: report(f"datadog emulator: {line}"),
        )
        self.splunk = SplunkEmulator(
            token=self.keys["SPLUNK_TOKEN"],
            hec_token=self.keys["SPLUNK_HEC_TOKEN"],
            # The token's default index is where the spec's searches look, as an admin would set it up.
            hec_default_index=_splunk_index(spec),
            # As a Splunk set up for the spec would be: the packaged app installed, and the alert
            # actions its targets use (the PagerDuty and Slack apps).
            apps=[spec.splunk_app],
            alert_actions=sorted({t.kind for t in spec.targets.values()} & {"pagerduty", "slack"}),
            host=host,
            port=splunk_port,
            clock=now,
            # The rendered app's props.conf, as installed where HEC events are parsed: _time from EventTimestampMs.
            props=timestamp_rules(spec),
        )
        self.cloudflare = CloudflareEmulator(
            self.keys["CLOUDFLARE_API_TOKEN"], self.keys["CLOUDFLARE_ACCOUNT_ID"], host=host, port=cf_port, clock=now
        )
        for script in SCRIPTS:
            self.cloudflare.add_script(script, logpush=True)
        # As an account set up for the spec would be, so `push --provider cloudflare` can page them.
        self.cloudflare.connect_pagerduty(pagerduty_services(spec))
        self.evaluator = Evaluator(spec, self.clock, self.datadog, self.splunk, self.sink)
        self.tick_seconds = tick_seconds
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-evaluator", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.evaluator.tick()
            except Exception as exc:  # keep evaluating the other monitors; report once per kind
                if not any(type(e) is type(exc) and str(e) == str(exc) for e in self.errors):
                    self.evaluator.report(f"evaluation failed: {type(exc).__name__}: {exc}")
                self.errors.append(exc)

    @property
    def drill_webhook_url(self) -> str:
        return f"{self.sink.url}/drill"

    def start(self) -> Self:
        started: list[Any] = []
        try:
            for server in (self.sink, self.datadog, self.splunk, self.cloudflare):
                server.start()
                started.append(server)
        except BaseException:
            for server in reversed(started):
                server.stop()
            raise
        self.datadog.add_webhook("extalerts-drill", self.drill_webhook_url)
        self._thread.start()
        self.evaluator.splunk_runs.start(self.clock.now, self.tick_seconds)
        return self

    def _stop_evaluation(self) -> bool:
        """Stop the background evaluation; False when it is still busy after half a minute."""
        self._stop.set()
        splunk_stopped = self.evaluator.splunk_runs.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return not self._thread.is_alive() and splunk_stopped

    def finish_evaluation(self) -> None:
        """Stop the background evaluation and catch up to now, so ``alerts()`` is complete."""
        if not self._stop_evaluation():  # never evaluate the same monitors from two threads
            self.evaluator.report("evaluation did not stop in time; the list of alerts may be incomplete")
            return
        self.evaluator.drain()
        self.evaluator.splunk_runs.drain(self.clock.now())

    def stop(self) -> None:
        self._stop_evaluation()
        for server in (self.cloudflare, self.splunk, self.datadog, self.sink):
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment pointing extalerts at the sandbox (local, made-up credentials)."""
        from extalerts.providers.cloudflare_api import CLOUDFLARE_API_URL_ENV
        from extalerts.providers.datadog import DATADOG_API_URL_ENV

        return {
            **self.keys,
            DATADOG_API_URL_ENV: self.datadog.url,
            DATADOG_INTAKE_URL_ENV: self.datadog.url,
            "SPLUNK_URL": self.splunk.url,
            "SPLUNK_HEC_URL": self.splunk.url,
            CLOUDFLARE_API_URL_ENV: self.cloudflare.url,
            DRILL_WEBHOOK_URL_ENV: self.drill_webhook_url,
            DRILL_SINK_URL_ENV: self.sink.url,
            **self.clock.env(),
        }

    def alerts(self) -> list[dict[str, Any]]:
        """Every state change the sandbox's monitors went through, in provider time."""
        return sorted(self.evaluator.history, key=lambda h: (h["at"], h["provider"], h["monitor"]))


def _report_line(line: str) -> None:
    print(f"sandbox: {line}", file=sys.stderr, flush=True)


def _splunk_index(spec: Spec) -> str:
    indexes = sorted({rule.source.splunk.index for rule in spec.rules})
    return indexes[0] if indexes else "main"


def _pagerduty_key_variables(spec: Spec) -> list[str]:
    return sorted(
        {
            t.pagerduty.integration_key_env
            for t in spec.targets.values()
            if t.pagerduty and t.pagerduty.integration_key_env
        }
    )
