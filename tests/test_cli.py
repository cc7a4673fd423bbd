"""The command line: exit codes, stdout and stderr kept apart, JSON output, help for every command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extalerts.cli import cli
from tests.conftest import MONITORS, REPO, cli_run, write


def test_validate_bundled_monitors() -> None:
    code, out, err = cli_run("validate", str(MONITORS))
    assert code == 0, err
    assert re.match(r"ok: \d+ rules in 5 files", out)
    assert err == ""


def test_validate_defaults_to_monitors_in_the_working_directory(tmp_path: Path) -> None:
    code, _, err = cli_run("validate")
    assert code == 1
    assert "monitors: no such file or directory" in err
    assert "run extalerts where monitors/ is" in err


def test_validate_reports_every_problem_on_stderr_without_traceback(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monitors" / "bad.yaml",
        """\
version: 1
rules:
  - id: a
    title: A
    severity: high
    filter: 'Outcom == "x"'
    signal: {kind: count}
    windw: 5m
    thresholds: {critical: 1}
  - id: b
    title: B
    severity: urgent
    signal: {kind: count}
    window: 90s
    thresholds: {critical: 1}
    notify: [nobody]
""",
    )
    code, out, err = cli_run("validate")
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    located = [line for line in lines if line.startswith("monitors/bad.yaml:")]
    assert len(located) == 5, err
    assert lines[-1] == "error: 5 problems in the spec; fix the spec and run `extalerts validate` again"
    assert path.exists()


def test_validate_json_output(tmp_path: Path) -> None:
    write(tmp_path / "monitors" / "x.yaml", "version: 1\nrulez: []\n")
    code, out, _ = cli_run("validate", "--output", "json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    (error,) = report["errors"]
    assert error["line"] == 2
    assert error["column"] == 1
    assert error["message"] == "unknown key `rulez`"
    assert "rules" in error["hint"]
    code, out, _ = cli_run("validate", str(MONITORS), "-o", "json")
    assert code == 0
    assert json.loads(out)["ok"] is True


def test_schema_is_json_schema() -> None:
    code, out, _ = cli_run("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "rules" in schema["properties"]


def test_committed_schema_is_current() -> None:
    _, out, _ = cli_run("schema")
    assert (REPO / "schema" / "spec-v1.json").read_text() == out, "run `make render` to refresh schema/"


def test_render_twice_is_byte_identical(tmp_path: Path) -> None:
    code, out, err = cli_run("render", str(MONITORS), "--out", "out")
    assert code == 0, err
    assert "worker-exception" in out  # the summary table
    first = {p: p.read_bytes() for p in sorted(Path("out").rglob("*")) if p.is_file()}
    assert any(p.parts[1] == "datadog" for p in first)
    assert any(p.parts[1] == "splunk" for p in first)
    code, out, _ = cli_run("render", str(MONITORS), "--out", "out")
    assert code == 0
    assert "(0 changed)" in out
    second = {p: p.read_bytes() for p in sorted(Path("out").rglob("*")) if p.is_file()}
    assert first == second


def test_render_check_detects_stale_and_extra_files(tmp_path: Path) -> None:
    assert cli_run("render", str(MONITORS), "--out", "out")[0] == 0
    assert cli_run("render", str(MONITORS), "--out", "out", "--check")[0] == 0
    monitor = Path("out/datadog/monitors/worker-exception.json")
    monitor.write_text(monitor.read_text().replace("> 0", "> 1"))
    write(Path("out/datadog/monitors/removed-rule.json"), "{}")
    code, _, err = cli_run("render", str(MONITORS), "--out", "out", "--check")
    assert code == 1
    assert "stale: datadog/monitors/removed-rule.json" in err
    assert "stale: datadog/monitors/worker-exception.json" in err
    assert "make render" in err
    # --check wrote nothing
    assert "> 1" in monitor.read_text()
    code, _out, _ = cli_run("render", str(MONITORS), "--out", "out")
    assert code == 0
    assert not Path("out/datadog/monitors/removed-rule.json").exists()
    assert "> 0" in monitor.read_text()


def test_render_one_provider_leaves_the_other_alone(tmp_path: Path) -> None:
    write(Path("out/splunk/keep.txt"), "mine")
    write(Path("out/README.md"), "mine too")
    code, _, _ = cli_run("render", str(MONITORS), "--out", "out", "--provider", "datadog")
    assert code == 0
    assert Path("out/splunk/keep.txt").read_text() == "mine"
    assert Path("out/README.md").read_text() == "mine too"
    assert Path("out/datadog/monitors/worker-exception.json").is_file()


def test_render_json_output(tmp_path: Path) -> None:
    code, out, _ = cli_run("render", str(MONITORS), "--out", "out", "-o", "json")
    assert code == 0
    report = json.loads(out)
    assert "datadog/monitors/worker-exception.json" in report["files"]
    assert report["changed"] == report["files"]


def test_render_with_template_override(tmp_path: Path) -> None:
    write(Path("tpl/datadog/message.md.j2"), "Custom message for {{ r.id }}\n")
    code, _, err = cli_run("render", str(MONITORS), "--out", "out", "--templates", "tpl", "-p", "datadog")
    assert code == 0, err
    monitor = json.loads(Path("out/datadog/monitors/worker-exception.json").read_text())
    assert monitor["message"] == "Custom message for worker-exception\n"


def test_broken_template_override_is_a_clear_error(tmp_path: Path) -> None:
    write(Path("tpl/datadog/message.md.j2"), "{{ r.no_such_attribute }}\n")
    code, _, err = cli_run("render", str(MONITORS), "--out", "out", "--templates", "tpl")
    assert code == 1
    assert err.startswith("error: template datadog/message.md.j2:")
    assert "no_such_attribute" in err
    assert "Traceback" not in err


def test_render_refuses_an_invalid_override(tmp_path: Path) -> None:
    spec = (MONITORS / "workers.yaml").read_text()
    write(Path("monitors/workers.yaml"), spec)
    write(
        Path("monitors/rule.yaml"),
        """\
version: 1
rules:
  - id: typo
    title: Typo in an override
    severity: low
    signal: {kind: count}
    window: 5m
    thresholds: {critical: 1}
    overrides:
      datadog: {options: {notify_nodata: true}}
""",
    )
    code, _, err = cli_run("render", "--out", "out")
    assert code == 1
    assert "monitors/rule.yaml:10:" in err
    assert "`notify_nodata` is not a monitor option Datadog accepts (did you mean `notify_no_data`?)" in err
    assert not Path("out").exists()  # nothing half-written


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_and_is_documented(command: str) -> None:
    code, out, _ = cli_run(command, "--help")
    assert code == 0
    assert "Example" in out
    assert f"extalerts {command}" in (REPO / "README.md").read_text()


def test_python_dash_m_and_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "extalerts", "--version"], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 0
    assert result.stdout.startswith("extalerts, version ")


def test_help_imports_no_sdk_or_heavy_library() -> None:
    probe = (
        "import sys, extalerts.cli;"
        "heavy = [m for m in ('datadog_api_client', 'splunklib', 'pydantic', 'jinja2', 'ruamel') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
