"""Generate a large, valid extalerts spec for the render benchmark.

``write_spec(directory, rules)`` writes ``shared.yaml`` (defaults, sources, targets and derived fields,
like ``monitors/workers.yaml``) and the rules in files of at most :data:`RULES_PER_FILE`. Rule ``i``
is deterministic: its signal cycles through every kind (count, ratio, measure avg and p99,
cardinality, change, absence), and its group_by, filter size, warnings, recoveries, targets,
severity and window cycle with periods coprime to the seven signals, so the combinations vary.

Strings that YAML reads back as the same text are written plain; the others single-quoted, as the
bundled monitors write their filters.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

RULES_PER_FILE = 100
#: Identifiers, dotted field names and durations: strings YAML reads back unchanged when written plain.
_PLAIN = re.compile(r"[A-Za-z][\w.-]*|[0-9]+[smhd]")
_YAML_WORDS = {"true", "false", "null", "True", "False", "Null", "TRUE", "FALSE", "NULL"}

SHARED_SPEC = """\
version: 1

defaults:
  service: bench-api
  env: prod
  tags: ["team:platform"]
  evaluation_delay: 5m
  source: workers
  splunk_app: extalerts_bench

sources:
  workers:
    description: Workers Trace Events shipped by Logpush
    datadog: {index: "*", query: "source:cloudflare service:bench-api"}
    splunk: {index: cloudflare, sourcetype: "cloudflare:workers"}

targets:
  oncall-page:
    levels: [alert, recovery]
    pagerduty: {service: bench-api-oncall, integration_key_env: BENCH_PD_KEY}
  platform-slack:
    slack: {workspace: acme, channel: "#platform-alerts"}
  platform-email:
    levels: [alert, warning]
    email: {to: ["platform-team@example.com"]}
  incident-bot:
    levels: [alert, recovery]
    webhook: {name: incident-bot, url: "https://hooks.example.com/extalerts/incident"}

fields:
  log_event: {key: event, type: string}
  do_operation: {key: op, type: string}
  op_ok: {key: ok, type: boolean}
  op_duration_ms: {key: duration_ms, type: number}
  op_attempts: {key: attempts, type: number}
  do_storage_bytes: {key: storage_bytes, type: number}
  conversation_id: {key: conversation_id, type: string}
"""

#: Filter clauses; a rule's filter joins a rotating run of them.
CLAUSES = (
    'EventType == "fetch"',
    'Outcome != "ok"',
    "Event.Response.Status >= 500",
    'Event.Request.Method in ["POST", "PUT", "PATCH"]',
    'Logs.Message contains "ERROR_CODE_INVALID_URL"',
    "exists(Exceptions.Name)",
    'not ScriptName == "canary"',
    'log_event == "do_op"',
    "op_attempts >= 3",
    "CPUTimeMs > 10",
    'Entrypoint == "ConversationStateDO"',
    "op_ok == false",
)
MAX_CLAUSES = 5
GROUP_BYS: tuple[tuple[str, ...], ...] = (
    (),
    ("ScriptName",),
    ("ScriptName", "EventType"),
    ("do_operation",),
    ("ScriptName", "EventType", "Outcome"),
)
NOTIFY = (
    ("platform-slack",),
    ("oncall-page", "platform-slack"),
    ("platform-email",),
    ("incident-bot", "platform-slack", "platform-email"),
)
SEVERITIES = ("critical", "high", "medium", "low", "info")
WINDOWS = ("1m", "5m", "10m", "15m", "30m", "1h", "2h", "4h", "1d")
NUMERIC_FIELDS = ("CPUTimeMs", "WallTimeMs", "op_duration_ms", "do_storage_bytes")
DISTINCT_FIELDS = ("conversation_id", "ScriptName", "Event.Request.URL")
COMPARE_TO = ("5m", "15m", "1h", "4h", "1d")
#: The signal kinds in the order rules cycle through them.
SIGNAL_KINDS = ("count", "ratio", "measure-avg", "measure-p99", "cardinality", "change", "absence")


def signal_kind(index: int) -> str:
    """The signal kind of rule ``index``, with the aggregation for measures (``measure-p99``)."""
    return SIGNAL_KINDS[index % len(SIGNAL_KINDS)]


def signal(index: int) -> dict[str, Any]:
    """The signal of rule ``index``."""
    kind = signal_kind(index)
    if kind == "ratio":
        return {"kind": "ratio", "match": "Event.Response.Status >= 500", "min_events": 50}
    if kind.startswith("measure"):
        aggregation = kind.removeprefix("measure-")
        return {"kind": "measure", "field": NUMERIC_FIELDS[index % len(NUMERIC_FIELDS)], "aggregation": aggregation}
    if kind == "cardinality":
        return {"kind": "cardinality", "field": DISTINCT_FIELDS[index % len(DISTINCT_FIELDS)]}
    if kind == "change":
        return {"kind": "change", "compare_to": COMPARE_TO[index % len(COMPARE_TO)]}
    return {"kind": kind}


def filter_text(index: int) -> str | None:
    """A filter of ``index % (MAX_CLAUSES + 1)`` clauses (none for size 0); larger ones open with an ``or`` group."""
    size = index % (MAX_CLAUSES + 1)
    if size == 0:
        return None
    clauses = [CLAUSES[(index + k) % len(CLAUSES)] for k in range(size)]
    if size >= 3:
        clauses[:2] = [f"({clauses[0]} or {clauses[1]})"]
    return " and ".join(clauses)


def thresholds(index: int) -> dict[str, int]:
    """Critical always; a warning on two rules in three; recoveries on every other rule."""
    critical = 10 * (1 + index % 50)
    values = {"critical": critical}
    if index % 2 == 0:
        values["critical_recovery"] = critical * 4 // 5
    if index % 3 != 0:
        values["warning"] = critical // 2
        if index % 2 == 0:
            values["warning_recovery"] = critical * 2 // 5
    return values


def rule_id(index: int) -> str:
    return f"rule-{index + 1:04d}"


def rule(index: int) -> dict[str, Any]:
    """Rule ``index`` as plain data, in the key order of the bundled monitors."""
    sig = signal(index)
    group_by = list(GROUP_BYS[index % len(GROUP_BYS)])
    data: dict[str, Any] = {
        "id": rule_id(index),
        "title": f"Benchmark rule {index + 1} ({signal_kind(index)})",
        "description": f"Generated rule {index + 1} for the render benchmark.",
        "severity": SEVERITIES[index % len(SEVERITIES)],
        "runbook": f"https://runbooks.example.com/bench/{rule_id(index)}",
    }
    text = filter_text(index)
    if text is not None:
        data["filter"] = text
    data["signal"] = sig
    data["window"] = WINDOWS[index % len(WINDOWS)]
    if group_by:
        data["group_by"] = group_by
    if sig["kind"] == "absence":
        if len(group_by) == 1:
            sig["expected"] = [f"{group_by[0].lower()}-a", f"{group_by[0].lower()}-b"]
    else:
        data["thresholds"] = thresholds(index)
    data["notify"] = list(NOTIFY[index % len(NOTIFY)])
    if index % 4 == 0:
        data["renotify"] = "30m"
    return data


def _flow(value: Any) -> str:
    """A YAML flow value: mappings and lists inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, str):
        return _scalar(value)
    return str(value)


def _scalar(text: str) -> str:
    if _PLAIN.fullmatch(text) and text not in _YAML_WORDS:
        return text
    return "'" + text.replace("'", "''") + "'"


def rule_yaml(data: dict[str, Any]) -> str:
    """One rule as a block-style list item with flow-style values."""
    lines = [
        f"  - {key}: {_flow(value)}" if n == 0 else f"    {key}: {_flow(value)}"
        for n, (key, value) in enumerate(data.items())
    ]
    return "\n".join(lines) + "\n"


def rules_file(start: int, stop: int) -> str:
    body = "\n".join(rule_yaml(rule(index)) for index in range(start, stop))
    return f"version: 1\n\nrules:\n{body}"


def write_spec(directory: Path, rules: int) -> list[Path]:
    """Write a spec of ``rules`` rules into ``directory``; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    shared = directory / "shared.yaml"
    shared.write_text(SHARED_SPEC, encoding="utf-8")
    written = [shared]
    for start in range(0, rules, RULES_PER_FILE):
        path = directory / f"rules-{start // RULES_PER_FILE + 1:03d}.yaml"
        path.write_text(rules_file(start, min(start + RULES_PER_FILE, rules)), encoding="utf-8")
        written.append(path)
    return written
