"""Rendered output against the contracts that need no published file: this runs in ``make test``.

Datadog queries (thresholds, quoting, ownership tags), Splunk saved searches that are real scheduled alerts,
REST payloads that say what the ``.conf`` says, byte-identical renders, and the inputs the spec accepts that
must not break those contracts. Both the bundled ``monitors/`` and the contract spec (tests/contract_spec.py)
are checked. The checks against the providers' published contracts (../shared/contracts) are in
tests/contracts/ and run with ``make contracts``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from extalerts.errors import RenderError, SpecError
from extalerts.render import RenderedFile
from extalerts.render.conf import parse_conf
from extalerts.render.splunk_keys import REST_NAMES
from extalerts.spec import load_spec
from tests.contract_spec import ACTION_KEY, Rendered, render_dir, report, write_spec


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
    key_envs = {t.pagerduty.integration_key_env is not None for t in spec.targets.values() if t.pagerduty}
    assert key_envs == {True, False}
    assert any(r.thresholds and r.thresholds.warning_recovery is not None for r in rules.values())
    assert any(r.renotify for r in rules.values())
    assert any(r.overrides.datadog.options.get("new_group_delay") for r in rules.values())
    assert any(r.overrides.splunk.settings.get("schedule_window") for r in rules.values())


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
    assert not problems, report(problems)


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
        for name, settings in rendered.savedsearches().items()
        for problem in scheduled_alert_problems(settings)
    ]
    assert not problems, report(problems)


def test_multi_line_values_use_backslash_continuations_that_parse_back(rendered: Rendered) -> None:
    text = rendered.app_file("savedsearches.conf").content
    continued = [line for line in text.split("\n") if line.endswith("\\")]
    assert continued, "expected multi-line search and description values"
    bad = [line for line in continued if not line.endswith(" \\")]
    assert not bad, f"continuation lines must end in ` \\`: {bad}"
    stanzas = rendered.savedsearches()
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
        match = ACTION_KEY.match(key)
        if match and match.group(2) is None:
            problems.append(f"{key} is read-only over REST; enabled actions go in `actions`")
    if "name" in params:
        problems.append("`name` belongs in the request, not in the saved search parameters")
    problems.extend(f"{key} is missing" for key in sorted(_REST_REQUIRED - set(params)))
    actions = {a.strip() for a in params.get("actions", "").split(",") if a.strip()}
    for key in sorted(params):
        match = ACTION_KEY.match(key)
        if match and match.group(2) is not None and match.group(1) not in actions:
            problems.append(f"{key} sets a parameter of action {match.group(1)!r}, which `actions` does not list")
    return problems


def test_rest_payloads_use_rest_names_and_list_their_actions(rendered: Rendered) -> None:
    problems: list[str] = []
    for file, payload in rendered.json_under("splunk/rest/"):
        problems.extend(f"{file.path}: {p}" for p in rest_problems(payload["params"]))
    assert not problems, report(problems)


def test_rest_payloads_say_what_the_conf_says(rendered: Rendered) -> None:
    """Each REST payload is its stanza under REST names: an independent check that the .conf parses back."""
    stanzas = rendered.savedsearches()
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
        enabled = [m.group(1) for k, v in settings.items() if (m := ACTION_KEY.match(k)) and m.group(2) is None]
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
    assert not problems, f"override {{{settings}}} was accepted and rendered: " + report(problems)


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
