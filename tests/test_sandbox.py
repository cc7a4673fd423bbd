"""The sandbox's parts: the logs intake and HEC as documented, monitor evaluation of what is pushed
(as edited, whoever edited it), `send`, and `sandbox -- COMMAND`."""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

import pytest
import urllib3

from extalerts.clock import Clock
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.errors import ConfigError
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.sandbox import Sandbox
from extalerts.spec import load_spec
from tests.conftest import MONITORS, cli_run, push_all

HTTP = urllib3.PoolManager()
API_KEY = {"DD-API-KEY": "k" * 32}


def post(url: str, body: bytes, **headers: str) -> tuple[int, object]:
    response = HTTP.request("POST", url, body=body, headers={"Content-Type": "application/json", **headers})
    return response.status, json.loads(response.data or b"null")


# --------------------------------------------------------------------------------------------- intake


def test_logs_intake_takes_the_api_key_alone_and_answers_202() -> None:
    with DatadogEmulator("k" * 32, "a" * 40) as emulator:
        item = {"message": json.dumps({"EventTimestampMs": 5, "Outcome": "ok"}), "ddsource": "cloudflare"}
        status, body = post(f"{emulator.url}/api/v2/logs?ddtags=env:prod", json.dumps([item]).encode(), **API_KEY)
        assert (status, body) == (202, {})
        assert emulator.logs[0]["attributes"] == {"EventTimestampMs": 5, "Outcome": "ok"}
        assert emulator.logs[0]["ddtags"] == "env:prod"
        zipped = gzip.compress(json.dumps(item).encode())
        status, _ = post(f"{emulator.url}/api/v2/logs", zipped, **API_KEY, **{"Content-Encoding": "gzip"})
        assert status == 202
        assert len(emulator.logs) == 2


def test_logs_intake_errors_are_in_the_v2_form() -> None:
    with DatadogEmulator("k" * 32, "a" * 40) as emulator:
        status, body = post(f"{emulator.url}/api/v2/logs", b"[]", **{"DD-API-KEY": "wrong"})
        assert status == 403
        assert body == {"errors": [{"status": "403", "title": "Forbidden", "detail": "Forbidden"}]}
        too_many = json.dumps([{"message": "x"}] * 1001).encode()
        status, body = post(f"{emulator.url}/api/v2/logs", too_many, **API_KEY)
        assert status == 413
        assert body["errors"][0]["title"] == "Payload Too Large"  # type: ignore[index]
        status, _ = post(f"{emulator.url}/api/v2/logs", b"[1, 2]", **API_KEY)
        assert status == 400
        assert emulator.logs == []


# --------------------------------------------------------------------------------------------- evaluation


def test_a_monitor_edited_by_hand_is_evaluated_as_edited() -> None:
    spec = load_spec([MONITORS])
    with Sandbox(spec, speed=600) as sandbox:
        env = sandbox.env()
        api = DatadogApi(DatadogSettings.from_env(env=env))
        push_all(DatadogProvider(api), MONITORS)
        monitor = next(m for m in sandbox.datadog.monitors() if "extalerts-rule:worker-exception" in m["tags"])
        from datadog_api_client.v1.api.monitors_api import MonitorsApi
        from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest

        # Nobody renders this: alert on every request, whatever its outcome.
        query = 'logs("source:cloudflare").index("*").rollup("count").by("@ScriptName").last("1m") > 0'
        options = {**monitor["options"], "thresholds": {"critical": 0}, "evaluation_delay": 0}
        api.call(
            "edit",
            lambda c: MonitorsApi(c).update_monitor(monitor["id"], MonitorUpdateRequest(query=query, options=options)),
        )
        healthy = {"EventTimestampMs": int(sandbox.clock.now() * 1000), "Outcome": "ok", "ScriptName": "auth-worker"}
        item = {"message": json.dumps(healthy), "ddsource": "cloudflare", "service": "conversation-api"}
        status, _ = post(
            f"{sandbox.datadog.url}/api/v2/logs", json.dumps([item]).encode(), **{"DD-API-KEY": env["DD_API_KEY"]}
        )
        assert status == 202
        deadline = time.monotonic() + 10
        fired: list[dict[str, object]] = []
        while time.monotonic() < deadline and not fired:
            fired = [h for h in sandbox.alerts() if h["rule"] == "worker-exception" and h["state"] == "Alert"]
            time.sleep(0.05)
        assert fired, sandbox.alerts()
        assert fired[0]["group"] == "@ScriptName:auth-worker"


def test_pushed_monitors_fire_on_events_sent_through_the_intake(tmp_path: Path) -> None:
    spec = load_spec([MONITORS])
    incident = tmp_path / "incident.ndjson"
    code, _, err = cli_run(
        "synth", "--out", str(incident), "--minutes", "20", "--rpm", "120", "--scenario", "exception-storm@8m+4m"
    )
    assert code == 0, err
    with Sandbox(spec, speed=600) as sandbox:
        env = sandbox.env()
        push_all(DatadogProvider(DatadogApi(DatadogSettings.from_env(env=env))), MONITORS)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            code, out, err = cli_run("send", str(incident), "--provider", "datadog", "--spec", str(MONITORS), "--yes")
        assert code == 0, err
        assert "through the datadog intake, as job workers-to-datadog" in out
        # Shaped like the Logpush job: its service, host and tags.
        log = sandbox.datadog.logs[0]
        assert (log["ddsource"], log["service"], log["hostname"]) == (
            "cloudflare",
            "workers-trace-events",
            "cloudflare-workers",
        )
        assert log["ddtags"] == "env:prod,team:platform"
        deadline = time.monotonic() + 10
        fired: list[dict[str, object]] = []
        while time.monotonic() < deadline and not fired:
            fired = [h for h in sandbox.alerts() if h["rule"] == "worker-exception" and h["state"] == "Alert"]
            time.sleep(0.1)
        assert fired, sandbox.alerts()
        monitor = next(m for m in sandbox.datadog.monitors() if "extalerts-rule:worker-exception" in m["tags"])
        assert monitor["overall_state"] in ("Alert", "OK")
        notified = [m for m in sandbox.sink.received() if m["path"].startswith("/datadog/")]
        assert any(m["body"]["alert_id"] == monitor["id"] for m in notified)  # type: ignore[index]
        handles = {m["body"]["handle"] for m in notified if m["body"]["alert_id"] == monitor["id"]}  # type: ignore[index]
        assert "pagerduty-conversation-api-oncall" in handles


# --------------------------------------------------------------------------------------------- CLI and clock


def test_sandbox_runs_a_command_with_its_environment_and_passes_its_status_on() -> None:
    check = (
        "import os, sys; "
        "sys.exit(0 if os.environ['EXTALERTS_TIME_SCALE'] == '600' and os.environ['SPLUNK_HEC_URL'] else 3)"
    )
    code, out, _ = cli_run("sandbox", "--spec", str(MONITORS), "--", sys.executable, "-c", check)
    assert code == 0
    assert "sandbox: 0 alerts from pushed monitors" in out
    code, _, _ = cli_run("sandbox", "--spec", str(MONITORS), "--", sys.executable, "-c", "raise SystemExit(7)")
    assert code == 7


def test_clock_from_the_environment() -> None:
    assert Clock.from_env({}).scale == 1.0
    clock = Clock.from_env({"EXTALERTS_TIME_SCALE": "600", "EXTALERTS_TIME_ORIGIN": str(time.time() - 1)})
    assert clock.now() - time.time() == pytest.approx(599, abs=5)
    with pytest.raises(ConfigError, match="must be numbers"):
        Clock.from_env({"EXTALERTS_TIME_SCALE": "fast"})
    with pytest.raises(ConfigError, match="must be positive"):
        Clock.from_env({"EXTALERTS_TIME_SCALE": "-1"})


def test_send_needs_the_intake_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text(json.dumps({"EventTimestampMs": 1, "ScriptName": "conversation-api"}) + "\n")
    monkeypatch.delenv("DD_API_KEY", raising=False)
    code, _, err = cli_run("send", str(events), "--provider", "datadog", "--spec", str(MONITORS))
    assert code == 1
    assert "DD_API_KEY is not set" in err
    monkeypatch.delenv("SPLUNK_HEC_URL", raising=False)
    code, _, err = cli_run("send", str(events), "--provider", "splunk", "--spec", str(MONITORS))
    assert code == 1
    assert "SPLUNK_HEC_URL and SPLUNK_HEC_TOKEN must be set" in err
