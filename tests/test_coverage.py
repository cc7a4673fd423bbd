"""extalerts coverage: Option A or B per rule, and whether the logs each rule reads are shipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from extalerts.cli import cli
from extalerts.coverage import OptionA, Verdict, coverage, option_a
from extalerts.observability_alerts import AlertVerdict, Assessment
from extalerts.spec import load_spec
from tests.conftest import MONITORS


def test_every_bundled_rule_has_an_option_and_a_carrier() -> None:
    rows = coverage(load_spec([MONITORS]))
    assert len(rows) == 13
    by_id = {row.rule.id: row for row in rows}
    assert by_id["logs-stopped"].verdict.option_a is OptionA.PARTLY
    assert by_id["logs-stopped"].verdict.alert_type == "failing_logpush_job_disabled_alert"
    assert by_id["worker-exception"].verdict.option_a is OptionA.YES
    assert by_id["worker-exception"].verdict.alert_type is None
    assert by_id["http-5xx-rate"].verdict.option_a is OptionA.NO
    assert "no Cloudflare notification reads Workers logs" in by_id["http-5xx-rate"].verdict.reason
    for row in rows:
        assert row.shipping == {"datadog": "job workers-to-datadog", "splunk": "job workers-to-splunk"}


def test_missing_fields_and_missing_jobs_are_shown(tmp_path: Path) -> None:
    spec_dir = tmp_path / "monitors"
    shutil.copytree(MONITORS, spec_dir)
    text = (spec_dir / "logpush.yaml").read_text()
    head, _ = text.split("    workers-to-splunk:")
    (spec_dir / "logpush.yaml").write_text(
        head.replace(
            "      max_upload_interval: 30s\n", "      fields: [EventTimestampMs, ScriptName, Outcome, Event]\n", 1
        )
    )
    result = CliRunner().invoke(cli, ["validate", str(spec_dir)])
    assert result.exit_code == 1
    assert "reads Logs, which no Logpush job ships to datadog" in result.stderr
    (spec_dir / "logpush.yaml").write_text(head)
    result = CliRunner().invoke(cli, ["coverage", str(spec_dir), "-o", "json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["rule"]: row for row in json.loads(result.stdout)}
    assert rows["worker-exception"]["logs"] == {"datadog": "job workers-to-datadog", "splunk": "no managed job"}
    assert rows["request-spike"]["option_a"] == "no"


def test_coverage_table() -> None:
    result = CliRunner().invoke(cli, ["coverage", str(MONITORS)])
    assert result.exit_code == 0
    assert "logs-stopped           partly (failing_logpush_job_disabled_alert)" in result.stdout
    assert "option A for request-spike: traffic_anomalies_alert is per zone" in result.stdout
    assert "worker-exception       yes (2 observability alerts)" in result.stdout
    assert "http-5xx-rate          no  " in result.stdout


def _verdicts(spec_dir: Path) -> dict[str, Verdict]:
    spec = load_spec([spec_dir])
    return {rule.id: option_a(rule, spec.catalog) for rule in spec.rules}


def _assessment(verdict: Verdict) -> Assessment:
    assert verdict.observability is not None
    return verdict.observability


def test_each_signal_kind_gets_its_cited_option_a_verdict() -> None:
    verdicts = _verdicts(MONITORS)
    # A ratio needs two counts divided; conditions are only combined with AND/OR.
    for rule_id in ("http-5xx-rate", "http-4xx-rate"):
        assert verdicts[rule_id].option_a is OptionA.NO
        assert "not divided (cloudflare-docs workers/observability/alerts.mdx" in verdicts[rule_id].reason
    assert "Include data from the last" in verdicts["request-spike"].reason
    for rule_id in ("http-5xx-rate", "request-spike", "logs-stopped"):
        # No alert, yet the fields read are named with their Workers Logs keys.
        refused = _assessment(verdicts[rule_id])
        assert (refused.verdict, refused.alerts, refused.lost) == (AlertVerdict.NO, (), ())
        assert refused.fields
        assert refused.reason
        assert refused.reason in verdicts[rule_id].reason
    # A silent script has no events to group or count; the Logpush notice keeps its partly verdict.
    stopped = verdicts["logs-stopped"]
    assert stopped.option_a is OptionA.PARTLY
    assert "Group By has no group for it to fire on" in stopped.reason
    assert _assessment(stopped).alerts == ()


def test_worker_exception_is_two_count_alerts_on_documented_keys() -> None:
    assessment = _assessment(_verdicts(MONITORS)["worker-exception"])
    assert assessment.verdict is AlertVerdict.YES
    assert assessment.lost == ()
    first, second = assessment.alerts
    assert [(f.key, f.operator, f.value) for f in first.filters] == [
        ("$workers.outcome", "Regex", "^(exception|exceededCpu|exceededMemory)$")
    ]
    assert [(f.key, f.operator, f.value) for f in second.filters] == [
        ("$workers.event.response.status", "Greater or equals", "500")
    ]
    for alert in (first, second):
        assert (alert.condition.function, alert.condition.operator, alert.condition.threshold) == ("Count", ">", 0)
        assert alert.group_by == ("$workers.scriptName",)
        assert (alert.timings.lookback_minutes, alert.timings.check_every_minutes) == (1, 1)
        assert [(c.type, c.value) for c in alert.channels] == [
            ("PagerDuty", "conversation-api-oncall"),
            ("Webhooks", "extalerts-platform-slack"),
        ]
    for key in ("Outcome", "Event.Response.Status", "ScriptName"):
        assert assessment.fields[key].documented
        assert "cloudflare-docs workers/observability/" in assessment.fields[key].source


def test_invalid_url_flood_reads_the_message_of_the_log_line() -> None:
    assessment = _assessment(_verdicts(MONITORS)["invalid-url-flood"])
    assert assessment.verdict is AlertVerdict.YES
    critical, warning = assessment.alerts
    assert [(f.key, f.operator, f.value) for f in critical.filters] == [
        ("$metadata.message", "Includes", "ERROR_CODE_INVALID_URL")
    ]
    assert (critical.level, critical.condition.threshold) == ("critical", 100)
    assert (warning.name, warning.level, warning.condition.threshold) == ("invalid-url-flood-warning", "warning", 50)
    assert any("each console.log line is one" in note for note in assessment.confirm)


def test_an_or_is_split_only_where_the_counts_add_up(tmp_path: Path) -> None:
    spec_dir = tmp_path / "monitors"
    shutil.copytree(MONITORS, spec_dir)
    path = spec_dir / "worker-errors.yaml"
    path.write_text(
        path.read_text().replace(
            "    thresholds: {critical: 0}\n    notify: [oncall-page",
            "    thresholds: {critical: 3}\n    notify: [oncall-page",
            1,
        )
    )
    verdict = _verdicts(spec_dir)["worker-exception"]
    assert verdict.option_a is OptionA.NO
    assert "Adding multiple filters combines them with an AND operator" in verdict.reason


def test_fields_workers_logs_does_not_carry_are_named(tmp_path: Path) -> None:
    spec_dir = tmp_path / "monitors"
    shutil.copytree(MONITORS, spec_dir)
    path = spec_dir / "worker-errors.yaml"
    path.write_text(
        path.read_text().replace(
            "'Logs.Message contains \"ERROR_CODE_INVALID_URL\"'", "'Exceptions.Name == \"TypeError\"'"
        )
    )
    verdict = _verdicts(spec_dir)["invalid-url-flood"]
    assert verdict.option_a is OptionA.NO
    assert "Workers Logs does not carry Exceptions.Name" in verdict.reason


def test_structured_line_keys_keep_their_own_log(tmp_path: Path) -> None:
    """An invocation field beside structured-line keys is dropped, and said to be."""
    assessment = _assessment(_verdicts(MONITORS)["do-operation-errors"])
    assert assessment.verdict is AlertVerdict.PARTLY
    (alert, _warning) = assessment.alerts
    assert [(f.key, f.operator, f.value) for f in alert.filters] == [
        ("event", "Equals", "do_op"),
        ("op", "Regex", "^(store|retrieve|delete|clear)$"),
        ("ok", "Equals", "false"),
    ]
    assert alert.group_by == ("op",)
    assert any(item.startswith("the clauses on Entrypoint") for item in assessment.lost)


def test_head_sampling_scales_count_thresholds_or_says_it_cannot(tmp_path: Path) -> None:
    spec_dir = tmp_path / "monitors"
    shutil.copytree(MONITORS, spec_dir)
    path = spec_dir / "workers.yaml"
    path.write_text(
        path.read_text().replace("  workers:\n", "  workers:\n    cloudflare: {head_sampling_rate: 0.1}\n", 1)
    )
    verdicts = _verdicts(spec_dir)
    flood = _assessment(verdicts["invalid-url-flood"])
    assert [(a.condition.threshold, a.condition.scaled_from) for a in flood.alerts] == [
        (10, "100 x head_sampling_rate 0.1"),
        (5, "50 x head_sampling_rate 0.1"),
    ]
    exception = verdicts["worker-exception"]
    assert exception.option_a is OptionA.PARTLY
    assert "Count > 0 under head sampling at 0.1" in exception.reason
    # An average of the logged requests needs no scaling.
    cpu = _assessment(verdicts["worker-cpu-time"])
    assert cpu.alerts[0].condition.threshold == 40
    assert cpu.alerts[0].condition.scaled_from is None
    result = CliRunner().invoke(cli, ["coverage", str(spec_dir), "-o", "json"])
    rows = {row["rule"]: row for row in json.loads(result.stdout)}
    assert rows["invalid-url-flood"]["workers_observability"]["head_sampling_rate"] == 0.1


def test_coverage_json_keeps_its_keys_and_adds_the_observability_alerts() -> None:
    result = CliRunner().invoke(cli, ["coverage", str(MONITORS), "-o", "json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["rule"]: row for row in json.loads(result.stdout)}
    assert list(rows["worker-exception"])[:6] == [
        "rule",
        "option_a",
        "cloudflare_alert_type",
        "why",
        "carried_by",
        "logs",
    ]
    observability = rows["worker-exception"]["workers_observability"]
    assert observability["alerts"] == ["worker-exception-1", "worker-exception-2"]
    assert observability["workers_logs_keys"]["Outcome"]["key"] == "$workers.outcome"
