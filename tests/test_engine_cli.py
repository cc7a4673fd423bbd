"""extalerts test and replay from the command line, and the HTML report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

from extalerts.engine import write_events
from tests.conftest import MONITORS, cli_run, write
from tests.test_engine import at, event


def copy_monitors(tmp_path: Path) -> Path:
    target = tmp_path / "monitors"
    shutil.copytree(MONITORS, target)
    return target


def test_bundled_rule_tests_pass_and_cover_every_rule(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    code, out, err = cli_run("test", "--require-coverage", "--junit-xml", "build/rule-tests.xml")
    assert code == 0, out + err
    assert out.rstrip().endswith(" passed, 0 failed")
    assert "coverage: every one of 13 rules fires in a test and stays quiet in another" in out
    suites = ElementTree.parse("build/rule-tests.xml").getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) >= 26
    assert not suites.findall(".//failure")


def test_a_failing_test_prints_expected_against_actual(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    write(
        Path("monitors/tests/wrong.yaml"),
        """\
version: 1
tests:
  - name: expects the page too early
    rule: worker-exception
    input:
      - burst: {at: 10m, count: 1}
        event: {ScriptName: api, Outcome: exception}
    expect:
      - fires: 12m
""",
    )
    code, out, _ = cli_run("test", "monitors/tests/wrong.yaml", "--junit-xml", "report.xml")
    assert code == 1
    assert "FAIL  worker-exception  expects the page too early" in out
    assert "expected to fire at 12m" in out
    assert "16m  ScriptName=api  ok → alert  (value 1)" in out
    assert out.rstrip().endswith("0 passed, 1 failed")
    failure = ElementTree.parse("report.xml").getroot().find(".//failure")
    assert failure is not None
    assert "expected to fire at 12m" in failure.attrib["message"]


def test_coverage_gaps_fail_with_require_coverage(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    for test_file in Path("monitors/tests").glob("traffic.yaml"):
        test_file.unlink()
    code, out, _ = cli_run("test", "--coverage")
    assert code == 0
    assert "logs-stopped: no test where it fires" in out
    code, _, _ = cli_run("test", "--require-coverage")
    assert code == 1


def test_test_file_mistakes_are_located(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    write(
        Path("monitors/tests/bad.yaml"),
        "version: 1\ntests:\n  - name: x\n    rule: no-such-rule\n    input: [{burst: {at: 1m, count: 1}}]\n"
        "    expect: [{fires: 5m, quiet: true}]\n",
    )
    code, _, err = cli_run("test", "monitors/tests/bad.yaml")
    assert code == 1
    assert "monitors/tests/bad.yaml:6:" in err
    assert "exactly one of fires, warns, resolves, state, never, quiet" in err


def test_replay_reports_firing_and_bad_lines(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    events = [event(m / 2, ScriptName="conversation-api") for m in range(60)]
    events += [event(10.2, ScriptName="conversation-api", Outcome="exception")]
    path = tmp_path / "incident.ndjson"
    write_events(events, path)
    with path.open("a") as out:
        out.write("not json\n")
    code, out, err = cli_run("replay", str(path), "--rule", "worker-exception", "--report", "report.html")
    assert code == 0, err
    assert "61 events from 2026-01-01 00:00 to 2026-01-01 00:29 UTC" in out
    assert "worker-exception  1" in out
    assert "worker-exception: ScriptName=conversation-api alert 2026-01-01 00:16 → 2026-01-01 00:17" in out
    assert f"{path}:62: not a Workers Trace Event" in err
    html = Path("report.html").read_text()
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "<script" not in html  # self-contained and inert
    assert 'id="worker-exception"' in html
    assert "firing: ScriptName=conversation-api" in html

    code, out, _ = cli_run("replay", str(path), "-o", "json")
    assert code == 0
    report = json.loads(out)
    assert report["events"] == 61
    assert report["bad_lines"] == 1
    fired = report["rules"]["worker-exception"]["alerts"]
    assert fired[0]["start_ms"] == at(16)
    assert report["rules"]["logs-stopped"]["fired"] == 0


def test_replay_strict_stops_at_a_bad_line(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    path = write(tmp_path / "x.ndjson", json.dumps(event(1)) + "\n{oops\n")
    code, _, err = cli_run("replay", str(path), "--strict")
    assert code == 1
    assert f"{path}:2: not a Workers Trace Event" in err


def test_replay_shows_progress_within_a_file_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from extalerts.cli import engine_commands
    from extalerts.engine import Engine
    from extalerts.spec import load_spec

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(engine_commands.sys, "stderr", terminal)
    monkeypatch.setattr(engine_commands, "PROGRESS_MIN_BYTES", 0)
    source = tmp_path / "events.ndjson"
    write_events([{"EventTimestampMs": 1_767_225_600_000 + k, "Outcome": "ok"} for k in range(50)], source)
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"])
    engine_commands._load_with_progress(engine, [str(source)], strict=False)
    assert engine.events == 50
    assert "reading 1 file" in terminal.getvalue()
    assert "100%" in terminal.getvalue()
