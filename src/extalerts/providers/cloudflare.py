"""The Cloudflare notifications provider (Option A): a notification policy for each rule Cloudflare can
carry at least in part (see :mod:`extalerts.coverage`), and the webhook destinations they notify.

Ownership: policies whose description starts with ``managed-by=extalerts``, webhook destinations
named ``extalerts-<target>`` (but not those the recipes ask a person to make for a Slack target). Email
targets need no destination; PagerDuty targets must already be connected to the account (that happens in
a browser), and are found by service name.

Rules carried by a Workers Observability alert (beta): the alert itself is made in the dashboard
(cloudflare-docs ``workers/observability/alerts.mdx`` publishes no API for it), but "Deleting an alert also
removes its associated notification policy" and the webhook payload schema names the policy type
``workers_observability_alert``, so extalerts routes it with a policy of that type, when and as the account's
catalogue allows: ``GET …/alerting/v3/available_alerts`` "Gets a list of all alert types for which an account
is eligible" (the SDK's docstring), with the filters each type takes (``filter_options``). The alerts are the
recipes' (:mod:`extalerts.observability_alerts`: ``<rule>``, ``<rule>-N``, ``<rule>-warning``), each routed to
the targets of its level. With a per-alert filter, each alert gets a policy filtered to its name; without one,
a policy routes every Workers Observability alert of the account, so there is one per distinct target set.
The plan says in one line when the type is not offered (nothing is created for it) and when its policies
cannot be filtered per alert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from extalerts.errors import ApiError
from extalerts.observability_alerts import AlertRecipe
from extalerts.providers.base import Action, Change, Resource
from extalerts.providers.cloudflare_api import CloudflareApi
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import Level

POLICY = "notification_policy"
WEBHOOK = "webhook_destination"
MARKER = "managed-by=extalerts"
WEBHOOK_PREFIX = "extalerts-"
WORKERS_OBSERVABILITY_ALERT = "workers_observability_alert"
#: The filter holding the alert states a policy notifies on. Third parties report it required (17103) with
#: ``FIRING_FAILED`` and ``NORMAL`` (SH11235/rshogi PR #707); both are sent, as the docs' "Notify when fired" and
#: "Notify when resolved" and the rule's Datadog and Splunk twins notify on both.
STATUS_FILTER = "status"
NOTIFY_STATUSES = ("FIRING_FAILED", "NORMAL")
#: The filter that would pick the alerts a policy routes, by name. No page documents one for this type: it is
#: used only when the account's catalogue lists it (the SDK's ``PolicyFilter.selectors``: "Usage depends on
#: specific alert type").
ALERT_FILTER = "selectors"
#: The key of an account-wide routing policy (no per-alert filter), followed by its targets.
ACCOUNT_WIDE_PREFIX = "workers-observability-alerts-to-"


def _reachable_targets(rule: ResolvedRule, level: Level) -> list[str]:
    """The rule's targets that take ``level`` and that Cloudflare can notify (email, webhook, PagerDuty)."""
    return [
        name
        for name, target in rule.targets
        if level in target.levels
        and (target.email is not None or target.webhook is not None or target.pagerduty is not None)
    ]


def _is_slack_target(rule: ResolvedRule, target_name: str) -> bool:
    return any(name == target_name and target.slack is not None for name, target in rule.targets)


def _target_kinds(rule: ResolvedRule, level: Level) -> str:
    return ", ".join(f"{name} ({target.kind})" for name, target in rule.targets if level in target.levels) or "none"


def _owned_key(description: str) -> str:
    """The key a managed policy's description carries: its alert, its account-wide route, or its rule."""
    parts: dict[str, str] = {}
    for part in description.split("; "):
        name, marked, value = part.partition("=")
        if marked and name in ("alert", "route", "rule"):
            parts.setdefault(name, value)
    return parts.get("alert") or parts.get("route") or parts.get("rule", "")


def _plain(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json") if hasattr(model, "model_dump") else dict(model)
    return dumped


class NotificationsProvider:
    name: ClassVar[str] = "cloudflare"

    def __init__(self, api: CloudflareApi, available_alerts: dict[str, dict[str, Any]] | None = None) -> None:
        """``available_alerts`` (alert type → catalogue entry) stands for the account's catalogue, which is
        otherwise read once, when a rule needs it."""
        self.api = api
        #: Live webhook destination ids by name, and names by id (filled by fetch and by creates).
        self._webhook_ids: dict[str, str] = {}
        self._pagerduty: dict[str, str] | None = None
        self._available_alerts = available_alerts
        #: What the last ``desired`` could not do as asked, one line each, for the plan.
        self.notes: list[str] = []
        #: Webhook destinations the recipes ask a person to make (a Slack target's incoming-webhook URL is a
        #: secret the spec does not hold): named like ours, never ours to prune. Filled by ``desired``.
        self._hand_made_webhooks: set[str] = set()

    @property
    def target(self) -> str:
        settings = self.api.settings
        return f"{settings.url} account {settings.account_id}"

    # ----------------------------------------------------------------------------------- desired

    def desired(self, spec: Spec) -> list[Resource]:
        from extalerts.coverage import OptionA, option_a

        resources: dict[tuple[str, str], Resource] = {}
        self.notes = []
        self._hand_made_webhooks = set()
        recipes: list[tuple[ResolvedRule, AlertRecipe]] = []
        for rule in spec.rules:
            verdict = option_a(rule, spec.catalog)
            if verdict.option_a is OptionA.NO:
                continue
            if verdict.alert_type is not None:
                self._add_policy(rule, verdict.alert_type, verdict.reason, resources)
            elif verdict.observability is not None:
                recipes.extend((rule, alert) for alert in verdict.observability.alerts)
                self._hand_made_webhooks.update(
                    channel.value
                    for alert in verdict.observability.alerts
                    for channel in alert.channels
                    if channel.type == "Webhooks" and _is_slack_target(rule, channel.target)
                )
        if recipes:
            self._route_observability_alerts(recipes, resources)
        return list(resources.values())

    def _add_policy(
        self, rule: ResolvedRule, alert_type: str, reason: str, resources: dict[tuple[str, str], Resource]
    ) -> None:
        mechanisms = self._mechanisms(rule, Level.ALERT, resources)
        if not mechanisms:
            # The API refuses a policy without a mechanism (17102): say so rather than fail the push.
            self.notes.append(
                f"rule {rule.id}: Cloudflare can notify none of its targets ({_target_kinds(rule, Level.ALERT)}; "
                "it sends email, webhooks and PagerDuty): no notification policy; route its alert in the dashboard "
                "or give it such a target"
            )
            return
        body = {
            "name": f"extalerts: {rule.id}",
            "description": f"{MARKER}; rule={rule.id}; {reason}",
            "alert_type": alert_type,
            "enabled": True,
            "filters": {},
            "mechanisms": mechanisms,
        }
        resources[(POLICY, rule.id)] = Resource(POLICY, rule.id, body, phase=1)

    def _route_observability_alerts(
        self, recipes: list[tuple[ResolvedRule, AlertRecipe]], resources: dict[tuple[str, str], Resource]
    ) -> None:
        """Route each recipe's alert to the targets of its level: one policy per alert, filtered to the alert's
        name, when the catalogue offers a per-alert filter; otherwise one account-wide policy per target set.
        A note (and no policy) when the account is not offered the type."""
        names = ", ".join(alert.name for _, alert in recipes)
        entry = self.available_alerts().get(WORKERS_OBSERVABILITY_ALERT)
        if entry is None:
            self.notes.append(
                f"the account's alert catalogue (available_alerts) does not offer {WORKERS_OBSERVABILITY_ALERT}: "
                f"no notification policy for the alerts {names}; route them in the dashboard"
            )
            return
        options = {str(option.get("Key")): option for option in entry.get("filter_options") or []}
        unknown = [
            key
            for key, option in options.items()
            if str(option.get("Range", "")).startswith("1") and key not in (STATUS_FILTER, ALERT_FILTER)
        ]
        if unknown:
            self.notes.append(
                f"{WORKERS_OBSERVABILITY_ALERT} requires filter {', '.join(sorted(unknown))}, which extalerts "
                f"cannot fill: no notification policy for the alerts {names}"
            )
            return
        filters: dict[str, list[str]] = {}
        if STATUS_FILTER in options:
            offered = {str(value.get("ID")) for value in options[STATUS_FILTER].get("AvailableValues") or []}
            filters[STATUS_FILTER] = [status for status in NOTIFY_STATUSES if not offered or status in offered]
        if ALERT_FILTER in options:
            self._route_each_alert(recipes, filters, resources)
        else:
            self._route_account_wide(recipes, filters, resources)

    def _route_each_alert(
        self,
        recipes: list[tuple[ResolvedRule, AlertRecipe]],
        filters: dict[str, list[str]],
        resources: dict[tuple[str, str], Resource],
    ) -> None:
        """One policy per alert, filtered to the recipe's alert name: the name the dashboard shows and doctor reads."""
        unreachable = []
        for rule, alert in recipes:
            level = alert.spec_level
            mechanisms = self._mechanisms(rule, level, resources)
            if not mechanisms:
                unreachable.append(f"{alert.name} ({_target_kinds(rule, level)})")
                continue
            body = {
                "name": f"extalerts: {alert.name}",
                "description": f"{MARKER}; alert={alert.name}; rule={rule.id}; routes the Workers Observability "
                f"alert {alert.name!r} to the targets of the {alert.level} level",
                "alert_type": WORKERS_OBSERVABILITY_ALERT,
                "enabled": True,
                "filters": {**filters, ALERT_FILTER: [alert.name]},
                "mechanisms": mechanisms,
            }
            resources[(POLICY, alert.name)] = Resource(POLICY, alert.name, body, phase=1)
        if unreachable:
            self.notes.append(
                "Cloudflare can notify none of the targets of the Workers Observability alerts "
                f"{', '.join(unreachable)} (it sends email, webhooks and PagerDuty): no notification policy for "
                "them; their recipes route them in the dashboard"
            )

    def _route_account_wide(
        self,
        recipes: list[tuple[ResolvedRule, AlertRecipe]],
        filters: dict[str, list[str]],
        resources: dict[tuple[str, str], Resource],
    ) -> None:
        """Without a per-alert filter a policy routes every alert of the account: one per distinct target set."""
        groups: dict[tuple[str, ...], tuple[dict[str, list[str]], list[str]]] = {}
        for rule, alert in recipes:
            mechanisms = self._mechanisms(rule, alert.spec_level, resources)
            if not mechanisms:
                continue
            targets = tuple(_reachable_targets(rule, alert.spec_level))
            groups.setdefault(targets, (mechanisms, []))[1].append(alert.name)
        routes = []
        for targets, (mechanisms, alerts) in sorted(groups.items()):
            key = f"{ACCOUNT_WIDE_PREFIX}{'+'.join(targets)}"
            body = {
                "name": f"extalerts: Workers Observability alerts to {', '.join(targets)}",
                "description": f"{MARKER}; route={key}; routes every Workers Observability alert of the account "
                f"(no per-alert filter), for {', '.join(alerts)}",
                "alert_type": WORKERS_OBSERVABILITY_ALERT,
                "enabled": True,
                "filters": dict(filters),
                "mechanisms": mechanisms,
            }
            resources[(POLICY, key)] = Resource(POLICY, key, body, phase=1)
            routes.append(f"to {', '.join(targets)} (for {', '.join(alerts)})")
        if routes:
            count = len(routes)
            self.notes.append(
                f"{WORKERS_OBSERVABILITY_ALERT} policies cannot be filtered per alert (the catalogue offers no "
                f"per-alert filter): {count} account-wide polic{'y routes' if count == 1 else 'ies route'} every "
                f"Workers Observability alert of the account, {'; '.join(routes)}"
            )

    def available_alerts(self) -> dict[str, dict[str, Any]]:
        """The account's alert catalogue, alert type → entry (``filter_options`` as plain dicts); read once."""
        if self._available_alerts is None:
            account = self.api.account_id
            grouped = self.api.call(
                "list available alert types", lambda c: c.alerting.available_alerts.list(account_id=account)
            )
            self._available_alerts = {
                str(item["type"]): item
                for items in (grouped or {}).values()
                for item in map(_plain, items)
                if item.get("type")
            }
        return self._available_alerts

    def _mechanisms(
        self, rule: ResolvedRule, level: Level, resources: dict[tuple[str, str], Resource]
    ) -> dict[str, list[str]]:
        """Email addresses, webhook destination names and PagerDuty service names of the targets that take
        ``level``; ids are looked up when applying."""
        mechanisms: dict[str, list[str]] = {}
        for name, target in rule.targets:
            if level not in target.levels:
                continue
            if target.email is not None:
                mechanisms.setdefault("email", []).extend(target.email.to)
            elif target.webhook is not None:
                webhook = WEBHOOK_PREFIX + name
                mechanisms.setdefault("webhooks", []).append(webhook)
                resources[(WEBHOOK, webhook)] = Resource(WEBHOOK, webhook, {"name": webhook, "url": target.webhook.url})
            elif target.pagerduty is not None:
                mechanisms.setdefault("pagerduty", []).append(target.pagerduty.service)
        return {kind: sorted(set(values)) for kind, values in sorted(mechanisms.items())}

    # ----------------------------------------------------------------------------------- live

    def fetch(self) -> list[Resource]:
        account = self.api.account_id
        webhooks = self.api.call(
            "list webhook destinations", lambda c: list(c.alerting.destinations.webhooks.list(account_id=account))
        )
        found = []
        self._webhook_ids = {}
        for hook in map(_plain, webhooks):
            self._webhook_ids[hook["name"]] = hook["id"]
            name = str(hook.get("name", ""))
            if name.startswith(WEBHOOK_PREFIX) and name not in self._hand_made_webhooks:
                body = {"name": hook["name"], "url": hook.get("url")}
                found.append(Resource(WEBHOOK, hook["name"], body, live_id=hook["id"]))
        policies = self.api.call(
            "list notification policies", lambda c: list(c.alerting.policies.list(account_id=account))
        )
        names = {v: k for k, v in self._webhook_ids.items()}
        pagerduty = {v: k for k, v in self._pagerduty_ids().items()}
        for policy in map(_plain, policies):
            description = str(policy.get("description") or "")
            if not description.startswith(MARKER):
                continue
            key = _owned_key(description)
            raw = policy.get("mechanisms") or {}
            mechanisms = {
                kind: sorted(
                    (names if kind == "webhooks" else pagerduty if kind == "pagerduty" else {}).get(m["id"], m["id"])
                    for m in raw.get(kind) or []
                )
                for kind in sorted(raw)
                if raw.get(kind)
            }
            body = {
                "name": policy.get("name"),
                "description": description,
                "alert_type": policy.get("alert_type"),
                "enabled": policy.get("enabled"),
                "filters": {k: v for k, v in (policy.get("filters") or {}).items() if v},
                "mechanisms": mechanisms,
            }
            found.append(Resource(POLICY, key, body, live_id=policy["id"], phase=1))
        return found

    def _pagerduty_ids(self) -> dict[str, str]:
        """Connected PagerDuty services: name → id."""
        if self._pagerduty is None:
            account = self.api.account_id
            services = self.api.call(
                "list PagerDuty services", lambda c: list(c.alerting.destinations.pagerduty.get(account_id=account))
            )
            self._pagerduty = {s["name"]: s["id"] for s in map(_plain, services)}
        return self._pagerduty

    def normalise(self, resource: Resource) -> dict[str, Any]:
        return dict(resource.body)

    def validate(self, changes: Sequence[Change]) -> list[tuple[Change, str]]:
        problems = []
        connected = None
        for change in changes:
            if change.kind != POLICY or change.desired is None:
                continue
            wanted = change.desired.body["mechanisms"].get("pagerduty", [])
            if wanted:
                connected = connected if connected is not None else self._pagerduty_ids()
                missing = [s for s in wanted if s not in connected]
                if missing:
                    problems.append(
                        (
                            change,
                            f"PagerDuty service {', '.join(missing)} is not connected; connect it in the dashboard",
                        )
                    )
        return problems

    # ----------------------------------------------------------------------------------- apply

    def _api_mechanisms(self, mechanisms: dict[str, list[str]]) -> dict[str, list[dict[str, str]]]:
        ids: dict[str, Callable[[str], str]] = {
            "email": lambda v: v,
            "webhooks": lambda v: self._webhook_ids[v],
            "pagerduty": lambda v: self._pagerduty_ids()[v],
        }
        return {kind: [{"id": ids[kind](value)} for value in values] for kind, values in mechanisms.items()}

    def apply_change(self, change: Change) -> None:
        account = self.api.account_id
        if change.kind == WEBHOOK:
            self._apply_webhook(change)
            return
        if change.action is Action.DELETE:
            policy_id = str(change.live_id)
            self._ignore_missing(lambda c: c.alerting.policies.delete(policy_id, account_id=account), "delete policy")
            return
        assert change.desired is not None
        body = dict(change.desired.body)
        body["mechanisms"] = self._api_mechanisms(body["mechanisms"])
        if change.action is Action.CREATE:
            self.api.call(
                "create notification policy", lambda c: c.alerting.policies.create(account_id=account, **body)
            )
        else:
            policy_id = str(change.live_id)
            self.api.call(
                "update notification policy",
                lambda c: c.alerting.policies.update(policy_id, account_id=account, **body),
            )

    def _apply_webhook(self, change: Change) -> None:
        account = self.api.account_id
        if change.action is Action.DELETE:
            webhook_id = str(change.live_id)
            self._ignore_missing(
                lambda c: c.alerting.destinations.webhooks.delete(webhook_id, account_id=account), "delete webhook"
            )
            return
        assert change.desired is not None
        body = dict(change.desired.body)
        if change.action is Action.CREATE:
            created = self.api.call(
                "create webhook destination",
                lambda c: c.alerting.destinations.webhooks.create(account_id=account, **body),
            )
            self._webhook_ids[body["name"]] = _plain(created)["id"]
        else:
            webhook_id = str(change.live_id)
            self.api.call(
                "update webhook destination",
                lambda c: c.alerting.destinations.webhooks.update(webhook_id, account_id=account, **body),
            )

    def _ignore_missing(self, request: Any, operation: str) -> None:
        try:
            self.api.call(operation, request)
        except ApiError as exc:
            if exc.status != 404:
                raise
