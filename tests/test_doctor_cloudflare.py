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
    """The alerts as their recipes say (in the emulator's invented shape of the undocumented read)."""
    outcome = {"key": "$workers.outcome", "operation": "regex", "value": "^(exception|exceededCpu|exceededMemory)$"}
    status = {"key": "$workers.event.response.status", "operation": "Greater or equals", "value": "500"}
    message = {"key": "$metadata.message", "operation": "includes", "value": "ERROR_CODE_INVALID_URL"}
    return [
        {
            "id": f"alert-{index}",
            "name": name,
            "conditions": [{"type": "count", "operator": ">", "threshold": threshold}],
            "groupBy": group_by,
            "filters": [row],
        }
        for index, (name, threshold, group_by, row) in enumerate(
            [
                ("worker-exception-1", 0, ["$workers.scriptName"], outcome),
                ("worker-exception-2", 0, ["$workers.scriptName"], status),
                ("invalid-url-flood", 100, [], message),
                ("invalid-url-flood-warning", 50, [], message),
            ]
        )
    ]


def spec_sampled_at(tmp_path: Path, rate: str) -> Path:
    """The bundled spec with ``sources.workers.cloudflare.head_sampling_rate`` set."""
    for name in ("logpush.yaml", "traffic.yaml", "worker-errors.yaml", "durable-objects.yaml"):
        write(tmp_path / name, (MONITORS / name).read_text())
    splunk = '      sourcetype: "cloudflare:workers"\n'
    text = (MONITORS / "workers.yaml").read_text()
    assert splunk in text
    write(
        tmp_path / "workers.yaml", text.replace(splunk, f"{splunk}    cloudflare:\n      head_sampling_rate: {rate}\n")
    )
    return tmp_path


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


def test_a_live_rate_below_the_specs_names_the_recipe_thresholds_it_makes_wrong(emulator: CloudflareEmulator) -> None:
    sampled = {"enabled": True, "logs": {"enabled": True, "invocation_logs": True, "head_sampling_rate": 0.1}}
    emulator.add_script("conversation-api", observability=sampled)
    emulator.add_script("auth-worker", observability=LOGS_ON)
    found = by_subject(run(emulator))
    worker = found["Worker conversation-api"]
    assert not worker.ok
    assert worker.message == (
        "keeps the logs of 10% of requests (head_sampling_rate 0.1) where the spec says "
        "sources.workers.cloudflare.head_sampling_rate 1: recipe thresholds now wrong: "
        "invalid-url-flood Count > 100 (at 0.1: > 10), invalid-url-flood-warning Count > 50 (at 0.1: > 5); "
        "sampling at 0.1 leaves these alerts uncountable: worker-exception-1 Count > 0, worker-exception-2 Count > 0; "
        "breaks invalid-url-flood, worker-exception"
    )
    # worker-exception's "more than 0" cannot be scaled, so the only fix is the Worker's rate.
    assert worker.fix == "set head_sampling_rate = 1 in its wrangler config and deploy it"
    assert found["Worker auth-worker"].ok


def test_a_live_rate_the_spec_states_is_what_the_recipes_were_scaled_for(
    emulator: CloudflareEmulator, tmp_path: Path
) -> None:
    sampled = {"enabled": True, "logs": {"enabled": True, "invocation_logs": True, "head_sampling_rate": 0.5}}
    emulator.add_script("conversation-api", observability=sampled)
    emulator.add_script("auth-worker", observability=LOGS_ON)
    found = by_subject(run(emulator, spec_sampled_at(tmp_path, "0.5")))
    assert found["Worker conversation-api"] == Finding(
        True, "Worker conversation-api", "has Workers Logs on, head_sampling_rate 0.5, as the spec says"
    )
    # auth-worker logs every request, while the recipes were scaled for half of them.
    unsampled = found["Worker auth-worker"]
    assert not unsampled.ok
    assert unsampled.message == (
        "keeps the logs of 100% of requests (head_sampling_rate 1) where the spec says "
        "sources.workers.cloudflare.head_sampling_rate 0.5: recipe thresholds now wrong: "
        "invalid-url-flood Count > 50 (at 1: > 100), invalid-url-flood-warning Count > 25 (at 1: > 50); "
        "breaks invalid-url-flood, worker-exception"
    )
    assert unsampled.fix == (
        "set head_sampling_rate = 0.5 in its wrangler config and deploy it, or set "
        "sources.workers.cloudflare.head_sampling_rate: 1, re-render the recipes "
        "(`extalerts render --provider cloudflare`) and enter the new thresholds"
    )


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


def test_drift_is_reported_per_recipe_alert_labelled_as_undocumented_and_nothing_is_written(
    emulator: CloudflareEmulator,
) -> None:
    for name in ("conversation-api", "auth-worker"):
        emulator.add_script(name, observability=LOGS_ON)
    edited = matching_alerts()[:2]
    edited[0]["conditions"][0]["threshold"] = 5
    edited[1]["filters"][0]["value"] = "400"
    emulator.set_observability_alerts(edited)
    found = by_subject(run(emulator))
    drifted = found["Workers Observability alert 'worker-exception-1'"]
    assert not drifted.ok
    assert drifted.message == (
        f"differs from its recipe ({UNDOCUMENTED}): conditions count > 5 (recipe: count > 0); breaks worker-exception"
    )
    assert found["Workers Observability alert 'worker-exception-2'"].message == (
        f"differs from its recipe ({UNDOCUMENTED}): filters $workers.event.response.status greater or equals 400 "
        "(recipe: $workers.event.response.status greater or equals 500); breaks worker-exception"
    )
    for name in ("invalid-url-flood", "invalid-url-flood-warning"):
        missing = found[f"Workers Observability alert {name!r}"]
        assert (missing.ok, missing.message) == (False, f"is not configured ({UNDOCUMENTED}); breaks invalid-url-flood")
    assert {method for method, *_ in emulator.requests} == {"GET"}

    emulator.set_observability_alerts(matching_alerts())
    assert all(f.ok for f in run(emulator))


def test_drift_compares_with_the_recipe_values_not_the_rules(emulator: CloudflareEmulator, tmp_path: Path) -> None:
    """At head_sampling_rate 0.5 the recipe counts > 50 where the rule says > 100: an alert entered with the
    rule's threshold drifts, one entered from the recipe does not."""
    sampled = {"enabled": True, "logs": {"enabled": True, "invocation_logs": True, "head_sampling_rate": 0.5}}
    for name in ("conversation-api", "auth-worker"):
        emulator.add_script(name, observability=sampled)
    alerts = matching_alerts()
    emulator.set_observability_alerts(alerts)
    found = by_subject(run(emulator, spec_sampled_at(tmp_path, "0.5")))
    flood = found["Workers Observability alert 'invalid-url-flood'"]
    assert flood.message == (
        f"differs from its recipe ({UNDOCUMENTED}): conditions count > 100 (recipe: count > 50); "
        "breaks invalid-url-flood"
    )
    alerts[2]["conditions"][0]["threshold"] = 50
    alerts[3]["conditions"][0]["threshold"] = 25
    emulator.set_observability_alerts(alerts)
    assert all(f.ok for f in run(emulator, spec_sampled_at(tmp_path, "0.5")))


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
