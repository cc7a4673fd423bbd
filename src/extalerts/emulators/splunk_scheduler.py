"""The Splunk emulator's scheduler: runs each enabled scheduled saved search on its cron schedule, over
its dispatch time range, with the SPL executor (:mod:`extalerts.emulators.spl`), and triggers alerts
as the search's settings say. It reads the searches as they are stored: a search edited through REST
runs as edited.

Settings follow savedsearches.conf.spec 9.2 (conf names; the REST names are in brackets):

- ``enableSched`` [is_scheduled], ``disabled``, ``cron_schedule`` (five numeric fields);
- ``dispatch.earliest_time`` / ``dispatch.latest_time``: time modifiers resolved against the run's
  scheduled time (empty earliest: all time; empty latest: the scheduled time);
- ``counttype`` [alert_type], ``relation`` [alert_comparator], ``quantity`` [alert_threshold],
  ``alert_condition``;
- ``alert.digest_mode``, ``alert.suppress``, ``alert.suppress.period``, ``alert.suppress.fields``;
- ``realtime_schedule``: with 0, "the scheduler never skips scheduled execution periods"; with 1
  (the default) Splunk "might skip some execution periods". The emulator has no load to shed and
  never skips a run either way: every scheduled time is run, late if it must be, over the time
  range of its scheduled time.

A run scheduled at T is executed once the clock has passed T + ``dispatch_lag`` (0 by default; the
sandbox allows its own event delivery a little time), and sees every event indexed by then.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from extalerts.emulators.spl import (
    EventIndex,
    Pipeline,
    Row,
    SearchContext,
    SplError,
    SplSyntaxError,
    compile_search,
    relative_time,
    result_text,
    span_seconds,
    to_text,
)

#: More runs than this for one search in one call: the rest wait for the next call.
MAX_RUNS_PER_CALL = 2000
_TRUE = ("1", "true", "yes", "t")


def _is_true(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in _TRUE


# ============================================================================================ cron


@dataclass(frozen=True)
class Cron:
    """A five-field cron schedule (savedsearches.conf.spec, cron_schedule: "a cron-style schedule",
    which "does not currently support names of months or days"). Standard cron semantics: when both
    day-of-month and day-of-week are restricted, a day matching either is a match."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        fields = text.split()
        if len(fields) != 5:
            raise SplSyntaxError(f"cron_schedule {text!r} must have five fields")
        ranges = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
        parsed = [_cron_field(part, low, high, text) for part, (low, high) in zip(fields, ranges, strict=True)]
        weekdays = frozenset(d % 7 for d in parsed[4])  # 7 is Sunday too, as 0 is
        return cls(
            frozenset(parsed[0]),
            frozenset(parsed[1]),
            frozenset(parsed[2]),
            frozenset(parsed[3]),
            weekdays,
            fields[2] != "*",
            fields[4] != "*",
        )

    def matches(self, at: float) -> bool:
        moment = datetime.fromtimestamp(at, UTC)
        if moment.minute not in self.minutes or moment.hour not in self.hours or moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = moment.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def times(self, after: float, until: float) -> Iterator[float]:
        """Scheduled times t with after < t <= until, on whole minutes."""
        minute = int(after // 60 + 1) * 60
        while minute <= until:
            if self.matches(minute):
                yield float(minute)
            minute += 60


def _cron_field(part: str, low: int, high: int, text: str) -> set[int]:
    values: set[int] = set()
    for item in part.split(","):
        match = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", item)
        if match is None:
            raise SplSyntaxError(f"cron_schedule {text!r}: cannot read {item!r}")
        start, end, step = match.group(1), match.group(2), match.group(3)
        first = low if start == "*" else int(start)
        last = high if start == "*" else int(end) if end else (high if step else first)
        every = int(step) if step else 1
        if not (low <= first <= high and low <= last <= high) or every <= 0:
            raise SplSyntaxError(f"cron_schedule {text!r}: {item!r} is out of range {low}-{high}")
        values.update(range(first, last + 1, every))
    return values


# ============================================================================================ runs


@dataclass
class Trigger:
    """One alert: the run's whole result set (digest mode) or one result row."""

    app: str
    name: str
    sid: str
    trigger_time: float
    #: The result rows this trigger covers, as text; alert actions send the first as ``result``.
    rows: list[dict[str, str]]
    settings: dict[str, str]
    #: The fired-alert id, when the search tracks its alerts (``alert.track``).
    fired_sid: str | None = None


@dataclass
class Run:
    """One dispatch of a scheduled search: what it searched, what it found, what it triggered."""

    app: str
    name: str
    sid: str
    scheduled_time: float
    earliest: float | None
    latest: float | None
    search: str
    results: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    triggers: list[Trigger] = field(default_factory=list)
    suppressed: int = 0

    @property
    def result_count(self) -> int:
        return len(self.results)


@dataclass
class _State:
    """What the scheduler keeps per saved search between runs."""

    #: The last scheduled time handled.
    last_time: float
    #: The previous run's result count (for "rises by" / "drops by").
    previous_count: int | None = None
    #: Suppression: when each field-value combination (or ``()``) last triggered.
    last_triggered: dict[tuple[str | None, ...], float] = field(default_factory=dict)


class SplunkScheduler:
    """Runs the emulator's scheduled searches. Drive it with :meth:`run_due` (the sandbox does, on
    every tick); ``on_trigger`` delivers the alert actions, ``on_run`` sees every run."""

    def __init__(
        self,
        emulator: Any,
        *,
        dispatch_lag: float = 0.0,
        on_trigger: Callable[[Trigger], None] | None = None,
        on_run: Callable[[Run], None] | None = None,
    ) -> None:
        #: A SplunkEmulator: its saved searches, event index, fired alerts and run records.
        self.emulator = emulator
        self.dispatch_lag = dispatch_lag
        self.on_trigger = on_trigger or (lambda trigger: None)
        self.on_run = on_run or (lambda run: None)
        self._states: dict[tuple[str, str], _State] = {}
        self._compiled: dict[str, Pipeline | SplError] = {}
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    def run_due(
        self, now: float, *, first: Callable[[str], bool] | None = None, budget_seconds: float | None = None
    ) -> list[Run]:
        """Run every scheduled time that is due (scheduled <= now - dispatch_lag), oldest first per search.

        Searches ``first`` names run first and always; the others, furthest behind first, only while
        ``budget_seconds`` of real time last — the rest catch up on a later call, with their own times."""
        with self._lock:
            self.emulator.index_pending()
            runs: list[Run] = []
            searches = self.emulator.saved_searches()
            deadline = None if budget_seconds is None else time.monotonic() + budget_seconds

            def order(item: tuple[str, str, dict[str, str]]) -> tuple[bool, float]:
                state = self._states.get((item[0], item[1]))
                return (not (first and first(item[1])), state.last_time if state else 0.0)

            searches.sort(key=order)
            live = {(app, name) for app, name, _ in searches}
            for key in [k for k in self._states if k not in live]:
                del self._states[key]  # deleted: a search created again under the name starts afresh
            due_until = now - self.dispatch_lag
            for app, name, settings in searches:
                if _is_true(settings.get("disabled")) or not _is_true(settings.get("enableSched")):
                    continue
                cron_text = settings.get("cron_schedule", "").strip()
                state = self._states.get((app, name))
                if state is None:
                    created = self.emulator.updated_at(app, name) or now
                    # The first run is the first scheduled time after the search was written.
                    state = self._states[(app, name)] = _State(last_time=float(int(created) - 1))
                if not cron_text:
                    continue
                try:
                    cron = Cron.parse(cron_text)
                except SplError as exc:
                    # savedsearches accepted it (the REST check is cheap); it can never run.
                    self._states[(app, name)].last_time = due_until
                    runs.append(self._failed(app, name, settings, due_until, str(exc)))
                    continue
                times = list(itertools.islice(cron.times(state.last_time, due_until), MAX_RUNS_PER_CALL))
                for scheduled in times:
                    if deadline is not None and not (first and first(name)) and time.monotonic() > deadline:
                        break
                    runs.append(self._run(app, name, settings, state, scheduled))
                    state.last_time = scheduled
            return runs

    # ----------------------------------------------------------------------------------- one run

    def _sid(self, app: str, scheduled: float) -> str:
        # The scheduler's sid form: scheduler__<owner>__<app>__RMD5<hash>_at_<time>_<n>.
        return f"scheduler__nobody__{app}__RMD5{secrets.token_hex(8)}_at_{int(scheduled)}_{next(self._count)}"

    def _failed(self, app: str, name: str, settings: dict[str, str], scheduled: float, error: str) -> Run:
        run = Run(app, name, self._sid(app, scheduled), scheduled, None, None, settings.get("search", ""), error=error)
        self.emulator.record_run(run)
        self.on_run(run)
        return run

    def _pipeline(self, text: str) -> Pipeline:
        compiled = self._compiled.get(text)
        if compiled is None:
            try:
                compiled = compile_search(text)
            except SplError as exc:
                compiled = exc
            self._compiled[text] = compiled
        if isinstance(compiled, SplError):
            raise compiled
        return compiled

    def _run(self, app: str, name: str, settings: dict[str, str], state: _State, scheduled: float) -> Run:
        search = settings.get("search", "")
        sid = self._sid(app, scheduled)
        run = Run(app, name, sid, scheduled, None, None, search)
        try:
            earliest_text = settings.get("dispatch.earliest_time", "").strip()
            latest_text = settings.get("dispatch.latest_time", "").strip()
            run.earliest = relative_time(scheduled, earliest_text) if earliest_text else None
            run.latest = relative_time(scheduled, latest_text) if latest_text else scheduled
            pipeline = self._pipeline(search)
            index: EventIndex = self.emulator.index
            context = SearchContext(index, run.earliest, run.latest, scheduled, sid)
            with self.emulator.index_lock:
                rows = pipeline.run(context)
            run.results = [result_text(row) for row in rows]
            self._trigger(run, rows, settings, state)
        except SplError as exc:
            run.error = str(exc)
        self.emulator.record_run(run)
        self.on_run(run)
        return run

    # ----------------------------------------------------------------------------------- triggering

    def _condition_met(self, run: Run, rows: list[Row], settings: dict[str, str], state: _State) -> bool:
        """savedsearches.conf.spec: counttype "number of events | number of hosts | number of sources |
        custom | always" (default always), relation and quantity ("'number of events [is] greater
        than 10' sends an alert when the count of events is larger than by 10"); custom: "alert_condition
        ... fires if the search yields ≥1 result" when run over the results."""
        counttype = settings.get("counttype", "always").strip() or "always"
        previous, state.previous_count = state.previous_count, len(rows)
        if counttype == "always":
            return True
        if counttype == "custom":
            condition = settings.get("alert_condition", "").strip()
            if not condition:
                raise SplError("counttype is custom but alert_condition is empty")
            pipeline = compile_search("| makeresults | " + condition.lstrip("|").strip())
            checked = pipeline.commands[1:]
            found = list(rows)
            context = SearchContext(self.emulator.index, run.earliest, run.latest, run.scheduled_time, run.sid)
            for command in checked:
                found = command.run(found, context)
            return bool(found)
        if counttype == "number of events":
            count = len(rows)
        elif counttype == "number of hosts":
            count = len({to_text(row.get("host")) for row in rows if row.get("host") is not None})
        elif counttype == "number of sources":
            count = len({to_text(row.get("source")) for row in rows if row.get("source") is not None})
        else:
            raise SplError(f"counttype {counttype!r} is not one the scheduler knows")
        relation = settings.get("relation", "greater than").strip()
        quantity_text = settings.get("quantity", "0").strip() or "0"
        try:
            quantity = float(quantity_text.rstrip("%"))
        except ValueError:
            raise SplError(f"quantity {quantity_text!r} is not a number") from None
        if relation == "greater than":
            return count > quantity
        if relation == "less than":
            return count < quantity
        if relation == "equal to":
            return count == quantity
        if relation == "not equal to":
            return count != quantity
        if relation in ("rises by", "drops by", "rises by perc", "drops by perc"):
            # "rises by"/"drops by" compare with the previous run's results (needs dispatch.ttl >= 2p).
            if previous is None:
                return False
            change = count - previous if relation.startswith("rises") else previous - count
            if relation.endswith("perc") or quantity_text.endswith("%"):
                return previous > 0 and 100 * change / previous > quantity
            return change > quantity
        raise SplError(f"relation {relation!r} is not one the scheduler knows")

    def _trigger(self, run: Run, rows: list[Row], settings: dict[str, str], state: _State) -> None:
        if not self._condition_met(run, rows, settings, state):
            return
        texts = [result_text(row) for row in rows]
        digest = _is_true(settings.get("alert.digest_mode"), default=True)
        suppress = _is_true(settings.get("alert.suppress"))
        fields = [f.strip() for f in settings.get("alert.suppress.fields", "").split(",") if f.strip()]
        period = _period(settings.get("alert.suppress.period", "")) if suppress else 0.0
        at = run.scheduled_time

        def suppressed(key: tuple[str | None, ...]) -> bool:
            # alert.suppress.period: "Specifies the suppression period"; a trigger within it of the last
            # trigger for the same field values (alert.suppress.fields) is suppressed.
            last = state.last_triggered.get(key)
            return suppress and last is not None and at < last + period

        def key_of(row: dict[str, str]) -> tuple[str | None, ...]:
            return tuple(row.get(f) for f in fields)

        batches: list[list[dict[str, str]]] = []
        if digest and fields:
            # alert.digest_mode: true "applies the alert actions to the entire result set": the rows
            # whose field values are not suppressed, once.
            kept = [row for row in texts if not suppressed(key_of(row))]
            run.suppressed = len(texts) - len(kept)
            if kept or not texts:
                batches.append(kept)
                for row in kept:
                    state.last_triggered[key_of(row)] = at
        elif digest:
            if suppressed(()):
                run.suppressed = max(len(texts), 1)
            else:
                batches.append(texts)
                state.last_triggered[()] = at
        else:
            # false: "applies them to each individual result", each throttled by its field values.
            for row in texts:
                if suppressed(key_of(row)):
                    run.suppressed += 1
                    continue
                batches.append([row])
                state.last_triggered[key_of(row)] = at
        for batch in batches:
            fired_sid = self.emulator.fire(run.app, run.name, trigger_time=at)
            trigger = Trigger(run.app, run.name, run.sid, at, batch, dict(settings), fired_sid)
            run.triggers.append(trigger)
            self.on_trigger(trigger)


def _period(text: str) -> float:
    """alert.suppress.period: "[number][time-unit]" ("60", "1m", "1h"); a bare number is seconds."""
    if not text.strip():
        return 0.0
    try:
        return span_seconds(text)
    except SplError:
        raise SplError(f"alert.suppress.period {text!r} is not [number][unit]") from None
