"""The Splunk side of ``extalerts verify``: what each rule's LIVE saved search saw, through search jobs.

For each rule the side reads the alert's saved search as Splunk stores it (its SPL, ``cron_schedule``,
``dispatch.earliest_time``/``latest_time``) and runs that SPL once per scheduled run, as the scheduler
would have: a one-shot search job (REST API Reference, search/jobs, ``exec_mode=oneshot``) with the
stored time modifiers resolved against ``now`` = the run's scheduled time, and ``index_latest`` = the
same time, so the job sees only what was indexed when the alert ran (late events are late here too).

The stored SPL ends in the alert's threshold, ``| where <condition on value>``; the side leaves that
last command out so it reads every group's value, not only the breaching ones (the comparison runs
both series through the rule's own state machine). Values are keyed by the run's minute, the minutes
the engine evaluates under ``--semantics splunk`` (:func:`extalerts.engine.schedule_minutes`), and
follow the engine's conventions for a group with no row: a group seen at an earlier run counts 0
(counts, distinct counts) or has no data (the other signals); a rule without groups always has one.
A grouped absence search answers seconds since each group was last seen; the side asks, per run, how
many events each of those groups sent in the rule's window, which is the value the engine compares.

Costs: per rule, one job per scheduled run in the window (two for a grouped absence) plus one for the
matched events; ``explain`` adds at most five per rule. Every call goes through the push's retry policy
and error mapping (:class:`extalerts.providers.splunk.SplunkApi`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extalerts.emulators.spl import split_pipeline
from extalerts.engine import MINUTE_MS, Semantics, schedule_minutes
from extalerts.errors import ApiError, ProviderError
from extalerts.filter import fields_of
from extalerts.providers.splunk import SplunkApi
from extalerts.render.splunk import SplunkRenderer, saved_search_name
from extalerts.render.templates import Templates
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import AbsenceSignal, CardinalitySignal, CountSignal
from extalerts.verify.compare import read_buckets
from extalerts.verify.model import EXACT, Agreement, Cause, Group, Progress, SideSeries, Window

#: How a push restores the stored search, for the fixes that need it.
PUSH = "extalerts push --provider splunk"
_SNAPPED_MINUTES = re.compile(r"^(?:-(\d+)m)?@m$")
_ROUNDED_VALUE = re.compile(r"eval\s+value\s*=\s*round\(.*?(?:,\s*(\d+)\s*)?\)$", re.I | re.S)


@dataclass(frozen=True)
class LiveSearch:
    """The settings of a saved search that decide what its runs see, as Splunk stores them."""

    name: str
    search: str
    earliest: str
    latest: str
    cron: str


class SplunkSide:
    """Read-only: search jobs and reads of saved searches in the spec's app, nothing written."""

    name = "splunk"
    semantics: Semantics = "splunk"

    def __init__(self, api: SplunkApi, spec: Spec, templates: Templates | None = None) -> None:
        api.app = spec.splunk_app
        self.api = api
        self.spec = spec
        self.renderer = SplunkRenderer(spec, templates or Templates())
        #: Events the expected side's base search matched per rule id, when the caller knows them:
        #: what ``explain`` compares the provider's count with (``fewer-events``).
        self.expected_events: dict[str, int] = {}
        self._matched: dict[str, int] = {}
        #: Each rule's stored search as ``series`` read it, for ``agreement``.
        self._live: dict[str, LiveSearch] = {}

    # ----------------------------------------------------------------------------------- reads

    def live_search(self, rule: ResolvedRule) -> LiveSearch:
        """The rule's alert as stored (``saved/searches/<name>`` in the spec's app)."""
        service = self.api.service()
        name = saved_search_name(rule.id)

        def read() -> dict[str, Any]:
            response = service.saved_searches.get(name, owner="nobody", app=self.api.app, output_mode="json")
            return dict(json.loads(response.body.read())["entry"][0]["content"])

        try:
            content = self.api.call(f"read saved search {name}", read)
        except ApiError as exc:
            if exc.status == 404:
                raise ProviderError(
                    f"saved search {name!r} is not in the Splunk app {self.spec.splunk_app}: push the spec first "
                    f"(`{PUSH}`)"
                ) from exc
            raise
        return LiveSearch(
            name,
            str(content.get("search") or ""),
            str(content.get("dispatch.earliest_time") or ""),
            str(content.get("dispatch.latest_time") or ""),
            str(content.get("cron_schedule") or ""),
        )

    def run(self, what: str, query: str, **times: str) -> list[dict[str, Any]]:
        """Rows of a one-shot search job: one request, no job left behind. A query not starting with a
        generating command gets the ``search`` command written out, as search/jobs requires."""
        text = query.strip()
        full = text if text.startswith("|") or text.lower().startswith("search ") else f"search {text}"
        service = self.api.service()

        def request() -> list[dict[str, Any]]:
            body = service.jobs.oneshot(full, output_mode="json", count=0, **times)
            return list(json.loads(body.read()).get("results") or [])

        return self.api.call(what, request)

    def count(self, what: str, query: str, window: Window) -> int:
        rows = self.run(what, f"{query} | stats count", **_absolute(window))
        return int(float(rows[0].get("count") or 0)) if rows else 0

    def matched(self, rule: ResolvedRule, live: LiveSearch, window: Window) -> int:
        """Events the stored search's base search matches in the minutes the window's evaluations
        read, the span the expected side counts its events over (:func:`read_buckets`)."""
        read = read_buckets(rule, window)
        offset_ms = rule.evaluation_delay * 1000 % MINUTE_MS
        span = Window(read.start * MINUTE_MS + offset_ms, read.stop * MINUTE_MS + offset_ms)
        return self.count(f"count matched events of {rule.id}", _base_search(live.search), span)

    # ----------------------------------------------------------------------------------- series

    def series(self, rule: ResolvedRule, window: Window, progress: Progress) -> SideSeries:
        live = self._live[rule.id] = self.live_search(rule)
        runs = run_minutes(rule, window)
        value_search = _without_threshold(live.search)
        grouped_absence = isinstance(rule.rule.signal, AbsenceSignal) and bool(rule.rule.group_by)
        total = len(runs) * (2 if grouped_absence else 1) + 1
        done = 0
        names = [self.spec.catalog[g].splunk_name for g in rule.rule.group_by]
        out = SideSeries(query=live.search)
        seen: set[Group] = set() if rule.rule.group_by else {()}
        fill = 0.0 if isinstance(rule.rule.signal, CountSignal | CardinalitySignal | AbsenceSignal) else None
        for at_ms in runs:
            times = {
                "earliest_time": live.earliest,
                "latest_time": live.latest or "now",
                "now": str(at_ms // 1000),
                # What the scheduled run had: events indexed by the time it ran.
                "index_latest": str(at_ms // 1000),
            }
            rows = self.run(f"search {rule.id} run", value_search, **times)
            done += 1
            progress(f"splunk {rule.id}", done, total)
            values = _values(rule, names, rows)
            if grouped_absence:
                values = self._absence_counts(rule, live, names, times, set(values))
                done += 1
                progress(f"splunk {rule.id}", done, total)
                # The stored search lists the groups it knows (seen within its lookback, or expected);
                # one silent for longer is forgotten, as the engine forgets it.
                seen = set()
            seen.update(values)
            for group in seen:
                value = values.get(group, fill)
                out.values.setdefault(group, {})[at_ms] = value
        out.matched_events = self.matched(rule, live, window)
        self._matched[rule.id] = out.matched_events
        progress(f"splunk {rule.id}", total, total)
        return out

    def _absence_counts(
        self, rule: ResolvedRule, live: LiveSearch, names: list[str], times: dict[str, str], groups: set[Group]
    ) -> dict[Group, float | None]:
        """Events each group the absence search knows sent in the rule's window, ending where the run's
        time range ends (0 for a group that sent none)."""
        delay = _snapped_minutes(live.latest)
        if delay is None:
            raise ProviderError(
                f"{live.name}: cannot read dispatch.latest_time {live.latest!r} as -<N>m@m, so the window of "
                f"rule {rule.id} is not known; push the spec again (`{PUSH}`)"
            )
        window_minutes = math.ceil(rule.rule.window / 60)
        by = " ".join(names)
        query = f"{_base_search(live.search)} | stats count AS value BY {by}"
        counted = {
            **times,
            "earliest_time": f"-{delay + window_minutes}m@m",
            "latest_time": live.latest,
        }
        rows = self.run(f"count events of {rule.id} per group", query, **counted)
        counts = _values(rule, names, rows)
        return {group: counts.get(group) or 0.0 for group in groups}

    def agreement(self, rule: ResolvedRule) -> Agreement:
        """Half a unit of the last decimal the stored search keeps: it ends ``eval value=round(…, N)``
        for ratios (4) and changes (2), so the value the alert compares is the engine's, rounded. A
        grouped absence search rounds seconds since the last event; the side counts events instead."""
        if isinstance(rule.rule.signal, AbsenceSignal) and rule.rule.group_by:
            return EXACT
        live = self._live.get(rule.id) or self.live_search(rule)
        decimals = _rounded_decimals(live.search)
        return EXACT if decimals is None else Agreement(0.5 * 10.0**-decimals)

    # ----------------------------------------------------------------------------------- explain

    def explain(self, rules: Sequence[ResolvedRule], window: Window) -> dict[str, list[Cause]]:
        return {rule.id: self.causes(rule, window) for rule in rules}

    def causes(self, rule: ResolvedRule, window: Window) -> list[Cause]:
        """The checks, cheapest first; each one a search job or a read of the saved search."""
        source = rule.source.splunk
        where = f'index={source.index} sourcetype="{source.sourcetype}"'
        live = self.live_search(rule)
        rendered = self.renderer.alerts(rule)[0].settings
        found: list[Cause] = []
        edited = _first_difference(live, rendered)
        if edited:
            found.append(
                Cause(
                    "query-edited",
                    f"{live.name} is not the rendered search: {edited}",
                    f"restore it with `{PUSH}`, or make the change in the spec",
                )
            )
        in_source = self.count(f"count events of {where}", where, window)
        if in_source == 0:
            found.append(self._elsewhere(rule, where, window))
            return found
        matched = self._matched.get(rule.id)
        if matched is None:
            matched = self.matched(rule, live, window)
        expected = self.expected_events.get(rule.id)
        # Matching nothing is a cause only where the archive holds matching events (or is not read).
        if matched == 0 and expected != 0:
            found.append(
                Cause(
                    "no-match",
                    f"the stored search's base search matched none of the {in_source} events of {where}",
                    "check the rule's filter against the events (`extalerts test`), and the stored search",
                )
            )
        found.extend(self._derived_absent(rule, where, window))
        if expected is not None and matched < expected:
            found.append(
                Cause(
                    "fewer-events",
                    f"Splunk holds {matched} events matching the base search, the archive {expected}",
                    "check HEC errors and the Logpush job's filter and sampling, and the index's retention "
                    "(frozenTimePeriodInSecs)",
                )
            )
        late = self._late_delivery(live, where, window)
        if late is not None:
            found.append(late)
        return found

    def _elsewhere(self, rule: ResolvedRule, where: str, window: Window) -> Cause:
        """No event where the rule reads: look for the rule's events in every index and sourcetype."""
        first = _base_search(self.renderer.alerts(rule)[0].settings["search"]).split("\n", 1)[0]
        terms = re.sub(r'\b(index|sourcetype)=("[^"]*"|\S+)', "", first).strip()
        rows = self.run(
            f"look for the events of {rule.id} in every index",
            f"index=* {terms} | stats count BY index, sourcetype",
            **_absolute(window),
        )
        places = sorted(
            ((int(float(row.get("count") or 0)), str(row.get("index")), str(row.get("sourcetype"))) for row in rows),
            reverse=True,
        )
        places = [place for place in places if place[0] > 0]
        if places:
            listed = ", ".join(f"{n} in index={index} sourcetype={sourcetype}" for n, index, sourcetype in places)
            return Cause(
                "other-index",
                f"no event in {where}; the rule's events are elsewhere: {listed}",
                f"send them to index={rule.source.splunk.index} (the HEC token's default index, or the Logpush "
                "job's sourcetype), or set the rule's source index and sourcetype in the spec",
            )
        return Cause(
            "no-match",
            f"no event in {where}, nor in any other index, matches the rule's search in the window",
            "check the Logpush job and the HEC token (`extalerts doctor --provider splunk`)",
        )

    def _derived_absent(self, rule: ResolvedRule, where: str, window: Window) -> list[Cause]:
        """A derived field (read from the structured log line) that spath never yields."""
        derived = [field for name in _fields_read(rule) if (field := self.spec.catalog[name]).is_derived]
        if not derived:
            return []
        steps = "".join(f"\n| {step}" for step in self.renderer.extraction(rule))
        counts = " ".join(f"count({field.splunk_name}) AS present_{n}" for n, field in enumerate(derived))
        rows = self.run(
            f"count derived fields of {rule.id}",
            f"{where}{steps}\n| stats count AS events {counts}",
            **_absolute(window),
        )
        row = rows[0] if rows else {}
        events = int(float(row.get("events") or 0))
        absent = [field for n, field in enumerate(derived) if not int(float(row.get(f"present_{n}") or 0))]
        if not events or not absent:
            return []
        names = ", ".join(field.splunk_name for field in absent)
        keys = ", ".join(repr(field.derived_key) for field in absent)
        return [
            Cause(
                "derived-absent",
                f"spath found no {names} in any of the {events} events of {where}: the structured log line "
                "is missing or did not parse",
                f"log one JSON object per line, with {keys}, as the first console.log of the invocation",
            )
        ]

    def _late_delivery(self, live: LiveSearch, where: str, window: Window) -> Cause | None:
        """``_indextime - _time``: how long events take to be searchable, against the search's delay."""
        rows = self.run(
            "measure indexing lag",
            f"{where} | eval _extalerts_lag=_indextime-_time "
            "| stats perc50(_extalerts_lag) AS p50 perc99(_extalerts_lag) AS p99 count",
            **_absolute(window),
        )
        if not rows or _number(rows[0].get("p99")) is None:
            return None
        p50, p99 = _number(rows[0].get("p50")) or 0.0, _number(rows[0].get("p99")) or 0.0
        delay = _snapped_minutes(live.latest)
        if delay is None or p99 <= delay * 60:
            return None
        needed = math.ceil(p99 / 60)
        return Cause(
            "late-delivery",
            f"events become searchable late: _indextime - _time p50 {p50:.0f}s, p99 {p99:.0f}s, but "
            f"{live.name} reads up to {live.latest} ({delay * 60}s before each run)",
            f"set the rule's evaluation_delay to {needed}m or more (dispatch.latest_time -{needed}m@m)",
        )


# ============================================================================================ helpers


def run_minutes(rule: ResolvedRule, window: Window) -> list[int]:
    """The scheduled runs in the window (epoch ms): every ``schedule_minutes`` from the epoch, as the
    rendered cron and the engine's Splunk semantics both run them."""
    step = schedule_minutes(rule, "splunk") * MINUTE_MS
    first = math.ceil(window.start_ms / step) * step
    return list(range(first, window.end_ms, step))


def _fields_read(rule: ResolvedRule) -> list[str]:
    """The fields the rule reads (filter, ratio match, group-by, measured field), as the renderer
    extracts them."""
    r = rule.rule
    names = fields_of(rule.filter) + fields_of(rule.ratio_match) + list(r.group_by)
    signal_field = getattr(r.signal, "field", None)
    return list(dict.fromkeys([*names, *([signal_field] if signal_field else [])]))


def _absolute(window: Window) -> dict[str, str]:
    return {"earliest_time": f"{window.start_ms / 1000:.3f}", "latest_time": f"{window.end_ms / 1000:.3f}"}


def _without_threshold(search: str) -> str:
    """The stored SPL without its last command when that is the threshold (``where`` on ``value``)."""
    commands = split_pipeline(search)
    last = commands[-1]
    if len(commands) > 1 and re.match(r"where\b", last, re.I) and re.search(r"\bvalue\b", last):
        commands = commands[:-1]
    return "\n| ".join(commands)


def _base_search(search: str) -> str:
    """The stored SPL up to its first ``stats``: the events the rule's base search (source, extraction
    and filter) matches."""
    commands = split_pipeline(search)
    kept = []
    for command in commands:
        if re.match(r"(stats|eventstats|streamstats|timechart|chart)\b", command, re.I):
            break
        kept.append(command)
    return "\n| ".join(kept)


def _rounded_decimals(search: str) -> int | None:
    """The decimals ``value`` keeps when the search rounds it (``eval value=round(X, N)``; ``round(X)``
    keeps none); None when it is not rounded."""
    for command in reversed(split_pipeline(search)):
        found = _ROUNDED_VALUE.match(command.strip())
        if found:
            return int(found.group(1) or 0)
    return None


def _snapped_minutes(modifier: str) -> int | None:
    """``-5m@m`` → 5, ``@m`` → 0; None for any other form."""
    match = _SNAPPED_MINUTES.match(modifier.strip())
    if match is None:
        return None
    return int(match.group(1) or 0)


def _number(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _group(rule: ResolvedRule, names: list[str], row: dict[str, Any]) -> Group | None:
    """The engine's group of a result row (field names of the spec, values as text); None for a row
    lacking one of them."""
    values = []
    for name in names:
        value = row.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            return None
        values.append(str(value))
    return tuple(zip(rule.rule.group_by, values, strict=True))


def _values(rule: ResolvedRule, names: list[str], rows: list[dict[str, Any]]) -> dict[Group, float | None]:
    """Each row's ``value`` by its group (rows lacking a group-by field are in no group, as in ``stats BY``)."""
    found: dict[Group, float | None] = {}
    for row in rows:
        group = _group(rule, names, row)
        if group is not None:
            found[group] = _number(row.get("value"))
    return found


def _first_difference(live: LiveSearch, rendered: dict[str, str]) -> str:
    """What differs between the stored search and the rendered one, first difference only."""
    stored = {
        "search": live.search,
        "dispatch.earliest_time": live.earliest,
        "dispatch.latest_time": live.latest,
        "cron_schedule": live.cron,
    }
    for key, value in stored.items():
        wanted = rendered.get(key, "")
        if value.strip() == wanted.strip():
            continue
        if key != "search":
            return f"{key} is {value!r}, rendered {wanted!r}"
        for number, (got, want) in enumerate(zip(value.split("\n"), wanted.split("\n"), strict=False), 1):
            if got.strip() != want.strip():
                return f"search line {number} is {got.strip()!r}, rendered {want.strip()!r}"
        return "the search has a different number of lines than the rendered one"
    return ""
