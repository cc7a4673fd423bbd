"""How events are read into columns and aggregated per minute bucket and group: the plan every input goes
through, the ``read_json`` scan (typed, or exact through JSON), the staging query, and the type checks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extalerts.engine.results import MINUTE_MS, MISSING_GROUP_VALUE, BadLine, EngineError, Semantics
from extalerts.engine.sources import MAX_LINE_BYTES, open_source
from extalerts.fields import Field, FieldType
from extalerts.filter import fields_of
from extalerts.filter.ast import Expr
from extalerts.filter.duckdb import (
    checked_in_scan,
    exact_columns,
    quote_identifier,
    select_fields,
    select_typed_fields,
    sql_string,
    to_duckdb,
    type_checked,
    typed_columns,
)
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import (
    CardinalitySignal,
    MeasureSignal,
    RatioSignal,
)
from extalerts.wording import plural

if TYPE_CHECKING:
    import duckdb


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
    #: Whether ``values`` holds a histogram (value -> events, for percentiles) rather than a set.
    counted: bool = False

    @property
    def grouped(self) -> str:
        """The condition for a row in a bucket and in a group (a null group value is in none)."""
        return " AND ".join(f"{column} IS NOT NULL" for column in (self.bucket, *self.groups))


@dataclass
class _RuleAggregates:
    keys: _Keys
    #: Aggregate columns, the count of events the filter matches first.
    names: list[str]


def connect(memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    """A DuckDB for the engine, within ``memory_limit`` (it spills to disk beyond), on ``threads``
    threads (None: every core)."""
    import duckdb

    # Insertion order is not needed (events are located by time), and keeping it costs memory.
    try:
        db = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False})
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        raise EngineError(f"memory limit {memory_limit!r}: {message}; write it like 512MB or 4GB") from None
    # DuckDB tracks a query's progress (read by `load`'s on_progress) but must never draw its bar:
    # it would land on stdout, into `--output json`.
    db.execute("SET enable_progress_bar = true")
    db.execute("SET enable_progress_bar_print = false")
    if threads:
        db.execute(f"SET threads = {int(threads)}")
    return db


class Staging:
    """The engine's reading of events into the ``staged`` aggregates of a batch of files."""

    spec: Spec
    memory_limit: str
    threads: int | None
    shipped: Expr | None
    semantics: Semantics
    rules: list[ResolvedRule]
    db: duckdb.DuckDBPyConnection
    columns: _Columns
    events: int
    bad_line_count: int
    bad_lines: list[BadLine]
    warnings: list[str]
    exact_reads: int
    _file_spans: dict[str, tuple[int, int]]
    time_outlier_count: int
    type_mismatches: dict[str, tuple[int, tuple[str, int] | None]]
    _loaded: bool

    def __init__(
        self,
        spec: Spec,
        *,
        rules: Sequence[str] | None = None,
        semantics: Semantics = "datadog",
        memory_limit: str = "1GB",
        threads: int | None = None,
        shipped: Expr | None = None,
        db: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        """``shipped``: the filter of the Logpush job feeding the provider; rules then see only the
        events it ships, as the provider would (None: every event). ``db``: a DuckDB from
        :func:`connect` to use (by default a new one)."""
        self.spec = spec
        self.shipped = shipped
        self.semantics = semantics
        self.rules = [r for r in spec.rules if rules is None or r.id in rules]
        unknown = set(rules or ()) - {r.id for r in self.rules}
        if unknown:
            raise EngineError(f"{plural(len(unknown), 'unknown rule')}: {', '.join(sorted(unknown))}")
        #: Under Cloudflare's semantics, the rules Option A does not carry, and why: never evaluated.
        self.not_carried: dict[str, str] = {}
        if semantics == "cloudflare":
            from extalerts.engine import observability  # it reads coverage, which is not needed otherwise

            for rule in self.rules:
                reason = observability.not_carried_by_option_a(rule, spec)
                if reason is not None:
                    self.not_carried[rule.id] = reason
            self.rules = [r for r in self.rules if r.id not in self.not_carried]
        self.db = db if db is not None else connect(memory_limit, threads)
        self.memory_limit, self.threads = memory_limit, threads
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
        from extalerts.engine.windows import evaluation_window_ms  # windows builds on this module

        buckets: dict[int, str] = {}
        groups: dict[str, str] = {}
        conditions: dict[str, str] = {}  # filter SQL -> its column
        derived: list[str] = []  # per-row expressions, computed before aggregating
        aggregates: dict[str, str] = {}  # aggregate SQL -> its column
        #: How partial aggregates of the same key combine: sum, min or max; a percentile's values
        #: into a histogram (value -> events), a distinct count's into a set.
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
        # Values of another JSON type than their field's, per field the scan checks (see _check_types).
        for name, _, _ in self._type_checks():
            if checked_in_scan(self.field(name)):
                column = self.columns(name)
                totals[f"_types_{column}"] = (f"count(*) FILTER (WHERE _t_{column})", "sum")
        for name, (sql, combine) in totals.items():
            aggregates[sql] = name
            self._combine[name] = combine
        self._rule_aggregates: dict[str, _RuleAggregates] = {}
        for rule in self.rules:
            # Buckets aligned so every window is whole buckets.
            offset_ms = evaluation_window_ms(rule, self.semantics)[1] % MINUTE_MS
            if offset_ms not in buckets:
                buckets[offset_ms] = f"_b{len(buckets)}"
                derived.append(f"floor((ts - {offset_ms}) / {MINUTE_MS})::BIGINT AS {buckets[offset_ms]}")
            for name in rule.rule.group_by:
                if name not in groups:
                    groups[name] = f"_g{len(groups)}"
                    group_value = f"CAST({self.columns(name)} AS VARCHAR)"
                    if self.semantics != "splunk":
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
                # from them. (A list while scanning: DuckDB runs histogram() as a second grouping over
                # a copy of the input; the map step hands it over as a histogram, or a set.)
                # A distinct count needs each value once per bucket, which bounds the list by the values
                # seen in a minute, not by the events that carried them. (list_distinct of the list, not
                # list(DISTINCT): DuckDB runs a DISTINCT aggregate as a second grouping of the input.)
                value = self.columns(signal.field)
                if isinstance(signal, MeasureSignal):
                    value = f"CAST({value} AS DOUBLE)"
                listed = f"list({value}) FILTER (WHERE {matches} AND {value} IS NOT NULL)"
                if isinstance(signal, CardinalitySignal):
                    listed = f"list_distinct({listed})"
                combine = "histogram" if isinstance(signal, MeasureSignal) else "set"
                values = aggregate(listed, combine)
            group_columns = tuple(groups[name] for name in rule.rule.group_by)
            keys = _Keys(buckets[offset_ms], group_columns, values, counted=isinstance(signal, MeasureSignal))
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

    def _read_json(self, files: str | Sequence[str], columns: Mapping[str, str]) -> str:
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
        scan = self._read_json(files, typed or exact_columns([field for field, _ in fields]))
        scan = f"(SELECT *, {file_number} AS _file FROM {scan})"
        if typed is None:
            return select_fields(fields, scan, carry=("_file",))
        return select_typed_fields(fields, scan, carry=("_file",))

    def _type_checks(self) -> list[tuple[str, tuple[str, ...], str]]:
        """The fields the rules read at a fixed place of the event: (name, path, JSON types allowed)."""
        checks = []
        for name in self.columns.names:
            catalog_field = self.field(name)
            if type_checked(catalog_field):
                checks.append((name, catalog_field.paths[0], _JSON_TYPES[catalog_field.type]))
        return checks

    def _check_types(self, files: Sequence[str]) -> None:
        """Count, per field the rules read, the values of another JSON type than the field's (text
        where a number belongs, an object for a name): the reading coerces or drops them, so they
        are reported, the first with its file and line. The scan counts them as it reads (the
        ``_types_`` aggregates of ``staged``); only the event time, which the scan reads as its
        timestamp, takes a scan of the files' JSON apart."""
        checks = self._type_checks()
        in_scan = [check for check in checks if checked_in_scan(self.field(check[0]))]
        apart = [check for check in checks if not checked_in_scan(self.field(check[0]))]
        rows: list[tuple[Any, ...]] = []
        if in_scan:
            sums = ", ".join(f"sum(_types_{self.columns(name)})" for name, _, _ in in_scan)
            rows = self.db.execute(f"SELECT _file, {sums} FROM staged GROUP BY _file").fetchall()
        self._count_type_mismatches(files, in_scan, rows)
        if apart:
            self._count_type_mismatches(files, apart, self._type_scan(files, apart))

    def _type_scan(self, files: Sequence[str], checks: Sequence[tuple[str, tuple[str, ...], str]]) -> list[Any]:
        """Per file, the values of each check's field of another JSON type, read from the files' JSON."""
        columns = dict.fromkeys(dict.fromkeys(path[0] for _, path, _ in checks), "JSON")
        counts = []
        for index, (_, path, allowed) in enumerate(checks):
            value = quote_identifier(path[0])
            if len(path) > 1:
                value = f"json_extract({value}, {sql_string('$.' + '.'.join(path[1:]))})"
            counts.append(f"count(*) FILTER (WHERE json_type({value}) NOT IN ({allowed})) AS _t{index}")
        query = f"SELECT file_index, {', '.join(counts)} FROM {self._read_json(files, columns)} GROUP BY ALL"
        try:
            return self.db.execute(query).fetchall()
        except Exception:
            return []

    def _count_type_mismatches(
        self, files: Sequence[str], checks: Sequence[tuple[str, tuple[str, ...], str]], rows: Sequence[Any]
    ) -> None:
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

    def _where(self, rule: ResolvedRule) -> str:
        where = "true" if rule.filter is None else to_duckdb(rule.filter, self.field, self.columns)
        if self.shipped is None:
            return where
        return f"({self._shipped_sql()}) AND ({where})"

    def _shipped_sql(self) -> str:
        return "true" if self.shipped is None else to_duckdb(self.shipped, self.field, self.columns)


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
