"""Synthetic Workers Trace Events: NDJSON exactly as Logpush writes ``workers_trace_events``.

A seeded, deterministic traffic model of the Worker behind the bundled ``monitors/``: the
``conversation-api`` script answering requests and running its ``ConversationStateDO`` Durable
Object (one structured log line per operation, see the README's "Structured log line"), its cleanup
alarms, and a small ``auth-worker`` so that rules grouped by ``ScriptName`` see more than one group.
Named scenarios change the traffic during a window so that one rule of ``monitors/`` clearly crosses
its critical threshold; the baseline alone crosses no threshold, warnings included.

Speed matters (tests, the demo and benchmarks of millions of events): each kind of record is one
JSON text template, rendered once, with ``%`` placeholders filled per event; random values come
from tables drawn once per run and indexed with ``getrandbits``.
"""

from __future__ import annotations

import difflib
import gzip
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from extalerts.spec.models import parse_duration

#: 2026-01-01T00:00:00Z in epoch milliseconds.
DEFAULT_START_MS = 1_767_225_600_000

SCENARIOS: dict[str, str] = {
    "exception-storm": "4% of conversation-api requests throw (Outcome exception, status 500)",
    "invalid-url-flood": "40 extra requests a minute rejected 400 with ERROR_CODE_INVALID_URL",
    "error-rate": "15% of conversation-api requests answer 502 or 503",
    "client-errors": "half of conversation-api requests answer 401 or 404",
    "do-errors": "10% of ConversationStateDO operations fail after 3 attempts",
    "do-latency-spike": "ConversationStateDO operations slow down to a p99 of seconds",
    "storage-growth": "one conversation's Durable Object grows from 300 MB to 1 GB",
    "cleanup-failure": "every cleanup alarm fails: a third throw, the rest log ok=false",
    "tool-mapping-failures": "6 tool-name mappings a minute fail after 3 attempts",
    "traffic-spike": "4x the conversation-api requests",
    "conversation-surge": "2,000 new conversations a minute reach ConversationStateDO",
    "script-silent": "conversation-api sends nothing at all; auth-worker goes on",
}

# Scenario sizes, against the thresholds of the bundled monitors/ at the default 600 requests a
# minute. Counts are absolute, like the thresholds they must cross; shares follow the traffic.
#: worker-exception: count > 0 in 1m; also a 5xx share of ~3.3%, under http-5xx-rate's critical 5%.
EXCEPTION_SHARE = 0.04
#: invalid-url-flood: count > 100 in 5m; 200 a 5m window (2x), and a 4xx share still under 10%.
INVALID_URLS_PER_MINUTE = 40
#: http-5xx-rate: > 5%; 15% of requests is ~13% of all fetch events (Durable Object fetches included).
SERVER_ERROR_SHARE = 0.15
#: http-4xx-rate: > 25%; half the requests is ~46% of all fetch events.
CLIENT_ERROR_SHARE = 0.5
#: do-operation-errors: count > 10 in 5m per operation; ~25 failed stores a minute.
DO_FAILURE_SHARE = 0.1
#: tool-mapping-failures: count > 5 in 5m; one minute alone crosses it, a 5m window 6x.
TOOL_FAILURES_PER_MINUTE = 6
#: request-spike: change > 200% against an hour earlier; 4x is +300%.
TRAFFIC_SPIKE_FACTOR = 4
#: conversation-surge: cardinality > 5000 in 5m; ~11,000 distinct conversations (2.2x).
SURGE_CONVERSATIONS_PER_MINUTE = 2000
#: do-storage-growth: max > 500 MB in 30m; the runaway object climbs to 2x the threshold.
RUNAWAY_START_BYTES = 300_000_000
RUNAWAY_END_BYTES = 1_000_000_000
RUNAWAY_STORES_PER_MINUTE = 5

_SCENARIO_TEXT = re.compile(r"^([A-Za-z0-9_-]+)@([^+]+)\+(.+)$")


def _unknown_scenario(name: str) -> str:
    close = difflib.get_close_matches(name, list(SCENARIOS), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown scenario `{name}`{hint}; known scenarios: {', '.join(SCENARIOS)}"


@dataclass(frozen=True)
class Scenario:
    """A named incident over ``[start_minute, start_minute + duration_minutes)`` of the run."""

    name: str
    start_minute: int
    duration_minutes: int

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(_unknown_scenario(self.name))
        if self.start_minute < 0:
            raise ValueError(f"scenario `{self.name}`: the start must not be negative")
        if self.duration_minutes < 1:
            raise ValueError(f"scenario `{self.name}`: the duration must be at least 1 minute")

    @property
    def end_minute(self) -> int:
        return self.start_minute + self.duration_minutes

    def __str__(self) -> str:
        return f"{self.name}@{self.start_minute}m+{self.duration_minutes}m"


def _whole_minutes(text: str, what: str, scenario: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"scenario `{scenario}`: {what}: {exc}") from None
    if seconds % 60:
        raise ValueError(f"scenario `{scenario}`: {what} must be whole minutes, e.g. 30m or 1h")
    return seconds // 60


def parse_scenario(text: str) -> Scenario:
    """``"exception-storm@30m+10m"`` → the scenario from minute 30 for 10 minutes (``m``, ``h``, ``d``)."""
    match = _SCENARIO_TEXT.match(text.strip())
    if match is None:
        raise ValueError(
            f"`{text}` is not a scenario; write NAME@START+DURATION, e.g. exception-storm@30m+10m "
            f"(known scenarios: {', '.join(SCENARIOS)})"
        )
    name, start, duration = match.groups()
    if name not in SCENARIOS:
        raise ValueError(_unknown_scenario(name))
    return Scenario(name, _whole_minutes(start, "start", text), _whole_minutes(duration, "duration", text))


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """What to generate: ``minutes`` of traffic from ``start_ms``, plus incident scenarios."""

    start_ms: int = DEFAULT_START_MS
    minutes: int
    requests_per_minute: int = 600
    seed: int = 0
    scenarios: tuple[Scenario, ...] = ()

    def __post_init__(self) -> None:
        if self.minutes < 1:
            raise ValueError("minutes must be at least 1")
        if self.requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        if self.start_ms < 0:
            raise ValueError("start_ms must not be negative")
        for scenario in self.scenarios:
            if scenario.end_minute > self.minutes:
                raise ValueError(
                    f"scenario `{scenario}` runs to minute {scenario.end_minute}, "
                    f"but the run has {self.minutes} minutes"
                )


@dataclass(frozen=True)
class SynthStats:
    """What :func:`generate` wrote."""

    events: int
    #: Events per ``(ScriptName, EventType, Outcome)``.
    counts: Mapping[tuple[str, str, str], int]
    first_timestamp_ms: int | None
    last_timestamp_ms: int | None
    #: Each scenario with its window in ``EventTimestampMs``: ``[start, end)``.
    windows: tuple[tuple[Scenario, int, int], ...]


# ------------------------------------------------------------------------------------------ templates


class _Raw(str):
    """Template text placed into a record verbatim: a ``%`` placeholder or a nested template."""


_D = _Raw("%d")
_S = _Raw('"%s"')


def _render(value: object) -> str:
    """Compact JSON in the given key order; ``_Raw`` parts verbatim, ``%`` escaped elsewhere."""
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_render(k)}:{_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return json.dumps(value).replace("%", "%%")


def _json_text(line: dict[str, object]) -> _Raw:
    """A structured log line as Logpush carries it: JSON text inside a ``Message`` string."""
    return _Raw(json.dumps(_render(line)))


@dataclass(frozen=True)
class _Script:
    name: str
    tags: tuple[str, ...]
    version: dict[str, str]


_API = _Script(
    "conversation-api",
    ("prod", "conversations"),
    {"ID": "3f6c1e0a-9b2d-4c7e-8a15-2d9e6b4f7c31", "Message": "conversation-api 2025.12.3", "Tag": "v2025.12.3"},
)
_AUTH = _Script("auth-worker", ("prod",), {"ID": "a81d4f2c-5e3b-47a9-9c60-1b7e2f8d4a05", "Message": "", "Tag": ""})
_DO_CLASS = "ConversationStateDO"
_API_HOST = "https://api.example.com"


def _record(
    script: _Script,
    entrypoint: str,
    event_type: str,
    event: object,
    exceptions: list[object],
    logs: list[object],
    outcome: str,
) -> str:
    """One record's template; placeholders follow the keys' order, which is Logpush's (alphabetical):
    CPUTimeMs, Event's, EventTimestampMs, Exceptions', Logs', WallTimeMs."""
    return _render(
        {
            "CPUTimeMs": _D,
            "DispatchNamespace": "",
            "Entrypoint": entrypoint,
            "Event": event,
            "EventTimestampMs": _D,
            "EventType": event_type,
            "Exceptions": exceptions,
            "Logs": logs,
            "Outcome": outcome,
            "ScriptName": script.name,
            "ScriptTags": list(script.tags),
            "ScriptVersion": script.version,
            "WallTimeMs": _D,
        }
    )


def _fetch(url: object = _S, method: object = _S, status: object = _D) -> dict[str, object]:
    """A fetch ``Event``; the RayID is always a placeholder (16 hex digits)."""
    return {"RayID": _Raw('"%016x"'), "Request": {"URL": url, "Method": method}, "Response": {"Status": status}}


def _log(level: str, *message: object) -> dict[str, object]:
    return {"Level": level, "Message": list(message), "TimestampMs": _D}


def _exception(name: object = _S, message: object = _S) -> dict[str, object]:
    return {"Name": name, "Message": message, "TimestampMs": _D}


def _do_line(ok: bool, error_code: str | None) -> _Raw:
    """Placeholders: op, duration_ms, attempts, storage_bytes, conversation_id."""
    return _json_text(
        {
            "event": "do_op",
            "op": _S,
            "ok": ok,
            "duration_ms": _D,
            "attempts": _D,
            "storage_bytes": _D,
            "conversation_id": _S,
            "error_code": error_code,
        }
    )


def _tool_line(ok: bool) -> _Raw:
    """Placeholders: attempts, duration_ms, tool, conversation_id."""
    return _json_text(
        {
            "event": "tool_mapping",
            "ok": ok,
            "attempts": _D,
            "duration_ms": _D,
            "tool": _S,
            "conversation_id": _S,
            "error_code": None if ok else "ERROR_CODE_TOOL_MAPPING_FAILED",
        }
    )


def _cleanup_line(ok: bool) -> _Raw:
    """Placeholders: duration_ms, attempts, expired, storage_bytes, conversation_id."""
    return _json_text(
        {
            "event": "cleanup",
            "ok": ok,
            "duration_ms": _D,
            "attempts": _D,
            "expired": _D,
            "storage_bytes": _D,
            "conversation_id": _S,
            "error_code": None if ok else "ERROR_CODE_STORAGE_TIMEOUT",
        }
    )


_REQUEST_LINE = _Raw('"%s %s"')  # method, path

# The argument order of each template is written above it.
# cpu, ray, url, method, status, ts, method, path, log ts, wall
_API_OK = _record(_API, "", "fetch", _fetch(), [], [_log("log", _REQUEST_LINE)], "ok")
_API_WARN = _record(_API, "", "fetch", _fetch(), [], [_log("warn", _REQUEST_LINE)], "ok")
# cpu, ray, url, method, status, ts, error code, path, log ts, wall
_API_CODE = _record(_API, "", "fetch", _fetch(), [], [_log("warn", _S, _S)], "ok")
# cpu, ray, url, method, status, ts, method, path, reason, log ts, wall
_API_5XX = _record(_API, "", "fetch", _fetch(), [], [_log("error", _REQUEST_LINE, _S)], "ok")
# cpu, ray, url, method, status, ts, exception name, message, ts, method, path, log ts, wall
_API_EXCEPTION = _record(_API, "", "fetch", _fetch(), [_exception()], [_log("log", _REQUEST_LINE)], "exception")
# cpu, ray, url, method, status, ts, method, path, log ts, attempts, duration, tool, conversation, log ts, wall
# The request line goes out with console.info: the structured line is read from the first `log`
# entry only (README, "Structured log line").
_API_TOOL = {
    ok: _record(_API, "", "fetch", _fetch(), [], [_log("info", _REQUEST_LINE), _log("log", _tool_line(ok))], "ok")
    for ok in (True, False)
}
# cpu, ts, op, duration, attempts, storage, conversation, log ts, wall
_DO_RPC = {
    ok: _record(_API, _DO_CLASS, "worker_rpc", {}, [], [_log("log", _do_line(ok, error))], "ok")
    for ok, error in ((True, None), (False, "ERROR_CODE_STORAGE_UNAVAILABLE"))
}
# cpu, ray, op, ts, op, duration, attempts, storage, conversation, log ts, wall
_DO_FETCH = _record(
    _API,
    _DO_CLASS,
    "fetch",
    _fetch(_Raw('"https://conversation-state.internal/%s"'), "POST", 200),
    [],
    [_log("log", _do_line(True, None))],
    "ok",
)
# cpu, ts, duration, attempts, expired, storage, conversation, log ts, wall
_ALARM = {ok: _record(_API, _DO_CLASS, "alarm", {}, [], [_log("log", _cleanup_line(ok))], "ok") for ok in (True, False)}
# cpu, ts, exception ts, wall
_ALARM_EXCEPTION = _record(
    _API,
    _DO_CLASS,
    "alarm",
    {},
    [_exception("Error", "Durable Object storage operation exceeded timeout which caused object to be reset.")],
    [],
    "exception",
)
# cpu, ray, status, ts, wall
_AUTH_EVENT = _fetch("https://auth.example.com/v1/verify", "POST")
_AUTH_OK = _record(_AUTH, "", "fetch", _AUTH_EVENT, [], [], "ok")
# cpu, ray, status, ts, reason, log ts, wall
_AUTH_DENIED = _record(_AUTH, "", "fetch", _AUTH_EVENT, [], [_log("warn", _S)], "ok")

# Keys of SynthStats.counts, one per template family.
_N_API = (_API.name, "fetch", "ok")
_N_API_EXCEPTION = (_API.name, "fetch", "exception")
_N_DO_RPC = (_API.name, "worker_rpc", "ok")
_N_ALARM = (_API.name, "alarm", "ok")
_N_ALARM_EXCEPTION = (_API.name, "alarm", "exception")
_N_AUTH = (_AUTH.name, "fetch", "ok")

# ------------------------------------------------------------------------------------ traffic model


@dataclass(frozen=True)
class _Route:
    """A conversation-api endpoint; a route with ``op`` names a conversation and reaches its object."""

    method: str
    path: str
    status: int
    op: str | None
    #: Waits on the model provider: wall time of seconds rather than milliseconds.
    slow: bool


_STORE = _Route("POST", "/v1/conversations/%s/messages", 201, "store", True)
_ROUTES: tuple[tuple[_Route, int], ...] = (
    (_STORE, 42),
    (_Route("GET", "/v1/conversations/%s", 200, "retrieve", False), 40),
    (_Route("DELETE", "/v1/conversations/%s", 204, "delete", False), 3),
    (_Route("DELETE", "/v1/conversations/%s/messages", 204, "clear", False), 1),
    (_Route("GET", "/v1/conversations?limit=20", 200, None, False), 6),
    (_Route("GET", "/v1/health", 200, None, False), 8),
)
#: Baseline answers per 10,000 requests: ~3% 4xx, no 5xx. 0 stands for the route's own 2xx. There is
#: no baseline 5xx or exception because worker-exception pages on a single one in a minute.
_STATUSES = ((0, 9700), (404, 130), (400, 60), (401, 70), (429, 40))
_AUTH_STATUSES = ((200, 9500), (401, 400), (429, 100))
_AUTH_REASONS = {401: "token signature invalid", 429: "rate limited"}
#: Share of 400s that are invalid URLs: ~1.2 a minute, so even traffic-spike stays under the warning (50 in 5m).
_INVALID_URL_SHARE_OF_400 = 1 / 3
_TOOL_SHARE_OF_STORES = 0.3
_DO_FETCH_SHARE = 0.25  # the rest are RPC calls on the object's stub
_DO_RETRY_SHARE = 0.01  # succeeded on the second attempt
_TOOLS = ("search_web", "get_weather", "create_ticket", "lookup_order", "send_email", "summarize_document")
_EXCEPTIONS = (
    ("TypeError", "Cannot read properties of undefined (reading 'messages')"),
    ("Error", "Network connection lost."),
    ("RangeError", "Maximum call stack size exceeded"),
    ("SyntaxError", "Unexpected end of JSON input"),
)
_UPSTREAM_ERRORS = ((502, "upstream model provider answered 502"), (503, "upstream model provider overloaded (503)"))
_PROBE_PATHS = (
    "/v1/conversations/..%2f..%2fadmin",
    "/wp-login.php",
    "/.env",
    "/v1/conversations//messages",
    "/v1/conversations/%00/messages",
    "/v1/conversations/c-1042/messages?q=%27%20OR%201=1",
)
_CONVERSATIONS = 300
_SURGE_FIRST_ID = 100_000
_RUNAWAY_CONVERSATION = "c-999"
_JITTER_MS = 800  # events of one Logpush batch are only roughly in time order
_CHUNK_LINES = 16_384  # bounds memory whatever requests_per_minute is

_TABLE_BITS = 10
_STATUS_BITS = 12

# Kinds of slot in a minute.
_K_API, _K_EXCEPTION, _K_5XX, _K_4XX, _K_TOOL_FAILURE, _K_INVALID_URL = range(6)
_K_AUTH_SLOT, _K_ALARM_SLOT, _K_ALARM_FAILURE, _K_RUNAWAY, _K_SURGE = range(6, 11)

_Emitter = Callable[[int, list[str]], int]
_T = TypeVar("_T")


def _weighted(rng: random.Random, items: tuple[tuple[_T, int], ...], bits: int) -> list[_T]:
    """A lookup table of ``2**bits`` slots holding each item in proportion to its weight."""
    size = 1 << bits
    total = sum(weight for _, weight in items)
    table: list[_T] = []
    for value, weight in items:
        table.extend([value] * round(weight * size / total))
    table = (table + [items[0][0]] * size)[:size]
    rng.shuffle(table)
    return table


def _lognormal(rng: random.Random, median: float, sigma: float, floor: int = 0) -> list[int]:
    """``2**_TABLE_BITS`` draws of a right-skewed latency-like distribution."""
    mu = math.log(median)
    return [max(floor, round(rng.lognormvariate(mu, sigma))) for _ in range(1 << _TABLE_BITS)]


class _Generator:
    """Writes one run, minute by minute; all randomness comes from one seeded generator."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        rng = random.Random(config.seed)
        self._rng = rng
        self._random = rng.random
        self._bits = rng.getrandbits
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.first: int | None = None
        self.last: int | None = None
        self._routes = _weighted(rng, _ROUTES, _TABLE_BITS)
        self._statuses = _weighted(rng, _STATUSES, _STATUS_BITS)
        self._auth_statuses = _weighted(rng, _AUTH_STATUSES, _STATUS_BITS)
        self._cpu = _lognormal(rng, 2.2, 0.7)
        self._wall_fast = _lognormal(rng, 18, 0.8, floor=1)
        self._wall_slow = _lognormal(rng, 850, 0.6, floor=50)
        self._do_cpu = _lognormal(rng, 1, 0.5)
        self._do_normal = _lognormal(rng, 14, 0.6, floor=1)
        self._do_slow = _lognormal(rng, 520, 0.7, floor=50)
        self._auth_cpu = _lognormal(rng, 1.2, 0.5)
        self._auth_wall = _lognormal(rng, 6, 0.6, floor=1)
        self._message_bytes = [rng.randint(400, 6000) for _ in range(1 << _TABLE_BITS)]
        # Popularity is skewed: a few conversations are busy, most are quiet.
        weights = [1 / (rank + 10) for rank in range(_CONVERSATIONS)]
        self._popular: list[int] = rng.choices(range(_CONVERSATIONS), weights, k=1 << _TABLE_BITS)
        self._ids = [f"c-{1000 + i}" for i in range(_CONVERSATIONS)]
        self._sizes = [round(rng.lognormvariate(math.log(40_000), 1.0)) for _ in range(_CONVERSATIONS)]
        self._runaway_bytes = 0
        self._next_surge_id = _SURGE_FIRST_ID
        # Per-minute scenario state, set by _plan.
        self._end = 0
        self._do_failure_share = 0.0
        self._do_durations = self._do_normal
        self._emitters: tuple[_Emitter, ...] = (
            self._api,
            self._api_exception,
            self._api_5xx,
            self._api_4xx,
            self._api_tool_failure,
            self._invalid_url,
            self._auth,
            self._alarm,
            self._alarm_failure,
            self._runaway_store,
            self._surge,
        )

    # ---------------------------------------------------------------------------------- the run

    def chunks(self) -> Iterator[list[str]]:
        """Lines, a minute (or :data:`_CHUNK_LINES`) at a time."""
        for minute in range(self.config.minutes):
            yield from self._minute(minute)

    def _minute(self, minute: int) -> Iterator[list[str]]:
        kinds = self._plan(minute)
        self._rng.shuffle(kinds)
        base = self.config.start_ms + minute * 60_000
        end = self._end = base + 59_999
        step = 60_000 / len(kinds)
        rnd = self._random
        emitters = self._emitters
        lo, hi = end, base
        out: list[str] = []
        for i, kind in enumerate(kinds):
            ts = base + int((i + rnd()) * step + (rnd() - 0.5) * _JITTER_MS)
            ts = base if ts < base else end if ts > end else ts
            lo = min(lo, ts)
            hi = max(hi, emitters[kind](ts, out))
            if len(out) >= _CHUNK_LINES:
                yield out
                out = []
        self.first = lo if self.first is None else self.first
        self.last = hi
        if out:
            yield out

    def _plan(self, minute: int) -> list[int]:
        """The minute's slots (one per request, alarm or extra event) and the scenario state."""
        active = {s.name: s for s in self.config.scenarios if s.start_minute <= minute < s.end_minute}
        rpm = self.config.requests_per_minute
        kinds = [_K_AUTH_SLOT] * max(1, rpm // 10)
        self._do_failure_share = DO_FAILURE_SHARE if "do-errors" in active else 0.0
        self._do_durations = self._do_slow if "do-latency-spike" in active else self._do_normal
        if "script-silent" in active:
            return kinds
        requests = rpm * (TRAFFIC_SPIKE_FACTOR if "traffic-spike" in active else 1)
        special: list[int] = []
        if "exception-storm" in active:
            special += [_K_EXCEPTION] * math.ceil(requests * EXCEPTION_SHARE)
        if "error-rate" in active:
            special += [_K_5XX] * math.ceil(requests * SERVER_ERROR_SHARE)
        if "client-errors" in active:
            special += [_K_4XX] * math.ceil(requests * CLIENT_ERROR_SHARE)
        if "tool-mapping-failures" in active:
            special += [_K_TOOL_FAILURE] * TOOL_FAILURES_PER_MINUTE
        special = special[:requests]  # scenarios turn requests bad; they never add to the traffic
        kinds += special + [_K_API] * (requests - len(special))
        if "invalid-url-flood" in active:
            kinds += [_K_INVALID_URL] * INVALID_URLS_PER_MINUTE
        kinds += [_K_ALARM_FAILURE if "cleanup-failure" in active else _K_ALARM_SLOT] * max(1, rpm // 100)
        if "conversation-surge" in active:
            kinds += [_K_SURGE] * SURGE_CONVERSATIONS_PER_MINUTE
        growth = active.get("storage-growth")
        if growth is not None:
            progress = (minute - growth.start_minute + 1) / growth.duration_minutes
            self._runaway_bytes = round(RUNAWAY_START_BYTES + (RUNAWAY_END_BYTES - RUNAWAY_START_BYTES) * progress)
            kinds += [_K_RUNAWAY] * RUNAWAY_STORES_PER_MINUTE
        return kinds

    # ------------------------------------------------------------------------- conversation-api

    def _api(self, ts: int, out: list[str]) -> int:
        """A request drawn from the baseline mix of routes and answers."""
        bits = self._bits
        route = self._routes[bits(_TABLE_BITS)]
        status = self._statuses[bits(_STATUS_BITS)]
        if status:
            return self._rejected(ts, out, route, status)
        tool = route is _STORE and self._random() < _TOOL_SHARE_OF_STORES
        return self._served(ts, out, route, tool, tool_ok=True)

    def _api_tool_failure(self, ts: int, out: list[str]) -> int:
        return self._served(ts, out, _STORE, tool=True, tool_ok=False)

    def _served(self, ts: int, out: list[str], route: _Route, tool: bool, tool_ok: bool) -> int:
        """A 2xx answer; a conversation route first runs its Durable Object operation."""
        bits = self._bits
        ray = bits(64)
        last = ts
        waited = 0
        conversation = ""
        path = route.path
        if route.op is not None:
            index = self._popular[bits(_TABLE_BITS)]
            conversation = self._ids[index]
            path = path % conversation
            waited, last = self._conversation_op(ts, ray, route.op, index, out)
        cpu = self._cpu[bits(_TABLE_BITS)]
        wall = cpu + waited + (self._wall_slow if route.slow else self._wall_fast)[bits(_TABLE_BITS)]
        head = (cpu, ray, _API_HOST + path, route.method, route.status, ts, route.method, path, ts + 1)
        if tool:
            attempts = 1 if tool_ok else 3
            line = (attempts, attempts * (1 + bits(3)), _TOOLS[bits(8) % len(_TOOLS)], conversation, ts + 2, wall)
            out.append(_API_TOOL[tool_ok] % (head + line))
        else:
            out.append(_API_OK % (*head, wall))
        self.counts[_N_API] += 1
        return last

    def _rejected(self, ts: int, out: list[str], route: _Route, status: int) -> int:
        """A 4xx answer, before any Durable Object is reached."""
        bits = self._bits
        path = route.path % self._ids[self._popular[bits(_TABLE_BITS)]] if route.op else route.path
        cpu = self._cpu[bits(_TABLE_BITS)]
        wall = cpu + self._wall_fast[bits(_TABLE_BITS)]
        head = (cpu, bits(64), _API_HOST + path, route.method, status, ts)
        if status == 400:
            invalid_url = self._random() < _INVALID_URL_SHARE_OF_400
            code = "ERROR_CODE_INVALID_URL" if invalid_url else "ERROR_CODE_INVALID_REQUEST"
            out.append(_API_CODE % (*head, code, path, ts + 1, wall))
        elif status == 401:
            out.append(_API_CODE % (*head, "ERROR_CODE_TOKEN_EXPIRED", path, ts + 1, wall))
        else:
            out.append(_API_WARN % (*head, route.method, path, ts + 1, wall))
        self.counts[_N_API] += 1
        return ts

    def _api_4xx(self, ts: int, out: list[str]) -> int:
        """client-errors: a client release sends expired tokens and stale conversation ids."""
        route = self._routes[self._bits(_TABLE_BITS)]
        return self._rejected(ts, out, route, 401 if self._random() < 0.7 else 404)

    def _api_5xx(self, ts: int, out: list[str]) -> int:
        """error-rate: the model provider behind conversation-api fails; the Worker answers 5xx."""
        bits = self._bits
        route = self._routes[bits(_TABLE_BITS)]
        path = route.path % self._ids[self._popular[bits(_TABLE_BITS)]] if route.op else route.path
        status, reason = _UPSTREAM_ERRORS[bits(1)]
        cpu = self._cpu[bits(_TABLE_BITS)]
        wall = cpu + self._wall_slow[bits(_TABLE_BITS)]
        out.append(
            _API_5XX
            % (cpu, bits(64), _API_HOST + path, route.method, status, ts, route.method, path, reason, ts + 1, wall)
        )
        self.counts[_N_API] += 1
        return ts

    def _api_exception(self, ts: int, out: list[str]) -> int:
        """exception-storm: an uncaught exception; the client gets a 500."""
        bits = self._bits
        route = self._routes[bits(_TABLE_BITS)]
        path = route.path % self._ids[self._popular[bits(_TABLE_BITS)]] if route.op else route.path
        name, message = _EXCEPTIONS[bits(2)]
        cpu = self._cpu[bits(_TABLE_BITS)]
        wall = cpu + self._wall_fast[bits(_TABLE_BITS)]
        head = (cpu, bits(64), _API_HOST + path, route.method, 500, ts)
        out.append(_API_EXCEPTION % (*head, name, message, ts + cpu, route.method, path, ts + 1, wall))
        self.counts[_N_API_EXCEPTION] += 1
        return ts

    def _invalid_url(self, ts: int, out: list[str]) -> int:
        """invalid-url-flood: a probe, rejected before routing."""
        bits = self._bits
        path = _PROBE_PATHS[bits(8) % len(_PROBE_PATHS)]
        cpu = self._do_cpu[bits(_TABLE_BITS)]
        wall = cpu + self._wall_fast[bits(_TABLE_BITS)]
        head = (cpu, bits(64), _API_HOST + path, "GET", 400, ts)
        out.append(_API_CODE % (*head, "ERROR_CODE_INVALID_URL", path, ts + 1, wall))
        self.counts[_N_API] += 1
        return ts

    # ---------------------------------------------------------------------- ConversationStateDO

    def _conversation_op(self, ts: int, ray: int, op: str, index: int, out: list[str]) -> tuple[int, int]:
        """The object's operation behind a request, which keeps its storage size up to date."""
        before = self._sizes[index]
        if op == "store":
            after = before + self._message_bytes[self._bits(_TABLE_BITS)]
        elif op == "retrieve":
            after = before
        else:
            after = 0
        ray_for_fetch = ray if self._random() < _DO_FETCH_SHARE else None
        ok, waited, last = self._do_op(ts, op, self._ids[index], before, after, ray_for_fetch, out)
        if ok:
            self._sizes[index] = after
        return waited, last

    def _do_op(
        self, ts: int, op: str, conversation: str, before: int, after: int, ray: int | None, out: list[str]
    ) -> tuple[bool, int, int]:
        """One operation's invocation (a fetch when ``ray`` is given, else RPC): (ok, duration, timestamp)."""
        bits = self._bits
        rnd = self._random
        duration = self._do_durations[bits(_TABLE_BITS)]
        cpu = self._do_cpu[bits(_TABLE_BITS)]
        at = min(ts + 1 + bits(3), self._end)
        if self._do_failure_share and rnd() < self._do_failure_share:
            # Three attempts with 20 and 40 ms backoff; failures are RPC results, not HTTP answers,
            # so do-errors does not also move the 5xx rules.
            duration = 3 * duration + 60
            line = (op, duration, 3, before, conversation, at + duration, cpu + duration + 2)
            out.append(_DO_RPC[False] % (cpu, at, *line))
            self.counts[_N_DO_RPC] += 1
            return False, duration, at
        attempts = 1
        if rnd() < _DO_RETRY_SHARE:
            attempts = 2
            duration = 2 * duration + 20
        line = (op, duration, attempts, after, conversation, at + duration, cpu + duration + 2)
        if ray is None:
            out.append(_DO_RPC[True] % (cpu, at, *line))
            self.counts[_N_DO_RPC] += 1
        else:
            out.append(_DO_FETCH % (cpu, ray, op, at, *line))
            self.counts[_N_API] += 1
        return True, duration, at

    def _runaway_store(self, ts: int, out: list[str]) -> int:
        """storage-growth: a conversation, outside the baseline's, whose object grows (ramped in _plan).

        Baseline traffic never touches it, so the growth ends with the window."""
        before = self._runaway_bytes
        after = before + self._message_bytes[self._bits(_TABLE_BITS)]
        ok, _, last = self._do_op(ts, "store", _RUNAWAY_CONVERSATION, before, after, None, out)
        if ok:
            self._runaway_bytes = after
        return last

    def _surge(self, ts: int, out: list[str]) -> int:
        """conversation-surge: a conversation never seen before, stored once (RPC, so no fetch rule moves)."""
        conversation = f"c-{self._next_surge_id}"
        self._next_surge_id += 1
        size = self._message_bytes[self._bits(_TABLE_BITS)]
        return self._do_op(ts, "store", conversation, 0, size, None, out)[2]

    def _alarm(self, ts: int, out: list[str]) -> int:
        """The cleanup alarm of one conversation's object: expires old messages."""
        bits = self._bits
        index = self._popular[bits(_TABLE_BITS)]
        duration = 2 * self._do_durations[bits(_TABLE_BITS)]
        cpu = self._do_cpu[bits(_TABLE_BITS)]
        size = self._sizes[index] = self._sizes[index] * 7 // 8
        line = (duration, 1, bits(4), size, self._ids[index], ts + duration, cpu + duration + 1)
        out.append(_ALARM[True] % (cpu, ts, *line))
        self.counts[_N_ALARM] += 1
        return ts

    def _alarm_failure(self, ts: int, out: list[str]) -> int:
        """cleanup-failure: the alarm throws (a third) or gives up after three attempts."""
        bits = self._bits
        cpu = self._do_cpu[bits(_TABLE_BITS)]
        duration = 3 * self._do_durations[bits(_TABLE_BITS)] + 60
        if self._random() < 1 / 3:
            out.append(_ALARM_EXCEPTION % (cpu, ts, ts + duration, cpu + duration))
            self.counts[_N_ALARM_EXCEPTION] += 1
            return ts
        index = self._popular[bits(_TABLE_BITS)]
        line = (duration, 3, 0, self._sizes[index], self._ids[index], ts + duration, cpu + duration + 1)
        out.append(_ALARM[False] % (cpu, ts, *line))
        self.counts[_N_ALARM] += 1
        return ts

    # ------------------------------------------------------------------------------ auth-worker

    def _auth(self, ts: int, out: list[str]) -> int:
        bits = self._bits
        status = self._auth_statuses[bits(_STATUS_BITS)]
        cpu = self._auth_cpu[bits(_TABLE_BITS)]
        wall = cpu + self._auth_wall[bits(_TABLE_BITS)]
        if status == 200:
            out.append(_AUTH_OK % (cpu, bits(64), status, ts, wall))
        else:
            out.append(_AUTH_DENIED % (cpu, bits(64), status, ts, _AUTH_REASONS[status], ts + 1, wall))
        self.counts[_N_AUTH] += 1
        return ts


# --------------------------------------------------------------------------------------------- API


def events(config: SynthConfig) -> Iterator[str]:
    """The run's NDJSON lines, without newlines, in the order :func:`generate` writes them."""
    for chunk in _Generator(config).chunks():
        yield from chunk


def generate(config: SynthConfig, path: Path) -> SynthStats:
    """Write the run to ``path`` (gzip when it ends in ``.gz``; its folder is made), streaming; return
    what was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        sink: BinaryIO | gzip.GzipFile = stack.enter_context(path.open("wb", buffering=1 << 20))
        if path.suffix == ".gz":
            # mtime=0 and no file name in the header: the same config gives a byte-identical file.
            # Level 1 because compression would otherwise cost more than generating the events.
            sink = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=1, mtime=0))
        return write(config, sink)


def write(config: SynthConfig, sink: BinaryIO | gzip.GzipFile) -> SynthStats:
    """Write the run's NDJSON to an open binary stream (a file, or standard output); return what was written."""
    generator = _Generator(config)
    written = 0
    for chunk in generator.chunks():
        chunk.append("")  # a newline after the last line too
        sink.write("\n".join(chunk).encode())
        written += len(chunk) - 1
    start = config.start_ms
    windows = tuple((s, start + s.start_minute * 60_000, start + s.end_minute * 60_000) for s in config.scenarios)
    return SynthStats(
        events=written,
        counts=dict(sorted(generator.counts.items())),
        first_timestamp_ms=generator.first,
        last_timestamp_ms=generator.last,
        windows=windows,
    )
