"""Render checks: what each provider check catches, the query grammar, .conf reading, packaging."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from extalerts.errors import RenderError
from extalerts.render import render
from extalerts.render.conf import ConfSyntaxError, parse_conf
from extalerts.render.datadog import check_logs_metric, check_monitor
from extalerts.render.datadog_query import QueryError, check_formula, check_search, parse_monitor_query
from extalerts.render.splunk import SplunkRenderer, check_savedsearches, check_spl
from extalerts.render.splunk_keys import key_problem, rest_payload
from extalerts.render.templates import Templates, conf_value
from extalerts.spec import load_spec
from tests.conftest import MONITORS, REPO


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {f.path: f.content for f in render(load_spec([MONITORS]), ["datadog", "splunk"])}


def monitor(rendered: dict[str, str], rule_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(rendered[f"datadog/monitors/{rule_id}.json"])
    return document


# --------------------------------------------------------------------------------------------- datadog


def test_every_rule_renders_a_monitor_with_ownership_tags(rendered: dict[str, str]) -> None:
    spec = load_spec([MONITORS])
    for rule in spec.rules:
        doc = monitor(rendered, rule.id)
        assert "managed-by:extalerts" in doc["tags"]
        assert f"extalerts-rule:{rule.id}" in doc["tags"]
        assert doc["options"]["evaluation_delay"] == rule.evaluation_delay
        assert doc["priority"] == rule.rule.severity.datadog_priority


def test_query_threshold_equals_critical(rendered: dict[str, str]) -> None:
    for path, content in rendered.items():
        if path.startswith("datadog/monitors/"):
            doc = json.loads(content)
            parsed = parse_monitor_query(doc["query"], doc["type"])
            assert parsed.threshold == doc["options"]["thresholds"]["critical"], path


def test_ratio_uses_formula_with_cutoff(rendered: dict[str, str]) -> None:
    doc = monitor(rendered, "http-5xx-rate")
    assert doc["query"] == 'formula("matching / cutoff_min(total, 50) * 100").last("5m") > 5'
    names = [v["name"] for v in doc["options"]["variables"]]
    assert names == ["matching", "total"]
    assert "@Event.Response.Status:>=500" in doc["options"]["variables"][0]["search"]["query"]
    assert doc["options"]["notify_by"] == ["@ScriptName"]


def test_percentile_uses_formula_and_avg_uses_rollup(rendered: dict[str, str]) -> None:
    p99 = monitor(rendered, "do-latency-p99")
    assert p99["query"].startswith('formula("signal")')
    assert p99["options"]["variables"][0]["compute"] == {"aggregation": "pc99", "metric": "@extalerts.duration_ms"}
    avg = monitor(rendered, "worker-cpu-time")
    assert '.rollup("avg", "@CPUTimeMs")' in avg["query"]


def test_change_rule_renders_metric_and_metric_monitor(rendered: dict[str, str]) -> None:
    doc = monitor(rendered, "request-spike")
    assert doc["type"] == "query alert"
    assert doc["query"] == "pct_change(sum(last_5m),last_1h):sum:extalerts.request_spike.events{*}.as_count() > 200"
    metric = json.loads(rendered["datadog/logs-metrics/extalerts.request_spike.events.json"])
    assert metric["data"]["attributes"]["compute"] == {"aggregation_type": "count"}
    assert "@EventType:fetch" in metric["data"]["attributes"]["filter"]["query"]


def test_absence_notifies_on_no_data(rendered: dict[str, str]) -> None:
    doc = monitor(rendered, "logs-stopped")
    assert doc["query"].endswith('.by("@ScriptName").last("10m") < 1')
    assert doc["options"]["on_missing_data"] == "show_and_notify_no_data"
    assert "notify_no_data" not in doc["options"]  # conflicts with on_missing_data
    assert "{{#is_no_data}}@pagerduty-conversation-api-oncall" in doc["message"]


def test_message_routes_each_level_to_its_targets(rendered: dict[str, str]) -> None:
    message = monitor(rendered, "http-4xx-rate")["message"]
    assert "{{#is_alert}}@slack-acme-platform-alerts @platform-team@example.com{{/is_alert}}" in message
    assert "{{#is_warning}}@slack-acme-platform-alerts @platform-team@example.com{{/is_warning}}" in message
    # the email target asked for alert and warning only
    assert "{{#is_recovery}}@slack-acme-platform-alerts{{/is_recovery}}" in message


def _valid_monitor() -> dict[str, Any]:
    return {
        "name": "x",
        "type": "log alert",
        "query": 'logs("source:cloudflare").index("*").rollup("count").last("5m") > 5',
        "message": "m",
        "tags": ["managed-by:extalerts", "extalerts-rule:x"],
        "options": {"thresholds": {"critical": 5}},
    }


def test_pipeline_remaps_the_date_and_reads_the_structured_line_as_the_engine_does(rendered: dict[str, str]) -> None:
    from extalerts.emulators.datadog.facets import FacetRegistry
    from extalerts.emulators.datadog.logs import StoredLog
    from extalerts.emulators.datadog.pipelines import compile_pipeline
    from extalerts.filter.python import structured_line
    from tests.test_engine import STRUCTURED_LINE_SHAPES

    pipeline = json.loads(rendered["datadog/pipelines/extalerts-structured-logs.json"])
    assert [p["type"] for p in pipeline["processors"]] == [
        "date-remapper",
        "array-processor",
        "string-builder-processor",
        "grok-parser",
    ]
    # Run as the Datadog emulator runs it, each processor as its doc page describes it.
    compiled = compile_pipeline(pipeline, FacetRegistry())
    assert compiled.unsupported == []
    shipped = {"source": "cloudflare", "service": "workers-trace-events"}
    for logs in STRUCTURED_LINE_SHAPES:
        event = {"EventTimestampMs": 1_767_225_600_123, "Logs": logs}
        processed = StoredLog(1, 0, 0, json.loads(json.dumps(event)), [], shipped)
        compiled.run(processed)
        assert processed.timestamp_ms == event["EventTimestampMs"]
        assert processed.attributes.get("extalerts") == structured_line(event), logs


def test_facets_list_every_range_aggregation_and_group_by(rendered: dict[str, str]) -> None:
    facets = {f["path"]: f for f in json.loads(rendered["datadog/facets.json"])["facets"]}
    assert facets["@Event.Response.Status"] == {
        "path": "@Event.Response.Status",
        "type": "integer",
        "measure": False,
        "rules": ["http-4xx-rate", "http-5xx-rate", "worker-exception"],
        "why": "range search",
    }
    assert facets["@extalerts.duration_ms"]["measure"] is True  # pc99
    assert facets["@extalerts.duration_ms"]["type"] == "double"
    assert facets["@CPUTimeMs"]["measure"] is True  # avg rollup
    assert facets["@extalerts.attempts"]["why"] == "range search"  # op_attempts >= 3
    assert facets["@extalerts.op"]["why"] == "group by"
    # Term matches and distinct counts need no facet.
    assert "@Outcome" not in facets
    assert "@extalerts.conversation_id" not in facets
    assert list(facets) == sorted(facets)


def test_grouped_monitors_evaluate_new_groups_at_once_and_no_log_monitor_asks_for_samples(
    rendered: dict[str, str],
) -> None:
    spec = load_spec([MONITORS])
    for rule in spec.rules:
        options = monitor(rendered, rule.id)["options"]
        if rule.rule.group_by:
            assert options["new_group_delay"] == 0, rule.id
        else:
            assert "new_group_delay" not in options, rule.id
        if monitor(rendered, rule.id)["type"] == "log alert":
            assert options["enable_logs_sample"] is False, rule.id


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["options"].update(notify_nodata=True), "options.notify_nodata: unknown field for MonitorOptions"),
        (lambda d: d["options"]["thresholds"].update(critcal=1), "unknown field for MonitorThresholds"),
        (lambda d: d.update(id=12), "`id` is read-only"),
        (lambda d: d.update(overall_state="OK"), "`overall_state` is read-only"),
        (lambda d: d["options"]["thresholds"].update(critical=6), "differs from options.thresholds.critical"),
        (lambda d: d["options"].update(on_missing_data="sometimes"), "is not a value OnMissingDataOption allows"),
        (lambda d: d.update(priority="P1"), "Invalid type for variable 'priority'"),
        (lambda d: d.update(query=d["query"].replace('"', "'")), "invalid operator specified"),
        (lambda d: d.update(tags=["team:x"]), "managed-by:extalerts"),
        (lambda d: d["options"].update(notify_by=["@ScriptName"]), "notify_by names groups the query does not have"),
        (
            lambda d: d["options"].update(
                variables=[{"data_source": "logs", "name": "a", "compute": {"aggregation": "pc99", "bogus": 1}}]
            ),
            "options.variables[0].compute.bogus: unknown field",
        ),
    ],
)
def test_check_monitor_catches(mutate: Any, problem: str) -> None:
    document = _valid_monitor()
    check_monitor(copy.deepcopy(document), "ok.json")
    mutate(document)
    with pytest.raises(RenderError) as caught:
        check_monitor(document, "bad.json")
    assert problem in str(caught.value)


def test_check_logs_metric_catches_unknown_field() -> None:
    good = {"data": {"id": "m", "type": "logs_metrics", "attributes": {"compute": {"aggregation_type": "count"}}}}
    check_logs_metric(copy.deepcopy(good), "m.json")
    good["data"]["attributes"]["compute"]["aggregation"] = "count"  # type: ignore[index]
    with pytest.raises(RenderError):
        check_logs_metric(good, "m.json")


@pytest.mark.parametrize(
    "query",
    [
        'logs("a:b").index("*").rollup("count").by("@x,@y").last("5m") > 2',
        'logs("@Logs.Message:*x\\\\ y*").index("main").rollup("cardinality", "@id").last("2h") >= 1.5',
        'logs("*").index("*").rollup("avg", "@WallTimeMs").last("2880m") < 100',
    ],
)
def test_log_queries_that_parse(query: str) -> None:
    parse_monitor_query(query, "log alert")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("logs('a').index('*').rollup('count').last('5m') > 1", "invalid operator specified"),
        ('logs("a").index("*").rollup("pc99", "@x").last("5m") > 1', "unsupported rollup"),
        ('logs("a").index("*").rollup("count").last("2881m") > 1', "out of range"),
        ('logs("a").index("*").rollup("avg").last("5m") > 1', "needs a measure"),
        ('logs("(a").index("*").rollup("count").last("5m") > 1', "missing `)`"),
        ('logs("a:").index("*").rollup("count").last("5m") > 1', "needs a value"),
        ('logs("a AND").index("*").rollup("count").last("5m") > 1', "ends where a term is expected"),
        ('formula("a / ").last("5m") > 1', "ends with an operator"),
        ('formula("foo(a)").last("5m") > 1', "unknown function"),
    ],
)
def test_log_queries_that_fail(query: str, error: str) -> None:
    with pytest.raises(QueryError, match=re.escape(error)):
        parse_monitor_query(query, "log alert")


def test_change_query_grammar() -> None:
    parsed = parse_monitor_query(
        "pct_change(sum(last_5m),last_1h):sum:a.b{*} by {script}.as_count() > 50", "query alert"
    )
    assert parsed.group_by == ("script",)
    with pytest.raises(QueryError, match="timeshift"):
        parse_monitor_query("pct_change(sum(last_5m),last_3h):sum:a.b{*}.as_count() > 50", "query alert")


@pytest.mark.parametrize(
    ("search", "ok"),
    [
        ('@a:"x y" AND -@b:(1 OR 2)', True),
        ("@Event.Response.Status:[500 TO 599]", True),
        ("@a:>=5 OR NOT @b:*", True),
        ("@a:[500 599]", False),
        ('@a:"unterminated', False),
        ("(@a:1", False),
        ("@a:1)", False),
        ("OR @a:1", False),
    ],
)
def test_search_checker(search: str, ok: bool) -> None:
    assert (check_search(search) == []) is ok


def test_formula_checker() -> None:
    assert check_formula("matching / cutoff_min(total, 50) * 100") == []
    assert check_formula("(a + b") != []
    assert check_formula("a b") != []


# --------------------------------------------------------------------------------------------- splunk


def test_every_alert_is_scheduled_and_lagged(rendered: dict[str, str]) -> None:
    stanzas = parse_conf(rendered["splunk/extalerts_workers/default/savedsearches.conf"])
    assert len(stanzas) >= 13
    for stanza in stanzas:
        settings = stanza.as_dict()
        assert stanza.name.startswith("extalerts - ")
        assert settings["enableSched"] == "1"
        assert settings["dispatch.latest_time"] == "-5m@m"  # the spec's 5m evaluation delay
        assert settings["alert.track"] == "1"
        assert check_spl(settings["search"]) == []
        assert re.search(r"\| where (isnotnull\(value\) AND )?value [<>]=? ", settings["search"])


def test_splunk_threshold_lives_in_the_search(rendered: dict[str, str]) -> None:
    stanzas = {s.name: s.as_dict() for s in parse_conf(rendered["splunk/extalerts_workers/default/savedsearches.conf"])}
    flood = stanzas["extalerts - invalid-url-flood"]
    assert flood["search"].endswith("| where value > 100")
    assert 'mvfind(log_message, "ERROR_CODE_INVALID_URL")' in flood["search"]
    assert stanzas["extalerts - invalid-url-flood - warning"]["search"].endswith("| where value > 50 AND value <= 100")
    assert stanzas["extalerts - invalid-url-flood - warning"]["alert.severity"] == "3"
    grouped = stanzas["extalerts - worker-exception"]
    assert grouped["alert.digest_mode"] == "0"
    assert grouped["alert.suppress.fields"] == "ScriptName"
    assert grouped["alert.suppress.period"] == "30m"  # from renotify


def test_rest_payload_uses_rest_names() -> None:
    payload = rest_payload(
        {"search": "x", "enableSched": "1", "counttype": "number of events", "action.email": "1", "action.webhook": "0"}
    )
    assert payload == {"search": "x", "is_scheduled": "1", "alert_type": "number of events", "actions": "email"}


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("alert.suppress.fields", True),
        ("action.email.to", True),
        ("action.slack.param.channel", True),
        ("action.slack.param.bogus", False),
        ("action.jira", False),
        ("auto_summarize", False),
        ("enableSchedule", False),
    ],
)
def test_key_allow_list(key: str, ok: bool) -> None:
    assert (key_problem(key) == "") is ok


def test_savedsearches_check_refuses_undocumented_keys_and_bad_spl() -> None:
    spec = load_spec([MONITORS])
    renderer = SplunkRenderer(spec, Templates())
    alerts = renderer.alerts(spec.rule("worker-exception"))
    alerts[0].settings["auto_summarize"] = "1"
    alerts[0].settings["search"] += " | where (value"
    text = Templates().render("splunk/savedsearches.conf.j2", alerts=alerts, app="x")
    with pytest.raises(RenderError) as caught:
        check_savedsearches(text, alerts, "savedsearches.conf")
    message = str(caught.value)
    assert "'auto_summarize' is not a savedsearches.conf key" in message
    assert "unclosed parenthesis" in message


def test_savedsearches_check_compares_what_reads_back() -> None:
    spec = load_spec([MONITORS])
    alerts = SplunkRenderer(spec, Templates()).alerts(spec.rule("worker-exception"))
    text = Templates().render("splunk/savedsearches.conf.j2", alerts=alerts, app="x")
    check_savedsearches(text, alerts, "ok")
    with pytest.raises(RenderError, match="does not read back as written: cron_schedule"):
        check_savedsearches(text.replace("cron_schedule = * * * * *", "cron_schedule = */2 * * * *"), alerts, "x")


def test_conf_values_round_trip() -> None:
    value = 'line one\nline "two" with a back\\slash\nline three'
    text = f"[s]\nkey = {conf_value(value)}\nflag = {conf_value(True)}\n"
    (stanza,) = parse_conf(text)
    assert stanza.as_dict() == {"key": value, "flag": "1"}


def test_conf_parser_rejects_duplicates_and_garbage() -> None:
    with pytest.raises(ConfSyntaxError, match="duplicate key"):
        parse_conf("[a]\nk = 1\nk = 2\n")
    with pytest.raises(ConfSyntaxError, match="line 2"):
        parse_conf("[a]\nnot a setting\n")


def test_spl_checker() -> None:
    assert check_spl('index=x | where a="b(" AND (c>1)') == []
    assert check_spl('index=x | where a="b') == ["unterminated string"]
    assert check_spl("index=x | | stats count") == ["empty pipeline stage"]
    assert check_spl("index=x | where (a") == ["unclosed parenthesis or bracket"]


# --------------------------------------------------------------------------------------------- packaging


def test_wheel_ships_the_templates(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("extalerts-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in REPO.joinpath("templates").rglob("*.j2"):
        assert f"extalerts/{template.relative_to(REPO).as_posix()}" in names


@pytest.mark.parametrize(
    ("window", "expected"), [("1d", '.last("24h")'), ("2d", '.last("48h")'), ("90m", '.last("90m")')]
)
def test_long_windows_render_in_hours(tmp_path: Path, window: str, expected: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "version: 1\nrules:\n  - id: daily\n    title: Daily\n    severity: low\n"
        f"    signal: {{kind: count}}\n    window: {window}\n    thresholds: {{critical: 1}}\n"
    )
    files = {f.path: f.content for f in render(load_spec([path]), ["datadog", "splunk"])}
    assert expected in json.loads(files["datadog/monitors/daily.json"])["query"]


def _everything_rendered(spec_path: str) -> dict[str, str]:
    """What each provider renders or pushes from the spec at ``spec_path``, read from the working directory."""
    from extalerts.providers.cloudflare import ALERT_FILTER, WORKERS_OBSERVABILITY_ALERT, NotificationsProvider
    from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
    from extalerts.providers.logpush import LogpushProvider

    spec = load_spec([spec_path])
    found = {f.path: f.content for f in render(spec, ["datadog", "splunk"])}
    api = CloudflareApi(CloudflareSettings("0" * 32, "unused-token"))
    # A catalogue with a per-alert filter stands for the account's, so every recipe alert's policy is rendered.
    catalogue = {WORKERS_OBSERVABILITY_ALERT: {"filter_options": [{"Key": ALERT_FILTER, "Range": "0-n"}]}}
    for provider in (NotificationsProvider(api, available_alerts=catalogue), LogpushProvider(api)):
        for resource in provider.desired(spec):
            found[f"{resource.kind}/{resource.key}"] = json.dumps(resource.body, sort_keys=True)
    return found


def test_rendered_documents_do_not_depend_on_the_working_directory_or_the_path_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(MONITORS, checkout / "monitors")
    shutil.copytree(MONITORS, tmp_path / "m2")  # the same spec under another folder name
    (checkout / "alerts").symlink_to(checkout / "monitors", target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("DD_API_KEY", "dd-key-for-the-destination")
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", "hec-token-for-the-destination")
    spellings = [
        (checkout, "monitors"),
        (checkout, "./monitors"),
        (checkout, "alerts"),
        (checkout / "monitors", "."),
        (checkout / "monitors", "../monitors/"),
        (elsewhere, str(checkout / "monitors")),
        (tmp_path, "m2"),
    ]
    outputs = {}
    for cwd, spec_path in spellings:
        monkeypatch.chdir(cwd)
        outputs[f"{cwd.name}: {spec_path}"] = _everything_rendered(spec_path)
    reference = outputs.pop("checkout: monitors")
    assert any(key.startswith("notification_policy/") for key in reference)
    assert any(key.startswith("logpush_job/") for key in reference)
    for spelling, output in outputs.items():
        assert output == reference, spelling
    message = json.loads(reference["datadog/monitors/logs-stopped.json"])["message"]
    assert "managed by extalerts from `traffic.yaml`" in message


_COMPARISON = re.compile(r"value (<=|>=|<|>) (-?[0-9.]+)")
_COMPARE = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


def _where_holds(search: str, value: float) -> bool:
    """Whether the search's last ``| where`` (comparisons of ``value`` joined by AND) keeps a row."""
    condition = search.rsplit("| where ", 1)[1].removeprefix("isnotnull(value) AND ")
    comparisons = _COMPARISON.findall(condition)
    assert " AND ".join(f"value {op} {n}" for op, n in comparisons) == condition, condition
    return all(_COMPARE[op](value, float(n)) for op, n in comparisons)


@pytest.mark.parametrize(
    ("operator", "warning", "critical"), [(">", 5, 10), (">=", 5, 10), ("<", 10, 5), ("<=", 10, 5)]
)
def test_a_group_past_critical_is_in_the_alert_search_only(
    tmp_path: Path, operator: str, warning: int, critical: int
) -> None:
    """Splunk triggers per result row (one per group): a row in both searches would notify twice."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        "version: 1\nrules:\n  - id: errors\n    title: Errors\n    severity: high\n"
        "    signal: {kind: count}\n    window: 5m\n    group_by: [ScriptName]\n"
        f"    thresholds: {{operator: '{operator}', critical: {critical}, warning: {warning},"
        f" critical_recovery: {(critical + warning) / 2}}}\n"
    )
    files = {f.path: f.content for f in render(load_spec([path]), ["splunk"])}
    stanzas = {s.name: s.as_dict() for s in parse_conf(files["splunk/extalerts_workers/default/savedsearches.conf"])}
    alert, warn = stanzas["extalerts - errors"], stanzas["extalerts - errors - warning"]
    assert (warn["alert.digest_mode"], warn["alert.suppress.fields"]) == ("0", "ScriptName")
    assert "| stats count AS value BY ScriptName\n| where " in warn["search"]
    compare = _COMPARE[operator]
    for value in [float(v) / 2 for v in range(-2, 31)]:
        expected = "alert" if compare(value, critical) else "warning" if compare(value, warning) else None
        found = [level for level, s in (("alert", alert), ("warning", warn)) if _where_holds(s["search"], value)]
        assert found == ([expected] if expected else []), (value, found)
