"""Logpush jobs as code and doctor, against the local Cloudflare emulator through the real cloudflare SDK."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extalerts.emulators.base import LATE, Faults
from extalerts.emulators.cloudflare import CloudflareEmulator
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.providers.logpush import LogpushProvider, mask_destination
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import MONITORS, cli_run

CF_TOKEN = "cf-token-8e21c4"
ACCOUNT = "0123456789abcdef0123456789abcdef"
DD_KEY = "dd-intake-key-77aa01"
HEC_TOKEN = "hec-token-3c9d55"
FAST = RetryPolicy(time_scale=0.001, max_attempts=8)


@pytest.fixture
def emulator() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(api_token=CF_TOKEN, account_id=ACCOUNT) as running:
        running.add_script("conversation-api", logpush=True)
        running.add_script("auth-worker", logpush=True)
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, emulator: CloudflareEmulator) -> str:
    for name in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("DD_API_KEY", DD_KEY)
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", HEC_TOKEN)
    monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: FAST)
    return emulator.url


def push(url: str, *extra: str) -> tuple[int, str, str]:
    return cli_run("push", "monitors", "-p", "logpush", "--api-url", url, "--yes", *extra)


def plan(url: str, *extra: str) -> tuple[int, str, str]:
    return cli_run("plan", "monitors", "-p", "logpush", "--api-url", url, *extra)


def test_push_then_plan_shows_no_change(env: str, spec_dir: Path, emulator: CloudflareEmulator) -> None:
    code, out, err = push(env)
    assert code == 0, err
    assert "applied: 2 created" in out
    assert plan(env)[0] == 0
    jobs = {job["name"]: job for job in emulator.jobs()}
    assert set(jobs) == {"extalerts-workers-to-datadog", "extalerts-workers-to-splunk"}
    datadog = jobs["extalerts-workers-to-datadog"]
    assert datadog["dataset"] == "workers_trace_events"
    assert datadog["enabled"] is True
    assert datadog["destination_conf"].startswith(
        "datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY="
    )
    assert json.loads(datadog["filter"]) == {
        "where": {"key": "ScriptName", "operator": "in", "value": ["conversation-api", "auth-worker"]}
    }
    splunk = jobs["extalerts-workers-to-splunk"]["destination_conf"]
    assert splunk.startswith("splunk://http-inputs-acme.splunkcloud.com:443/services/collector/raw?channel=")
    assert "header_Authorization=Splunk%20" in splunk


def test_a_changed_filter_is_a_readable_diff_with_secrets_masked(env: str, spec_dir: Path) -> None:
    assert push(env)[0] == 0
    path = spec_dir / "logpush.yaml"
    path.write_text(path.read_text().replace('["conversation-api", "auth-worker"]', '["conversation-api"]', 1))
    code, out, _ = plan(env)
    assert code == 2
    assert "~ update logpush_job extalerts-workers-to-datadog" in out
    assert 'filter.where.value:\n    - ["conversation-api", "auth-worker"]\n    + ["conversation-api"]' in out
    assert DD_KEY not in out


def test_a_rotated_key_shows_as_changed_without_being_shown(
    env: str, spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert push(env)[0] == 0
    monkeypatch.setenv("DD_API_KEY", DD_KEY + "-rotated")
    code, out, _ = plan(env, "-o", "json")
    assert code == 2
    (change,) = [c for c in json.loads(out)["changes"] if c["action"] == "update"]
    (field,) = change["fields"]
    assert field["path"] == "destination_conf"
    assert "(secret sha256:" in field["before"]
    assert field["before"] != field["after"]
    assert DD_KEY not in out


def test_prune_removes_only_managed_jobs(env: str, spec_dir: Path, emulator: CloudflareEmulator) -> None:
    foreign = emulator.add_job(
        {
            "name": "security-team-http-requests",
            "dataset": "workers_trace_events",
            "destination_conf": "datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=theirs",
        }
    )
    assert push(env)[0] == 0
    path = spec_dir / "logpush.yaml"
    path.write_text(path.read_text().split("    workers-to-splunk:")[0])
    code, out, err = push(env, "--prune", "--allow-mass-delete")
    assert code == 0, err
    assert "- delete logpush_job extalerts-workers-to-splunk" in out
    names = {job["name"] for job in emulator.jobs()}
    assert names == {"extalerts-workers-to-datadog", foreign["name"]}


def test_an_invalid_destination_is_refused_before_anything_is_written(
    env: str, spec_dir: Path, emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from extalerts.providers import logpush

    real = logpush.destination_conf

    def broken_for_splunk(job: Any) -> str:
        # The spec cannot express a malformed destination; break the Splunk one after it is built.
        return real(job).replace("/services/collector/raw", "/services/collector") if job.splunk else real(job)

    monkeypatch.setattr(logpush, "destination_conf", broken_for_splunk)
    code, _, err = push(env)
    assert code == 1
    assert "logpush_job extalerts-workers-to-splunk: destination rejected" in err
    assert emulator.jobs() == []


def test_missing_secrets_and_settings(env: str, spec_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLUNK_HEC_TOKEN")
    code, _, err = plan(env)
    assert code == 1
    assert err.strip() == "error: SPLUNK_HEC_TOKEN is not set; a Splunk Logpush job needs it in its destination"
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID")
    code, _, err = plan(env)
    assert "CLOUDFLARE_ACCOUNT_ID is not set" in err


@pytest.mark.parametrize("seed", range(10))
def test_pushes_converge_under_faults(seed: int, emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_API_KEY", DD_KEY)
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", HEC_TOKEN)
    spec = load_spec([MONITORS])
    emulator.set_faults(Faults(rate=0.3, seed=seed, slow_seconds=0.3, rate_limit_reset=0))
    provider = LogpushProvider(
        CloudflareApi(CloudflareSettings(ACCOUNT, CF_TOKEN, emulator.url, timeout=0.2), FAST, seed)
    )
    desired = provider.desired(spec)
    assert apply_plan(compute_plan(provider, desired, provider.fetch(), prune=True), provider).ok
    emulator.set_faults(Faults())
    assert not compute_plan(provider, desired, provider.fetch(), prune=True).has_changes
    assert sorted(job["name"] for job in emulator.jobs()) == [
        "extalerts-workers-to-datadog",
        "extalerts-workers-to-splunk",
    ]


def test_a_create_that_lands_after_its_repeat_leaves_one_job(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs for one name would ship every event twice: the late first create is settled."""
    monkeypatch.setenv("DD_API_KEY", DD_KEY)
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", HEC_TOKEN)
    provider = LogpushProvider(CloudflareApi(CloudflareSettings(ACCOUNT, CF_TOKEN, emulator.url, timeout=0.1), FAST))
    desired = [r for r in provider.desired(load_spec([MONITORS])) if r.key == "extalerts-workers-to-datadog"]
    plan_ = compute_plan(provider, desired, provider.fetch(), prune=False)
    only = "POST /accounts/{account}/logpush/jobs"
    emulator.set_faults(Faults(rate=1.0, kinds=(LATE,), slow_seconds=0.15, only=only, limit=1))
    assert apply_plan(plan_, provider).ok
    assert emulator.faults_injected[LATE] == 1
    jobs_path = f"/client/v4/accounts/{ACCOUNT}/logpush/jobs"
    deadline = time.monotonic() + 5
    while len([r for r in emulator.requests if r[:2] == ("POST", jobs_path)]) < 2:
        assert time.monotonic() < deadline, "the late create never landed"
        time.sleep(0.01)  # the late one and its repeat: both land
    assert [job["name"] for job in emulator.jobs()] == ["extalerts-workers-to-datadog"]


def test_doctor(env: str, spec_dir: Path, emulator: CloudflareEmulator) -> None:
    code, out, _ = cli_run("doctor", "--api-url", env)
    assert code == 1
    assert "PROBLEM  Logpush job extalerts-workers-to-datadog does not exist" in out
    assert push(env)[0] == 0
    for job in emulator.jobs():
        emulator.set_job_complete(job["id"])
    code, out, _ = cli_run("doctor", "--api-url", env)
    assert code == 0, out
    assert out.rstrip().endswith("0 problems")
    datadog = next(j for j in emulator.jobs() if j["name"] == "extalerts-workers-to-datadog")
    emulator.set_job_error(datadog["id"], "error uploading: 403 Forbidden")
    emulator.add_script("auth-worker", logpush=False)
    code, out, _ = cli_run("doctor", "--api-url", env, "-o", "json")
    assert code == 1
    problems = {f["subject"]: f["message"] for f in json.loads(out) if not f["ok"]}
    assert problems == {
        "Logpush job extalerts-workers-to-datadog": problems["Logpush job extalerts-workers-to-datadog"],
        "Worker auth-worker": "has Logpush off: its events never reach a job",
    }
    assert "403 Forbidden" in problems["Logpush job extalerts-workers-to-datadog"]


def test_secrets_never_appear_in_anything_produced(
    env: str, spec_dir: Path, emulator: CloudflareEmulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    produced = []
    for args in (("plan",), ("plan", "-o", "json"), ("push", "--yes"), ("push", "--yes", "-o", "json")):
        _, out, err = cli_run(args[0], "monitors", "-p", "logpush", "--api-url", env, *args[1:])
        produced += [out, err]
    path = spec_dir / "logpush.yaml"
    path.write_text(path.read_text().replace("max_upload_interval: 30s", "max_upload_interval: 60s"))
    for args in (("plan",), ("push", "--yes", "-o", "json")):
        produced += list(cli_run(args[0], "monitors", "-p", "logpush", "--api-url", env, *args[1:])[1:])
    produced += list(cli_run("doctor", "--api-url", env)[1:])
    produced += [mask_destination(job["destination_conf"]) for job in emulator.jobs()]
    produced += [repr(CloudflareSettings(ACCOUNT, CF_TOKEN))]
    produced += [r.getMessage() for r in caplog.records]
    produced += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    everything = "\n".join(produced)
    for secret in (CF_TOKEN, DD_KEY, HEC_TOKEN):
        assert secret not in everything
    assert "applied:" in everything
