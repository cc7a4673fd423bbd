"""The Datadog provider: monitors, log-based metrics and the structured-log pipeline, through the
official ``datadog-api-client``.

Ownership: monitors carry ``managed-by:extalerts`` and ``extalerts-rule:<id>`` and are listed by
that tag with every page read; log-based metrics are named ``extalerts.*``; the pipeline's name
starts with ``extalerts:``. Nothing else is ever changed or deleted.

Retries are ours, not the client's: the client would retry a create after a timeout and could
duplicate the monitor. Before retrying a create whose answer was lost, we look the rule up by its tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from extalerts.errors import ApiError, ConfigError, ProviderError
from extalerts.providers.api import ClientApi
from extalerts.providers.base import Action, Change, Resource
from extalerts.redact import redact
from extalerts.render.datadog import MANAGED_TAG, PIPELINE_NAME, RULE_TAG_PREFIX, DatadogRenderer, metric_name
from extalerts.render.templates import Templates
from extalerts.retry import Verdict, classify_status, parse_reset_header
from extalerts.spec.loader import Spec
from extalerts.spec.models import ChangeSignal

MONITOR = "monitor"
LOGS_METRIC = "logs_metric"
LOGS_PIPELINE = "logs_pipeline"
#: The message of the Logs API's answer to an unknown pipeline id.
MISSING_PIPELINE = "Non existing pipeline"
METRIC_PREFIX = "extalerts."
PIPELINE_PREFIX = "extalerts:"
PAGE_SIZE = 1000

#: Datadog sites and their API hosts (``DD_SITE``).
SITES = {
    "datadoghq.com": "https://api.datadoghq.com",
    "us3.datadoghq.com": "https://api.us3.datadoghq.com",
    "us5.datadoghq.com": "https://api.us5.datadoghq.com",
    "datadoghq.eu": "https://api.datadoghq.eu",
    "ap1.datadoghq.com": "https://api.ap1.datadoghq.com",
    "ap2.datadoghq.com": "https://api.ap2.datadoghq.com",
    "ddog-gov.com": "https://api.ddog-gov.com",
}

#: Fields the server owns on a monitor; never part of a comparison.
MONITOR_SERVER_FIELDS = frozenset(
    {
        "id",
        "created",
        "created_at",
        "creator",
        "deleted",
        "modified",
        "multi",
        "org_id",
        "overall_state",
        "overall_state_modified",
        "state",
        "matching_downtimes",
        "restricted_roles",
        "draft_status",
        "assets",
    }
)
#: Options the server fills in when they are not sent, with the value it fills in. A live value equal
#: to its default compares equal to an absent one; any other value (an edit in the UI) is drift.
MONITOR_OPTION_DEFAULTS: Mapping[str, Any] = {
    "notify_audit": False,
    "silenced": {},
    "include_tags": True,
    "new_host_delay": 300,
    "notify_no_data": False,
    "groupby_simple_monitor": False,
    "require_full_window": False,
    "renotify_interval": None,
    "renotify_statuses": None,
    "timeout_h": None,
    "escalation_message": "",
    "locked": False,
    "no_data_timeframe": None,
    "evaluation_delay": None,
    "new_group_delay": None,
    "enable_logs_sample": False,
    "on_missing_data": "default",
}


#: Log-based metrics of drill copies (``extalerts.<rule>_drill_<id>.events``).
_DRILL_METRIC = re.compile(r"_drill_[0-9a-f]{8}\.events$")
#: The API base URL when ``--api-url`` is not given (the sandbox sets it); DD_SITE picks it otherwise.
DATADOG_API_URL_ENV = "EXTALERTS_DATADOG_API_URL"


@dataclass(frozen=True)
class DatadogSettings:
    """Where and as whom to connect. Keys come from the environment only and are never printed."""

    api_url: str
    api_key: str = field(repr=False)
    app_key: str = field(repr=False)
    timeout: float = 30.0
    #: Where ``api_url`` came from, for messages.
    url_source: str = f"--api-url or {DATADOG_API_URL_ENV}"
    #: The variables holding the keys, for messages.
    credentials: str = "DD_API_KEY and DD_APP_KEY"

    @property
    def url(self) -> str:
        return self.api_url

    @classmethod
    def from_env(cls, api_url: str | None = None, env: Mapping[str, str] | None = None) -> DatadogSettings:
        environ = os.environ if env is None else env
        for name in ("DD_API_KEY", "DD_APP_KEY"):
            if not environ.get(name):
                raise ConfigError(
                    f"{name} is not set; export it (extalerts reads Datadog keys only from the environment)"
                )
        if api_url:
            source = "--api-url"
        elif environ.get(DATADOG_API_URL_ENV):
            api_url, source = environ[DATADOG_API_URL_ENV], DATADOG_API_URL_ENV
        else:
            site = environ.get("DD_SITE") or "datadoghq.com"
            if site not in SITES:
                raise ConfigError(f"DD_SITE={site} is not a Datadog site ({', '.join(SITES)}); or pass --api-url")
            api_url, source = SITES[site], f"DD_SITE={site}; --api-url or {DATADOG_API_URL_ENV} sets another"
        redact(environ["DD_API_KEY"], environ["DD_APP_KEY"])
        return cls(
            api_url=api_url.rstrip("/"),
            api_key=environ["DD_API_KEY"],
            app_key=environ["DD_APP_KEY"],
            url_source=source,
        )


class DatadogApi(ClientApi[DatadogSettings]):
    """The official client, one per thread, with our retry policy and a count of calls per operation."""

    def _setup(self) -> None:
        self._local = threading.local()

    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import urllib3
            from datadog_api_client import ApiClient, Configuration

            config = Configuration(host=self.settings.api_url, request_timeout=self.settings.timeout)
            config.api_key["apiKeyAuth"] = self.settings.api_key
            config.api_key["appKeyAuth"] = self.settings.app_key
            config.enable_retry = False
            # No transport-level retries either: every retry decision is ours (see the module docstring).
            config.retry_policy = urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False)
            client = ApiClient(config)
            self._local.client = client
        return client

    def classify(self, operation: str, exc: Exception) -> Verdict | None:
        import urllib3.exceptions
        from datadog_api_client.exceptions import ApiException

        if isinstance(exc, ApiException):
            if not exc.status:
                # The client turns a TLS error into an ApiException with status 0; the cause is its context.
                return None if exc.__context__ is None else self.network_verdict(operation, exc, (ApiException,))
            headers = exc.headers or {}
            reset = parse_reset_header(headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset"))
            error = _api_error(operation, exc, self.auth_hint(int(exc.status)))
            return Verdict(classify_status(exc.status), lambda attempts: error, reset)
        return self.network_verdict(operation, exc, (urllib3.exceptions.HTTPError,))


def _api_error(operation: str, exc: Any, hint: str) -> ApiError:
    errors: list[str] = []
    body = exc.body
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            errors = [str(body)[:300]]
    if isinstance(body, dict):
        raw = body.get("errors", [])
        if isinstance(raw, list):
            errors = [e if isinstance(e, str) else json.dumps(e, sort_keys=True) for e in raw]
        elif isinstance(raw, dict):
            errors = [f"{k}: {v}" for k, v in sorted(raw.items())]
        if not errors and isinstance(body.get("error"), dict):
            errors = _logs_api_errors(body["error"])
    headers = exc.headers or {}
    request_id = headers.get("x-request-id") or headers.get("X-Request-Id")
    return ApiError(operation, int(exc.status), errors, request_id, hint)


def _logs_api_errors(error: Mapping[str, Any]) -> list[str]:
    """The Logs configuration API's own envelope, ``{"error": {"code", "message", "details": [...]}}``
    (``LogsAPIErrorResponse``), as ``code: message`` lines, each detail after its parent."""
    code, message = error.get("code"), error.get("message")
    text = ": ".join(str(part) for part in (code, message) if part)
    lines = [text] if text else []
    for detail in error.get("details") or []:
        if isinstance(detail, dict):
            lines.extend(_logs_api_errors(detail))
    return lines


def _pipeline_missing(exc: ApiError) -> bool:
    """Whether the answer says the pipeline does not exist: the Logs API answers an unknown pipeline
    id with ``400 InvalidArgument: Non existing pipeline``, not 404."""
    return exc.status == 404 or (exc.status == 400 and any(MISSING_PIPELINE in error for error in exc.errors))


def _plain(value: Any) -> Any:
    """A client model (or anything) → JSON-compatible plain data."""
    if hasattr(value, "value") and isinstance(value.value, list):  # a list model (ModelSimple)
        value = value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.loads(json.dumps(value, default=str))


class DatadogProvider:
    """Plan against and push to one Datadog organisation."""

    name: ClassVar[str] = "datadog"

    def __init__(self, api: DatadogApi, templates: Templates | None = None, concurrency: int = 8) -> None:
        self.api = api
        self.templates = templates or Templates()
        #: Parallel validate calls (writes are parallelised by the apply machinery).
        self.concurrency = concurrency

    @property
    def target(self) -> str:
        # The site's URL is shared by every organisation on it; the API key (as a short digest,
        # never the key) tells them apart.
        digest = hashlib.sha256(self.api.settings.api_key.encode()).hexdigest()[:12]
        return f"{self.api.settings.api_url} key-sha256:{digest}"

    # ----------------------------------------------------------------------------------- desired

    def desired(self, spec: Spec) -> list[Resource]:
        renderer = DatadogRenderer(spec, self.templates)
        resources: list[Resource] = []
        pipeline = renderer.pipeline()
        if pipeline is not None:
            resources.append(Resource(LOGS_PIPELINE, PIPELINE_NAME, pipeline, phase=0))
        for rule in spec.rules:
            if isinstance(rule.rule.signal, ChangeSignal):
                resources.append(Resource(LOGS_METRIC, metric_name(rule), renderer.logs_metric(rule), phase=1))
            resources.append(Resource(MONITOR, rule.id, renderer.monitor(rule), phase=2))
        return resources

    # ----------------------------------------------------------------------------------- live

    def fetch(self) -> list[Resource]:
        return [*self.fetch_pipelines(), *self.fetch_metrics(), *self.fetch_monitors()]

    def list_monitors(self, monitor_tags: str) -> list[dict[str, Any]]:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi

        found: list[dict[str, Any]] = []
        page = 0
        while True:

            def list_page(client: Any, page: int = page) -> Any:
                return MonitorsApi(client).list_monitors(monitor_tags=monitor_tags, page=page, page_size=PAGE_SIZE)

            batch = self.api.call("list monitors", list_page)
            found.extend(_plain(m) for m in batch)
            if len(batch) < PAGE_SIZE:
                return found
            page += 1

    def fetch_monitors(self, rule_id: str | None = None) -> list[Resource]:
        tags = MANAGED_TAG if rule_id is None else f"{MANAGED_TAG},{RULE_TAG_PREFIX}{rule_id}"
        resources = []
        for body in self.list_monitors(tags):
            tags_of = body.get("tags") or []
            if MANAGED_TAG not in tags_of:
                continue  # the filter is the server's; check it ourselves too
            keys = [t[len(RULE_TAG_PREFIX) :] for t in tags_of if t.startswith(RULE_TAG_PREFIX)]
            if len(keys) != 1:
                continue  # not ours in a form we understand: never touch it
            resources.append(Resource(MONITOR, keys[0], body, live_id=str(body["id"]), phase=2))
        return resources

    def fetch_metrics(self, *, include_drills: bool = False) -> list[Resource]:
        from datadog_api_client.v2.api.logs_metrics_api import LogsMetricsApi

        response = self.api.call("list logs metrics", lambda client: LogsMetricsApi(client).list_logs_metrics())
        resources = []
        for item in _plain(response).get("data", []):
            metric_id = str(item.get("id", ""))
            if not include_drills and _DRILL_METRIC.search(metric_id):
                continue  # a running drill's metric: the drill owns it, not the spec
            if metric_id.startswith(METRIC_PREFIX):
                resources.append(Resource(LOGS_METRIC, item["id"], {"data": item}, live_id=item["id"], phase=1))
        return resources

    def fetch_pipelines(self) -> list[Resource]:
        from datadog_api_client.v1.api.logs_pipelines_api import LogsPipelinesApi

        response = self.api.call("list log pipelines", lambda client: LogsPipelinesApi(client).list_logs_pipelines())
        resources = []
        for item in _plain(response):
            if str(item.get("name", "")).startswith(PIPELINE_PREFIX):
                resources.append(Resource(LOGS_PIPELINE, item["name"], item, live_id=str(item["id"]), phase=0))
        return resources

    # ----------------------------------------------------------------------------------- compare

    def normalise(self, resource: Resource) -> dict[str, Any]:
        body = _plain(resource.body)
        if resource.kind == MONITOR:
            return normalise_monitor(body)
        if resource.kind == LOGS_METRIC:
            attributes = body.get("data", {}).get("attributes", {})
            compute = dict(attributes.get("compute") or {})
            if compute.get("aggregation_type") == "count":
                compute.pop("include_percentiles", None)
            return {
                "compute": compute,
                "filter": {"query": (attributes.get("filter") or {}).get("query", "*")},
                "group_by": sorted(attributes.get("group_by") or [], key=lambda g: json.dumps(g, sort_keys=True)),
            }
        return {k: v for k, v in body.items() if k not in ("id", "type", "is_read_only")}

    # ----------------------------------------------------------------------------------- validate

    def validate(self, changes: Sequence[Change]) -> list[tuple[Change, str]]:
        monitors = [c for c in changes if c.kind == MONITOR and c.action in (Action.CREATE, Action.UPDATE)]
        if not monitors:
            return []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            answers = list(pool.map(self._validate_one, monitors))
        return [(change, problem) for change, problem in zip(monitors, answers, strict=True) if problem]

    def _validate_one(self, change: Change) -> str:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi
        from datadog_api_client.v1.model.monitor import Monitor

        assert change.desired is not None
        body = dict(change.desired.body)
        try:
            self.api.call("validate monitor", lambda client: MonitorsApi(client).validate_monitor(Monitor(**body)))
        except ApiError as exc:
            if exc.status == 400:
                return "; ".join(exc.errors)
            raise
        return ""

    # ----------------------------------------------------------------------------------- apply

    def apply_change(self, change: Change) -> None:
        handlers = {
            MONITOR: (self._create_monitor, self._update_monitor, self._delete_monitor),
            LOGS_METRIC: (self._create_metric, self._update_metric, self._delete_metric),
            LOGS_PIPELINE: (self._create_pipeline, self._update_pipeline, self._delete_pipeline),
        }
        create, update, delete = handlers[change.kind]
        if change.action is Action.CREATE:
            create(change)
        elif change.action is Action.UPDATE:
            update(change)
        elif change.action is Action.DELETE:
            delete(change)

    def _create_monitor(self, change: Change) -> None:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi
        from datadog_api_client.v1.model.monitor import Monitor

        assert change.desired is not None
        body = dict(change.desired.body)

        def create(client: Any) -> Resource:
            created = _plain(MonitorsApi(client).create_monitor(Monitor(**body)))
            return Resource(MONITOR, change.key, created, live_id=str(created["id"]), phase=2)

        def recover() -> Resource | None:
            existing = self.fetch_monitors(change.key)
            return existing[0] if existing else None

        def settle(kept: Resource) -> None:
            for extra in self.api.late_duplicates(kept, lambda: self.fetch_monitors(change.key)):
                self._delete_monitor(Change(Action.DELETE, MONITOR, change.key, None, extra))

        created = self.api.call("create monitor", create, recover=recover, settle=settle)
        if self.normalise(created) != self.normalise(change.desired):
            # Our create landed before its answer was lost, and differs (someone edited it since): update.
            self._update_monitor(Change(Action.UPDATE, MONITOR, change.key, change.desired, created))

    def _update_monitor(self, change: Change) -> None:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi
        from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest

        assert change.desired is not None
        assert change.live_id is not None
        body = dict(change.desired.body)
        monitor_id = int(change.live_id)
        self.api.call(
            "update monitor",
            lambda client: MonitorsApi(client).update_monitor(monitor_id, MonitorUpdateRequest(**body)),
        )

    def _delete_monitor(self, change: Change) -> None:
        from datadog_api_client.v1.api.monitors_api import MonitorsApi

        assert change.live_id is not None
        monitor_id = int(change.live_id)
        try:
            self.api.call("delete monitor", lambda client: MonitorsApi(client).delete_monitor(monitor_id))
        except ApiError as exc:
            if exc.status != 404:  # already gone, e.g. our earlier attempt's answer was lost
                raise

    def _create_metric(self, change: Change) -> None:
        from datadog_api_client.v2.api.logs_metrics_api import LogsMetricsApi
        from datadog_api_client.v2.model.logs_metric_create_request import LogsMetricCreateRequest

        assert change.desired is not None
        body = _plain(change.desired.body)
        try:
            self.api.call(
                "create logs metric",
                lambda client: LogsMetricsApi(client).create_logs_metric(LogsMetricCreateRequest(**body)),
            )
        except ApiError as exc:
            if exc.status != 409:
                raise
            # It exists: a lost answer to our own create. Make it match.
            self._update_metric(Change(Action.UPDATE, LOGS_METRIC, change.key, change.desired, None))

    def _update_metric(self, change: Change) -> None:
        from datadog_api_client.v2.api.logs_metrics_api import LogsMetricsApi
        from datadog_api_client.v2.model.logs_metric_update_request import LogsMetricUpdateRequest

        assert change.desired is not None
        attributes = _plain(change.desired.body)["data"]["attributes"]
        update = {
            "data": {
                "type": "logs_metrics",
                "attributes": {"filter": attributes.get("filter", {}), "group_by": attributes.get("group_by", [])},
            }
        }
        self.api.call(
            "update logs metric",
            lambda client: LogsMetricsApi(client).update_logs_metric(change.key, LogsMetricUpdateRequest(**update)),
        )

    def _delete_metric(self, change: Change) -> None:
        from datadog_api_client.v2.api.logs_metrics_api import LogsMetricsApi

        try:
            self.api.call("delete logs metric", lambda client: LogsMetricsApi(client).delete_logs_metric(change.key))
        except ApiError as exc:
            if exc.status != 404:
                raise

    def _create_pipeline(self, change: Change) -> None:
        from datadog_api_client.v1.api.logs_pipelines_api import LogsPipelinesApi
        from datadog_api_client.v1.model.logs_pipeline import LogsPipeline

        assert change.desired is not None
        body = _plain(change.desired.body)

        def create(client: Any) -> Resource:
            created = _plain(LogsPipelinesApi(client).create_logs_pipeline(LogsPipeline(**body)))
            return Resource(LOGS_PIPELINE, change.key, created, live_id=str(created["id"]), phase=0)

        def ours() -> list[Resource]:
            return [p for p in self.fetch_pipelines() if p.key == change.key]

        def recover() -> Resource | None:
            return next(iter(ours()), None)

        def settle(kept: Resource) -> None:
            for extra in self.api.late_duplicates(kept, ours):
                self._delete_pipeline(Change(Action.DELETE, LOGS_PIPELINE, change.key, None, extra))

        created = self.api.call("create log pipeline", create, recover=recover, settle=settle)
        if self.normalise(created) != self.normalise(change.desired):
            self._update_pipeline(Change(Action.UPDATE, LOGS_PIPELINE, change.key, change.desired, created))

    def _update_pipeline(self, change: Change) -> None:
        from datadog_api_client.v1.api.logs_pipelines_api import LogsPipelinesApi
        from datadog_api_client.v1.model.logs_pipeline import LogsPipeline

        assert change.desired is not None
        assert change.live_id is not None
        body = _plain(change.desired.body)
        pipeline_id = change.live_id
        try:
            self.api.call(
                "update log pipeline",
                lambda client: LogsPipelinesApi(client).update_logs_pipeline(pipeline_id, LogsPipeline(**body)),
            )
        except ApiError as exc:
            if not _pipeline_missing(exc):
                raise
            raise ProviderError(
                f"update log pipeline: pipeline {pipeline_id} ({change.key}) no longer exists in Datadog "
                "(deleted since the plan was made); push again to create it"
            ) from exc

    def _delete_pipeline(self, change: Change) -> None:
        from datadog_api_client.v1.api.logs_pipelines_api import LogsPipelinesApi

        assert change.live_id is not None
        pipeline_id = change.live_id
        try:
            self.api.call(
                "delete log pipeline", lambda client: LogsPipelinesApi(client).delete_logs_pipeline(pipeline_id)
            )
        except ApiError as exc:
            if not _pipeline_missing(exc):  # already gone, e.g. our earlier attempt's answer was lost
                raise


def normalise_monitor(body: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable projection of a monitor, desired or live."""
    out = {k: v for k, v in body.items() if k not in MONITOR_SERVER_FIELDS and v is not None}
    for key in ("name", "message"):
        if isinstance(out.get(key), str):
            out[key] = out[key].strip()
    out["tags"] = sorted(set(out.get("tags") or []))
    options = dict(out.get("options") or {})
    if options.get("on_missing_data") not in (None, "default"):
        # The API drops these when on_missing_data is set.
        options.pop("notify_no_data", None)
        options.pop("no_data_timeframe", None)
    for key, default in MONITOR_OPTION_DEFAULTS.items():
        if key in options and options[key] == default:
            del options[key]
    options = {k: v for k, v in options.items() if v is not None}
    if "thresholds" in options:
        options["thresholds"] = {k: v for k, v in options["thresholds"].items() if v is not None}
    out["options"] = options
    return out
