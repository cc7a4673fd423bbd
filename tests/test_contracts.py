"""Rendered output against the providers' published contracts, read in place from outside the repository.

The contracts live in ``<repo root>/../shared/contracts`` (``EXTALERTS_CONTRACTS_DIR`` overrides it):
the Datadog request-body JSON Schemas and the Splunk 9.2 ``.conf.spec`` files (see their README). They
are never copied into the repository; a missing directory fails these tests, it does not skip them.

Two specs are rendered: the bundled ``monitors/`` and ``CONTRACT_SPEC`` below, which exercises every
signal kind, every target kind, warning and recovery thresholds, renotify and overrides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from extalerts.errors import RenderError, SpecError
from extalerts.render import RenderedFile, render
from extalerts.render.conf import parse_conf
from extalerts.render.splunk_keys import ACTION_PARAMETERS, REST_NAMES, SAVEDSEARCH_KEYS
from extalerts.spec import Spec, load_spec

REPO = Path(__file__).resolve().parents[1]
CONTRACTS_ENV = "EXTALERTS_CONTRACTS_DIR"
PROVIDERS = ["datadog", "splunk"]

MONITOR_SCHEMA = "datadog-v1-monitor.schema.json"
LOGS_METRIC_SCHEMA = "datadog-v2-logs-metric-create.schema.json"
SPLUNK = "splunk-9.2"

# --------------------------------------------------------------------------------------------- contracts


def contracts_dir() -> Path:
    """The published contracts, beside the repository unless ``EXTALERTS_CONTRACTS_DIR`` says otherwise."""
    override = os.environ.get(CONTRACTS_ENV)
    path = Path(override) if override else REPO.parent / "shared" / "contracts"
    if not path.is_dir():
        pytest.fail(
            f"the providers' published contracts are missing: {path} is not a directory. They are read in "
            f"place, never copied into the repository: check out `shared/` beside the repository "
            f"(<repo root>/../shared/contracts) or set {CONTRACTS_ENV} to the contracts directory.",
            pytrace=False,
        )
    return path


def contract(*parts: str) -> Path:
    path = contracts_dir().joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"contract file {path} is missing from {contracts_dir()}", pytrace=False)
    return path


@cache
def _read_json(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a JSON object"
    return document


def schema(name: str) -> dict[str, Any]:
    return _read_json(contract(name))


def validator(name: str) -> Draft202012Validator:
    document = schema(name)
    assert document.get("$schema") == "https://json-schema.org/draft/2020-12/schema", f"{name} is not draft 2020-12"
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --------------------------------------------------------------------------------------------- .conf.spec


_SPEC_STANZA = re.compile(r"^\[([^\]]*)\]\s*$")
#: A setting line: ``key = <type>`` at column 0; the key may hold ``<placeholder>`` parts (with spaces).
_SPEC_SETTING = re.compile(r"^((?:<[^>]*>|[^\s=<>#*\[])+)\s*=")


def _placeholder_regex(text: str, fill: str = r"[^\s=]+") -> re.Pattern[str]:
    """``EXTRACT-<class>`` → ``EXTRACT\\-[^\\s=]+``: every ``<...>`` stands for a name of your choosing."""
    parts = re.split(r"(<[^>]*>)", text)
    return re.compile("".join(fill if p.startswith("<") else re.escape(p) for p in parts if p))


def _stanza_regex(header: str) -> re.Pattern[str]:
    """A stanza name may hold spaces (``[extalerts - rule]``), so its placeholders match anything but ``]``."""
    return _placeholder_regex(header, r"[^\]]+")


@dataclass(frozen=True)
class ConfSpec:
    """The documented settings of one ``.conf.spec``: global ones (``""``) and per stanza header, as written."""

    name: str
    stanzas: dict[str, tuple[str, ...]]

    def stanza_documented(self, stanza: str) -> bool:
        return any(_stanza_regex(header).fullmatch(stanza) for header in self.stanzas if header)

    def key_documented(self, key: str, stanza: str) -> bool:
        """Documented globally or under a stanza header that ``stanza`` matches (exactly or by placeholder)."""
        for header, keys in self.stanzas.items():
            if header and not _stanza_regex(header).fullmatch(stanza):
                continue
            if any(_placeholder_regex(raw).fullmatch(key) for raw in keys):
                return True
        return False

    def all_keys(self) -> set[str]:
        return {key for keys in self.stanzas.values() for key in keys}


@cache
def _parse_spec(path: Path) -> ConfSpec:
    stanzas: dict[str, list[str]] = {"": []}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        header = _SPEC_STANZA.match(line)
        if header:
            current = header.group(1)
            stanzas.setdefault(current, [])
            continue
        setting = _SPEC_SETTING.match(line)
        if setting:
            stanzas[current].append(setting.group(1).strip())
    return ConfSpec(path.name, {header: tuple(keys) for header, keys in stanzas.items()})


def conf_spec(name: str) -> ConfSpec:
    return _parse_spec(contract(SPLUNK, name))


_ACTION_KEY = re.compile(r"^action\.([^.]+)(?:\.(.+))?$")
_GENERIC_ACTION = "action.<action_name>"
_GENERIC_ACTION_PARAMETER = "action.<action_name>.<parameter>"


def savedsearch_key_problem(key: str) -> str:
    """Why ``key`` is not documented for a saved search ("" when it is).

    Documented means: a setting of ``savedsearches.conf.spec`` other than the two generic action patterns,
    or ``action.<name>[.<param>]`` where ``<name>`` is a built-in action (a stanza of
    ``alert_actions.conf.spec``) whose stanza, or the file's global settings that apply to every action,
    list ``<param>``; an app-provided action (slack, pagerduty, webhook) is documented only by
    ``action.<action_name>.<parameter>`` in ``savedsearches.conf.spec``.
    """
    saved = conf_spec("savedsearches.conf.spec")
    specific = [raw for raw in saved.all_keys() if not raw.startswith("action.<")]
    if any(_placeholder_regex(raw).fullmatch(key) for raw in specific):
        return ""
    match = _ACTION_KEY.match(key)
    if match is None:
        return f"{key!r} is not a setting of savedsearches.conf.spec"
    action, parameter = match.groups()
    if parameter is None:
        if _GENERIC_ACTION in saved.all_keys():
            return ""
        return f"savedsearches.conf.spec does not document {_GENERIC_ACTION}"
    actions = conf_spec("alert_actions.conf.spec")
    builtin = {header for header in actions.stanzas if header and "<" not in header}
    if action in builtin:
        if actions.key_documented(parameter, action):
            return ""
        return f"{key!r}: built-in action [{action}] of alert_actions.conf.spec has no setting {parameter!r}"
    if _GENERIC_ACTION_PARAMETER in saved.all_keys():
        return ""
    return f"savedsearches.conf.spec does not document {_GENERIC_ACTION_PARAMETER}"


def conf_key_problems(text: str, spec_name: str) -> list[str]:
    """Stanzas and keys of a rendered ``.conf`` that ``spec_name`` does not document (stanza-aware)."""
    spec = conf_spec(spec_name)
    problems: list[str] = []
    for stanza in parse_conf(text):
        if not spec.stanza_documented(stanza.name):
            problems.append(f"[{stanza.name}] is not a stanza {spec_name} documents")
            continue
        problems.extend(
            f"[{stanza.name}] {key} is not documented for this stanza in {spec_name}"
            for key, _ in stanza.settings
            if not spec.key_documented(key, stanza.name)
        )
    return problems


# --------------------------------------------------------------------------------------------- specs

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
          splunk_integration_url: "https://events.pagerduty.com/integration/k3y/enqueue"
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


def write_spec(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "contracts.yaml").write_text(text, encoding="utf-8")
    return directory


def render_dir(spec_dir: Path) -> dict[str, RenderedFile]:
    return {f.path: f for f in render(load_spec([spec_dir]), PROVIDERS)}


@pytest.fixture(scope="session")
def contract_spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spec(tmp_path_factory.mktemp("contract-spec") / "monitors", CONTRACT_SPEC)


@pytest.fixture(scope="session", params=["monitors", "contract-spec"])
def rendered(request: pytest.FixtureRequest, contract_spec_dir: Path) -> Rendered:
    spec_dir = REPO / "monitors" if request.param == "monitors" else contract_spec_dir
    spec = load_spec([spec_dir])
    return Rendered(request.param, spec_dir, spec, {f.path: f for f in render(spec, PROVIDERS)})


def _report(problems: list[str]) -> str:
    return f"{len(problems)} contract violation(s):\n" + "\n".join(problems)


def test_missing_contracts_directory_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-contracts"
    monkeypatch.setenv(CONTRACTS_ENV, str(missing))
    with pytest.raises(pytest.fail.Exception, match=r"contracts are missing: .*no-such-contracts"):
        contracts_dir()


def test_contracts_directory_is_outside_the_repository() -> None:
    assert not contracts_dir().resolve().is_relative_to(REPO), "contracts must be read in place, not vendored"


def test_contract_spec_exercises_every_shape(contract_spec_dir: Path) -> None:
    spec = load_spec([contract_spec_dir])
    rules = {r.id: r.rule for r in spec.rules}
    signals = {r.signal.kind for r in rules.values()}
    assert signals == {"count", "ratio", "measure", "cardinality", "change", "absence"}
    aggregations = {getattr(r.signal, "aggregation", None) for r in rules.values() if r.signal.kind == "measure"}
    assert aggregations == {"avg", "p95"}
    assert {bool(r.group_by) for r in rules.values() if r.signal.kind == "absence"} == {True, False}
    kinds = {t.kind for t in spec.targets.values()}
    assert kinds == {"slack", "pagerduty", "email", "webhook"}
    urls = {t.pagerduty.splunk_integration_url is not None for t in spec.targets.values() if t.pagerduty}
    assert urls == {True, False}
    assert any(r.thresholds and r.thresholds.warning_recovery is not None for r in rules.values())
    assert any(r.renotify for r in rules.values())
    assert any(r.overrides.datadog.options.get("new_group_delay") for r in rules.values())
    assert any(r.overrides.splunk.settings.get("schedule_window") for r in rules.values())


# --------------------------------------------------------------------------------------------- Datadog


def _subschema_variants(schema_: dict[str, Any], instance: Any) -> list[dict[str, Any]]:
    """``schema_`` and the ``allOf`` parts and matching ``oneOf``/``anyOf`` variants that apply to ``instance``."""
    variants = [schema_]
    for part in schema_.get("allOf", []):
        variants.extend(_subschema_variants(part, instance))
    for key in ("oneOf", "anyOf"):
        for option in schema_.get(key, []):
            if Draft202012Validator(option).is_valid(instance):
                variants.extend(_subschema_variants(option, instance))
    return variants


def schema_problems(instance: Any, schema_: dict[str, Any], where: str = "") -> list[str]:
    """What the permissive schema lets through: ``readOnly`` properties, and keys no variant declares.

    Free-form maps (``additionalProperties`` with a schema and no ``properties``) hold data, not fields.
    """
    problems: list[str] = []
    variants = _subschema_variants(schema_, instance)
    if where and any(v.get("readOnly") for v in variants):
        problems.append(f"{where}: read-only property must not be sent")
    if isinstance(instance, dict):
        declared: dict[str, list[dict[str, Any]]] = {}
        free_form: list[dict[str, Any]] = []
        for variant in variants:
            for key, sub in variant.get("properties", {}).items():
                declared.setdefault(key, []).append(sub)
            extra = variant.get("additionalProperties")
            if isinstance(extra, dict) and not variant.get("properties"):
                free_form.append(extra)
        for key, value in instance.items():
            path = f"{where}.{key}" if where else key
            if key in declared:
                for sub in declared[key]:
                    problems.extend(schema_problems(value, sub, path))
            elif free_form:
                for sub in free_form:
                    problems.extend(schema_problems(value, sub, path))
            else:
                problems.append(f"{path}: not a property the schema declares")
    elif isinstance(instance, list):
        for variant in variants:
            items = variant.get("items")
            if isinstance(items, dict):
                for index, item in enumerate(instance):
                    problems.extend(schema_problems(item, items, f"{where}[{index}]"))
    return sorted(set(problems))


def _properties(schema_: dict[str, Any], *path: str) -> dict[str, Any]:
    for name in path:
        schema_ = schema_["properties"][name]
    return schema_


def test_monitor_schema_marks_read_only_fields() -> None:
    """The walk below relies on the schema carrying ``readOnly`` (see the contracts README)."""
    monitor = schema(MONITOR_SCHEMA)
    top = {k for k, v in monitor["properties"].items() if v.get("readOnly")}
    assert {"id", "created", "creator", "deleted", "modified", "multi", "overall_state", "state"} <= top
    assert _properties(monitor, "options", "device_ids").get("readOnly")


def test_datadog_monitors_validate_against_the_published_schema(rendered: Rendered) -> None:
    check = validator(MONITOR_SCHEMA)
    problems = [
        f"{file.path}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for file, document in rendered.json_under("datadog/monitors/")
        for error in check.iter_errors(document)
    ]
    assert not problems, _report(problems)


def test_datadog_monitors_send_no_read_only_or_undeclared_fields(rendered: Rendered) -> None:
    monitor = schema(MONITOR_SCHEMA)
    problems: list[str] = []
    for file, document in rendered.json_under("datadog/monitors/"):
        problems.extend(f"{file.path}: {p}" for p in schema_problems(document, monitor))
        # The three levels named in the contracts README as accepting unknown properties, explicitly.
        levels = [
            ("", document, monitor),
            ("options.", document.get("options", {}), _properties(monitor, "options")),
            (
                "options.thresholds.",
                document.get("options", {}).get("thresholds", {}),
                _properties(monitor, "options", "thresholds"),
            ),
        ]
        for prefix, part, part_schema in levels:
            declared = set(part_schema["properties"])
            problems.extend(f"{file.path}: {prefix}{key}: undeclared" for key in sorted(set(part) - declared))
    assert not problems, _report(sorted(set(problems)))


def test_datadog_logs_metrics_validate_against_the_published_schema(rendered: Rendered) -> None:
    change_rules = [r.id for r in rendered.spec.rules if r.rule.signal.kind == "change"]
    if not change_rules:
        pytest.fail(f"{rendered.name}: no change rule, so no log-based metric is checked")
    check = validator(LOGS_METRIC_SCHEMA)
    problems: list[str] = []
    metrics: set[str] = set()
    for file, document in rendered.json_under("datadog/logs-metrics/"):
        problems.extend(
            f"{file.path}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in check.iter_errors(document)
        )
        problems.extend(f"{file.path}: {p}" for p in schema_problems(document, schema(LOGS_METRIC_SCHEMA)))
        metrics.add(document["data"]["id"])
        assert file.path == f"datadog/logs-metrics/{document['data']['id']}.json"
    for rule_id in change_rules:
        query = json.loads(rendered.files[f"datadog/monitors/{rule_id}.json"].content)["query"]
        used = re.search(r":(?:avg|sum|min|max):([A-Za-z][A-Za-z0-9_.]*)\{", query)
        assert used, f"{rule_id}: no metric in {query!r}"
        if used.group(1) not in metrics:
            problems.append(f"{rule_id}: the monitor reads {used.group(1)}, which no rendered log-based metric creates")
    assert not problems, _report(problems)


_TRAILING_NUMBER = re.compile(r"(?:<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)$")


def split_double_quoted(text: str) -> tuple[list[str], str]:
    """The double-quoted literals of ``text`` (backslash escapes undone) and the text outside them."""
    literals: list[str] = []
    outside: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            outside.append(text[index : index + 2])
            index += 2
        elif char == '"':
            end = index + 1
            literal: list[str] = []
            while end < len(text) and text[end] != '"':
                if text[end] == "\\" and end + 1 < len(text):
                    end += 1
                literal.append(text[end])
                end += 1
            if end >= len(text):
                raise ValueError(f"unterminated string at {index}: {text[index:][:40]!r}")
            literals.append("".join(literal))
            outside.append('""')
            index = end + 1
        else:
            outside.append(char)
            index += 1
    return literals, "".join(outside)


def query_problems(document: dict[str, Any]) -> list[str]:
    query: str = document["query"]
    problems: list[str] = []
    number = _TRAILING_NUMBER.search(query)
    critical = document.get("options", {}).get("thresholds", {}).get("critical")
    if number is None:
        problems.append(f"the query does not end in `<operator> <number>`: {query!r}")
    elif critical is None or float(number.group(1)) != float(critical):
        problems.append(f"the query threshold {number.group(1)} differs from options.thresholds.critical {critical}")
    try:
        literals, outside = split_double_quoted(query)
    except ValueError as exc:
        return [*problems, f"query: {exc}"]
    if "'" in outside:
        problems.append(f"the query has a single-quoted string: {query!r}")
    for function, first in re.findall(r"\b(logs|formula|index|rollup|by|last)\((.?)", outside):
        if first != '"':
            problems.append(f"{function}(...) does not take a double-quoted string: {query!r}")
    if query.startswith("logs("):
        # The log search inside logs("..."): phrases are double-quoted, never single-quoted.
        try:
            _, search_outside = split_double_quoted(literals[0])
        except ValueError as exc:
            problems.append(f"the log search: {exc}")
        else:
            if "'" in search_outside:
                problems.append(f"the log search quotes with single quotes: {literals[0]!r}")
    return problems


def test_datadog_queries_match_thresholds_quote_with_double_quotes_and_tags_name_the_rule(
    rendered: Rendered,
) -> None:
    problems: list[str] = []
    for file, document in rendered.json_under("datadog/monitors/"):
        problems.extend(f"{file.path}: {p}" for p in query_problems(document))
        rule_id = file.path.removeprefix("datadog/monitors/").removesuffix(".json")
        if file.rule_id != rule_id:
            problems.append(f"{file.path}: rendered for rule {file.rule_id!r}")
        tags = document.get("tags", [])
        if "managed-by:extalerts" not in tags:
            problems.append(f"{file.path}: no managed-by:extalerts tag")
        rule_tags = [t for t in tags if t.startswith("extalerts-rule:")]
        if rule_tags != [f"extalerts-rule:{rule_id}"]:
            problems.append(f"{file.path}: rule tags {rule_tags}, expected exactly extalerts-rule:{rule_id}")
    assert {f.rule_id for f in rendered.under("datadog/monitors/")} == {r.id for r in rendered.spec.rules}
    assert not problems, _report(problems)


# --------------------------------------------------------------------------------------------- Splunk keys


def test_splunk_spec_files_parse_into_settings() -> None:
    saved = conf_spec("savedsearches.conf.spec").all_keys()
    assert {"search", "cron_schedule", "alert.suppress.fields", _GENERIC_ACTION, _GENERIC_ACTION_PARAMETER} <= saved
    actions = conf_spec("alert_actions.conf.spec")
    assert {"email", "script", "lookup", "summary_index", "populate_lookup"} <= set(actions.stanzas)
    assert "cc" in actions.stanzas["email"]
    assert {"launcher", "package", "install", "ui"} <= set(conf_spec("app.conf.spec").stanzas)
    assert {"KV_MODE", "TIME_FORMAT"} <= conf_spec("props.conf.spec").all_keys()


@pytest.mark.parametrize("key", sorted(SAVEDSEARCH_KEYS))
def test_runtime_allow_list_keys_are_documented(key: str) -> None:
    assert savedsearch_key_problem(key) == ""


@pytest.mark.parametrize(
    "key", sorted(f"action.{name}.{param}" for name, params in ACTION_PARAMETERS.items() for param in params)
)
def test_runtime_allow_list_action_parameters_are_documented(key: str) -> None:
    assert savedsearch_key_problem(key) == ""


@pytest.mark.parametrize(
    "key",
    ["action.email.no_such_param", "action.script.param.x", "schedule_windw", "alert.suppress.feilds"],
)
def test_undocumented_keys_are_recognised(key: str) -> None:
    """The checker itself: built-in actions are held to their stanza, typos are not documented."""
    assert savedsearch_key_problem(key) != ""


def _savedsearches(rendered: Rendered) -> dict[str, dict[str, str]]:
    stanzas = parse_conf(rendered.app_file("savedsearches.conf").content)
    names = [s.name for s in stanzas]
    assert len(names) == len(set(names)), f"duplicate stanzas: {names}"
    assert stanzas, "no saved search rendered"
    return {s.name: s.as_dict() for s in stanzas}


def test_savedsearches_keys_are_documented(rendered: Rendered) -> None:
    text = rendered.app_file("savedsearches.conf").content
    problems = conf_key_problems(text, "savedsearches.conf.spec")
    problems.extend(
        f"[{name}] {problem}"
        for name, settings in _savedsearches(rendered).items()
        for key in settings
        if (problem := savedsearch_key_problem(key))
    )
    assert not problems, _report(problems)


def test_app_conf_keys_are_documented_per_stanza(rendered: Rendered) -> None:
    text = rendered.app_file("app.conf").content
    assert {s.name for s in parse_conf(text)} >= {"launcher", "package", "install", "ui"}
    problems = conf_key_problems(text, "app.conf.spec")
    assert not problems, _report(problems)


def test_props_conf_keys_are_documented(rendered: Rendered) -> None:
    problems = conf_key_problems(rendered.app_file("props.conf").content, "props.conf.spec")
    assert not problems, _report(problems)


# --------------------------------------------------------------------------------------------- Splunk alerts

_TRUE = {"1", "true"}
_FALSE = {"0", "false"}
_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")


def scheduled_alert_problems(settings: dict[str, str]) -> list[str]:
    """Why a saved search is not a real scheduled alert as savedsearches.conf.spec describes one."""
    problems: list[str] = []

    def expect(key: str, allowed: set[str], what: str) -> None:
        value = settings.get(key)
        if value is None or value.lower() not in allowed:
            problems.append(f"{key} = {value!r}, expected {what}")

    if not settings.get("search", "").strip():
        problems.append("no search")
    expect("enableSched", _TRUE, "1")
    cron = settings.get("cron_schedule", "").split()
    if len(cron) != 5 or not all(_CRON_FIELD.match(field) for field in cron):
        problems.append(f"cron_schedule = {settings.get('cron_schedule')!r} is not a 5-field cron expression")
    for key in ("dispatch.earliest_time", "dispatch.latest_time"):
        if not settings.get(key, "").strip():
            problems.append(f"{key} is missing")
    expect("counttype", {"number of events"}, "'number of events'")
    expect("relation", {"greater than"}, "'greater than'")
    expect("quantity", {"0"}, "0")
    expect("alert.track", _TRUE, "1")
    severity = settings.get("alert.severity", "")
    if not (severity.isdigit() and 1 <= int(severity) <= 6):
        problems.append(f"alert.severity = {severity!r}, expected 1 (debug) … 6 (fatal)")
    digest = settings.get("alert.digest_mode", "1").lower()  # spec default: true
    suppress = settings.get("alert.suppress", "0").lower()  # spec default: false
    if digest in _FALSE and suppress in _TRUE and not settings.get("alert.suppress.fields", "").strip():
        problems.append("alert.suppress.fields must be set when digest mode is off and suppression is on")
    return problems


def test_every_saved_search_is_a_scheduled_alert(rendered: Rendered) -> None:
    problems = [
        f"[{name}] {problem}"
        for name, settings in _savedsearches(rendered).items()
        for problem in scheduled_alert_problems(settings)
    ]
    assert not problems, _report(problems)


def test_multi_line_values_use_backslash_continuations_that_parse_back(rendered: Rendered) -> None:
    text = rendered.app_file("savedsearches.conf").content
    continued = [line for line in text.split("\n") if line.endswith("\\")]
    assert continued, "expected multi-line search and description values"
    bad = [line for line in continued if not line.endswith(" \\")]
    assert not bad, f"continuation lines must end in ` \\`: {bad}"
    stanzas = _savedsearches(rendered)
    for rule in rendered.spec.rules:
        description = stanzas[f"extalerts - {rule.id}"]["description"]
        assert "\n" in description
        assert rule.rule.title in description.split("\n")
        if rule.rule.description:
            assert rule.rule.description.strip() in description, f"{rule.id}: description lost in the round trip"


# --------------------------------------------------------------------------------------------- Splunk REST

_CONF_ONLY = {"enableSched", "counttype", "relation", "quantity"}
_REST_REQUIRED = {"is_scheduled", "alert_type", "alert_comparator", "alert_threshold", "actions"}


def rest_problems(params: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for key in sorted(params):
        if key in _CONF_ONLY:
            problems.append(f"{key} is a .conf name; REST calls it {REST_NAMES.get(key, '?')}")
        match = _ACTION_KEY.match(key)
        if match and match.group(2) is None:
            problems.append(f"{key} is read-only over REST; enabled actions go in `actions`")
    if "name" in params:
        problems.append("`name` belongs in the request, not in the saved search parameters")
    problems.extend(f"{key} is missing" for key in sorted(_REST_REQUIRED - set(params)))
    actions = {a.strip() for a in params.get("actions", "").split(",") if a.strip()}
    for key in sorted(params):
        match = _ACTION_KEY.match(key)
        if match and match.group(2) is not None and match.group(1) not in actions:
            problems.append(f"{key} sets a parameter of action {match.group(1)!r}, which `actions` does not list")
    return problems


def test_rest_payloads_use_rest_names_and_list_their_actions(rendered: Rendered) -> None:
    problems: list[str] = []
    for file, payload in rendered.json_under("splunk/rest/"):
        problems.extend(f"{file.path}: {p}" for p in rest_problems(payload["params"]))
    assert not problems, _report(problems)


def test_rest_payloads_say_what_the_conf_says(rendered: Rendered) -> None:
    """Each REST payload is its stanza under REST names: an independent check that the .conf parses back."""
    stanzas = _savedsearches(rendered)
    conf_names = {rest: conf for conf, rest in REST_NAMES.items()}
    seen: set[str] = set()
    for file, payload in rendered.json_under("splunk/rest/"):
        name = payload["name"]
        assert payload["app"] == rendered.spec.splunk_app
        assert name in stanzas, f"{file.path}: no stanza [{name}] in savedsearches.conf"
        seen.add(name)
        params = dict(payload["params"])
        actions = [a for a in params.pop("actions").split(",") if a]
        as_conf = {conf_names.get(k, k): v for k, v in params.items()}
        settings = stanzas[name]
        enabled = [m.group(1) for k, v in settings.items() if (m := _ACTION_KEY.match(k)) and m.group(2) is None]
        assert all(settings[f"action.{a}"] in _TRUE for a in enabled)
        assert actions == enabled, f"{file.path}: actions {actions} but the stanza enables {enabled}"
        without_switches = {k: v for k, v in settings.items() if not (k.startswith("action.") and k.count(".") == 1)}
        assert as_conf == without_switches, f"{file.path}: differs from [{name}]"
    assert seen == set(stanzas), f"stanzas without a REST payload: {sorted(set(stanzas) - seen)}"


# --------------------------------------------------------------------------------------------- determinism

_RENDER_SCRIPT = """
import json, sys
from pathlib import Path
from extalerts.render import render
from extalerts.spec import load_spec
files = render(load_spec([Path(sys.argv[1])]), ["datadog", "splunk"])
sys.stdout.write(json.dumps([[f.path, f.content, f.rule_id] for f in files]))
"""


def test_rendering_twice_gives_identical_bytes(rendered: Rendered) -> None:
    again = render_dir(rendered.spec_dir)
    assert list(again) == list(rendered.files)
    for path, file in rendered.files.items():
        assert again[path].content.encode() == file.content.encode(), f"{path} differs between two renders"


def test_rendering_in_another_process_gives_identical_bytes(rendered: Rendered) -> None:
    """A fresh interpreter with a different hash seed: no set or dict ordering leaks into the output."""
    result = subprocess.run(
        [sys.executable, "-c", _RENDER_SCRIPT, str(rendered.spec_dir)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    other = [tuple(item) for item in json.loads(result.stdout)]
    assert other == [(f.path, f.content, f.rule_id) for f in rendered.files.values()]


# --------------------------------------------------------------------------------------------- known gaps
#
# Inputs the spec accepts whose rendering breaks a contract or cannot be written at all. Each test states
# the expected behaviour: refuse the spec with a SpecError/RenderError, or render output that keeps the
# contract. They fail until the renderer is fixed.

_SMALL_SPEC_HEAD = textwrap.dedent(
    """\
    version: 1
    sources:
      workers: {}
    defaults: {source: workers}
    targets:
      chat:
        slack: {workspace: acme, channel: alerts}
    rules:
    """
)


def _small_spec(tmp_path: Path, rule: str) -> Path:
    return write_spec(tmp_path / "monitors", _SMALL_SPEC_HEAD + textwrap.indent(textwrap.dedent(rule), "  "))


def _render_or_refuse(spec_dir: Path) -> dict[str, RenderedFile] | None:
    """The rendered files, or None when extalerts refuses the spec (which keeps every contract)."""
    try:
        return render_dir(spec_dir)
    except (SpecError, RenderError):
        return None


_OVERRIDE_RULE = """\
- id: edge
  title: Edge
  severity: low
  signal: {{kind: count}}
  window: 5m
  thresholds: {{critical: 1}}
  notify: [chat]
  overrides:
    splunk: {{settings: {{{settings}}}}}
"""


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param("alert.digest_mode: 0", id="digest-off-without-suppress-fields"),
        pytest.param("alert.severity: 9", id="severity-out-of-range"),
        pytest.param("cron_schedule: every minute", id="cron-not-five-fields"),
        pytest.param("counttype: always", id="counttype-always-with-relation-and-quantity"),
        pytest.param("action.email.cc: ops@example.com", id="email-parameter-without-email-action"),
    ],
)
def test_splunk_overrides_cannot_break_the_alert_contract(tmp_path: Path, settings: str) -> None:
    files = _render_or_refuse(_small_spec(tmp_path, _OVERRIDE_RULE.format(settings=settings)))
    if files is None:
        return
    conf = files["splunk/extalerts_workers/default/savedsearches.conf"].content
    stanza = {s.name: s.as_dict() for s in parse_conf(conf)}["extalerts - edge"]
    params = json.loads(files["splunk/rest/edge.json"].content)["params"]
    problems = scheduled_alert_problems(stanza) + [f"REST: {p}" for p in rest_problems(params)]
    assert not problems, f"override {{{settings}}} was accepted and rendered: " + _report(problems)


@pytest.mark.parametrize(
    "description",
    [
        pytest.param("Steps:\n  - restart the Worker\n  - check Logpush\n", id="indented-line"),
        pytest.param("Trailing spaces here   \nand a second line\n", id="trailing-spaces"),
    ],
)
def test_multi_line_descriptions_render_and_parse_back(tmp_path: Path, description: str) -> None:
    rule = f"""\
    - id: edge
      title: Edge
      description: {json.dumps(description)}
      severity: low
      signal: {{kind: count}}
      window: 5m
      thresholds: {{critical: 1}}
      notify: [chat]
    """
    spec_dir = _small_spec(tmp_path, rule)
    files = render_dir(spec_dir)  # a valid spec must render
    conf = files["splunk/extalerts_workers/default/savedsearches.conf"].content
    parsed = {s.name: s.as_dict() for s in parse_conf(conf)}["extalerts - edge"]["description"]
    lines = [line.strip() for line in parsed.split("\n")]
    for line in description.strip().split("\n"):
        assert line.strip() in lines


def test_small_thresholds_render_as_plain_decimals(tmp_path: Path) -> None:
    rule = """\
    - id: edge
      title: Rare errors
      severity: low
      filter: 'EventType == "fetch"'
      signal: {kind: ratio, match: "Event.Response.Status >= 500"}
      window: 5m
      thresholds: {critical: 0.00005}
      notify: [chat]
    """
    files = render_dir(_small_spec(tmp_path, rule))  # a valid spec must render
    document = json.loads(files["datadog/monitors/edge.json"].content)
    assert query_problems(document) == []
