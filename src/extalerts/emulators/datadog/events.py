"""The Logs Search API (``POST /api/v2/logs/events/search``, ``LogsApi.list_logs`` in datadog-api-client)
over the emulator's stored logs, as processed at intake.

Request and response follow the client's models (2.62.0): ``LogsListRequest`` has ``filter``
(``LogsQueryFilter``: ``query``, ``from``/``to`` — "supports date math and regular timestamps
(milliseconds)"; ``indexes`` "Defaults to ['*'] which means all indexes"), ``page``
(``LogsListRequestPage``: ``cursor`` — "List following results with a cursor provided in the previous
query"; ``limit`` — "Maximum number of logs in the response", at most 1000) and ``sort``
(``LogsSort``: ``timestamp`` or ``-timestamp``); ``options`` is deprecated and "do[es] not affect the query
results". The answer is a ``LogsListResponse``: ``data`` (``Log``: ``id``, ``type: "log"``, ``attributes``
with ``timestamp``, ``host``, ``service``, ``status``, ``message``, ``tags`` and the log's own
``attributes``) and ``meta`` (``status``, ``elapsed``, ``request_id``, and ``page.after`` — "The cursor
to use to get the next results, if any. To make the next request, use the same parameters with the
addition of the page[cursor]"). "Results are paginated" (``logs/guide/collect-multiple-logs-with-pagination``:
a list longer than the limit is read page by page until no cursor comes back).

The same search and facet semantics as monitors and the Aggregate API apply (:mod:`.search`,
:mod:`.facets`). Choices where the models are silent: without ``sort`` the newest come first (as the
Log Explorer lists them); without ``page.limit``, 10 (the client's own paginated default);
``links.next`` (a ``GET /api/v2/logs/events`` URL, a route the emulator does not serve) is left out.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from extalerts.emulators.datadog.aggregate import AggregateError, parse_time
from extalerts.emulators.datadog.facets import FacetRegistry
from extalerts.emulators.datadog.logs import LogStore, StoredLog
from extalerts.emulators.datadog.monitors import INDEX_NAME
from extalerts.emulators.datadog.search import SearchError, compile_search

#: ``LogsListRequestPage.limit``: "inclusive_maximum": 1000 in the client's validations.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
SORTS = ("timestamp", "-timestamp")


class ListError(ValueError):
    """The request cannot be answered; the message says which field."""


def list_logs(body: Any, store: LogStore, facets: FacetRegistry, now: float) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matching logs as ``Log`` objects, and the cursor of the next page (None: the last)."""
    if body is not None and not isinstance(body, Mapping):
        raise ListError("the body must be a JSON object")
    request: Mapping[str, Any] = body or {}
    now_ms = int(now * 1000)
    filter_doc = request.get("filter") or {}
    try:
        start = parse_time(filter_doc.get("from", "now-15m"), now_ms)
        end = parse_time(filter_doc.get("to", "now"), now_ms)
    except AggregateError as exc:
        raise ListError(str(exc)) from None
    search = str(filter_doc.get("query") or "*")
    try:
        matches = compile_search(search, facets)
    except SearchError as exc:
        raise ListError(f"filter.query: {exc}") from None
    sort = request.get("sort") or "-timestamp"
    if sort not in SORTS:
        raise ListError(f"sort {sort!r} is not one of {', '.join(SORTS)}")
    page = request.get("page") or {}
    limit = page.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_LIMIT:
        raise ListError(f"page.limit {limit!r} is not a whole number from 1 to {MAX_LIMIT}")
    indexes = filter_doc.get("indexes") or ["*"]
    logs: list[StoredLog] = []
    if "*" in indexes or INDEX_NAME in indexes:
        logs = store.matching(search, matches, store.between(start, end))
    newest_first = sort == "-timestamp"
    if newest_first:
        logs.reverse()
    if page.get("cursor"):
        after = _read_cursor(str(page["cursor"]))
        # The store orders by (timestamp, sequence): the cursor is the last key already returned.
        logs = [log for log in logs if ((_key(log) < after) if newest_first else (_key(log) > after))]
    shown = logs[:limit]
    cursor = _write_cursor(_key(shown[-1])) if len(logs) > limit else None
    return [_as_log(log) for log in shown], cursor


def _key(log: StoredLog) -> tuple[int, int]:
    return (log.timestamp_ms, log.sequence)


def _write_cursor(key: tuple[int, int]) -> str:
    """An opaque cursor, like Datadog's (base64 of a small JSON document)."""
    return base64.urlsafe_b64encode(json.dumps({"after": list(key)}).encode()).decode()


def _read_cursor(cursor: str) -> tuple[int, int]:
    try:
        timestamp, sequence = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
        return int(timestamp), int(sequence)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ListError("page.cursor is not a cursor this API returned (meta.page.after)") from None


def _as_log(log: StoredLog) -> dict[str, Any]:
    at = datetime.fromtimestamp(log.timestamp_ms / 1000, UTC)
    reserved = {k: log.reserved[k] for k in ("host", "service", "status", "message") if log.reserved.get(k)}
    return {
        "id": f"emulator-{log.sequence:012d}",
        "type": "log",
        "attributes": {
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{log.timestamp_ms % 1000:03d}Z",
            "tags": list(log.tags),
            "attributes": copy.deepcopy(log.attributes),
            **reserved,
        },
    }
