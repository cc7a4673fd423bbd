"""plan and push against the local Datadog emulator, through the real datadog-api-client over HTTP."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extalerts.emulators.base import LATE, Faults
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.errors import ApiError, ExtalertsError
from extalerts.plan import Guards, SafetyError, apply_plan, check_guards, compute_plan
from extalerts.providers.base import Action, Change
from extalerts.providers.datadog import LOGS_PIPELINE, DatadogApi, DatadogProvider, DatadogSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import MONITORS, cli_run

API_KEY = "ddapikey-4f1c9e2b7a65d3e0"
APP_KEY = "ddappkey-9b8a7c6d5e4f3a2b1c0d"
FAST = RetryPolicy(time_scale=0.001, max_attempts=8)


@pytest.fixture
def emulator() -> Iterator[DatadogEmulator]:
    with DatadogEmulator(API_KEY, APP_KEY) as running:
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, emulator: DatadogEmulator) -> str:
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: FAST)
    return emulator.url


def provider_for(emulator: DatadogEmulator, timeout: float = 5.0, seed: int = 0) -> DatadogProvider:
    settings = DatadogSettings(emulator.url, API_KEY, APP_KEY, timeout=timeout)
    return DatadogProvider(DatadogApi(settings, FAST, seed=seed))


def target_key(emulator: DatadogEmulator) -> str:
    digest = hashlib.sha256(emulator.api_key.encode()).hexdigest()[:12]
    return f"datadog {emulator.url} key-sha256:{digest}"


def push(url: str, *extra: str) -> tuple[int, str, str]:
    return cli_run("push", "monitors", "--provider", "datadog", "--api-url", url, "--yes", *extra)


def plan(url: str, *extra: str) -> tuple[int, str, str]:
    return cli_run("plan", "monitors", "--provider", "datadog", "--api-url", url, *extra)


def edit(spec_dir: Path, file: str, old: str, new: str) -> None:
    path = spec_dir / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# --------------------------------------------------------------------------------------------- flows


def test_push_then_plan_shows_no_change(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    code, out, err = plan(env)
    assert code == 2, err
    assert "15 to create" in out
    code, out, err = push(env)
    assert code == 0, err
    assert "applied: 15 created, 0 updated, 0 deleted; failed: 0" in out
    code, out, _ = plan(env)
    assert code == 0
    assert "0 to create, 0 to update, 0 to delete, 15 unchanged" in out
    monitors = emulator.monitors()
    assert len(monitors) == 13
    assert all("managed-by:extalerts" in m["tags"] for m in monitors)
    code, out, _ = push(env)
    assert code == 0
    assert "nothing to do" in out


def test_editing_one_rule_shows_exactly_that_diff(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    assert push(env)[0] == 0
    ids_before = {m["id"] for m in emulator.monitors()}
    edit(
        spec_dir,
        "worker-errors.yaml",
        "thresholds: {critical: 100, warning: 50}",
        "thresholds: {critical: 150, warning: 50}",
    )
    code, out, _ = plan(env, "-o", "json")
    assert code == 2
    report = json.loads(out)
    changed = [c for c in report["changes"] if c["action"] != "unchanged"]
    assert [(c["action"], c["key"]) for c in changed] == [("update", "invalid-url-flood")]
    fields = {f["path"]: (f["before"], f["after"]) for f in changed[0]["fields"]}
    assert fields == {
        "options.thresholds.critical": (100, 150),
        "query": (
            'logs("source:cloudflare service:conversation-api (@Logs.Message:*ERROR_CODE_INVALID_URL* '
            'OR @Logs.message:*ERROR_CODE_INVALID_URL*)").index("*").rollup("count").last("5m") > 100',
            'logs("source:cloudflare service:conversation-api (@Logs.Message:*ERROR_CODE_INVALID_URL* '
            'OR @Logs.message:*ERROR_CODE_INVALID_URL*)").index("*").rollup("count").last("5m") > 150',
        ),
    }
    code, out, _ = plan(env)
    assert "~ update monitor invalid-url-flood (id " in out
    assert "    - 100" in out
    assert "    + 150" in out
    assert push(env)[0] == 0
    assert {m["id"] for m in emulator.monitors()} == ids_before  # updated in place
    assert plan(env)[0] == 0


def test_manual_ui_edit_shows_as_drift(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    assert push(env)[0] == 0
    target = next(m for m in emulator.monitors() if "extalerts-rule:worker-exception" in m["tags"])
    emulator.state.monitors[target["id"]]["options"]["renotify_interval"] = 5
    emulator.state.monitors[target["id"]]["message"] += "\nedited in the UI"
    code, out, _ = plan(env)
    assert code == 2
    assert "~ update monitor worker-exception" in out
    assert "options.renotify_interval:" in out
    assert "+edited in the UI" not in out  # the diff goes from live to desired: the UI line is removed
    assert "-edited in the UI" in out


def test_prune_deletes_only_the_removed_rule_and_never_foreign_monitors(
    env: str, spec_dir: Path, emulator: DatadogEmulator
) -> None:
    foreign = emulator.add_monitor(
        {
            "name": "hand made",
            "type": "log alert",
            "query": 'logs("*").index("*").rollup("count").last("5m") > 1',
            "options": {"thresholds": {"critical": 1}},
            "tags": ["team:someone-else"],
        }
    )
    half_ours = emulator.add_monitor(
        {
            "name": "tagged by hand, no rule id",
            "type": "log alert",
            "query": 'logs("*").index("*").rollup("count").last("5m") > 1',
            "options": {"thresholds": {"critical": 1}},
            "tags": ["managed-by:extalerts"],
        }
    )
    assert push(env, "--prune")[0] == 0
    (spec_dir / "traffic.yaml").write_text(
        (spec_dir / "traffic.yaml").read_text().split("  - id: conversation-surge")[0]
        + "  - id: conversation-surge"
        + (spec_dir / "traffic.yaml")
        .read_text()
        .split("  - id: conversation-surge")[1]
        .split("  - id: logs-stopped")[0]
    )
    code, out, _ = plan(env)
    assert code == 0  # without --prune a removed rule is only reported
    assert "left alone: monitor logs-stopped" in out
    code, out, err = push(env, "--prune")
    assert code == 0, err
    assert "- delete monitor logs-stopped" in out
    remaining = {m["id"] for m in emulator.monitors()}
    assert foreign["id"] in remaining
    assert half_ours["id"] in remaining
    assert not any("extalerts-rule:logs-stopped" in m["tags"] for m in emulator.monitors())
    assert len(remaining) == 12 + 2


def test_mass_delete_guard(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    assert push(env)[0] == 0
    (spec_dir / "durable-objects.yaml").unlink()
    (spec_dir / "traffic.yaml").unlink()
    code, _, err = push(env, "--prune")
    assert code == 1
    assert "the plan deletes 9 of 15 managed objects (60%), more than 25%" in err
    assert len(emulator.monitors()) == 13
    code, _, err = push(env, "--prune", "--allow-mass-delete")
    assert code == 0, err
    assert len(emulator.monitors()) == 5
    assert emulator.state.metrics == {}


def test_short_listing_guard_uses_the_last_known_count(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    assert push(env)[0] == 0
    state = json.loads(Path(".extalerts/state.json").read_text())
    assert state[target_key(emulator)]["managed"]["monitor"] == 13
    for monitor in emulator.monitors()[:4]:
        del emulator.state.monitors[monitor["id"]]
    code, _, err = push(env, "--prune")
    assert code == 1
    assert "datadog listed 9 managed monitors but the last push left 13" in err
    assert len(emulator.monitors()) == 9
    assert push(env, "--allow-mass-delete")[0] == 0
    assert len(emulator.monitors()) == 13


def test_the_last_known_count_is_kept_per_target(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    """A push to another organisation (a sandbox, staging) neither trips nor resets this one's guard."""
    assert push(env)[0] == 0
    with DatadogEmulator(emulator.api_key, emulator.app_key) as other:
        code, _, err = cli_run("push", str(spec_dir), "-p", "datadog", "--api-url", other.url, "--yes")
        assert code == 0, err
        assert len(other.monitors()) == 13
    state = json.loads(Path(".extalerts/state.json").read_text())
    assert sorted(state) == sorted([target_key(emulator), target_key(other)])
    for monitor in emulator.monitors()[:4]:
        del emulator.state.monitors[monitor["id"]]
    code, _, err = push(env, "--prune")
    assert code == 1
    assert "datadog listed 9 managed monitors but the last push left 13" in err


def test_a_state_entry_from_before_targets_is_not_read_for_any_account(
    env: str, spec_dir: Path, emulator: DatadogEmulator
) -> None:
    """Nothing says which account such an entry counted: reading it could trip or disarm the guard."""
    path = Path(".extalerts/state.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"datadog": {"managed": {"monitor": 99}}}))
    assert push(env)[0] == 0  # 0 listed against 99 would have tripped the guard
    state = json.loads(path.read_text())
    assert state["datadog"] == {"managed": {"monitor": 99}}  # left as it was
    assert state[target_key(emulator)]["managed"]["monitor"] == 13


def test_a_failed_listing_is_never_read_as_nothing_exists(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    emulator.set_faults(Faults(rate=1.0, kinds=("500",)))
    code, out, err = push(env, "--prune")
    assert code == 1
    assert "list log pipelines: HTTP 500: Internal Server Error" in err
    emulator.set_faults(Faults())
    assert emulator.monitors() == []
    assert "create" not in out


def test_dry_run_is_plan(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    code, out, _ = push(env, "--dry-run")
    assert code == 2
    assert "15 to create" in out
    assert emulator.monitors() == []


def test_missing_key_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, spec_dir: Path) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    code, _, err = cli_run("plan", "monitors", "-p", "datadog")
    assert code == 1
    assert err.strip().splitlines() == [
        "error: DD_API_KEY is not set; export it (extalerts reads Datadog keys only from the environment)"
    ]
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_SITE", "datadoghq.example")
    code, _, err = cli_run("plan", "monitors", "-p", "datadog")
    assert code == 1
    assert "DD_SITE=datadoghq.example is not a Datadog site" in err


def test_wrong_key_is_a_clear_api_error(env: str, spec_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_APP_KEY", "not-the-right-key")
    code, _, err = plan(env)
    assert code == 1
    assert err.strip() == (
        "error: list log pipelines: HTTP 403: Forbidden; the credentials were refused: check DD_API_KEY and "
        f"DD_APP_KEY, and that they are for {env} (URL from --api-url)"
    )
    assert "not-the-right-key" not in err


# --------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("seed", range(50))
def test_pushes_converge_under_faults(seed: int, emulator: DatadogEmulator) -> None:
    """Each seeded run: 20 % of calls fail (429, 500, a slow answer that times out, an answer lost
    after the write was committed); one push still leaves live state equal to the spec."""
    spec = load_spec([MONITORS])
    emulator.set_faults(Faults(rate=0.2, seed=seed, slow_seconds=0.15, rate_limit_reset=0))
    provider = provider_for(emulator, timeout=0.1, seed=seed)
    desired = provider.desired(spec)
    result = apply_plan(compute_plan(provider, desired, provider.fetch(), prune=True), provider)
    assert result.ok, result.failed
    emulator.set_faults(Faults())
    final = compute_plan(provider, desired, provider.fetch(), prune=True)
    assert not final.has_changes, final.counts()
    rule_tags = [t for m in emulator.monitors() for t in m["tags"] if t.startswith("extalerts-rule:")]
    assert len(rule_tags) == len(set(rule_tags)) == 13, "duplicate monitors"
    assert len(emulator.state.pipelines) == 1
    assert sum(emulator.faults_injected.values()) > 0


def test_lost_create_answer_does_not_duplicate(emulator: DatadogEmulator) -> None:
    spec = load_spec([MONITORS])
    emulator.set_faults(Faults(rate=1.0, kinds=("lost",), seed=1))
    provider = provider_for(emulator)
    desired = [r for r in provider.desired(spec) if r.key == "worker-exception"]
    emulator.set_faults(Faults())
    plan_ = compute_plan(provider, desired, provider.fetch(), prune=False)
    emulator.set_faults(Faults(rate=0.5, kinds=("lost",), seed=3))
    result = apply_plan(plan_, provider)
    assert result.ok
    emulator.set_faults(Faults())
    assert len(emulator.monitors()) == 1


def test_rate_limit_waits_for_the_reset_header(emulator: DatadogEmulator) -> None:
    waits: list[float] = []
    settings = DatadogSettings(emulator.url, API_KEY, APP_KEY)
    api = DatadogApi(settings, RetryPolicy(base_delay=0.01), sleep=waits.append)
    provider = DatadogProvider(api)
    emulator.set_faults(Faults(rate=1.0, kinds=("429",), rate_limit_reset=7))
    with pytest.raises(ApiError) as caught:
        provider.fetch_monitors()
    assert caught.value.status == 429
    assert len(waits) == RetryPolicy().max_attempts - 1
    assert all(7 <= w <= 7.01 for w in waits)
    assert api.calls["list monitors"] == RetryPolicy().max_attempts


def test_interrupted_push_is_completed_by_the_next(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    spec = load_spec([spec_dir])
    provider = provider_for(emulator)
    desired = provider.desired(spec)
    plan_ = compute_plan(provider, desired, provider.fetch(), prune=False)
    applied = 0
    original = provider.apply_change

    def crash_after_five(change: Any) -> None:
        nonlocal applied
        if applied >= 5:
            raise KeyboardInterrupt
        applied += 1
        original(change)

    provider.apply_change = crash_after_five  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan_, provider, concurrency=1)
    assert 0 < len(emulator.monitors()) < 13 or len(emulator.state.pipelines) == 1
    code, _, err = push(env)
    assert code == 0, err
    assert plan(env)[0] == 0
    assert len(emulator.monitors()) == 13


# --------------------------------------------------------------------------------------------- guards, pure


def test_validation_failure_writes_nothing(emulator: DatadogEmulator) -> None:
    spec = load_spec([MONITORS])
    provider = provider_for(emulator)
    desired = provider.desired(spec)
    plan_ = compute_plan(provider, desired, provider.fetch(), prune=False)
    provider.validate = lambda changes: [(changes[0], "The value provided for parameter 'query' is invalid")]  # type: ignore[method-assign]
    with pytest.raises(ExtalertsError, match="1 change failed validation; nothing was written"):
        apply_plan(plan_, provider)
    assert emulator.monitors() == []


def test_guards_without_state() -> None:
    from extalerts.providers.base import Action, Change, Plan, Resource

    live = [Resource("monitor", f"r{i}", {}, live_id=str(i)) for i in range(4)]
    deletes = tuple(Change(Action.DELETE, "monitor", r.key, None, r) for r in live[:2])
    with pytest.raises(SafetyError, match="deletes 2 of 4"):
        check_guards(Plan("datadog", deletes, {"monitor": 4}), Guards())
    check_guards(Plan("datadog", deletes[:1], {"monitor": 4}), Guards())
    check_guards(Plan("datadog", deletes, {"monitor": 4}), Guards(allow_mass_delete=True))


# --------------------------------------------------------------------------------------------- secrets


def test_keys_never_appear_in_anything_produced(
    env: str, spec_dir: Path, emulator: DatadogEmulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    produced: list[str] = []
    for args in (
        ("plan",),
        ("plan", "-o", "json"),
        ("push", "--yes"),
        ("push", "--yes", "-o", "json"),
        ("plan", "--prune"),
    ):
        code, out, err = cli_run(args[0], "monitors", "-p", "datadog", "--api-url", env, *args[1:])
        produced += [out, err]
    emulator.set_faults(Faults(rate=1.0, kinds=("500",)))
    edit(
        spec_dir,
        "traffic.yaml",
        "thresholds: {critical: 200, warning: 100}",
        "thresholds: {critical: 300, warning: 100}",
    )
    for args in (("push", "--yes"), ("push", "--yes", "-o", "json"), ("plan",)):
        code, out, err = cli_run(args[0], "monitors", "-p", "datadog", "--api-url", env, *args[1:])
        assert code == 1
        produced += [out, err]
    emulator.set_faults(Faults())
    try:
        DatadogProvider(DatadogApi(DatadogSettings(env, API_KEY, "wrong"), FAST)).fetch()
    except ApiError as exc:
        produced += [str(exc), repr(exc)]
    produced += [repr(DatadogSettings(env, API_KEY, APP_KEY))]
    produced += [r.getMessage() for r in caplog.records]
    produced += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    everything = "\n".join(produced)
    assert API_KEY not in everything
    assert APP_KEY not in everything
    assert "applied:" in everything  # the scan did see real output


def test_a_create_that_lands_after_its_repeat_leaves_no_duplicate(emulator: DatadogEmulator) -> None:
    """The first create is handled only after the client timed out, looked the rule up (nothing yet)
    and created it again: two monitors for one rule, until the provider settles it."""
    spec = load_spec([MONITORS])
    provider = provider_for(emulator, timeout=0.1)
    desired = [r for r in provider.desired(spec) if r.key == "worker-exception"]
    plan_ = compute_plan(provider, desired, provider.fetch(), prune=False)
    emulator.set_faults(Faults(rate=1.0, kinds=(LATE,), slow_seconds=0.15, only="POST /api/v1/monitor", limit=1))
    assert apply_plan(plan_, provider).ok
    assert emulator.faults_injected[LATE] == 1
    deadline = time.monotonic() + 5
    while len([r for r in emulator.requests if r[:2] == ("POST", "/api/v1/monitor")]) < 2:
        assert time.monotonic() < deadline, "the late create never landed"
        time.sleep(0.01)  # the late one and its repeat: both land
    assert len(emulator.monitors()) == 1
    final = compute_plan(provider, desired, provider.fetch(), prune=True)
    assert not final.has_changes, final.counts()


# ------------------------------------------------------------------------------ log pipeline answers

PIPELINE_BY_ID = "DELETE /api/v1/logs/config/pipelines/([^/]+)"


def pushed_pipeline(emulator: DatadogEmulator, provider: DatadogProvider) -> list[Any]:
    """Push the bundled spec; the desired resources without its pipeline (a spec that dropped it)."""
    desired = provider.desired(load_spec([MONITORS]))
    assert apply_plan(compute_plan(provider, desired, provider.fetch(), prune=True), provider).ok
    assert len(emulator.state.pipelines) == 1
    return [r for r in desired if r.kind != LOGS_PIPELINE]


def test_an_unknown_pipeline_id_is_answered_as_datadog_does(emulator: DatadogEmulator) -> None:
    import urllib.error
    import urllib.request

    headers = {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY, "Content-Type": "application/json"}
    for method in ("GET", "PUT", "DELETE"):
        request = urllib.request.Request(
            f"{emulator.url}/api/v1/logs/config/pipelines/nope", data=b"{}", method=method, headers=headers
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 400, method
        assert json.loads(caught.value.read()) == {
            "error": {"code": "InvalidArgument", "message": "Non existing pipeline"}
        }


def test_the_logs_api_error_envelope_is_printed_with_its_message(emulator: DatadogEmulator) -> None:
    from datadog_api_client.v1.api.logs_pipelines_api import LogsPipelinesApi

    provider = provider_for(emulator)
    with pytest.raises(ApiError) as caught:
        provider.api.call("get log pipeline", lambda client: LogsPipelinesApi(client).get_logs_pipeline("nope"))
    assert str(caught.value) == "get log pipeline: HTTP 400: InvalidArgument: Non existing pipeline"


def test_a_pipeline_delete_whose_answer_was_lost_converges(emulator: DatadogEmulator) -> None:
    """The first delete lands but its answer is lost; the retry hears "Non existing pipeline",
    which means the pipeline is already gone."""
    provider = provider_for(emulator)
    without_pipeline = pushed_pipeline(emulator, provider)
    plan_ = compute_plan(provider, without_pipeline, provider.fetch(), prune=True)
    assert [c.kind for c in plan_.changes if c.action is Action.DELETE] == [LOGS_PIPELINE]
    emulator.set_faults(Faults(rate=1.0, kinds=("lost",), only=PIPELINE_BY_ID, limit=1))
    result = apply_plan(plan_, provider)
    assert result.ok, result.failed
    assert emulator.faults_injected["lost"] == 1
    assert emulator.calls[PIPELINE_BY_ID] == 2
    assert emulator.state.pipelines == {}
    assert not compute_plan(provider, without_pipeline, provider.fetch(), prune=True).has_changes


@pytest.mark.parametrize("seed", range(20))
def test_pipeline_deletes_converge_with_lost_answers(seed: int, emulator: DatadogEmulator) -> None:
    provider = provider_for(emulator, seed=seed)
    without_pipeline = pushed_pipeline(emulator, provider)
    plan_ = compute_plan(provider, without_pipeline, provider.fetch(), prune=True)
    emulator.set_faults(Faults(rate=0.3, kinds=("lost",), seed=seed))
    assert apply_plan(plan_, provider).ok
    emulator.set_faults(Faults())
    assert emulator.state.pipelines == {}


def test_updating_a_pipeline_deleted_since_the_plan_says_so(emulator: DatadogEmulator) -> None:
    provider = provider_for(emulator)
    spec = load_spec([MONITORS])
    desired = provider.desired(spec)
    pushed_pipeline(emulator, provider)
    live = next(r for r in provider.fetch() if r.kind == LOGS_PIPELINE)
    wanted = next(r for r in desired if r.kind == LOGS_PIPELINE)
    emulator.state.pipelines.clear()  # deleted by someone else after the plan
    with pytest.raises(ExtalertsError) as caught:
        provider.apply_change(Change(Action.UPDATE, LOGS_PIPELINE, wanted.key, wanted, live))
    assert str(caught.value) == (
        f"update log pipeline: pipeline {live.live_id} ({wanted.key}) no longer exists in Datadog "
        "(deleted since the plan was made); push again to create it"
    )
