"""extalerts coverage: Option A or B per rule, and whether the logs each rule reads are shipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from extalerts.cli import cli
from extalerts.coverage import OptionA, coverage
from extalerts.spec import load_spec
from tests.conftest import MONITORS


def test_every_bundled_rule_has_an_option_and_a_carrier() -> None:
    rows = coverage(load_spec([MONITORS]))
    assert len(rows) == 13
    by_id = {row.rule.id: row for row in rows}
    assert by_id["logs-stopped"].verdict.option_a is OptionA.PARTLY
    assert by_id["logs-stopped"].verdict.alert_type == "failing_logpush_job_disabled_alert"
    assert by_id["worker-exception"].verdict.option_a is OptionA.NO
    assert "no Cloudflare notification reads Workers logs" in by_id["worker-exception"].verdict.reason
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
