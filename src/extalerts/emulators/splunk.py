"""A local Splunk emulator: a loopback HTTP server speaking the part of splunkd's REST API extalerts uses.

Emulated, as the real ``splunk-sdk`` (``splunklib``) drives it:

- ``POST /services/auth/login`` (username/password → ``<response><sessionKey>``; with ``cookie=1`` also a
  ``splunkd_<port>`` cookie, which the SDK then sends instead of the ``Authorization`` header), and
  authentication by ``Authorization: Splunk <sessionKey>``, ``Bearer <token>`` or ``Basic``.
- ``/servicesNS/{owner}/{app}/saved/searches`` (and ``/services/…`` = the logged-in user in app ``search``):
  Atom feeds (or ``output_mode=json``) with ``count``/``offset`` paging and the ``search`` filter; create,
  read, update, delete, ``…/acl``, ``…/enable``, ``…/disable``. Owner ``-`` and app ``-`` are wildcards
  on reads; ``nobody`` means shared. Each saved search is kept per (app, name) with its ACL.
- Arguments are checked like splunkd checks them: REST parameter names only (the conf-only names
  ``enableSched``, ``counttype``, ``relation``, ``quantity`` are unknown to the handler), cheap value checks
  from ``savedsearches.conf.spec``, ``action.<name>`` ignored (read-only over REST). Reads answer with REST
  names plus the server-side defaults from the spec, enabled actions both as ``actions`` and
  ``action.<name> = 1``. Settings are stored under their ``.conf`` names (``conf_stanza``).
- ``…/alerts/fired_alerts`` (one group per alerting search, plus the ``-`` group of all) and
  ``…/alerts/fired_alerts/{name}``; ``fire()`` records a trigger the way the scheduler would.
- HEC ``POST /services/collector/raw`` (served on the same port): body lines kept per index and sourcetype,
  and indexed as events (``index``), timed by the source type's ``props`` (TIME_PREFIX/TIME_FORMAT), else
  by when they arrived. :mod:`extalerts.emulators.splunk_scheduler` runs the saved searches over them.
- Apps: a namespaced call into an app that is not installed is answered 404 ``Application does not exist:
  <app>`` (splunkd's exact text for it is not confirmed; see ``_check_app``). ``…/apps/local`` lists,
  reads and creates apps (``POST`` with ``name``, as Splunk Enterprise takes it); Splunk's own apps
  (``search``, ``launcher``, ``system``, ``splunk_httpinput``) are always there, others by ``apps=``.
- ``…/authentication/current-context`` (the caller's user name and roles), ``…/alerts/alert_actions`` (the
  built-in actions plus those installed by ``alert_actions=``), ``…/data/inputs/http`` (the HEC token with
  its default ``index``), and ``server/info`` (the version, from which splunk-sdk picks its search endpoints).
- Search jobs, ``…/search/jobs`` and ``…/search/v2/jobs``: create (``exec_mode`` normal, blocking or
  oneshot), read, results (``output_mode=json``, ``count``/``offset``), control and delete. A job RUNS its
  SPL with the SPL executor (:mod:`extalerts.emulators.spl`) over the indexed events in
  ``[earliest_time, latest_time)`` by ``_time`` (and ``[index_earliest, index_latest)`` by ``_indextime``);
  a search the executor cannot run is refused with splunkd's error envelope, never answered.

Faults (``extalerts.emulators.base.Faults``): a drawn ``"429"`` becomes splunkd's 503, plus 500, slow
answers and answers lost after the write was committed. Every call is counted per route and logged.

Messages known from splunkd are reproduced verbatim (``Argument "x" is not supported by this handler.``,
``Could not find object id=x``, ``call not properly authenticated``, ``Login failed``, the HEC codes, and the
409's closing ``A saved search with that name already exists.``); value checks, missing arguments, wildcard
writes and the 503's text are worded by the emulator, as splunkd's wording for them is not known.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import itertools
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus, urlsplit
from xml.sax.saxutils import escape, quoteattr

from extalerts.emulators.base import EmulatorServer, Faults
from extalerts.emulators.spl import (
    EventIndex,
    IndexedEvent,
    SearchContext,
    SplError,
    TimestampRule,
    compile_search,
    relative_time,
    result_text,
)

#: The splunkd version the emulator answers as (the spec it follows is 9.2's).
VERSION = "9.2.0"

#: ``.conf`` name → REST parameter name where they differ (splunk.md §1.1).
REST_NAMES: dict[str, str] = {
    "enableSched": "is_scheduled",
    "counttype": "alert_type",
    "relation": "alert_comparator",
    "quantity": "alert_threshold",
}
CONF_NAMES: dict[str, str] = {rest: conf for conf, rest in REST_NAMES.items()}

_ARGUMENT_NAMES = (
    "search description disabled dispatchAs is_scheduled cron_schedule schedule allow_skew max_concurrent "
    "realtime_schedule schedule_priority schedule_window schedule_as workload_pool alert_type alert_comparator "
    "alert_threshold alert_condition actions run_on_startup run_n_times restart_on_searchpeer_add "
    "durable.track_time_type durable.lag_time durable.backfill_type durable.max_backfill_intervals auto_summarize "
    "alert.suppress alert.suppress.period alert.suppress.fields alert.suppress.group_name alert.severity "
    "alert.expires alert.digest_mode alert.track alert.display_view alert.managedBy displayview vsid is_visible "
    "request.ui_dispatch_app request.ui_dispatch_view embed.enabled defer_scheduled_searchable_idxc "
    "skip_scheduled_realtime_idxc precalculate_required_fields_for_alerts"
)
_DISPATCH_KEYS = (
    "ttl buckets max_count max_time lookups earliest_time latest_time index_earliest index_latest time_format "
    "spawn_process auto_cancel auto_pause reduce_freq allow_partial_results rt_backfill indexedRealtime "
    "indexedRealtimeOffset indexedRealtimeMinSpan rt_maximum_span sample_ratio rate_limit_retry"
)
_AUTO_SUMMARIZE_KEYS = (
    "command timespan cron_schedule suspend_period max_summary_size max_summary_ratio max_disabled_buckets "
    "max_time hash normalized_hash max_concurrent workload_pool"
)
#: The saved-search arguments the REST handler takes (REST names): the settings of savedsearches.conf.spec
#: 9.2 with the four renamed ones under their REST names, plus ``actions``. ``action.*`` and ``display.*``
#: are wildcards (see ``_unsupported``).
SAVEDSEARCH_ARGUMENTS: frozenset[str] = frozenset(
    {
        *_ARGUMENT_NAMES.split(),
        *(f"dispatch.{key}" for key in _DISPATCH_KEYS.split()),
        *(f"auto_summarize.{key}" for key in _AUTO_SUMMARIZE_KEYS.split()),
    }
)
#: Built-in actions savedsearches.conf.spec documents; reads report them as ``action.<name> = 0`` when off.
BUILTIN_ACTIONS = ("email", "lookup", "populate_lookup", "script", "summary_index")
#: What a read reports for a setting nobody set (REST names; values from savedsearches.conf.spec 9.2).
DEFAULTS: dict[str, str] = {
    "disabled": "0",
    "dispatchAs": "owner",
    "is_scheduled": "0",
    "cron_schedule": "",
    "allow_skew": "0",
    "max_concurrent": "1",
    "realtime_schedule": "1",
    "schedule_priority": "default",
    "schedule_window": "0",
    "schedule_as": "auto",
    "alert_type": "always",
    "alert_comparator": "",
    "alert_threshold": "",
    "alert_condition": "",
    "run_on_startup": "0",
    "run_n_times": "0",
    "restart_on_searchpeer_add": "1",
    "dispatch.ttl": "2p",
    "dispatch.buckets": "0",
    "dispatch.max_count": "500000",
    "dispatch.max_time": "0",
    "dispatch.lookups": "1",
    "dispatch.earliest_time": "",
    "dispatch.latest_time": "",
    "dispatch.index_earliest": "",
    "dispatch.index_latest": "",
    "dispatch.time_format": "%FT%T.%Q%:z",
    "dispatch.spawn_process": "1",
    "dispatch.auto_cancel": "0",
    "dispatch.auto_pause": "0",
    "dispatch.reduce_freq": "10",
    "dispatch.allow_partial_results": "1",
    "dispatch.rt_backfill": "0",
    "dispatch.sample_ratio": "1",
    "dispatch.rate_limit_retry": "0",
    "alert.suppress": "0",
    "alert.suppress.period": "",
    "alert.suppress.fields": "",
    "alert.suppress.group_name": "",
    "alert.severity": "3",
    "alert.expires": "24h",
    "alert.digest_mode": "1",
    "alert.track": "auto",
    "alert.display_view": "",
    "alert.managedBy": "",
    "displayview": "",
    "vsid": "",
    "is_visible": "1",
    "description": "",
    "request.ui_dispatch_app": "",
    "request.ui_dispatch_view": "",
    **{f"action.{name}": "0" for name in BUILTIN_ACTIONS},
}
ALERT_TYPES = frozenset({"always", "custom", "number of events", "number of hosts", "number of sources"})
#: REST comparators (splunk.md §1.1) plus "not equal to", which the conf spec allows for ``relation``.
ALERT_COMPARATORS = frozenset(
    {"greater than", "less than", "equal to", "not equal to", "rises by", "drops by", "rises by perc", "drops by perc"}
)
SHARING = frozenset({"user", "app", "global", "system"})
_BOOLEANS = {"1": True, "true": True, "yes": True, "t": True, "0": False, "false": False, "no": False, "f": False}
_BOOLEAN_NAMES = (
    "disabled is_scheduled is_visible realtime_schedule run_on_startup restart_on_searchpeer_add auto_summarize "
    "embed.enabled alert.suppress alert.digest_mode defer_scheduled_searchable_idxc skip_scheduled_realtime_idxc "
    "precalculate_required_fields_for_alerts dispatch.lookups dispatch.spawn_process "
    "dispatch.allow_partial_results dispatch.rt_backfill dispatch.rate_limit_retry dispatch.indexedRealtime"
)
_INTEGER_NAMES = (
    "max_concurrent run_n_times alert.severity durable.lag_time durable.max_backfill_intervals "
    "triggered_alert_count dispatch.buckets dispatch.max_count dispatch.max_time dispatch.auto_cancel "
    "dispatch.auto_pause dispatch.reduce_freq dispatch.sample_ratio dispatch.indexedRealtimeOffset "
    "dispatch.indexedRealtimeMinSpan dispatch.rt_maximum_span"
)
#: Settings the spec types as booleans and unsigned integers: checked on write, typed in JSON answers.
_BOOLEAN_KEYS = frozenset({*_BOOLEAN_NAMES.split(), *(f"action.{name}" for name in BUILTIN_ACTIONS)})
_INTEGER_KEYS = frozenset(_INTEGER_NAMES.split())
_ACTION_ARGUMENT = re.compile(r"^action\.([A-Za-z0-9_]+)(\..+)?$")
_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")
_TIME_SPECIFIER = re.compile(r"^[0-9]+[smhd]?$")
_SKEW = re.compile(r"^(0|[0-9]+%|[0-9]+(m|min|minute|mins|minutes|h|hr|hour|hrs|hours|d|day|days))$")
_THRESHOLD = re.compile(r"^[0-9]+(\.[0-9]+)?%?$")
_TTL = re.compile(r"^[0-9]+p?$")
_CHOICES: dict[str, frozenset[str]] = {
    "alert_type": ALERT_TYPES,
    "schedule_priority": frozenset({"default", "higher", "highest"}),
    "schedule_as": frozenset({"auto", "classic", "prjob"}),
    "dispatchAs": frozenset({"user", "owner"}),
}
#: How a drawn fault is answered: the Datadog kind "429" becomes splunkd's 503 (HEC: "Server is busy").
_SERVER_ERRORS = {"429": (503, "Service Unavailable"), "500": (500, "Internal Server Error")}
_HEC_ERRORS = {"429": (503, "Server is busy", 9), "500": (500, "Internal server error", 8)}
#: Scheduled runs kept per saved search (its history).
HISTORY_KEPT = 50
#: A list without ``count`` gets this many entries, as splunkd's ``itemsPerPage`` shows.
DEFAULT_COUNT = 30
_SEARCHES, _ALERTS = "saved/searches", "alerts/fired_alerts"
_ATOM_NAMESPACES = (
    'xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"'
)


@dataclass(frozen=True)
class _Namespace:
    owner: str
    app: str

    @property
    def wildcard(self) -> bool:
        return "-" in (self.owner, self.app)


@dataclass
class _SavedSearch:
    app: str
    name: str
    owner: str
    sharing: str
    #: Explicitly set settings under their .conf names, as local/savedsearches.conf would hold them.
    settings: dict[str, str]
    updated: str
    perms: dict[str, list[str]] | None = None
    fired: list[dict[str, str]] = field(default_factory=list)

    @property
    def namespace_owner(self) -> str:
        """The owner segment of this object's own URL: shared objects live under ``nobody``."""
        return self.owner if self.sharing == "user" else "nobody"

    def visible_from(self, namespace: _Namespace) -> bool:
        in_app = namespace.app == "-" or self.app == namespace.app or self.sharing == "global"
        to_owner = namespace.owner == "-" or self.sharing != "user" or self.owner == namespace.owner
        return in_app and to_owner

    def enabled_actions(self) -> list[str]:
        found = (_ACTION_ARGUMENT.match(key) for key, value in self.settings.items() if _is_true(value))
        return sorted(match.group(1) for match in found if match and match.group(2) is None)


@dataclass
class _Entry:
    """One Atom entry (or JSON entry), before rendering."""

    title: str
    #: URL-encoded path of the entry, used for its links.
    path: str
    author: str
    content: dict[str, Any]
    updated: str
    links: tuple[str, ...] = ("list", "edit", "remove")


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "text/xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _Reply(Exception):
    """Raised by a handler to answer with an error (or any prepared answer)."""

    def __init__(self, answer: _Answer) -> None:
        self.answer = answer


@dataclass
class _Call:
    method: str
    groups: dict[str, str]
    query: dict[str, list[str]]
    form: dict[str, str]
    body: bytes
    headers: Message
    user: str

    @property
    def json(self) -> bool:
        return (self.form.get("output_mode") or _last(self.query, "output_mode")) == "json"

    @property
    def namespace(self) -> _Namespace:
        # /services/… (no namespace) means the calling user in the default app, "search".
        return _Namespace(self.groups.get("owner") or self.user, self.groups.get("app") or "search")

    @property
    def name(self) -> str:
        return self.groups["name"]


@dataclass(frozen=True)
class _Route:
    method: str
    name: str
    pattern: re.Pattern[str]
    handler: Callable[[_Call], _Answer]
    #: "login" needs no credentials, "hec" a HEC token, "rest" a session, token or password.
    auth: str = "rest"


def _last(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[-1] if found else None


def _is_true(value: str) -> bool:
    return _BOOLEANS.get(value.strip().lower(), False)


def _error(status: int, text: str, *, json_mode: bool = False, kind: str = "ERROR", code: str = "") -> _Reply:
    """splunkd's error shape: ``<response><messages><msg type="ERROR">…``, or its JSON twin."""
    if json_mode:
        message: dict[str, str] = {"type": kind, "text": text}
        return _Reply(_Answer(status, json.dumps({"messages": [message]}).encode(), "application/json"))
    code_attr = f" code={quoteattr(code)}" if code else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <messages>\n'
        f"    <msg type={quoteattr(kind)}{code_attr}>{_text(text)}</msg>\n  </messages>\n</response>\n"
    )
    return _Reply(_Answer(status, body.encode()))


def _hec_error(status: int, text: str, code: int) -> _Reply:
    return _Reply(_Answer(status, json.dumps({"text": text, "code": code}).encode(), "application/json"))


def _text(value: str) -> str:
    # XML parsers turn a bare CR into LF; a reference keeps multi-line searches byte for byte.
    return escape(value).replace("\r", "&#13;")


def _xml_value(value: Any) -> str:
    if isinstance(value, dict):
        keys = "".join(f"<s:key name={quoteattr(k)}>{_xml_value(v)}</s:key>" for k, v in value.items())
        return f"<s:dict>{keys}</s:dict>"
    if isinstance(value, list):
        return "<s:list>" + "".join(f"<s:item>{_xml_value(item)}</s:item>" for item in value) + "</s:list>"
    return "" if value is None else _text(str(value))


def _json_value(key: str, value: Any) -> Any:
    """splunkd's JSON mode types booleans and integers; XML carries every value as text."""
    if not isinstance(value, str):
        return value
    if key in _BOOLEAN_KEYS or key.startswith("can_") or key in ("modifiable", "removable"):
        parsed = _BOOLEANS.get(value.lower())
        return value if parsed is None else parsed
    if key in _INTEGER_KEYS and value.isdigit():
        return int(value)
    return value


def _wildcard_match(pattern: str, value: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _filter_matches(term: str, entry: _Entry) -> bool:
    """splunkd's ``search`` filter: ``field=pattern`` (``*`` wildcards), else a substring of any field."""
    strings = {k: v for k, v in entry.content.items() if isinstance(v, str)}
    key, sep, pattern = term.partition("=")
    if sep and key and " " not in key:
        if key in ("name", "title"):
            return _wildcard_match(pattern, entry.title)
        return key in strings and _wildcard_match(pattern, strings[key])
    return any(_wildcard_match(f"*{term}*", value) for value in (entry.title, *strings.values()))


def _value_problem(key: str, value: str) -> str:
    """Why ``value`` is not valid for the REST argument ``key`` ("" when it is, or is not checked)."""
    lowered = value.strip().lower()
    if key in _BOOLEAN_KEYS and lowered not in _BOOLEANS:
        return "must be a boolean (0, 1, true or false)"
    if key == "alert.track" and lowered not in _BOOLEANS and lowered != "auto":
        return "must be a boolean or auto"
    if key == "alert.severity" and not (value.isdigit() and 1 <= int(value) <= 6):
        return "must be an integer from 1 (debug) to 6 (fatal)"
    if key in _INTEGER_KEYS and value and not value.isdigit():
        return "must be an unsigned integer"
    if key == "cron_schedule" and value:
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(part) for part in fields):
            return "must be a cron string of five numeric fields (names of months or days are not supported)"
    if key in _CHOICES and value not in _CHOICES[key]:
        return "must be one of " + ", ".join(sorted(_CHOICES[key]))
    if key == "alert_comparator" and value and value not in ALERT_COMPARATORS:
        return "must be one of " + ", ".join(sorted(ALERT_COMPARATORS))
    problems = {
        "alert_threshold": (_THRESHOLD, "must be a number, optionally followed by %"),
        "alert.expires": (_TIME_SPECIFIER, "must be a time specifier such as 24h"),
        "alert.suppress.period": (_TIME_SPECIFIER, "must be a time specifier such as 30m"),
        "allow_skew": (_SKEW, "must be a percentage or a duration such as 5m"),
        "dispatch.ttl": (_TTL, "must be an integer, optionally followed by p"),
    }
    if key in problems and value and not problems[key][0].match(value):
        return problems[key][1]
    if key == "schedule_window" and not (value == "auto" or value.isdigit()):
        return "must be a number of minutes or auto"
    return ""


def _path(owner: str, app: str, collection: str, name: str = "") -> str:
    """The URL-encoded path of a collection (or of one entry in it) in the owner's and app's namespace."""
    parts = [quote(owner, safe=""), quote(app, safe=""), collection, *([quote(name, safe="")] if name else [])]
    return "/servicesNS/" + "/".join(parts)


def _writable(call: _Call) -> _Namespace:
    """The namespace of a write, which must name its owner and app."""
    if call.namespace.wildcard:
        message = 'Cannot write in a wildcard namespace (owner or app "-"); name the owner and app.'
        raise _error(400, message, json_mode=call.json)
    return call.namespace


def _unsupported(key: str, *, create: bool) -> bool:
    """True when the saved-search handler does not take ``key`` (create also takes ``name``)."""
    if key == "output_mode" or key in SAVEDSEARCH_ARGUMENTS or (create and key == "name"):
        return False
    return not (key.startswith("display.") or _ACTION_ARGUMENT.match(key))


def made_up_hec_token() -> str:
    """A HEC token in the form Splunk gives them (a GUID), for emulators that make their own."""
    return "-".join(secrets.token_hex(n) for n in (4, 2, 2, 2, 6))


class SplunkEmulator(EmulatorServer):
    """Run with ``with SplunkEmulator(token=…, username=…, password=…, hec_token=…) as emulator: …emulator.url…``."""

    thread_name = "splunk-emulator"
    # Splunk's REST API has no PATCH.
    methods = ("GET", "POST", "PUT", "DELETE")

    def __init__(
        self,
        *,
        token: str | None = None,
        username: str = "admin",
        password: str | None = None,
        hec_token: str | None = None,
        hec_default_index: str = "main",
        apps: Iterable[str] = (),
        alert_actions: Iterable[str] = (),
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        props: Mapping[str, TimestampRule] | None = None,
    ) -> None:
        # ``requests`` holds each request's method, path (as sent, URL-encoded), parameters (form fields
        # of a POST, query of anything else; the raw body bytes for HEC) and the status answered.
        super().__init__(host, port, faults, clock)
        self.token = token
        self.username = username
        self.password = password
        self.hec_token = hec_token
        #: The index of events that name none: a HEC token's default index.
        self.hec_default_index = hec_default_index
        #: Raw lines received on HEC, per (index, sourcetype).
        self.hec_events: dict[tuple[str, str], list[str]] = {}
        #: The same lines in arrival order, as (index, sourcetype, line), for the sandbox's evaluation.
        self.hec_log: list[tuple[str, str, str]] = []
        #: When each HEC line arrived (emulator clock), with its index and sourcetype.
        self.hec_arrivals: list[tuple[float, str, str]] = []
        #: Installed apps by name (their ``apps/local`` content), Splunk's own ones included.
        self.apps: dict[str, dict[str, str]] = {name: _app_content(name) for name in (*BUILTIN_APPS, *apps)}
        #: Alert actions by name (their ``alerts/alert_actions`` content): the built-in ones and those installed.
        self.alert_actions: dict[str, dict[str, str]] = {
            name: _alert_action_content(name) for name in BUILTIN_ALERT_ACTIONS
        }
        for name in alert_actions:
            self.add_alert_action(name)
        #: How each source type's events are timed (props.conf), as the app installed on the indexer says.
        self.props: dict[str, TimestampRule] = dict(props or {})
        #: The indexed events the saved searches run over; searches hold ``index_lock`` while they read.
        self.index = EventIndex()
        self.index_lock = threading.Lock()
        self._unindexed: list[tuple[str, str, str, float]] = []
        self._unindexed_lock = threading.Lock()
        #: Scheduled runs per sid (the scheduler records them), and each saved search's recent sids.
        self.runs: dict[str, Any] = {}
        self._history: dict[tuple[str, str], list[str]] = {}
        self._searches: dict[tuple[str, str], _SavedSearch] = {}
        self._sessions: dict[str, str] = {}
        #: Search jobs by sid (``search/jobs``), kept until deleted or cancelled.
        self.jobs: dict[str, _Job] = {}
        self._job_numbers = itertools.count(1)
        self._fired_count = 0
        self._routes = self._route_table()

    # ----------------------------------------------------------------------------------- helpers for tests

    def add_saved_search(
        self, app: str, name: str, params: dict[str, str], *, owner: str = "nobody", sharing: str = "app"
    ) -> None:
        """Create a saved search directly (as if someone clicked it together in the UI); REST names."""
        with self._lock:
            self.apps.setdefault(app, _app_content(app))
            try:
                settings = self._settings(params, {}, create=False, json_mode=False)
            except _Reply as reply:
                raise ValueError(reply.answer.body.decode()) from None
            self._store(_SavedSearch(app, name, owner, sharing, settings, self._now()))

    def conf_stanza(self, app: str, name: str) -> dict[str, str]:
        """The saved search as the ``local/savedsearches.conf`` stanza splunkd would write (conf names)."""
        with self._lock:
            return dict(self._searches[(app, name)].settings)

    def saved_searches(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every saved search as (app, name, conf settings)."""
        with self._lock:
            return [(app, name, dict(search.settings)) for (app, name), search in sorted(self._searches.items())]

    def updated_at(self, app: str, name: str) -> float | None:
        """When the saved search was last written (epoch seconds), as its ``updated`` shows."""
        with self._lock:
            search = self._searches.get((app, name))
            return None if search is None else datetime.fromisoformat(search.updated).timestamp()

    def hec_since(self, offset: int) -> list[tuple[str, str, str]]:
        with self._lock:
            return self.hec_log[offset:]

    def fire(self, app: str, name: str, trigger_time: float | None = None) -> str | None:
        """Record a triggered alert, as the scheduler does; only tracked alerts (``alert.track``) are listed.

        Returns the sid of the recorded alert, or None when the search does not track its alerts
        (``auto`` is treated as not tracked: the emulator runs no actions whose tracking it could follow).
        """
        with self._lock:
            search = self._searches.get((app, name))
            if search is None or not _is_true(search.settings.get("alert.track", "auto")):
                return None
            self._fired_count += 1
            now = int(self.clock() if trigger_time is None else trigger_time)
            sid = f"scheduler__{search.namespace_owner}__{app}__RMD5{secrets.token_hex(8)}_at_{now}_{self._fired_count}"
            search.fired.append(
                {
                    "savedsearch_name": name,
                    "sid": sid,
                    "severity": search.settings.get("alert.severity", DEFAULTS["alert.severity"]),
                    "trigger_time": str(now),
                    "triggered_alerts": "1",
                    "digest_mode": search.settings.get("alert.digest_mode", DEFAULTS["alert.digest_mode"]),
                    "actions": ",".join(search.enabled_actions()),
                }
            )
            return sid

    def install_app(self, name: str) -> None:
        """Install an app, as deploying the packaged app (or ACS) does."""
        with self._lock:
            self.apps.setdefault(name, _app_content(name))

    def add_alert_action(self, name: str, *, disabled: bool = False) -> None:
        """Install an alert action (as its app does, e.g. the PagerDuty app's ``pagerduty``), or disable one."""
        with self._lock:
            self.alert_actions[name] = _alert_action_content(name) | {"disabled": "1" if disabled else "0"}

    def index_lines(self, index: str, sourcetype: str, lines: list[str], received: float) -> None:
        """Queue raw lines for indexing (cheap: HEC answers while a search may hold the index)."""
        with self._unindexed_lock:
            self._unindexed.extend((index, sourcetype, line, received) for line in lines)

    def index_pending(self) -> None:
        """Index what HEC received since the last call: ``_time`` from the source type's timestamp rule
        (``props``), else when it arrived. Searches call this before they read the index."""
        with self.index_lock:
            with self._unindexed_lock:
                pending, self._unindexed = self._unindexed, []
            for index, sourcetype, line, received in pending:
                rule = self.props.get(sourcetype)
                at = rule.extract(line) if rule else None
                event = IndexedEvent(line, received if at is None else at, index, sourcetype, index_time=received)
                self.index.add(event)

    def record_run(self, run: Any) -> None:
        """Keep a scheduled run (a ``splunk_scheduler.Run``) for the saved search's history."""
        with self._lock:
            self.runs[run.sid] = run
            sids = self._history.setdefault((run.app, run.name), [])
            sids.append(run.sid)
            for old in sids[:-HISTORY_KEPT]:
                self.runs.pop(old, None)
            del sids[:-HISTORY_KEPT]

    def history(self, app: str, name: str) -> list[Any]:
        """The saved search's recent runs, oldest first."""
        with self._lock:
            return [self.runs[sid] for sid in self._history.get((app, name), []) if sid in self.runs]

    def ingested(self, index: str, sourcetype: str) -> list[str]:
        """The raw lines HEC received for this index and sourcetype."""
        with self._lock:
            return list(self.hec_events.get((index, sourcetype), []))

    # ----------------------------------------------------------------------------------- routing

    def _route_table(self) -> list[_Route]:
        def r(method: str, template: str, handler: Callable[[_Call], _Answer], auth: str = "rest") -> _Route:
            # /services/… is the same collection seen from the caller's own namespace; splunk-sdk addresses
            # collections with a trailing slash ("saved/searches/"), and splunkd takes both.
            pattern = template.replace(
                "/servicesNS/{owner}/{app}", r"/(?:services|servicesNS/(?P<owner>[^/]+)/(?P<app>[^/]+))"
            )
            pattern = pattern.replace("{name}", r"(?P<name>[^/]+)")
            return _Route(method, f"{method} {template}", re.compile(f"^{pattern}/?$"), handler, auth)

        searches, alerts = "/servicesNS/{owner}/{app}/saved/searches", "/servicesNS/{owner}/{app}/alerts/fired_alerts"
        return [
            r("POST", "/services/auth/login", self._login, "login"),
            r("POST", "/services/collector/raw", self._hec_raw, "hec"),
            r("GET", searches, self._list_searches),
            r("POST", searches, self._create_search),
            r("GET", f"{searches}/{{name}}", self._get_search),
            r("POST", f"{searches}/{{name}}", self._update_search),
            r("DELETE", f"{searches}/{{name}}", self._delete_search),
            r("POST", f"{searches}/{{name}}/acl", self._update_acl),
            r("POST", f"{searches}/{{name}}/enable", self._enable),
            r("POST", f"{searches}/{{name}}/disable", self._disable),
            r("GET", f"{searches}/{{name}}/history", self._search_history),
            r("GET", alerts, self._list_alert_groups),
            r("GET", f"{alerts}/{{name}}", self._list_fired_alerts),
            *self._provisioning_routes(r),
        ]

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        if self.faults.latency:
            time.sleep(self.faults.latency)
        matches = [(route, m) for route in self._routes if (m := route.pattern.match(url.path))]
        found = next(((route, m) for route, m in matches if route.method == request.command), None)
        if found is None:
            status, text = (405, "Method Not Allowed") if matches else (404, "Not Found")
            self._send(request, _error(status, text).answer)
            return
        route, match = found
        with self._lock:
            self.calls[route.name] += 1
            fault = self._draw_fault(route.name)
        query = parse_qs(url.query, keep_blank_values=True)
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        # Names arrive quoted two ways: entity links use %20, Collection[name]/delete quote_plus (+).
        groups = {k: unquote_plus(v) for k, v in match.groupdict().items() if v is not None}
        logged: Any
        if route.auth == "hec":
            logged = raw
        elif request.command == "POST":
            # Logs end up in test failure output; a login's password need not.
            logged = {k: "******" if k == "password" else v for k, v in form.items()} or None
        else:
            logged = {k: v[-1] for k, v in query.items()} or None
        try:
            user = self._authenticate(route, request.headers)
            if fault in _SERVER_ERRORS:
                with self._lock:
                    self.faults_injected[fault] += 1
                raise self._fault_reply(route, fault)
        except _Reply as refused:
            self._record(request, url.path, logged, refused.answer)
            self._send(request, refused.answer)
            return
        try:
            with self._lock:
                call = _Call(request.command, groups, query, form, raw, request.headers, user)
                self._check_app(call)
                answer = route.handler(call)
        except _Reply as reply:
            answer = reply.answer
        self._record(request, url.path, logged, answer)
        if fault in ("lost", "slow"):
            with self._lock:
                self.faults_injected[fault] += 1
        if fault == "lost":
            # The write is committed; the answer never arrives.
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            time.sleep(self.faults.slow_seconds)
        self._send(request, answer)

    def _record(self, request: BaseHTTPRequestHandler, path: str, logged: Any, answer: _Answer) -> None:
        with self._lock:
            self.requests.append((request.command, path, logged, answer.status))

    @staticmethod
    def _fault_reply(route: _Route, fault: str) -> _Reply:
        if route.auth == "hec":
            return _hec_error(*_HEC_ERRORS[fault])
        return _error(*_SERVER_ERRORS[fault])

    def _authenticate(self, route: _Route, headers: Message) -> str:
        """The calling user; raises splunkd's 401 (or HEC's 401/403) when the credentials do not hold."""
        authorization = headers.get("Authorization", "")
        scheme, _, credential = authorization.partition(" ")
        if route.auth == "login":
            return ""
        if route.auth == "hec":
            if not authorization:
                raise _hec_error(401, "Token is required", 2)
            if scheme != "Splunk" or not credential:
                raise _hec_error(401, "Invalid authorization", 3)
            if credential != self.hec_token:
                raise _hec_error(403, "Invalid token", 4)
            return ""
        with self._lock:
            user = self._session_user(headers.get("Cookie"))
            if user is None and scheme == "Splunk":
                user = self._sessions.get(credential)
        if user is None and scheme == "Bearer" and self.token is not None and credential == self.token:
            user = self.username
        if user is None and scheme == "Basic" and self._basic_ok(credential):
            user = self.username
        if user is not None:
            return user
        # splunkd answers a Basic (or unknown) scheme differently from the token schemes.
        if authorization and scheme not in ("Splunk", "Bearer"):
            raise _error(401, "Unauthorized")
        raise _error(401, "call not properly authenticated", kind="WARN")

    def _session_user(self, cookie_header: str | None) -> str | None:
        if not cookie_header:
            return None
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except CookieError:
            return None
        keys = (morsel.value for name, morsel in cookies.items() if name.startswith("splunkd_"))
        return next((self._sessions[key] for key in keys if key in self._sessions), None)

    def _basic_ok(self, credential: str) -> bool:
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.password is not None and decoded == f"{self.username}:{self.password}"

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, answer: _Answer) -> None:
        try:
            request.send_response(answer.status)
            request.send_header("Content-Type", answer.content_type)
            request.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                request.send_header(name, value)
            if request.close_connection:
                # splunk-sdk sends "Connection: Close" and closes its http.client connection right after
                # reading the headers; the body survives that only when the answer says it closes too.
                request.send_header("Connection", "close")
            request.end_headers()
            request.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
            request.close_connection = True

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds")

    # ----------------------------------------------------------------------------------- rendering

    def _render(
        self, call: _Call, collection: str, entries: list[_Entry], *, status: int = 200, paged: bool = False
    ) -> _Answer:
        """A feed of ``entries``; with ``paged``, ``count``/``offset``/``search`` select from them."""
        total, count, offset = len(entries), 0, 0
        if paged:
            for term in call.query.get("search", []):
                entries = [entry for entry in entries if _filter_matches(term, entry)]
            try:
                count = int(_last(call.query, "count") or DEFAULT_COUNT)
                offset = int(_last(call.query, "offset") or 0)
            except ValueError:
                raise _error(400, "count and offset must be integers", json_mode=call.json) from None
            total = len(entries)
            # count 0 (and the SDK's -1) mean "all".
            entries = entries[offset:] if count <= 0 else entries[offset : offset + count]
        base = _path(call.namespace.owner, call.namespace.app, collection)
        if call.json:
            document = {
                "links": {"create": f"{base}/_new", "_reload": f"{base}/_reload", "_acl": f"{base}/_acl"},
                "origin": self.url + base,
                "updated": self._now(),
                "generator": {"build": "emulator", "version": VERSION},
                "entry": [self._json_entry(entry) for entry in entries],
                "paging": {"total": total, "perPage": count, "offset": offset},
                "messages": [],
            }
            return _Answer(status, json.dumps(document).encode(), "application/json")
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f"<feed {_ATOM_NAMESPACES}>",
            f"<title>{'alerts' if collection == _ALERTS else 'savedsearch'}</title>",
            f"<id>{_text(self.url + base)}</id>",
            f"<updated>{self._now()}</updated>",
            f'<generator build="emulator" version="{VERSION}"/>',
            "<author><name>Splunk</name></author>",
            f'<link href={quoteattr(base + "/_new")} rel="create"/>',
            f'<link href={quoteattr(base + "/_reload")} rel="_reload"/>',
            f'<link href={quoteattr(base + "/_acl")} rel="_acl"/>',
            f"<opensearch:totalResults>{total}</opensearch:totalResults>",
            f"<opensearch:itemsPerPage>{count}</opensearch:itemsPerPage>",
            f"<opensearch:startIndex>{offset}</opensearch:startIndex>",
            "<s:messages/>",
            *(self._xml_entry(entry) for entry in entries),
            "</feed>",
        ]
        return _Answer(status, "\n".join(parts).encode())

    def _xml_entry(self, entry: _Entry) -> str:
        links = [f'<link href={quoteattr(entry.path)} rel="alternate"/>'] + [
            f"<link href={quoteattr(entry.path)} rel={quoteattr(rel)}/>"
            if rel in ("list", "edit", "remove")
            else f"<link href={quoteattr(entry.path + '/' + rel)} rel={quoteattr(rel)}/>"
            for rel in entry.links
        ]
        return "\n".join(
            [
                "<entry>",
                f"<title>{_text(entry.title)}</title>",
                f"<id>{_text(self.url + entry.path)}</id>",
                f"<updated>{entry.updated}</updated>",
                *links,
                f"<author><name>{_text(entry.author)}</name></author>",
                f'<content type="text/xml">{_xml_value(dict(sorted(entry.content.items())))}</content>',
                "</entry>",
            ]
        )

    def _json_entry(self, entry: _Entry) -> dict[str, Any]:
        acl = entry.content.get("eai:acl")
        content = {k: _json_value(k, v) for k, v in sorted(entry.content.items())}
        # JSON mode hoists the ACL out of the content, where a null is left behind.
        content["eai:acl"] = None
        links = {"alternate": entry.path} | {
            rel: entry.path if rel in ("list", "edit", "remove") else f"{entry.path}/{rel}" for rel in entry.links
        }
        return {
            "name": entry.title,
            "id": self.url + entry.path,
            "updated": entry.updated,
            "links": links,
            "author": entry.author,
            "acl": {k: _json_value(k, v) for k, v in acl.items()} if isinstance(acl, dict) else None,
            "content": content,
        }

    # ----------------------------------------------------------------------------------- saved searches

    @staticmethod
    def _acl(search: _SavedSearch) -> dict[str, Any]:
        # Every caller is treated as an admin: it may change, share and remove everything.
        capabilities = ("can_change_perms", "can_list", "can_share_app", "can_share_global", "can_share_user")
        rights = dict.fromkeys((*capabilities, "can_write", "modifiable", "removable"), "1")
        return rights | {"app": search.app, "owner": search.owner, "perms": search.perms, "sharing": search.sharing}

    def _entry(self, search: _SavedSearch) -> _Entry:
        content: dict[str, Any] = dict(DEFAULTS)
        for key, value in search.settings.items():
            content[REST_NAMES.get(key, key)] = value
        content["actions"] = ",".join(search.enabled_actions())
        content["triggered_alert_count"] = str(len(search.fired))
        content["eai:acl"] = self._acl(search)
        content["eai:appName"] = search.app
        content["eai:userName"] = search.namespace_owner
        path = _path(search.namespace_owner, search.app, _SEARCHES, search.name)
        toggle = "enable" if _is_true(search.settings.get("disabled", "0")) else "disable"
        links = ("list", "edit", "remove", toggle, "dispatch", "history")
        return _Entry(search.name, path, search.owner, content, search.updated, links)

    def _visible(self, namespace: _Namespace) -> list[_SavedSearch]:
        found = (s for s in self._searches.values() if s.visible_from(namespace))
        return sorted(found, key=lambda s: (s.name.lower(), s.app))

    def _target(self, call: _Call) -> _SavedSearch:
        """The saved search a write addresses: the one in the namespace's app, else a global one."""
        namespace = _writable(call)
        found = [s for s in self._visible(namespace) if s.name == call.name]
        found.sort(key=lambda s: s.app != namespace.app)
        if not found:
            raise _error(404, f"Could not find object id={call.name}", json_mode=call.json)
        return found[0]

    def _store(self, search: _SavedSearch) -> None:
        if search.sharing != "user" and search.perms is None:
            # What a shared object gets without its own metadata: the search app's default.meta grants.
            search.perms = {"read": ["*"], "write": ["admin", "power"]}
        self._searches[(search.app, search.name)] = search

    def _settings(
        self, args: dict[str, str], current: dict[str, str], *, create: bool, json_mode: bool
    ) -> dict[str, str]:
        """``current`` updated with the REST arguments ``args``, under .conf names; 400 on a bad argument."""
        for key, value in args.items():
            if _unsupported(key, create=create):
                raise _error(400, f'Argument "{key}" is not supported by this handler.', json_mode=json_mode)
            problem = _value_problem(key, value)
            if problem:
                raise _error(400, f'Bad value "{value}" for argument "{key}": {problem}.', json_mode=json_mode)
        settings = dict(current)
        for key, value in args.items():
            action = _ACTION_ARGUMENT.match(key)
            if key in ("name", "output_mode", "actions") or (action and action.group(2) is None):
                # action.<name> is read-only over REST: the enabled actions are set through "actions".
                continue
            if key == "is_scheduled":
                # enableSched takes only 0 and 1 (savedsearches.conf.spec).
                value = "1" if _is_true(value) else "0"
            settings[CONF_NAMES.get(key, key)] = value
        if "actions" in args:
            wanted = {name.strip() for name in args["actions"].split(",") if name.strip()}
            for key in list(settings):
                match = _ACTION_ARGUMENT.match(key)
                if match and match.group(2) is None and match.group(1) not in wanted:
                    settings[key] = "0"
            settings.update({f"action.{name}": "1" for name in sorted(wanted)})
        return settings

    def _list_searches(self, call: _Call) -> _Answer:
        entries = [self._entry(search) for search in self._visible(call.namespace)]
        return self._render(call, _SEARCHES, entries, paged=True)

    def _create_search(self, call: _Call) -> _Answer:
        namespace = _writable(call)
        name = call.form.get("name", "")
        for required in ("name", "search"):
            if not call.form.get(required, "").strip():
                raise _error(400, f'Argument "{required}" is required.', json_mode=call.json)
        settings = self._settings(call.form, {}, create=True, json_mode=call.json)
        if (namespace.app, name) in self._searches:
            message = f"Unable to create saved search with name '{name}'. A saved search with that name already exists."
            raise _error(409, message, json_mode=call.json)
        # Created under "nobody" it is shared with the app; under a user it is that user's private search.
        sharing = "app" if namespace.owner == "nobody" else "user"
        search = _SavedSearch(namespace.app, name, namespace.owner, sharing, settings, self._now())
        self._store(search)
        return self._render(call, _SEARCHES, [self._entry(search)], status=201)

    def _get_search(self, call: _Call) -> _Answer:
        found = [s for s in self._visible(call.namespace) if s.name == call.name]
        if not found:
            raise _error(404, f"Could not find object id={call.name}", json_mode=call.json)
        return self._render(call, _SEARCHES, [self._entry(search) for search in found])

    def _update_search(self, call: _Call) -> _Answer:
        search = self._target(call)
        settings = self._settings(call.form, search.settings, create=False, json_mode=call.json)
        # splunkd needs the search string on every edit; splunk-sdk's SavedSearch.update resends it for that.
        if "search" not in call.form:
            raise _error(400, 'Argument "search" is required.', json_mode=call.json)
        search.settings, search.updated = settings, self._now()
        return self._render(call, _SEARCHES, [self._entry(search)])

    def _delete_search(self, call: _Call) -> _Answer:
        search = self._target(call)
        del self._searches[(search.app, search.name)]
        return self._render(call, _SEARCHES, [self._entry(s) for s in self._visible(call.namespace)], paged=True)

    def _toggle(self, call: _Call, disabled: str) -> _Answer:
        search = self._target(call)
        search.settings["disabled"], search.updated = disabled, self._now()
        return self._render(call, _SEARCHES, [self._entry(search)])

    def _enable(self, call: _Call) -> _Answer:
        return self._toggle(call, "0")

    def _disable(self, call: _Call) -> _Answer:
        return self._toggle(call, "1")

    def _update_acl(self, call: _Call) -> _Answer:
        search = self._target(call)
        for key in call.form:
            if key not in ("sharing", "owner", "perms.read", "perms.write", "output_mode"):
                raise _error(400, f'Argument "{key}" is not supported by this handler.', json_mode=call.json)
        for required in ("sharing", "owner"):
            if not call.form.get(required):
                raise _error(400, f'Argument "{required}" is required.', json_mode=call.json)
        sharing = call.form["sharing"]
        if sharing not in SHARING:
            raise _error(400, f'Bad value "{sharing}" for argument "sharing".', json_mode=call.json)
        search.sharing, search.owner = sharing, call.form["owner"]
        if sharing == "user":
            search.perms = None
        else:
            perms = dict(search.perms or {})
            for kind in ("read", "write"):
                if f"perms.{kind}" in call.form:
                    perms[kind] = [p.strip() for p in call.form[f"perms.{kind}"].split(",") if p.strip()]
            search.perms = perms or None
        self._store(search)
        return self._render(call, _SEARCHES, [self._entry(search)])

    def _search_history(self, call: _Call) -> _Answer:
        """The search's recent scheduled runs (the scheduler's jobs), newest first, each with its state,
        result count and, for a run that failed, the reason (``messages``)."""
        found = [s for s in self._visible(call.namespace) if s.name == call.name]
        if not found:
            raise _error(404, f"Could not find object id={call.name}", json_mode=call.json)
        search = found[0]
        entries = []
        for sid in reversed(self._history.get((search.app, search.name), [])):
            run = self.runs.get(sid)
            if run is None:
                continue
            details = {"triggered_alert_count": str(len(run.triggers)), "scheduled_time": str(int(run.scheduled_time))}
            links = ("list", "edit", "remove")
            entries.append(
                _done_job_entry(sid, "nobody", run.scheduled_time, run.result_count, run.error, details, links)
            )
        return self._render(call, _SEARCHES, entries, paged=True)

    # ----------------------------------------------------------------------------------- fired alerts

    def _alert_group(self, title: str, path: str, count: int) -> _Entry:
        return _Entry(title, path, "nobody", {"triggered_alert_count": str(count)}, self._now(), ("list", "remove"))

    def _list_alert_groups(self, call: _Call) -> _Answer:
        alerting = [s for s in self._visible(call.namespace) if s.fired]
        groups = [
            self._alert_group(s.name, _path(s.namespace_owner, s.app, _ALERTS, s.name), len(s.fired)) for s in alerting
        ]
        if alerting:
            # splunkd lists the group of all fired alerts, named "-", before the per-search groups.
            groups.insert(0, self._alert_group("-", _path("-", "-", _ALERTS, "-"), sum(len(s.fired) for s in alerting)))
        return self._render(call, _ALERTS, groups, paged=True)

    def _list_fired_alerts(self, call: _Call) -> _Answer:
        wanted = [s for s in self._visible(call.namespace) if call.name in ("-", s.name)]
        entries = [
            _Entry(
                alert["sid"],
                _path(s.namespace_owner, s.app, _ALERTS, alert["sid"]),
                s.owner,
                {**alert, "eai:acl": self._acl(s)},
                self._now(),
                ("list", "remove"),
            )
            for s in wanted
            for alert in s.fired
        ]
        return self._render(call, _ALERTS, entries, paged=True)

    # ----------------------------------------------------------------------------------- login and HEC

    def _login(self, call: _Call) -> _Answer:
        username, password = call.form.get("username"), call.form.get("password")
        if self.password is None or (username, password) != (self.username, self.password):
            raise _error(401, "Login failed", json_mode=call.json, kind="WARN", code="incorrect_username_or_password")
        key = secrets.token_urlsafe(24)
        self._sessions[key] = self.username
        headers = {}
        if _is_true(call.form.get("cookie", "0")):
            headers["Set-Cookie"] = f"splunkd_{self.port}={key}; Path=/; HttpOnly; Max-Age=3600"
        if call.json:
            return _Answer(
                200, json.dumps({"sessionKey": key, "message": "", "code": ""}).encode(), "application/json", headers
            )
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <sessionKey>{key}</sessionKey>\n</response>\n'
        return _Answer(200, body.encode(), headers=headers)

    def _hec_raw(self, call: _Call) -> _Answer:
        channel = _last(call.query, "channel") or call.headers.get("X-Splunk-Request-Channel")
        if not channel:
            raise _hec_error(400, "Data channel is missing", 10)
        try:
            uuid.UUID(channel)
        except ValueError:
            raise _hec_error(400, "Invalid data channel", 11) from None
        body = call.body
        if call.headers.get("Content-Encoding") == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                raise _hec_error(400, "Invalid data format", 6) from None
        lines = [line for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
        if not lines:
            raise _hec_error(400, "No data", 5)
        index = _last(call.query, "index") or self.hec_default_index
        sourcetype = _last(call.query, "sourcetype") or "httpevent"
        with self._lock:
            self.hec_events.setdefault((index, sourcetype), []).extend(lines)
            self.hec_log.extend((index, sourcetype, line) for line in lines)
            arrived = self.clock()
            self.hec_arrivals.extend((arrived, index, sourcetype) for _ in lines)
        self.index_lines(index, sourcetype, lines, arrived)
        return _Answer(200, json.dumps({"text": "Success", "code": 0}).encode(), "application/json")

    # ------------------------------------------------------------------- apps, actions, inputs

    def _provisioning_routes(self, r: Callable[..., _Route]) -> list[_Route]:
        ns = "/servicesNS/{owner}/{app}"
        return [
            r("GET", f"{ns}/apps/local", self._list_apps),
            r("POST", f"{ns}/apps/local", self._create_app),
            r("GET", f"{ns}/apps/local/{{name}}", self._get_app),
            r("GET", f"{ns}/authentication/current-context", self._current_context),
            r("GET", f"{ns}/alerts/alert_actions", self._list_alert_actions),
            r("GET", f"{ns}/data/inputs/http", self._list_http_inputs),
            *(
                route
                for jobs in (f"{ns}/search/jobs", f"{ns}/search/v2/jobs")
                for route in (
                    r("POST", jobs, self._create_job),
                    r("GET", f"{jobs}/{{name}}", self._get_job),
                    r("DELETE", f"{jobs}/{{name}}", self._delete_job),
                    r("GET", f"{jobs}/{{name}}/results", self._job_results),
                    r("POST", f"{jobs}/{{name}}/results", self._job_results),
                    r("POST", f"{jobs}/{{name}}/control", self._control_job),
                )
            ),
            r("GET", f"{ns}/server/info", self._server_info),
        ]

    def _check_app(self, call: _Call) -> None:
        """splunkd refuses a namespace whose app is not installed. The 404 and its text are the
        emulator's most faithful reading: the status and message shape are splunkd's, the exact wording
        ("Application does not exist: <app>") is what users report and not confirmed by a source."""
        app = call.groups.get("app")
        if app and app != "-" and app not in self.apps:
            raise _error(404, f"Application does not exist: {app}", json_mode=call.json)

    def _app_entry(self, call: _Call, name: str) -> _Entry:
        path = _path(call.namespace.owner, call.namespace.app, "apps/local", name)
        acl = {"app": "system", "owner": "nobody", "sharing": "app", "perms": {"read": ["*"], "write": ["admin"]}}
        return _Entry(name, path, "nobody", {**self.apps[name], "eai:acl": acl}, self._now())

    def _list_apps(self, call: _Call) -> _Answer:
        entries = [self._app_entry(call, name) for name in sorted(self.apps)]
        return self._render(call, "apps/local", entries, paged=True)

    def _get_app(self, call: _Call) -> _Answer:
        if call.name not in self.apps:
            raise _error(404, f"Could not find object id={call.name}", json_mode=call.json)
        return self._render(call, "apps/local", [self._app_entry(call, call.name)])

    def _create_app(self, call: _Call) -> _Answer:
        name = call.form.get("name", "")
        if not name.strip():
            raise _error(400, 'Argument "name" is required.', json_mode=call.json)
        if name in self.apps:
            raise _error(409, f"An object with name={name} already exists", json_mode=call.json)
        content = _app_content(name)
        for key in ("label", "description", "author", "version", "visible"):
            if key in call.form:
                content[key] = call.form[key]
        self.apps[name] = content
        return self._render(call, "apps/local", [self._app_entry(call, name)], status=201)

    def _current_context(self, call: _Call) -> _Answer:
        path = _path(call.namespace.owner, call.namespace.app, "authentication/current-context", "context")
        content = {"username": call.user, "realname": "", "roles": ["admin"], "defaultApp": "search"}
        return self._render(
            call, "authentication/current-context", [_Entry("context", path, call.user, content, self._now())]
        )

    def _list_alert_actions(self, call: _Call) -> _Answer:
        entries = [
            _Entry(
                name,
                _path("nobody", content.get("eai:appName", "system"), "alerts/alert_actions", name),
                "nobody",
                dict(content),
                self._now(),
            )
            for name, content in sorted(self.alert_actions.items())
        ]
        return self._render(call, "alerts/alert_actions", entries, paged=True)

    def _list_http_inputs(self, call: _Call) -> _Answer:
        entries = []
        if self.hec_token is not None:
            name = "http://extalerts-logpush"
            content: dict[str, Any] = {
                "token": self.hec_token,
                "index": self.hec_default_index,
                "indexes": [],
                "sourcetype": "",
                "disabled": "0",
                "useACK": "0",
            }
            path = _path("nobody", "splunk_httpinput", "data/inputs/http", name)
            entries.append(_Entry(name, path, "nobody", content, self._now()))
        return self._render(call, "data/inputs/http", entries, paged=True)

    # ----------------------------------------------------------------------------------- search jobs

    def _create_job(self, call: _Call) -> _Answer:
        """``POST search/jobs`` (and ``search/v2/jobs``, which splunk-sdk uses on 9.x): run ``search`` over
        the events with earliest <= _time < latest (REST API Reference, search/jobs: ``earliest_time``
        "Specify a time string. Sets the earliest (inclusive), respectively, time bounds for the search",
        ``latest_time`` likewise "the latest (exclusive)"), and, when given, indexed within
        [``index_earliest``, ``index_latest``). ``exec_mode``: "normal" answers the sid at once and the job
        runs asynchronously, "blocking" answers the sid "when the job is complete", "oneshot" answers the
        results themselves. The emulator runs the search before it answers in every mode, so a normal job
        is already DONE when first polled. A search it cannot parse or run is refused with a 400, before
        any job exists, as splunkd refuses a search whose parsing fails."""
        query = call.form.get("search", "")
        mode = call.form.get("exec_mode", "normal")
        if mode not in ("normal", "blocking", "oneshot"):
            raise _error(400, f'Bad value "{mode}" for argument "exec_mode".', json_mode=call.json)
        if not query.strip():
            raise _error(400, 'Argument "search" is required.', json_mode=call.json)
        job = self._run_job(call, query)
        if mode == "oneshot":
            return self._results_answer(call, job)
        self.jobs[job.sid] = job
        if call.json:
            return _Answer(201, json.dumps({"sid": job.sid}).encode(), "application/json")
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <sid>{_text(job.sid)}</sid>\n</response>\n'
        return _Answer(201, body.encode())

    def _run_job(self, call: _Call, query: str) -> _Job:
        text = query.strip()
        # A job's search is the full language: splunkd reads a first word that is not a command as the
        # name of a command ("search" must be written out; a generating command starts with "|").
        first = re.match(r"[A-Za-z_]\w*", text)
        if not text.startswith("|") and (first is None or first.group(0).lower() != "search"):
            word = text.split()[0].split("=")[0]
            raise _error(400, f"Unknown search command '{word}'.", json_mode=call.json)
        try:
            # search/jobs ``now``: "Specify a time string to set the absolute time used for any relative
            # time specifier in the search. Defaults to the current system time."
            now = relative_time(self.clock(), call.form["now"]) if call.form.get("now") else self.clock()
            bounds = {
                key: relative_time(now, call.form[key]) if call.form.get(key, "").strip() else None
                for key in ("earliest_time", "latest_time", "index_earliest", "index_latest")
            }
            pipeline = compile_search(text[len("search") :] if not text.startswith("|") else text)
        except SplError as exc:
            raise _error(400, f"Error in 'search' command: {exc}", json_mode=call.json) from None
        sid = f"{now:.3f}_{next(self._job_numbers)}"
        latest = bounds["latest_time"] if bounds["latest_time"] is not None else now
        job = _Job(sid, text, call.user, call.namespace.app, bounds["earliest_time"], latest, now)
        context = SearchContext(
            self.index,
            job.earliest,
            job.latest,
            now,
            sid,
            index_earliest=bounds["index_earliest"],
            index_latest=bounds["index_latest"],
        )
        self.index_pending()
        try:
            with self.index_lock:
                rows = pipeline.run(context)
        except SplError as exc:
            job.error = str(exc)
            return job
        job.results = [result_text(row) for row in rows]
        return job

    def _job(self, call: _Call) -> _Job:
        job = self.jobs.get(call.name)
        if job is None:
            # splunkd's answer for a sid it does not know (expired, deleted or never made).
            raise _error(404, f"Unknown sid: {call.name}", json_mode=call.json)
        return job

    def _job_entry(self, job: _Job) -> _Entry:
        details: dict[str, Any] = {
            "sid": job.sid,
            "isFinalized": "0",
            "eventSearch": job.search,
            "search": job.search,
            "earliestTime": _iso(job.earliest),
            "latestTime": _iso(job.latest),
            "searchEarliestTime": "" if job.earliest is None else f"{job.earliest:.3f}",
            "searchLatestTime": f"{job.latest:.3f}",
            # splunk-sdk addresses a job's results and controls in the namespace its ACL names.
            "eai:acl": {"app": job.app, "owner": job.owner, "sharing": "global", "perms": {"read": [job.owner]}},
        }
        links = ("list", "remove", "results", "control")
        return _done_job_entry(job.sid, job.owner, job.dispatched, len(job.results), job.error, details, links)

    def _get_job(self, call: _Call) -> _Answer:
        """``GET search/jobs/{sid}``: the job's properties, as one ``<entry>`` at the document's root
        (splunk-sdk's Job reads it there)."""
        entry = self._job_entry(self._job(call))
        if call.json:
            return self._render(call, "search/jobs", [entry])
        body = self._xml_entry(entry).replace("<entry>", f"<entry {_ATOM_NAMESPACES}>", 1)
        return _Answer(200, ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode())

    def _job_results(self, call: _Call) -> _Answer:
        """``GET search/jobs/{sid}/results`` (``POST`` on ``search/v2/jobs``), ``count``/``offset`` paged."""
        job = self._job(call)
        if job.error:
            raise _error(400, f"Search job {job.sid} failed: {job.error}", json_mode=call.json)
        return self._results_answer(call, job)

    def _results_answer(self, call: _Call, job: _Job) -> _Answer:
        """Results in ``output_mode=json`` (the one form the emulator writes). REST API Reference,
        search/jobs/{search_id}/results: ``count`` "The maximum number of results to return. If value is
        set to 0, then all available results are returned. Default value is 100."; ``offset`` "The first
        result (inclusive) from which to begin returning data"."""
        if not call.json:
            raise _error(400, "the emulator answers search results only with output_mode=json")
        if job.error:
            raise _error(400, f"Error in 'search' command: {job.error}", json_mode=True)
        values = {**call.query, **{k: [v] for k, v in call.form.items()}}
        try:
            count = int(_last(values, "count") or 100)
            offset = int(_last(values, "offset") or 0)
        except ValueError:
            raise _error(400, "count and offset must be integers", json_mode=True) from None
        rows = job.results[offset:] if count <= 0 else job.results[offset : offset + count]
        names = list(dict.fromkeys(name for row in job.results for name in row))
        document = {
            "preview": False,
            "init_offset": offset,
            "messages": [],
            "fields": [{"name": name} for name in names],
            "results": rows,
        }
        return _Answer(200, json.dumps(document).encode(), "application/json")

    def _control_job(self, call: _Call) -> _Answer:
        """``POST search/jobs/{sid}/control``: ``action=cancel`` "Stops the current search and deletes the
        result cache" (the others have nothing to do on a job that is already done)."""
        job = self._job(call)
        action = call.form.get("action", "")
        if action not in ("cancel", "finalize", "pause", "unpause", "touch", "setttl", "setpriority"):
            raise _error(400, f'Bad value "{action}" for argument "action".', json_mode=call.json)
        if action == "cancel":
            del self.jobs[job.sid]
        return _Answer(200, b'<?xml version="1.0" encoding="UTF-8"?>\n<response><messages/></response>\n')

    def _delete_job(self, call: _Call) -> _Answer:
        """``DELETE search/jobs/{sid}``: "Delete the {search_id} job"."""
        job = self._job(call)
        del self.jobs[job.sid]
        return _Answer(200, b'<?xml version="1.0" encoding="UTF-8"?>\n<response><messages/></response>\n')

    def _server_info(self, call: _Call) -> _Answer:
        """``GET server/info``: splunk-sdk reads ``version`` to choose the v2 search endpoints (9.0.2 on)."""
        content = {"version": VERSION, "build": "emulator", "serverName": "emulator", "product_type": "enterprise"}
        path = "/services/server/info/server-info"
        return self._render(
            call, "server/info", [_Entry("server-info", path, "system", content, self._now(), ("list",))]
        )


def _done_job_entry(
    sid: str,
    author: str,
    dispatched: float,
    result_count: int,
    error: str | None,
    details: dict[str, Any],
    links: tuple[str, ...],
) -> _Entry:
    """The entry of a search job the emulator has run to its end (it runs a job when dispatched):
    one run by hand, or a scheduled run in a saved search's history. Its state says whether it
    failed and why; ``details`` adds what that kind of job knows."""
    content: dict[str, Any] = {
        # REST API Reference, search/jobs/{search_id}: dispatchState is one of QUEUED, PARSING, RUNNING,
        # FINALIZING, DONE, PAUSE, INTERNAL_CANCEL, USER_CANCEL, BAD_INPUT_CANCEL, QUIT, FAILED.
        "dispatchState": "FAILED" if error else "DONE",
        "isDone": "1",
        "isFailed": "1" if error else "0",
        "resultCount": str(result_count),
        "messages": {"fatal": [error]} if error else {},
        **details,
    }
    path = f"/services/search/jobs/{quote(sid, safe='')}"
    published = datetime.fromtimestamp(dispatched, UTC).isoformat(timespec="seconds")
    return _Entry(sid, path, author, content, published, links)


@dataclass
class _Job:
    """A search job: what it ran, over which time range, and its results as text."""

    sid: str
    search: str
    owner: str
    app: str
    earliest: float | None
    latest: float
    dispatched: float
    results: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


def _iso(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


#: Apps every splunkd has (a fresh install): the namespaces extalerts' calls may name without installing anything.
BUILTIN_APPS = ("launcher", "search", "splunk_httpinput", "system")
#: Alert actions a fresh Splunk Enterprise 9.2 lists (Settings > Alert actions), by name: (label, app, is_custom).
BUILTIN_ALERT_ACTIONS: dict[str, tuple[str, str, str]] = {
    "email": ("Send email", "system", "0"),
    "logevent": ("Log Event", "alert_logevent", "1"),
    "lookup": ("Output results to lookup", "system", "0"),
    "populate_lookup": ("Populate lookup", "system", "0"),
    "rss": ("RSS", "system", "0"),
    "script": ("Run a script", "system", "0"),
    "summary_index": ("Summary indexing", "system", "0"),
    "webhook": ("Webhook", "alert_webhook", "1"),
}
#: Actions installed by an app, by name: (label, app), as their apps' alert_actions.conf name them.
APP_ALERT_ACTIONS: dict[str, tuple[str, str]] = {
    "pagerduty": ("PagerDuty", "pagerduty_incidents"),
    "slack": ("Slack", "slack_alerts"),
}


def _app_content(name: str) -> dict[str, str]:
    return {"label": name, "version": "1.0.0", "visible": "1", "disabled": "0", "configured": "1"}


def _alert_action_content(name: str) -> dict[str, str]:
    if name in BUILTIN_ALERT_ACTIONS:
        label, app, custom = BUILTIN_ALERT_ACTIONS[name]
    else:
        label, app = APP_ALERT_ACTIONS.get(name, (name, name))
        custom = "1"
    return {"label": label, "is_custom": custom, "disabled": "0", "payload_format": "json", "eai:appName": app}
