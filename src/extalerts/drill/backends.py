"""Per provider: create and delete a drill copy, and read back whether it fired.

Both use the same API clients (and retry policy) as plan/push. Each records what it created before
anything else happens, so cleanup can remove it whatever stops the drill.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from extalerts.drill.traffic import GROUP_VALUE as _GROUP_MARKER
from extalerts.drill.view import DRILL_MANAGED_TAG, DRILL_SPLUNK_PREFIX, DRILL_TAG_PREFIX, DrillView
from extalerts.errors import ApiError, ExtalertsError
from extalerts.providers.base import Action, Change, Resource
from extalerts.render.datadog import MANAGED_TAG, DatadogRenderer
from extalerts.render.splunk import SplunkRenderer
from extalerts.render.templates import Templates
from extalerts.spec.models import ChangeSignal, Level

#: Datadog statuses that mean "the alert fired" (No Data: absence monitors that show it).
FIRING = ("Alert", "No Data")


def live_group_marker(view: DrillView) -> str | None:
    """The drill's own group on a production monitor: only when every group field can hold its value."""
    fields = [view.spec.catalog[name] for name in view.original.rule.group_by]
    if fields and not any(f.type.is_numeric or f.type.name == "BOOLEAN" for f in fields):
        return _GROUP_MARKER
    return None


@dataclass
class Observation:
    """What the provider says about the drill copy: first alert, and recovery after it (epoch seconds)."""

    alerted_at: float | None = None
    recovered_at: float | None = None
    status: str = "unknown"
    #: A trigger seen only after the fact (the group already recovered): an alert, or perhaps a warning.
    triggered_at: float | None = None
    may_be_warning: bool = False


@dataclass
class Created:
    """An object the drill works with; ``live`` ones are production objects it must never delete."""

    kind: str
    key: str
    live: bool = False
    #: Only groups whose name holds this count (a live drill's own groups on a production monitor).
    group_marker: str | None = None


class DrillBackend(Protocol):
    provider: str
    #: Splunk alerts are stateless: there is no recovery to wait for.
    tracks_recovery: bool

    def create(self, view: DrillView, created: list[Created]) -> None:
        """Create the drill copy, appending each object to ``created`` as soon as it exists."""

    def attach(self, view: DrillView, created: list[Created]) -> None:
        """Find the rule's production monitor (a live drill); raises ExtalertsError when it is not there."""

    def observe(self, created: list[Created], since: float) -> Observation: ...

    def delete(self, item: Created) -> None: ...

    def sweep(self, drill_id: str | None) -> list[Created]:
        """Objects of this drill the provider holds that ``created`` may not know of (None: of any drill)."""

    def notified(self, created: list[Created], message: dict[str, Any]) -> bool:
        """Whether a sink message is this drill copy's notification."""


class DatadogDrillBackend:
    provider = "datadog"
    tracks_recovery = True

    def __init__(self, api: Any, templates: Templates | None = None) -> None:
        self.api = api
        self.templates = templates or Templates()

    def create(self, view: DrillView, created: list[Created]) -> None:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi
        from datadog_api_client.v1.model.monitor import Monitor
        from datadog_api_client.v2.api.logs_metrics_api import LogsMetricsApi
        from datadog_api_client.v2.model.logs_metric_create_request import LogsMetricCreateRequest

        renderer = DatadogRenderer(view.spec, self.templates)
        if isinstance(view.rule.rule.signal, ChangeSignal):
            metric = renderer.logs_metric(view.rule)
            metric_id = str(metric["data"]["id"])
            created.append(Created("logs metric", metric_id))
            try:
                self.api.call(
                    "create logs metric",
                    lambda client: LogsMetricsApi(client).create_logs_metric(LogsMetricCreateRequest(**metric)),
                )
            except ApiError as exc:
                if exc.status != 409:  # 409: our own create, whose answer was lost
                    raise
        body = renderer.monitor(view.rule)
        body["tags"] = sorted(DRILL_MANAGED_TAG if tag == MANAGED_TAG else tag for tag in body["tags"])
        tag = DRILL_TAG_PREFIX + view.drill_id

        def recover() -> Any:
            # The create landed but its answer was lost: find it by the drill's own tag.
            found = self._monitors_tagged(tag)
            return found[0] if found else None

        answer = self.api.call(
            "create monitor", lambda client: MonitorsApi(client).create_monitor(Monitor(**body)), recover=recover
        )
        created.append(Created("monitor", str(answer["id"])))

    def _monitors_tagged(self, tag: str) -> list[dict[str, Any]]:
        from extalerts.providers.datadog import DatadogProvider

        return [m for m in DatadogProvider(self.api, self.templates).list_monitors(tag) if tag in (m.get("tags") or [])]

    def sweep(self, drill_id: str | None) -> list[Created]:
        """What the drill left that ``created`` does not know of (an answer lost, an interrupt); with
        None, what any drill left (one killed before it could clean up)."""
        from extalerts.providers.datadog import DatadogProvider

        tag = DRILL_MANAGED_TAG if drill_id is None else DRILL_TAG_PREFIX + drill_id
        leftovers = [Created("monitor", str(m["id"])) for m in self._monitors_tagged(tag)]
        metrics = DatadogProvider(self.api, self.templates).fetch_metrics(include_drills=True)
        pattern = re.compile(r"_drill_" + (re.escape(drill_id) if drill_id else "[0-9a-f]{8}") + r"\.events$")
        leftovers += [Created("logs metric", r.key) for r in metrics if pattern.search(r.key)]
        return leftovers

    def attach(self, view: DrillView, created: list[Created]) -> None:
        from extalerts.providers.datadog import DatadogProvider

        rule_id = view.original.id
        found = DatadogProvider(self.api, self.templates).fetch_monitors(rule_id)
        if not found:
            raise ExtalertsError(f"no Datadog monitor for rule {rule_id}: push it before a live drill")
        created.append(Created("monitor", str(found[0].live_id), live=True, group_marker=live_group_marker(view)))

    def observe(self, created: list[Created], since: float) -> Observation:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi

        monitor = next((c for c in created if c.kind == "monitor"), None)
        if monitor is None:
            return Observation()
        answer = self.api.call(
            "get monitor", lambda client: MonitorsApi(client).get_monitor(int(monitor.key), group_states="all")
        )
        body = json.loads(json.dumps(answer.to_dict(), default=str))
        groups = (body.get("state") or {}).get("groups") or {}
        if monitor.group_marker:
            groups = {name: g for name, g in groups.items() if monitor.group_marker in name}
        observation = Observation(status=str(body.get("overall_state")))
        # A warning is not the alert: only Alert counts, or No Data on monitors that show it (absence).
        fired = [float(g.get("last_triggered_ts") or 0) for g in groups.values() if g.get("status") == "Alert"]
        # No Data is never a warning: it counts even when the group has recovered since.
        fired += [float(g["last_nodata_ts"]) for g in groups.values() if g.get("last_nodata_ts") is not None]
        fired = [t for t in fired if t >= since]
        if fired:
            observation.alerted_at = min(fired)
        triggered = [float(g.get("last_triggered_ts") or 0) for g in groups.values()]
        triggered = [t for t in triggered if t >= since]
        if triggered:
            observation.triggered_at = min(triggered)
            thresholds = (body.get("options") or {}).get("thresholds") or {}
            observation.may_be_warning = thresholds.get("warning") is not None
        resolved = [float(g.get("last_resolved_ts") or 0) for g in groups.values()]
        if groups and all(g.get("status") == "OK" for g in groups.values()):
            observation.recovered_at = max(resolved)
        return observation

    def delete(self, item: Created) -> None:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi
        from datadog_api_client.v2.api.logs_metrics_api import LogsMetricsApi

        if item.live:
            return
        try:
            if item.kind == "monitor":
                self.api.call("delete monitor", lambda client: MonitorsApi(client).delete_monitor(int(item.key)))
            else:
                self.api.call("delete logs metric", lambda client: LogsMetricsApi(client).delete_logs_metric(item.key))
        except ApiError as exc:
            if exc.status != 404:  # already gone
                raise

    def notified(self, created: list[Created], message: dict[str, Any]) -> bool:
        body = message.get("body")
        ids = {c.key for c in created if c.kind == "monitor"}
        if not any(c.live for c in created):
            return isinstance(body, dict) and str(body.get("alert_id")) in ids and body.get("alert_status") in FIRING
        # On a production monitor only the drill's own group counts (when the rule has groups).
        marker = next((c.group_marker for c in created if c.live), None)
        scope = str(body.get("alert_scope", "")) if isinstance(body, dict) else ""
        if marker and marker not in scope:
            return False
        return isinstance(body, dict) and str(body.get("alert_id")) in ids and body.get("alert_status") in FIRING


def _last_failure(service: Any, name: str) -> str | None:
    """Why the saved search's latest scheduled run failed (its history's newest job), or None."""
    try:
        search = service.saved_searches[name]
    except KeyError:
        return None
    body = json.loads(search.get("history", output_mode="json", count=1).body.read() or b"{}")
    for entry in body.get("entry") or []:
        content = entry.get("content") or {}
        if str(content.get("isFailed")) in ("1", "true", "True"):
            messages = content.get("messages") or {}
            return "; ".join(str(m) for texts in messages.values() for m in texts) or "the run failed"
        return None
    return None


class SplunkDrillBackend:
    provider = "splunk"
    tracks_recovery = False

    def __init__(self, provider: Any) -> None:
        #: A SplunkProvider: its create and delete carry the ACL, retries and lost-answer recovery.
        self.splunk = provider

    def create(self, view: DrillView, created: list[Created]) -> None:
        from extalerts.providers.splunk import ACL, SAVED_SEARCH
        from extalerts.render.splunk_keys import rest_payload

        self.splunk.api.app = view.spec.splunk_app
        renderer = SplunkRenderer(view.spec, self.splunk.templates)
        alert = next(a for a in renderer.alerts(view.rule) if a.level is Level.ALERT)
        name = DRILL_SPLUNK_PREFIX + view.rule.id
        created.append(Created("saved search", name))
        desired = Resource(SAVED_SEARCH, name, {"params": rest_payload(alert.settings), "acl": dict(ACL)})
        self.splunk.apply_change(Change(Action.CREATE, SAVED_SEARCH, name, desired, None))

    def attach(self, view: DrillView, created: list[Created]) -> None:
        from extalerts.render.splunk import saved_search_name

        self.splunk.api.app = view.spec.splunk_app
        name = saved_search_name(view.original.id)
        if self.splunk._exists(name) is None:
            raise ExtalertsError(f"no Splunk alert {name!r}: push it before a live drill")
        created.append(Created("saved search", name, live=True))

    def observe(self, created: list[Created], since: float) -> Observation:
        service = self.splunk.api.service()
        item = created[-1] if created else None
        if item is None:
            return Observation()

        def fired() -> list[float]:
            try:
                search = service.saved_searches[item.key]
            except KeyError:
                return []
            return [float(alert.content.get("trigger_time", 0)) for alert in search.fired_alerts]

        times = [t for t in self.splunk.api.call("read fired alerts", fired) if t >= since]
        if not times:
            failure = self.splunk.api.call("read the search's runs", lambda: _last_failure(service, item.key))
            if failure:
                raise ExtalertsError(f"Splunk cannot run the saved search {item.key!r}: {failure}")
        return Observation(alerted_at=min(times) if times else None, status=f"{len(times)} fired")

    def delete(self, item: Created) -> None:
        from extalerts.providers.splunk import SAVED_SEARCH

        if item.live:
            return
        live = Resource(SAVED_SEARCH, item.key, {}, live_id=item.key)
        with contextlib.suppress(KeyError):
            self.splunk.apply_change(Change(Action.DELETE, SAVED_SEARCH, item.key, None, live))

    def sweep(self, drill_id: str | None) -> list[Created]:
        suffix = f"-drill-{drill_id}" if drill_id else ""
        names = [entity.name for entity in self.splunk.list_saved_searches(DRILL_SPLUNK_PREFIX)]
        chosen = [n for n in names if n.startswith(DRILL_SPLUNK_PREFIX) and n.endswith(suffix)]
        return [Created("saved search", name) for name in chosen]

    def notified(self, created: list[Created], message: dict[str, Any]) -> bool:
        body = message.get("body")
        names = {c.key for c in created}
        return isinstance(body, dict) and body.get("search_name") in names
