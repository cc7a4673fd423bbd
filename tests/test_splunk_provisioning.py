"""A Splunk that can page: PagerDuty keys from the environment, a fresh splunkd without the app, no
window of wider permissions when a search is created, and `doctor --provider splunk`."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from extalerts.emulators.base import Faults
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.providers.splunk import PAGERDUTY_KEY_PARAM
from extalerts.retry import RetryPolicy
from tests.conftest import MONITORS, cli_run

TOKEN = "splunk-token-prov-81c2"
HEC_TOKEN = "0d6f1e2a-7b3c-4d5e-8f90-a1b2c3d4e5f6"
APP = "extalerts_workers"
PD_VARIABLE, PD_KEY = "PD_KEY_CONVERSATION_API", "pd-key-e1b7c94d2a6f08b3"
FAST = RetryPolicy(time_scale=0.001, max_attempts=4)
ALERTS = 23


def start(**options: object) -> SplunkEmulator:
    return SplunkEmulator(token=TOKEN, hec_token=HEC_TOKEN, **options).start()  # type: ignore[arg-type]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[SplunkEmulator]:
    """A splunkd as installed: Splunk's own apps and alert actions only."""
    emulator = start()
    monkeypatch.setenv("SPLUNK_URL", emulator.url)
    monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
    monkeypatch.setenv(PD_VARIABLE, PD_KEY)
    monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: FAST)
    yield emulator
    emulator.stop()


@pytest.fixture
def ready(fresh: SplunkEmulator) -> SplunkEmulator:
    """A splunkd set up for the spec: the app installed, the PagerDuty and Slack apps' actions too."""
    fresh.install_app(APP)
    fresh.add_alert_action("pagerduty")
    fresh.add_alert_action("slack")
    return fresh


def push(*extra: str) -> tuple[int, str, str]:
    return cli_run("push", "monitors", "--provider", "splunk", "--yes", *extra)


def plan(*extra: str) -> tuple[int, str, str]:
    return cli_run("plan", "monitors", "--provider", "splunk", *extra)


Perms = tuple[tuple[str, ...], tuple[str, ...]] | None


def ours(emulator: SplunkEmulator) -> dict[str, tuple[str, str, Perms]]:
    """Our saved searches: name → (owner, sharing, (read, write) or None when private)."""
    with emulator._lock:
        return {
            name: (s.owner, s.sharing, None if s.perms is None else (tuple(s.perms["read"]), tuple(s.perms["write"])))
            for (app, name), s in emulator._searches.items()
            if app == APP and name.startswith("extalerts - ")
        }


def drop_key_variable(spec_dir: Path) -> None:
    path = spec_dir / "workers.yaml"
    path.write_text(path.read_text().replace("      integration_key_env: PD_KEY_CONVERSATION_API\n", ""))


# ----------------------------------------------------------------------------------- PagerDuty keys


def test_validate_names_each_pagerduty_target_splunk_cannot_page_without_failing(spec_dir: Path) -> None:
    drop_key_variable(spec_dir)
    code, out, err = cli_run("validate", "monitors")
    assert code == 0, err  # a spec used only with Datadog needs no key
    assert "ok: 13 rules" in out
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert re.match(
        r"warning: monitors/workers\.yaml:\d+:\d+: target `oncall-page`: no pagerduty\.integration_key_env", warning
    )
    assert "push --provider splunk refuses" in warning
    assert "integration_key_env: PD_KEY_ONCALL_PAGE" in warning
    code, out, _ = cli_run("validate", "monitors", "-o", "json")
    assert code == 0
    (issue,) = json.loads(out)["warnings"]
    assert issue["path"].endswith("workers.yaml")
    assert issue["line"] > 0
    assert cli_run("validate", str(MONITORS))[2] == ""  # the bundled spec names its variable


def test_push_refuses_a_target_without_a_variable_and_writes_nothing(ready: SplunkEmulator, spec_dir: Path) -> None:
    drop_key_variable(spec_dir)
    code, _, err = push()
    assert code == 1
    assert re.search(r"monitors/workers\.yaml:\d+:\d+: target `oncall-page`: no pagerduty\.integration_key_env", err)
    assert ours(ready) == {}


def test_push_refuses_when_the_variable_is_unset(
    ready: SplunkEmulator, spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PD_VARIABLE)
    code, _, err = push()
    assert code == 1
    (line,) = err.splitlines()
    assert re.fullmatch(
        r"error: PD_KEY_CONVERSATION_API is not set; target `oncall-page` \(monitors/workers\.yaml:\d+:\d+\) "
        r"pages PagerDuty from Splunk with the integration key it holds: export it",
        line,
    )
    assert ours(ready) == {}


def test_the_key_is_pushed_shown_only_as_a_hash_and_a_rotation_converges(
    ready: SplunkEmulator, spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert push()[0] == 0
    paging = [name for _, name, s in ready.saved_searches() if s.get("action.pagerduty") == "1"]
    assert paging
    assert {ready.conf_stanza(APP, name)[PAGERDUTY_KEY_PARAM] for name in paging} == {PD_KEY}
    assert plan()[0] == 0
    monkeypatch.setenv(PD_VARIABLE, "pd-key-rotated-77aa01")
    code, out, _ = plan("-o", "json")
    assert code == 2
    changed = [c for c in json.loads(out)["changes"] if c["action"] == "update"]
    assert sorted(c["key"] for c in changed) == sorted(paging)
    for change in changed:
        (field,) = change["fields"]
        assert field["path"] == f"params.{PAGERDUTY_KEY_PARAM}"
        assert field["before"].startswith("(secret sha256:")
        assert field["after"].startswith("(secret sha256:")
        assert field["before"] != field["after"]
    assert PD_KEY not in out
    assert "rotated" not in out
    assert push()[0] == 0
    assert ready.conf_stanza(APP, paging[0])[PAGERDUTY_KEY_PARAM] == "pd-key-rotated-77aa01"
    assert plan()[0] == 0


def test_a_key_splunk_does_not_echo_is_no_perpetual_change(ready: SplunkEmulator, spec_dir: Path) -> None:
    assert push()[0] == 0
    with ready._lock:
        for search in ready._searches.values():
            if PAGERDUTY_KEY_PARAM in search.settings:
                search.settings[PAGERDUTY_KEY_PARAM] = "********"
    code, out, _ = plan()
    assert code == 0, out


def test_the_spec_cannot_hold_a_key(spec_dir: Path) -> None:
    path = spec_dir / "workers.yaml"
    text = path.read_text()
    path.write_text(
        text.replace(
            "      integration_key_env: PD_KEY_CONVERSATION_API\n",
            '      splunk_integration_url: "https://events.pagerduty.com/integration/0123456789abcdef0123456789abcdef/enqueue"\n',
        )
    )
    code, _, err = cli_run("validate", "monitors")
    assert code == 1
    assert "splunk_integration_url puts the integration key in the spec" in err


def test_an_override_cannot_hold_a_key(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        """version: 1
targets:
  page: {pagerduty: {service: svc, integration_key_env: PD_KEY_SVC}}
rules:
  - id: errors
    title: Errors
    severity: high
    signal: {kind: count}
    window: 5m
    thresholds: {critical: 1}
    notify: [page]
    overrides:
      splunk:
        settings: {action.pagerduty.param.integration_key_override: "0123456789abcdef0123456789abcdef"}
"""
    )
    code, _, err = cli_run("validate", "spec.yaml")
    assert code == 1
    assert "integration_key_override holds a secret; name the variable holding it" in err


def test_no_key_or_token_in_any_file_plan_or_log(
    ready: SplunkEmulator, spec_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    produced: list[str] = []
    for args in (
        ("render", "--provider", "splunk", "--out", "out"),
        ("package", "--provider", "splunk", "--out", "app.tgz"),
        ("plan", "-p", "splunk"),
        ("push", "-p", "splunk", "--yes", "-o", "json"),
        ("plan", "-p", "splunk", "-o", "json"),
        ("doctor", "-p", "splunk"),
        ("doctor", "-p", "splunk", "-o", "json"),
    ):
        _, out, err = cli_run(args[0], "monitors", *args[1:])
        produced += [out, err]
    ready.set_faults(Faults(rate=1.0, kinds=("500",)))
    produced += list(push("--prune")[1:])
    ready.set_faults(Faults())
    produced += [r.getMessage() for r in caplog.records]
    produced += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    import tarfile

    with tarfile.open(tmp_path / "app.tgz") as archive:
        produced += [archive.extractfile(m).read().decode() for m in archive.getmembers() if m.isfile()]  # type: ignore[union-attr]
    everything = "\n".join(produced)
    assert ready.conf_stanza(APP, "extalerts - worker-exception").get(PAGERDUTY_KEY_PARAM) == PD_KEY
    for secret in (PD_KEY, TOKEN, HEC_TOKEN):
        assert secret not in everything


# ----------------------------------------------------------------------------------- a fresh Splunk


def raw(emulator: SplunkEmulator, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(emulator.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_emulator_answers_an_unknown_app_as_splunkd_and_creates_apps(fresh: SplunkEmulator) -> None:
    status, body = raw(fresh, "POST", f"/servicesNS/nobody/{APP}/saved/searches", b"name=x&search=index%3Dmain")
    assert status == 404
    assert b'<msg type="ERROR">Application does not exist: extalerts_workers</msg>' in body
    assert raw(fresh, "GET", f"/servicesNS/nobody/system/apps/local/{APP}")[0] == 404
    assert raw(fresh, "GET", "/servicesNS/nobody/search/saved/searches")[0] == 200  # Splunk's own app
    assert raw(fresh, "POST", "/services/apps/local", f"name={APP}".encode())[0] == 201
    assert raw(fresh, "POST", "/services/apps/local", f"name={APP}".encode())[0] == 409
    assert raw(fresh, "GET", f"/servicesNS/nobody/system/apps/local/{APP}?output_mode=json")[0] == 200
    assert raw(fresh, "POST", f"/servicesNS/nobody/{APP}/saved/searches", b"name=x&search=index%3Dmain")[0] == 201


def test_push_to_a_splunk_without_the_app_stops_with_both_fixes(fresh: SplunkEmulator, spec_dir: Path) -> None:
    code, _, err = push()
    assert code == 1
    (line,) = err.splitlines()
    assert line == (
        f"error: the Splunk app {APP} does not exist on {fresh.url}: install the packaged app "
        "(`extalerts package --provider splunk`, then a deployment server, or ACS on Splunk Cloud), "
        "or push with --create-app to create it through REST (apps/local, Splunk Enterprise)"
    )
    assert APP not in fresh.apps
    assert fresh.calls["POST /servicesNS/{owner}/{app}/saved/searches"] == 0
    code, out, err = push("--create-app")
    assert code == 0, err
    assert f"applied: {ALERTS} created" in out
    assert APP in fresh.apps
    assert plan()[0] == 0
    assert push("--create-app")[0] == 0  # nothing to do, nothing created twice


# ----------------------------------------------------------------------------------- permissions


ACL_ROUTE = "POST /servicesNS/{owner}/{app}/saved/searches/{name}/acl"


def test_a_failed_acl_call_leaves_the_search_private_and_the_next_push_shares_it(
    ready: SplunkEmulator, spec_dir: Path
) -> None:
    ready.set_faults(Faults(rate=1.0, kinds=("500",), only=ACL_ROUTE))
    code, _, err = push()
    assert code == 1
    assert "set saved search permissions" in err
    created = ours(ready)
    assert len(created) == ALERTS
    # Private to the pushing user: readable and writable by nobody else, never app-wide.
    assert set(created.values()) == {("admin", "user", None)}
    creates = [path for method, path, _, status in ready.requests if method == "POST" and path.endswith("/searches/")]
    assert creates
    assert all(path.startswith(f"/servicesNS/admin/{APP}/") for path in creates)
    ready.set_faults(Faults())
    assert plan()[0] == 2  # not listed as ours while private
    code, _, err = push()
    assert code == 0, err
    assert set(ours(ready).values()) == {("nobody", "app", (("*",), ("admin",)))}
    assert plan()[0] == 0


@pytest.mark.parametrize("seed", range(6))
def test_under_heavy_faults_no_search_is_ever_shared_wider(ready: SplunkEmulator, spec_dir: Path, seed: int) -> None:
    ready.set_faults(Faults(rate=0.7, seed=seed, kinds=("500", "429", "lost")))
    intended = ("nobody", "app", (("*",), ("admin",)))
    for _ in range(8):
        push()
        for state in ours(ready).values():
            assert state in (intended, ("admin", "user", None)), state
    ready.set_faults(Faults())
    code, _, err = push()
    assert code == 0, err
    assert set(ours(ready).values()) == {intended}
    assert len(ours(ready)) == ALERTS


# ----------------------------------------------------------------------------------- doctor


def send(emulator: SplunkEmulator, lines: int, sourcetype: str = "cloudflare:workers") -> None:
    body = "\n".join(json.dumps({"ScriptName": "conversation-api", "n": n}) for n in range(lines)).encode()
    request = urllib.request.Request(
        f"{emulator.url}/services/collector/raw?channel={uuid.uuid4()}&sourcetype={sourcetype}",
        data=body,
        method="POST",
        headers={"Authorization": f"Splunk {HEC_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def doctor(*extra: str) -> tuple[int, str, str]:
    return cli_run("doctor", "monitors", "--provider", "splunk", *extra)


def test_doctor_is_clean_on_a_splunk_set_up_for_the_spec(monkeypatch: pytest.MonkeyPatch, spec_dir: Path) -> None:
    emulator = start(apps=[APP], alert_actions=["pagerduty", "slack"], hec_default_index="cloudflare")
    monkeypatch.setenv("SPLUNK_URL", emulator.url)
    monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
    monkeypatch.setenv("SPLUNK_HEC_TOKEN", HEC_TOKEN)
    try:
        send(emulator, 7)
        code, out, err = doctor()
        assert code == 0, out + err
        assert "ok       Splunk alert action pagerduty is installed and enabled" in out
        assert "ok       Splunk alert action email is installed and enabled" in out
        assert "ok       Splunk index=cloudflare sourcetype=cloudflare:workers 7 event(s) in the last 15m" in out
        assert "ok       Splunk HEC token http://extalerts-logpush sends events to index cloudflare by default" in out
        assert "0 problems" in out
        assert HEC_TOKEN not in out
    finally:
        emulator.stop()


def test_doctor_names_a_missing_action_a_disabled_one_and_the_wrong_index(
    monkeypatch: pytest.MonkeyPatch, spec_dir: Path
) -> None:
    # A token left on its default index: events land in main, the searches read cloudflare.
    emulator = start(alert_actions=["slack"], hec_default_index="main")
    emulator.add_alert_action("slack", disabled=True)
    monkeypatch.setenv("SPLUNK_URL", emulator.url)
    monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
    try:
        send(emulator, 3)
        code, out, _ = doctor("-o", "json")
        assert code == 1
        problems = {f["subject"]: f for f in json.loads(out) if not f["ok"]}
        assert set(problems) == {
            f"Splunk app {APP}",
            "Splunk alert action pagerduty",
            "Splunk alert action slack",
            "Splunk index=cloudflare sourcetype=cloudflare:workers",
            "Splunk HEC token http://extalerts-logpush",
        }
        assert problems["Splunk alert action pagerduty"]["message"].startswith("is not installed")
        assert "PagerDuty App for Splunk" in problems["Splunk alert action pagerduty"]["fix"]
        assert problems["Splunk alert action slack"]["message"].startswith("is disabled")
        assert problems["Splunk HEC token http://extalerts-logpush"]["message"] == (
            "sends events to index main by default, but the searches read cloudflare"
        )
        assert (
            "no events in the last 15m" in problems["Splunk index=cloudflare sourcetype=cloudflare:workers"]["message"]
        )
        assert HEC_TOKEN not in out
    finally:
        emulator.stop()


def test_doctor_counts_only_the_lookback(monkeypatch: pytest.MonkeyPatch, spec_dir: Path) -> None:
    now = [1_800_000_000.0]
    emulator = start(
        apps=[APP], alert_actions=["pagerduty", "slack"], hec_default_index="cloudflare", clock=lambda: now[0]
    )
    monkeypatch.setenv("SPLUNK_URL", emulator.url)
    monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
    try:
        send(emulator, 4)
        now[0] += 20 * 60
        code, out, _ = doctor()
        assert code == 1
        assert "no events in the last 15m" in out
        code, out, _ = doctor("--lookback", "30")
        assert code == 0, out
        assert "4 event(s) in the last 30m" in out
    finally:
        emulator.stop()


def test_a_concurrent_push_reads_the_current_user_once(ready: SplunkEmulator, spec_dir: Path) -> None:
    """Creates run on several threads; each needs the user, and one answer serves them all."""
    code, _, err = push("--concurrency", "8")
    assert code == 0, err
    assert ready.calls["GET /servicesNS/{owner}/{app}/authentication/current-context"] == 1, ready.calls
