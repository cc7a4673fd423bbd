"""The contract spec and its renders, shared by the contract checks in ``make test`` and ``make contracts``.

Two specs are rendered: the bundled ``monitors/`` and ``CONTRACT_SPEC`` below, which exercises every
signal kind, every target kind, warning and recovery thresholds, renotify and overrides. The session
fixtures ``contract_spec_dir`` and ``rendered`` (tests/conftest.py) build them once per run.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extalerts.render import RenderedFile, render
from extalerts.render.conf import parse_conf
from extalerts.spec import Spec, load_spec

PROVIDERS = ["datadog", "splunk"]
#: ``action.<name>`` (the switch) or ``action.<name>.<parameter>``.
ACTION_KEY = re.compile(r"^action\.([^.]+)(?:\.(.+))?$")

CONTRACT_SPEC = textwrap.dedent(
    """\
    version: 1

    defaults:
      service: contract-api
      env: staging
      tags: ["team:contracts"]
      evaluation_delay: 3m
      source: workers
      splunk_app: extalerts_contracts

    sources:
      workers:
        datadog: {index: main, query: "source:cloudflare service:contract-api"}
        splunk: {index: cloudflare, sourcetype: "cloudflare:workers"}

    targets:
      page-with-url:
        levels: [alert, recovery]
        pagerduty:
          service: contract-oncall
          integration_key_env: PD_KEY_CONTRACT_ONCALL
      page-default:
        levels: [alert]
        pagerduty: {service: contract-secondary}
      chat:
        slack: {workspace: acme, channel: "#contract-alerts"}
      mail:
        levels: [alert, warning]
        email: {to: ["team@example.com", "lead@example.com"]}
      hook:
        webhook: {name: contract-hook, url: "https://hooks.example.com/extalerts/contract"}

    fields:
      op: {key: op, type: string}
      ok: {key: ok, type: boolean}
      duration_ms: {key: duration_ms, type: number}
      conversation: {key: conversation_id, type: string}

    rules:
      - id: count-errors
        title: Errors per script
        description: |
          First line of the description,
          second line with "quotes" and a back\\slash.
        severity: critical
        runbook: https://runbooks.example.com/count-errors
        filter: 'Outcome != "ok" or Event.Response.Status >= 500'
        signal: {kind: count}
        window: 5m
        group_by: [ScriptName]
        thresholds: {critical: 10, critical_recovery: 5, warning: 3, warning_recovery: 1}
        notify: [page-with-url, chat, mail, hook]
        renotify: 30m

      - id: count-below
        title: Too few requests
        severity: low
        filter: 'EventType == "fetch" and not ScriptName in ["canary", "staging worker"]'
        signal: {kind: count}
        window: 10m
        thresholds: {operator: "<", critical: 5, critical_recovery: 10, warning: 20, warning_recovery: 25}
        notify: [chat, mail]

      - id: ratio-5xx
        title: 5xx share
        severity: high
        filter: 'EventType == "fetch"'
        signal: {kind: ratio, match: "Event.Response.Status >= 500", min_events: 25}
        window: 10m
        group_by: [ScriptName, EventType]
        thresholds: {critical: 5.5, critical_recovery: 4, warning: 2.5, warning_recovery: 1.5}
        notify: [page-default, chat, mail]
        renotify: 1h
        throttle: 2h

      - id: measure-avg-cpu
        title: Average CPU time
        severity: medium
        filter: 'EventType == "fetch" and ScriptName != "canary"'
        signal: {kind: measure, field: CPUTimeMs, aggregation: avg}
        window: 15m
        thresholds: {operator: ">=", critical: 40, warning: 25}
        notify: [chat, hook]

      - id: measure-p95-latency
        title: Operation latency p95
        severity: medium
        runbook: https://runbooks.example.com/latency
        filter: 'exists(op) and ok == true'
        signal: {kind: measure, field: duration_ms, aggregation: p95}
        window: 5m
        group_by: [op]
        thresholds: {critical: 800, critical_recovery: 600, warning: 400}
        notify: [chat, mail]
        renotify: 15m
        overrides:
          datadog: {options: {new_group_delay: 60, notify_no_data: false}, priority: 2}
          splunk: {settings: {schedule_window: auto, alert.expires: 48h, dispatch.ttl: 2p}}

      - id: cardinality-conversations
        title: Distinct conversations
        severity: info
        filter: 'Entrypoint == "ConversationStateDO"'
        signal: {kind: cardinality, field: conversation}
        window: 5m
        thresholds: {critical: 1000, warning: 500}
        notify: [chat]

      - id: change-requests
        title: Request spike against the previous hour
        severity: low
        filter: 'EventType == "fetch"'
        signal: {kind: change, compare_to: 1h}
        window: 5m
        group_by: [ScriptName]
        thresholds: {critical: 200, warning: 100}
        notify: [chat, hook]

      - id: absence-per-script
        title: Script went silent
        severity: high
        signal: {kind: absence, expected: [api-worker, "auth worker"], lookback: 6h}
        window: 10m
        group_by: [ScriptName]
        notify: [page-with-url, page-default, chat]
        renotify: 1h

      - id: absence-total
        title: No Workers logs at all
        severity: critical
        filter: 'Logs.Level contains "error" or Logs.Message contains "heartbeat"'
        signal: {kind: absence}
        window: 30m
        evaluation_delay: 0s
        notify: [page-default, hook]
        overrides:
          splunk: {settings: {schedule_window: 5, alert.suppress.group_name: heartbeat}}
    """
)


@dataclass(frozen=True)
class Rendered:
    """One spec and everything it renders, by path."""

    name: str
    spec_dir: Path
    spec: Spec
    files: dict[str, RenderedFile]

    def under(self, prefix: str, suffix: str = "") -> list[RenderedFile]:
        return [f for path, f in sorted(self.files.items()) if path.startswith(prefix) and path.endswith(suffix)]

    def json_under(self, prefix: str) -> Iterator[tuple[RenderedFile, dict[str, Any]]]:
        files = self.under(prefix, ".json")
        assert files, f"{self.name}: nothing rendered under {prefix}"
        for file in files:
            yield file, json.loads(file.content)

    def app_file(self, name: str) -> RenderedFile:
        return self.files[f"splunk/{self.spec.splunk_app}/default/{name}"]

    def savedsearches(self) -> dict[str, dict[str, str]]:
        """The settings of each saved search in savedsearches.conf, by stanza name."""
        stanzas = parse_conf(self.app_file("savedsearches.conf").content)
        names = [s.name for s in stanzas]
        assert len(names) == len(set(names)), f"duplicate stanzas: {names}"
        assert stanzas, "no saved search rendered"
        return {s.name: s.as_dict() for s in stanzas}


def write_spec(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "contracts.yaml").write_text(text, encoding="utf-8")
    return directory


def render_dir(spec_dir: Path) -> dict[str, RenderedFile]:
    return {f.path: f for f in render(load_spec([spec_dir]), PROVIDERS)}


def report(problems: list[str]) -> str:
    return f"{len(problems)} contract violation(s):\n" + "\n".join(problems)
