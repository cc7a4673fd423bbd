"""The Datadog emulator's HTTP side: a loopback server speaking the part of the API extalerts uses.

It answers like the real API as documented: key headers are checked (403 without them), bodies are
checked against the ``datadog-api-client`` models and the query grammar (``400 {"errors": […]}``),
the server fills in its defaults on create, lists page with ``page``/``page_size`` and filter by
``monitor_tags``. It can inject faults — 429 with ``X-RateLimit-*`` headers, 500, slow answers,
answers lost after the write was committed, and (asked for alone) requests handled only after the
client gave up — and counts every call, for tests and benchmarks.

Endpoints: ``/api/v1/monitor`` (create, list, get, update, delete, validate; ``group_states`` on get),
``/api/v2/logs/config/metrics`` and ``/api/v1/logs/config/pipelines`` (CRUD; an unknown pipeline id
is answered ``400 {"error": {"code": "InvalidArgument", "message": "Non existing pipeline"}}``, as
Datadog does, not 404), ``/api/v1/logs/config/pipeline-order``, the logs intake ``POST /api/v2/logs``
(API key only, as the intake checks; 202, at most 1,000 logs and 5 MB a request), the Logs Aggregate
API ``POST /api/v2/logs/analytics/aggregate``, the Logs Search API ``POST /api/v2/logs/events/search``
(:mod:`.events`) and webhook integration entries.

What it stores it also runs: the intake keeps each raw log in ``logs`` and its processed form (the
stored pipelines applied, in pipeline order, at intake: :mod:`.pipelines`) in ``store``;
:meth:`DatadogEmulator.evaluate_monitors` evaluates every stored monitor's own query (:mod:`.monitors`)
minute by minute and records group states, whoever pushed or edited it.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from extalerts.emulators.base import LATE, EmulatorServer, Faults
from extalerts.emulators.datadog.facets import Facet, FacetRegistry
from extalerts.emulators.datadog.logs import LogStore, StoredLog
from extalerts.emulators.datadog.monitors import Change, CompiledMonitor, MonitorQueryError, MonitorStates
from extalerts.emulators.datadog.pipelines import MAX_PAST_MS, CompiledPipeline, compile_pipeline, default_timestamp
from extalerts.render.datadog import _model_problems
from extalerts.render.datadog_query import QueryError, parse_monitor_query

MONITOR_TYPES = frozenset(
    {
        "composite",
        "event alert",
        "log alert",
        "metric alert",
        "process alert",
        "query alert",
        "rum alert",
        "service check",
        "synthetics alert",
        "trace-analytics alert",
        "slo alert",
        "event-v2 alert",
        "audit alert",
        "ci-pipelines alert",
        "ci-tests alert",
        "error-tracking alert",
        "database-monitoring alert",
        "network-performance alert",
        "cost alert",
    }
)
#: Options the API adds to a monitor created without them (as recorded from the real API).
SERVER_OPTION_DEFAULTS: dict[str, Any] = {
    "notify_audit": False,
    "silenced": {},
    "include_tags": True,
    "new_host_delay": 300,
    "notify_no_data": False,
    "groupby_simple_monitor": False,
}


@dataclass
class _State:
    monitors: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_monitor_id: int = 1000
    next_pipeline_id: int = 1
    #: Per monitor: group name ("*" without groups) → the group's state, as ``group_states`` shows it.
    groups: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Pipeline ids in processing order: "the pipelines are applied in order" (pipeline order API);
    #: a new pipeline goes last.
    pipeline_order: list[str] = field(default_factory=list)


@dataclass
class _Watched:
    """A monitor under evaluation: its compiled query and group states, and the next minute to evaluate."""

    modified: str
    states: MonitorStates | None
    next_ms: int
    problem: str | None = None


#: The logs intake's documented request limits.
INTAKE_MAX_LOGS = 1000
INTAKE_MAX_BYTES = 5 * 1024 * 1024
#: Worst first: the monitor's overall state is its worst group's.
STATE_ORDER = ("OK", "No Data", "Warn", "Alert")


class _Reply(Exception):
    """Raised by a handler to answer with a status and a JSON body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def _errors(status: int, *messages: str) -> _Reply:
    return _Reply(status, {"errors": list(messages)})


class DatadogEmulator(EmulatorServer):
    """Run with ``with DatadogEmulator(api_key, app_key) as emulator: …emulator.url…``."""

    thread_name = "datadog-emulator"

    def __init__(
        self,
        api_key: str,
        app_key: str,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        facets: Iterable[Facet] = (),
        report: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(host, port, faults, clock)
        self.api_key = api_key
        self.app_key = app_key
        self.state = _State()
        #: Logs received by the intake: each the submitted item with its JSON message decoded into attributes.
        self.logs: list[dict[str, Any]] = []
        #: The same logs after processing, in timestamp order (what searches and monitors read).
        self.store = LogStore()
        self.facets = FacetRegistry(facets)
        #: Where the emulator says what it cannot emulate (an unsupported processor, a query it cannot run).
        self.report = report or (lambda line: None)
        #: Every such line, for tests and ``doctor``.
        self.notes: list[str] = []
        self._compiled: list[CompiledPipeline] | None = None
        self._watched: dict[int, _Watched] = {}
        self._sequence = 0
        self._routes = self._route_table()

    # ----------------------------------------------------------------------------------- helpers for tests

    def add_monitor(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a monitor directly (as if someone clicked it together in the UI)."""
        with self._lock:
            return self._create_monitor(copy.deepcopy(body))

    def monitors(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(m) for _, m in sorted(self.state.monitors.items())]

    def add_webhook(self, name: str, url: str) -> None:
        """Configure a webhook integration entry, as ``@webhook-<name>`` handles address it."""
        with self._lock:
            self.state.webhooks[name] = {"name": name, "url": url, "encode_as": "json"}

    def webhook_url(self, name: str) -> str | None:
        with self._lock:
            hook = self.state.webhooks.get(name)
            return None if hook is None else str(hook["url"])

    def add_facet(self, facet: Facet) -> None:
        """Create a facet or measure, as a user does in the Log Explorer (there is no API for it)."""
        with self._lock:
            self.facets.add(facet)
            self.store.forget_verdicts()
            self._compiled = None

    def remove_facet(self, path: str) -> None:
        with self._lock:
            self.facets.remove(path)
            self.store.forget_verdicts()
            self._compiled = None

    def _note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)
            self.report(line)

    def logs_since(self, offset: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.logs[offset:]

    def set_group_state(self, monitor_id: int, group: str, status: str, at: float) -> None:
        """Record a group's new state (as monitor evaluation does) and update the overall state."""
        with self._lock:
            self._set_group_state(monitor_id, group, status, at)

    def _set_group_state(self, monitor_id: int, group: str, status: str, at: float) -> None:
        monitor = self.state.monitors.get(monitor_id)
        if monitor is None:
            return
        groups = self.state.groups.setdefault(monitor_id, {})
        entry = groups.setdefault(
            group,
            {
                "name": group,
                "last_nodata_ts": None,
                "last_resolved_ts": None,
                "last_triggered_ts": None,
                "last_notified_ts": None,
            },
        )
        entry["status"] = status
        if status in ("Alert", "Warn"):
            entry["last_triggered_ts"] = int(at)
        elif status == "OK":
            entry["last_resolved_ts"] = int(at)
        else:
            entry["last_nodata_ts"] = int(at)
        entry["last_notified_ts"] = int(at)
        overall = max((g["status"] for g in groups.values()), key=STATE_ORDER.index)
        if overall != monitor["overall_state"]:
            monitor["overall_state"] = overall
            monitor["overall_state_modified"] = self._at(at)

    # ----------------------------------------------------------------------------------- routing

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        def r(
            method: str, pattern: str, handler: Callable[..., Any]
        ) -> tuple[str, re.Pattern[str], Callable[..., Any]]:
            return method, re.compile(f"^{pattern}$"), handler

        return [
            r("POST", "/api/v1/monitor/validate", self._validate_monitor),
            r("POST", r"/api/v1/monitor/(\d+)/validate", self._validate_existing_monitor),
            r("GET", "/api/v1/monitor", self._list_monitors),
            r("POST", "/api/v1/monitor", self._post_monitor),
            r("GET", r"/api/v1/monitor/(\d+)", self._get_monitor),
            r("PUT", r"/api/v1/monitor/(\d+)", self._put_monitor),
            r("DELETE", r"/api/v1/monitor/(\d+)", self._delete_monitor),
            r("GET", "/api/v2/logs/config/metrics", self._list_metrics),
            r("POST", "/api/v2/logs/config/metrics", self._post_metric),
            r("GET", "/api/v2/logs/config/metrics/([^/]+)", self._get_metric),
            r("PATCH", "/api/v2/logs/config/metrics/([^/]+)", self._patch_metric),
            r("DELETE", "/api/v2/logs/config/metrics/([^/]+)", self._delete_metric),
            r("GET", "/api/v1/logs/config/pipelines", self._list_pipelines),
            r("POST", "/api/v1/logs/config/pipelines", self._post_pipeline),
            r("GET", "/api/v1/logs/config/pipelines/([^/]+)", self._get_pipeline),
            r("PUT", "/api/v1/logs/config/pipelines/([^/]+)", self._put_pipeline),
            r("DELETE", "/api/v1/logs/config/pipelines/([^/]+)", self._delete_pipeline),
            r("GET", "/api/v1/logs/config/pipeline-order", self._get_pipeline_order),
            r("PUT", "/api/v1/logs/config/pipeline-order", self._put_pipeline_order),
            r("POST", "/api/v2/logs/analytics/aggregate", self._aggregate),
            r("POST", "/api/v2/logs/events/search", self._list_logs),
            r("POST", "/api/v2/logs", self._intake),
            r("POST", "/api/v1/integration/webhooks/configuration/webhooks", self._post_webhook),
            r("GET", "/api/v1/integration/webhooks/configuration/webhooks/([^/]+)", self._get_webhook),
        ]

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        if self.faults.latency:
            time.sleep(self.faults.latency)
        found = next(
            (
                (method, pattern, handler, match)
                for method, pattern, handler in self._routes
                if method == request.command and (match := pattern.match(url.path))
            ),
            None,
        )
        if found is None:
            self._send(request, 404, {"errors": ["Not found"]})
            return
        method, pattern, handler, match = found
        route = f"{method} {pattern.pattern.strip('^$')}"
        with self._lock:
            self.calls[route] += 1
            fault = self._draw_fault(route)
        intake = url.path == "/api/v2/logs"
        if not self._authorised(request, api_key_only=intake):
            self._send(request, 403, _INTAKE_FORBIDDEN if intake else {"errors": ["Forbidden"]})
            return
        if fault == "429":
            self.faults_injected[fault] += 1
            reset = str(self.faults.rate_limit_reset)
            headers = {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Period": "10",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset,
                "X-RateLimit-Name": "monitor_api",
            }
            self._send(request, 429, {"errors": ["Rate limit of 100 requests in 10 seconds reached."]}, headers)
            return
        if fault == "500":
            self.faults_injected[fault] += 1
            self._send(request, 500, {"errors": ["Internal Server Error"]})
            return
        if fault == LATE:
            self.faults_injected[fault] += 1
            time.sleep(self.faults.slow_seconds)  # handled only after the client gave up
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if intake and request.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            if intake and len(raw) > INTAKE_MAX_BYTES:
                self._send(request, 413, _intake_error(413, "Payload Too Large", "the request is over 5 MB"))
                return
            body = json.loads(raw) if raw else None
        except (ValueError, OSError, EOFError):
            self._send(request, 400, {"errors": ["Invalid JSON"]})
            return
        try:
            with self._lock:
                status, payload = 200, handler(*match.groups(), query=query, body=body)
        except _Reply as reply:
            status, payload = reply.status, reply.body
        with self._lock:
            self.requests.append((request.command, url.path, body, status))
        if fault == "lost":
            # The write is committed; the answer never arrives.
            self.faults_injected[fault] += 1
            request.close_connection = True
            request.connection.shutdown(2)
            return
        if fault == "slow":
            self.faults_injected[fault] += 1
            time.sleep(self.faults.slow_seconds)
        self._send(request, status, payload)

    def _authorised(self, request: BaseHTTPRequestHandler, *, api_key_only: bool = False) -> bool:
        if request.headers.get("DD-API-KEY") != self.api_key:
            return False
        return api_key_only or request.headers.get("DD-APPLICATION-KEY") == self.app_key

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
            request.close_connection = True

    def _now(self) -> str:
        return self._at(self.clock())

    @staticmethod
    def _at(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")

    # ----------------------------------------------------------------------------------- monitors

    def _check_monitor(self, body: Any, *, update: bool = False) -> dict[str, Any]:
        from datadog_api_client.v1.model.monitor import Monitor
        from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest

        if not isinstance(body, dict):
            raise _errors(400, "Invalid JSON")
        if not update:
            for required in ("type", "query"):
                if required not in body:
                    raise _errors(400, f"Missing required parameter '{required}'")
        problems = _model_problems(MonitorUpdateRequest if update else Monitor, body)
        if problems:
            raise _errors(400, *problems)
        if "type" in body and body["type"] not in MONITOR_TYPES:
            raise _errors(400, f"Invalid monitor type: {body['type']}")
        return body

    def _check_query(self, monitor: dict[str, Any]) -> None:
        try:
            parsed = parse_monitor_query(monitor["query"], monitor["type"])
        except QueryError as exc:
            raise _errors(400, f"The value provided for parameter 'query' is invalid: {exc}") from None
        critical = (monitor.get("options") or {}).get("thresholds", {}).get("critical")
        if critical is None:
            raise _errors(400, "Alert threshold is required.")
        if float(critical) != parsed.threshold:
            raise _errors(
                400, "The value provided for parameter 'query' is invalid: threshold does not match 'critical'"
            )

    def _with_defaults(self, body: dict[str, Any], monitor_id: int, created: str | None = None) -> dict[str, Any]:
        options = {**SERVER_OPTION_DEFAULTS, **(body.get("options") or {})}
        if options.get("on_missing_data") not in (None, "default"):
            options.pop("notify_no_data", None)
            options.pop("no_data_timeframe", None)
        return {
            "id": monitor_id,
            "name": (body.get("name") or "").strip(),
            "message": (body.get("message") or "").strip(),
            "tags": list(body.get("tags") or []),
            "priority": body.get("priority"),
            "restricted_roles": body.get("restricted_roles"),
            "type": body["type"],
            "query": body["query"],
            "options": options,
            "created": created or self._now(),
            "modified": self._now(),
            "creator": {"email": "extalerts-emulator@example.com", "handle": "extalerts-emulator", "name": "Emulator"},
            "org_id": 1,
            "deleted": None,
            "multi": ".by(" in body["query"] or " by {" in body["query"],
            "overall_state": "No Data",
            "overall_state_modified": None,
        }

    def _create_monitor(self, body: dict[str, Any]) -> dict[str, Any]:
        monitor_id = self.state.next_monitor_id
        self.state.next_monitor_id += 1
        monitor = self._with_defaults(body, monitor_id)
        self.state.monitors[monitor_id] = monitor
        return copy.deepcopy(monitor)

    def _post_monitor(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        monitor = self._check_monitor(body)
        self._check_query(monitor)
        return self._create_monitor(monitor)

    def _validate_monitor(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        self._check_query(self._check_monitor(body))
        return {}

    def _validate_existing_monitor(self, monitor_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        self._monitor(monitor_id)
        return self._validate_monitor(query=query, body=body)

    def _monitor(self, monitor_id: str) -> dict[str, Any]:
        monitor = self.state.monitors.get(int(monitor_id))
        if monitor is None:
            raise _errors(404, "Monitor not found")
        return monitor

    def _list_monitors(self, *, query: dict[str, str], body: Any) -> list[dict[str, Any]]:
        wanted = [t for t in query.get("monitor_tags", "").split(",") if t]
        found = [m for _, m in sorted(self.state.monitors.items()) if all(t in m["tags"] for t in wanted)]
        if "page" in query:
            try:
                page = int(query["page"])
                size = int(query.get("page_size", 100))
            except ValueError:
                raise _errors(400, "Invalid page or page_size") from None
            if page < 0 or not 1 <= size <= 1000:
                raise _errors(400, "page_size must be between 1 and 1000")
            found = found[page * size : (page + 1) * size]
        return copy.deepcopy(found)

    def _get_monitor(self, monitor_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        monitor = copy.deepcopy(self._monitor(monitor_id))
        wanted = {s.strip().lower().replace(" ", "") for s in query.get("group_states", "").split(",") if s.strip()}
        if wanted:
            groups = self.state.groups.get(monitor["id"], {})
            monitor["state"] = {
                "groups": {
                    name: copy.deepcopy(group)
                    for name, group in sorted(groups.items())
                    if "all" in wanted or group["status"].lower().replace(" ", "") in wanted
                }
            }
        return monitor

    def _put_monitor(self, monitor_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        current = self._monitor(monitor_id)
        update = self._check_monitor(body, update=True)
        if "type" in update and update["type"] != current["type"]:
            raise _errors(400, "The monitor type cannot be changed")
        merged = {**current, **update}
        if "options" in update:
            merged["options"] = update["options"]
        self._check_query(merged)
        monitor = self._with_defaults(merged, current["id"], created=current["created"])
        self.state.monitors[current["id"]] = monitor
        return copy.deepcopy(monitor)

    def _delete_monitor(self, monitor_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        monitor = self._monitor(monitor_id)
        del self.state.monitors[monitor["id"]]
        self.state.groups.pop(monitor["id"], None)
        return {"deleted_monitor_id": monitor["id"]}

    # ----------------------------------------------------------------------------------- logs metrics

    def _list_metrics(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        return {"data": [copy.deepcopy(m) for _, m in sorted(self.state.metrics.items())]}

    def _post_metric(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        from datadog_api_client.v2.model.logs_metric_create_request import LogsMetricCreateRequest

        problems = _model_problems(LogsMetricCreateRequest, body) if isinstance(body, dict) else ["Invalid JSON"]
        if problems:
            raise _errors(400, *problems)
        data = body["data"]
        if data["id"] in self.state.metrics:
            raise _errors(409, f"A metric named {data['id']} already exists")
        attributes = copy.deepcopy(data["attributes"])
        attributes.setdefault("filter", {"query": "*"})
        attributes.setdefault("group_by", [])
        metric = {"id": data["id"], "type": "logs_metrics", "attributes": attributes}
        self.state.metrics[data["id"]] = metric
        return {"data": copy.deepcopy(metric)}

    def _metric(self, metric_id: str) -> dict[str, Any]:
        metric = self.state.metrics.get(metric_id)
        if metric is None:
            raise _errors(404, "Not found")
        return metric

    def _get_metric(self, metric_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        return {"data": copy.deepcopy(self._metric(metric_id))}

    def _patch_metric(self, metric_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        from datadog_api_client.v2.model.logs_metric_update_request import LogsMetricUpdateRequest

        metric = self._metric(metric_id)
        problems = _model_problems(LogsMetricUpdateRequest, body) if isinstance(body, dict) else ["Invalid JSON"]
        if problems:
            raise _errors(400, *problems)
        attributes = body["data"].get("attributes", {})
        for key in ("filter", "group_by"):
            if key in attributes:
                metric["attributes"][key] = copy.deepcopy(attributes[key])
        if "compute" in attributes:
            metric["attributes"]["compute"].update(attributes["compute"])
        return {"data": copy.deepcopy(metric)}

    def _delete_metric(self, metric_id: str, *, query: dict[str, str], body: Any) -> None:
        del self.state.metrics[self._metric(metric_id)["id"]]

    # ----------------------------------------------------------------------------------- pipelines

    def _check_pipeline(self, body: Any) -> dict[str, Any]:
        from datadog_api_client.v1.model.logs_pipeline import LogsPipeline

        if not isinstance(body, dict):
            raise _errors(400, "Invalid JSON")
        if "name" not in body:
            raise _errors(400, "Missing required parameter 'name'")
        problems = _model_problems(LogsPipeline, body)
        if problems:
            raise _errors(400, *problems)
        return body

    def _stored_pipeline(self, body: dict[str, Any], pipeline_id: str) -> dict[str, Any]:
        pipeline = {"is_enabled": False, "filter": {"query": ""}, "processors": [], **copy.deepcopy(body)}
        pipeline.update(id=pipeline_id, type="pipeline", is_read_only=False)
        return pipeline

    def _list_pipelines(self, *, query: dict[str, str], body: Any) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for _, p in sorted(self.state.pipelines.items())]

    def _post_pipeline(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        pipeline_id = f"pl{self.state.next_pipeline_id:04d}"
        self.state.next_pipeline_id += 1
        pipeline = self._stored_pipeline(self._check_pipeline(body), pipeline_id)
        self.state.pipelines[pipeline_id] = pipeline
        self.state.pipeline_order.append(pipeline_id)
        self._pipelines_changed(pipeline)
        return copy.deepcopy(pipeline)

    def _pipelines_changed(self, changed: dict[str, Any] | None = None) -> None:
        """Compile the pipelines again for the logs still to come, and say what cannot be emulated."""
        self._compiled = None
        if changed is not None:
            for line in compile_pipeline(changed, self.facets).unsupported:
                self._note(f"pipeline {changed['id']}: {line}")

    def _pipelines(self) -> list[CompiledPipeline]:
        if self._compiled is None:
            self._compiled = [
                compile_pipeline(self.state.pipelines[pid], self.facets)
                for pid in self.state.pipeline_order
                if pid in self.state.pipelines
            ]
        return self._compiled

    def _get_pipeline_order(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        return {"pipeline_ids": list(self.state.pipeline_order)}

    def _put_pipeline_order(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        ids = body.get("pipeline_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or sorted(map(str, ids)) != sorted(self.state.pipeline_order):
            # The order must list exactly the existing pipelines (422, as recorded from the API).
            raise _Reply(
                422,
                _logs_api_error("InvalidArgument", "The pipeline order must list every existing pipeline id once"),
            )
        self.state.pipeline_order = [str(i) for i in ids]
        self._pipelines_changed()
        return {"pipeline_ids": list(self.state.pipeline_order)}

    def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
        pipeline = self.state.pipelines.get(pipeline_id)
        if pipeline is None:
            # The Logs API answers an unknown pipeline id with 400 in its own error envelope, not 404.
            raise _Reply(400, _logs_api_error("InvalidArgument", "Non existing pipeline"))
        return pipeline

    def _get_pipeline(self, pipeline_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        return copy.deepcopy(self._pipeline(pipeline_id))

    def _put_pipeline(self, pipeline_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        self._pipeline(pipeline_id)
        pipeline = self._stored_pipeline(self._check_pipeline(body), pipeline_id)
        self.state.pipelines[pipeline_id] = pipeline
        self._pipelines_changed(pipeline)
        return copy.deepcopy(pipeline)

    def _delete_pipeline(self, pipeline_id: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        del self.state.pipelines[self._pipeline(pipeline_id)["id"]]
        self.state.pipeline_order.remove(pipeline_id)
        self._pipelines_changed()
        return {}

    # ----------------------------------------------------------------------------------- logs intake

    def _intake(self, *, query: dict[str, str], body: Any) -> None:
        items = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(item, dict) for item in items):
            raise _Reply(400, _intake_error(400, "Bad Request", "the body must be a log object or a list of them"))
        if len(items) > INTAKE_MAX_LOGS:
            raise _Reply(413, _intake_error(413, "Payload Too Large", "at most 1000 logs per request"))
        received = self.clock()
        for item in items:
            log = {k: v for k, v in item.items() if k != "message"}
            for key in ("ddsource", "service", "hostname"):
                if key not in log and key in query:
                    log[key] = query[key]
            tags = ",".join(t for t in (query.get("ddtags"), item.get("ddtags")) if t)
            log["ddtags"] = tags
            message = item.get("message")
            attributes: Any = None
            if isinstance(message, str) and message.lstrip().startswith("{"):
                try:
                    attributes = json.loads(message)
                except ValueError:
                    attributes = None
            log["attributes"] = attributes if isinstance(attributes, dict) else {}
            log["message"] = message
            log["received"] = received
            self.logs.append(log)
            self._process(log)
        raise _Reply(202, {})

    def _process(self, raw: dict[str, Any]) -> None:
        """Preprocess and run the pipelines on one received log, once, at intake; store the result."""
        received_ms = int(raw["received"] * 1000)
        attributes = copy.deepcopy(raw["attributes"])
        message = raw.get("message")
        self._sequence += 1
        log = StoredLog(
            sequence=self._sequence,
            timestamp_ms=default_timestamp(attributes, received_ms),
            received_ms=received_ms,
            attributes=attributes,
            tags=[t.strip() for t in str(raw.get("ddtags") or "").split(",") if t.strip()],
            reserved={
                "source": raw.get("ddsource"),
                "service": raw.get("service"),
                "host": raw.get("hostname"),
                # A JSON log's message is its attributes; a text log keeps its text as the message.
                "message": None if raw["attributes"] else message,
                # The status remapper's default attributes; "info" when none is present.
                "status": next(
                    (str(attributes[a]) for a in ("status", "severity", "level") if isinstance(attributes.get(a), str)),
                    "info",
                ),
            },
        )
        for pipeline in self._pipelines():
            pipeline.run(log)
        # "Logs with a timestamp further than 18 hours in the past are dropped at intake."
        if log.timestamp_ms < received_ms - MAX_PAST_MS:
            return
        self.store.add(log)

    def _post_webhook(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("url"):
            raise _errors(400, "Webhook name and url are required")
        if body["name"] in self.state.webhooks:
            raise _errors(409, "Webhook already exists")
        self.state.webhooks[body["name"]] = {"name": body["name"], "url": body["url"], "encode_as": "json"}
        return copy.deepcopy(self.state.webhooks[body["name"]])

    def _get_webhook(self, name: str, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        hook = self.state.webhooks.get(name)
        if hook is None:
            raise _errors(404, "Webhook not found")
        return copy.deepcopy(hook)

    # ----------------------------------------------------------------------------------- monitor evaluation

    def evaluate_monitors(
        self,
        now: float | None = None,
        *,
        only: Callable[[dict[str, Any]], bool] | None = None,
        deadline: float | None = None,
    ) -> list[tuple[dict[str, Any], Change]]:
        """Evaluate every stored monitor (or those ``only`` accepts) at each minute since it was last
        evaluated, up to ``now``; record group states; answer each change with a copy of its monitor.
        Past ``deadline`` (``time.monotonic()``) the rest wait for the next call.

        A monitor is evaluated as it is stored now: edited through the API, it is evaluated as edited
        (its groups keep their states). A query the emulator cannot run is reported once, not evaluated."""
        now_ms = int((self.clock() if now is None else now) * 1000)
        changes: list[tuple[dict[str, Any], Change]] = []
        with self._lock:
            for monitor_id in [m for m in self._watched if m not in self.state.monitors]:
                del self._watched[monitor_id]
            for monitor_id, monitor in sorted(self.state.monitors.items()):
                if only is not None and not only(monitor):
                    continue
                watched = self._watch(monitor)
                if watched.states is None:
                    continue
                snapshot = copy.deepcopy(monitor)
                while watched.next_ms <= now_ms:
                    if deadline is not None and time.monotonic() > deadline:
                        return changes
                    at_ms = watched.next_ms
                    watched.next_ms += 60_000
                    for change in watched.states.step(at_ms):
                        self._record(monitor_id, change)
                        changes.append((snapshot, change))
        return changes

    def evaluate_in_background(self, every_seconds: float) -> None:
        """Evaluate the monitors every ``every_seconds`` in a daemon thread (the standalone emulator:
        group states change as Datadog's would, for ``get_monitor(group_states=…)`` to show)."""

        def run() -> None:
            while True:
                time.sleep(every_seconds)
                try:
                    self.evaluate_monitors()
                except Exception as exc:  # keep evaluating; say what went wrong once
                    self._note(f"evaluation failed: {type(exc).__name__}: {exc}")

        threading.Thread(target=run, name="datadog-evaluation", daemon=True).start()

    def _watch(self, monitor: dict[str, Any]) -> _Watched:
        monitor_id = monitor["id"]
        watched = self._watched.get(monitor_id)
        if watched is not None and watched.modified == monitor["modified"]:
            return watched
        # Datadog evaluates "every minute": from the first minute after the monitor was written.
        start_ms = (_epoch_ms(monitor["modified"]) // 60_000 + 1) * 60_000
        try:
            compiled = CompiledMonitor(monitor, self.store, self.facets, self._metric_definition)
        except MonitorQueryError as exc:
            self._note(f"monitor {monitor_id} is not evaluated: {exc}")
            watched = _Watched(monitor["modified"], None, start_ms, str(exc))
        else:
            states = MonitorStates(compiled)
            if watched is not None and watched.states is not None:
                states.groups = watched.states.groups  # an edit keeps the groups' states
                start_ms = max(start_ms, watched.next_ms) if watched.next_ms else start_ms
            watched = _Watched(monitor["modified"], states, start_ms)
        self._watched[monitor_id] = watched
        return watched

    def _metric_definition(self, name: str) -> dict[str, Any] | None:
        return self.state.metrics.get(name)

    def _record(self, monitor_id: int, change: Change) -> None:
        if change.renotify:
            return
        self._set_group_state(monitor_id, change.group, change.after, change.at_ms / 1000)

    def next_evaluation_ms(self, monitor_id: int) -> int | None:
        with self._lock:
            watched = self._watched.get(monitor_id)
            return None if watched is None or watched.states is None else watched.next_ms

    # ----------------------------------------------------------------------------------- logs aggregate

    def _aggregate(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        from extalerts.emulators.datadog.aggregate import AggregateError, aggregate_logs

        try:
            data = aggregate_logs(body, self.store, self.facets, self.clock())
        except AggregateError as exc:
            raise _errors(400, str(exc)) from None
        return {"meta": {"status": "done", "request_id": f"emulator-{self._sequence}", "elapsed": 0}, "data": data}

    # ----------------------------------------------------------------------------------- logs search

    def _list_logs(self, *, query: dict[str, str], body: Any) -> dict[str, Any]:
        from datadog_api_client.v2.model.logs_list_request import LogsListRequest

        from extalerts.emulators.datadog.events import ListError, list_logs

        problems = _model_problems(LogsListRequest, body) if isinstance(body, dict) else []
        if problems:
            raise _errors(400, *problems)
        try:
            data, after = list_logs(body, self.store, self.facets, self.clock())
        except ListError as exc:
            raise _errors(400, str(exc)) from None
        meta: dict[str, Any] = {"status": "done", "request_id": f"emulator-{self._sequence}", "elapsed": 0}
        if after is not None:
            meta["page"] = {"after": after}
        return {"data": data, "meta": meta}


def _epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _logs_api_error(code: str, message: str) -> dict[str, Any]:
    """The Logs configuration API's error body (``LogsAPIErrorResponse`` in datadog-api-client)."""
    return {"error": {"code": code, "message": message}}


def _intake_error(status: int, title: str, detail: str) -> dict[str, Any]:
    """The intake answers in the v2 (JSON:API) error form."""
    return {"errors": [{"status": str(status), "title": title, "detail": detail}]}


_INTAKE_FORBIDDEN = _intake_error(403, "Forbidden", "Forbidden")
