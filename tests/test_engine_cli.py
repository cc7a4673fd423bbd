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


def test_replay_under_splunk_semantics_counts_warning_notifications(tmp_path: Path) -> None:
    spec = write(
        tmp_path / "spec.yaml",
        """\
version: 1
rules:
  - id: errors
    title: Errors
    severity: high
    filter: 'Outcome != "ok"'
    signal: {kind: count}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 3, warning: 1}
    throttle: 1h
""",
    )
    # 2 errors a minute (warning) for minutes 0-2, then 5 (critical) for minutes 3-4.
    counts = {0: 2, 1: 2, 2: 2, 3: 5, 4: 5}
    events = [event(m + i / 10, Outcome="exception") for m, n in counts.items() for i in range(n)]
    path = tmp_path / "incident.ndjson"
    write_events([*events, event(5.5)], path)
    replay = ("replay", str(path), "--spec", str(spec), "--logpush-job", "none")
    code, out, err = cli_run(*replay, "--semantics", "splunk", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["notifications_include"] == ["alert", "warning"]
    errors = report["rules"]["errors"]
    assert (errors["notifications"], errors["notifications_by_level"]) == (2, {"alert": 1, "warning": 1})
    code, out, err = cli_run(*replay, "--semantics", "splunk")
    assert code == 0, err
    assert "notified: the alert and the warning searches' notifications" in out
    assert "errors  1      2 (1 warning)" in out
    code, out, err = cli_run(*replay, "--semantics", "datadog", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["notifications_include"] == ["alert"]
    assert report["rules"]["errors"]["notifications_by_level"] == {"alert": 1}


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


# --------------------------------------------------------------------------------------------- replay input


def _incident(path: Path, exception_at: float = 10.2) -> Path:
    events = [event(m / 2, ScriptName="conversation-api") for m in range(60)]
    events += [event(exception_at, ScriptName="conversation-api", Outcome="exception")]
    write_events(events, path)
    return path


def test_replay_locates_lines_that_are_not_objects_exactly(tmp_path: Path) -> None:
    lines = [json.dumps(event(k / 100)) for k in range(1000)]
    lines[499], lines[700] = "[1, 2]", "42"  # not objects: DuckDB drops a whole chunk around such a line
    path = write(tmp_path / "x.ndjson", "\n".join(lines) + "\n")
    code, out, err = cli_run("replay", str(path), "--spec", str(MONITORS), "--rule", "worker-exception")
    assert code == 0
    assert "998 events" in out
    assert err.splitlines()[1:] == [
        f"  {path}:{n}: not a Workers Trace Event (bad JSON or no EventTimestampMs)" for n in (500, 701)
    ]
    code, _, err = cli_run("replay", str(path), "--spec", str(MONITORS), "--strict")
    assert code == 1
    assert f"{path}:500: not a Workers Trace Event" in err
    assert "without it, bad lines are skipped" in err


def test_replay_reads_a_file_named_twice_once_and_folders_in_depth(tmp_path: Path) -> None:
    day = tmp_path / "archive" / "20260101"
    day.mkdir(parents=True)
    path = _incident(day / "a.log")
    code, out, _ = cli_run(
        "replay", str(path), str(day / "*.log"), str(tmp_path / "archive"), "--spec", str(MONITORS), "-o", "json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["events"] == 61
    assert report["rules"]["worker-exception"]["fired"] == 1


def test_replay_refuses_what_would_read_as_nothing(tmp_path: Path) -> None:
    import gzip

    gzipped = tmp_path / "day.ndjson"
    gzipped.write_bytes(gzip.compress(_incident(tmp_path / "plain.ndjson").read_bytes()))
    code, _, err = cli_run("replay", str(gzipped), "--spec", str(MONITORS))
    assert code == 1
    assert "gzip content in a file not named .gz; rename it to day.ndjson.gz" in err
    lowercase = write(tmp_path / "lower.ndjson", '{"eventtimestampms": 1767225600000, "outcome": "ok"}\n')
    code, out, err = cli_run("replay", str(lowercase), "--spec", str(MONITORS))
    assert code == 1
    assert out == ""
    assert "no Workers Trace Events in 1 file; 1 line skipped, e.g. " in err
    assert "with Logpush's field names, e.g. EventTimestampMs" in err


def test_replay_reads_a_truncated_gzip_up_to_the_cut(tmp_path: Path) -> None:
    import gzip

    events = [event(m / 10, ScriptName="conversation-api") for m in range(300)]
    events += [event(3.05, ScriptName="conversation-api", Outcome="exception")]
    whole = tmp_path / "whole.ndjson"
    write_events(sorted(events, key=lambda e: e["EventTimestampMs"]), whole)
    compressed = gzip.compress(whole.read_bytes())
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(compressed[: len(compressed) * 3 // 4])
    code, out, err = cli_run("replay", str(cut), "--spec", str(MONITORS), "--rule", "worker-exception", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert 0 < report["events"] < 301
    assert report["rules"]["worker-exception"]["fired"] == 1  # the exception lies before the cut
    (warning,) = report["warnings"]
    assert f"{cut}: the gzip stream is cut short; read the {report['events']:,} whole lines before the cut" in warning
    assert f"warning: {warning}" in err
    code, _, err = cli_run("replay", str(cut), "--spec", str(MONITORS), "--strict")
    assert code == 1
    assert "Unexpected end of GZIP stream" in err


def test_replay_options_are_checked_and_bound_the_evaluations(tmp_path: Path) -> None:
    path = _incident(tmp_path / "x.ndjson")
    base = ("replay", str(path), "--spec", str(MONITORS))
    code, _, err = cli_run(*base, "--memory-limit", "lots")
    assert code == 1
    assert "error: memory limit 'lots':" in err
    assert "write it like 512MB or 4GB" in err
    code, _, err = cli_run(*base, "--rule", "worker-excepton")
    assert "(did you mean `worker-exception`?)" in err
    code, _, err = cli_run(*base, "--until", "yesterday")
    assert code == 2
    assert "Invalid value for --until: 'yesterday' is not an ISO 8601 time" in err
    code, out, _ = cli_run(*base, "--rule", "worker-exception", "-o", "json", "--since", "2026-01-01T00:20")
    transitions = json.loads(out)["rules"]["worker-exception"]["transitions"]
    assert transitions == []  # the alert of 00:16-00:17 lies before the first evaluation
    code, out, _ = cli_run(*base, "--rule", "worker-exception", "-o", "json", "--until", "2026-01-01T00:16")
    (alert,) = json.loads(out)["rules"]["worker-exception"]["alerts"]
    assert alert["end_ms"] is None  # still firing at the last evaluation asked for


def test_report_charts_draw_negative_values_gaps_and_the_input_span(tmp_path: Path) -> None:
    from extalerts.engine import Engine, RuleResult
    from extalerts.report import write_report
    from extalerts.spec import load_spec

    spec = load_spec([MONITORS])
    engine = Engine(spec, rules=["request-spike", "worker-exception"])
    engine.load_events([event(600 + m) for m in range(5)])  # 10:00 to 10:04
    result = engine.evaluate()
    result.rules["request-spike"] = RuleResult(
        "request-spike",
        series={(): [(at(10), 50.0), (at(11), None), (at(12), -100.0), (at(13), -80.0)]},
        evaluations=4,
        until_ms=at(13),
    )
    result.rules["worker-exception"] = RuleResult("worker-exception")  # never evaluated
    write_report(spec, result, Path("report.html"))
    html = Path("report.html").read_text()
    spike = html[html.index('id="request-spike"') :]
    path = spike[spike.index('<path d="') + 9 :].split('"', 1)[0]
    assert path.count("M") == 2  # the gap at 00:11 is not bridged
    ys = [float(step.split(",")[1]) for step in path.replace("M", " ").replace("L", " ").split()]
    svg_height = float(spike[spike.index('height="') + 8 :].split('"', 1)[0])
    assert all(0 <= y <= svg_height for y in ys)
    never_evaluated = html[html.index('id="worker-exception"') :]
    assert "01-01 10:00" in never_evaluated  # the input's span
    assert "01-01 00:00" not in never_evaluated  # not the epoch


def test_replay_rules_see_what_the_logpush_job_ships(tmp_path: Path) -> None:
    """monitors/ ships conversation-api and auth-worker only: another script's exceptions never reach
    Datadog or Splunk, so they cannot page there."""
    events = [event(m / 2, ScriptName="conversation-api") for m in range(60)]
    events += [event(10.2, ScriptName="batch-worker", Outcome="exception")]
    path = tmp_path / "x.ndjson"
    write_events(events, path)
    base = ("replay", str(path), "--spec", str(MONITORS), "--rule", "worker-exception", "-o", "json")
    code, out, _ = cli_run(*base)
    assert code == 0
    report = json.loads(out)
    assert report["rules"]["worker-exception"]["fired"] == 0
    assert report["logpush_job"] == {
        "jobs": ["workers-to-datadog"],
        "filters": ['ScriptName in ["conversation-api", "auth-worker"]'],
        "events": 60,
    }
    code, out, _ = cli_run(*base, "--semantics", "splunk")
    assert json.loads(out)["logpush_job"]["jobs"] == ["workers-to-splunk"]
    code, out, _ = cli_run(*base, "--logpush-job", "none")
    assert json.loads(out)["rules"]["worker-exception"]["fired"] == 1
    assert json.loads(out)["logpush_job"] is None
    code, _, err = cli_run(*base, "--logpush-job", "workers-to-dd")
    assert code == 1
    assert "unknown Logpush job in --logpush-job: workers-to-dd (jobs: workers-to-datadog, workers-to-splunk" in err


def test_replay_warns_of_a_top_level_field_no_event_holds(tmp_path: Path) -> None:
    lines = [{"EventTimestampMs": at(m), "outcome": "exception", "ScriptName": "conversation-api"} for m in range(3)]
    path = write(tmp_path / "x.ndjson", "".join(json.dumps(line) + "\n" for line in lines))
    code, out, err = cli_run("replay", str(path), "--spec", str(MONITORS), "--rule", "worker-exception", "-o", "json")
    assert code == 0
    warning = "no event has Outcome (read by worker-exception): Logpush writes Outcome in every event"
    assert f"warning: {warning}" in err
    assert any(w.startswith(warning) for w in json.loads(out)["warnings"])
    assert "ScriptName" not in err


def test_replay_rules_see_every_job_shipping_to_the_provider(tmp_path: Path) -> None:
    spec = copy_monitors(tmp_path)
    jobs = (spec / "logpush.yaml").read_text()
    second = """\
    auth-to-datadog:
      datadog: {site: datadoghq.com, service: auth}
      filter: 'ScriptName == "batch-worker"'
"""
    (spec / "logpush.yaml").write_text(jobs.replace("    workers-to-splunk:\n", second + "    workers-to-splunk:\n"))
    events = [event(m / 2, ScriptName="conversation-api") for m in range(60)]
    events += [event(10.2, ScriptName="batch-worker", Outcome="exception")]
    path = tmp_path / "x.ndjson"
    write_events(events, path)
    code, out, err = cli_run("replay", str(path), "--rule", "worker-exception", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["logpush_job"]["jobs"] == ["auth-to-datadog", "workers-to-datadog"]
    assert report["logpush_job"]["events"] == 61
    assert report["rules"]["worker-exception"]["fired"] == 1


def test_replay_strict_stops_at_a_timestamp_no_bigint_holds(tmp_path: Path) -> None:
    lines = [json.dumps(event(k / 10)) for k in range(20)] + ['{"EventTimestampMs": "nan", "Outcome": "ok"}']
    path = write(tmp_path / "x.ndjson", "\n".join(lines) + "\n")
    code, _, err = cli_run("replay", str(path), "--spec", str(MONITORS), "--strict")
    assert code == 1
    assert f"{path}:21: not a Workers Trace Event" in err


def test_replay_reads_folders_a_glob_matches(tmp_path: Path) -> None:
    for day in ("20260101", "20260102"):
        (tmp_path / "archive" / day).mkdir(parents=True)
    _incident(tmp_path / "archive" / "20260101" / "a.log")
    code, out, err = cli_run("replay", str(tmp_path / "archive" / "2026*"), "--spec", str(MONITORS), "-o", "json")
    assert code == 1  # the second day's folder holds nothing to read, and says so
    assert "20260102: no .ndjson, .json, .log, .gz file to read (it is empty)" in err
    (tmp_path / "archive" / "20260102" / "b.log").write_text(json.dumps(event(40)) + "\n")
    code, out, err = cli_run("replay", str(tmp_path / "archive" / "2026*"), "--spec", str(MONITORS), "-o", "json")
    assert code == 0, err
    assert json.loads(out)["events"] == 62


def test_replay_report_holds_rules_left_without_evaluations(tmp_path: Path) -> None:
    from extalerts.synth import SynthConfig, generate

    path = tmp_path / "x.ndjson"
    generate(SynthConfig(minutes=20, requests_per_minute=60), path)
    args = (
        "replay",
        str(path),
        "--spec",
        str(MONITORS),
        "--since",
        "2026-01-01T00:00Z",
        "--until",
        "2026-01-01T00:03Z",
    )
    code, _, err = cli_run(*args, "--report", "r.html")
    assert code == 0, err
    assert 'id="do-latency-p99"' in Path("r.html").read_text()


def test_replay_names_the_job_filter_reading_an_absent_field(tmp_path: Path) -> None:
    lines = [{"EventTimestampMs": at(m), "Outcome": "ok", "scriptname": "conversation-api"} for m in range(3)]
    path = write(tmp_path / "x.ndjson", "".join(json.dumps(line) + "\n" for line in lines))
    code, _, err = cli_run("replay", str(path), "--spec", str(MONITORS), "--rule", "invalid-url-flood")
    assert code == 0
    assert "warning: no event has ScriptName (read by the filter of Logpush job workers-to-datadog)" in err


def test_replay_tells_trailing_bytes_from_a_cut(tmp_path: Path) -> None:
    import gzip

    plain = _incident(tmp_path / "x.ndjson")
    padded = tmp_path / "padded.ndjson.gz"
    padded.write_bytes(gzip.compress(plain.read_bytes()) + b"\0" * 512)
    code, out, err = cli_run("replay", str(padded), "--spec", str(MONITORS), "-o", "json")
    assert code == 0, err
    assert json.loads(out)["events"] == 61
    assert "bytes that are not gzip follow the compressed data; read all 61 lines before them" in err


def test_replay_lists_the_lines_it_skipped_even_joined_files_with_byte_order_marks(tmp_path: Path) -> None:
    """Files joined together keep each one's byte-order mark: the scan skips those lines, and the
    listing under "lines skipped" names each of them rather than ending on its heading."""
    line = json.dumps(event(1))
    path = write(tmp_path / "joined.ndjson", "\n".join(["\ufeff" + line, line, "\ufeff" + line, line]) + "\n")
    code, out, err = cli_run("replay", str(path), "--spec", str(MONITORS), "--rule", "worker-exception")
    assert code == 0, err
    assert "3 events" in out
    assert err.splitlines() == [
        "1 line skipped (not Workers Trace Events):",
        f"  {path}:3: not a Workers Trace Event (bad JSON or no EventTimestampMs)",
    ]
