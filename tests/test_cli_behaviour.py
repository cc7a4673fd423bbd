"""How every command behaves: asking before writing to a provider, global options, colour, counts,
progress and JSON output."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from extalerts.cli import cli
from extalerts.emulators.datadog import DatadogEmulator
from tests.conftest import MONITORS, REPO, cli_run

#: The installed console script, as a user's shell runs it (completion keys on its name).
EXTALERTS = str(Path(sys.executable).with_name("extalerts"))

API_KEY = "ddapikey-5e2d8c1b9a74f360"
APP_KEY = "ddappkey-0a1b2c3d4e5f6a7b8c9d"


@pytest.fixture
def datadog(monkeypatch: pytest.MonkeyPatch) -> Iterator[DatadogEmulator]:
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    with DatadogEmulator(API_KEY, APP_KEY) as running:
        yield running


# ------------------------------------------------------------------------------------ asking first


def test_push_refuses_without_yes_when_stdin_is_not_a_terminal(datadog: DatadogEmulator, tmp_path: Path) -> None:
    """`push … </dev/null` must not apply: nobody was asked."""
    command = [sys.executable, "-m", "extalerts", "push", str(MONITORS), "-p", "datadog", "--api-url", datadog.url]
    env = {**os.environ, "DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}
    refused = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert refused.returncode == 1
    creates = re.match(r"datadog plan: (\d+) to create", refused.stdout)
    assert creates, refused.stdout  # the plan is still shown
    assert refused.stderr.splitlines() == [
        "error: extalerts push: standard input is not a terminal, so it cannot ask before applying "
        f"{creates.group(1)} changes to datadog; pass --yes to go ahead"
    ]
    assert datadog.monitors() == []
    applied = subprocess.run(
        [*command, "--yes"], stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert applied.returncode == 0, applied.stderr
    assert datadog.monitors()


def test_push_asks_on_a_terminal_and_stops_on_no(datadog: DatadogEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("extalerts.cli.options.stdin_is_terminal", lambda: True)
    args = ["push", str(MONITORS), "-p", "datadog", "--api-url", datadog.url]
    result = CliRunner().invoke(cli, args, input="n\n")
    assert result.exit_code == 1
    assert "Apply these changes to datadog? [y/N]" in result.stderr
    assert datadog.monitors() == []
    result = CliRunner().invoke(cli, args, input="y\n")
    assert result.exit_code == 0, result.stderr
    assert datadog.monitors()


def test_send_refuses_without_yes_and_reports_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Sent events arrive as production logs and can page people: send asks like push."""
    from extalerts.intake import DatadogIntake

    sent: list[int] = []

    def fake_send(self: DatadogIntake, events: Sequence[Mapping[str, Any]]) -> int:
        sent.append(len(events))
        return len(events)

    monkeypatch.setattr(DatadogIntake, "send", fake_send)
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    events = tmp_path / "events.ndjson"
    start = 1_767_225_600_000
    lines = [{"EventTimestampMs": start + k * 20_000, "ScriptName": "conversation-api"} for k in range(9)]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["send", str(events), "-p", "datadog", "--spec", str(MONITORS), "--pace", "now"]
    code, _, err = cli_run(*args)
    assert code == 1
    assert err.strip() == (
        "error: extalerts send: standard input is not a terminal, so it cannot ask before sending "
        "9 events through the datadog intake; pass --yes to go ahead"
    )
    assert sent == []
    code, out, err = cli_run(*args, "--yes", "-o", "json")
    assert code == 0, err
    assert json.loads(out) == {
        "provider": "datadog",
        "job": "workers-to-datadog",
        "pace": "now",
        "files": [str(events)],
        "sent": 9,
        "minutes": 3,
    }
    assert sum(sent) == 9


# ------------------------------------------------------------------------------------ global options


def test_verbose_works_after_the_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(paths: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("extalerts.spec.load_spec", broken)
    code, _, err = cli_run("validate")
    assert code == 1
    assert "error: unexpected RuntimeError: boom" in err
    for args in (["validate", "-v"], ["validate", "--verbose"], ["-v", "validate"]):
        with pytest.raises(RuntimeError, match="boom"):
            cli_run(*args)


def test_options_after_the_sandbox_command_are_the_command_s() -> None:
    check = "import sys; sys.exit(0 if sys.argv[1:] == ['-v', '--no-color'] else 3)"
    code, _, err = cli_run("sandbox", "--spec", str(MONITORS), sys.executable, "-c", check, "-v", "--no-color")
    assert code == 0, err


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_takes_the_global_options(command: str) -> None:
    code, out, _ = cli_run(command, "--help")
    assert code == 0
    assert "-v, --verbose" in out
    assert "--no-color" in out


def _coloured_test_run(*extra: str, env: Mapping[str, str] | None = None) -> str:
    args = ["test", str(MONITORS / "tests" / "worker-errors.yaml"), "--spec", str(MONITORS), *extra]
    result = CliRunner().invoke(cli, args, color=True, env=env)  # color=True: as on a terminal
    assert result.exit_code == 0, result.output
    return result.stdout


def test_no_color_and_the_no_color_variable_turn_colour_off_on_a_terminal() -> None:
    assert "\x1b[" in _coloured_test_run()
    assert "\x1b[" not in _coloured_test_run(env={"NO_COLOR": "1"})
    assert "\x1b[" not in _coloured_test_run("--no-color")
    assert "\x1b[" in _coloured_test_run(env={"NO_COLOR": ""})  # https://no-color.org: only when not empty


# ------------------------------------------------------------------------------------ test and its spec


def test_a_spec_directory_given_as_tests_is_one_line_that_says_where_it_goes() -> None:
    code, out, err = cli_run("test", str(MONITORS), "--spec", str(MONITORS))
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == (
        f"{MONITORS}: a directory of spec files, not of rule tests (spec files go after --spec, e.g. "
        f"`extalerts test --spec {MONITORS}/`; its rule tests are in {MONITORS}/tests/)"
    )
    assert len(err.splitlines()) == 2  # and the summary; no "unknown key" for each section
    assert "unknown key" not in err


def test_a_spec_file_given_as_a_test_file_says_so() -> None:
    code, _, err = cli_run("test", str(MONITORS / "workers.yaml"), str(MONITORS / "tests"), "--spec", str(MONITORS))
    assert code == 1
    assert err.splitlines()[0].startswith(f"{MONITORS}/workers.yaml:1: a spec file, not a rule test file (spec files")
    assert "unknown key" not in err


# ------------------------------------------------------------------------------------ counts


def test_plural() -> None:
    from extalerts.cli.options import plural

    assert plural(1, "rule") == "1 rule"
    assert plural(0, "rule") == "0 rules"
    assert plural(1200, "event") == "1,200 events"
    assert plural(2, "drill copy", "drill copies") == "2 drill copies"


def test_one_rule_is_one_rule() -> None:
    args = ["test", str(MONITORS / "tests"), "--spec", str(MONITORS), "--rule", "worker-exception", "--coverage"]
    code, out, err = cli_run(*args)
    assert code == 0, err
    assert "coverage: the rule fires in a test and stays quiet in another" in out
    assert "1 rules" not in out


# ------------------------------------------------------------------------------------ progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class CountingIntake:
    def send(self, events: Sequence[Mapping[str, Any]]) -> int:
        return len(events)


def _events(minutes: int) -> list[dict[str, Any]]:
    return [{"EventTimestampMs": 1_767_225_600_000 + m * 60_000} for m in range(minutes)]


def test_send_shows_progress_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from extalerts.cli import drill_commands
    from extalerts.clock import Clock

    terminal = Terminal()
    monkeypatch.setattr(drill_commands.sys, "stderr", terminal)
    assert drill_commands._send_paced(_events(4), CountingIntake(), Clock(), "now") == (4, 4)
    assert "sending 4 minutes of traffic" in terminal.getvalue()
    assert "4/4" in terminal.getvalue()
    log = io.StringIO()
    monkeypatch.setattr(drill_commands.sys, "stderr", log)
    assert drill_commands._send_paced(_events(4), CountingIntake(), Clock(), "now") == (4, 4)
    assert log.getvalue() == ""  # a log file or a pipe gets no bar


# ------------------------------------------------------------------------------------ JSON output


def test_synth_json_says_what_it_wrote_the_same_every_time() -> None:
    args = ["synth", "--out", "a.ndjson", "--minutes", "3", "--scenario", "exception-storm@1m+1m", "-o", "json"]
    code, out, err = cli_run(*args)
    assert code == 0, err
    report = json.loads(out)
    assert report["events"] == len(Path("a.ndjson").read_text().splitlines())
    assert report["scenarios"] == [
        {"scenario": "exception-storm@1m+1m", "start_ms": 1_767_225_660_000, "end_ms": 1_767_225_720_000}
    ]
    assert sum(c["events"] for c in report["counts"]) == report["events"]
    assert cli_run(*args)[1] == out
    code, _, err = cli_run("synth", "--out", "-", "-o", "json")
    assert code == 2
    assert "give --out a file" in err
    code, out, _ = cli_run("synth", "--list-scenarios", "-o", "json")
    assert "exception-storm" in [s["name"] for s in json.loads(out)]


def test_package_json_names_the_archive_and_its_members() -> None:
    code, out, err = cli_run("package", str(MONITORS), "--out", "app.tgz", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["archive"] == "app.tgz"
    assert report["app"] == "extalerts_workers"
    assert "extalerts_workers/default/savedsearches.conf" in report["members"]
    assert Path("app.tgz").is_file()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_readme_s_shell_completion_lines_load_a_completion_script(shell: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"_EXTALERTS_COMPLETE={shell}_source extalerts" in readme
    done = subprocess.run(
        [EXTALERTS], env={**os.environ, "_EXTALERTS_COMPLETE": f"{shell}_source"}, capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "_EXTALERTS_COMPLETE" in done.stdout


def test_completion_offers_the_providers_after_provider() -> None:
    done = subprocess.run(
        [EXTALERTS],
        env={
            **os.environ,
            "_EXTALERTS_COMPLETE": "bash_complete",
            "COMP_WORDS": "extalerts push --provider ",
            "COMP_CWORD": "3",
        },
        capture_output=True,
        text=True,
    )
    offered = {line.split(",", 1)[1] for line in done.stdout.splitlines()}
    assert {"datadog", "splunk", "logpush", "cloudflare"} <= offered
