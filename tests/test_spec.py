"""The spec loader: strict models, every problem located, cross-file checks, resolved defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from extalerts.errors import SpecError, SpecIssue
from extalerts.spec import json_schema, load_spec
from tests.conftest import MONITORS, write

HEADER = """\
version: 1
targets:
  chat:
    slack: {workspace: acme, channel: alerts}
"""


def issues_of(*files: Path) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        load_spec(list(files))
    return list(caught.value.issues)


def rule_file(tmp_path: Path, rule: str, header: str = HEADER) -> Path:
    return write(tmp_path / "rules.yaml", header + "rules:\n" + rule)


MINIMAL_RULE = """\
  - id: errors
    title: Errors
    severity: high
    filter: 'Outcome != "ok"'
    signal: {kind: count}
    window: 5m
    thresholds: {critical: 10}
    notify: [chat]
"""


def test_bundled_monitors_load() -> None:
    spec = load_spec([MONITORS])
    assert len(spec.rules) >= 12
    kinds = {r.rule.signal.kind for r in spec.rules}
    assert kinds == {"count", "ratio", "measure", "cardinality", "change", "absence"}


def test_five_mistakes_give_five_located_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.yaml",
        """\
version: 1
targets:
  slack:
    slack: {workspace: acme, channel: "#alerts"}
rules:
  - id: worker-exception
    title: Worker exception
    severity: critical
    filter: 'Outcom != "ok" or Event.Response.Status >= 500'
    signal: {kind: count}
    windw: 1m
    thresholds: {critical: 10, warning: 20}
    notify: [slak]
  - id: latency
    title: Latency
    severity: urgent
    signal: {kind: measure, field: WallTimeMs, aggregation: p99}
    window: 5m
    thresholds: {critical: 100}
""",
    )
    issues = issues_of(path)
    located = [(i.location.line, i.location.column, i.message, i.hint) for i in issues]
    assert len(located) == 5, located
    assert located[0][:2] == (9, 14)
    assert "unknown field `Outcom`" in located[0][2]
    assert "`Outcome`" in located[0][3]
    assert located[1][:2] == (11, 5)
    assert "unknown key `windw`" in located[1][2]
    assert "`window`" in located[1][3]
    assert located[2][:2] == (12, 5)
    assert "warning (20) must be below critical (10)" in located[2][2]
    assert located[3][:2] == (13, 14)
    assert "unknown target `slak`" in located[3][2]
    assert "`slack`" in located[3][3]
    assert located[4][:2] == (16, 15)
    assert "severity" in located[4][2]
    assert all(i.location.path == path for i in issues)


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.yaml", "version: 1\nrules:\n  - id: x\n    title: [unclosed\n")
    (issue,) = issues_of(path)
    assert issue.message.startswith("YAML syntax error")
    assert issue.location.line >= 4


def test_duplicate_key_in_yaml_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.yaml", "version: 1\nversion: 1\n")
    (issue,) = issues_of(path)
    assert "duplicate" in issue.message
    assert issue.location.line == 2


def test_problems_of_all_files_are_reported_together(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "version: 1\nbogus: 1\n")
    b = write(tmp_path / "b.yaml", "version: 2\n")
    issues = issues_of(tmp_path)
    assert {i.location.path for i in issues} == {a, b}
    assert any("unsupported spec version 2" in i.message for i in issues)


def test_unknown_top_level_key_lists_allowed_keys(tmp_path: Path) -> None:
    (issue,) = issues_of(write(tmp_path / "x.yaml", "version: 1\nrulez: []\n"))
    assert issue.message == "unknown key `rulez`"
    assert "`rules`" in issue.hint
    assert (issue.location.line, issue.location.column) == (2, 1)


def test_misspelt_key_is_not_also_reported_missing(tmp_path: Path) -> None:
    issues = issues_of(rule_file(tmp_path, MINIMAL_RULE.replace("window:", "windw:")))
    assert [i.message for i in issues] == ["rule `errors`: unknown key `windw`"]


def test_duplicate_rule_id_across_files_names_both(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", HEADER + "rules:\n" + MINIMAL_RULE)
    write(tmp_path / "b.yaml", "version: 1\nrules:\n" + MINIMAL_RULE)
    (issue,) = issues_of(tmp_path)
    assert issue.message == "rule id `errors` is used twice"
    assert issue.location.path.name == "b.yaml"
    assert "a.yaml:6:9" in issue.hint


@pytest.mark.parametrize("broken", [0, 1])
def test_a_duplicate_rule_id_is_reported_with_the_structural_mistakes(tmp_path: Path, broken: int) -> None:
    """One pass: a rule that fails its own checks still counts for duplicate ids, first or second."""
    rules = [MINIMAL_RULE, MINIMAL_RULE]
    rules[broken] = rules[broken].replace("window:", "windw:")
    other = MINIMAL_RULE.replace("id: errors", "id: other").replace("severity: high", "severity: hihg")
    issues = issues_of(rule_file(tmp_path, "".join([*rules, other])))
    found = [(i.location.line, i.message) for i in issues]
    windw_line = 11 if broken == 0 else 19
    assert found == sorted(
        [
            (windw_line, "rule `errors`: unknown key `windw`"),
            (14, "rule id `errors` is used twice"),
            (24, "rule `other`: severity: Input should be 'critical', 'high', 'medium', 'low' or 'info'"),
        ]
    )
    duplicate = next(i for i in issues if "used twice" in i.message)
    assert duplicate.hint.startswith("first at ")
    assert duplicate.hint.endswith("rules.yaml:6:9")


def test_a_section_mistake_hides_neither_the_rest_of_the_file_nor_duplicates(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.yaml",
        HEADER + "  pager:\n    slak: {workspace: acme, channel: pages}\nfields:\n  user: {key: user, type: strng}\n"
        "rules:\n" + MINIMAL_RULE,
    )
    # The well-formed `chat` target of a.yaml still counts: the rule notifying it is fine.
    assert [i.message for i in issues_of(a)] == [
        "unknown key `slak`",
        "type: Input should be 'string', 'number' or 'boolean'",
    ]
    # And a duplicate of it in another file is reported now, not once a.yaml is fixed.
    write(tmp_path / "b.yaml", HEADER)
    found = [(i.location.path.name, i.location.line, i.message) for i in issues_of(tmp_path)]
    assert [f[2] for f in found] == [
        "unknown key `slak`",
        "type: Input should be 'string', 'number' or 'boolean'",
        "target `chat` is defined twice",
    ], found
    assert found[0][:2] == (a.name, 6)


def test_duplicate_target_and_defaults_across_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", HEADER + "defaults: {env: prod}\n")
    write(tmp_path / "b.yaml", HEADER + "defaults: {env: dev}\n")
    messages = sorted(i.message for i in issues_of(tmp_path))
    assert messages == ["`defaults` is set in more than one file", "target `chat` is defined twice"]


def test_unknown_signal_kind(tmp_path: Path) -> None:
    (issue,) = issues_of(rule_file(tmp_path, MINIMAL_RULE.replace("kind: count", "kind: rate")))
    assert "unknown signal kind" in issue.message
    assert "'ratio'" in issue.hint


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ("filter: 'Outcome != \"ok\"'", None),
        ("filter: 'Outcome = \"ok\"'", "use `==` to compare"),
        ("filter: 'Outcome == ok'", 'string values need quotes: "ok"'),
        ("filter: 'ScriptName > 5'", "compare text with == != in or contains"),
        ("filter: 'Event.Response.Status == \"500\"'", "compare it with a number"),
        ("filter: 'Outcome == \"ok\" and'", None),
    ],
)
def test_filter_errors_point_into_the_filter(tmp_path: Path, replace: str, expected: str | None) -> None:
    text = MINIMAL_RULE.replace("filter: 'Outcome != \"ok\"'", replace)
    if replace == "filter: 'Outcome != \"ok\"'":
        load_spec([rule_file(tmp_path, text)])
        return
    (issue,) = issues_of(rule_file(tmp_path, text))
    assert issue.message.startswith("rule `errors`: filter: ")
    assert issue.location.line == 9
    assert issue.location.column > 13
    if expected:
        assert expected in issue.hint + issue.message


def test_filter_column_is_exact(tmp_path: Path) -> None:
    text = MINIMAL_RULE.replace("filter: 'Outcome != \"ok\"'", 'filter: \'Outcome != "ok" and Scriptname == "x"\'')
    (issue,) = issues_of(rule_file(tmp_path, text))
    line = (tmp_path / "rules.yaml").read_text().splitlines()[issue.location.line - 1]
    assert line[issue.location.column - 1 :].startswith("Scriptname")
    assert "`ScriptName`" in issue.hint


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("window: 5m", "window: 90s", "window: must be whole minutes"),
        ("window: 5m", "window: 3d", "window: must be whole minutes"),
        ("thresholds: {critical: 10}", "thresholds: {operator: '<', critical: 10, warning: 5}", "must be above"),
        ("thresholds: {critical: 10}", "thresholds: {critical: 10, critical_recovery: 12}", "critical_recovery"),
        ("thresholds: {critical: 10}", "thresholds: {critical: 10, warning_recovery: 1}", "needs a warning"),
        ("    thresholds: {critical: 10}\n", "", "missing `thresholds`"),
        ("signal: {kind: count}", "signal: {kind: absence}", "absence rule takes no thresholds"),
        ("signal: {kind: count}", "signal: {kind: measure, field: ScriptName, aggregation: avg}", "numeric field"),
        ("signal: {kind: count}", "signal: {kind: measure, field: Walltime, aggregation: p99}", "unknown field"),
        ("signal: {kind: count}", "signal: {kind: change, compare_to: 3h}", "compare_to must be one of"),
        ("signal: {kind: count}", "signal: {kind: cardinality, field: Logs.Message}", "list field"),
        ("notify: [chat]", "notify: [chat]\n    group_by: [Logs.Message]", "cannot group by the list field"),
        ("notify: [chat]", "notify: [chat]\n    group_by: [Scriptname]", "unknown group_by field"),
        ("notify: [chat]", "notify: [chat]\n    source: other", "unknown source `other`"),
        ("severity: high", "severity: urgent", "severity"),
        ("id: errors", "id: Errors_1", "id"),
    ],
)
def test_rule_problems(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in MINIMAL_RULE
    issues = issues_of(rule_file(tmp_path, MINIMAL_RULE.replace(old, new)))
    assert any(message in i.message for i in issues), [str(i) for i in issues]
    assert all(i.location.line > 0 for i in issues)


def test_target_sets_exactly_one_kind(tmp_path: Path) -> None:
    header = "version: 1\ntargets:\n  both:\n    slack: {workspace: a, channel: b}\n    email: {to: [a@b.io]}\n"
    (issue,) = issues_of(write(tmp_path / "t.yaml", header))
    assert "exactly one of slack, pagerduty, email, webhook" in issue.message
    assert issue.location.line == 3


def test_absence_expected_needs_one_group(tmp_path: Path) -> None:
    rule = MINIMAL_RULE.replace("signal: {kind: count}", "signal: {kind: absence, expected: [a]}").replace(
        "    thresholds: {critical: 10}\n", ""
    )
    (issue,) = issues_of(rule_file(tmp_path, rule))
    assert "`expected` needs exactly one group_by field" in issue.message


def test_defaults_are_applied(tmp_path: Path) -> None:
    header = HEADER + "defaults: {service: api, env: prod, tags: ['team:x'], renotify: 20m}\n"
    spec = load_spec([rule_file(tmp_path, MINIMAL_RULE, header)])
    (rule,) = spec.rules
    assert rule.evaluation_delay == 300  # Logpush batches: the built-in default
    assert rule.tags == ("env:prod", "service:api", "team:x")
    assert rule.renotify == 1200
    assert rule.throttle == 1200
    assert rule.source_name == "workers"
    assert [name for name, _ in rule.targets] == ["chat"]


def test_zero_evaluation_delay_is_allowed_but_zero_window_is_not(tmp_path: Path) -> None:
    spec = load_spec([rule_file(tmp_path, MINIMAL_RULE + "    evaluation_delay: 0s\n")])
    assert spec.rules[0].evaluation_delay == 0
    issues = issues_of(rule_file(tmp_path, MINIMAL_RULE.replace("window: 5m", "window: 0m")))
    assert any("window" in i.message for i in issues)


def test_derived_fields_are_usable_in_filters(tmp_path: Path) -> None:
    header = HEADER + "fields:\n  op_ok: {key: ok, type: boolean}\n"
    spec = load_spec([rule_file(tmp_path, MINIMAL_RULE.replace('Outcome != \\"ok\\"', "op_ok == false"), header)])
    assert spec.catalog["op_ok"].derived_key == "ok"


def test_no_spec_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (issue,) = issues_of(tmp_path / "empty")
    assert "no spec files found" in issue.message


def test_missing_file(tmp_path: Path) -> None:
    (issue,) = issues_of(tmp_path / "nope.yaml")
    assert issue.message == "no such file or directory"


def test_json_schema_accepts_the_bundled_monitors_and_rejects_unknown_keys() -> None:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    yaml = YAML(typ="safe")
    for path in sorted(MONITORS.glob("*.yaml")):
        data = json.loads(json.dumps(yaml.load(path.read_text())))
        assert not list(validator.iter_errors(data)), path
    assert list(validator.iter_errors({"version": 1, "rulez": []}))
    bad_rule = {"version": 1, "rules": [{"id": "x", "title": "x", "severity": "high", "signal": {"kind": "count"}}]}
    assert list(validator.iter_errors(bad_rule))  # window is required


def test_override_keys_are_checked_at_validate_time(tmp_path: Path) -> None:
    rule = MINIMAL_RULE + (
        "    overrides:\n"
        "      datadog: {options: {notify_nodata: true, new_group_delay: 60}}\n"
        "      splunk: {settings: {auto_summarize: true, schedule_window: auto}}\n"
    )
    issues = issues_of(rule_file(tmp_path, rule))
    assert [i.message for i in issues] == [
        "rule `errors`: overrides.datadog: `notify_nodata` is not a monitor option Datadog accepts",
        "rule `errors`: overrides.splunk: 'auto_summarize' is not a savedsearches.conf key extalerts writes",
    ]
    assert issues[0].hint == "did you mean `notify_no_data`?"
    assert issues[0].location.line == 15


LOGPUSH = """\
logpush:
  scripts: [api]
  jobs:
    to-datadog:
      datadog: {service: api}
      fields: [EventTimestampMs, Outcome, ScriptName]
      filter: 'Outcome != "ok"'
"""


def test_logpush_jobs_compile_their_filters(tmp_path: Path) -> None:
    spec = load_spec([write(tmp_path / "x.yaml", "version: 1\n" + LOGPUSH)])
    assert spec.logpush.scripts == ["api"]
    assert spec.logpush_filters == {"to-datadog": '{"where":{"key":"Outcome","operator":"!eq","value":"ok"}}'}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "      filter: 'Outcome != \"ok\"'",
            "      filter: 'Event.Response.Status >= 500'",
            "Logpush cannot apply this filter",
        ),
        ("[EventTimestampMs, Outcome, ScriptName]", "[Outcome, ScriptName]", "EventTimestampMs must be shipped"),
        ("[EventTimestampMs, Outcome, ScriptName]", "[EventTimestampMs, Outcom]", "unknown field `Outcom`"),
        (
            "      datadog: {service: api}",
            "      datadog: {service: api}\n"
            "      splunk: {endpoint: 'h:1', channel: 0f8b2c9e-5d6a-4c1e-9b7a-2f4e6d8c1a3b}",
            "exactly one",
        ),
    ],
)
def test_logpush_job_problems(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in LOGPUSH
    issues = issues_of(write(tmp_path / "x.yaml", "version: 1\n" + LOGPUSH.replace(old, new)))
    assert any(message in i.message for i in issues), [str(i) for i in issues]


def test_a_rule_must_read_only_fields_its_provider_receives(tmp_path: Path) -> None:
    spec_text = (
        HEADER
        + LOGPUSH
        + "rules:\n"
        + MINIMAL_RULE.replace("filter: 'Outcome != \"ok\"'", "filter: 'Event.Response.Status >= 500'")
    )
    (issue,) = issues_of(write(tmp_path / "x.yaml", spec_text))
    assert issue.message == "rule `errors`: reads Event, which no Logpush job ships to datadog"
    assert issue.hint == "add Event to the fields of a datadog job"
    assert issue.location.line > 0


def test_an_unshipped_field_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    reads_event = MINIMAL_RULE.replace("filter: 'Outcome != \"ok\"'", "filter: 'Event.Response.Status >= 500'")
    broken = MINIMAL_RULE.replace("id: errors", "id: other").replace("severity: high", "severity: hihg")
    issues = issues_of(write(tmp_path / "x.yaml", HEADER + LOGPUSH + "rules:\n" + reads_event + broken))
    assert [i.message for i in issues] == [
        "rule `errors`: reads Event, which no Logpush job ships to datadog",
        "rule `other`: severity: Input should be 'critical', 'high', 'medium', 'low' or 'info'",
    ]


def _readme_defaults() -> dict[str, str]:
    """The README's table of what a spec gets without `defaults` or `sources`: key → its default."""
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("Without `defaults` or `sources`", 1)[1].split("\n\n", 2)[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {key: default for key, default, _ in rows}


def test_the_readme_documents_the_defaults_a_bare_spec_gets(tmp_path: Path) -> None:
    from extalerts.render import render

    documented = _readme_defaults()
    spec = load_spec([rule_file(tmp_path, MINIMAL_RULE)])
    (rule,) = spec.rules
    assert documented["`sources`"].startswith(f"one source, `{rule.source_name}`")
    assert documented["`sources.<name>.datadog.query`"] == f"`{rule.source.datadog.query}`"
    assert documented["`sources.<name>.datadog.index`"].startswith(f"`{rule.source.datadog.index}`")
    assert documented["`sources.<name>.splunk.index`"] == f"`{rule.source.splunk.index}`"
    assert documented["`sources.<name>.splunk.sourcetype`"] == f"`{rule.source.splunk.sourcetype}`"
    assert documented["`defaults.evaluation_delay`"] == f"`{rule.evaluation_delay // 60}m`"
    assert documented["`defaults.splunk_app`"] == f"`{spec.splunk_app}`"
    assert rule.rule.renotify is None
    assert rule.throttle == 3600
    # And the rendered documents use them where the table says.
    files = {f.path: f.content for f in render(spec, ["datadog", "splunk"])}
    monitor = json.loads(files["datadog/monitors/errors.json"])
    assert monitor["query"].startswith('logs("source:cloudflare ')
    assert '.index("*")' in monitor["query"]
    assert "renotify_interval" not in monitor["options"]
    alert = json.loads(files["splunk/rest/errors.json"])
    assert alert["params"]["search"].startswith('index=cloudflare sourcetype="cloudflare:workers"\n')
    assert alert["params"]["alert.suppress.period"] == "1h"
    assert "splunk/extalerts_workers/default/savedsearches.conf" in files
