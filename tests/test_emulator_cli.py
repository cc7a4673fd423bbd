"""`extalerts emulator …` and `extalerts sandbox` as a user runs them: what they export, the env file
they leave only while running, and the PagerDuty services a Cloudflare account has connected."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import urllib3

from extalerts.emulators.env_file import env_file, shell_exports
from extalerts.providers.cloudflare import NotificationsProvider
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.sandbox import Sandbox
from extalerts.spec import load_spec
from tests.conftest import MONITORS, push_all

REPO = MONITORS.parent
HTTP = urllib3.PoolManager()
#: Variables an emulator would take from the environment instead of making them up.
CREDENTIALS = ("DD_API_KEY", "DD_APP_KEY", "SPLUNK_TOKEN", "SPLUNK_HEC_TOKEN", "CLOUDFLARE_API_TOKEN")


def read_exports(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert all(line.startswith("export ") for line in lines), lines
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment without credentials, so the emulators make theirs up."""
    return {k: v for k, v in os.environ.items() if k not in CREDENTIALS and k != "CLOUDFLARE_ACCOUNT_ID"}


@contextmanager
def start(
    tmp_path: Path, env: dict[str, str], *args: str, cwd: Path = REPO
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    env_path = tmp_path / "emulator.env"
    command = [sys.executable, "-m", "extalerts", *args, "--port", "0", "--env-file", str(env_path)]
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(env_path, process)
        yield process, env_path
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=30)


# --------------------------------------------------------------------------------------------- env file


def test_env_file_is_owner_only_and_exists_only_inside_the_block(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.env"
    with env_file(path, {"B": "2", "A": "it's"}):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == "export A='it'\"'\"'s'\nexport B=2\n"
    assert not path.exists()
    with pytest.raises(RuntimeError), env_file(path, {"A": "1"}):
        raise RuntimeError
    assert not path.exists()
    assert list(path.parent.iterdir()) == []  # no temporary left either


def test_env_file_replaced_by_another_run_is_left_to_that_run(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text("stale")
    path.chmod(0o644)
    with env_file(path, {"A": "1"}):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a file already there is replaced, not reused
        other = tmp_path / "other"  # another run renames its own file into place
        other.write_text("the other run's")
        other.replace(path)
    assert path.read_text() == "the other run's"


def test_shell_exports_are_sorted_lines() -> None:
    assert shell_exports({"Z": "http://127.0.0.1:1/x", "A": "a b"}) == "export A='a b'\nexport Z=http://127.0.0.1:1/x"


# --------------------------------------------------------------------------------------------- emulators


def test_splunk_emulator_exports_the_hec_url_and_token_it_accepts(tmp_path: Path, clean_env: dict[str, str]) -> None:
    with start(tmp_path, clean_env, "emulator", "splunk") as (process, env_path):
        exports = read_exports(env_path)
        assert set(exports) == {"SPLUNK_URL", "SPLUNK_TOKEN", "SPLUNK_HEC_URL", "SPLUNK_HEC_TOKEN"}
        assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
        body = b'{"Outcome": "ok"}\n'
        url = f"{exports['SPLUNK_HEC_URL']}/services/collector/raw?channel=0f8b2c9e-5d6a-4c1e-9b7a-2f4e6d8c1a3b"
        accepted = HTTP.request(
            "POST", url, body=body, headers={"Authorization": f"Splunk {exports['SPLUNK_HEC_TOKEN']}"}
        )
        assert accepted.status == 200, accepted.data
        refused = HTTP.request("POST", url, body=body, headers={"Authorization": "Splunk nope"})
        assert refused.status == 403
    assert process.returncode == 0  # SIGTERM stops it as Ctrl-C does
    assert not env_path.exists()


def test_an_emulator_prints_no_credential_taken_from_the_environment(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "DD_API_KEY": "dd-api-key-of-the-user", "DD_APP_KEY": "dd-app-key-of-the-user"}
    with start(tmp_path, env, "emulator", "datadog") as (process, env_path):
        exports = read_exports(env_path)
        assert set(exports) == {"EXTALERTS_DATADOG_API_URL", "EXTALERTS_DATADOG_INTAKE_URL"}
        written = env_path.read_text()
        process.terminate()
        out, err = process.communicate(timeout=30)
        assert "of-the-user" not in out + err + written
        assert out.strip() == shell_exports(exports)
    assert not env_path.exists()


def list_pagerduty(exports: dict[str, str]) -> list[str]:
    url = f"{exports['EXTALERTS_CLOUDFLARE_API_URL']}/accounts/{exports['CLOUDFLARE_ACCOUNT_ID']}"
    response = HTTP.request(
        "GET",
        f"{url}/alerting/v3/destinations/pagerduty",
        headers={"Authorization": f"Bearer {exports['CLOUDFLARE_API_TOKEN']}"},
    )
    body = json.loads(response.data)
    assert response.status == 200, body
    assert body["success"], body
    assert all(len(service["id"]) == 32 for service in body["result"])
    return [service["name"] for service in body["result"]]


def test_cloudflare_emulator_connects_the_spec_s_pagerduty_services(tmp_path: Path, clean_env: dict[str, str]) -> None:
    with start(tmp_path, clean_env, "emulator", "cloudflare") as (_, env_path):
        assert list_pagerduty(read_exports(env_path)) == ["conversation-api-oncall"]
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "targets.yaml").write_text(
        "version: 1\ntargets:\n  a: {pagerduty: {service: svc-b}}\n  b: {pagerduty: {service: svc-a}}\n"
    )
    with start(tmp_path, clean_env, "emulator", "cloudflare", "--spec", str(spec)) as (_, env_path):
        assert list_pagerduty(read_exports(env_path)) == ["svc-a", "svc-b"]
    named = ("--pagerduty-service", "other", "--pagerduty-service", "another")
    with start(tmp_path, clean_env, "emulator", "cloudflare", *named) as (_, env_path):
        assert sorted(list_pagerduty(read_exports(env_path))) == ["another", "other"]
    # Away from a spec folder (and given none), nothing is connected.
    with start(tmp_path, clean_env, "emulator", "cloudflare", cwd=tmp_path) as (_, env_path):
        assert list_pagerduty(read_exports(env_path)) == []


def test_the_sandbox_connects_the_spec_s_pagerduty_services_so_cloudflare_pushes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Sandbox(load_spec([MONITORS])) as sandbox:
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        assert sorted(sandbox.cloudflare.state.pagerduty.values()) == ["conversation-api-oncall"]
        provider = NotificationsProvider(CloudflareApi(CloudflareSettings.from_env()))
        assert push_all(provider, MONITORS) == [("create", "logs-stopped")]
        (policy,) = sandbox.cloudflare.policies()
        assert [m["id"] for m in policy["mechanisms"]["pagerduty"]] == list(sandbox.cloudflare.state.pagerduty)


# --------------------------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(("command", "status"), [("true", 0), ("false", 1)])
def test_sandbox_env_file_is_gone_when_its_command_ends(tmp_path: Path, command: str, status: int) -> None:
    env_path = tmp_path / ".sandbox.env"
    check = f'test "$(stat -c %a {env_path})" = 600 && . {env_path} && test -n "$DD_API_KEY" && {command}'
    run = [sys.executable, "-m", "extalerts", "sandbox", "--env-file", str(env_path), "--", "sh", "-c", check]
    result = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == status, result.stderr
    assert not env_path.exists()


def test_sandbox_env_file_is_gone_after_sigterm(tmp_path: Path) -> None:
    env_path = tmp_path / ".sandbox.env"
    run = [sys.executable, "-m", "extalerts", "sandbox", "--env-file", str(env_path)]
    process = subprocess.Popen(run, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(env_path, process)
        assert "DD_API_KEY" in read_exports(env_path)
        process.terminate()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err  # stopping it is how it is meant to end
    assert not env_path.exists()
