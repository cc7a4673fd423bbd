"""Rendered output against the providers' published contracts (``make contracts``).

Datadog monitors and log-based metrics against the request-body JSON Schemas; the Splunk app's ``.conf``
files against the Splunk 9.2 ``.conf.spec`` files. Both the bundled ``monitors/`` and the contract spec
(tests/contract_spec.py) are checked. The checks that need no published file run in ``make test``
(tests/test_contracts.py, tests/test_datadog_models.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from extalerts.render.conf import parse_conf
from extalerts.render.splunk_keys import ACTION_PARAMETERS, SAVEDSEARCH_KEYS
from tests.conftest import REPO
from tests.contract_spec import ACTION_KEY, Rendered, report
from tests.contracts.conftest import contract, contract_json, contracts_dir

MONITOR_SCHEMA = "datadog-v1-monitor.schema.json"
LOGS_METRIC_SCHEMA = "datadog-v2-logs-metric-create.schema.json"
SPLUNK = "splunk-9.2"


def validator(name: str) -> Draft202012Validator:
    document = contract_json(name)
    assert document.get("$schema") == "https://json-schema.org/draft/2020-12/schema", f"{name} is not draft 2020-12"
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_contracts_directory_is_outside_the_repository() -> None:
    assert not contracts_dir().resolve().is_relative_to(REPO), "contracts must be read in place, not vendored"


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
    match = ACTION_KEY.match(key)
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
    monitor = contract_json(MONITOR_SCHEMA)
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
    assert not problems, report(problems)


def test_datadog_monitors_send_no_read_only_or_undeclared_fields(rendered: Rendered) -> None:
    monitor = contract_json(MONITOR_SCHEMA)
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
    assert not problems, report(sorted(set(problems)))


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
        problems.extend(f"{file.path}: {p}" for p in schema_problems(document, contract_json(LOGS_METRIC_SCHEMA)))
        metrics.add(document["data"]["id"])
        assert file.path == f"datadog/logs-metrics/{document['data']['id']}.json"
    for rule_id in change_rules:
        query = json.loads(rendered.files[f"datadog/monitors/{rule_id}.json"].content)["query"]
        used = re.search(r":(?:avg|sum|min|max):([A-Za-z][A-Za-z0-9_.]*)\{", query)
        assert used, f"{rule_id}: no metric in {query!r}"
        if used.group(1) not in metrics:
            problems.append(f"{rule_id}: the monitor reads {used.group(1)}, which no rendered log-based metric creates")
    assert not problems, report(problems)


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


def test_savedsearches_keys_are_documented(rendered: Rendered) -> None:
    text = rendered.app_file("savedsearches.conf").content
    problems = conf_key_problems(text, "savedsearches.conf.spec")
    problems.extend(
        f"[{name}] {problem}"
        for name, settings in rendered.savedsearches().items()
        for key in settings
        if (problem := savedsearch_key_problem(key))
    )
    assert not problems, report(problems)


def test_app_conf_keys_are_documented_per_stanza(rendered: Rendered) -> None:
    text = rendered.app_file("app.conf").content
    assert {s.name for s in parse_conf(text)} >= {"launcher", "package", "install", "ui"}
    problems = conf_key_problems(text, "app.conf.spec")
    assert not problems, report(problems)


def test_props_conf_keys_are_documented(rendered: Rendered) -> None:
    problems = conf_key_problems(rendered.app_file("props.conf").content, "props.conf.spec")
    assert not problems, report(problems)
