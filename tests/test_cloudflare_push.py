"""Option A: Cloudflare notification policies pushed through the real cloudflare SDK to the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from extalerts.emulators.cloudflare import CloudflareEmulator
from extalerts.fields import FieldCatalog
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.cloudflare import WORKERS_OBSERVABILITY_ALERT, NotificationsProvider
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from extalerts.spec.loader import ResolvedRule
from tests.conftest import MONITORS, write

RENDERED_RECIPES = Path(__file__).resolve().parents[1] / "rendered" / "cloudflare" / "observability-alerts"

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
#: The alerts the recipes give those two rules (rendered/cloudflare/observability-alerts/).
OBSERVED_ALERTS = ("invalid-url-flood", "invalid-url-flood-warning", "worker-exception-1", "worker-exception-2")


def carried_by_observability_alerts(monkeypatch: pytest.MonkeyPatch, *rule_ids: str) -> None:
    """Keep Workers Observability alerts (with their real recipes) for ``rule_ids`` only, so a test reads a few."""
    import extalerts.coverage as coverage

    real = coverage.option_a

    def restricted(rule: ResolvedRule, catalog: FieldCatalog | None = None) -> coverage.Verdict:
        verdict = real(rule, catalog)
        if rule.id in rule_ids or verdict.alert_type is not None or verdict.observability is None:
            return verdict
        return coverage.Verdict(coverage.OptionA.NO, None, "left out by the test", None)

    monkeypatch.setattr(coverage, "option_a", restricted)


def recipe_alert_names(rule_id: str) -> list[str]:
    """The alert names ``render --provider cloudflare`` wrote for a rule (what a team types in the dashboard)."""
    recipe = json.loads((RENDERED_RECIPES / f"{rule_id}.json").read_text())
    return [alert["name"] for alert in recipe["alerts"]]


def worker_exception_on_pager_and_email(tmp_path: Path) -> Path:
    """invalid-url-flood notifying oncall-page (alert, recovery) and platform-email (alert, warning)."""
    for name in ("workers.yaml", "logpush.yaml", "traffic.yaml", "durable-objects.yaml"):
        write(tmp_path / name, (MONITORS / name).read_text())
    text = (MONITORS / "worker-errors.yaml").read_text()
    flood = text.index("  - id: invalid-url-flood")
    notify = text.index("    notify: [platform-slack]\n", flood)
    text = (
        text[:notify]
        + "    notify: [oncall-page, platform-email]\n"
        + text[notify + len("    notify: [platform-slack]\n") :]
    )
    write(tmp_path / "worker-errors.yaml", text)
    return tmp_path


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
        f"no notification policy for the alerts {', '.join(OBSERVED_ALERTS)}; route them in the dashboard"
    ]
    assert apply_plan(plan, live).ok
    assert [p["alert_type"] for p in emulator.policies()] == ["failing_logpush_job_disabled_alert"]


def test_the_bundled_recipes_are_routed_without_being_told_which_rules_they_carry(
    emulator: CloudflareEmulator,
) -> None:
    """Coverage's own verdicts (no stand-in) decide: every recipe alert with a target Cloudflare can notify."""
    emulator.offer_workers_observability_alert(alert_filter=True)
    spec = load_spec([MONITORS])
    live = provider(emulator)
    keys = sorted(r.key for r in live.desired(spec) if r.kind == "notification_policy")
    assert keys == [
        "do-cleanup-failures-1",
        "do-cleanup-failures-2",
        "do-latency-p99",
        "do-operation-errors",
        "logs-stopped",
        "worker-exception-1",
        "worker-exception-2",
    ]


def test_without_a_per_alert_filter_one_account_wide_policy_per_target_set_and_the_plan_says_so_once(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    emulator.offer_workers_observability_alert()
    spec = load_spec([worker_exception_on_pager_and_email(tmp_path)])
    live = provider(emulator)
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert [(c.action.value, c.key) for c in plan.changes] == [
        ("create", "logs-stopped"),
        ("create", "workers-observability-alerts-to-oncall-page"),
        ("create", "workers-observability-alerts-to-oncall-page+platform-email"),
        ("create", "workers-observability-alerts-to-platform-email"),
    ]
    assert live.notes == [
        "workers_observability_alert policies cannot be filtered per alert (the catalogue offers no per-alert "
        "filter): 3 account-wide policies route every Workers Observability alert of the account, "
        "to oncall-page (for worker-exception-1, worker-exception-2); "
        "to oncall-page, platform-email (for invalid-url-flood); to platform-email (for invalid-url-flood-warning)"
    ]
    assert apply_plan(plan, live).ok
    policies = {p["name"]: p for p in emulator.policies()}
    pager = policies["extalerts: Workers Observability alerts to oncall-page"]
    assert pager["alert_type"] == "workers_observability_alert"
    assert pager["filters"] == {"status": ["FIRING_FAILED", "NORMAL"]}
    assert pager["mechanisms"] == {"pagerduty": [{"id": "pd-service-1"}]}
    assert "routes every Workers Observability alert of the account" in pager["description"]
    warning = policies["extalerts: Workers Observability alerts to platform-email"]
    assert warning["mechanisms"] == {"email": [{"id": "platform-team@example.com"}]}
    again = provider(emulator)
    assert not compute_plan(again, again.desired(spec), again.fetch(), prune=True).has_changes


def test_with_a_per_alert_filter_each_recipe_alert_gets_a_policy_filtered_to_its_name(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    emulator.offer_workers_observability_alert(alert_filter=True)
    spec = load_spec([MONITORS])
    live = provider(emulator)
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert [(c.action.value, c.key) for c in plan.changes] == [
        ("create", "logs-stopped"),
        ("create", "worker-exception-1"),
        ("create", "worker-exception-2"),
    ]
    # invalid-url-flood notifies a Slack channel only, which a policy cannot reach: one note, not a refused create.
    assert live.notes == [
        "Cloudflare can notify none of the targets of the Workers Observability alerts "
        "invalid-url-flood (platform-slack (slack)), invalid-url-flood-warning (platform-slack (slack)) "
        "(it sends email, webhooks and PagerDuty): no notification policy for them; their recipes route them in "
        "the dashboard"
    ]
    assert apply_plan(plan, live).ok
    routed = {
        p["filters"]["selectors"][0]: p for p in emulator.policies() if p["alert_type"] == WORKERS_OBSERVABILITY_ALERT
    }
    # The filter names the alerts exactly as the rendered recipe names them for the dashboard.
    assert sorted(routed) == recipe_alert_names("worker-exception")
    for name, policy in routed.items():
        assert policy["name"] == f"extalerts: {name}"
        assert policy["filters"] == {"status": ["FIRING_FAILED", "NORMAL"], "selectors": [name]}
        assert policy["mechanisms"] == {"pagerduty": [{"id": "pd-service-1"}]}
    again = provider(emulator)
    assert not compute_plan(again, again.desired(spec), again.fetch(), prune=True).has_changes


def test_a_warning_alert_is_routed_to_the_warning_targets_only(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    emulator.offer_workers_observability_alert(alert_filter=True)
    spec = load_spec([worker_exception_on_pager_and_email(tmp_path)])
    live = provider(emulator)
    assert apply_plan(compute_plan(live, live.desired(spec), live.fetch(), prune=True), live).ok
    policies = {p["name"]: p for p in emulator.policies()}
    assert policies["extalerts: invalid-url-flood"]["mechanisms"] == {
        "email": [{"id": "platform-team@example.com"}],
        "pagerduty": [{"id": "pd-service-1"}],
    }
    # oncall-page takes alert and recovery, not warning: the warning alert never pages.
    assert policies["extalerts: invalid-url-flood-warning"]["mechanisms"] == {
        "email": [{"id": "platform-team@example.com"}]
    }
    assert policies["extalerts: invalid-url-flood-warning"]["filters"]["selectors"] == ["invalid-url-flood-warning"]
    again = provider(emulator)
    assert not compute_plan(again, again.desired(spec), again.fetch(), prune=True).has_changes


def test_the_slack_webhook_a_recipe_asks_to_make_by_hand_is_never_pruned(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe of invalid-url-flood says to create extalerts-platform-slack with the channel's secret URL."""
    carried_by_observability_alerts(monkeypatch, *OBSERVED)
    live = provider(emulator)
    live.api.call(
        "create",
        lambda c: c.alerting.destinations.webhooks.create(
            account_id=ACCOUNT, name="extalerts-platform-slack", url="https://hooks.example.com/services/T0/B0/secret"
        ),
    )
    spec = load_spec([MONITORS])
    plan = compute_plan(live, live.desired(spec), live.fetch(), prune=True)
    assert [(c.action.value, c.key) for c in plan.changes] == [("create", "logs-stopped")]
    assert apply_plan(plan, live).ok
    assert [hook["name"] for hook in emulator.webhooks()] == ["extalerts-platform-slack"]


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
    assert keys == ["logs-stopped"]
    assert live.notes == [
        "workers_observability_alert requires filter where, which extalerts cannot fill: "
        "no notification policy for the alerts worker-exception-1, worker-exception-2"
    ]


def test_the_catalogue_is_read_only_when_a_recipe_needs_it(
    emulator: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried_by_observability_alerts(monkeypatch)
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
    routed = policies["workers-observability-alerts-to-oncall-page"]
    assert routed["filters"] == {}
    assert routed["alert_type"] == WORKERS_OBSERVABILITY_ALERT
