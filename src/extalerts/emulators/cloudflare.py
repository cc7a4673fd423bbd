"""A local Cloudflare API emulator: a loopback HTTP server speaking the part of the v4 API extalerts uses.

Point the official SDK at it with ``Cloudflare(api_token=…, base_url=emulator.url)`` (``url`` ends in
``/client/v4``). Every answer is the v4 envelope ``{"success", "errors", "messages", "result"}`` and nothing
else. Emulated (one account; zone-scoped routes are not served):

- Auth: ``Authorization: Bearer <token>``; a missing or wrong token, or another account id in the path,
  answers 403 ``{"code": 10000, "message": "Authentication error"}``.
- Logpush jobs, ``/accounts/{id}/logpush/jobs`` (list, create) and ``…/jobs/{job_id}`` (get, update, delete),
  plus ``…/logpush/datasets/{dataset}/jobs`` and ``…/datasets/workers_trace_events/fields``. Jobs are created
  disabled unless ``enabled: true`` is sent; ``dataset`` and ``kind`` are fixed at creation; a PUT changes the
  top-level fields it names and replaces ``output_options`` wholesale (keys it omits go back to their
  defaults); ``filter`` is a string holding JSON checked against the filter grammar (root ``{"where": …}``,
  ``and``/``or``, the documented operators, value kinds per field of ``workers_trace_events``, ``in`` takes a
  JSON array, about 30 operators and 1000 bytes); ``max_upload_*`` ranges; the job name pattern; at most
  ``max_jobs`` (4) jobs per account; ``id``, ``last_complete``, ``last_error`` and ``error_message`` are the
  server's. ``set_job_error`` / ``set_job_complete`` set a job's health as Logpush would.
- ``…/logpush/validate/destination`` (``{valid, message}``; Datadog and Splunk HEC URLs checked as their
  pages document, other schemes loosely) and ``…/validate/destination/exists`` (``{exists}``).
- Notifications: ``/accounts/{id}/alerting/v3/policies`` (CRUD), ``…/available_alerts`` (a grouped catalogue,
  ``add_alert_type`` extends it; policies of other types are refused), ``…/destinations/webhooks`` (CRUD; the
  secret is never returned), ``…/destinations/pagerduty`` (``GET``: the connected services, ``{id, name}``;
  connecting one is a browser flow, so ``add_pagerduty``/``connect_pagerduty`` stand for it). Policies name
  webhooks that exist and connected PagerDuty services; their filter keys must be ones the catalogue lists for
  the alert type, with values among its ``AvailableValues`` when it lists any. ``workers_observability_alert``
  (Workers Observability Alerts, beta) is off the catalogue unless ``offer_workers_observability_alert`` puts it
  there: with a required ``status`` filter (``FIRING_FAILED``/``NORMAL``), without ``alert_interval``, and, when
  asked, a per-alert ``selectors`` filter.
- Workers script settings, as the SDK reads them: ``GET``/``PATCH`` ``/accounts/{id}/workers/scripts/{name}/
  script-settings`` (``workers.scripts.settings``) and ``GET …/{name}/settings``
  (``workers.scripts.script_and_version_settings``), with the ``logpush`` flag and ``observability`` (Workers
  Logs: ``enabled``, ``head_sampling_rate``, ``logs{enabled, invocation_logs, head_sampling_rate}``, the SDK's
  ``ScriptSetting``); ``add_script`` creates a script; an unknown one answers 404 ``{"code": 10007, "message":
  "workers.api.error.script_not_found"}``.
- UNDOCUMENTED, off by default: ``GET /accounts/{id}/workers/observability/alerts``, the Workers Observability
  alerts configured in the dashboard (``set_observability_alerts``); while off it answers as an unrouted path
  (or 404/405 when asked). Nothing writes to it.

Faults (``extalerts.emulators.base.Faults``): ``"429"`` (with ``retry-after``), ``"500"``, ``"slow"`` and
``"lost"`` (the write is committed, the answer never arrives). Calls are counted per route in ``calls`` (keys
like ``GET /accounts/{account}/logpush/jobs/{job}``) and every answered request is logged in ``requests``.
Helpers for tests: ``reset``, ``set_faults``, ``add_job``, ``add_script``, ``add_pagerduty``, ``connect_pagerduty``,
``add_alert_type``, ``offer_workers_observability_alert``, ``set_observability_alerts``, ``set_job_error``,
``set_job_complete``, ``jobs``, ``policies``, ``webhooks``, ``webhook_secret``, ``script``.

Sourced (../shared/reference/cloudflare.md, the SDK's generated models, public reports): the endpoints and
bodies, the envelope, the job fields and their ranges, create-disabled, dataset create-only, wholesale
``output_options`` on PUT (cloudflare-docs PR #31523), the filter grammar and limits, the ``bad predicate:
failed to decode value "…", supported kinds: […]`` wording with code 1004 (cloudflare-docs#26491),
``exceeded max jobs allowed`` as 403/1004 in its current wording ``creating a new job (for <dataset>
dataset) is not allowed: …`` (observed by third parties; the docs print ``creating a new job is not allowed:
…``), ``incorrect ownership challenge`` (1002) and which schemes need one, "Datadog destination is exclusive
to new jobs", ``merge_subrequests`` refused for account-scoped jobs (SDK docstring), the job-name pattern
``^[a-zA-Z0-9\\-\\.]*$`` (Terraform provider docs), the ``output_options`` defaults for ndjson (OpenAPI schema
defaults, reference §1.2), the Datadog intake hosts and paths and the Splunk raw-endpoint rules, codes 10000
(auth), 10007 (script), 7003/7000 (no route), 971 ``Please wait and consider throttling your request speed``
(the API's 429 in many public logs), 17004 (invalid alert type), 17102 (mechanism required), 17103 (filters
required) and the messages ``Policy not found``, ``Webhook not found``, ``invalid Webhook ID``, ``Webhook
test failed`` (the distilled SDK's error matchers, which record them with code 0). Workers Observability Alerts
(cloudflare-docs ``workers/observability/alerts.mdx``): "Alerts query the Workers Observability dataset, which
requires Workers Logs to be enabled", and its wrangler snippet ``observability.enabled``,
``observability.logs.invocation_logs``, ``observability.logs.head_sampling_rate`` ("optional. default = 1");
``workers-logs.mdx``: "The valid range is from 0 to 1" for ``head_sampling_rate``. Third-party reports
(SH11235/rshogi PRs #704/#707, 2026-05; unverified by Cloudflare's docs): ``available_alerts`` offers
``workers_observability_alert`` under "Workers Observability", a policy of that type needs ``filters.status``
(17103) with ``FIRING_FAILED``/``NORMAL``, and ``alert_interval`` is refused with code 17009.

Inferred: that the server fills omitted ``output_options`` keys (Terraform provider #5578's perpetual diff;
``sample_rate`` 1, empty ``record_delimiter`` and the csv framing are guesses), that unknown body keys are
ignored (a Go JSON decoder; so a raw ``cve_2021_44228`` key is dropped), that a PUT leaves unnamed top-level
fields alone (the docs enable a job with ``PUT {"enabled": true}``), that the filter is stored verbatim,
that the job limit counts every dataset of the account, ``max_upload_*``/``frequency`` reading back as 0/"high"
when unset (Terraform defaults), and the ``uint64`` kind for every integer field.

Invented (no public source found): the wording of every other validation message and the operation prefix
on update (``updating job <id> is not allowed: …``), 404 with code 1003 ``job not found`` for an unknown job,
6007 ``Malformed JSON in request body`` (recalled from other v4 APIs), 10002 for the injected 500, 17000 and
10021 for other alerting and script-settings refusals, status 400/404 on the alerting errors, PagerDuty ids
checked against ``add_pagerduty``, unknown policy filter keys refused, filter keys and values outside the
type's catalogue entry refused (inferred from the catalogue being how the API tells which filters a type
takes; terraform-provider-cloudflare PR #2535), which filters the catalogue requires, the 17009 message, the
``selectors`` key as the per-alert filter of ``workers_observability_alert`` (the SDK's
``PolicyFilter.selectors``, "Usage depends on specific alert type"; no page documents one), the whole shape of
the undocumented alerts read, the catalogue's texts (modelled on the API reference's example), the webhook
``type`` derived from the URL,
the "test message" failing for ``*.invalid`` hosts, the empty ``message`` of a valid destination, and the
settings reported for a script beyond ``logpush``, ``tags`` and ``tail_consumers``.
"""

from __future__ import annotations

import copy
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from extalerts.emulators.base import LATE, EmulatorServer, Faults

if TYPE_CHECKING:
    from extalerts.spec.loader import Spec

API_PREFIX = "/client/v4"
#: Jobs per account; the docs give 4 per zone and no account figure, so 4 per scope is the safe reading.
MAX_JOBS = 4

# ----------------------------------------------------------------------------------------------- error codes

AUTHENTICATION_ERROR = 10000
SCRIPT_NOT_FOUND = 10007
RATE_LIMITED = 971
NO_ROUTE, NO_ROUTE_FOR_URI = 7003, 7000
LOGPUSH_NOT_ALLOWED = 1004
OWNERSHIP_CHALLENGE = 1002
INVALID_ALERT_TYPE = 17004
MECHANISM_REQUIRED = 17102
FILTERS_REQUIRED = 17103
#: Invented codes (see the module docstring).
JOB_NOT_FOUND = 1003
MALFORMED_JSON = 6007
UNKNOWN_ERROR = 10002
INVALID_ALERTING_REQUEST = 17000
#: Observed by a third party for ``alert_interval`` on ``workers_observability_alert`` (see the module docstring).
ALERT_INTERVAL_NOT_SUPPORTED = 17009
INVALID_SCRIPT_SETTINGS = 10021

# ----------------------------------------------------------------------------------------------- Logpush

#: Zone-scoped datasets: they cannot be pushed from an account.
ZONE_DATASETS = frozenset(
    {"dns_logs", "firewall_events", "http_requests", "nel_reports", "page_shield_events", "spectrum_events"}
    | {"zaraz_events"}
)
#: Terraform provider v5.22's enum plus the two the SDK 5.9 adds (account_abuse_protection_events, magic_bgp_logs).
_ACCOUNT_DATASETS = (
    "access_requests account_abuse_protection_events audit_logs audit_logs_v2 biso_user_actions casb_findings "
    "device_posture_results dex_application_tests dex_device_state_events dlp_forensic_copies dns_firewall_logs "
    "email_security_alerts email_security_post_delivery_events gateway_dns gateway_http gateway_network "
    "ipsec_logs magic_bgp_logs magic_ids_detections mcp_portal_logs mnm_flow_logs network_analytics_logs "
    "sinkhole_http_logs ssh_logs turnstile_events warp_config_changes warp_toggle_changes websocket_analytics "
    "workers_trace_events zero_trust_network_sessions"
)
DATASETS = ZONE_DATASETS | frozenset(_ACCOUNT_DATASETS.split())
#: workers_trace_events fields: (type, description) as the dataset's field page documents them.
WORKERS_TRACE_EVENTS_FIELDS: dict[str, tuple[str, str]] = {
    "CPUTimeMs": ("int", "The amount of CPU time used by the Worker script, in milliseconds."),
    "DispatchNamespace": ("string", "The Cloudflare Worker dispatch namespace."),
    "Entrypoint": ("string", "The name of the entrypoint class in which the Worker began execution."),
    "Event": ("object", "Details about the source event."),
    "EventTimestampMs": ("int", "The timestamp of when the event was received, in milliseconds."),
    "EventType": ("string", "The event type that triggered the invocation."),
    "Exceptions": ("array[object]", "List of uncaught exceptions during the invocation."),
    "Logs": ("array[object]", "List of console messages emitted during the invocation."),
    "Outcome": ("string", "The outcome of the Worker script invocation."),
    "ScriptName": ("string", "The Worker script name."),
    "ScriptTags": ("array[string]", "A list of user-defined tags used to categorize the Worker."),
    "ScriptVersion": ("object", "The version of the script that was invoked."),
    "WallTimeMs": ("int", "The elapsed time in milliseconds between the start and end of the invocation."),
}
_FIELDS_BY_DATASET: dict[str, dict[str, tuple[str, str]]] = {"workers_trace_events": WORKERS_TRACE_EVENTS_FIELDS}

FILTER_OPERATORS = frozenset(
    {"eq", "!eq", "lt", "leq", "gt", "geq", "startsWith", "endsWith", "!startsWith", "!endsWith"}
    | {"contains", "!contains", "in", "!in"}
)
_ORDERING = frozenset({"lt", "leq", "gt", "geq"})
_AFFIXES = frozenset({"startsWith", "endsWith", "!startsWith", "!endsWith"})
_CONTAINS = frozenset({"contains", "!contains"})
_MEMBERSHIP = frozenset({"in", "!in"})
#: Operators each field type takes (filters.mdx: object and array[object] fields cannot be filtered).
_OPERATORS_BY_TYPE: dict[str, frozenset[str]] = {
    "int": frozenset({"eq", "!eq"}) | _ORDERING | _MEMBERSHIP,
    "string": frozenset({"eq", "!eq"}) | _AFFIXES | _CONTAINS | _MEMBERSHIP,
    "bool": frozenset({"eq", "!eq"}),
    "array[string]": _CONTAINS,
}
#: Go kinds named in "supported kinds: …" (the docs issue shows []uint64 for an integer field).
_GO_KINDS = {"int": "uint64", "string": "string", "bool": "bool"}
MAX_FILTER_OPERATORS = 30
MAX_FILTER_BYTES = 1000

JOB_NAME = re.compile(r"^[a-zA-Z0-9\-\.]*$")
OUTPUT_TYPES = ("ndjson", "csv")
TIMESTAMP_FORMATS = ("unixnano", "unix", "rfc3339", "rfc3339ms", "rfc3339ns")
#: What an ``output_options`` key reads back as when the request left it out, per ``output_type``.
OUTPUT_OPTION_DEFAULTS: dict[str, dict[str, Any]] = {
    output_type: {
        "output_type": output_type,
        "timestamp_format": "unixnano",
        "sample_rate": 1.0,
        "CVE-2021-44228": False,
        "batch_prefix": "",
        "batch_suffix": "",
        "record_prefix": "{" if output_type == "ndjson" else "",
        "record_suffix": "}\n" if output_type == "ndjson" else "\n",
        "record_delimiter": "",
        "field_delimiter": ",",
        "record_template": None,
    }
    for output_type in OUTPUT_TYPES
}
_OUTPUT_STRINGS = frozenset(
    {"batch_prefix", "batch_suffix", "record_prefix", "record_suffix", "record_delimiter", "field_delimiter"}
    | {"record_template"}
)
_OUTPUT_KEYS = _OUTPUT_STRINGS | {
    "field_names",
    "output_type",
    "timestamp_format",
    "sample_rate",
    "CVE-2021-44228",
    "merge_subrequests",
}
#: (minimum, maximum) of the max_upload_* settings; 0 always means "off".
UPLOAD_LIMITS: dict[str, tuple[int, int]] = {
    "max_upload_bytes": (5_000_000, 1_000_000_000),
    "max_upload_records": (1_000, 1_000_000),
    "max_upload_interval_seconds": (30, 300),
}

DESTINATION_SCHEMES = frozenset({"r2", "gs", "s3", "sumo", "https", "azure", "splunk", "datadog"})
#: Destinations that must prove ownership with ``ownership_challenge`` (logpush-ownership-challenge.mdx).
OWNERSHIP_SCHEMES = frozenset({"s3", "gs", "azure", "sumo"})
#: Datadog logs intake hosts per site (docs.datadoghq.com/api/latest/logs/). Kept apart from the spec's
#: site list on purpose: the emulator checks extalerts against the docs, not against itself.
DATADOG_INTAKE_HOSTS = frozenset(
    f"http-intake.logs.{site}"
    for site in (
        "datadoghq.com",
        "us3.datadoghq.com",
        "us5.datadoghq.com",
        "datadoghq.eu",
        "ap1.datadoghq.com",
        "ap2.datadoghq.com",
        "uk1.datadoghq.com",
        "ddog-gov.com",
        "us2.ddog-gov.com",
    )
)
DATADOG_PATHS = ("/api/v2/logs", "/v1/input")
SPLUNK_RAW_PATH = "/services/collector/raw"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# ----------------------------------------------------------------------------------------------- Notifications

MECHANISM_TYPES = ("email", "pagerduty", "webhooks")
#: The filter keys a policy may carry (the SDK's PolicyFilter model).
_POLICY_FILTER_NAMES = (
    "actions affected_asns affected_components affected_locations airport_code alert_trigger_preferences "
    "alert_trigger_preferences_value enabled environment event event_source event_type group_by health_check_id "
    "incident_impact input_id insight_class limit logo_tag megabits_per_second new_health new_status "
    "packets_per_second pool_id pop_names product project_id protocol query_tag requests_per_second selectors "
    "services slo status target_hostname target_ip target_zone_name token_id traffic_exclusions tunnel_id "
    "tunnel_name type where zones"
)
POLICY_FILTER_KEYS = frozenset(_POLICY_FILTER_NAMES.split())
WORKERS_OBSERVABILITY_ALERT = "workers_observability_alert"
#: The states a ``workers_observability_alert`` policy filters on (third-party reports; see the module docstring).
WORKERS_OBSERVABILITY_STATUSES = (
    ("FIRING_FAILED", "The alert fired: its conditions failed for the fire-after duration"),
    ("NORMAL", "The alert resolved: its conditions passed for the resolve-after duration"),
)
#: Alert types whose policies take no ``alert_interval``.
_NO_ALERT_INTERVAL = frozenset({WORKERS_OBSERVABILITY_ALERT})
_ALERT_INTERVAL = re.compile(r"^(?=\d)(\d+h)?(\d+m)?(\d+s)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _filter_option(key: str, operator: str, value_range: str, values: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """One entry of an alert type's ``filter_options`` (shape of the API reference's example)."""
    available = [{"ID": value, "Description": description} for value, description in values] or None
    return {"Key": key, "ComparisonOperator": operator, "Range": value_range, "AvailableValues": available}


_ZONES = _filter_option("zones", "==", "1-n")
_SLO = _filter_option(
    "slo", ">=", "0-1", [("99.9", "Service-Level Objective of 99.9"), ("99.7", "Service-Level Objective of 99.7")]
)

#: The grouped catalogue ``available_alerts`` answers; a ``"1-…"`` range marks a filter the type requires.
DEFAULT_AVAILABLE_ALERTS: dict[str, list[dict[str, Any]]] = {
    "Logpush": [
        {
            "type": "failing_logpush_job_disabled_alert",
            "display_name": "Failing Logpush Job Disabled",
            "description": "Receive a notification when a failing Logpush job is disabled.",
            "filter_options": [],
        }
    ],
    "Origin Monitoring": [
        {
            "type": "http_alert_origin_error",
            "display_name": "Origin Error Rate Alert",
            "description": "High levels of 5xx HTTP errors at your origin.",
            "filter_options": [_ZONES, _SLO],
        }
    ],
    "Traffic Monitoring": [
        {
            "type": "http_alert_edge_error",
            "display_name": "Edge Error Rate Alert",
            "description": "High levels of 5xx HTTP errors at the edge.",
            "filter_options": [_ZONES, _SLO],
        },
        {
            "type": "advanced_http_alert_error",
            "display_name": "Advanced HTTP Error Alert",
            "description": "Error rates above your threshold, by status code.",
            "filter_options": [_ZONES],
        },
        {
            "type": "traffic_anomalies_alert",
            "display_name": "Traffic Anomalies Alert",
            "description": "Unexpected spikes or drops in traffic.",
            "filter_options": [_ZONES],
        },
    ],
    "Billing": [
        {
            "type": "billing_usage_alert",
            "display_name": "Usage Based Billing",
            "description": "Usage above the limit you set for a product.",
            "filter_options": [_filter_option("product", "==", "1-1"), _filter_option("limit", "==", "1-1")],
        }
    ],
}
#: Webhook ``type`` derived from the URL's host (invented rule; the API reports these types).
_WEBHOOK_TYPES = (
    ("hooks.slack.com", "slack"),
    ("discord.com", "discord"),
    ("discordapp.com", "discord"),
    ("chat.googleapis.com", "gchat"),
    ("open.feishu.cn", "feishu"),
    ("opsgenie.com", "opsgenie"),
    ("datadoghq.com", "datadog"),
    ("datadoghq.eu", "datadog"),
    ("splunkcloud.com", "splunk"),
)

# ----------------------------------------------------------------------------------------------- plumbing


class _Reply(Exception):
    """Raised by a handler to answer with an error envelope."""

    def __init__(self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


def _error(status: int, code: int, message: str) -> _Reply:
    return _Reply(status, [{"code": code, "message": message}])


def envelope(result: Any = None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The v4 envelope: ``success`` is true exactly when there are no errors."""
    return {"success": not errors, "errors": errors or [], "messages": [], "result": result}


@dataclass
class _Call:
    groups: dict[str, str]
    query: dict[str, str]
    body: Any


@dataclass(frozen=True)
class _Route:
    """``template`` is the path after /client/v4 with ``{name}`` parameters (``{job}`` is an integer)."""

    method: str
    template: str
    handler: Callable[[_Call], Any]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        def group(match: re.Match[str]) -> str:
            return rf"(?P<{match[1]}>\d+)" if match[1] == "job" else rf"(?P<{match[1]}>[^/]+)"

        object.__setattr__(self, "pattern", re.compile("^" + re.sub(r"\{(\w+)\}", group, self.template) + "$"))

    @property
    def name(self) -> str:
        """How ``calls`` counts this route, e.g. ``GET /accounts/{account}/logpush/jobs/{job}``."""
        return f"{self.method} {self.template}"


@dataclass
class _State:
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    pagerduty: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_job_id: int = 1001


def _no_route_errors(path: str) -> list[dict[str, Any]]:
    """What the API answers (400) for a path it does not serve."""
    return [
        {"code": NO_ROUTE, "message": f"Could not route to {path}, perhaps your object identifier is invalid?"},
        {"code": NO_ROUTE_FOR_URI, "message": "No route for that URI"},
    ]


def _observability_problem(observability: Any) -> str:
    """Why ``observability`` is not a Worker's observability settings (the SDK's ``ScriptSetting.observability``),
    or ``""``. ``head_sampling_rate``: "The valid range is from 0 to 1" (workers-logs.mdx)."""
    if observability is None:
        return ""
    if not isinstance(observability, dict) or not isinstance(observability.get("enabled"), bool):
        return "observability.enabled must be a boolean"
    logs = observability.get("logs")
    flags = ("enabled", "invocation_logs")
    if logs is not None and (not isinstance(logs, dict) or not all(isinstance(logs.get(k), bool) for k in flags)):
        return "observability.logs needs enabled and invocation_logs, both booleans"
    for where, settings in (("observability", observability), ("observability.logs", logs or {})):
        rate = settings.get("head_sampling_rate")
        if rate is not None and not (isinstance(rate, int | float) and not isinstance(rate, bool) and 0 <= rate <= 1):
            return f"{where}.head_sampling_rate must be a number from 0 to 1"
    return ""


def _go_quote(text: str) -> str:
    """Go's ``%q`` of a string (close enough for ASCII): how Logpush prints a value it could not decode."""
    return json.dumps(text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1


# ----------------------------------------------------------------------------------------------- checks


def check_destination(destination_conf: Any) -> str:
    """Why ``destination_conf`` is not a valid Logpush destination, or ``""`` when it is."""
    if not isinstance(destination_conf, str) or not destination_conf:
        return "destination_conf is required"
    scheme, sep, _ = destination_conf.partition("://")
    if not sep:
        return "destination_conf must look like <scheme>://<address>"
    if scheme not in DESTINATION_SCHEMES:
        return f'unsupported destination scheme "{scheme}"'
    if any(c.isspace() for c in destination_conf):
        return "destination_conf must be URL-encoded (it contains white space)"
    url = urlsplit(destination_conf)
    params = parse_qs(url.query, keep_blank_values=True)
    if scheme == "datadog":
        return _datadog_problem(url.netloc, url.path, params)
    if scheme == "splunk":
        return _splunk_problem(destination_conf, params)
    if not url.netloc:
        return f"the {scheme} destination names no host or bucket"
    return ""


def _datadog_problem(host: str, path: str, params: dict[str, list[str]]) -> str:
    if host not in DATADOG_INTAKE_HOSTS:
        return f"{host or '(no host)'} is not a Datadog logs intake host (http-intake.logs.<site>, without https://)"
    if path not in DATADOG_PATHS:
        return f"the Datadog endpoint path must be {DATADOG_PATHS[0]} (or {DATADOG_PATHS[1]}), not {path or '/'}"
    if not (params.get("header_DD-API-KEY") or [""])[-1]:
        return "the Datadog destination needs header_DD-API-KEY=<API key>"
    return ""


def _splunk_problem(destination_conf: str, params: dict[str, list[str]]) -> str:
    url = urlsplit(destination_conf)
    try:
        port = url.port
    except ValueError:
        port = None
    if not url.hostname or port is None:
        return "the Splunk endpoint must be <host>:<port>"
    if url.path != SPLUNK_RAW_PATH:
        return f"the Splunk HEC endpoint must be {SPLUNK_RAW_PATH}, not {url.path or '/'}"
    channel = (params.get("channel") or [""])[-1]
    if not _GUID.fullmatch(channel):
        return "the Splunk destination needs channel=<GUID>"
    authorization = (params.get("header_Authorization") or [""])[-1]
    if not authorization.startswith("Splunk ") or not authorization[len("Splunk ") :].strip():
        return "the Splunk destination needs header_Authorization=Splunk%20<HEC token>"
    skip = params.get("insecure-skip-verify")
    if skip and skip[-1] not in ("true", "false"):
        return "insecure-skip-verify must be true or false"
    return ""


def check_filter(text: Any, dataset: str) -> str:
    """Why ``text`` is not a valid Logpush job filter for ``dataset``, or ``""`` when it is (or is empty)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return ""
    if not isinstance(text, str):
        return "filter must be a string holding a JSON document"
    try:
        document = json.loads(text)
    except ValueError as exc:
        return f"bad filter: invalid JSON: {exc}"
    if not isinstance(document, dict) or "where" not in document:
        return 'bad filter: Key is missing: the filter\'s root must be {"where": …}'
    leaves: list[int] = [0]
    problem = _node_problem(document["where"], _FIELDS_BY_DATASET.get(dataset), leaves)
    if problem:
        return problem
    if leaves[0] > MAX_FILTER_OPERATORS:
        return f"bad filter: {leaves[0]} operators, at most {MAX_FILTER_OPERATORS}"
    if len(text.encode()) > MAX_FILTER_BYTES:
        return f"bad filter: {len(text.encode())} bytes, at most {MAX_FILTER_BYTES}"
    return ""


def _node_problem(node: Any, fields: dict[str, tuple[str, str]] | None, leaves: list[int]) -> str:
    if not isinstance(node, dict):
        return "bad filter: a condition must be a JSON object"
    logical = [key for key in ("and", "or") if key in node]
    if logical:
        if len(logical) > 1 or "key" in node:
            return "bad filter: a condition is either and, or, or a predicate"
        children = node[logical[0]]
        if not isinstance(children, list) or not children:
            return f"bad filter: {logical[0]} takes a non-empty array of conditions"
        for child in children:
            problem = _node_problem(child, fields, leaves)
            if problem:
                return problem
        return ""
    leaves[0] += 1
    return _predicate_problem(node, fields)


def _predicate_problem(node: dict[str, Any], fields: dict[str, tuple[str, str]] | None) -> str:
    for part in ("key", "operator", "value"):
        if part not in node:
            return f"bad predicate: Key is missing: {part}"
    key, operator, value = node["key"], node["operator"], node["value"]
    if not isinstance(key, str) or not key:
        return "bad predicate: key must be a field name"
    if operator not in FILTER_OPERATORS:
        return f"bad predicate: unknown operator {_go_quote(str(operator))}"
    if fields is None:
        return _value_kind_problem(operator, value, None)
    if key not in fields:
        return f"bad predicate: unknown field {_go_quote(key)}"
    field_type = fields[key][0]
    if field_type not in _OPERATORS_BY_TYPE:
        return f"bad predicate: field {_go_quote(key)} is of type {field_type}, which cannot be filtered"
    if operator not in _OPERATORS_BY_TYPE[field_type]:
        return f"bad predicate: operator {_go_quote(operator)} is not supported for field {_go_quote(key)}"
    return _value_kind_problem(operator, value, "string" if field_type == "array[string]" else field_type)


def _kind_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if _is_int(value):
        return "int"
    if isinstance(value, str):
        return "string"
    return None


def _value_kind_problem(operator: str, value: Any, field_type: str | None) -> str:
    """The value must decode into the field's kind (an array of it for ``in``); unknown fields by operator."""
    if field_type is not None:
        allowed = {field_type}
    elif operator in _ORDERING:
        allowed = {"int"}
    elif operator in _AFFIXES or operator in _CONTAINS:
        allowed = {"string"}
    elif operator in _MEMBERSHIP:
        allowed = {"int", "string"}
    else:
        allowed = {"int", "string", "bool"}
    if operator in _MEMBERSHIP:
        fits = isinstance(value, list) and all(_kind_of(item) in allowed for item in value)
        kinds = ", ".join(f"[]{_GO_KINDS[kind]}" for kind in sorted(allowed))
    else:
        fits = _kind_of(value) in allowed
        kinds = ", ".join(_GO_KINDS[kind] for kind in sorted(allowed))
    if fits:
        return ""
    raw = json.dumps(value, separators=(",", ":"))
    return f"bad predicate: failed to decode value {_go_quote(raw)}, supported kinds: {kinds}"


def check_output_options(options: Any, dataset: str) -> tuple[str, dict[str, Any] | None]:
    """(problem, stored form): known keys checked, unknown keys dropped, omitted keys at their defaults."""
    if options is None:
        return "", None
    if not isinstance(options, dict):
        return "output_options must be an object", None
    output_type = options.get("output_type") or "ndjson"
    if output_type not in OUTPUT_TYPES:
        return f"output_options.output_type must be one of {', '.join(OUTPUT_TYPES)}", None
    stored = copy.deepcopy(OUTPUT_OPTION_DEFAULTS[output_type])
    for key, value in options.items():
        if key not in _OUTPUT_KEYS:
            continue  # unknown keys are ignored, as a Go JSON decoder does
        problem = _output_option_problem(key, value, dataset)
        if problem:
            return f"output_options.{key} {problem}", None
        if value is not None or key == "record_template":
            stored[key] = copy.deepcopy(value)
    return "", stored


def _output_option_problem(key: str, value: Any, dataset: str) -> str:
    if key == "field_names":
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            return "must be an array of field names"
        known = _FIELDS_BY_DATASET.get(dataset)
        unknown = [name for name in value if known is not None and name not in known]
        return f"names fields {dataset} does not have: {', '.join(unknown)}" if unknown else ""
    if key == "timestamp_format" and value is not None and value not in TIMESTAMP_FORMATS:
        return f"must be one of {', '.join(TIMESTAMP_FORMATS)}"
    if key == "sample_rate" and value is not None and not _is_rate(value):
        return "must be a number greater than 0 and at most 1"
    if key in ("CVE-2021-44228", "merge_subrequests") and value is not None and not isinstance(value, bool):
        return "must be a boolean"
    if key == "merge_subrequests" and value:
        return "is not supported for account-scoped jobs (http_requests only)"
    if key in _OUTPUT_STRINGS and value is not None and not isinstance(value, str):
        return "must be a string"
    return ""


# ----------------------------------------------------------------------------------------------- emulator


class CloudflareEmulator(EmulatorServer):
    """Run with ``with CloudflareEmulator(api_token=…, account_id=…) as emulator: …emulator.url…``."""

    thread_name = "cloudflare-emulator"

    def __init__(
        self,
        api_token: str,
        account_id: str,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        max_jobs: int = MAX_JOBS,
        seed: int = 0,
    ) -> None:
        # ``requests`` holds each answered request: method, path (as sent, with /client/v4), JSON body
        # (raw text if not JSON) and status.
        super().__init__(host, port, faults, clock)
        self.api_token = api_token
        self.account_id = account_id
        self.max_jobs = max_jobs
        self.state = _State()
        self.available_alerts: dict[str, list[dict[str, Any]]] = copy.deepcopy(DEFAULT_AVAILABLE_ALERTS)
        #: What the undocumented alerts read answers (None: it is not served), and its status while not served.
        self.observability_alerts: list[dict[str, Any]] | None = None
        self.observability_alerts_absent_status = 400
        self._seed = seed
        self._ids = random.Random(seed)
        self._routes = self._route_table()

    @property
    def url(self) -> str:
        """The SDK's ``base_url``: scheme, host, port and ``/client/v4``."""
        return self.base_url + API_PREFIX

    # ----------------------------------------------------------------------------------- helpers for tests

    def reset(self, faults: Faults | None = None) -> None:
        """A fresh account on the same port: no jobs, policies, webhooks, scripts, counts, log or faults."""
        with self._lock:
            self.state = _State()
            self.available_alerts = copy.deepcopy(DEFAULT_AVAILABLE_ALERTS)
            self.observability_alerts = None
            self.observability_alerts_absent_status = 400
            self.calls.clear()
            self.faults_injected.clear()
            self.requests.clear()
            self._ids = random.Random(self._seed)
        self.set_faults(faults or Faults())

    def add_script(
        self,
        name: str,
        *,
        logpush: bool = False,
        tags: Iterable[str] = (),
        tail_consumers: Iterable[dict[str, str]] = (),
        compatibility_date: str = "2025-01-01",
        observability: dict[str, Any] | None = None,
    ) -> None:
        """Deploy a Worker script (as wrangler would), with its ``logpush`` flag and its ``observability``
        settings (Workers Logs), e.g. ``{"enabled": True, "head_sampling_rate": 0.1}``."""
        problem = _observability_problem(observability)
        if problem:
            raise ValueError(problem)
        with self._lock:
            self.state.scripts[name] = {
                "logpush": logpush,
                "tags": list(tags),
                "tail_consumers": [dict(consumer) for consumer in tail_consumers],
                "observability": copy.deepcopy(observability),
                "compatibility_date": compatibility_date,
            }

    def add_pagerduty(self, service_id: str, name: str = "PagerDuty") -> None:
        """Link a PagerDuty service (done in a browser for real), so policies may name it."""
        with self._lock:
            self.state.pagerduty[service_id] = name

    def connect_pagerduty(self, names: Iterable[str]) -> None:
        """Link these PagerDuty services, each with an id made up as Cloudflare's (a UUID), as the
        dashboard's connect flow leaves them; they are then listed by
        ``GET …/alerting/v3/destinations/pagerduty``, the only way the API shows them."""
        with self._lock:
            connected = set(self.state.pagerduty.values())
            for name in names:
                if name not in connected:
                    self.state.pagerduty[self._new_id()] = name
                    connected.add(name)

    def add_alert_type(
        self, group: str, alert_type: str, *, display_name: str = "", filter_options: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Offer another alert type in ``available_alerts`` (e.g. ``workers_observability_alert``)."""
        with self._lock:
            entry = {
                "type": alert_type,
                "display_name": display_name or alert_type,
                "description": "",
                "filter_options": list(filter_options),
            }
            self.available_alerts.setdefault(group, []).append(entry)

    def offer_workers_observability_alert(self, *, alert_filter: bool = False) -> None:
        """Put ``workers_observability_alert`` in the catalogue as third parties report it (a required
        ``status`` filter); ``alert_filter`` also offers ``selectors`` to pick the alerts a policy routes."""
        options = [_filter_option("status", "==", "1-n", WORKERS_OBSERVABILITY_STATUSES)]
        if alert_filter:
            options.append(_filter_option("selectors", "==", "0-n"))
        self.add_alert_type(
            "Workers Observability",
            WORKERS_OBSERVABILITY_ALERT,
            display_name="Workers Observability Alert",
            filter_options=options,
        )

    def set_observability_alerts(self, alerts: Iterable[dict[str, Any]] | None, *, absent_status: int = 400) -> None:
        """Serve the undocumented alerts read with ``alerts`` (as configured in the dashboard), or stop serving
        it (``None``): it then answers as an unrouted path (400, codes 7003/7000), or 404/405 with ``absent_status``."""
        with self._lock:
            self.observability_alerts = None if alerts is None else [copy.deepcopy(alert) for alert in alerts]
            self.observability_alerts_absent_status = absent_status

    def add_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Logpush job directly (as if someone clicked it together in the dashboard)."""
        with self._lock:
            try:
                return self._create_job(copy.deepcopy(body))
            except _Reply as reply:
                raise ValueError(reply.errors[0]["message"]) from None

    def set_job_error(self, job_id: int, message: str, *, disable: bool = False) -> None:
        """The job's last push failed (``last_error`` now, ``error_message``); ``disable`` as Cloudflare may."""
        with self._lock:
            job = self.state.jobs[job_id]
            job["last_error"] = self._now()
            job["error_message"] = message
            if disable:
                job["enabled"] = False

    def set_job_complete(self, job_id: int) -> None:
        """The job pushed a batch: ``last_complete`` now, ``last_error``/``error_message`` cleared."""
        with self._lock:
            job = self.state.jobs[job_id]
            job["last_complete"] = self._now()
            job["last_error"] = None
            job["error_message"] = None

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(job) for _, job in sorted(self.state.jobs.items())]

    def policies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(policy) for policy in self.state.policies.values()]

    def webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(webhook) for webhook in self.state.webhooks.values()]

    def webhook_secret(self, webhook_id: str) -> str | None:
        with self._lock:
            return self.state.webhook_secrets.get(webhook_id)

    def script(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.state.scripts[name])

    # ----------------------------------------------------------------------------------- routing

    def _route_table(self) -> list[_Route]:
        jobs = "/accounts/{account}/logpush/jobs"
        alerting = "/accounts/{account}/alerting/v3"
        webhooks = f"{alerting}/destinations/webhooks"
        script = "/accounts/{account}/workers/scripts/{script}"
        table: list[tuple[str, str, Callable[[_Call], Any]]] = [
            ("GET", jobs, self._list_jobs),
            ("POST", jobs, self._post_job),
            ("GET", f"{jobs}/{{job}}", self._get_job),
            ("PUT", f"{jobs}/{{job}}", self._put_job),
            ("DELETE", f"{jobs}/{{job}}", self._delete_job),
            ("GET", "/accounts/{account}/logpush/datasets/{dataset}/jobs", self._list_dataset_jobs),
            ("GET", "/accounts/{account}/logpush/datasets/{dataset}/fields", self._dataset_fields),
            ("POST", "/accounts/{account}/logpush/validate/destination", self._validate_destination),
            ("POST", "/accounts/{account}/logpush/validate/destination/exists", self._destination_exists),
            ("GET", f"{alerting}/available_alerts", self._available_alerts),
            ("GET", f"{alerting}/policies", self._list_policies),
            ("POST", f"{alerting}/policies", self._post_policy),
            ("GET", f"{alerting}/policies/{{policy}}", self._get_policy),
            ("PUT", f"{alerting}/policies/{{policy}}", self._put_policy),
            ("DELETE", f"{alerting}/policies/{{policy}}", self._delete_policy),
            ("GET", f"{alerting}/destinations/pagerduty", self._list_pagerduty),
            ("GET", webhooks, self._list_webhooks),
            ("POST", webhooks, self._post_webhook),
            ("GET", f"{webhooks}/{{webhook}}", self._get_webhook),
            ("PUT", f"{webhooks}/{{webhook}}", self._put_webhook),
            ("DELETE", f"{webhooks}/{{webhook}}", self._delete_webhook),
            ("GET", f"{script}/script-settings", self._get_script_settings),
            ("PATCH", f"{script}/script-settings", self._patch_script_settings),
            ("GET", f"{script}/settings", self._get_script_and_version_settings),
            ("GET", "/accounts/{account}/workers/observability/alerts", self._list_observability_alerts),
        ]
        return [_Route(method, template, handler) for method, template, handler in table]

    def _find_route(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        if not path.startswith(API_PREFIX + "/"):
            return None
        local = path[len(API_PREFIX) :]
        for route in self._routes:
            if route.method == method and (match := route.pattern.match(local)):
                return route, match.groupdict()
        return None

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body, malformed = (json.loads(raw) if raw else None), False
        except ValueError:
            body, malformed = raw.decode(errors="replace"), True
        if self.faults.latency:
            time.sleep(self.faults.latency)
        found = self._find_route(request.command, url.path)
        with self._lock:
            self.calls[found[0].name if found else "unrouted"] += 1
            fault = self._draw_fault(found[0].name) if found else None
        if not self._authorised(request) or (found and found[1].get("account", self.account_id) != self.account_id):
            self._answer(request, url.path, body, 403, envelope(None, [self._auth_error()]))
            return
        if found is None:
            self._answer(request, url.path, body, 400, envelope(None, _no_route_errors(url.path)))
            return
        if fault in ("429", "500"):
            with self._lock:
                self.faults_injected[fault] += 1
            if fault == "429":
                errors = [{"code": RATE_LIMITED, "message": "Please wait and consider throttling your request speed"}]
                headers = {"retry-after": str(self.faults.rate_limit_reset)}
                self._answer(request, url.path, body, 429, envelope(None, errors), headers)
            else:
                errors = [{"code": UNKNOWN_ERROR, "message": "An unknown error has occurred"}]
                self._answer(request, url.path, body, 500, envelope(None, errors))
            return
        if malformed:
            self._answer(request, url.path, body, 400, envelope(None, [self._malformed()]))
            return
        if fault == LATE:
            with self._lock:
                self.faults_injected[fault] += 1
            time.sleep(self.faults.slow_seconds)  # handled only after the client gave up
        route, groups = found
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        status, headers = 200, {}
        try:
            with self._lock:
                payload = envelope(route.handler(_Call(groups, query, body)))
        except _Reply as reply:
            status, payload, headers = reply.status, envelope(None, reply.errors), reply.headers
        if fault == "lost":
            # The write is committed; the answer never arrives.
            with self._lock:
                self.faults_injected[fault] += 1
                self.requests.append((request.command, url.path, body, status))
            request.close_connection = True
            request.connection.shutdown(2)
            return
        if fault == "slow":
            with self._lock:
                self.faults_injected[fault] += 1
            time.sleep(self.faults.slow_seconds)
        self._answer(request, url.path, body, status, payload, headers)

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        path: str,
        body: Any,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.requests.append((request.command, path, body, status))
        data = json.dumps(payload).encode()
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

    def _authorised(self, request: BaseHTTPRequestHandler) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_token}"

    @staticmethod
    def _auth_error() -> dict[str, Any]:
        return {"code": AUTHENTICATION_ERROR, "message": "Authentication error"}

    @staticmethod
    def _malformed() -> dict[str, Any]:
        return {"code": MALFORMED_JSON, "message": "Malformed JSON in request body"}

    def _object_body(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Reply(400, [self._malformed()])
        return body

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _new_id(self) -> str:
        return uuid.UUID(int=self._ids.getrandbits(128), version=4).hex

    # ----------------------------------------------------------------------------------- Logpush jobs

    def _job(self, call: _Call) -> dict[str, Any]:
        job = self.state.jobs.get(int(call.groups["job"]))
        if job is None:
            raise _error(404, JOB_NOT_FOUND, "job not found")
        return job

    def _list_jobs(self, call: _Call) -> list[dict[str, Any]]:
        return [copy.deepcopy(job) for _, job in sorted(self.state.jobs.items())]

    def _list_dataset_jobs(self, call: _Call) -> list[dict[str, Any]]:
        dataset = call.groups["dataset"]
        return [copy.deepcopy(job) for _, job in sorted(self.state.jobs.items()) if job["dataset"] == dataset]

    def _dataset_fields(self, call: _Call) -> dict[str, str]:
        dataset = call.groups["dataset"]
        if dataset not in DATASETS:
            raise _error(400, LOGPUSH_NOT_ALLOWED, f"unknown dataset {_go_quote(dataset)}")
        fields = _FIELDS_BY_DATASET.get(dataset)
        if fields is None:
            raise _error(400, LOGPUSH_NOT_ALLOWED, "the emulator knows the fields of workers_trace_events only")
        return {name: description for name, (_, description) in fields.items()}

    def _get_job(self, call: _Call) -> dict[str, Any]:
        return copy.deepcopy(self._job(call))

    def _post_job(self, call: _Call) -> dict[str, Any]:
        return self._create_job(self._object_body(call.body))

    def _create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        dataset = body.get("dataset") or "http_requests"

        def refuse(problem: str, status: int = 400, code: int = LOGPUSH_NOT_ALLOWED) -> _Reply:
            return _error(status, code, f"creating a new job (for {dataset} dataset) is not allowed: {problem}")

        if dataset not in DATASETS:
            raise refuse(f"unknown dataset {_go_quote(str(dataset))}")
        if dataset in ZONE_DATASETS:
            raise refuse(f"{dataset} is a zone-scoped dataset; create the job under /zones/{{zone_id}}")
        if len(self.state.jobs) >= self.max_jobs:
            raise refuse("exceeded max jobs allowed", status=403)
        if "destination_conf" not in body:
            raise refuse("destination_conf is required")
        kind = body.get("kind", "")
        if kind not in ("", "edge"):
            raise refuse('kind must be "" or "edge"')
        if kind == "edge":
            raise refuse("kind edge is only supported for the http_requests dataset")
        job: dict[str, Any] = {
            "id": self.state.next_job_id,
            "dataset": dataset,
            "kind": kind,
            "name": None,
            "enabled": False,
            "destination_conf": None,
            "filter": None,
            "logpull_options": None,
            "output_options": None,
            "frequency": "high",
            "max_upload_bytes": 0,
            "max_upload_records": 0,
            "max_upload_interval_seconds": 0,
            "last_complete": None,
            "last_error": None,
            "error_message": None,
        }
        problem = self._apply_job_fields(job, body, creating=True)
        if problem:
            code = OWNERSHIP_CHALLENGE if problem == "incorrect ownership challenge" else LOGPUSH_NOT_ALLOWED
            raise refuse(problem, code=code)
        self.state.next_job_id += 1
        self.state.jobs[job["id"]] = job
        return copy.deepcopy(job)

    def _put_job(self, call: _Call) -> dict[str, Any]:
        current = self._job(call)
        body = self._object_body(call.body)

        def refuse(problem: str) -> _Reply:
            return _error(400, LOGPUSH_NOT_ALLOWED, f"updating job {current['id']} is not allowed: {problem}")

        if "dataset" in body and body["dataset"] != current["dataset"]:
            raise refuse(f"the dataset cannot be changed (it is {current['dataset']}); create a new job")
        if "kind" in body and body["kind"] != current["kind"]:
            raise refuse("the kind cannot be changed; create a new job")
        new_destination = body.get("destination_conf")
        if (
            isinstance(new_destination, str)
            and new_destination.startswith("datadog://")
            and not str(current["destination_conf"]).startswith("datadog://")
        ):
            raise refuse("Datadog destination is exclusive to new jobs")
        updated = copy.deepcopy(current)
        problem = self._apply_job_fields(updated, body, creating=False)
        if problem:
            raise refuse(problem)
        self.state.jobs[current["id"]] = updated
        return copy.deepcopy(updated)

    def _apply_job_fields(self, job: dict[str, Any], body: dict[str, Any], *, creating: bool) -> str:
        """Write the writable fields ``body`` names into ``job``; returns why not, or ``""``."""
        if "destination_conf" in body:
            problem = check_destination(body["destination_conf"])
            if problem:
                return f"error validating destination: {problem}"
            scheme = body["destination_conf"].partition("://")[0]
            changed = creating or body["destination_conf"] != job["destination_conf"]
            if changed and scheme in OWNERSHIP_SCHEMES and not body.get("ownership_challenge"):
                return "incorrect ownership challenge"
            job["destination_conf"] = body["destination_conf"]
        if "name" in body:
            name = body["name"]
            if name is not None and (not isinstance(name, str) or not JOB_NAME.fullmatch(name)):
                return "name must match ^[a-zA-Z0-9\\-\\.]*$"
            job["name"] = name
        for flag in ("enabled", "filter_attack_traffic"):
            if flag in body:
                if not isinstance(body[flag], bool):
                    return f"{flag} must be a boolean"
                job[flag] = body[flag]
        if "filter" in body:
            problem = check_filter(body["filter"], job["dataset"])
            if problem:
                return problem
            job["filter"] = body["filter"]
        if "output_options" in body:
            problem, stored = check_output_options(body["output_options"], job["dataset"])
            if problem:
                return problem
            job["output_options"] = stored
        if "logpull_options" in body:
            if body["logpull_options"] is not None and not isinstance(body["logpull_options"], str):
                return "logpull_options must be a string"
            job["logpull_options"] = body["logpull_options"]
        if "frequency" in body:
            if body["frequency"] not in ("high", "low", None):
                return "frequency must be high or low"
            job["frequency"] = body["frequency"]
        for key, (low, high) in UPLOAD_LIMITS.items():
            if key in body:
                value = body[key]
                if value is not None and (not _is_int(value) or (value != 0 and not low <= value <= high)):
                    return f"{key} must be between {low} and {high}, or 0 to disable it"
                job[key] = value
        return ""

    def _delete_job(self, call: _Call) -> dict[str, Any]:
        job = self._job(call)
        del self.state.jobs[job["id"]]
        return {"id": job["id"]}

    # ----------------------------------------------------------------------------------- destination checks

    def _destination_conf(self, call: _Call) -> str:
        body = self._object_body(call.body)
        destination = body.get("destination_conf")
        if not isinstance(destination, str) or not destination:
            raise _error(400, LOGPUSH_NOT_ALLOWED, "destination_conf is required")
        return destination

    def _validate_destination(self, call: _Call) -> dict[str, Any]:
        problem = check_destination(self._destination_conf(call))
        return {"valid": not problem, "message": problem}

    def _destination_exists(self, call: _Call) -> dict[str, Any]:
        destination = self._destination_conf(call)
        return {"exists": any(job["destination_conf"] == destination for job in self.state.jobs.values())}

    # ----------------------------------------------------------------------------------- notifications

    def _alert_entry(self, alert_type: str) -> dict[str, Any] | None:
        return next(
            (entry for entries in self.available_alerts.values() for entry in entries if entry["type"] == alert_type),
            None,
        )

    def _available_alerts(self, call: _Call) -> dict[str, list[dict[str, Any]]]:
        return copy.deepcopy(self.available_alerts)

    def _policy(self, call: _Call) -> dict[str, Any]:
        policy = self.state.policies.get(call.groups["policy"])
        if policy is None:
            raise _error(404, 0, "Policy not found")
        return policy

    def _list_policies(self, call: _Call) -> list[dict[str, Any]]:
        return [copy.deepcopy(policy) for policy in self.state.policies.values()]

    def _get_policy(self, call: _Call) -> dict[str, Any]:
        return copy.deepcopy(self._policy(call))

    def _post_policy(self, call: _Call) -> dict[str, str]:
        body = self._object_body(call.body)
        for required in ("alert_type", "enabled", "name"):
            if required not in body:
                raise _error(400, INVALID_ALERTING_REQUEST, f"{required} is required")
        if "mechanisms" not in body:
            raise _error(400, MECHANISM_REQUIRED, "mechanisms are required")
        now = self._now()
        policy: dict[str, Any] = {
            "id": self._new_id(),
            "name": "",
            "description": "",
            "enabled": True,
            "alert_type": "",
            "mechanisms": {},
            "filters": {},
            "created": now,
            "modified": now,
        }
        self._apply_policy_fields(policy, body)
        self.state.policies[policy["id"]] = policy
        return {"id": policy["id"]}

    def _put_policy(self, call: _Call) -> dict[str, str]:
        current = self._policy(call)
        updated = copy.deepcopy(current)
        self._apply_policy_fields(updated, self._object_body(call.body))
        updated["modified"] = self._now()
        self.state.policies[current["id"]] = updated
        return {"id": current["id"]}

    def _delete_policy(self, call: _Call) -> None:
        del self.state.policies[self._policy(call)["id"]]

    def _apply_policy_fields(self, policy: dict[str, Any], body: dict[str, Any]) -> None:
        def invalid(message: str, code: int = INVALID_ALERTING_REQUEST) -> _Reply:
            return _error(400, code, message)

        if "alert_type" in body:
            if not isinstance(body["alert_type"], str) or self._alert_entry(body["alert_type"]) is None:
                raise invalid(f"invalid alert type {_go_quote(str(body['alert_type']))}", INVALID_ALERT_TYPE)
            policy["alert_type"] = body["alert_type"]
        for key, kind in (("name", str), ("description", str), ("enabled", bool)):
            if key in body:
                if not isinstance(body[key], kind):
                    raise invalid(f"{key} must be a {'boolean' if kind is bool else 'string'}")
                policy[key] = body[key]
        if not policy["name"]:
            raise invalid("name must not be empty")
        if "alert_interval" in body and policy["alert_type"] in _NO_ALERT_INTERVAL:
            raise invalid(f"alert_interval is not supported for {policy['alert_type']}", ALERT_INTERVAL_NOT_SUPPORTED)
        if "alert_interval" in body:
            interval = body["alert_interval"]
            if not isinstance(interval, str) or not _ALERT_INTERVAL.fullmatch(interval):
                raise invalid("alert_interval must be a duration such as 30m or 1h")
            policy["alert_interval"] = interval
        if "mechanisms" in body:
            policy["mechanisms"] = self._checked_mechanisms(body["mechanisms"])
        if "filters" in body:
            filters = body["filters"]
            if not isinstance(filters, dict):
                raise invalid("filters must be an object of string lists")
            for key, values in filters.items():
                if key not in POLICY_FILTER_KEYS:
                    raise invalid(f"unknown filter {_go_quote(str(key))}")
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise invalid(f"filter {key} must be a list of strings")
            policy["filters"] = copy.deepcopy(filters)
        entry = self._alert_entry(policy["alert_type"])
        options = {option["Key"]: option for option in (entry or {}).get("filter_options", [])}
        for key, values in policy["filters"].items():
            if key not in options and values:
                raise invalid(f"filter {_go_quote(key)} is not available for {policy['alert_type']}")
            allowed = (
                {value["ID"] for value in (options[key].get("AvailableValues") or [])} if key in options else set()
            )
            unknown = [value for value in values if allowed and value not in allowed]
            if unknown:
                raise invalid(
                    f"filter {key} does not take {_go_quote(unknown[0])}; it takes {', '.join(sorted(allowed))}"
                )
        for option in options.values():
            if str(option.get("Range", "")).startswith("1") and not policy["filters"].get(option["Key"]):
                raise invalid(f"filters.{option['Key']} is required for {policy['alert_type']}", FILTERS_REQUIRED)

    def _checked_mechanisms(self, mechanisms: Any) -> dict[str, list[dict[str, str]]]:
        if not isinstance(mechanisms, dict) or not all(key in MECHANISM_TYPES for key in mechanisms):
            raise _error(400, INVALID_ALERTING_REQUEST, f"mechanisms must be an object of {', '.join(MECHANISM_TYPES)}")
        checked: dict[str, list[dict[str, str]]] = {}
        for kind, targets in mechanisms.items():
            if not isinstance(targets, list) or not all(
                isinstance(t, dict) and isinstance(t.get("id"), str) for t in targets
            ):
                raise _error(400, INVALID_ALERTING_REQUEST, f"mechanisms.{kind} must be a list of {{id}}")
            for target in targets:
                target_id = target["id"]
                if kind == "email" and not _EMAIL.fullmatch(target_id):
                    raise _error(400, INVALID_ALERTING_REQUEST, f"invalid email address {_go_quote(target_id)}")
                if kind == "webhooks" and target_id not in self.state.webhooks:
                    raise _error(400, 0, "invalid Webhook ID")
                if kind == "pagerduty" and target_id not in self.state.pagerduty:
                    raise _error(400, 0, "invalid PagerDuty ID")
            if targets:
                checked[kind] = [{"id": t["id"]} for t in targets]
        if not checked:
            raise _error(400, MECHANISM_REQUIRED, "at least one mechanism is required")
        return checked

    # ----------------------------------------------------------------------------------- webhooks

    def _webhook(self, call: _Call) -> dict[str, Any]:
        webhook = self.state.webhooks.get(call.groups["webhook"])
        if webhook is None:
            raise _error(404, 0, "Webhook not found")
        return webhook

    def _list_pagerduty(self, call: _Call) -> list[dict[str, Any]]:
        """Connected PagerDuty services (connecting one happens in a browser: ``add_pagerduty``)."""
        return [{"id": service_id, "name": name} for service_id, name in sorted(self.state.pagerduty.items())]

    def _list_webhooks(self, call: _Call) -> list[dict[str, Any]]:
        return [copy.deepcopy(webhook) for webhook in self.state.webhooks.values()]

    def _get_webhook(self, call: _Call) -> dict[str, Any]:
        return copy.deepcopy(self._webhook(call))

    def _checked_webhook(self, body: Any) -> tuple[str, str, str | None]:
        body = self._object_body(body)
        name, url, secret = body.get("name"), body.get("url"), body.get("secret")
        if not isinstance(name, str) or not name:
            raise _error(400, INVALID_ALERTING_REQUEST, "name is required")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise _error(400, INVALID_ALERTING_REQUEST, "url must be an http(s) URL")
        if parts.hostname.endswith(".invalid"):
            raise _error(400, 0, "Webhook test failed: the test message could not be delivered")
        if secret is not None and not isinstance(secret, str):
            raise _error(400, INVALID_ALERTING_REQUEST, "secret must be a string")
        return name, str(url), secret

    @staticmethod
    def _webhook_type(url: str) -> str:
        host = urlsplit(url).hostname or ""
        return next(
            (kind for suffix, kind in _WEBHOOK_TYPES if host == suffix or host.endswith("." + suffix)), "generic"
        )

    def _post_webhook(self, call: _Call) -> dict[str, str]:
        name, url, secret = self._checked_webhook(call.body)
        webhook: dict[str, Any] = {
            "id": self._new_id(),
            "name": name,
            "url": url,
            "type": self._webhook_type(url),
            "created_at": self._now(),
            "last_success": None,
            "last_failure": None,
        }
        self.state.webhooks[webhook["id"]] = webhook
        if secret is not None:
            self.state.webhook_secrets[webhook["id"]] = secret
        return {"id": webhook["id"]}

    def _put_webhook(self, call: _Call) -> dict[str, str]:
        webhook = self._webhook(call)
        name, url, secret = self._checked_webhook(call.body)
        webhook.update(name=name, url=url, type=self._webhook_type(url))
        if secret is not None:
            self.state.webhook_secrets[webhook["id"]] = secret
        return {"id": webhook["id"]}

    def _delete_webhook(self, call: _Call) -> None:
        webhook = self._webhook(call)
        del self.state.webhooks[webhook["id"]]
        self.state.webhook_secrets.pop(webhook["id"], None)

    # ----------------------------------------------------------------------------------- Workers scripts

    def _script(self, call: _Call) -> dict[str, Any]:
        script = self.state.scripts.get(call.groups["script"])
        if script is None:
            raise _error(404, SCRIPT_NOT_FOUND, "workers.api.error.script_not_found")
        return script

    @staticmethod
    def _script_settings(script: dict[str, Any]) -> dict[str, Any]:
        keys = ("logpush", "tags", "tail_consumers", "observability")
        return {key: copy.deepcopy(script[key]) for key in keys}

    def _get_script_settings(self, call: _Call) -> dict[str, Any]:
        return self._script_settings(self._script(call))

    def _patch_script_settings(self, call: _Call) -> dict[str, Any]:
        script = self._script(call)
        body = self._object_body(call.body)
        if "logpush" in body and not isinstance(body["logpush"], bool):
            raise _error(400, INVALID_SCRIPT_SETTINGS, "logpush must be a boolean")
        for key in ("tags", "tail_consumers"):
            if key in body and body[key] is not None and not isinstance(body[key], list):
                raise _error(400, INVALID_SCRIPT_SETTINGS, f"{key} must be a list")
        if "observability" in body:
            problem = _observability_problem(body["observability"])
            if problem:
                raise _error(400, INVALID_SCRIPT_SETTINGS, problem)
        for key in ("logpush", "tags", "tail_consumers", "observability"):
            if key in body:
                script[key] = copy.deepcopy(body[key]) if body[key] is not None or key == "observability" else []
        return self._script_settings(script)

    # ----------------------------------------------------------------------------------- observability alerts

    def _list_observability_alerts(self, call: _Call) -> list[dict[str, Any]]:
        """UNDOCUMENTED (third-party reports only): the dashboard's Workers Observability alerts. Read-only here."""
        if self.observability_alerts is None:
            status = self.observability_alerts_absent_status
            if status == 400:
                raise _Reply(
                    400,
                    _no_route_errors(API_PREFIX + f"/accounts/{call.groups['account']}/workers/observability/alerts"),
                )
            raise _error(status, NO_ROUTE_FOR_URI, "No route for that URI")
        return copy.deepcopy(self.observability_alerts)

    def _get_script_and_version_settings(self, call: _Call) -> dict[str, Any]:
        script = self._script(call)
        return {
            **self._script_settings(script),
            "bindings": [],
            "compatibility_date": script["compatibility_date"],
            "compatibility_flags": [],
            "usage_model": "standard",
        }


def pagerduty_services(spec: Spec) -> list[str]:
    """The PagerDuty services the spec's targets name, which an account must have connected before a
    notification policy may page them."""
    return sorted({target.pagerduty.service for target in spec.targets.values() if target.pagerduty is not None})
