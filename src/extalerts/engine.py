"""The local evaluation engine: what each rule would have done over a stream of Workers Trace Events.

Semantics follow Datadog monitors by default (``semantics="datadog"``): every minute, on the minute,
each rule evaluates the window ``[T - delay - window, T - delay)``; one state per group; a group that
was seen counts 0 events in a window where it sent none, and a rule without groups is judged from the
input's first full window, before its own first event; count-like signals treat an empty window as
0, other signals as "no data", which keeps the current state. Alert and warning recover when the value
is back on the quiet side of their recovery threshold (or of the threshold itself without one).
Percentiles interpolate between the two nearest ranks; events lacking a group-by field form the
group ``N/A``.
``semantics="splunk"`` follows the rendered Splunk alerts instead: they run on their cron schedule,
are stateless (no recovery thresholds: each run alerts or not), and warnings are a separate alert
whose search leaves the critical range to the alert search: each run puts a group in one state, so
it notifies once, as critical or as warning, each search throttled on its own. Percentiles take
the nearest rank (limits.conf's ``perc_method``), and events lacking a group-by field are in no
group, as ``stats … BY`` leaves them out.

Data path: one parallel DuckDB scan per input file (plain or gzip, local or through fsspec) reads
only the fields the rules use, typed to the shapes Logpush writes, and aggregates them straight away:
per minute bucket and per group, each rule's counts, sums, minima and maxima, and for percentiles and
distinct counts the bucket's values with their counts. No table of events is kept, so memory holds
only those aggregates however large the input. An input the typed columns cannot hold exactly (a
lowercase key, a message that is a single string) is read again the exact way, through JSON. The
windows, the thresholds and the state machines then run in Python over the small aggregates.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import glob
import gzip
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from extalerts.errors import ExtalertsError
from extalerts.fields import ARRAY, Field, FieldType
from extalerts.filter import fields_of
from extalerts.filter.ast import Expr
from extalerts.filter.duckdb import (
    JSON_COLUMNS,
    SCALAR_COLUMNS,
    quote_identifier,
    select_fields,
    select_typed_fields,
    sql_string,
    to_duckdb,
    typed_columns,
)
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import (
    AbsenceSignal,
    Aggregation,
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    MeasureSignal,
    RatioSignal,
    breaches,
)
from extalerts.wording import plural

MINUTE_MS = 60_000
Semantics = Literal["datadog", "splunk"]
#: A group: (field, value) pairs in group_by order; () for a rule without group_by.
Group = tuple[tuple[str, str], ...]
#: The group of events lacking a group-by field, under Datadog semantics; under Splunk's they are
#: in no group, as `stats … BY f` returns one row per value of f.
MISSING_GROUP_VALUE = "N/A"
MAX_REPORTED_BAD_LINES = 20
#: The longest line read as an event; a longer one is a bad line (Logpush caps an event far below).
MAX_LINE_BYTES = 16 * 1024**2
#: Time outliers: events in a stretch of the input holding under this share of its events, apart
#: from every larger stretch by more than :data:`OUTLIER_GAP_MS` without an event (an event
#: stamped in seconds, a year early), are left out of the evaluation and reported.
OUTLIER_SHARE = 0.01
OUTLIER_GAP_MS = 86_400_000
#: The longest stretch of time one replay evaluates (memory grows with it, not with the events);
#: events beyond it, away from the bulk of the input, are time outliers too.
MAX_SPAN_MS = 92 * 86_400_000
#: Event times past the last millisecond of year 9999, or before 1970, are never evaluated.
LATEST_EVENT_MS = 253_402_300_799_999
MAX_REPORTED_OUTLIERS = 5


class State(StrEnum):
    OK = "ok"
    WARN = "warn"
    ALERT = "alert"


class EngineError(ExtalertsError):
    """The input could not be read (no file, unreadable, or bad lines under --strict)."""


@dataclass(frozen=True)
class Transition:
    at_ms: int
    group: Group
    before: State
    after: State
    value: float | None


@dataclass(frozen=True)
class Interval:
    """A stretch of time a group spent in one state (``end_ms`` None: still in it when the input ended)."""

    group: Group
    state: State
    start_ms: int
    end_ms: int | None


@dataclass
class RuleResult:
    rule_id: str
    transitions: list[Transition] = field(default_factory=list)
    #: Value per evaluation time, per group (None: no data), for charts.
    series: dict[Group, list[tuple[int, float | None]]] = field(default_factory=dict)
    evaluations: int = 0
    #: The last evaluation time; an interval still open then is counted up to it.
    until_ms: int | None = None
    #: When an alert notification would go out, per group: Datadog's on alerting and each renotify
    #: while still alerting; Splunk's at each triggering run not suppressed by the throttle.
    notifications: list[tuple[int, Group]] = field(default_factory=list)
    #: Splunk's warning search, likewise (its own throttle); empty under Datadog semantics, where
    #: only alert notifications are counted.
    warning_notifications: list[tuple[int, Group]] = field(default_factory=list)

    def firing_ms(self) -> int:
        """Total time spent alerting, across groups."""
        return sum((i.end_ms or self.until_ms or i.start_ms) - i.start_ms for i in self.intervals())

    def intervals(self, state: State = State.ALERT) -> list[Interval]:
        open_since: dict[Group, int] = {}
        found: list[Interval] = []
        for t in self.transitions:
            if t.after is state and t.before is not state:
                open_since[t.group] = t.at_ms
            elif t.before is state and t.after is not state and t.group in open_since:
                found.append(Interval(t.group, state, open_since.pop(t.group), t.at_ms))
        found.extend(Interval(group, state, start, None) for group, start in open_since.items())
        return sorted(found, key=lambda i: (i.start_ms, i.group))


@dataclass(frozen=True)
class BadLine:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.line else f"{self.source}: {self.reason}"


@dataclass
class EngineResult:
    rules: dict[str, RuleResult]
    events: int
    bad_lines: list[BadLine]
    bad_line_count: int
    first_ms: int | None
    last_ms: int | None
    semantics: Semantics
    #: What the reading worked around, e.g. a truncated archive read up to its cut.
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- input


#: What a directory or prefix listing reads; anything else there (markers, manifests) is left out.
EVENT_FILE_SUFFIXES = (".ndjson", ".json", ".log", ".gz")


def _no_event_files(where: str, names: Sequence[str]) -> EngineError:
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    found = f"it holds {shown}" if names else "it is empty"
    return EngineError(
        f"{where}: no {', '.join(EVENT_FILE_SUFFIXES)} file to read ({found}); name the files or pass a glob"
    )


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Files, directories and ``s3://`` prefixes (their event files, in sub-folders too, as Logpush
    writes a folder a day), globs, in order; a file named twice (overlapping sources) is read once."""
    found: list[str] = []
    for source in sources:
        if source.startswith("s3://"):
            found.extend(_s3_glob(source))
            continue
        path = Path(source)
        if path.is_dir():
            found.extend(_folder_files(path, source))
        elif any(c in source for c in "*?["):
            matches = sorted(glob.glob(source))  # noqa: PTH207 - absolute patterns, which Path.glob refuses
            if not matches:
                raise EngineError(f"{source}: no file matches; check the pattern, and quote it for the shell")
            for match in matches:  # a pattern such as archive/202611* names a folder a day
                found.extend(_folder_files(Path(match), match) if Path(match).is_dir() else [match])
        elif path.is_file():
            found.append(source)
        else:
            raise EngineError(f"{source}: no such file or directory; name Logpush files, folders, globs or s3:// URLs")
    unique = list({_identity(f): f for f in reversed(found)}.values())[::-1]  # first naming kept
    for file in unique:
        _refuse_unnamed_gzip(file)
    return unique


def _folder_files(folder: Path, source: str) -> list[str]:
    """A folder's event files, in sub-folders too, sorted; none is an error naming what is there."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    readable = [str(p) for p in files if p.name.endswith(EVENT_FILE_SUFFIXES)]
    if not readable:
        raise _no_event_files(source, [str(p.relative_to(folder)) for p in files])
    return readable


def _identity(file: str) -> str:
    return file if file.startswith("s3://") else os.path.realpath(file)


GZIP_MAGIC = b"\x1f\x8b"


def _refuse_unnamed_gzip(file: str) -> None:
    """A gzip file is read as gzip by its name: one named otherwise would read as thousands of bad lines."""
    if file.startswith("s3://") or file.endswith(".gz"):
        return
    with Path(file).open("rb") as handle:
        if handle.read(2) == GZIP_MAGIC:
            raise EngineError(f"{file}: gzip content in a file not named .gz; rename it to {Path(file).name}.gz")


def _s3_filesystem() -> Any:
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {})


def _s3_glob(url: str) -> list[str]:
    try:
        return _s3_list(url)
    except EngineError:
        raise
    except Exception as exc:  # botocore and s3fs raise their own types for endpoints, credentials, buckets
        hint = "check AWS_ENDPOINT_URL, the AWS credentials variables and the bucket name"
        raise EngineError(f"{url}: cannot list: {type(exc).__name__}: {exc}; {hint}") from None


def _s3_list(url: str) -> list[str]:
    fs = _s3_filesystem()
    path = url.removeprefix("s3://")
    if any(c in path for c in "*?["):
        matches: list[str] = []
        for match in sorted(fs.glob(path)):  # a prefix matched by the pattern is read in depth
            matches.extend(_event_objects(sorted(fs.find(match))) if fs.isdir(match) else [match])
    elif fs.isdir(path):
        listed = sorted(fs.find(path))
        matches = _event_objects(listed)
        if listed and not matches:
            raise _no_event_files(url, [p.rsplit("/", 1)[-1] for p in listed])
    else:
        matches = [path] if fs.exists(path) else []
    if not matches:
        raise EngineError(f"{url}: no object matches")
    return [f"s3://{m}" for m in matches]


def _event_objects(keys: Sequence[str]) -> list[str]:
    """The keys of a listing a prefix reads (markers and manifests left out)."""
    return [key for key in keys if key.endswith(EVENT_FILE_SUFFIXES)]


def write_events(events: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write events as Logpush NDJSON (used by tests and the rule test runner)."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    return count


# --------------------------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class _Columns:
    """The computed column of each field the rules read."""

    names: dict[str, str]

    def __call__(self, field_name: str) -> str:
        return self.names[field_name]


@dataclass(frozen=True)
class _Keys:
    """What one rule's aggregates are keyed by: the minute bucket (aligned to its evaluation delay)
    and its groups; for percentiles and distinct counts, also the column listing the values."""

    bucket: str
    groups: tuple[str, ...]
    values: str | None = None

    @property
    def grouped(self) -> str:
        """The condition for a row in a bucket and in a group (a null group value is in none)."""
        return " AND ".join(f"{column} IS NOT NULL" for column in (self.bucket, *self.groups))


@dataclass
class _RuleAggregates:
    keys: _Keys
    #: Aggregate columns, the count of events the filter matches first.
    names: list[str]


class Engine:
    """Load events once, then evaluate any rules of the spec over them."""

    def __init__(
        self,
        spec: Spec,
        *,
        rules: Sequence[str] | None = None,
        semantics: Semantics = "datadog",
        memory_limit: str = "1GB",
        threads: int | None = None,
        shipped: Expr | None = None,
    ) -> None:
        """``shipped``: the filter of the Logpush job feeding the provider; rules then see only the
        events it ships, as the provider would (None: every event)."""
        import duckdb

        self.spec = spec
        self.shipped = shipped
        self.semantics = semantics
        self.rules = [r for r in spec.rules if rules is None or r.id in rules]
        unknown = set(rules or ()) - {r.id for r in self.rules}
        if unknown:
            raise EngineError(f"{plural(len(unknown), 'unknown rule')}: {', '.join(sorted(unknown))}")
        # Insertion order is not needed (events are located by time), and keeping it costs memory.
        try:
            self.db = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False})
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            raise EngineError(f"memory limit {memory_limit!r}: {message}; write it like 512MB or 4GB") from None
        # DuckDB tracks a query's progress (read by `load`'s on_progress) but must never draw its bar:
        # it would land on stdout, into `--output json`.
        self.db.execute("SET enable_progress_bar = true")
        self.db.execute("SET enable_progress_bar_print = false")
        if threads:
            self.db.execute(f"SET threads = {int(threads)}")
        self.columns = _Columns(self._column_names())
        self.events = 0
        self.bad_line_count = 0
        self.bad_lines: list[BadLine] = []
        #: What the reading worked around and the user should know (a truncated archive).
        self.warnings: list[str] = []
        #: Inputs read the exact way because the typed columns could not hold them.
        self.exact_reads = 0
        #: Each input file's first and last event time, to find the files holding time outliers.
        self._file_spans: dict[str, tuple[int, int]] = {}
        #: Events left out of the evaluation because their times are far from all the others.
        self.time_outlier_count = 0
        #: Per field read with a value of another JSON type: how many, and the first (file, line).
        self.type_mismatches: dict[str, tuple[int, tuple[str, int] | None]] = {}
        self._loaded = False
        self._plan()

    def _column_names(self) -> dict[str, str]:
        used: list[str] = fields_of(self.shipped)
        for rule in self.rules:
            used += self.fields_read(rule)
        return {name: f"f{index}" for index, name in enumerate(dict.fromkeys(used))}

    @staticmethod
    def fields_read(rule: ResolvedRule) -> list[str]:
        """The fields a rule reads: its filters, its groups, and its signal's field."""
        used = fields_of(rule.filter) + fields_of(rule.ratio_match) + list(rule.rule.group_by)
        signal_field = getattr(rule.rule.signal, "field", None)
        return [*used, signal_field] if signal_field else used

    def field(self, name: str) -> Field:
        return self.spec.catalog[name]

    # ----------------------------------------------------------------------------------- the plan

    def _plan(self) -> None:
        """The one aggregation every input goes through: per minute bucket and per group, what each
        rule needs. One GROUP BY over every key any rule uses: the rules then add up the rows of
        their own keys (DuckDB would run grouping sets through a materialised copy of the input).
        Rules that share a filter share its column and their aggregates."""
        buckets: dict[int, str] = {}
        groups: dict[str, str] = {}
        conditions: dict[str, str] = {}  # filter SQL -> its column
        derived: list[str] = []  # per-row expressions, computed before aggregating
        aggregates: dict[str, str] = {}  # aggregate SQL -> its column
        #: How partial aggregates of the same key combine: sum, min or max.
        self._combine: dict[str, str] = {}

        def condition(sql: str) -> str:
            if sql not in conditions:
                conditions[sql] = f"_m{len(conditions)}"
                derived.append(f"{sql} AS {conditions[sql]}")
            return conditions[sql]

        def aggregate(sql: str, combine: str = "sum") -> str:
            if sql not in aggregates:
                aggregates[sql] = f"_a{len(aggregates)}"
                self._combine[aggregates[sql]] = combine
            return aggregates[sql]

        totals = {
            "_rows": ("count(*)", "sum"),
            "_events": ("count(ts)", "sum"),
            "_first": ("min(ts)", "min"),
            "_last": ("max(ts)", "max"),
            "_variants": ("count(*) FILTER (WHERE _variant)", "sum"),
        }
        if self.shipped is not None:
            totals["_shipped"] = (f"count(ts) FILTER (WHERE {self._shipped_sql()})", "sum")
        # Top-level fields Logpush writes in every event: one no event holds points at the input's
        # casing (`outcome` for `Outcome`), which would otherwise read as every value missing.
        self._seen_columns: dict[str, str] = {}
        for name, column in self.columns.names.items():
            catalog_field = self.field(name)
            if catalog_field.logpush and len(catalog_field.paths) == 1 and len(catalog_field.paths[0]) == 1:
                self._seen_columns[name] = f"_seen_{column}"
                totals[f"_seen_{column}"] = (f"count({column})", "sum")
        for name, (sql, combine) in totals.items():
            aggregates[sql] = name
            self._combine[name] = combine
        self._rule_aggregates: dict[str, _RuleAggregates] = {}
        for rule in self.rules:
            offset_ms = (rule.evaluation_delay * 1000) % MINUTE_MS  # buckets aligned so every window is whole buckets
            if offset_ms not in buckets:
                buckets[offset_ms] = f"_b{len(buckets)}"
                derived.append(f"floor((ts - {offset_ms}) / {MINUTE_MS})::BIGINT AS {buckets[offset_ms]}")
            for name in rule.rule.group_by:
                if name not in groups:
                    groups[name] = f"_g{len(groups)}"
                    group_value = f"CAST({self.columns(name)} AS VARCHAR)"
                    if self.semantics == "datadog":
                        group_value = f"coalesce({group_value}, '{MISSING_GROUP_VALUE}')"
                    derived.append(f"{group_value} AS {groups[name]}")
            matches = condition(self._where(rule))
            signal = rule.rule.signal
            names = [aggregate(f"count(*) FILTER (WHERE {matches})")]
            values = None
            if isinstance(signal, RatioSignal):
                assert rule.ratio_match is not None
                matching = condition(f"{matches} AND {to_duckdb(rule.ratio_match, self.field, self.columns)}")
                names.append(aggregate(f"count(*) FILTER (WHERE {matching})"))
            elif isinstance(signal, MeasureSignal) and signal.aggregation.percentile is None:
                value = f"CAST({self.columns(signal.field)} AS DOUBLE)"
                for function in ("count", "sum", "min", "max"):
                    combine = function if function in ("min", "max") else "sum"
                    names.append(aggregate(f"{function}({value}) FILTER (WHERE {matches})", combine))
            elif isinstance(signal, MeasureSignal | CardinalitySignal):
                # Each bucket's values: exact percentiles and distinct counts compose over any window
                # from them. (A list: DuckDB runs histogram() as a second grouping over a copy of the input.)
                # A distinct count needs each value once per bucket, which bounds the list by the values
                # seen in a minute, not by the events that carried them.
                value = self.columns(signal.field)
                listed = "DISTINCT "
                if isinstance(signal, MeasureSignal):
                    value, listed = f"CAST({value} AS DOUBLE)", ""
                values = aggregate(f"list({listed}{value}) FILTER (WHERE {matches} AND {value} IS NOT NULL)", "list")
            keys = _Keys(buckets[offset_ms], tuple(groups[name] for name in rule.rule.group_by), values)
            self._rule_aggregates[rule.id] = _RuleAggregates(keys, names)
        self._key_columns = [*buckets.values(), *groups.values()]
        self._derived_sql = derived
        self._aggregates_sql = [f"{sql} AS {name}" for sql, name in aggregates.items()]

    def _aggregation(self, fields_sql: str) -> str:
        keys = ", ".join(["_file", *self._key_columns])
        derived = "".join(f", {sql}" for sql in self._derived_sql)
        return (
            f"SELECT {keys}, {', '.join(self._aggregates_sql)} "
            f"FROM (SELECT *{derived} FROM ({fields_sql})) GROUP BY {keys}"
        )

    # ----------------------------------------------------------------------------------- loading

    def load(
        self,
        sources: Sequence[str],
        *,
        strict: bool = False,
        on_file: Callable[[str], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """Read every source. Bad lines are counted and reported by file and line; with ``strict``
        the first file holding one is an error. ``on_progress`` hears the share of the input read so
        far (0 to 1; by bytes, or by files for ``s3://``), several times a second, within large files too.

        Files are read in batches, one query each: DuckDB reads a batch's files in parallel, which
        matters for Logpush archives of many small gzip files (each one is a single stream)."""
        self.load_files(expand_sources(sources), strict=strict, on_file=on_file, on_progress=on_progress)

    def load_files(
        self,
        files: Sequence[str],
        *,
        strict: bool = False,
        on_file: Callable[[str], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """As :meth:`load`, for files already expanded by :func:`expand_sources` (listing an
        ``s3://`` prefix again would cost a request per object)."""
        if any(f.startswith("s3://") for f in files) and not self.db.filesystem_is_registered("s3"):
            self.db.register_filesystem(_s3_filesystem())
        local = not any(f.startswith("s3://") for f in files)
        sizes = [_size(file) if local else 1 for file in files]
        batches = _batches(list(zip(files, sizes, strict=True)))
        import threading

        total, done, reported = max(sum(sizes), 1), 0, 0.0
        lock = threading.Lock()  # heard from the watching thread and from this one

        def report(share: float) -> None:
            nonlocal reported
            with lock:
                if on_progress is not None and share > reported:  # a batch read again restarts its query
                    reported = share
                    on_progress(share)

        for batch in batches:
            size = sum(size for _, size in batch)

            def within(query_share: float, before: int = done, size: int = size) -> None:
                report((before + query_share * size) / total)

            # A damaged gzip file is read apart (what is sound of it), so that it fails neither the
            # batch nor, silently, itself: DuckDB checks neither the CRC nor the length of a member.
            damaged = {file: damage for file, _ in batch if file.endswith(".gz") and (damage := gzip_damage(file))}
            for file, damage in damaged.items():
                self._load_damaged(file, damage, strict)
            sound = [file for file, _ in batch if file not in damaged]
            with _Progress(self.db, within) if on_progress is not None else contextlib.nullcontext():
                if sound:
                    self._load_batch(sound, strict)
            done += size
            report(done / total)
            for file, _ in batch:
                if on_file is not None:
                    on_file(file)
        self._set_aside_time_outliers()

    def load_events(self, events: Iterable[Mapping[str, Any]], *, strict: bool = True) -> None:
        """Evaluate over events given as dicts (written to a temporary NDJSON file and read like any other)."""
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "events.ndjson"
            write_events(events, path)
            self._load_batch([str(path)], strict=strict)

    def _read_json(self, files: str | Sequence[str], columns: Mapping[str, str] | None = None) -> str:
        columns = columns or {**SCALAR_COLUMNS, **dict.fromkeys(JSON_COLUMNS, "JSON")}
        spec = ", ".join(f"{quote_identifier(k)}: '{v}'" for k, v in columns.items())
        names = [files] if isinstance(files, str) else list(files)
        listed = "[" + ", ".join("'" + name.replace("'", "''") + "'" for name in names) + "]"
        return (
            f"read_json({listed}, format='newline_delimited', ignore_errors=true, "
            f"maximum_object_size={MAX_LINE_BYTES}, columns={{{spec}}})"
        )

    def typed_columns(self) -> dict[str, str] | None:
        """The ``read_json`` columns of the fast reading (None: the rules need the exact one)."""
        return typed_columns([self.field(name) for name in self.columns.names])

    def fields_query(self, files: str | Sequence[str], *, exact: bool = False, file_number: str = "file_index") -> str:
        """The events of ``files`` as rows of ``ts``, each field's column, ``_variant``, and ``_file``
        (by default the file's position in ``files``)."""
        fields = [(self.field(name), column) for name, column in self.columns.names.items()]
        typed = None if exact else self.typed_columns()
        scan = self._read_json(files, typed)
        scan = f"(SELECT *, {file_number} AS _file FROM {scan})"
        if typed is None:
            return select_fields(fields, scan, carry=("_file",))
        return select_typed_fields(fields, scan, carry=("_file",))

    def _load_batch(self, files: Sequence[str], strict: bool) -> None:
        # One parallel scan of the batch, aggregated as it goes, per input file too; a line that is
        # not an event arrives as a row without a timestamp, counted apart.
        try:
            self._stage(self.fields_query(files), files)
        except EngineError as error:
            if len(files) == 1:
                if "maximum_object_size" in str(error):
                    self._load_without_long_lines(files[0], strict)
                    return
                if strict or not files[0].endswith(".gz") or "gzip" not in str(error).lower():
                    raise
                self._load_damaged(files[0], GzipDamage(0, "unreadable", str(error)), strict)
                return
            for file in files:  # file by file, so that an error names its file
                self._load_batch([file], strict)
            return
        totals = self._staged_totals()
        variant_files = sorted(n for n, (_, _, variants) in totals.items() if variants)
        for number in variant_files:
            # Shapes the typed columns cannot hold: this file's rows are read again the exact way.
            self.exact_reads += 1
            self.db.execute(f"DELETE FROM staged WHERE _file = {number}")
            exact = self.fields_query(files[number], exact=True, file_number=str(number))
            self._stage(exact, [files[number]], into_staged=True)
        if variant_files:
            totals = self._staged_totals()
        if self._loaded:
            self.db.execute("INSERT INTO partials SELECT * FROM staged")
        else:
            self.db.execute("CREATE OR REPLACE TEMP TABLE partials AS SELECT * FROM staged")
            self._loaded = True
        spans = self.db.execute(
            "SELECT _file, min(_first), max(_last) FROM staged WHERE _first IS NOT NULL GROUP BY _file"
        ).fetchall()
        for number, first, last in spans:
            self._file_spans[files[int(number)]] = (int(first), int(last))
        for number, file in enumerate(files):
            rows, events, _ = totals.get(number, (0, 0, 0))
            self.events += events
            if rows > events:
                self._locate_bad_lines(file, rows - events, strict)
        self._check_types(files)

    def _load_damaged(self, file: str, damage: GzipDamage, strict: bool) -> None:
        """A damaged gzip archive (cut short by an interrupted upload or copy, or corrupt): read every
        whole line before the damage, and say so with where it is, rather than lose the replay or
        the other files. ``--strict`` stops instead."""
        if strict:
            raise EngineError(f"{file}: {damage} (--strict stops; without it the lines before the damage are read)")
        with tempfile.TemporaryDirectory(prefix="extalerts-") as folder:
            salvaged = str(Path(folder) / "salvaged.ndjson")
            kept, found = _salvage_gzip(file, salvaged)
            if kept == 0:
                self.warnings.append(f"{file}: {damage}, before any whole line; skipped (fetch the file again)")
                return
            problem = {
                "cut short": "read the {kept:,} whole lines before the cut (fetch the file again for the rest",
                "corrupt": "read the {kept:,} whole lines before the damage (fetch the file again for the rest",
                "trailing": "read all {kept:,} lines before them (nothing is missing unless the file was joined "
                "with another",
            }[found.how if found is not None and found.how != "unreadable" else "corrupt"].format(kept=kept)
            self.warnings.append(f"{file}: {damage}; {problem}; --strict stops instead)")
            self._load_copy(file, salvaged)

    def _load_copy(self, file: str, copy: str) -> None:
        """Read ``copy``, a readable copy of ``file`` line for line; what it reports names ``file``."""
        before = len(self.bad_lines)
        self._load_batch([copy], strict=False)
        self.bad_lines[before:] = [BadLine(file, b.line, b.reason) for b in self.bad_lines[before:]]
        if copy in self._file_spans:
            self._file_spans[file] = self._file_spans.pop(copy)
        for name, (count, first) in self.type_mismatches.items():
            if first is not None and first[0] == copy:
                self.type_mismatches[name] = (count, (file, first[1]))

    def _load_without_long_lines(self, file: str, strict: bool) -> None:
        """A line longer than DuckDB reads makes a bad line, not a bad file: the file is read from a
        copy where each such line is blank (so the others keep their numbers); ``--strict`` stops."""
        with tempfile.TemporaryDirectory(prefix="extalerts-") as folder:
            copy = str(Path(folder) / "lines.ndjson")
            long_lines = _copy_without_long_lines(file, copy, stop_at_first=strict)
            reason = f"a line longer than {MAX_LINE_BYTES // 1024**2} MiB, more than an event holds"
            located = [BadLine(file, number, f"{reason} ({size:,} bytes)") for number, size in long_lines]
            if strict:
                where = str(located[0]) if located else f"{file}: {reason}"
                raise EngineError(f"{where} (--strict stops at the first bad line; without it, bad lines are skipped)")
            self.bad_line_count += len(located)
            room = max(MAX_REPORTED_BAD_LINES - len(self.bad_lines), 0)
            self.bad_lines.extend(located[:room])
            self._load_copy(file, copy)

    def _type_checks(self) -> list[tuple[str, tuple[str, ...], str]]:
        """The fields the rules read at a fixed place of the event: (name, path, JSON types allowed)."""
        checks = []
        for name in self.columns.names:
            catalog_field = self.field(name)
            path = catalog_field.paths[0]
            if catalog_field.is_derived or len(catalog_field.paths) > 1 or ARRAY in path:
                continue
            if path[0] not in SCALAR_COLUMNS and path[0] not in JSON_COLUMNS:
                continue
            checks.append((name, path, _JSON_TYPES[catalog_field.type]))
        return checks

    def _check_types(self, files: Sequence[str]) -> None:
        """Count, per field the rules read, the values of another JSON type than the field's (text
        where a number belongs, an object for a name): the reading coerces or drops them, so they
        are reported, the first with its file and line. A scan of the files' JSON, apart from the
        aggregation, whose typed columns no longer tell a number from its text."""
        checks = self._type_checks()
        if not checks:
            return
        columns = dict.fromkeys(dict.fromkeys(path[0] for _, path, _ in checks), "JSON")
        counts = []
        for index, (_, path, allowed) in enumerate(checks):
            value = quote_identifier(path[0])
            if len(path) > 1:
                value = f"json_extract({value}, {sql_string('$.' + '.'.join(path[1:]))})"
            counts.append(f"count(*) FILTER (WHERE json_type({value}) NOT IN ({allowed})) AS _t{index}")
        query = f"SELECT file_index, {', '.join(counts)} FROM {self._read_json(files, columns)} GROUP BY ALL"
        try:
            rows = self.db.execute(query).fetchall()
        except Exception:
            return
        for row in sorted(rows):
            file = files[int(row[0])]
            for (name, path, allowed), found in zip(checks, row[1:], strict=True):
                if not found:
                    continue
                count, first = self.type_mismatches.get(name, (0, None))
                if first is None:
                    line = _first_mismatch(file, path, allowed)
                    first = (file, line) if line else None
                self.type_mismatches[name] = (count + int(found), first)

    def type_warnings(self) -> list[str]:
        """One line per field with values of another type: '`CPUTimeMs`: 3 values not numbers, first at f:12'."""
        lines = []
        for name, (count, first) in sorted(self.type_mismatches.items()):
            kind = _TYPE_WORDS[self.field(name).type]
            where = f", first at {first[0]}:{first[1]}" if first else ""
            values = "value" if count == 1 else "values"
            lines.append(
                f"`{name}`: {count:,} {values} not {kind}{where} (converted where they can be, else read as missing)"
            )
        return lines

    def _set_aside_time_outliers(self) -> None:
        """Leave out of the evaluation the events stamped far from all the others (see
        :data:`OUTLIER_SHARE`), and those before 1970 or past year 9999, and warn with where they
        are: evaluating from 1970 for one event stamped in seconds would take a minute per minute."""
        if not self._loaded:
            return
        stretches = self.db.execute(
            f"""WITH minutes AS (
                SELECT _first // {MINUTE_MS} AS m, sum(_events) AS n FROM partials
                WHERE _first BETWEEN 0 AND {LATEST_EVENT_MS} GROUP BY 1),
            marked AS (SELECT m, n, CASE WHEN m - lag(m) OVER (ORDER BY m) > {OUTLIER_GAP_MS // MINUTE_MS}
                THEN 1 ELSE 0 END AS starts FROM minutes),
            numbered AS (SELECT m, n, sum(starts) OVER (ORDER BY m) AS stretch FROM marked)
            SELECT min(m), max(m), sum(n) FROM numbered GROUP BY stretch ORDER BY 1"""
        ).fetchall()
        low_ms, high_ms = _bulk(
            [(int(low) * MINUTE_MS, (int(high) + 1) * MINUTE_MS - 1, int(n)) for low, high, n in stretches]
        )
        outside = f"_last < {low_ms} OR _first > {high_ms}"
        row = self.db.execute(f"SELECT coalesce(sum(_events), 0) FROM partials WHERE {outside}").fetchone()
        count = int(row[0]) if row else 0
        if not count:
            return
        self.db.execute(f"DELETE FROM partials WHERE {outside}")
        self.time_outlier_count += count
        self.events -= count
        examples: list[str] = []
        for file, (first, last) in self._file_spans.items():
            if len(examples) < MAX_REPORTED_OUTLIERS and (first < low_ms or last > high_ms):
                wanted = MAX_REPORTED_OUTLIERS - len(examples)
                examples += [
                    f"{file}:{n} ({_time_text(ms)})" for n, ms in _lines_outside(file, low_ms, high_ms, wanted)
                ]
        events = "event" if count == 1 else "events"
        self.warnings.append(
            f"{count:,} {events} stamped far from the rest of the input ({_time_text(low_ms)} to "
            f"{_time_text(high_ms)}) left out of the evaluation (EventTimestampMs in seconds, or a clock "
            f"off?): {', '.join(examples) or 'not found reading the files again'}"
        )

    def _stage(self, fields_sql: str, files: Sequence[str], *, into_staged: bool = False) -> None:
        statement = "INSERT INTO staged" if into_staged else "CREATE OR REPLACE TEMP TABLE staged AS"
        try:
            self.db.execute(f"{statement} {self._aggregation(fields_sql)}")
        except Exception as exc:  # duckdb raises its own exception types for I/O, decoding and memory
            where = files[0] if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)"
            message = str(exc).splitlines()[0]
            if "Out of Memory" in message:
                message += "; raise --memory-limit (DuckDB spills to disk beyond it)"
            raise EngineError(f"{where}: cannot read: {message}") from None

    def _staged_totals(self) -> dict[int, tuple[int, int, int]]:
        """Per input file of the batch: rows read, events among them, rows the typed columns cannot hold."""
        rows = self.db.execute(
            "SELECT _file, sum(_rows), sum(_events), sum(_variants) FROM staged GROUP BY _file"
        ).fetchall()
        return {int(row[0]): (int(row[1]), int(row[2]), int(row[3])) for row in rows}

    def _locate_bad_lines(self, file: str, bad: int, strict: bool) -> None:
        """Only when a file has bad lines: find them, reading it again line by line. (A DuckDB scan
        cannot: around a line that is not an object it drops the rows of the whole chunk.)"""
        self.bad_line_count += bad
        room = MAX_REPORTED_BAD_LINES - len(self.bad_lines)
        wanted = min(bad, max(room, 1 if strict else 0))
        if not wanted:
            return
        reason = "not a Workers Trace Event (bad JSON or no EventTimestampMs)"
        located = [BadLine(file, number, reason) for number in _bad_line_numbers(file, wanted)]
        self.bad_lines.extend(located)
        if len(located) < wanted:
            # The whole file was read and fewer lines found than the scan skipped: say so, rather
            # than leave a count without a single line to look at.
            missed = bad - len(located)
            more = "more line" if missed == 1 else "more lines"
            self.bad_lines.append(
                BadLine(
                    file,
                    0,
                    f"{missed:,} {more} not read as a Workers Trace Event, which reading it line by line "
                    "does not find (check that the file is UTF-8 NDJSON, one event a line)",
                )
            )
        if strict:
            # Should the line-by-line reading disagree with the scan, --strict still stops.
            where = str(located[0]) if located else f"{file}: {plural(bad, 'line')} not read as Workers Trace Events"
            raise EngineError(f"{where} (--strict stops at the first bad line; without it, bad lines are skipped)")

    # ----------------------------------------------------------------------------------- evaluation

    def span(self) -> tuple[int | None, int | None]:
        if not self._loaded:
            return None, None
        row = self.db.execute("SELECT min(_first), max(_last) FROM partials").fetchone()
        if row is None or row[0] is None:
            return None, None
        return int(row[0]), int(row[1])

    def kept_values(self) -> int:
        """How many values the percentile and distinct-count rules keep, across their minute buckets:
        what grows with the input beyond the per-minute counts."""
        columns = sorted({a.keys.values for a in self._rule_aggregates.values() if a.keys.values})
        if not self._loaded or not columns:
            return 0
        total = " + ".join(f"coalesce(sum(len({column})), 0)" for column in columns)
        row = self.db.execute(f"SELECT {total} FROM partials").fetchone()
        return int(row[0]) if row else 0

    def evaluate(self, *, start_ms: int | None = None, end_ms: int | None = None) -> EngineResult:
        """Evaluate every rule. Without ``start_ms``/``end_ms`` the evaluations cover the input: from
        the first full window to the first evaluation whose window ends after the last event."""
        first, last = self.span()
        results: dict[str, RuleResult] = {}
        for rule in self.rules:
            results[rule.id] = self._evaluate_rule(rule, first, last, start_ms, end_ms)
        warnings = [*self.warnings, *self.type_warnings()]
        return EngineResult(
            results, self.events, self.bad_lines, self.bad_line_count, first, last, self.semantics, warnings
        )

    def _evaluation_times(
        self, rule: ResolvedRule, first: int | None, last: int | None, start_ms: int | None, end_ms: int | None
    ) -> list[int]:
        window_ms, delay_ms = rule.rule.window * 1000, rule.evaluation_delay * 1000
        if start_ms is None:
            if first is None:
                return []
            start_ms = ceil_minute(first + window_ms + delay_ms)
        if end_ms is None:
            if last is None:
                return []
            end_ms = ceil_minute(last + 1 + delay_ms)
        step = schedule_minutes(rule, self.semantics) * MINUTE_MS
        start_ms = ceil_minute(start_ms)
        if step > MINUTE_MS:
            start_ms = math.ceil(start_ms / step) * step
        return list(range(start_ms, end_ms + 1, step))

    def _evaluate_rule(
        self, rule: ResolvedRule, first: int | None, last: int | None, start_ms: int | None, end_ms: int | None
    ) -> RuleResult:
        times = self._evaluation_times(rule, first, last, start_ms, end_ms)
        result = RuleResult(rule.id, evaluations=len(times), until_ms=times[-1] if times else None)
        if not times:
            return result
        values = self._values(rule, times)
        result.series = {group: values[group] for group in sorted(values)}
        result.transitions = transitions(rule, result.series, self.semantics)
        result.notifications = self._notifications(rule, result)
        if self.semantics == "splunk":
            result.warning_notifications = self._notifications(rule, result, State.WARN)
        return result

    def _notifications(
        self, rule: ResolvedRule, result: RuleResult, state: State = State.ALERT
    ) -> list[tuple[int, Group]]:
        """Notifications from the stretches spent in ``state``. Datadog notifies on entering alert and
        every ``renotify`` while still in it. A Splunk alert (or warning) search triggers at every run
        whose results match; its ``alert.suppress.period`` (the rule's throttle) then holds back repeats
        for the same group. The two searches are throttled apart: a group that goes from warning to
        critical notifies as critical at once."""
        until = result.until_ms or 0
        step_ms = schedule_minutes(rule, self.semantics) * MINUTE_MS
        sent: list[tuple[int, Group]] = []
        last_sent: dict[Group, int] = {}
        for stretch in result.intervals(state):
            end = stretch.end_ms if stretch.end_ms is not None else until + 1
            if self.semantics == "datadog":
                repeat = rule.renotify * 1000 if rule.renotify else None
                times = range(stretch.start_ms, end, repeat) if repeat else [stretch.start_ms]
                sent.extend((t, stretch.group) for t in times)
                continue
            for t in range(stretch.start_ms, end, step_ms):
                previous = last_sent.get(stretch.group)
                if previous is None or t - previous >= rule.throttle * 1000:
                    sent.append((t, stretch.group))
                    last_sent[stretch.group] = t
        return sorted(sent)

    # ----------------------------------------------------------------------------------- values

    def _where(self, rule: ResolvedRule) -> str:
        where = "true" if rule.filter is None else to_duckdb(rule.filter, self.field, self.columns)
        if self.shipped is None:
            return where
        return f"({self._shipped_sql()}) AND ({where})"

    def _shipped_sql(self) -> str:
        return "true" if self.shipped is None else to_duckdb(self.shipped, self.field, self.columns)

    def absent_fields(self) -> list[str]:
        """Top-level fields the rules read that no event held (an empty list before any event)."""
        if not self._loaded or not self._seen_columns or not self.events:
            return []
        sums = ", ".join(f"coalesce(sum({column}), 0)" for column in self._seen_columns.values())
        row = self.db.execute(f"SELECT {sums} FROM partials").fetchone() or ()
        return [name for name, seen in zip(self._seen_columns, row, strict=True) if not seen]

    def shipped_events(self) -> int:
        """Events the Logpush job's filter ships (all events without one)."""
        if not self._loaded or self.shipped is None:
            return self.events
        row = self.db.execute("SELECT coalesce(sum(_shipped), 0) FROM partials").fetchone()
        return int(row[0]) if row else 0

    def _rows(self, rule: ResolvedRule) -> dict[Group, dict[int, Any]]:
        """The rule's aggregates per group, per bucket holding an event its filter matches."""
        if not self._loaded:
            return {}
        aggregates = self._rule_aggregates[rule.id]
        keys = aggregates.keys
        width = len(keys.groups)
        columns = ", ".join((keys.bucket, *keys.groups))
        combined = ", ".join(f"{self._combine[name]}({name})" for name in aggregates.names)
        query = (
            f"SELECT {columns}, {combined} FROM partials WHERE {keys.grouped} "
            f"GROUP BY {columns} HAVING sum({aggregates.names[0]}) > 0"
        )
        found: dict[Group, dict[int, Any]] = {}
        for row in self.db.execute(query).fetchall():
            group = _group(rule, row[1 : 1 + width])
            found.setdefault(group, {})[int(row[0])] = row[1 + width :]
        return found

    def _values(self, rule: ResolvedRule, times: list[int]) -> dict[Group, list[tuple[int, float | None]]]:
        if self._rule_aggregates[rule.id].keys.values is None:
            return self._bucketed(rule, times)
        return self._windowed(rule, times)

    def bucket_rows(self, rule_id: str) -> dict[Group, dict[int, tuple[Any, ...]]]:
        """A rule's minute buckets per group, as :func:`bucketed_values` reads them: the bucket of
        time ``t`` is ``(t - evaluation_delay % 1m) // 1m``; each row holds the count of events its
        filter matches first, then the ratio's matching count or the measure's count, sum, min and max."""
        rule = next(r for r in self.rules if r.id == rule_id)
        return {group: {b: tuple(row) for b, row in rows.items()} for group, rows in self._rows(rule).items()}

    def _bucketed(self, rule: ResolvedRule, times: list[int]) -> dict[Group, list[tuple[int, float | None]]]:
        """Signals that compose across minute buckets: counts, ratios, change, absence, sum/avg/min/max."""
        first_ms, _ = self.span()
        return bucketed_values(rule, self._rows(rule), times, self.semantics, first_ms)

    def _windowed(self, rule: ResolvedRule, times: list[int]) -> dict[Group, list[tuple[int, float | None]]]:
        """Percentiles and distinct counts, from each bucket's values, window by window."""
        signal = rule.rule.signal
        assert isinstance(signal, MeasureSignal | CardinalitySignal)
        delay_ms, window_ms = rule.evaluation_delay * 1000, rule.rule.window * 1000
        offset_ms = delay_ms % MINUTE_MS
        window_buckets = window_ms // MINUTE_MS
        buckets = self._rows(rule)
        if not rule.rule.group_by:
            buckets.setdefault((), {})
        if isinstance(signal, CardinalitySignal):
            steps = self._distinct_changes(rule, window_buckets)
        else:
            quantiles = self._window_quantiles(rule, window_buckets, signal.aggregation.percentile or 50)
        out: dict[Group, list[tuple[int, float | None]]] = {}
        for group, by_bucket in buckets.items():
            events = _Buckets(by_bucket)
            # A group is seen from the first window holding an event of it (a group-less rule: always).
            seen = not rule.rule.group_by
            series: list[tuple[int, float | None]] = []
            changes = steps.get(group, []) if isinstance(signal, CardinalitySignal) else []
            taken, held = 0, 0
            for at_ms in times:
                end = (at_ms - delay_ms - offset_ms) // MINUTE_MS
                seen = seen or events.count(end - window_buckets, end) > 0
                if isinstance(signal, CardinalitySignal):
                    while taken < len(changes) and changes[taken][0] <= end:
                        held += changes[taken][1]
                        taken += 1
                    value: float | None = float(held)
                else:
                    value = quantiles.get((group, end))
                if seen:
                    series.append((at_ms, value))
            out[group] = series
        return out

    def _window_quantiles(
        self, rule: ResolvedRule, window_buckets: int, percentile: int
    ) -> dict[tuple[Group, int], float]:
        """The percentile of each window (by group and window end, in buckets) holding a value. Datadog
        semantics: DuckDB's ``quantile_cont``, linear interpolation between the two nearest ranks.
        Splunk semantics: limits.conf's default ``perc_method = nearest-rank``, "the number with
        0-based rank R = floor((percentile/100)*count)" (clamped to the last). Both providers only
        approximate these exact values (DDSketch; Splunk's default ``perc_digest_type = tdigest``).
        Each bucket's values are counted once, copied to the windows they fall in, and ranked there."""
        keys = self._rule_aggregates[rule.id].keys
        by = "".join(f"{group}, " for group in keys.groups)
        fraction = percentile / 100
        nearest_rank = self.semantics == "splunk"
        if nearest_rank:  # integer arithmetic: 0.29 * 100 is not 29 in floating point
            low_rank = high_rank = f"least(n * {percentile} // 100, n - 1)"
        else:
            low_rank, high_rank = f"floor((n - 1) * {fraction!r})", f"ceil((n - 1) * {fraction!r})"
        query = (
            f"WITH bucket_values AS (SELECT {by}b, value, count(*) AS c FROM ({self._bucket_values(keys)}) "
            "GROUP BY ALL), "
            f"windows AS (SELECT {by}b + k AS e, value, sum(c) AS c FROM bucket_values "
            f"CROSS JOIN range(1, {window_buckets + 1}) AS steps(k) GROUP BY ALL), "
            f"ranked AS (SELECT {by}e, value, sum(c) OVER (PARTITION BY {by}e ORDER BY value "
            f"ROWS UNBOUNDED PRECEDING) AS upto, sum(c) OVER (PARTITION BY {by}e) AS n FROM windows) "
            f"SELECT {by}e, any_value(n), min(value) FILTER (WHERE upto > {low_rank}), "
            f"min(value) FILTER (WHERE upto > {high_rank}) FROM ranked GROUP BY ALL"
        )
        width = len(keys.groups)
        found: dict[tuple[Group, int], float] = {}
        for row in self.db.execute(query).fetchall():
            group = _group(rule, row[:width])
            events, low, high = int(row[width + 1]), float(row[width + 2]), float(row[width + 3])
            position = (events - 1) * fraction
            weight = 0.0 if nearest_rank else position - math.floor(position)
            found[group, int(row[width])] = low + (high - low) * weight
        return found

    @staticmethod
    def _bucket_values(keys: _Keys) -> str:
        """Every value a rule listed, one row each with its groups and bucket ``b``, across inputs."""
        by = "".join(f"{group}, " for group in keys.groups)
        return f"SELECT {by}{keys.bucket} AS b, unnest({keys.values}) AS value FROM partials WHERE {keys.grouped}"

    def _distinct_changes(self, rule: ResolvedRule, window_buckets: int) -> dict[Group, list[tuple[int, int]]]:
        """How the distinct count changes, per group, from one window end (in buckets) to the next.

        A value counts in the windows ending after its latest bucket ``b`` before them, up to its next
        bucket and at most ``window_buckets`` later: +1 at ``b + 1``, -1 after ``min(next, b + window)``.
        Summed in DuckDB, this leaves a few rows per group however many values there are."""
        keys = self._rule_aggregates[rule.id].keys
        by = "".join(f"{group}, " for group in keys.groups)
        query = (
            f"WITH seen AS (SELECT DISTINCT {by}b, value FROM ({self._bucket_values(keys)})), "
            f"spans AS (SELECT {by}b, lead(b) OVER (PARTITION BY {by}value ORDER BY b) AS next FROM seen) "
            f"SELECT {by}e, sum(d) FROM (SELECT {by}b + 1 AS e, 1 AS d FROM spans UNION ALL "
            f"SELECT {by}least(coalesce(next, b + {window_buckets}), b + {window_buckets}) + 1 AS e, -1 AS d "
            "FROM spans) GROUP BY ALL ORDER BY e"
        )
        width = len(keys.groups)
        found: dict[Group, list[tuple[int, int]]] = {}
        for row in self.db.execute(query).fetchall():
            group = _group(rule, row[:width])
            found.setdefault(group, []).append((int(row[width]), int(row[width + 1])))
        return found


def bucketed_values(
    rule: ResolvedRule,
    buckets: Mapping[Group, Mapping[int, Sequence[Any]]],
    times: Sequence[int],
    semantics: Semantics,
    first_ms: int | None,
) -> dict[Group, list[tuple[int, float | None]]]:
    """The values of a rule whose signal composes across minute buckets (counts, ratios, change,
    absence, sum/avg/min/max) at each evaluation time, per group, from its buckets (see
    :meth:`Engine.bucket_rows`); ``first_ms``: when the data begins (a change's baseline reaching
    back before it is unknown). Shared by the engine and ``extalerts verify``'s provider sides."""
    signal = rule.rule.signal
    delay_ms, window_ms = rule.evaluation_delay * 1000, rule.rule.window * 1000
    offset_ms = delay_ms % MINUTE_MS
    buckets = {group: dict(rows) for group, rows in buckets.items()}
    first_seen = {group: min(by_bucket) for group, by_bucket in buckets.items()}
    # Expected groups are Splunk's alone: a Datadog monitor cannot know a group it never saw.
    expected = signal.expected if isinstance(signal, AbsenceSignal) and semantics == "splunk" else []
    if expected and len(rule.rule.group_by) == 1:
        for value in expected:
            expected_group: Group = ((rule.rule.group_by[0], value),)
            buckets.setdefault(expected_group, {})
            first_seen[expected_group] = -(2**62)
    if not rule.rule.group_by:
        # One state for all events, judged from the first full window of the data (the input's
        # first event), not from the rule's first event: a rule firing on silence or on a low
        # count must see the silence before its own events begin.
        buckets.setdefault((), {})
        first_seen[()] = -(2**62)
    window_buckets = window_ms // MINUTE_MS
    shift_buckets = signal.compare_to // 60 if isinstance(signal, ChangeSignal) else 0
    # A baseline window that reaches back before the data began is unknown, not empty.
    data_start = (first_ms - offset_ms) // MINUTE_MS if first_ms is not None else 0
    out: dict[Group, list[tuple[int, float | None]]] = {}
    for group, by_bucket in buckets.items():
        window = _Buckets(by_bucket)
        series: list[tuple[int, float | None]] = []
        for at_ms in times:
            end = (at_ms - delay_ms - offset_ms) // MINUTE_MS  # exclusive
            start = end - window_buckets
            if first_seen[group] >= end:
                continue  # the group has not appeared yet
            if isinstance(signal, AbsenceSignal) and rule.rule.group_by:
                last_seen = window.last_before(end)
                if last_seen is not None and last_seen < end - signal.lookback // 60:
                    continue  # silent for longer than the lookback: forgotten, as in Splunk
            if shift_buckets and start - shift_buckets < data_start:
                series.append((at_ms, None))
                continue
            series.append((at_ms, _bucket_value(rule, window, start, end, shift_buckets)))
        if series:
            out[group] = series
    return out


def transitions(
    rule: ResolvedRule, series: Mapping[Group, Sequence[tuple[int, float | None]]], semantics: Semantics
) -> list[Transition]:
    """A series (value per evaluation time, per group) run through the rule's thresholds and state
    machine: each group's changes of state, in time order. The engine's own evaluation, and the one
    ``extalerts verify`` runs over a provider's values and the expected ones alike."""
    machine = _StateMachine(rule, semantics)
    found: list[Transition] = []
    for group in sorted(series):
        state = State.OK
        for at_ms, value in series[group]:
            new_state = machine.next(state, value)
            if new_state is not state:
                found.append(Transition(at_ms, group, state, new_state, value))
                state = new_state
    return sorted(found, key=lambda t: (t.at_ms, t.group))


def _group(rule: ResolvedRule, values: Sequence[Any]) -> Group:
    """A group from the values of the rule's group-by fields, in their order."""
    return tuple(zip(rule.rule.group_by, (str(v) for v in values), strict=True))


class _Buckets:
    """One group's bucket rows, for sums over windows of buckets."""

    def __init__(self, by_bucket: Mapping[int, Sequence[Any]]) -> None:
        self.keys = sorted(by_bucket)
        self.rows = [by_bucket[key] for key in self.keys]
        # Running totals of the event count (integers, so differences are exact).
        self.counts = [0]
        for row in self.rows:
            self.counts.append(self.counts[-1] + int(row[0]))

    def span(self, start: int, end: int) -> tuple[int, int]:
        return bisect.bisect_left(self.keys, start), bisect.bisect_left(self.keys, end)

    def count(self, start: int, end: int) -> int:
        low, high = self.span(start, end)
        return self.counts[high] - self.counts[low]

    def column(self, index: int, start: int, end: int) -> list[Any]:
        low, high = self.span(start, end)
        return [row[index] for row in self.rows[low:high] if row[index] is not None]

    def last_before(self, end: int) -> int | None:
        position = bisect.bisect_left(self.keys, end)
        return self.keys[position - 1] if position else None


def _bucket_value(rule: ResolvedRule, window: _Buckets, start: int, end: int, shift: int) -> float | None:
    signal = rule.rule.signal
    count = window.count(start, end)
    if isinstance(signal, CountSignal | AbsenceSignal):
        return float(count)
    if isinstance(signal, RatioSignal):
        matching = sum(int(v) for v in window.column(1, start, end))
        return 100.0 * matching / count if count >= max(signal.min_events, 1) else None
    if isinstance(signal, ChangeSignal):
        previous = window.count(start - shift, end - shift)
        return 100.0 * (count - previous) / previous if previous > 0 else None
    assert isinstance(signal, MeasureSignal)
    present = sum(int(v) for v in window.column(1, start, end))
    if present == 0:
        return None
    if signal.aggregation is Aggregation.SUM:
        return float(sum(window.column(2, start, end)))
    if signal.aggregation is Aggregation.AVG:
        return float(sum(window.column(2, start, end))) / present
    if signal.aggregation is Aggregation.MIN:
        return float(min(window.column(3, start, end)))
    return float(max(window.column(4, start, end)))


#: A batch of input files read by one query: at most this many files, and this many bytes unless one
#: file alone is larger.
BATCH_FILES = 256
BATCH_BYTES = 2 * 1024**3


def _batches(files: Sequence[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    batches: list[list[tuple[str, int]]] = []
    for file, size in files:
        if not batches or len(batches[-1]) >= BATCH_FILES or sum(s for _, s in batches[-1]) + size > BATCH_BYTES:
            batches.append([])
        batches[-1].append((file, size))
    return batches


def _size(file: str) -> int:
    return Path(file).stat().st_size


class _Progress:
    """Reports the running query's progress (a share from 0 to 1) from a thread while it runs."""

    INTERVAL_S = 0.2

    def __init__(self, db: Any, report: Callable[[float], None]) -> None:
        import threading

        self.db, self.report = db, report
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="extalerts-progress", daemon=True)

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _watch(self) -> None:
        while not self.stopped.wait(self.INTERVAL_S):
            percent = self.db.query_progress()
            if percent >= 0:  # -1: no query running
                self.report(min(percent, 100.0) / 100)


def ceil_minute(ms: int) -> int:
    """``ms`` rounded up to a minute boundary, where evaluations run."""
    return -(-ms // MINUTE_MS) * MINUTE_MS


def schedule_minutes(rule: ResolvedRule, semantics: Semantics) -> int:
    """Minutes between two evaluations of ``rule``: 1 under Datadog's, the rendered cron's under Splunk's."""
    from extalerts.render.splunk_schedule import schedule_period_minutes

    return schedule_period_minutes(rule.rule.window) if semantics == "splunk" else 1


def _salvage_gzip(file: str, target: str) -> tuple[int, GzipDamage | None]:
    """Decompress ``file`` into ``target`` up to the byte where it stops being sound gzip (members
    one after another, as ``gzip`` reads them), whole lines only. Returns the lines kept and the damage."""
    kept, pending = 0, b""
    with Path(target).open("wb") as out:

        def write(data: bytes) -> None:
            nonlocal kept, pending
            whole, _, pending = (pending + data).rpartition(b"\n")
            if whole:
                out.write(whole + b"\n")
                kept += whole.count(b"\n") + 1

        damage = _inflate_members(file, write)
    return kept, damage


@dataclass(frozen=True)
class GzipDamage:
    """Where a gzip file stops being sound: the byte offset in the compressed file, and what is wrong."""

    offset: int
    how: Literal["cut short", "corrupt", "trailing", "unreadable"]
    detail: str = ""

    def __str__(self) -> str:
        text = {
            "cut short": "the gzip stream is cut short at byte {offset:,}",
            "corrupt": "the gzip data is damaged at byte {offset:,}",
            "trailing": "bytes that are not gzip follow the compressed data, from byte {offset:,}",
            "unreadable": "the gzip stream cannot be read",
        }[self.how].format(offset=self.offset)
        return f"{text} ({self.detail})" if self.detail else text


#: Compressed bytes checked at a time, and the most decompressed bytes held at once.
_GZIP_READ = 1 << 16
_GZIP_OUTPUT = 1 << 20


def gzip_damage(file: str) -> GzipDamage | None:
    """Check a gzip file as ``gzip -t`` does, member after member: the compressed data, each
    member's CRC-32 and length, and that the stream neither stops inside a member nor is followed
    by bytes that start no member. None when sound. Memory stays bounded: the output is dropped."""
    return _inflate_members(file, lambda _: None)


def _inflate_members(file: str, output: Callable[[bytes], None]) -> GzipDamage | None:
    """Decompress ``file`` member after member, handing ``output`` every byte decoded before the
    first damage, which is returned (None: the file is sound)."""
    import zlib

    position, data, in_member, member_start = 0, b"", False, 0
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with _raw_source(file) as raw:
        while True:
            if len(data) < len(GZIP_MAGIC):
                more = raw.read(_GZIP_READ)
                if not more and not data:
                    break
                data += more
            if not in_member:
                if not data.startswith(GZIP_MAGIC):
                    return GzipDamage(position, "trailing") if position else GzipDamage(0, "corrupt", "not gzip")
                in_member, member_start = True, position
            before = inflater.copy()
            try:
                pieces = _inflate(inflater, data)
            except zlib.error as exc:
                # Again from before this read, a byte at a time: every byte decoded before the damage is kept.
                failed_at = _failing_byte(before, data, output)
                problem = str(exc).split(": ")[-1]
                if "check" in problem:  # the trailer's CRC-32 or length: the member's data is suspect
                    failed_at -= 3  # where the 4-byte field starts
                    problem = f"{problem}: the member from byte {member_start:,} holds other data than was written"
                return GzipDamage(position + failed_at, "corrupt", problem)
            for piece in pieces:
                output(piece)
            if inflater.eof:
                used = len(data) - len(inflater.unused_data)
                position, data = position + used, inflater.unused_data
                inflater, in_member = zlib.decompressobj(16 + zlib.MAX_WBITS), False
            else:
                position, data = position + len(data), b""
    if in_member or position == 0:
        return GzipDamage(position, "cut short")
    return None


def _inflate(inflater: Any, data: bytes) -> list[bytes]:
    """Decompress ``data`` in pieces of bounded size (a gzip bomb is read a megabyte at a time)."""
    pieces = [inflater.decompress(data, _GZIP_OUTPUT)]
    while inflater.unconsumed_tail:
        pieces.append(inflater.decompress(inflater.unconsumed_tail, _GZIP_OUTPUT))
    return pieces


def _failing_byte(inflater: Any, data: bytes, output: Callable[[bytes], None]) -> int:
    """The offset in ``data`` of the byte at which ``inflater`` (a copy from before it) fails;
    what the bytes before it decode to goes to ``output``."""
    import zlib

    for index in range(len(data)):
        try:
            pieces = _inflate(inflater, data[index : index + 1])
        except zlib.error:
            return index
        for piece in pieces:
            output(piece)
    return len(data) - 1


def _copy_without_long_lines(file: str, target: str, *, stop_at_first: bool) -> list[tuple[int, int]]:
    """Copy ``file`` (decompressed) to ``target`` with every line over :data:`MAX_LINE_BYTES` left
    blank, holding one piece of a line at a time. Returns each such line's number and size."""
    long_lines: list[tuple[int, int]] = []
    with open_source(file) as source, Path(target).open("wb") as out:
        number = 0
        while piece := source.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(piece) <= MAX_LINE_BYTES or (piece.endswith(b"\n") and len(piece) == MAX_LINE_BYTES + 1):
                out.write(piece)
                continue
            size = len(piece)
            while not piece.endswith(b"\n") and (piece := source.readline(1 << 20)):
                size += len(piece)
            long_lines.append((number, size))
            out.write(b"\n")
            if stop_at_first:
                break
    return long_lines


def _bulk(stretches: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """The time range evaluated, from the input's stretches of events (first ms, last ms, events):
    the stretch holding the most events (the latest of equals), widened to every stretch holding
    at least :data:`OUTLIER_SHARE` of the events while the range spans at most :data:`MAX_SPAN_MS`.
    (0, -1) when there is none."""
    if not stretches:
        return 0, -1
    total = sum(n for _, _, n in stretches)
    low, high, _ = max(stretches, key=lambda s: (s[2], s[0]))
    for first, last, events in sorted(stretches, key=lambda s: -s[2]):
        if events >= OUTLIER_SHARE * total and max(high, last) - min(low, first) <= MAX_SPAN_MS:
            low, high = min(low, first), max(high, last)
    return low, high


#: The JSON types (as DuckDB's json_type names them) a field's values may have; JSON null is no value.
_JSON_TYPES = {
    FieldType.STRING: "'VARCHAR', 'NULL'",
    FieldType.INTEGER: "'BIGINT', 'UBIGINT', 'DOUBLE', 'NULL'",
    FieldType.NUMBER: "'BIGINT', 'UBIGINT', 'DOUBLE', 'NULL'",
    FieldType.BOOLEAN: "'BOOLEAN', 'NULL'",
    FieldType.STRING_LIST: "'ARRAY', 'NULL'",
}
_TYPE_WORDS = {
    FieldType.STRING: "text",
    FieldType.INTEGER: "numbers",
    FieldType.NUMBER: "numbers",
    FieldType.BOOLEAN: "true or false",
    FieldType.STRING_LIST: "lists",
}
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "VARCHAR": (str,),
    "BIGINT": (int,),
    "DOUBLE": (float,),
    "BOOLEAN": (bool,),
    "ARRAY": (list,),
}


def _first_mismatch(file: str, path: Sequence[str], allowed: str) -> int | None:
    """The number of the first line of ``file`` whose value at ``path`` has none of the ``allowed`` types."""
    import zlib

    types = tuple(t for name, kinds in _PYTHON_TYPES.items() if f"'{name}'" in allowed for t in kinds)
    with contextlib.suppress(OSError, EOFError, zlib.error), open_source(file) as handle:
        for number, line in enumerate(handle, start=1):
            if len(line) > MAX_LINE_BYTES:
                continue
            try:
                value: Any = json.loads(line)
            except (ValueError, RecursionError):
                continue
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            if value is None:
                continue
            is_bool = isinstance(value, bool)
            if (is_bool and bool not in types) or not isinstance(value, types):
                return number
    return None


def _time_text(ms: int) -> str:
    """An event time for a message: UTC to the second, or the number when no calendar holds it."""
    from datetime import UTC, datetime

    if not 0 <= ms <= LATEST_EVENT_MS:
        return f"EventTimestampMs {ms}"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lines_outside(file: str, low_ms: int, high_ms: int, wanted: int) -> list[tuple[int, int]]:
    """The first ``wanted`` events of ``file`` stamped outside [low_ms, high_ms]: line and time."""
    import zlib

    found: list[tuple[int, int]] = []
    with contextlib.suppress(OSError, EOFError, zlib.error), open_source(file) as handle:
        for number, line in enumerate(handle, start=1):
            if len(line) > MAX_LINE_BYTES or not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            stamp = _as_bigint(record.get("EventTimestampMs")) if isinstance(record, dict) else None
            if stamp is not None and not low_ms <= stamp <= high_ms:
                found.append((number, stamp))
                if len(found) == wanted:
                    break
    return found


def _raw_source(file: str) -> Any:
    """The bytes of a source as stored (gzip left compressed)."""
    if file.startswith("s3://"):
        return _s3_filesystem().open(file, "rb")
    return Path(file).open("rb")


def _bad_line_numbers(file: str, wanted: int) -> list[int]:
    """The first ``wanted`` lines of ``file`` the scan reads as no event: not a JSON object, or no
    ``EventTimestampMs`` a BIGINT column takes (blank lines are no records at all)."""
    import zlib

    found: list[int] = []
    with open_source(file) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if number == 1:  # a byte-order mark is read at the start of a file, and only there
                    line = line.removeprefix(codecs.BOM_UTF8)
                if line.strip() and not _is_event_line(line):
                    found.append(number)
                    if len(found) == wanted:
                        break
        except (OSError, EOFError, zlib.error):  # a damaged archive: DuckDB read past what gzip checks
            pass
    return found


def _is_event_line(line: bytes) -> bool:
    """Whether the scan reads ``line`` as an event: a JSON object whose ``EventTimestampMs`` a
    BIGINT column takes (numbers and numeric text, rounded, within range; true as 1)."""
    try:
        # As text: Python's reader of bytes would take a byte-order mark, and the scan does not.
        record = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    if not isinstance(record, dict):
        return False
    if b"\\u" in line and not _is_text(record):
        return False  # an escaped lone surrogate (\ud800) is no text, which the scan refuses
    return _as_bigint(record.get("EventTimestampMs")) is not None


def _is_text(value: Any) -> bool:
    """Whether every string in a decoded JSON value is text UTF-8 can hold (no lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_BIGINT_RANGE = range(-(2**63), 2**63)


def _as_bigint(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 0)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = round(value)
    return value if isinstance(value, int) and value in _BIGINT_RANGE else None


def open_source(file: str) -> Any:
    """A source file (local, gzip, or ``s3://``) opened for reading bytes."""
    if file.startswith("s3://"):
        # A large read buffer: s3fs's own readline re-reads a whole block for every line.
        return io.BufferedReader(_s3_filesystem().open(file, "rb", compression="infer"), buffer_size=1 << 20)
    if file.endswith(".gz"):
        return gzip.open(file, "rb")
    return Path(file).open("rb")


class _StateMachine:
    """Threshold logic: one step from a state and a value to the next state."""

    def __init__(self, rule: ResolvedRule, semantics: Semantics) -> None:
        thresholds = rule.rule.thresholds
        self.stateless = semantics == "splunk"
        if thresholds is None:  # absence: no event in the window
            self.operator, self.critical = "<", 1.0
            self.critical_recovery: float | None = None
            self.warning: float | None = None
            self.warning_recovery: float | None = None
        else:
            self.operator = thresholds.operator
            self.critical = thresholds.critical
            self.critical_recovery = thresholds.critical_recovery
            self.warning = thresholds.warning
            self.warning_recovery = thresholds.warning_recovery
        if self.stateless:
            self.critical_recovery = self.warning_recovery = None

    def breaches(self, value: float, threshold: float) -> bool:
        return breaches(self.operator, value, threshold)

    def next(self, state: State, value: float | None) -> State:
        if value is None:
            return State.OK if self.stateless else state  # no data: keep the state (Splunk: nothing fires)
        if self.breaches(value, self.critical):
            return State.ALERT
        if state is State.ALERT and not self.stateless:
            recovery = self.critical_recovery if self.critical_recovery is not None else self.critical
            if self.breaches(value, recovery):
                return State.ALERT
        if self.warning is not None and self.breaches(value, self.warning):
            return State.WARN
        if state is State.WARN and not self.stateless and self.warning is not None:
            recovery = self.warning_recovery if self.warning_recovery is not None else self.warning
            if self.breaches(value, recovery):
                return State.WARN
        return State.OK
