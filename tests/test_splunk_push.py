"""plan and push against the local Splunk emulator, through the real splunk-sdk over HTTP; package."""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extalerts.emulators.base import Faults
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.errors import ConfigError
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.splunk import PAGERDUTY_KEY_PARAM, SplunkApi, SplunkProvider, SplunkSettings
from extalerts.render import render
from extalerts.render.conf import parse_conf
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import MONITORS, cli_run

TOKEN = "splunk-token-5b1e77a0c9"
PASSWORD = "splunk-password-0f3c"
APP = "extalerts_workers"
FAST = RetryPolicy(time_scale=0.001, max_attempts=8)
ALERTS = 23  # 13 rules, 10 of them with a warning level
PD_VARIABLE, PD_KEY = "PD_KEY_CONVERSATION_API", "pd-integration-key-3f9a0c2e7b"


@pytest.fixture
def emulator() -> Iterator[SplunkEmulator]:
    with SplunkEmulator(token=TOKEN, username="admin", password=PASSWORD, hec_token="hec", apps=[APP]) as running:
        yield running


@pytest.fixture(autouse=True)
def pagerduty_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The bundled spec's PagerDuty target reads its integration key from here."""
    monkeypatch.setenv(PD_VARIABLE, PD_KEY)
    return PD_KEY


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, emulator: SplunkEmulator) -> SplunkEmulator:
    monkeypatch.setenv("SPLUNK_URL", emulator.url)
    monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
    monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: FAST)
    return emulator


def push(*extra: str) -> tuple[int, str, str]:
    return cli_run("push", "monitors", "--provider", "splunk", "--yes", *extra)


def plan(*extra: str) -> tuple[int, str, str]:
    return cli_run("plan", "monitors", "--provider", "splunk", *extra)


def provider_for(emulator: SplunkEmulator, timeout: float = 5.0, seed: int = 0) -> SplunkProvider:
    settings = SplunkSettings("http", "127.0.0.1", emulator.port, token=TOKEN, timeout=timeout)
    return SplunkProvider(SplunkApi(settings, FAST, seed=seed))


def ours(emulator: SplunkEmulator) -> list[str]:
    return sorted(name for app, name in emulator._searches if app == APP and name.startswith("extalerts - "))


def test_push_then_plan_shows_no_change(env: SplunkEmulator, spec_dir: Path) -> None:
    code, out, err = plan()
    assert code == 2, err
    assert f"{ALERTS} to create" in out
    code, out, err = push()
    assert code == 0, err
    assert f"applied: {ALERTS} created, 0 updated, 0 deleted; failed: 0" in out
    code, out, _ = plan()
    assert code == 0, out
    assert f"0 to create, 0 to update, 0 to delete, {ALERTS} unchanged" in out
    assert len(ours(env)) == ALERTS
    # What landed is exactly the rendered app, key by key, plus the integration key of each paging alert.
    rendered = {f.path: f.content for f in render(load_spec([spec_dir]), ["splunk"])}
    stanzas = {s.name: s.as_dict() for s in parse_conf(rendered[f"splunk/{APP}/default/savedsearches.conf"])}
    paging = 0
    for name, settings in stanzas.items():
        if settings.get("action.pagerduty") == "1":
            settings = settings | {PAGERDUTY_KEY_PARAM: PD_KEY}
            paging += 1
        assert env.conf_stanza(APP, name) == settings, name
    assert paging > 0


def test_editing_one_rule_shows_exactly_that_diff(env: SplunkEmulator, spec_dir: Path) -> None:
    assert push()[0] == 0
    path = spec_dir / "worker-errors.yaml"
    path.write_text(
        path.read_text().replace("thresholds: {critical: 100, warning: 50}", "thresholds: {critical: 150, warning: 50}")
    )
    code, out, _ = plan("-o", "json")
    assert code == 2
    changed = [c for c in json.loads(out)["changes"] if c["action"] != "unchanged"]
    # The rule's two saved searches: the warning search ends where critical begins.
    assert [(c["action"], c["key"]) for c in changed] == [
        ("update", "extalerts - invalid-url-flood"),
        ("update", "extalerts - invalid-url-flood - warning"),
    ]
    (field,) = changed[0]["fields"]
    assert field["path"] == "params.search"
    assert field["before"].endswith("| where value > 100")
    assert field["after"].endswith("| where value > 150")
    (field,) = changed[1]["fields"]
    assert field["after"].endswith("| where value > 50 AND value <= 150")
    assert push()[0] == 0
    assert env.conf_stanza(APP, "extalerts - invalid-url-flood")["search"].endswith("> 150")
    assert plan()[0] == 0


def test_prune_removes_only_a_removed_rule_and_never_foreign_searches(env: SplunkEmulator, spec_dir: Path) -> None:
    env.add_saved_search("search", "extalerts - lookalike in another app", {"search": "index=x"})
    env.add_saved_search(APP, "team report", {"search": "index=x"})
    env.add_saved_search(APP, "extalerts - private", {"search": "index=x"}, owner="admin", sharing="user")
    assert push("--prune")[0] == 0
    path = spec_dir / "traffic.yaml"
    path.write_text(path.read_text().split("  - id: logs-stopped")[0])
    code, out, err = push("--prune")
    assert code == 0, err
    assert "- delete saved_search extalerts - logs-stopped" in out
    assert "extalerts - logs-stopped" not in ours(env)
    assert len(ours(env)) == ALERTS - 1 + 1  # + the private one, which is not ours and stays
    names = {name for _, name in env._searches}
    assert {"extalerts - lookalike in another app", "team report", "extalerts - private"} <= names


def test_manual_edit_in_splunk_shows_as_drift(env: SplunkEmulator, spec_dir: Path) -> None:
    assert push()[0] == 0
    sdk = provider_for(env).api
    sdk.app = APP
    sdk.service().saved_searches["extalerts - worker-exception"].update(
        search="index=cloudflare | stats count AS value", **{"alert.severity": "2"}
    )
    code, out, _ = plan()
    assert code == 2
    assert "~ update saved_search extalerts - worker-exception" in out
    assert "params.alert.severity:" in out
    assert push()[0] == 0
    assert plan()[0] == 0


def test_username_and_password(monkeypatch: pytest.MonkeyPatch, emulator: SplunkEmulator, spec_dir: Path) -> None:
    monkeypatch.setenv("SPLUNK_URL", emulator.url)
    monkeypatch.delenv("SPLUNK_TOKEN", raising=False)
    monkeypatch.setenv("SPLUNK_USERNAME", "admin")
    monkeypatch.setenv("SPLUNK_PASSWORD", PASSWORD)
    assert push()[0] == 0
    assert plan()[0] == 0


def test_connection_settings_come_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="SPLUNK_URL is not set"):
        SplunkSettings.from_env(env={})
    with pytest.raises(ConfigError, match="SPLUNK_TOKEN is not set"):
        SplunkSettings.from_env(env={"SPLUNK_URL": "https://splunk.example.com"})
    settings = SplunkSettings.from_env(env={"SPLUNK_URL": "splunk.example.com", "SPLUNK_TOKEN": TOKEN})
    assert (settings.scheme, settings.host, settings.port, settings.verify) == (
        "https",
        "splunk.example.com",
        8089,
        True,
    )
    assert TOKEN not in repr(settings)
    assert not SplunkSettings.from_env(env={"SPLUNK_URL": "https://s:8089", "SPLUNK_TOKEN": "t"}, insecure=True).verify


def test_insecure_warns(env: SplunkEmulator, spec_dir: Path) -> None:
    code, _, err = plan("--insecure")
    assert code == 2
    assert "warning: --insecure: the server's TLS certificate is not verified" in err


@pytest.mark.parametrize("seed", range(50))
def test_pushes_converge_under_faults(seed: int, emulator: SplunkEmulator) -> None:
    """20 % of calls fail (503, 500, a slow answer that times out, an answer lost after the write was
    committed); one push still leaves exactly the spec's saved searches, none twice."""
    spec = load_spec([MONITORS])
    emulator.set_faults(Faults(rate=0.2, seed=seed, slow_seconds=0.15))
    provider = provider_for(emulator, timeout=0.1, seed=seed)
    desired = provider.desired(spec)
    result = apply_plan(compute_plan(provider, desired, provider.fetch(), prune=True), provider)
    assert result.ok, result.failed
    emulator.set_faults(Faults())
    final = compute_plan(provider, desired, provider.fetch(), prune=True)
    assert not final.has_changes, [(c.key, c.fields) for c in final.changes if c.fields]
    assert len(ours(emulator)) == ALERTS
    assert sum(emulator.faults_injected.values()) > 0


def test_secrets_never_appear_in_anything_produced(
    env: SplunkEmulator,
    spec_dir: Path,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    produced: list[str] = []
    for args in (("plan",), ("push", "--yes"), ("push", "--yes", "-o", "json"), ("plan", "-o", "json")):
        code, out, err = cli_run(args[0], "monitors", "-p", "splunk", *args[1:])
        produced += [out, err]
    env.set_faults(Faults(rate=1.0, kinds=("500",)))
    for args in (("plan",), ("push", "--yes", "--prune")):
        code, out, err = cli_run(args[0], "monitors", "-p", "splunk", *args[1:])
        assert code == 1
        produced += [out, err]
    env.set_faults(Faults())
    monkeypatch.delenv("SPLUNK_TOKEN")
    monkeypatch.setenv("SPLUNK_USERNAME", "admin")
    monkeypatch.setenv("SPLUNK_PASSWORD", PASSWORD + "-wrong")
    code, out, err = cli_run("plan", "monitors", "-p", "splunk")
    assert code == 1
    assert "authentication failed" in err
    produced += [out, err, repr(SplunkSettings("https", "h", 1, token=TOKEN, username="u", password=PASSWORD))]
    produced += [r.getMessage() for r in caplog.records]
    produced += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    everything = "\n".join(produced)
    for secret in (TOKEN, PASSWORD):
        assert secret not in everything
    assert "applied:" in everything


def test_package_holds_exactly_the_rendered_app(spec_dir: Path, tmp_path: Path) -> None:
    code, out, err = cli_run("package", "--provider", "splunk", "--out", "app.tgz")
    assert code == 0, err
    assert "app.tgz: Splunk app extalerts_workers, 4 files" in out
    first = Path("app.tgz").read_bytes()
    assert cli_run("package", "--out", "app.tgz")[0] == 0
    assert Path("app.tgz").read_bytes() == first  # reproducible
    rendered = {
        f.path.removeprefix("splunk/"): f.content
        for f in render(load_spec([spec_dir]), ["splunk"])
        if f.path.startswith(f"splunk/{APP}/")
    }
    with tarfile.open("app.tgz") as archive:
        members: dict[str, Any] = {m.name: m for m in archive.getmembers()}
        unpacked = {
            name: archive.extractfile(m).read().decode()  # type: ignore[union-attr]
            for name, m in members.items()
            if m.isfile()
        }
    assert unpacked == rendered
    assert all(m.uid == 0 and m.mtime == members[f"{APP}/default/app.conf"].mtime for m in members.values())
    assert {name for name, m in members.items() if m.isdir()} == {APP, f"{APP}/default", f"{APP}/metadata"}
