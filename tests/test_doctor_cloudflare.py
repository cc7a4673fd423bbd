"""``extalerts doctor --provider cloudflare`` against the Cloudflare emulator, through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from extalerts.doctor import Finding
from extalerts.doctor_cloudflare import UNDOCUMENTED, WORKERS_LOGS_FIX, cloudflare_doctor
from extalerts.emulators.cloudflare import CloudflareEmulator
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import MONITORS, write
from tests.test_cloudflare_push import OBSERVED, carried_by_observability_alerts

TOKEN = "cf-doctor-token-19"
ACCOUNT = "abcdef0123456789abcdef0123456789"
LOGS_ON = {"enabled": True, "logs": {"enabled": True, "invocation_logs": True}}


def matching_alerts() -> list[dict[str, Any]]:
    """The two alerts as their recipes say (in the emulator's invented shape of the undocumented read)."""
    return [
        {
            "id": "alert-1",
            "name": "extalerts: worker-exception",
            "conditions": [{"type": "count", "operator": ">", "threshold": 0}],
            "groupBy": ["$workers.scriptName"],
            "filters": [],
        },
        {
            "id": "alert-2",
            "name": "extalerts: invalid-url-flood",
            "conditions": [{"type": "count", "operator": ">", "threshold": 100}],
            "groupBy": [],
            "filters": [{"key": "message", "operation": "includes", "value": "ERROR_CODE_INVALID_URL"}],
        },
    ]


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudflareEmulator]:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    with CloudflareEmulator(api_token=TOKEN, account_id=ACCOUNT) as running:
        yield running


def run(emulator: CloudflareEmulator, spec_path: Path = MONITORS) -> list[Finding]:
    api = CloudflareApi(CloudflareSettings(ACCOUNT, TOKEN, emulator.url), RetryPolicy(time_scale=0.001))
    return cloudflare_doctor(load_spec([spec_path]), api)


def by_subject(findings: list[Finding]) -> dict[str, Finding]:
    return {f.subject: f for f in findings}


def test_workers_logs_off_is_a_problem_naming_the_worker_the_rules_and_the_fix(emulator: CloudflareEmulator) -> None:
    emulator.add_script("conversation-api", observability=LOGS_ON)
    emulator.add_script("auth-worker")  # no observability settings: Workers Logs off
    found = by_subject(run(emulator))
    off = found["Worker auth-worker"]
    assert not off.ok
    assert off.message == (
        "has Workers Logs off: its Workers Observability alerts see no events; "
        "breaks invalid-url-flood, worker-exception"
    )
    assert off.fix == WORKERS_LOGS_FIX
    assert '"observability": {"enabled": true' in off.fix
    assert found["Worker conversation-api"] == Finding(
        True, "Worker conversation-api", "has Workers Logs on, head_sampling_rate 1"
    )


def test_sampled_logs_are_a_problem_for_counting_rules(emulator: CloudflareEmulator) -> None:
    sampled = {"enabled": True, "logs": {"enabled": True, "invocation_logs": True, "head_sampling_rate": 0.1}}
    emulator.add_script("conversation-api", observability=sampled)
    emulator.add_script("auth-worker", observability=LOGS_ON)
    found = by_subject(run(emulator))
    worker = found["Worker conversation-api"]
    assert not worker.ok
    assert worker.message.startswith("keeps the logs of 10% of requests (head_sampling_rate 0.1)")
    assert worker.message.endswith("breaks invalid-url-flood, worker-exception")
    assert found["Worker auth-worker"].ok


def test_invocation_logs_off_breaks_only_the_rules_that_read_the_invocation(emulator: CloudflareEmulator) -> None:
    custom_only = {"enabled": True, "logs": {"enabled": True, "invocation_logs": False}}
    emulator.add_script("conversation-api", observability=custom_only)
    emulator.add_script("auth-worker", observability=LOGS_ON)
    worker = by_subject(run(emulator))["Worker conversation-api"]
    assert not worker.ok
    # invalid-url-flood reads console.log lines only; worker-exception reads Outcome and the response status.
    assert worker.message.endswith("; breaks worker-exception")


def test_a_rule_pinned_to_a_script_checks_that_worker_only(emulator: CloudflareEmulator, tmp_path: Path) -> None:
    for name in ("workers.yaml", "logpush.yaml", "traffic.yaml"):
        write(tmp_path / name, (MONITORS / name).read_text())
    text = (MONITORS / "worker-errors.yaml").read_text()
    pinned = 'filter: \'ScriptName == "billing-worker" and (Outcome in ["exception", "exceededCpu"])\''
    text = text.replace(
        'filter: \'Outcome in ["exception", "exceededCpu", "exceededMemory"] or Event.Response.Status >= 500\'',
        pinned,
    )
    assert pinned in text
    write(tmp_path / "worker-errors.yaml", text)
    emulator.add_script("conversation-api", observability=LOGS_ON)
    emulator.add_script("auth-worker", observability=LOGS_ON)
    found = by_subject(run(emulator, tmp_path))
    assert found["Worker billing-worker"].message == "does not exist in this account; breaks worker-exception"
    assert found["Worker auth-worker"].ok  # still watched by invalid-url-flood


def test_the_undocumented_read_absent_is_not_available_and_not_a_problem(emulator: CloudflareEmulator) -> None:
    for name in ("conversation-api", "auth-worker"):
        emulator.add_script(name, observability=LOGS_ON)
    for absent_status in (400, 404, 405):
        emulator.set_observability_alerts(None, absent_status=absent_status)
        findings = run(emulator)
        assert all(f.ok for f in findings)
        (note,) = [f for f in findings if f.subject == "Workers Observability alerts"]
        assert note.message.startswith("not available:")
        assert UNDOCUMENTED in note.message


def test_drift_is_reported_labelled_as_undocumented_and_nothing_is_written(emulator: CloudflareEmulator) -> None:
    for name in ("conversation-api", "auth-worker"):
        emulator.add_script(name, observability=LOGS_ON)
    edited = matching_alerts()[:1]
    edited[0]["conditions"][0]["threshold"] = 5
    emulator.set_observability_alerts(edited)
    found = by_subject(run(emulator))
    drifted = found["Workers Observability alert 'extalerts: worker-exception'"]
    assert not drifted.ok
    assert drifted.message == (
        f"differs from its recipe ({UNDOCUMENTED}): conditions count > 5 (recipe: count > 0); breaks worker-exception"
    )
    missing = found["Workers Observability alert 'extalerts: invalid-url-flood'"]
    assert (missing.ok, missing.message) == (False, f"is not configured ({UNDOCUMENTED}); breaks invalid-url-flood")
    assert {method for method, *_ in emulator.requests} == {"GET"}

    emulator.set_observability_alerts(matching_alerts())
    assert all(f.ok for f in run(emulator))


def test_doctor_command_exits_1_and_prints_one_line_per_problem(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from extalerts.cli import cli

    emulator.add_script("conversation-api", observability=LOGS_ON)
    emulator.add_script("auth-worker")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    result = CliRunner().invoke(cli, ["doctor", "--provider", "cloudflare", "--api-url", emulator.url, str(MONITORS)])
    assert result.exit_code == 1, result.output
    problems = [line for line in result.output.splitlines() if line.startswith("PROBLEM")]
    assert problems == [
        "PROBLEM  Worker auth-worker has Workers Logs off: its Workers Observability alerts see no events; "
        f"breaks invalid-url-flood, worker-exception; {WORKERS_LOGS_FIX}"
    ]
    assert TOKEN not in result.output
