"""Option A: Cloudflare notification policies pushed through the real cloudflare SDK to the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from extalerts.emulators.cloudflare import CloudflareEmulator
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.cloudflare import WORKERS_OBSERVABILITY_ALERT, NotificationsProvider
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from extalerts.spec.loader import ResolvedRule
from tests.conftest import MONITORS, write

TOKEN = "cf-notify-token-19"
ACCOUNT = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def emulator() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(api_token=TOKEN, account_id=ACCOUNT) as running:
        running.add_pagerduty("pd-service-1", "conversation-api-oncall")
        yield running


def provider(emulator: CloudflareEmulator) -> NotificationsProvider:
    settings = CloudflareSettings(ACCOUNT, TOKEN, emulator.url)
    return NotificationsProvider(CloudflareApi(settings, RetryPolicy(time_scale=0.001)))


def test_policies_for_rules_cloudflare_can_carry(emulator: CloudflareEmulator) -> None:
    spec = load_spec([MONITORS])
    first = provider(emulator)
    plan = compute_plan(first, first.desired(spec), first.fetch(), prune=True)
    assert [(c.action.value, c.kind, c.key) for c in plan.changes] == [
        ("create", "notification_policy", "logs-stopped")
    ]
    assert apply_plan(plan, first).ok
    (policy,) = emulator.policies()
    assert policy["name"] == "extalerts: logs-stopped"
    assert policy["alert_type"] == "failing_logpush_job_disabled_alert"
    assert policy["description"].startswith("managed-by=extalerts; rule=logs-stopped")
    assert policy["mechanisms"] == {"pagerduty": [{"id": "pd-service-1"}]}
    again = provider(emulator)
    assert not compute_plan(again, again.desired(spec), again.fetch(), prune=True).has_changes


def test_webhooks_and_email_targets_and_prune(emulator: CloudflareEmulator, tmp_path: Path) -> None:
    text = (
        (MONITORS / "traffic.yaml")
        .read_text()
        .replace("    notify: [oncall-page, platform-slack]\n", "    notify: [incident-bot, platform-email]\n")
    )
    for name in ("workers.yaml", "logpush.yaml"):
        write(tmp_path / name, (MONITORS / name).read_text())
    write(tmp_path / "traffic.yaml", text)
    spec = load_spec([tmp_path])
    live = provider(emulator)
    assert apply_plan(compute_plan(live, live.desired(spec), live.fetch(), prune=True), live).ok
    (webhook,) = emulator.webhooks()
    assert webhook["name"] == "extalerts-incident-bot"
    (policy,) = emulator.policies()
    assert policy["mechanisms"] == {
        "email": [{"id": "platform-team@example.com"}],
        "webhooks": [{"id": webhook["id"]}],
    }
    assert not compute_plan(live, live.desired(spec), live.fetch(), prune=True).has_changes
    # A policy someone made by hand is never touched; ours goes when its rule goes.
    emulator_policy = provider(emulator).api.call(
        "create",
        lambda c: c.alerting.policies.create(
            account_id=ACCOUNT,
            name="billing",
            enabled=True,
            alert_type="billing_usage_alert",
            mechanisms={"email": [{"id": "finance@example.com"}]},
            filters={"product": ["worker_requests"], "limit": ["100"]},
        ),
    )
    write(tmp_path / "traffic.yaml", text.split("  - id: logs-stopped")[0])
    spec = load_spec([tmp_path])
    live = provider(emulator)
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert sorted((c.action.value, c.key) for c in plan.changes) == [
        ("delete", "extalerts-incident-bot"),
        ("delete", "logs-stopped"),
    ]
    assert apply_plan(plan, live).ok
    assert [p["name"] for p in emulator.policies()] == ["billing"]
    assert emulator_policy is not None


def test_an_unconnected_pagerduty_service_is_refused_before_writing(emulator: CloudflareEmulator) -> None:
    spec = load_spec([MONITORS])
    live = provider(emulator)
    emulator.state.pagerduty.clear()
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    problems = live.validate(list(plan.changes))
    assert [p for _, p in problems] == [
        "PagerDuty service conversation-api-oncall is not connected; connect it in the dashboard"
    ]


# ------------------------------------------------------------------ Workers Observability alerts (routing)

OBSERVED = ("worker-exception", "invalid-url-flood")


def carried_by_observability_alerts(monkeypatch: pytest.MonkeyPatch, *rule_ids: str) -> None:
    """Coverage decides which rules a Workers Observability alert carries; these tests fix the answer."""
    import extalerts.coverage as coverage

    real = coverage.option_a
    carried = next(value for value in coverage.OptionA if value is not coverage.OptionA.NO)

    def patched(rule: ResolvedRule) -> coverage.Verdict:
        if rule.id in rule_ids:
            return coverage.Verdict(carried, WORKERS_OBSERVABILITY_ALERT, "a Workers Observability alert carries it")
        return real(rule)

    monkeypatch.setattr(coverage, "option_a", patched)


def test_without_the_type_in_the_catalogue_the_plan_says_so_once_and_creates_nothing_for_it(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    spec = load_spec([MONITORS])
    live = provider(emulator)
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert [(c.action.value, c.key) for c in plan.changes] == [("create", "logs-stopped")]
    assert live.notes == [
        "the account's alert catalogue (available_alerts) does not offer workers_observability_alert: "
        "no notification policy for invalid-url-flood, worker-exception; route their alerts in the dashboard"
    ]
    assert apply_plan(plan, live).ok
    assert [p["alert_type"] for p in emulator.policies()] == ["failing_logpush_job_disabled_alert"]


def test_without_a_per_alert_filter_each_policy_routes_every_alert_and_the_plan_says_so(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    emulator.offer_workers_observability_alert()
    spec = load_spec([MONITORS])
    live = provider(emulator)
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert [(c.action.value, c.kind, c.key) for c in plan.changes] == [
        ("create", "notification_policy", "logs-stopped"),
        ("create", "notification_policy", "worker-exception"),
    ]
    # invalid-url-flood notifies a Slack channel only, which Cloudflare cannot reach: a note, not a refused create.
    slack, unfiltered = live.notes
    assert unfiltered.endswith("the policy of worker-exception routes every Workers Observability alert of the account")
    assert slack.startswith("rule invalid-url-flood: Cloudflare can notify none of its targets (platform-slack (slack)")
    assert "cannot be filtered per alert" in unfiltered
    assert "routes every Workers Observability alert of the account" in unfiltered
    assert apply_plan(plan, live).ok
    policies = {p["name"]: p for p in emulator.policies()}
    exception = policies["extalerts: worker-exception"]
    assert exception["alert_type"] == "workers_observability_alert"
    assert exception["filters"] == {"status": ["FIRING_FAILED", "NORMAL"]}
    assert exception["mechanisms"] == {"pagerduty": [{"id": "pd-service-1"}]}
    assert "routes every Workers Observability alert of the account" in exception["description"]
    again = provider(emulator)
    assert not compute_plan(again, again.desired(spec), again.fetch(), prune=True).has_changes


def test_with_a_per_alert_filter_each_policy_routes_only_its_rules_alert(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    emulator.offer_workers_observability_alert(alert_filter=True)
    spec = load_spec([MONITORS])
    live = provider(emulator)
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert not [note for note in live.notes if "filtered" in note]
    assert apply_plan(plan, live).ok
    policies = {p["name"]: p for p in emulator.policies()}
    assert policies["extalerts: worker-exception"]["filters"] == {
        "status": ["FIRING_FAILED", "NORMAL"],
        "selectors": ["extalerts: worker-exception"],
    }
    again = provider(emulator)
    assert not compute_plan(again, again.desired(spec), again.fetch(), prune=True).has_changes


def test_a_required_filter_extalerts_cannot_fill_creates_nothing_and_says_which(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried_by_observability_alerts(monkeypatch, "worker-exception")
    emulator.add_alert_type(
        "Workers Observability",
        "workers_observability_alert",
        filter_options=[{"Key": "where", "ComparisonOperator": "==", "Range": "1-1", "AvailableValues": None}],
    )
    live = provider(emulator)
    keys = [r.key for r in live.desired(load_spec([MONITORS]))]
    assert "worker-exception" not in keys
    assert live.notes == [
        "workers_observability_alert requires filter where, which extalerts cannot fill: "
        "no notification policy for worker-exception"
    ]


def test_the_catalogue_is_read_only_when_a_rule_needs_it(emulator: CloudflareEmulator) -> None:
    live = provider(emulator)
    live.desired(load_spec([MONITORS]))
    assert emulator.calls["GET /accounts/{account}/alerting/v3/available_alerts"] == 0


def test_plan_prints_the_notes_and_json_carries_them(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from extalerts.cli import cli

    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    args = ["plan", "--provider", "cloudflare", "--api-url", emulator.url, str(MONITORS)]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 2, text.output
    assert "note: the account's alert catalogue (available_alerts) does not offer workers_observability_alert" in (
        text.output
    )
    as_json = CliRunner().invoke(cli, [*args, "--output", "json"])
    (note,) = json.loads(as_json.output)["notes"]
    assert note.startswith("the account's alert catalogue")


def test_a_catalogue_given_to_the_provider_stands_for_the_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline callers (rendering everything a push would send) pass the catalogue instead of reading it."""
    carried_by_observability_alerts(monkeypatch, "worker-exception")
    unreachable = CloudflareApi(CloudflareSettings(ACCOUNT, TOKEN, "http://127.0.0.1:9/client/v4"))
    entry = {"type": WORKERS_OBSERVABILITY_ALERT, "filter_options": []}
    offline = NotificationsProvider(unreachable, available_alerts={WORKERS_OBSERVABILITY_ALERT: entry})
    policies = {r.key: r.body for r in offline.desired(load_spec([MONITORS])) if r.kind == "notification_policy"}
    assert policies["worker-exception"]["filters"] == {}
    assert policies["worker-exception"]["alert_type"] == WORKERS_OBSERVABILITY_ALERT
