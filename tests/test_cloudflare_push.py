"""Option A: Cloudflare notification policies pushed through the real cloudflare SDK to the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from extalerts.emulators.cloudflare import CloudflareEmulator
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.cloudflare import NotificationsProvider
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
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
